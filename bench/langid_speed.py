"""Benchmark language identification throughput on one core.

Run: python bench/langid_speed.py [--n 20000] [--warm 200]

Texts: IRA troll tweets of 60+ characters (en and ru, from ../shared/data or ELSHI_SHARED_DATA)
interleaved with the hand-written hard cases in tests/fixtures/nlp (kk in three spellings,
ky, uz, uk, tr, mn, zh, ar, kk/ru mixed). Without the shared data only the hand-written rows
are repeated.
Target: well over 1,000 texts/s for tweet-length texts.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from elshi.nlp import language  # noqa: E402


def load_texts(n: int) -> list[str]:
    """Return n tweet-length texts, mixing real tweets with the hand-written hard cases."""
    hard: list[str] = []
    for path in sorted((ROOT / "tests" / "fixtures" / "nlp").glob("langid_*.csv")):
        with path.open(encoding="utf-8") as fh:
            hard.extend(row["text"] for row in csv.DictReader(fh))
    data = Path(os.environ.get("ELSHI_SHARED_DATA", ROOT.parent / "shared" / "data"))
    tweets: list[str] = []
    for path in sorted((data / "ira-troll-tweets-sample" / "tweets").glob("*.csv.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            # Tweet-length texts: bare links and one-word replies would flatter the rate.
            rows = csv.DictReader(fh)
            tweets.extend(row["content"] for row in rows if len(row["content"]) >= 60)
    tweets = tweets[:: max(1, len(tweets) // n)]
    out: list[str] = []
    i = j = 0
    while len(out) < n:
        if tweets and len(out) % 4:
            out.append(tweets[i % len(tweets)])
            i += 1
        else:
            out.append(hard[j % len(hard)])
            j += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--warm", type=int, default=200)
    args = parser.parse_args()
    texts = load_texts(args.n)
    t0 = time.perf_counter()
    language.detect_batch(texts[: args.warm])
    print(f"model load + {args.warm} warm-up texts: {time.perf_counter() - t0:.2f}s")
    rates = []
    for _ in range(3):
        t0 = time.perf_counter()
        results = language.detect_batch(texts)
        rates.append(len(texts) / (time.perf_counter() - t0))
    chars = statistics.mean(len(t) for t in texts)
    langs: dict[str, int] = {}
    for r in results:
        langs[r.lang] = langs.get(r.lang, 0) + 1
    print(f"{len(texts)} texts, mean {chars:.0f} characters")
    runs = ", ".join(f"{r:.0f}" for r in rates)
    print(f"detect_batch: median {statistics.median(rates):.0f} texts/s (runs: {runs})")
    print("languages:", dict(sorted(langs.items(), key=lambda kv: -kv[1])))
    big = "Қазақстан Республикасы. " * 45000
    t0 = time.perf_counter()
    res = language.detect(big)
    print(f"1 MB text: {res.lang} in {1000 * (time.perf_counter() - t0):.1f} ms")


if __name__ == "__main__":
    main()
