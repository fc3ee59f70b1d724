"""Rebuild the shipped gazetteer and the Kazakh entity CRF from ../shared/data; print dev scores.

Usage: python scripts/train_entities.py [--eval-only] [--iterations 150]

Data path: ELSHI_SHARED_DATA or ../shared/data. Deterministic: the gazetteer comes from Babel's
CLDR data plus the curated tables in `elshi/nlp/models/gazetteer_curated.txt`; single-word names
that real text of their language (kk: KazNERD, UD Kazakh-KTB train; ru: RuSentNE train,
telegram-ru-news; en: IRA tweets) uses at least as often in lower case as capitalised are marked
strict. The CRF is trained on KazNERD `IOB2_valid.txt` (the only
KazNERD file here) split 90/10 by sentence index: every tenth sentence is the development part,
which is never trained on. Hyperparameters are fixed in advance (no tuning on the dev part).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from elshi.nlp import entities as ner  # noqa: E402
from elshi.nlp import folding, gazetteer_build  # noqa: E402
from elshi.nlp import gazetteer as gz  # noqa: E402

CRF_PARAMS = {
    "c1": 0.1,
    "c2": 0.05,
    "feature.possible_transitions": True,
    "feature.minfreq": 1,
}


def data_dir() -> Path:
    """Return ../shared/data or ELSHI_SHARED_DATA."""
    return Path(os.environ.get("ELSHI_SHARED_DATA", ROOT.parent / "shared" / "data"))


def corpus_texts(data: Path) -> dict[str, list[str]]:
    """Return real running text per language for the lower-case/capitalised word counts."""
    texts: dict[str, list[str]] = {"kk": [], "ru": [], "en": []}
    kaz = data / "kaznerd" / "IOB2_valid.txt"
    if kaz.is_file():
        sents, _ = ner.read_iob(kaz)
        texts["kk"].extend(" ".join(s.tokens) for s in sents)
    ud = data / "ud-kazakh-ktb" / "kk_ktb-ud-train.conllu"
    if ud.is_file():
        for line in ud.read_text(encoding="utf-8").splitlines():
            if line.startswith("# text = "):
                texts["kk"].append(line[9:])
    rus = data / "rusentne-2023" / "train_data.csv"
    if rus.is_file():
        with rus.open(encoding="utf-8") as fh:
            texts["ru"].extend(
                dict.fromkeys(r["sentence"] for r in csv.DictReader(fh, delimiter="\t"))
            )
    for path in sorted((data / "telegram-ru-news").glob("*_messages.json")):
        texts["ru"].extend(
            m.get("text") or "" for m in json.loads(path.read_text(encoding="utf-8"))
        )
    for path in sorted((data / "ira-troll-tweets-sample" / "tweets").glob("*.csv.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row.get("language") == "English":
                    texts["en"].append(row.get("content") or "")
    return texts


def word_counts(texts: dict[str, list[str]]) -> dict[str, dict[str, Counter[str]]]:
    """Count, per language, folded words that start lower-case and capitalised ones that do not
    start a sentence."""
    out: dict[str, dict[str, Counter[str]]] = {}
    for lang, items in texts.items():
        lower: Counter[str] = Counter()
        title: Counter[str] = Counter()
        for text in items:
            for m in folding._WORD.finditer(text):
                word = m.group()
                if word[:1].islower():
                    lower[folding.fold(word)] += 1
                elif word[:1].isupper() and not gz.sentence_initial(text, m.start()):
                    title[folding.fold(word)] += 1
        out[lang] = {"lower": lower, "title": title}
    return out


def write_gazetteer(data: dict, path: Path) -> None:
    """Write the gazetteer JSON with one entity per line (small, stable diffs)."""
    head = {k: v for k, v in data.items() if k != "entities"}
    lines = [json.dumps(head, ensure_ascii=False)[:-1] + ', "entities": [']
    body = [json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in data["entities"]]
    lines.append(",\n".join(body))
    lines.append("]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def train_crf(train: list[ner.IobSentence], out: Path, iterations: int) -> None:
    """Train the CRF on gold-tokenised sentences with gazetteer features and save it."""
    import pycrfsuite

    gazetteer = gz.default_gazetteer()
    trainer = pycrfsuite.Trainer(verbose=False)
    for s in train:
        tags = ner.gazetteer_tags_for_tokens(s.tokens, gazetteer)
        trainer.append(ner.sentence_features(s.tokens, tags), s.labels)
    trainer.set_params({**CRF_PARAMS, "max_iterations": iterations})
    trainer.train(str(out))


def prf(v: dict) -> str:
    """Format precision, recall, F1 and support."""
    return f"P {v['precision']:.4f} R {v['recall']:.4f} F1 {v['f1']:.4f} n={v['support']}"


def print_report(title: str, rep: dict) -> None:
    """Print overall and per-type scores."""
    print(f"{title}: {rep['n_sentences']} sentences, {rep['n_tokens']} tokens")
    print(f"  all 25 types: {prf(rep['overall'])}")
    print(f"  coarse PER/ORG/GPE/LOC: {prf(rep['coarse']['overall'])}")
    for name, group in (("fine", rep["per_type"]), ("coarse", rep["coarse"]["per_type"])):
        for k, v in sorted(group.items(), key=lambda kv: -kv[1]["support"]):
            print(f"    {name:6} {k:14} {prf(v)}")


def eval_russian_rules(data: Path) -> None:
    """Print how many RuSentNE validation entity spans extract() finds on Russian sentences."""
    path = data / "rusentne-2023" / "validation_data_labeled.csv"
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    by_sentence: dict[str, list[tuple[int, int, str]]] = {}
    for r in rows:
        try:
            span = (int(r["entity_pos_start_rel"]), int(r["entity_pos_end_rel"]), r["entity_tag"])
        except (KeyError, ValueError):
            continue
        by_sentence.setdefault(r["sentence"], []).append(span)
    wanted = {"PERSON": "person", "ORGANIZATION": "org", "COUNTRY": "country"}
    found: Counter[str] = Counter()
    total: Counter[str] = Counter()
    typed: Counter[str] = Counter()
    for sentence, spans in by_sentence.items():
        ents = ner.extract(sentence, "ru")
        for s, e, tag in set(spans):
            if tag not in wanted:
                continue
            total[tag] += 1
            hit = [x for x in ents if x.start < e and s < x.end]
            if hit:
                found[tag] += 1
                kinds = {x.type for x in hit}
                if wanted[tag] in kinds or (tag == "COUNTRY" and kinds & {"country", "gpe"}):
                    typed[tag] += 1
    print(f"RuSentNE validation ({len(by_sentence)} sentences; spans are partial: recall only):")
    for tag in wanted:
        n = total[tag] or 1
        print(
            f"  {tag:13} n={total[tag]:4}  found (overlap) {found[tag] / n:.3f}"
            f"  with right type {typed[tag] / n:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--eval-only", action="store_true")
    parser.add_argument("--iterations", type=int, default=150)
    args = parser.parse_args()
    data = data_dir()
    kaz = data / "kaznerd" / "IOB2_valid.txt"
    if not kaz.is_file():
        sys.exit(f"KazNERD not found at {kaz} (set ELSHI_SHARED_DATA)")
    t0 = time.perf_counter()
    if not args.eval_only:
        counts = word_counts(corpus_texts(data))
        built = gazetteer_build.build_data(counts)
        write_gazetteer(built, gz.DATA_PATH)
        gz._default = None
        strict = sorted({a[0] for e in built["entities"] for a in e["aliases"] if len(a) > 2})
        n_alias = sum(len(e["aliases"]) for e in built["entities"])
        print(
            f"gazetteer: {len(built['entities'])} entities, {n_alias} aliases"
            f" -> {gz.DATA_PATH.name}"
        )
        print(f"  strict (common words in lower case): {', '.join(strict)}")
    g = gz.default_gazetteer()
    for alias, a, b in g.tokens.collisions + g.zh.collisions + g.ar.collisions:
        print(f"  alias {alias!r} kept for {g.entities[a].id}, not {g.entities[b].id}")
    sentences, skipped = ner.read_iob(kaz)
    train, dev = ner.split_dev(sentences)
    print(
        f"KazNERD: {len(sentences)} sentences ({len(skipped)} unreadable lines);"
        f" train {len(train)}, dev {len(dev)}"
    )
    if not args.eval_only:
        t1 = time.perf_counter()
        train_crf(train, ner.MODEL_PATH, args.iterations)
        ner._tagger = None
        size = ner.MODEL_PATH.stat().st_size
        print(
            f"CRF trained in {time.perf_counter() - t1:.0f}s"
            f" -> {ner.MODEL_PATH.name} ({size / 1e6:.1f} MB)"
        )
    print_report("KazNERD dev (every 10th sentence)", ner.evaluate_sentences(dev))
    eval_russian_rules(data)
    print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
