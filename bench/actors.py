"""Actors: how long the assessment (types by rule and inauthenticity signals) takes.

    python bench/actors.py                  # the IRA sample, then 1,000,000 generated posts
    python bench/actors.py --posts 100000   # a quick run while developing

1. **IRA sample**: the 51,598 tweets of ../shared/data/ira-troll-tweets-sample (or
   ELSHI_SHARED_DATA) imported with the `ira` profile into a fresh SQLite database, the
   sample's authors.csv imported as a list (`elshi actors import` with --platform twitter
   --type inauthentic), then `elshi.actors.service.assess`: every account typed by the list
   and its six signals computed.
2. **Generated**: N posts (--posts) of 20,000 accounts over 30 days written straight into a
   fresh database (a tenth of them reposts; 20 accounts repost every 5 minutes, which the
   regular-interval and amplification signals flag), then the assessment.

Figures: seconds and posts per second of each assessment, and its peak memory (getrusage
high-water mark of a child process per phase). Target: the assessment of N posts under 60 s
and under 1 GB; the exit code is 0 only if it passes.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

TARGET_SECONDS = 60.0
TARGET_MB = 1024.0


def shared_data() -> Path:
    return Path(os.environ.get("ELSHI_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _database(folder: Path) -> Any:
    os.environ["ELSHI_HOME"] = str(folder)
    os.environ["ELSHI_DATABASE_URL"] = f"sqlite:///{folder / 'elshi.db'}"
    from elshi.db import Database
    from elshi.migrate import migrate
    from elshi.settings import load_settings

    db = Database(load_settings())
    migrate(db.engine)
    return db


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ira_phase(folder: str, queue: Any) -> None:
    from elshi.accounts.service import Principal
    from elshi.actors import service
    from elshi.connectors.base import FetchContext
    from elshi.connectors.tabular import TabularConnector
    from elshi.listen.flows import import_with

    db = _database(Path(folder))
    data = shared_data() / "ira-troll-tweets-sample"
    ctx = FetchContext(settings=db.settings)
    try:
        import_with(
            db,
            connector=TabularConnector(),
            config={"path": str(data / "tweets"), "profile": "ira"},
            ctx=ctx,
        )
    finally:
        ctx.close()
    with db.session() as s:
        service.import_list(
            s,
            principal=Principal.system(),
            data=(data / "authors.csv").read_bytes(),
            filename="authors.csv",
            defaults={"platform": "twitter", "actor_type": "inauthentic"},
        )
        s.commit()
        start = time.perf_counter()
        report = service.assess(s)
        seconds = time.perf_counter() - start
    queue.put({"posts": report.posts, "accounts": report.accounts, "typed": report.typed,
               "seconds": seconds, "peak_mb": _peak_mb()})  # fmt: skip


def generated_phase(folder: str, posts: int, queue: Any) -> None:
    from sqlalchemy import insert

    from elshi.actors import service
    from elshi.listen.models import Author, Post

    db = _database(Path(folder))
    rng = random.Random(7)
    accounts = 20_000
    start_at = datetime(2026, 3, 1, tzinfo=UTC)
    with db.engine.begin() as conn:
        conn.execute(
            insert(Author),
            [{"platform": "twitter", "handle": f"acct{i}", "name": f"User {i}", "extra": {}}
             for i in range(1, accounts + 1)],
        )  # fmt: skip
    batch: list[dict[str, Any]] = []
    scheduled: dict[int, int] = {}
    for n in range(posts):
        author = rng.randint(1, accounts)
        if author <= 20:  # a few accounts repost on a schedule, every 5 minutes
            scheduled[author] = scheduled.get(author, 0) + 1
            when = start_at + timedelta(minutes=5 * scheduled[author])
            repost = f"o{n % 997}"
        else:
            when = start_at + timedelta(seconds=rng.randint(0, 30 * 86400))
            repost = f"o{n % 997}" if n % 10 == 0 else None
        batch.append(
            {"platform": "twitter", "external_id": f"g{n}", "connector": "bench",
             "author_id": author, "text": "", "published_at": when, "collected_at": when,
             "metrics": {}, "extra": {}, "repost_of": repost, "raw": None,
             "near_dup_pending": False}
        )  # fmt: skip
        if len(batch) == 20_000:
            with db.engine.begin() as conn:
                conn.execute(insert(Post), batch)
            batch = []
    if batch:
        with db.engine.begin() as conn:
            conn.execute(insert(Post), batch)
    with db.session() as s:
        start = time.perf_counter()
        report = service.assess(s)
        seconds = time.perf_counter() - start
    queue.put({"posts": report.posts, "accounts": report.accounts, "flagged": report.flagged,
               "seconds": seconds, "peak_mb": _peak_mb()})  # fmt: skip


def run(target: Any, *args: Any) -> dict[str, Any]:
    mp = get_context("spawn")
    queue = mp.Queue()
    child = mp.Process(target=target, args=(*args, queue))
    child.start()
    result = queue.get()
    child.join()
    return dict(result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--skip-ira", action="store_true")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_ira and (shared_data() / "ira-troll-tweets-sample").exists():
            (Path(tmp) / "ira").mkdir()
            r = run(ira_phase, str(Path(tmp) / "ira"))
            print(
                f"IRA sample: {r['posts']:,} posts, {r['accounts']} accounts, {r['typed']} typed "
                f"by the list; assessment {r['seconds']:.2f} s "
                f"({r['posts'] / r['seconds']:,.0f} posts/s), peak {r['peak_mb']:.0f} MB"
            )
        (Path(tmp) / "gen").mkdir()
        r = run(generated_phase, str(Path(tmp) / "gen"), args.posts)
        passed = r["seconds"] < TARGET_SECONDS and r["peak_mb"] < TARGET_MB
        ok = ok and passed
        print(
            f"generated: {r['posts']:,} posts, {r['accounts']:,} accounts, {r['flagged']:,} with "
            f"a signal; assessment {r['seconds']:.2f} s "
            f"({r['posts'] / r['seconds']:,.0f} posts/s), "
            f"peak {r['peak_mb']:.0f} MB (target < {TARGET_SECONDS:.0f} s, < {TARGET_MB:.0f} MB): "
            f"{'PASS' if passed else 'FAIL'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
