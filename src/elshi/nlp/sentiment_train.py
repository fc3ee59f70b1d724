"""Training of the sentence sentiment models (needs scikit-learn, the `train` extra).

Used by scripts/train_sentiment.py to build the shipped models and by
`elshi train sentiment` for an operator's own model from a labelled CSV file. Output is
deterministic: the same data gives the same file.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from elshi.nlp.sentiment import (
    LABELS,
    MODEL_FORMAT,
    Doc,
    LinearModel,
    doc_of,
    feature_keys,
    idf_from_df,
)

NEG, NEU, POS = 0, 1, 2
LABEL_IDS = {name: k for k, name in enumerate(LABELS)}

#: Settings of the post-language models, chosen on the validation splits (see the model card).
LANG_CONFIGS: dict[str, dict[str, Any]] = {
    "en": {
        "features": {
            "blocks": ["c", "w"],
            "char_range": [2, 5],
            "bigrams": True,
            "social": True,
        },
        "c": 1.0,
        "min_df": 2,
        "max_features": 100_000,
        "neutral_band": 0.0,
    },
    "ar": {
        "features": {
            "blocks": ["c", "w"],
            "char_range": [2, 5],
            "bigrams": True,
            "social": True,
        },
        "c": 0.5,
        "min_df": 2,
        "max_features": 100_000,
        "neutral_band": 0.0,
    },
    "zh": {
        "features": {"blocks": ["c"], "char_range": [1, 4], "bigrams": False, "social": True},
        "c": 2.0,
        "min_df": 2,
        "max_features": 100_000,
        "neutral_band": 0.2,
    },
}
#: Used for a language without settings of its own (an operator's file in another language).
DEFAULT_CONFIG = LANG_CONFIGS["ar"]


@dataclass(slots=True)
class Labelled:
    """A text and its label index (0 negative, 1 neutral, 2 positive)."""

    text: str
    label: int


class DataError(ValueError):
    """A labelled file that cannot be used, with where and why."""


def read_labelled_csv(path: Path) -> list[Labelled]:
    """Read a UTF-8 CSV with columns `text` and `label` (negative / neutral / positive).

    Raises DataError naming the file and line of the first bad row."""
    try:
        fh = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    out: list[Labelled] = []
    with fh:
        try:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            if "text" not in fields or "label" not in fields:
                raise DataError(
                    f"{path}: needs a header with columns 'text' and 'label' (found {fields})"
                )
            for row in reader:
                label = (row.get("label") or "").strip().lower()
                if label not in LABEL_IDS:
                    raise DataError(
                        f"{path}, line {reader.line_num}: label {label!r} is not one of "
                        f"{', '.join(LABELS)}"
                    )
                out.append(Labelled(row.get("text") or "", LABEL_IDS[label]))
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except csv.Error as exc:
            raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    return out


def document_frequencies(docs: Sequence[Doc], cfg: dict[str, Any]) -> Counter[tuple[str, str]]:
    """Count in how many documents each (block, feature) occurs."""
    df: Counter[tuple[str, str]] = Counter()
    for doc in docs:
        df.update(feature_keys(doc, cfg))
    return df


def build_model(
    keys: Sequence[tuple[str, str]],
    df: Counter[tuple[str, str]],
    n_docs: int,
    meta: dict[str, Any],
) -> LinearModel:
    """Return an untrained model whose columns are the given features, grouped by block."""
    vocab: dict[str, dict[str, int]] = {}
    ordered = sorted(keys)
    for j, (block, key) in enumerate(ordered):
        vocab.setdefault(block, {})[key] = j
    idf = idf_from_df(np.array([df[k] for k in ordered], dtype=np.float64), n_docs)
    n_classes = len(meta["classes"])
    return LinearModel(meta, vocab, idf, np.zeros((n_classes, len(ordered))), np.zeros(n_classes))


def design_matrix(model: LinearModel, docs: Sequence[Doc]) -> Any:
    """Return the sparse matrix the model computes for documents (scipy CSR)."""
    from scipy.sparse import csr_matrix

    batch = model.vectorize(docs)
    return csr_matrix((batch.val, (batch.doc, batch.col)), shape=(len(docs), model.n_features))


def fit(
    name: str,
    docs: Sequence[Doc],
    y: np.ndarray,
    cfg: dict[str, Any],
    *,
    c: float,
    min_df: int,
    max_features: int,
    meta: dict[str, Any],
) -> LinearModel:
    """Fit a logistic regression, keep the strongest features, refit on them.

    The classes are the labels present in `y` (indices into LABELS): three, or negative and
    positive only."""
    from sklearn.linear_model import LogisticRegression

    present = sorted({int(v) for v in y})
    if NEG not in present or POS not in present:
        raise DataError("the training data needs both negative and positive examples")
    meta = {
        "format": MODEL_FORMAT,
        "name": name,
        "classes": [LABELS[k] for k in present],
        "features": cfg,
        **meta,
    }
    df = document_frequencies(docs, cfg)
    keys = [k for k, v in df.items() if v >= min_df]
    if not keys:
        raise DataError(f"no feature occurs in {min_df} or more texts: too little text to train")
    model = build_model(keys, df, len(docs), meta)
    clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced", tol=1e-4)
    clf.fit(design_matrix(model, docs), y)
    if model.n_features > max_features:
        strength = np.abs(clf.coef_).max(axis=0)
        keep = np.sort(np.argsort(-strength, kind="stable")[:max_features])
        ordered = sorted(keys)
        model = build_model([ordered[j] for j in keep], df, len(docs), meta)
        clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced", tol=1e-4)
        clf.fit(design_matrix(model, docs), y)
    assert list(clf.classes_) == present
    coef = clf.coef_.astype(np.float64)
    intercept = clf.intercept_.astype(np.float64)
    if len(present) == 2:
        # scikit-learn keeps one row for two classes (the second class's log-odds).
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    model.coef = coef
    model.intercept = intercept
    model.meta["training_docs"] = len(docs)
    model.meta["n_features"] = model.n_features
    return model


def f1_macro(y: np.ndarray, pred: np.ndarray, labels: Sequence[int]) -> float:
    """Return the mean F1 over the given labels."""
    scores = []
    for lab in labels:
        tp = float(np.sum((pred == lab) & (y == lab)))
        fp = float(np.sum((pred == lab) & (y != lab)))
        fn = float(np.sum((pred != lab) & (y == lab)))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores))


def recall_macro(y: np.ndarray, pred: np.ndarray, labels: Sequence[int]) -> float:
    """Return the mean recall over the given labels (TweetEval's sentiment metric)."""
    return float(
        np.mean([np.mean(pred[y == lab] == lab) if np.any(y == lab) else 0.0 for lab in labels])
    )


def predict_labels(model: LinearModel, texts: Sequence[str]) -> np.ndarray:
    """Return the label index (0, 1, 2) the model's decision gives each text."""
    out = []
    for r in model.analyse_docs([doc_of(t, model.cfg) for t in texts], explain=False):
        out.append(LABEL_IDS[r.label])
    return np.asarray(out, dtype=np.int64)


def train_language(
    lang: str,
    train: Sequence[Labelled],
    *,
    name: str | None = None,
    data: str = "",
    config: dict[str, Any] | None = None,
) -> LinearModel:
    """Train the sentence model of a language from labelled texts."""
    settings = config or LANG_CONFIGS.get(lang, DEFAULT_CONFIG)
    texts = [ex.text for ex in train]
    cfg = dict(settings["features"])
    docs = [doc_of(t, cfg) for t in texts]
    return fit(
        name or f"sentiment-{lang}",
        docs,
        np.array([ex.label for ex in train], dtype=np.int64),
        cfg,
        c=float(settings["c"]),
        min_df=int(settings["min_df"]),
        max_features=int(settings["max_features"]),
        meta={"lang": lang, "neutral_band": float(settings["neutral_band"]), "data": data},
    )


def scores(model: LinearModel, valid: Sequence[Labelled]) -> dict[str, float]:
    """Return macro-F1, macro-recall and F1 over positive and negative on labelled texts."""
    y = np.array([ex.label for ex in valid], dtype=np.int64)
    pred = predict_labels(model, [ex.text for ex in valid])
    labels = sorted({int(v) for v in y})
    return {
        "macro_f1": f1_macro(y, pred, labels),
        "macro_recall": recall_macro(y, pred, labels),
        "pos_neg_f1": f1_macro(y, pred, [NEG, POS]),
        "accuracy": float(np.mean(y == pred)) if len(y) else 0.0,
        "n": float(len(y)),
    }
