"""`elshi eval`: score an NLP task on a labelled file, per language.

Readers understand the formats in ../shared/data (KazSAnDRA zipped CSV, RuSentNE TSV, KazNERD
IOB2) and a plain CSV with `text,label` and optional `lang` and `target` columns.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SENTIMENT_LABELS = {
    "-1": "negative",
    "0": "neutral",
    "1": "positive",
    "negative": "negative",
    "neutral": "neutral",
    "positive": "positive",
    "neg": "negative",
    "neu": "neutral",
    "pos": "positive",
}


class EvalError(ValueError):
    """The file cannot be evaluated; the message says what and where."""


@dataclass(slots=True)
class Example:
    """One labelled text."""

    text: str
    label: str
    lang: str | None = None
    target: str | None = None


@dataclass
class Loaded:
    """Examples read from a file, and the rows that could not be read (location, reason)."""

    examples: list[Example]
    skipped: list[tuple[str, str]]
    fmt: str


def _open_text(path: Path) -> tuple[str, str]:
    """Return (text, inner name) of a file, reading the first CSV/TSV inside a zip."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith((".csv", ".tsv", ".txt"))]
            if not names:
                raise EvalError(f"{path}: the zip holds no .csv, .tsv or .txt file")
            return zf.read(names[0]).decode("utf-8-sig"), names[0]
    try:
        return path.read_text(encoding="utf-8-sig"), path.name
    except UnicodeDecodeError as exc:
        raise EvalError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def read_labelled(path: Path, task: str) -> Loaded:
    """Read labelled examples for `task` from a KazSAnDRA, RuSentNE or plain CSV file."""
    if not path.exists():
        raise EvalError(f"{path}: no such file")
    raw, name = _open_text(path)
    first = raw.split("\n", 1)[0]
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    reader = csv.DictReader(io.StringIO(raw), delimiter=delimiter)
    fields = [f.strip() for f in (reader.fieldnames or [])]
    examples: list[Example] = []
    skipped: list[tuple[str, str]] = []
    lang_default: str | None
    if {"sentence", "entity", "label"} <= set(fields):
        fmt, text_col, lang_default = "rusentne", "sentence", "ru"
    elif {"text", "label"} <= set(fields):
        fmt, text_col = ("kazsandra", "text") if "custom_id" in fields else ("csv", "text")
        lang_default = "kk" if fmt == "kazsandra" else None
    else:
        raise EvalError(
            f"{path} ({name}): expected columns text,label (or RuSentNE's sentence,entity,label); "
            f"found {', '.join(fields) or 'none'}"
        )
    for row in reader:
        where = f"{name} line {reader.line_num}"
        text = (row.get(text_col) or "").strip()
        label = (row.get("label") or "").strip()
        if not text or not label:
            skipped.append((where, "empty text or label"))
            continue
        if task in ("sentiment", "stance"):
            if fmt == "kazsandra":
                label = {"0": "negative", "1": "positive"}.get(label, label)
            mapped = SENTIMENT_LABELS.get(label.lower())
            if mapped is None:
                skipped.append((where, f"label {label!r} is not a sentiment label"))
                continue
            label = mapped
        target = row.get("entity") if fmt == "rusentne" else row.get("target")
        if task == "stance" and not target:
            skipped.append((where, "no target column for stance"))
            continue
        examples.append(
            Example(text=text, label=label, lang=(row.get("lang") or lang_default), target=target)
        )
    return Loaded(examples=examples, skipped=skipped, fmt=fmt)


def report(gold: Sequence[str], pred: Sequence[str]) -> dict[str, Any]:
    """Return n, accuracy, macro-F1 (over gold labels), per-label P/R/F1 and a confusion table."""
    confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for g, p in zip(gold, pred, strict=True):
        confusion[g][p] += 1
    per: dict[str, dict[str, float]] = {}
    for label in sorted(set(gold)):
        tp = confusion[label].get(label, 0)
        support = sum(confusion[label].values())
        predicted = sum(row.get(label, 0) for row in confusion.values())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    n = len(gold)
    out: dict[str, Any] = {
        "n": n,
        "accuracy": sum(1 for g, p in zip(gold, pred, strict=True) if g == p) / n if n else 0.0,
        "macro_f1": sum(v["f1"] for v in per.values()) / len(per) if per else 0.0,
        "per_label": per,
        "confusion": {g: dict(sorted(row.items())) for g, row in sorted(confusion.items())},
    }
    polar = [per[k]["f1"] for k in ("positive", "negative") if k in per]
    if len(polar) == 2:
        out["macro_f1_pos_neg"] = sum(polar) / 2
    return out


def by_language(examples: Sequence[Example], pred: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Return a report for all examples and one per language."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[ex.lang or "und"].append(i)
    out = {"all": report([e.label for e in examples], pred)}
    if len(groups) > 1 or "all" not in groups:
        for lang, idx in sorted(groups.items()):
            out[lang] = report([examples[i].label for i in idx], [pred[i] for i in idx])
    return out


def _predict_language(examples: Sequence[Example]) -> list[str]:
    from elshi.nlp.language import detect_batch

    return [r.lang for r in detect_batch([e.text for e in examples])]


def _predict_sentiment(examples: Sequence[Example], models: Path | None = None) -> list[str]:
    from elshi.nlp.language import detect_batch
    from elshi.nlp.sentiment import analyse_batch

    texts = [e.text for e in examples]
    missing = [i for i, e in enumerate(examples) if not e.lang]
    if missing:
        found = detect_batch([texts[i] for i in missing])
        for i, r in zip(missing, found, strict=True):
            examples[i].lang = r.lang
    results = analyse_batch(texts, [e.lang for e in examples], explain=False, local_dir=models)
    if any(e.label == "neutral" for e in examples):
        return [r.label for r in results]
    # Two-class gold data (KazSAnDRA polarity): decide between the two poles.
    return [
        "positive" if r.probs.get("positive", 0.0) >= r.probs.get("negative", 0.0) else "negative"
        for r in results
    ]


def _predict_stance(examples: Sequence[Example]) -> list[str]:
    from elshi.nlp.stance import stance

    out = []
    for e in examples:
        label = stance(e.text, e.target or "", e.lang).label
        out.append("neutral" if label == "none" else label)
    return out


#: Tasks `elshi eval` can score, each a function from examples to predicted labels.
PREDICTORS: dict[str, Callable[[Sequence[Example]], list[str]]] = {
    "language": _predict_language,
    "sentiment": _predict_sentiment,
    "stance": _predict_stance,
}


def evaluate_file(
    task: str, path: Path, models: Path | None = None
) -> tuple[dict[str, dict[str, Any]], Loaded]:
    """Read `path` and score `task` on it, per language.

    `models` is the folder of operator-trained sentiment models, used as the enricher does."""
    if task not in PREDICTORS:
        raise EvalError(f"unknown task {task!r}; known: {', '.join(sorted(PREDICTORS))}")
    loaded = read_labelled(path, task)
    if not loaded.examples:
        raise EvalError(f"{path}: no usable labelled rows")
    if task == "language":
        # Gold language is the label; group by it too.
        for ex in loaded.examples:
            ex.lang = ex.label
    if task == "sentiment":
        pred = _predict_sentiment(loaded.examples, models)
    else:
        pred = PREDICTORS[task](loaded.examples)
    return by_language(loaded.examples, pred), loaded


def iter_rows(results: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (group, report) with 'all' first."""
    yield "all", results["all"]
    for k, v in results.items():
        if k != "all":
            yield k, v
