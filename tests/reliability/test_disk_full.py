"""Fault: the disk fills up during an import.

The import stops with `disk full: <database>, about N MB more needed` and exit code 5, the
WAL stays small (so nearly the whole disk holds posts), commands that only read keep working,
and once there is space the same import finishes.

test_import_on_a_full_filesystem runs on a real filesystem that fills up: a small tmpfs
mounted for the test (root only, as CI runs). test_import_past_the_database_size_limit
simulates the same with SQLite's max_page_count, and runs everywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from elshi.db import Database, DiskFull

CHILD = Path(__file__).with_name("import_child.py")
MB = 1024 * 1024


def _write_csv(path: Path, rows: int) -> None:
    lines = ["id,text,author,published_at,lang"]
    for n in range(rows):
        body = (
            f"statement {n % 5} on the Astana summit"
            if n % 7 == 0
            else f"post {n} of many words about the border and the Astana summit today"
        )
        lines.append(f"f{n},{body},user{n % 11},2026-01-0{1 + n % 9},en")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def fetch_ctx(settings: Any) -> Iterator[Any]:
    from elshi.connectors.base import FetchContext

    ctx = FetchContext(settings=settings)
    yield ctx
    ctx.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 12 MB tmpfs, mounted for this test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _elshi(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "elshi.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_on_a_full_filesystem(
    small_disk: Path, sqlite_template: Path, tmp_path: Path, settings: Any
) -> None:
    database = small_disk / "elshi.db"
    shutil.copy(sqlite_template, database)
    csv = tmp_path / "posts.csv"
    _write_csv(csv, 30_000)  # about 3 MB of CSV: several times that once stored
    env = os.environ | {
        "ELSHI_DATABASE_URL": f"sqlite:///{database}",
        "ELSHI_INGEST_BATCH_SIZE": "500",
        "COLUMNS": "200",
    }

    # A large (bulk) import: it fills the disk and stops with a clear message.
    full = subprocess.run(
        [sys.executable, str(CHILD), str(csv)], env=env, capture_output=True, text=True
    )
    assert full.returncode == 5, full.stderr
    assert f"disk full: {database}, about " in full.stderr
    assert "MB more needed" in full.stderr
    assert "Traceback" not in full.stderr
    # The WAL stayed small: the space went to posts.
    wal = Path(f"{database}-wal")
    assert not wal.exists() or wal.stat().st_size < 6 * MB
    assert database.stat().st_size > 5 * MB
    assert shutil.disk_usage(small_disk).free < 1 * MB

    # Commands that only read keep working on the full disk.
    found = _elshi(env, "search", "Astana", "--limit", "3")
    assert found.returncode == 0, found.stderr
    assert "Astana" in found.stdout and "Traceback" not in found.stderr
    runs = _elshi(env, "runs")
    assert runs.returncode == 0, runs.stderr
    assert "failed" in runs.stdout and "disk full" in runs.stdout
    for args in (("sources", "list"), ("quarantine", "list")):
        listed = _elshi(env, *args)
        assert listed.returncode == 0, (args, listed.stderr)
        assert "Traceback" not in listed.stderr

    # A command that writes says the same, cleanly.
    again = subprocess.run(
        [sys.executable, str(CHILD), str(csv)], env=env, capture_output=True, text=True
    )
    assert again.returncode == 5 and "disk full: " in again.stderr, again.stderr
    assert "Traceback" not in again.stderr

    # With room again, the same import finishes and every post is there.
    subprocess.run(["mount", "-o", "remount,size=96m", str(small_disk)], check=True)
    done = subprocess.run(
        [sys.executable, str(CHILD), str(csv)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    check = Database(settings.model_copy(update={"database_url": f"sqlite:///{database}"}))
    try:
        with check.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM post")).scalar() == 30_000
            assert (
                conn.execute(text("SELECT count(*) FROM post WHERE dup_of_id IS NOT NULL")).scalar()
                == len([n for n in range(30_000) if n % 7 == 0]) - 5
            )
    finally:
        check.dispose()


def test_import_past_the_database_size_limit(db: Database, fetch_ctx: Any, tmp_path: Path) -> None:
    """The same fault simulated: SQLite refuses to grow the database past max_page_count."""
    from elshi.listen import service
    from elshi.listen.flows import import_with
    from elshi.plugins import get_connector

    if not db.sqlite:
        pytest.skip("max_page_count is SQLite's")
    csv = tmp_path / "posts.csv"
    _write_csv(csv, 5_000)
    with db.engine.connect() as conn:
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar() or 0)

    def cap(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count={pages + 300}")  # about 1.2 MB more

    db.dispose()
    event.listen(db.engine, "connect", cap)
    with pytest.raises(DiskFull) as caught:
        import_with(
            db,
            connector=get_connector("tabular"),
            config={"path": str(csv), "profile": "generic"},
            ctx=fetch_ctx,
        )
    assert str(caught.value).startswith(f"disk full: {db.path}, about ")
    assert str(caught.value).endswith(" MB more needed")
    assert caught.value.needed > 1 * MB

    # Reading still works, and the run says why it failed.
    with db.session() as s:
        stored = s.scalar(text("SELECT count(*) FROM post"))
        assert stored and stored < 5_000
        total, hits = service.search_posts(db=s, query=service.SearchQuery(q="Astana", limit=5))
        assert total and hits
        status, error = s.execute(text("SELECT status, error FROM ingest_run")).one()
    assert status == "failed" and error.startswith("disk full: ")
