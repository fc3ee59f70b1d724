"""Enrichment speed: the default pipeline (language, sentiment, entities) over the IRA sample.

    python bench/enrich.py [--limit N] [--batch 1000]

Imports ../shared/data/ira-troll-tweets-sample (or ELSHI_SHARED_DATA) into a fresh SQLite
database with the tabular connector, then runs elshi.nlp.pipeline.enrich_posts over every post
and prints posts/s (wall and per CPU second) and the peak memory of the process. Target from
the issue: >= 1,000 posts/s for language + sentiment + entities on this 2-core class of machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1000.0


def main() -> int:
    """Run the benchmark and print PASS or FAIL against the target."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--limit", type=int, default=0, help="Enrich only the first N posts.")
    p.add_argument("--batch", type=int, default=1000, help="Posts per enrichment batch.")
    args = p.parse_args()
    data = Path(
        os.environ.get("ELSHI_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    tweets = data / "ira-troll-tweets-sample" / "tweets"
    if not tweets.is_dir():
        print(f"IRA sample not found at {tweets} (set ELSHI_SHARED_DATA)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="elshi-enrich-"))
    os.environ.update(
        ELSHI_HOME=str(work), ELSHI_DEMO="1", ELSHI_DATABASE_URL=f"sqlite:///{work / 'elshi.db'}"
    )
    from elshi.connectors.base import FetchContext
    from elshi.db import Database
    from elshi.listen.flows import import_with
    from elshi.migrate import migrate
    from elshi.nlp.pipeline import enrich_posts
    from elshi.plugins import get_connector
    from elshi.settings import load_settings

    settings = load_settings()
    db = Database(settings)
    migrate(db.engine)
    ctx = FetchContext(settings=settings)
    report = import_with(
        db,
        connector=get_connector("tabular"),
        config={"path": str(tweets), "profile": "ira"},
        ctx=ctx,
    )
    print(f"imported {report.stored:,} IRA posts into {work}")
    max_id = report.stored if args.limit <= 0 else min(args.limit, report.stored)
    t0, c0 = time.perf_counter(), time.process_time()
    counts = enrich_posts(
        db, slugs=["language", "sentiment", "entities"], max_id=max_id, batch_size=args.batch
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = counts["posts"]
    rate = n / wall
    print(f"enriched {n:,} posts ({counts['by_enricher']}) errors {counts['errors']}")
    print(
        f"language + sentiment + entities: {rate:,.0f} posts/s wall, "
        f"{n / cpu:,.0f} posts/s per CPU second; peak memory {peak:,.0f} MB (models included)"
    )
    print("narratives: not in the default pipeline yet (see elshi.nlp.narratives)")
    print(f"{'PASS' if rate >= TARGET else 'FAIL'}  {rate:,.0f} posts/s (target >= {TARGET:,.0f})")
    return 0 if rate >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
