"""Fuzz every file connector with many mutated samples; print how each case ended.

Run: python bench/fuzz_connectors.py [--cases 2000] [--seed 0] [--only NAME] [--keep DIR]

The mutations are those of the test suite (tests/reliability/fuzzing.py: bytes flipped, cut,
repeated or inserted, values swapped for nasty ones, bad lines added, files emptied), applied
to the repository's own samples and, where ../shared/data (or ELSHI_SHARED_DATA) is present,
to real third-party samples too. Each case is imported into a fresh SQLite database (or
PostgreSQL with --pg URL) through `import_with`, as `elshi ingest` does.

For each sample it prints the cases stored, quarantined and refused, records stored and
quarantined, and the cases where an exception escaped (a bug: the first few are shown with
the seed that reproduces them). Exit code 1 when any escaped.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="cases per sample")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--only", help="only samples whose name contains this")
    parser.add_argument("--keep", type=Path, help="folder for the database and cases")
    parser.add_argument("--pg", help="a PostgreSQL URL to import into instead of SQLite")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="elshi-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["ELSHI_HOME"] = str(work)
    os.environ["ELSHI_DATABASE_URL"] = args.pg or f"sqlite:///{work / 'fuzz.db'}"

    from tests.reliability.fuzzing import RandomPicker, mutate, run_case, samples, shared_samples

    from elshi.connectors.base import FetchContext
    from elshi.db import Database
    from elshi.migrate import migrate
    from elshi.settings import load_settings

    settings = load_settings()
    db = Database(settings)
    migrate(db.engine)
    ctx = FetchContext(settings=settings)
    shared = Path(os.environ.get("ELSHI_SHARED_DATA", ROOT.parent / "shared" / "data"))
    found = samples() + (shared_samples(shared) if shared.is_dir() else [])
    if args.only:
        found = [s for s in found if args.only in s.name]
    print(f"{len(found)} samples, {args.cases:,} cases each, database {db.engine.url.drivername}")
    header = f"{'sample':34} {'stored':>7} {'quar.':>7} {'refused':>7} {'escaped':>7}"
    print(f"{header} {'posts':>8} {'records q.':>10} {'case/s':>7}")
    escaped_total = 0
    for sample in found:
        outcomes: Counter[str] = Counter()
        posts = records = 0
        bugs: list[tuple[int, str]] = []
        path = work / f"case{sample.suffix}"
        started = time.perf_counter()
        for seed in range(args.seed, args.seed + args.cases):
            path.write_bytes(mutate(sample, RandomPicker(seed)))
            try:
                outcome = run_case(db, ctx, sample, path)
            except Exception:
                outcomes["escaped"] += 1
                if len(bugs) < 3:
                    bugs.append((seed, traceback.format_exc(limit=-4)))
                continue
            outcomes[outcome.kind] += 1
            posts += outcome.stored
            records += outcome.quarantined
        rate = args.cases / (time.perf_counter() - started)
        print(
            f"{sample.name[:34]:34} {outcomes['stored']:>7,} {outcomes['quarantined']:>7,} "
            f"{outcomes['refused']:>7,} {outcomes['escaped']:>7,} {posts:>8,} {records:>10,} "
            f"{rate:>7.1f}",
            flush=True,
        )
        for seed, trace in bugs:
            print(f"  escaped with --only '{sample.name}' --seed {seed} --cases 1:\n{trace}")
        escaped_total += outcomes["escaped"]
    ctx.close()
    db.dispose()
    print("PASS: no exception escaped" if not escaped_total else f"FAIL: {escaped_total} escaped")
    return 1 if escaped_total else 0


if __name__ == "__main__":
    raise SystemExit(main())
