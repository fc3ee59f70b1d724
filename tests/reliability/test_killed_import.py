"""Fault: a large import killed mid-way (SIGKILL, a real process), then run again.

The near-duplicate links must come out the same as after one uninterrupted import, and the
killed run must not stay 'running' forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from elshi.db import Database
from elshi.migrate import migrate

CHILD = Path(__file__).with_name("import_child.py")
ROWS = 3000
BATCH = 200


def _write_csv(path: Path) -> None:
    lines = ["id,text,author,published_at,lang"]
    for n in range(ROWS):
        # Every seventh post repeats the text of one of a few early posts: near duplicates
        # whose originals were stored long before them, some by the killed run.
        body = f"statement {n % 5} on the Astana summit" if n % 7 == 0 else f"post {n} of many"
        lines.append(f"k{n},{body},user{n % 11},2026-01-0{1 + n % 9},en")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _env(url: str) -> dict[str, str]:
    return os.environ | {"ELSHI_DATABASE_URL": url, "ELSHI_INGEST_BATCH_SIZE": str(BATCH)}


def _import(url: str, csv: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, str(CHILD), str(csv)],
        env=_env(url),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


def _kill_mid_way(url: str, csv: Path, tmp_path: Path, batches: int) -> int:
    """Start the import, SIGKILL it once `batches` batches are committed; return its pid."""
    marker = tmp_path / "stopped"
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(csv), str(batches), str(marker)],
        env=_env(url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the import ended before it could be killed: {proc.stderr.read()}")
        assert time.monotonic() < deadline, "the import never reached the kill point"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    if proc.stderr:
        proc.stderr.close()
    return proc.pid


def _links(db: Database) -> list[tuple[str, str | None]]:
    with db.engine.connect() as conn:
        return [
            (r[0], r[1])
            for r in conn.execute(
                text(
                    "SELECT p.external_id, d.external_id FROM post p "
                    "LEFT JOIN post d ON d.id = p.dup_of_id ORDER BY p.external_id"
                )
            )
        ]


def _fresh_db(settings: Any, tmp_path: Path, name: str) -> tuple[Database, str]:
    if not settings.is_sqlite:
        pytest.skip("large imports take the bulk path on SQLite only")
    url = f"sqlite:///{tmp_path / name}"
    other = Database(settings.model_copy(update={"database_url": url}))
    migrate(other.engine)
    return other, url


def test_killed_import_then_rerun_marks_near_duplicates_like_one_import(
    db: Database, settings: Any, tmp_path: Path
) -> None:
    csv = tmp_path / "big.csv"
    _write_csv(csv)
    reference, reference_url = _fresh_db(settings, tmp_path, "reference.db")
    _import(reference_url, csv)
    expected = _links(reference)
    reference.dispose()
    assert len(expected) == ROWS
    # The first post of each repeated text (k0, k7, ... k28) is the original of the others.
    assert {dup for _, dup in expected if dup} == {"k0", "k7", "k14", "k21", "k28"}
    marked = sum(1 for _, dup in expected if dup)
    assert marked == len([n for n in range(ROWS) if n % 7 == 0]) - 5

    url = settings.db_url
    pid = _kill_mid_way(url, csv, tmp_path, batches=5)
    with db.engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM post")).scalar()
        pending = conn.execute(text("SELECT count(*) FROM post WHERE near_dup_pending")).scalar()
        run = conn.execute(text("SELECT status, pid FROM ingest_run")).one()
    assert stored == 5 * BATCH  # the five committed batches, no more
    assert pending == stored  # stored by a bulk load: not decided yet
    assert tuple(run) == ("running", pid)

    _import(url, csv)  # the rerun stores the rest and decides every pending post
    assert _links(db) == expected
    with db.engine.connect() as conn:
        runs = conn.execute(text("SELECT status, stored, error FROM ingest_run ORDER BY id")).all()
        assert conn.execute(text("SELECT count(*) FROM post WHERE near_dup_pending")).scalar() == 0
    assert [r[0] for r in runs] == ["interrupted", "ok"]
    assert f"process {pid}" in runs[0][2]
    assert runs[1][1] == ROWS - 5 * BATCH


def test_reprocess_near_duplicates_repairs_and_changes_nothing_twice(
    db: Database, settings: Any, tmp_path: Path, cli: Any
) -> None:
    """A database whose near-duplicate links were lost (as a killed import of an earlier
    version left it: no link, nothing pending) is repaired by the command, idempotently."""
    csv = tmp_path / "big.csv"
    _write_csv(csv)
    _import(settings.db_url, csv)
    expected = _links(db)
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE post SET dup_of_id = NULL, near_dup_pending = :no"), {"no": False}
        )
    assert all(dup is None for _, dup in _links(db))

    first = cli("reprocess", "near-duplicates", "--no-progress")
    assert first.exit_code == 0, first.output
    marked = sum(1 for _, dup in expected if dup)
    assert f"marked {marked:,} near duplicates" in first.output
    assert _links(db) == expected
    second = cli("reprocess", "near-duplicates", "--no-progress")
    assert second.exit_code == 0 and "marked 0 near duplicates" in second.output
    assert _links(db) == expected


def test_runs_lists_a_killed_import_as_interrupted(
    db: Database, settings: Any, tmp_path: Path
) -> None:
    csv = tmp_path / "big.csv"
    _write_csv(csv)
    pid = _kill_mid_way(settings.db_url, csv, tmp_path, batches=2)
    listed = subprocess.run(
        [sys.executable, "-m", "elshi.cli", "runs"],
        env=_env(settings.db_url) | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert "interrupted" in listed.stdout and "running" not in listed.stdout
    with db.engine.connect() as conn:
        status, error = conn.execute(text("SELECT status, error FROM ingest_run")).one()
    assert status == "interrupted"
    assert f"process {pid}" in error
