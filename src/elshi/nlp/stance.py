"""Stance toward a target: the sentiment of what a text says about a named entity.

The target is found across case endings by matching word stems ("Казахстан" finds
"Казахстана", "Қазақстан" finds "Қазақстанның"). Words near a mention count more than
words far from it, and words behind a comma, quote, bracket or a contrastive conjunction
("but", "но", "бірақ") count much less. Russian uses a model trained on entity-level
labels (RuSentNE); Kazakh uses the Kazakh sentiment model on the weighted clause of the
mention; English uses VADER and Arabic its sentence model on the clause that mentions the
target, without the mention.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from elshi.nlp.sentiment import (
    _CONTRAST,
    BREAK,
    MARK,
    PUNCT,
    WORD,
    Doc,
    Token,
    analyse_batch,
    analyse_english,
    clean_text,
    fold,
    language_key,
    load_model,
    tokenize,
)

#: How fast a word's weight falls with its distance (in tokens) from the mention.
DECAY: Final = 8.0
#: Factor per comma, quote, bracket or dash between a word and the mention.
BOUNDARY: Final = 0.5
#: Factor per contrastive conjunction between a word and the mention.
CONTRAST: Final = 0.2
#: A case ending may add at most this many letters to a stem.
MAX_SUFFIX: Final = 6
#: Only this prefix of a text is read, and at most this many mentions of a target are scored:
#: a 1 MB post costs no more than an article.
MAX_CHARS: Final = 5_000
MAX_MENTIONS: Final = 20
_STRIP_END: Final = frozenset("аеиоуыэюяіәөұүьйeaiouy")
_KK_LETTERS = re.compile(r"[әғқңөұүһіӘҒҚҢӨҰҮҺІ]")
_CYRILLIC = re.compile(r"[а-яА-ЯёЁ]")
_LATIN = re.compile(r"[a-zA-Z]")


@dataclass(frozen=True, slots=True)
class StanceResult:
    """Stance toward a target: negative, neutral, positive, or none when it is not mentioned."""

    label: str
    score: float
    evidence: list[tuple[str, float]] = field(default_factory=list)
    mentions: int = 0
    probs: dict[str, float] = field(default_factory=dict)


def guess_language(text: str) -> str:
    """Guess kk, ru or en from the script (Kazakh letters, Cyrillic, Latin); "" if unsure."""
    if _KK_LETTERS.search(text):
        return "kk"
    cyr = len(_CYRILLIC.findall(text))
    lat = len(_LATIN.findall(text))
    if cyr == 0 and lat == 0:
        return ""
    return "ru" if cyr >= lat else "en"


def _stem(word: str) -> str:
    stem = fold(word, latin=False)
    if len(stem) == 4 and stem[-1] in _STRIP_END:
        return stem[:-1]
    # Drop up to two ending letters ("Россия" -> "росс", "Европейский" -> "европейск").
    for _ in range(2):
        if len(stem) > 4 and stem[-1] in _STRIP_END:
            stem = stem[:-1]
    return stem


def target_stems(target: str | Sequence[str]) -> list[list[str]]:
    """Return, for each alias of the target, the stems of its words."""
    aliases = [target] if isinstance(target, str) else list(target)
    out: list[list[str]] = []
    for alias in aliases:
        words = [t.text for t in tokenize(clean_text(alias)) if t.kind == WORD]
        if words:
            out.append([_stem(w) for w in words])
    return out


def _matches(token: Token, stem: str) -> bool:
    if token.kind != WORD:
        return False
    word = fold(token.text, latin=False)
    if not word.startswith(stem):
        return False
    extra = len(word) - len(stem)
    limit = MAX_SUFFIX if len(stem) > 3 else 3
    return extra <= limit or word[len(stem)] in "-'’"


def find_mentions(tokens: Sequence[Token], target: str | Sequence[str]) -> list[tuple[int, int]]:
    """Return the token ranges (first, last) where the target is mentioned."""
    found: list[tuple[int, int]] = []
    taken: set[int] = set()
    for stems in sorted(target_stems(target), key=len, reverse=True):
        n = len(stems)
        for i in range(len(tokens) - n + 1):
            if i in taken:
                continue
            if all(_matches(tokens[i + k], stems[k]) for k in range(n)):
                found.append((i, i + n - 1))
                taken.update(range(i, i + n))
    return sorted(found)


def _is_sentence_end(tokens: Sequence[Token], text: str, i: int) -> bool:
    tok = tokens[i]
    if tok.kind not in (BREAK, MARK) or tok.text not in ".!?":
        return False
    if i + 1 >= len(tokens):
        return True
    nxt = text[tokens[i + 1].start]
    prev = tokens[i - 1] if i > 0 else None
    # "г." or "В. Путин": short words before a dot are abbreviations or initials.
    if tok.kind == BREAK and (prev is None or prev.kind != WORD or len(prev.text) <= 2):
        return False
    return nxt.isupper() or not nxt.isalpha()


def sentence_span(tokens: Sequence[Token], text: str, lo: int, hi: int) -> tuple[int, int]:
    """Return the token range [start, end) of the sentence holding tokens lo..hi."""
    start = 0
    for i in range(lo - 1, -1, -1):
        if _is_sentence_end(tokens, text, i):
            start = i + 1
            break
    end = len(tokens)
    for i in range(hi, len(tokens)):
        if _is_sentence_end(tokens, text, i):
            end = i + 1
            break
    return start, end


def window_weights(
    tokens: Sequence[Token], lo: int, hi: int, contrast_factor: float = CONTRAST
) -> list[float]:
    """Weigh each token by its closeness to the mention lo..hi (the mention itself gets 0)."""
    n = len(tokens)
    bounds = [0] * (n + 1)
    contrast = [0] * (n + 1)
    for i, tok in enumerate(tokens):
        bounds[i + 1] = bounds[i] + (tok.kind in (PUNCT, BREAK))
        contrast[i + 1] = contrast[i] + (tok.text in _CONTRAST)
    weights = [0.0] * n
    for i in range(n):
        if lo <= i <= hi:
            continue
        if i < lo:
            d, a, b = lo - i, i + 1, lo
        else:
            d, a, b = i - hi, hi + 1, i
        weights[i] = (
            math.exp(-(d - 1) / DECAY)
            * BOUNDARY ** (bounds[b] - bounds[a])
            * contrast_factor ** (contrast[b] - contrast[a])
        )
    return weights


def stance_doc(
    tokens: Sequence[Token], text: str, lo: int, hi: int, contrast_factor: float = CONTRAST
) -> Doc:
    """Return the document a stance model sees for one mention: its sentence, weighted."""
    start, end = sentence_span(tokens, text, lo, hi)
    sent = list(tokens[start:end])
    weights = window_weights(sent, lo - start, hi - start, contrast_factor)
    return Doc(sent, weights, (lo - start, hi - start))


def clause_text(tokens: Sequence[Token], text: str, lo: int, hi: int) -> str:
    """Return the clause around a mention, without the mention, cut at contrast and sentence."""
    start, end = sentence_span(tokens, text, lo, hi)
    left = lo
    while left > start and tokens[left - 1].text not in _CONTRAST and tokens[left - 1].text != ";":
        left -= 1
    right = hi
    while right + 1 < end and tokens[right + 1].text not in _CONTRAST:
        if tokens[right + 1].text == ";":
            break
        right += 1
    before = text[tokens[left].start : tokens[lo].start] if left < lo else ""
    after = text[tokens[hi].end : tokens[right].end] if right > hi else ""
    return f"{before} {after}".strip()


def _merge(evidence: list[list[tuple[str, float]]], size: int = 8) -> list[tuple[str, float]]:
    total: dict[str, float] = {}
    for items in evidence:
        for name, c in items:
            total[name] = total.get(name, 0.0) + c
    ranked = sorted(total.items(), key=lambda kv: -abs(kv[1]))[:size]
    return [(k, round(v, 4)) for k, v in ranked]


def stance(
    text: str | bytes,
    target: str | Sequence[str],
    lang: str | None = None,
    *,
    hf_model: str | None = None,
) -> StanceResult:
    """Return the stance of a text toward a target (a name or a list of its aliases).

    With `hf_model` (a Hugging Face sentiment classifier), that model reads the clause around
    each mention instead of the shipped models.
    """
    text = clean_text(text)[:MAX_CHARS]
    tokens = tokenize(text)
    mentions = find_mentions(tokens, target)[:MAX_MENTIONS]
    if not mentions:
        return StanceResult("none", 0.0)
    if hf_model:
        from elshi.nlp import hf

        clauses = [clause_text(tokens, text, lo, hi) or text for lo, hi in mentions]
        found = hf.sentiment(hf_model, clauses)
        probs = {k: float(np.mean([f[2][k] for f in found])) for k in hf.SENTIMENT}
        label, score = hf.decide(probs)
        return StanceResult(label, score, _merge([f[3] for f in found]), len(mentions), probs)
    code = language_key(lang) or guess_language(text)
    if code == "en":
        parts = [analyse_english(clause_text(tokens, text, lo, hi)) for lo, hi in mentions]
        score = float(np.mean([p.score for p in parts]))
        probs = {k: float(np.mean([p.probs[k] for p in parts])) for k in parts[0].probs}
        label = "positive" if score >= 0.05 else "negative" if score <= -0.05 else "neutral"
        return StanceResult(label, score, _merge([p.evidence for p in parts]), len(mentions), probs)
    if code == "ar":
        clauses = [clause_text(tokens, text, lo, hi) for lo, hi in mentions]
        parts = analyse_batch(clauses, code)
        sentence = load_model(f"sentiment-{code}")
        mean = np.mean([[p.probs[c] for c in sentence.classes] for p in parts], axis=0)
        label, score, probs = sentence.decide(mean)
        return StanceResult(label, score, _merge([p.evidence for p in parts]), len(mentions), probs)
    if code not in ("kk", "ru"):
        return StanceResult("neutral", 0.0, [], len(mentions))
    model = load_model("stance-ru" if code == "ru" else "sentiment-kk")
    # The Kazakh model never saw a target: it gets the mention's clause only.
    factor = CONTRAST if code == "ru" else 0.0
    docs = [stance_doc(tokens, text, lo, hi, factor) for lo, hi in mentions]
    results = model.analyse_docs(docs)
    probs_arr = np.mean([[r.probs[c] for c in model.classes] for r in results], axis=0)
    label, score, probs = model.decide(probs_arr)
    return StanceResult(label, score, _merge([r.evidence for r in results]), len(mentions), probs)
