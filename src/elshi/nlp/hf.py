"""Optional Hugging Face backends for the enrichers (`pip install elshi[hf]`).

A user who has a model names it in a setting (ELSHI_LANGUAGE_HF_MODEL, ELSHI_SENTIMENT_HF_MODEL,
ELSHI_STANCE_HF_MODEL, ELSHI_ENTITIES_HF_MODEL, ELSHI_TRANSLATION_HF_MODEL): a local folder,
or a model id already in the local Hugging Face cache. Nothing is downloaded: models load with
`local_files_only`. Text classifiers give language codes or negative/neutral/positive labels;
token classifiers give BIO tags (B-PER, I-ORG, B-LOC, ...); translation models give text.
Sentiment explains itself by occlusion: how much the score moves when each word is left out.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

#: Tokens a model reads per text; longer texts are cut (the opening carries the story).
MAX_TOKENS = 256
#: Texts per forward pass.
BATCH = 32
#: Words tried one by one when explaining a sentiment result.
OCCLUDE_WORDS = 16
_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
SENTIMENT = ("negative", "neutral", "positive")


class HFUnavailable(RuntimeError):
    """torch/transformers are not installed, or the named model is not on this machine."""


def _import() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise HFUnavailable(
            f"a Hugging Face model was configured but {exc.name} is not installed "
            "(pip install 'elshi[hf]')"
        ) from exc
    return torch, transformers


@dataclass
class Loaded:
    """A tokenizer and model, with a lock serialising calls into them."""

    name: str
    tokenizer: Any
    model: Any
    labels: list[str]
    lock: threading.Lock


@cache
def load(name: str, kind: str) -> Loaded:
    """Load a text ("sequence") or token ("token") classifier, or a translation model
    ("seq2seq"), once per process, offline."""
    torch, transformers = _import()
    auto = {
        "token": transformers.AutoModelForTokenClassification,
        "seq2seq": transformers.AutoModelForSeq2SeqLM,
    }.get(kind, transformers.AutoModelForSequenceClassification)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(name, local_files_only=True)
        model = auto.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise HFUnavailable(f"cannot load Hugging Face model {name!r} offline: {exc}") from exc
    model.eval()
    torch.set_grad_enabled(False)
    id2label = model.config.id2label or {}
    labels = [str(id2label.get(i, f"LABEL_{i}")) for i in range(model.config.num_labels)]
    return Loaded(name, tokenizer, model, labels, threading.Lock())


def _clean(text: Any) -> str:
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", "replace")
    text = "" if text is None else str(text)
    return text.encode("utf-8", "replace").decode("utf-8")[:20_000]


def classify(name: str, texts: Sequence[Any]) -> tuple[list[str], np.ndarray]:
    """Return the model's labels and an (n, labels) array of probabilities for the texts."""
    torch, _ = _import()
    m = load(name, "sequence")
    out = np.zeros((len(texts), len(m.labels)), dtype=np.float32)
    cleaned = [_clean(t) for t in texts]
    for start in range(0, len(cleaned), BATCH):
        chunk = cleaned[start : start + BATCH]
        with m.lock:
            enc = m.tokenizer(
                chunk, truncation=True, max_length=MAX_TOKENS, padding=True, return_tensors="pt"
            )
            logits = m.model(**enc).logits
            out[start : start + len(chunk)] = torch.softmax(logits, dim=-1).numpy()
    return m.labels, out


def language_code(label: str) -> str:
    """Return an ISO 639-1 code from a model label ("kk", "__label__ru", "en_XX", "Russian")."""
    low = label.strip().lower().removeprefix("__label__")
    code = re.split(r"[-_\s]", low, maxsplit=1)[0]
    names = {"kazakh": "kk", "russian": "ru", "english": "en", "chinese": "zh", "arabic": "ar"}
    return names.get(code, code)


def sentiment_index(labels: Sequence[str]) -> list[int]:
    """Return which model label is negative, neutral and positive (-1 where there is none)."""
    low = [x.lower() for x in labels]
    found = []
    for key in ("neg", "neu", "pos"):
        found.append(next((i for i, lab in enumerate(low) if lab.startswith(key)), -1))
    if found == [-1, -1, -1]:  # LABEL_0..: the usual order is negative, (neutral,) positive
        found = [0, 1, 2] if len(labels) == 3 else [0, -1, len(labels) - 1]
    return found


def sentiment_probs(labels: Sequence[str], probs: np.ndarray) -> list[dict[str, float]]:
    """Return {negative, neutral, positive} probabilities per row."""
    idx = sentiment_index(labels)
    out = []
    for row in probs:
        values = {
            name: float(row[i]) if i >= 0 else 0.0 for name, i in zip(SENTIMENT, idx, strict=True)
        }
        total = sum(values.values()) or 1.0
        out.append({k: v / total for k, v in values.items()})
    return out


def decide(probs: dict[str, float]) -> tuple[str, float]:
    """Return the label and a score in [-1, 1] (positive minus negative probability)."""
    return max(probs, key=lambda k: probs[k]), probs["positive"] - probs["negative"]


