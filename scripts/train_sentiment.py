"""Rebuild the shipped sentiment and stance models from the shared data and print their scores.

Run: python scripts/train_sentiment.py [--out DIR] [--only kk|ru|stance|en|ar]

Reads ../shared/data (or ELSHI_SHARED_DATA): KazSAnDRA polarity train/validation and the
3-star reviews of its score train split (Kazakh), RuSentNE-2023 train/validation (Russian),
SemEval-2017 Task 4A train / TweetEval validation (English), ArSarcasm-v2 train/validation
(Arabic). Chinese (ChnSentiCorp) is never written: its licence forbids shipping the weights.
Needs scikit-learn (the `train` extra). Output is deterministic: same data, same files.
Every figure printed is on a validation split the model was not trained on.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from elshi.nlp import sentiment_train  # noqa: E402
from elshi.nlp.sentiment import (  # noqa: E402
    LABELS,
    MODEL_FORMAT,
    Doc,
    LinearModel,
    tokenize,
)
from elshi.nlp.sentiment_train import (  # noqa: E402
    build_model,
    design_matrix,
    document_frequencies,
    f1_macro,
)
from elshi.nlp.stance import stance_doc  # noqa: E402

NEG, NEU, POS = 0, 1, 2

#: Chosen on the validation splits (grids in MODEL_CARD_sentiment.md).
KK_CONFIG: dict[str, Any] = {
    "blocks": ["c", "w"],
    "char_range": [2, 5],
    "fold_latin": True,
    "bigrams": True,
    "lexicon": "kk",
    "lexicon_masks": True,
    "raw_blocks": ["l"],
}
RU_CONFIG: dict[str, Any] = {
    "blocks": ["c", "w"],
    "char_range": [2, 5],
    "fold_latin": False,
    "bigrams": True,
    "lexicon": "ru",
    "raw_blocks": ["l"],
}
STANCE_CONFIG: dict[str, Any] = {
    "blocks": ["c", "e", "s", "w"],
    "char_range": [3, 5],
    "fold_latin": False,
    "bigrams": True,
    "lexicon": "ru",
    "raw_blocks": ["l"],
}


def shared_data() -> Path:
    """Return ../shared/data or ELSHI_SHARED_DATA."""
    return Path(os.environ.get("ELSHI_SHARED_DATA", ROOT.parent / "shared" / "data"))


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(slots=True)
class Example:
    """A labelled text; a target span for entity-level examples."""

    text: str
    label: int
    span: tuple[int, int] | None = None
    group: str = ""


def read_kazsandra(name: str, data: Path | None = None) -> list[dict[str, str]]:
    """Return the rows of one KazSAnDRA zip (e.g. "04_pc_valid.zip")."""
    path = (data or shared_data()) / "kazsandra" / name
    with zipfile.ZipFile(path) as zf:
        member = next(n for n in zf.namelist() if n.endswith(".csv"))
        with zf.open(member) as raw:
            return list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")))


def kazsandra_polarity(split: str, data: Path | None = None) -> list[Example]:
    """Return KazSAnDRA polarity examples ("train" or "valid"): 0 negative, 1 positive."""
    name = {"train": "03_pc_train_rus.zip", "valid": "04_pc_valid.zip"}[split]
    rows = read_kazsandra(name, data)
    return [
        Example(r["text"], POS if r["label"] == "1" else NEG, None, r["custom_id"]) for r in rows
    ]


def kazsandra_three_star(split: str, data: Path | None = None) -> list[Example]:
    """Return the 3-star reviews (score label 2 of 0-4) of a KazSAnDRA score split as neutral."""
    name = {"train": "08_sc_train_rus.zip", "valid": "09_sc_valid.zip"}[split]
    return [
        Example(r["text"], NEU, None, r["custom_id"])
        for r in read_kazsandra(name, data)
        if r["label"] == "2"
    ]


def rusentne(split: str, data: Path | None = None) -> list[Example]:
    """Return RuSentNE-2023 entity examples ("train" or "valid"), labels mapped to 0/1/2."""
    name = {"train": "train_data.csv", "valid": "validation_data_labeled.csv"}[split]
    path = (data or shared_data()) / "rusentne-2023" / name
    out = []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            span = (int(row["entity_pos_start_rel"]), int(row["entity_pos_end_rel"]))
            out.append(Example(row["sentence"], int(row["label"]) + 1, span, row["entity_tag"]))
    return out


def sentence_labels(examples: Sequence[Example]) -> list[Example]:
    """Collapse entity examples to one per sentence; sentences with both polarities are dropped."""
    labels: dict[str, set[int]] = {}
    for ex in examples:
        labels.setdefault(ex.text, set()).add(ex.label)
    out = []
    for text, found in labels.items():
        polar = found - {NEU}
        if len(polar) > 1:
            continue
        out.append(Example(text, polar.pop() if polar else NEU))
    return out


def entity_doc(ex: Example) -> Doc:
    """Return the stance document of an entity example (its span marks the target)."""
    assert ex.span is not None
    tokens = tokenize(ex.text)
    a, b = ex.span
    inside = [i for i, t in enumerate(tokens) if t.start < b and t.end > a]
    if not inside:
        return Doc(tokens)
    return stance_doc(tokens, ex.text, inside[0], inside[-1])


# ---------------------------------------------------------------------------------------------
# Training


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
    """Fit a logistic regression, keep the strongest features, refit on them."""
    from sklearn.linear_model import LogisticRegression

    meta = {
        "format": MODEL_FORMAT,
        "name": name,
        "classes": list(LABELS),
        "features": cfg,
        **meta,
    }
    df = document_frequencies(docs, cfg)
    keys = [k for k, v in df.items() if v >= min_df]
    model = build_model(keys, df, len(docs), meta)
    clf = LogisticRegression(C=c, max_iter=5000, class_weight="balanced", tol=1e-6)
    clf.fit(design_matrix(model, docs), y)
    if model.n_features > max_features:
        strength = np.abs(clf.coef_).max(axis=0)
        keep = np.sort(np.argsort(-strength, kind="stable")[:max_features])
        ordered = sorted(keys)
        model = build_model([ordered[j] for j in keep], df, len(docs), meta)
        clf = LogisticRegression(C=c, max_iter=5000, class_weight="balanced", tol=1e-6)
        clf.fit(design_matrix(model, docs), y)
    assert list(clf.classes_) == [NEG, NEU, POS]
    model.coef = clf.coef_.astype(np.float64)
    model.intercept = clf.intercept_.astype(np.float64)
    model.meta["training_docs"] = len(docs)
    model.meta["n_features"] = model.n_features
    return model


# ---------------------------------------------------------------------------------------------
# Scores


def predict(model: LinearModel, docs: Sequence[Doc]) -> np.ndarray:
    """Return class probabilities for documents (batched to bound memory)."""
    out = [
        model.predict_proba(model.vectorize(docs[i : i + 4096])) for i in range(0, len(docs), 4096)
    ]
    return np.vstack(out) if out else np.zeros((0, 3))


def labels_of(model: LinearModel, probs: np.ndarray) -> np.ndarray:
    """Return the labels the model's decision rule gives (argmax, then the neutral band)."""
    pred = probs.argmax(axis=1)
    score = probs[:, POS] - probs[:, NEG]
    return np.where(np.abs(score) < model.neutral_band, NEU, pred)


