"""Benchmark entity extraction throughput on one core.

Run: python bench/entities_speed.py [--n 20000]

Texts: IRA troll tweets of 60+ characters (en and ru) and KazNERD sentences (kk), from
../shared/data or ELSHI_SHARED_DATA, interleaved with a few hand-written zh/ar/kk-Latin lines.
Three figures: the gazetteer path alone (`ner=False`, every language), the full path with the
watch list, and the Kazakh CRF path on KazNERD sentences.
Target: the gazetteer path at 3,000+ tweet-length texts/s on one core.
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

from elshi.nlp import entities  # noqa: E402

EXTRA = [
    "哈萨克斯坦总统托卡耶夫在阿斯塔纳会见了上海合作组织秘书长和联合国官员。",
    "التقى الرئيس توكاييف في أستانا بالأمين العام للأمم المتحدة لبحث التعاون مع الصين.",
    "Qazaqstannyñ Syrtqy ister ministrligi BŪU jäne ŞYŪ jūmysy turaly málimdeme jasady.",
    "Prezident Toqaev Reseimen jäne Qytaimen ekijaqty qarym-qatynasty talqylady.",
]
WATCH = [
    {
        "id": "watch:aif",
        "aliases": ["Astana International Forum", "Астана халықаралық форумы", "AIF"],
    },
    {"id": "watch:caspian", "aliases": ["Каспий", "Caspian", "Каспийское море"]},
    "миграция",
]


def load_texts(n: int) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Return n mixed (text, lang) pairs and the KazNERD sentences."""
    data = Path(os.environ.get("ELSHI_SHARED_DATA", ROOT.parent / "shared" / "data"))
    tweets: list[tuple[str, str | None]] = []
    for path in sorted((data / "ira-troll-tweets-sample" / "tweets").glob("*.csv.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if len(row["content"]) >= 60:
                    lang = {"English": "en", "Russian": "ru"}.get(row.get("language", ""))
                    tweets.append((row["content"], lang))
    tweets = tweets[:: max(1, len(tweets) // n)]
    kaz: list[str] = []
    path = data / "kaznerd" / "IOB2_valid.txt"
    if path.is_file():
        kaz = [" ".join(s.tokens) for s in entities.read_iob(path)[0]]
    out: list[tuple[str, str | None]] = []
    i = j = 0
    while len(out) < n:
        k = len(out) % 10
        if k < 6 and tweets:
            out.append(tweets[i % len(tweets)])
            i += 1
        elif k < 9 and kaz:
            out.append((kaz[j % len(kaz)], "kk"))
            j += 1
        else:
            out.append((EXTRA[len(out) % len(EXTRA)], None))
    return out, kaz


def rate(fn, items: list, runs: int = 3) -> tuple[float, list[float]]:
    """Return the median items/s of fn over items and the individual runs."""
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(items)
        rates.append(len(items) / (time.perf_counter() - t0))
    return statistics.median(rates), rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    items, kaz = load_texts(args.n)
    texts = [t for t, _ in items]
    langs = [lang for _, lang in items]
    t0 = time.perf_counter()
    entities.extract_batch(texts[:200], langs[:200], WATCH)
    print(f"load + 200 warm-up texts: {time.perf_counter() - t0:.2f}s")
    chars = statistics.mean(len(t) for t in texts)
    print(f"{len(texts)} texts, mean {chars:.0f} characters")
    med, runs = rate(lambda xs: entities.extract_batch(xs, langs, ner=False), texts)
    print(f"gazetteer only: median {med:.0f} texts/s (runs: {', '.join(f'{r:.0f}' for r in runs)})")
    med, runs = rate(lambda xs: entities.extract_batch(xs, langs, WATCH), texts, runs=1)
    found = sum(len(r) for r in entities.extract_batch(texts, langs, WATCH))
    print(f"full (watch list, CRF on kk, rules on ru): {med:.0f} texts/s; {found} entities")
    if kaz:
        sample = kaz[:2000]
        med, _ = rate(lambda xs: [entities.extract(x, "kk") for x in xs], sample, runs=1)
        print(f"Kazakh CRF path on KazNERD sentences: {med:.0f} sentences/s")
    big = "Қазақстан Республикасы мен Ресей Федерациясы. " * 22000
    t0 = time.perf_counter()
    res = entities.extract(big, "kk")
    print(f"1 MB text: {len(res)} entities in {1000 * (time.perf_counter() - t0):.0f} ms")


if __name__ == "__main__":
    main()