def sentiment(
    name: str, texts: Sequence[Any], *, explain: bool = True
) -> list[tuple[str, float, dict[str, float], list[tuple[str, float]]]]:
    """Return (label, score, probs, evidence) per text; evidence by leaving each word out."""
    labels, raw = classify(name, texts)
    rows = sentiment_probs(labels, raw)
    out = []
    for text, probs in zip(texts, rows, strict=True):
        label, score = decide(probs)
        evidence: list[tuple[str, float]] = []
        clean = _clean(text)
        spans = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(clean)][:OCCLUDE_WORDS]
        if explain and len(spans) > 1:
            variants = [clean[:a] + clean[b:] for a, b, _ in spans]
            _, vraw = classify(name, variants)
            for (_, _, word), vp in zip(spans, sentiment_probs(labels, vraw), strict=True):
                push = score - (vp["positive"] - vp["negative"])
                if abs(push) > 1e-4:
                    evidence.append((word.lower(), round(push, 4)))
            evidence.sort(key=lambda wc: -abs(wc[1]))
        out.append((label, score, probs, evidence[:8]))
    return out


@dataclass
class Span:
    """A named entity a token classifier found."""

    type: str
    text: str
    start: int
    end: int
    score: float
    tag: str


#: BIO tag types mapped to elshi's entity types.
TYPES = {
    "PER": "person",
    "PERSON": "person",
    "ORG": "org",
    "ORGANISATION": "org",
    "ORGANIZATION": "org",
    "LOC": "location",
    "LOCATION": "location",
    "GPE": "gpe",
}


def tag(name: str, texts: Sequence[Any]) -> list[list[Span]]:
    """Return the entity spans of each text (BIO tags joined into spans by character offsets)."""
    torch, _ = _import()
    m = load(name, "token")
    out: list[list[Span]] = []
    for text in texts:
        clean = _clean(text)
        if not clean.strip():
            out.append([])
            continue
        with m.lock:
            enc = m.tokenizer(
                clean,
                truncation=True,
                max_length=MAX_TOKENS,
                return_offsets_mapping=True,
                return_tensors="pt",
            )
            offsets = enc.pop("offset_mapping")[0].tolist()
            probs = torch.softmax(m.model(**enc).logits[0], dim=-1).numpy()
        spans: list[Span] = []
        current: Span | None = None
        for (a, b), row in zip(offsets, probs, strict=True):
            if a == b:  # special tokens
                continue
            best = int(np.argmax(row))
            label = m.labels[best]
            prefix, _, kind = label.partition("-")
            if label == "O" or not kind:
                current = None
                continue
            joins = (
                current is not None and current.tag == kind and (prefix == "I" or a == current.end)
            )
            if joins and current is not None:
                current.end = b
                current.text = clean[current.start : b]
                current.score = min(current.score, float(row[best]))
            else:
                current = Span(
                    TYPES.get(kind.upper(), kind.lower()), clean[a:b], a, b, float(row[best]), kind
                )
                spans.append(current)
        out.append(spans)
    return out


#: NLLB-200 codes of the statement languages (M2M100 models use the plain ISO codes).
NLLB = {"kk": "kaz_Cyrl", "ru": "rus_Cyrl", "en": "eng_Latn", "zh": "zho_Hans", "ar": "arb_Arab"}
#: Tokens a translation may produce per paragraph.
MAX_NEW_TOKENS = 512


def translate(name: str, text: str, *, source: str, target: str) -> str:
    """Translate text paragraph by paragraph with a local sequence-to-sequence model.

    A many-language model is told the languages the way it expects: M2M100 by its language
    ids, NLLB by its language-code tokens; a one-pair model (Marian opus-mt-kk-en, say) needs
    nothing. Blank lines between paragraphs are kept.
    """
    _import()
    m = load(name, "seq2seq")
    tokenizer = m.tokenizer
    kwargs: dict[str, Any] = {"max_new_tokens": MAX_NEW_TOKENS, "num_beams": 1}
    src, tgt = source, target
    if hasattr(tokenizer, "get_lang_id"):  # M2M100
        kwargs["forced_bos_token_id"] = tokenizer.get_lang_id(tgt)
    elif NLLB.get(tgt) in tokenizer.get_vocab():  # NLLB
        src = NLLB.get(source, source)
        kwargs["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids(NLLB[tgt])
    out = []
    for paragraph in _clean(text).split("\n\n"):
        if not paragraph.strip():
            out.append(paragraph)
            continue
        with m.lock:
            if hasattr(tokenizer, "src_lang"):
                tokenizer.src_lang = src
            enc = tokenizer(
                paragraph.strip(), truncation=True, max_length=MAX_NEW_TOKENS, return_tensors="pt"
            )
            enc.pop("token_type_ids", None)
            ids = m.model.generate(**enc, **kwargs)
            out.append(tokenizer.decode(ids[0], skip_special_tokens=True).strip())
    return "\n\n".join(out)
