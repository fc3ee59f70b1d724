"""Benchmark: crisis check-in latency on SQLite, alone and while bulk work writes.

Run: python bench/checkin_latency.py [--checkins 200] [--rows 80000]

Phases, on a throwaway SQLite database (WAL, as `elshi serve` uses):
  alone  N check-ins, one after another, through the web's check-in writer (the path a
         citizen's answer takes); each is timed from hand-over to commit.
  busy   the same while two other processes write: `elshi ingest` of a generated CSV of
         --rows rows taken as a large (bulk) import, and a worker stand-in that annotates
         stored posts in batches (`elshi enrich -e length`-like writes, 500 per transaction).
Prints p50 and p95 of each phase in milliseconds and the busy/alone ratio of p95.
Asserts nothing; the machine may be shared, so the figures are indicative.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

IMPORTER = """
import sys
from elshi.listen import flows
from elshi.cli.root import app
flows.BULK_MIN_BYTES = 1
app(["ingest", "tabular", sys.argv[1], "--option", "profile=generic", "--no-progress"])
"""

WORKER = """
import sys, time
from elshi.db import Database
from elshi.settings import load_settings
db = Database(load_settings())
stop = time.monotonic() + float(sys.argv[1])
last = 0
while time.monotonic() < stop:
    with db.writing() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id, length(text) FROM post WHERE id > ? ORDER BY id LIMIT 500", (last,)
        ).all()
        if rows:
            last = rows[-1][0]
            conn.exec_driver_sql(
                "INSERT OR REPLACE INTO annotation (post_id, enricher, version, label, score, "
                "value, created_at) VALUES (?, 'bench', '1', 'len', ?, '{}', "
                "'2026-01-01 00:00:00.000000')",
                [(pid, float(n)) for pid, n in rows],
            )
    if not rows:
        time.sleep(0.05)
"""


def _csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("id,text,author,published_at,lang\n")
        for n in range(rows):
            out.write(
                f"b{n},post {n} about the border crossing near Astana and the summit,"
                f"user{n % 500},2026-01-0{1 + n % 9},en\n"
            )


def _setup(n: int) -> tuple[object, int, list[int]]:
    from tests.crisis.support import populate, team

    from elshi.crisis.models import Crisis, Recipient
    from elshi.db import Database
    from elshi.migrate import migrate
    from elshi.settings import load_settings

    db = Database(load_settings())
    migrate(db.engine)
    t = team(db)
    citizens = populate(db, t.mission_id, n)
    with db.session() as s:
        crisis = Crisis(mission_id=t.mission_id, title="bench", status="open")
        s.add(crisis)
        s.flush()
        recipients = [Recipient(crisis_id=crisis.id, citizen_id=c) for c in citizens]
        s.add_all(recipients)
        s.flush()
        return db, crisis.id, [r.id for r in recipients]


async def _checkins(db: object, crisis_id: int, people: list[int], tag: str) -> list[float]:
    from elshi.crisis.service import checkin_values
    from elshi.crisis.writer import CheckinWriter

    writer = CheckinWriter(db)  # type: ignore[arg-type]
    times = []
    for n, person in enumerate(people):
        values = checkin_values(
            crisis_id=crisis_id, recipient_id=person, answer="safe", nonce=f"{tag}-{n}"
        )
        start = time.perf_counter()
        stored = await writer.write(values)
        times.append((time.perf_counter() - start) * 1000)
        assert stored == 1, "a check-in was not stored"
    return times


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkins", type=int, default=200)
    parser.add_argument("--rows", type=int, default=80_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="elshi-checkin-bench-"))
    os.environ.update(
        {
            "ELSHI_HOME": str(work),
            "ELSHI_DATABASE_URL": f"sqlite:///{work / 'elshi.db'}",
            "ELSHI_DEMO": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        }
    )
    db, crisis_id, people = _setup(2 * args.checkins)
    alone = asyncio.run(_checkins(db, crisis_id, people[: args.checkins], "alone"))

    csv = work / "posts.csv"
    _csv(csv, args.rows)
    importer = subprocess.Popen(
        [sys.executable, "-c", IMPORTER, str(csv)], stdout=subprocess.DEVNULL
    )
    worker = subprocess.Popen([sys.executable, "-c", WORKER, "600"])
    try:
        # Wait until the import is storing posts, then answer while both write.
        deadline = time.monotonic() + 120
        with db.engine.connect() as conn:  # type: ignore[attr-defined]
            while not conn.exec_driver_sql("SELECT count(*) FROM post").scalar():
                if time.monotonic() > deadline or importer.poll() is not None:
                    raise SystemExit("the import did not start storing posts")
                time.sleep(0.1)
                conn.rollback()
        busy = asyncio.run(_checkins(db, crisis_id, people[args.checkins :], "busy"))
        overlapped = importer.poll() is None
    finally:
        worker.terminate()
        importer.terminate()
        worker.wait()
        importer.wait()
    a50, a95 = _p(alone, 50), _p(alone, 95)
    b50, b95 = _p(busy, 50), _p(busy, 95)
    print(f"check-in alone: p50 {a50:.1f} ms, p95 {a95:.1f} ms ({len(alone)} answers)")
    print(f"check-in busy:  p50 {b50:.1f} ms, p95 {b95:.1f} ms (import + worker writing)")
    print(f"busy/alone p95 ratio: {b95 / a95:.1f}x")
    if not overlapped:
        print("note: the import ended before the last check-in; use more --rows")


if __name__ == "__main__":
    main()
