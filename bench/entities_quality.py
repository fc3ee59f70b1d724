"""Kazakh entity F1 on a held-out contiguous block of KazNERD, next to the card's figure.

Run: python bench/entities_quality.py [--iterations 150] [--block 0.1]

The shipped CRF's development part is every tenth sentence of the KazNERD file, so its
sentences sit between training sentences of the same news stories and the figure is
optimistic. This script trains a CRF with the shipped settings on the first 90 % of the
file (in order) and scores it on the last 10 %, a contiguous block whose stories the
training part mostly does not hold, and prints both figures (needs python-crfsuite; reads
../shared/data or ELSHI_SHARED_DATA). The shipped model is not changed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from elshi.nlp import entities as ner  # noqa: E402


def train_script() -> object:
    """Import scripts/train_entities.py for its trainer and settings."""
    spec = importlib.util.spec_from_file_location(
        "train_entities", ROOT / "scripts" / "train_entities.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_entities"] = module
    spec.loader.exec_module(module)
    return module


def line(title: str, rep: dict) -> None:
    """Print overall, coarse and per coarse type scores."""
    o, c = rep["overall"], rep["coarse"]["overall"]
    print(f"{title}: {rep['n_sentences']} sentences")
    print(f"    all 25 types   P {o['precision']:.4f} R {o['recall']:.4f} F1 {o['f1']:.4f}")
    print(f"    coarse types   P {c['precision']:.4f} R {c['recall']:.4f} F1 {c['f1']:.4f}")
    for kind, v in sorted(rep["coarse"]["per_type"].items()):
        print(
            f"      {kind:6} P {v['precision']:.4f} R {v['recall']:.4f} F1 {v['f1']:.4f}"
            f" n={v['support']}"
        )


def main() -> int:
    """Train on the first part, score on the held-out block; print the card's figure too."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--block", type=float, default=0.1, help="Share held out at the end.")
    args = parser.parse_args()
    data = Path(os.environ.get("ELSHI_SHARED_DATA", ROOT.parent / "shared" / "data"))
    path = data / "kaznerd" / "IOB2_valid.txt"
    if not path.is_file():
        print(f"KazNERD not found at {path} (set ELSHI_SHARED_DATA)")
        return 2
    t = train_script()
    sentences, _ = ner.read_iob(path)
    _, every_tenth = ner.split_dev(sentences)
    line("shipped CRF, dev = every 10th sentence (the model card's figure)",
         ner.evaluate_sentences(every_tenth))  # fmt: skip
    cut = int(len(sentences) * (1 - args.block))
    train, block = sentences[:cut], sentences[cut:]
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "block.crfsuite"
        started = time.perf_counter()
        t.train_crf(train, model, args.iterations)  # type: ignore[attr-defined]
        took = time.perf_counter() - started
        rep = ner.evaluate_sentences(block, ner.CrfTagger(model))
    line(
        f"same settings trained on sentences 1-{cut}, scored on the last {len(block)}"
        f" (contiguous block; trained in {took:.0f} s)",
        rep,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
