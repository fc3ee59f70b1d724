"""The long-running commands refuse to start on a database whose tables do not match the
models, with a message that names what is missing and what to run (a real process each)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from elshi.migrate import migrate
from tests.conftest import BACKEND

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def broken_home(tmp_path: Path) -> Path:
    """A migrated SQLite database from which a table and a column went missing by hand."""
    home = tmp_path / "home"
    home.mkdir()
    engine = create_engine(f"sqlite:///{home / 'elshi.db'}")
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE crisis_checkin"))
        conn.execute(text("ALTER TABLE mission DROP COLUMN timezone"))
    engine.dispose()
    return home


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELSHI_")}
    env.update(
        ELSHI_HOME=str(home),
        ELSHI_DEMO="1",
        ELSHI_QUEUE_URL=f"sqlite:///{home / 'queue.db'}",
        ELSHI_PORT="1",  # never reached
        PYTHONPATH=str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return subprocess.run(
        [sys.executable, "-m", "elshi.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(BACKEND != "sqlite", reason="the broken database is a SQLite file")
@pytest.mark.parametrize("command", [["serve"], ["worker"], ["web"]])
def test_refuses_to_start_on_a_schema_that_does_not_match(
    broken_home: Path, command: list[str]
) -> None:
    done = _run(broken_home, *command)
    assert done.returncode == 1, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert "does not match this version of elshi" in message
    assert "missing tables: crisis_checkin" in message
    assert "missing columns: mission.timezone" in message
    assert "elshi migrate" in message
    assert "running" not in done.stdout  # it never started


@pytest.mark.skipif(BACKEND != "sqlite", reason="the database is a SQLite file")
def test_starts_checks_on_a_matching_schema(tmp_path: Path) -> None:
    """`elshi migrate` on a fresh home, then the same check passes (and says nothing)."""
    home = tmp_path / "home"
    home.mkdir()
    done = _run(home, "migrate")
    assert done.returncode == 0, done.stderr
    from elshi.schema import check_schema

    engine = create_engine(f"sqlite:///{home / 'elshi.db'}")
    try:
        report = check_schema(engine)
    finally:
        engine.dispose()
    assert report.ok, report.message()