def polarity(probs: np.ndarray) -> np.ndarray:
    """Return the binary decision (positive vs negative) the score's sign gives."""
    return np.where(probs[:, POS] >= probs[:, NEG], POS, NEG)


def docs_of(texts: Sequence[str]) -> list[Doc]:
    """Tokenize texts as the sentence models do."""
    return [Doc(tokenize(t)) for t in texts]


# ---------------------------------------------------------------------------------------------
# The three models


def train_kk(data: Path | None = None) -> tuple[LinearModel, dict[str, float]]:
    """Train the Kazakh sentence model and return it with its validation scores."""
    train = kazsandra_polarity("train", data) + kazsandra_three_star("train", data)
    valid = kazsandra_polarity("valid", data)
    valid_neutral = kazsandra_three_star("valid", data)
    y = np.array([ex.label for ex in train])
    model = fit(
        "sentiment-kk",
        docs_of([ex.text for ex in train]),
        y,
        KK_CONFIG,
        c=0.5,
        min_df=3,
        max_features=60_000,
        meta={
            "lang": "kk",
            "neutral_band": 0.2,
            "data": "KazSAnDRA polarity train (RUS) + 3-star reviews of the score train split",
        },
    )
    pv = predict(model, docs_of([ex.text for ex in valid]))
    pn = predict(model, docs_of([ex.text for ex in valid_neutral]))
    yv = np.array([ex.label for ex in valid])
    y3 = np.concatenate([yv, np.full(len(valid_neutral), NEU)])
    scores = {
        "polarity_macro_f1": f1_macro(yv, polarity(pv), [NEG, POS]),
        "three_class_macro_f1": f1_macro(y3, labels_of(model, np.vstack([pv, pn])), [0, 1, 2]),
        "n_valid": float(len(valid)),
        "n_valid_neutral": float(len(valid_neutral)),
    }
    model.meta["validation"] = scores
    return model, scores


def train_ru(data: Path | None = None) -> tuple[LinearModel, dict[str, float]]:
    """Train the Russian sentence model (labels collapsed from RuSentNE entity labels)."""
    train_rows = rusentne("train", data)
    valid_rows = rusentne("valid", data)
    train = sentence_labels(train_rows)
    seen = {ex.text for ex in train_rows}
    # Sentences also in train (with other entities) would flatter a sentence model.
    valid = [ex for ex in sentence_labels(valid_rows) if ex.text not in seen]
    model = fit(
        "sentiment-ru",
        docs_of([ex.text for ex in train]),
        np.array([ex.label for ex in train]),
        RU_CONFIG,
        c=1.0,
        min_df=2,
        max_features=40_000,
        meta={
            "lang": "ru",
            "neutral_band": 0.0,
            "data": "RuSentNE-2023 train sentences, label collapsed from entity labels",
        },
    )
    pv = predict(model, docs_of([ex.text for ex in valid]))
    yv = np.array([ex.label for ex in valid])
    scores = {
        "sentence_macro_f1": f1_macro(yv, labels_of(model, pv), [0, 1, 2]),
        "sentence_pos_neg_f1": f1_macro(yv, labels_of(model, pv), [NEG, POS]),
        "n_valid_unseen_sentences": float(len(valid)),
    }
    model.meta["validation"] = scores
    return model, scores


