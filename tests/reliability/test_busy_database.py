"""Fault: a citizen answers while a large import writes to the same SQLite database.

The check-in must be stored (no "database is locked"), taken between the import's batches.
Latency figures are in bench/checkin_latency.py; this test checks correctness only.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from elshi.crisis.models import CheckIn, Crisis, Recipient
from elshi.crisis.service import checkin_values
from elshi.crisis.writer import CheckinWriter
from elshi.db import Database
from tests.crisis.support import populate, team

CHILD = Path(__file__).with_name("import_child.py")


def test_checkins_are_stored_while_a_bulk_import_writes(
    db: Database, settings: Any, tmp_path: Path
) -> None:
    if not db.sqlite:
        pytest.skip("one writer at a time is SQLite's; PostgreSQL writes rows concurrently")
    t = team(db)
    citizens = populate(db, t.mission_id, 30)
    with db.session() as s:
        crisis = Crisis(mission_id=t.mission_id, title="earthquake", status="open")
        s.add(crisis)
        s.flush()
        people = [Recipient(crisis_id=crisis.id, citizen_id=c) for c in citizens]
        s.add_all(people)
        s.flush()
        crisis_id, ids = crisis.id, [p.id for p in people]

    csv = tmp_path / "posts.csv"
    csv.write_text(
        "id,text,author,published_at,lang\n"
        + "".join(
            f"b{n},post {n} about Astana,user{n % 50},2026-01-02,en\n" for n in range(60_000)
        ),
        encoding="utf-8",
    )
    importer = subprocess.Popen(
        [sys.executable, str(CHILD), str(csv)],
        env=os.environ | {"ELSHI_INGEST_BATCH_SIZE": "2000"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            with db.engine.connect() as conn:
                before = conn.execute(text("SELECT count(*) FROM post")).scalar() or 0
            if before:
                break
            assert importer.poll() is None, importer.stderr.read() if importer.stderr else ""
            assert time.monotonic() < deadline, "the import never started storing"
            time.sleep(0.05)

        async def answer() -> list[int]:
            writer = CheckinWriter(db)
            return [
                await writer.write(
                    checkin_values(
                        crisis_id=crisis_id, recipient_id=r, answer="safe", nonce=f"n{r}"
                    )
                )
                for r in ids
            ]

        stored = asyncio.run(answer())
        still_importing = importer.poll() is None
    finally:
        importer.wait(timeout=600)
    assert importer.returncode == 0, importer.stderr.read() if importer.stderr else ""
    assert stored == [1] * len(ids)
    # The answers went in while the import was midway: it had stored some rows, not all,
    # when they began, and was still running when they were all stored. Whether one of its
    # batches landed in between depends on the machine's speed, so it is not asserted.
    assert 0 < before < 60_000
    assert still_importing
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(CheckIn)) == len(ids)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM post")).scalar() == 60_000
