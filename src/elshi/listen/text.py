"""Text helpers shared by ingest and search: normalisation, near-duplicate hashes, query terms."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import NamedTuple

from elshi.nlp.folding import KK_CASE_ENDINGS

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_RT = re.compile(r"^\s*RT\s+@\w+:?\s*", re.IGNORECASE)
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
# CJK ideographs, kana and hangul: no spaces between words, so each character is a token.
_CJK = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af])")
_CJK_ANY = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)

#: Case and possessive endings of Kazakh and Russian, longest first, stripped from query words
#: so that "Қазақстанның" and "Казахстана" find every inflected form by prefix.
_ENDINGS = sorted(
    {
        # Kazakh
        *KK_CASE_ENDINGS,
        "на",
        "не",
        "а",
        "е",
        "ны",
        "ні",
        "ды",
        "ді",
        "ты",
        "ті",
        "н",
        "да",
        "де",
        "та",
        "те",
        "нда",
        "нде",
        "лар",
        "лер",
        "дар",
        "дер",
        "тар",
        "тер",
        "ы",
        "і",
        "сы",
        "сі",
        "ша",
        "ше",
        "шы",
        "ші",
        # Russian
        "ами",
        "ями",
        "ого",
        "его",
        "ому",
        "ему",
        "ыми",
        "ими",
        "ах",
        "ях",
        "ам",
        "ям",
        "ом",
        "ем",
        "ой",
        "ей",
        "ию",
        "ия",
        "ие",
        "ии",
        "ий",
        "ый",
        "ая",
        "яя",
        "ое",
        "ее",
        "ые",
        "ов",
        "ев",
        "у",
        "ю",
        "я",
        "и",
        "о",
        "ь",
    },
    key=len,
    reverse=True,
)
_MIN_STEM = 4


def normalise(text: str) -> str:
    """Return text folded for comparison: NFKC, lower case, no URLs, RT prefix or punctuation."""
    text = text or ""
    # Cheap checks first: most texts have no RT prefix and no link, and the regexes are slow.
    if text.lstrip()[:2].upper() == "RT":
        text = _RT.sub("", text)
    if "://" in text or "ww." in text or "WW." in text:
        text = _URL.sub(" ", text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return _NON_WORD.sub(" ", text.casefold()).strip()


def content_hash(text: str, title: str | None = None) -> int | None:
    """Return a 64-bit hash that equal-after-normalisation texts share; None for short texts."""
    norm = normalise(f"{title} {text}" if title else text)
    if len(norm) < 20:
        return None
    return int.from_bytes(
        hashlib.blake2b(norm.encode("utf-8"), digest_size=8).digest(), "big", signed=True
    )


def index_text(text: str | None) -> str:
    """Return text as the full-text index should see it: CJK characters split into tokens."""
    if not text:
        return ""
    if _CJK_ANY.search(text):
        return _CJK.sub(r" \1 ", text)
    return text


def stem(word: str) -> str:
    """Strip one Kazakh or Russian ending so a prefix search finds the word's other forms."""
    for ending in _ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= _MIN_STEM:
            return word[: -len(ending)]
    return word


class Term(NamedTuple):
    """One search term: a word, a prefix (stemmed word) or a phrase of CJK characters."""

    text: str
    kind: str  # "word" | "prefix" | "phrase"


def query_terms(query: str) -> list[Term]:
    """Split a user query into terms; inflected kk/ru words become stem prefixes."""
    terms: list[Term] = []
    for token in _TOKEN.findall(unicodedata.normalize("NFKC", query).casefold()):
        if _CJK_ANY.search(token):
            terms.append(Term(" ".join(index_text(token).split()), "phrase"))
            continue
        base = stem(token)
        kind = "prefix" if (base != token or len(token) >= _MIN_STEM) else "word"
        terms.append(Term(base, kind))
    return terms