def train_stance(data: Path | None = None) -> tuple[LinearModel, dict[str, float]]:
    """Train the Russian stance model on RuSentNE entity labels."""
    train = rusentne("train", data)
    valid = rusentne("valid", data)
    model = fit(
        "stance-ru",
        [entity_doc(ex) for ex in train],
        np.array([ex.label for ex in train]),
        STANCE_CONFIG,
        c=1.0,
        min_df=2,
        max_features=60_000,
        meta={"lang": "ru", "neutral_band": 0.0, "data": "RuSentNE-2023 train"},
    )
    scores = stance_scores(model, train, valid)
    model.meta["validation"] = scores
    return model, scores


def stance_scores(
    model: LinearModel, train: Sequence[Example], valid: Sequence[Example]
) -> dict[str, float]:
    """Return the RuSentNE metric (pos/neg macro-F1) overall and on unseen sentences."""
    seen = {ex.text for ex in train}
    pv = predict(model, [entity_doc(ex) for ex in valid])
    pred = labels_of(model, pv)
    yv = np.array([ex.label for ex in valid])
    unseen = np.array([ex.text not in seen for ex in valid])
    return {
        "pos_neg_macro_f1": f1_macro(yv, pred, [NEG, POS]),
        "pos_neg_macro_f1_unseen_sentences": f1_macro(yv[unseen], pred[unseen], [NEG, POS]),
        "three_class_macro_f1": f1_macro(yv, pred, [0, 1, 2]),
        "n_valid": float(len(valid)),
        "n_valid_unseen_sentences": float(unseen.sum()),
    }


#: Folders of the post-language sentiment data in the shared data.
POST_DATA = {
    "en": "sentiment-en-semeval2017",
    "ar": "sentiment-ar-arsarcasm-v2",
    "zh": "sentiment-zh-chnsenticorp",
}
POST_DATA_NOTE = {
    "en": "SemEval-2017 Task 4A train (sentiment-en-semeval2017/train.csv)",
    "ar": "ArSarcasm-v2 train (sentiment-ar-arsarcasm-v2/train.csv)",
    "zh": "ChnSentiCorp train (sentiment-zh-chnsenticorp/train.csv)",
}


def post_split(lang: str, split: str, data: Path | None = None) -> list[sentiment_train.Labelled]:
    """Return the train or validation rows of a post-language sentiment set."""
    path = (data or shared_data()) / POST_DATA[lang] / f"{split}.csv"
    return sentiment_train.read_labelled_csv(path)


def train_post_language(
    lang: str, data: Path | None = None
) -> tuple[LinearModel, dict[str, float]]:
    """Train the sentence model of en, ar or zh on its train split; score it on validation."""
    model = sentiment_train.train_language(
        lang, post_split(lang, "train", data), data=POST_DATA_NOTE[lang]
    )
    scores = sentiment_train.scores(model, post_split(lang, "validation", data))
    model.meta["validation"] = scores
    return model, scores


def train_en(data: Path | None = None) -> tuple[LinearModel, dict[str, float]]:
    """Train the English sentence model."""
    return train_post_language("en", data)


def train_ar(data: Path | None = None) -> tuple[LinearModel, dict[str, float]]:
    """Train the Arabic sentence model."""
    return train_post_language("ar", data)


TRAINERS: dict[str, Callable[[Path | None], tuple[LinearModel, dict[str, float]]]] = {
    "kk": train_kk,
    "ru": train_ru,
    "stance": train_stance,
    "en": train_en,
    "ar": train_ar,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Train the selected models, write them and print validation scores."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "elshi" / "nlp" / "models")
    parser.add_argument("--only", choices=sorted(TRAINERS), action="append")
    args = parser.parse_args(argv)
    data = shared_data()
    if not data.is_dir():
        print(f"shared data not found at {data} (set ELSHI_SHARED_DATA)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for key in args.only or list(TRAINERS):
        started = time.perf_counter()
        model, scores = TRAINERS[key](data)
        path = args.out / f"{model.meta['name']}.npz"
        model.save(path)
        took = time.perf_counter() - started
        size = path.stat().st_size / 1e6
        print(f"{model.meta['name']}: {model.n_features} features, {size:.2f} MB, {took:.0f} s")
        for metric, value in scores.items():
            print(f"  {metric}: {value:.4f}" if value < 1 else f"  {metric}: {value:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
