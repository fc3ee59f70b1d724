"""Text helpers shared by ingest and search: normalisation, near-duplicate hashes, query terms."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from typing import Any, NamedTuple

from markupsafe import Markup, escape

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


_VOWELS = frozenset("aeiou")
#: An English possessive ("embassy's"): the "s" would otherwise be a word of its own to find.
_POSSESSIVE = re.compile(r"(?<=[A-Za-z])['’]s\b")


def stem_english(word: str) -> str:
    """Cut an English word to a prefix its inflected forms share: plurals, -ed, -ing, and a
    final y that turns into i ("embassies" and "embassy" both give "embass").

    Light on purpose: the result is searched as a prefix, so it only has to be a common start
    of the forms, never a dictionary word; a stem shorter than four letters is not cut.
    """

    def keep(stem: str) -> bool:
        return len(stem) >= _MIN_STEM and any(c in _VOWELS or c == "y" for c in stem)

    w = word
    if w.endswith(("ies", "ied")) and keep(w[:-3]):
        return w[:-3]
    sibilant = w.endswith(("sses", "ches", "shes", "xes", "zes"))  # "addresses", "churches"
    if sibilant and keep(w[:-2]):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")) and keep(w[:-1]):
        w = w[:-1]
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and keep(w[: -len(suffix)]):
            w = w[: -len(suffix)]
            if len(w) > _MIN_STEM and w[-1] == w[-2] and w[-1] not in "lsz" + "aeiou":
                w = w[:-1]  # "stopped", "planning": the doubled consonant goes too
            return w
    if w.endswith("e") and keep(w[:-1]):
        return w[:-1]  # "close" meets "closed", "closing", "closure"
    if len(w) > 1 and w.endswith("y") and w[-2] not in _VOWELS and keep(w[:-1]):
        return w[:-1]
    return w


class Term(NamedTuple):
    """One search term: a word, a prefix (stemmed word) or a phrase of CJK characters."""

    text: str
    kind: str  # "word" | "prefix" | "phrase"


def query_terms(query: str) -> list[Term]:
    """Split a user query into terms; inflected kk/ru/en words become stem prefixes."""
    terms: list[Term] = []
    query = _POSSESSIVE.sub("", unicodedata.normalize("NFKC", query))
    for token in _TOKEN.findall(query.casefold()):
        if _CJK_ANY.search(token):
            terms.append(Term(" ".join(index_text(token).split()), "phrase"))
            continue
        base = stem_english(token) if token.isascii() and token.isalpha() else stem(token)
        kind = "prefix" if (base != token or len(token) >= _MIN_STEM) else "word"
        terms.append(Term(base, kind))
    return terms


def highlight_spans(text: str, terms: list[Term]) -> list[tuple[int, int]]:
    """Return the (start, end) spans of a text that a search's terms matched, in order and not
    overlapping: whole words for words, words starting with a prefix, and CJK phrases."""
    if not text or not terms:
        return []
    parts = []
    for t in terms:
        if t.kind == "phrase":
            parts.append(re.escape(t.text.replace(" ", "")))
        elif t.kind == "prefix":
            parts.append(r"(?<![^\W_])" + re.escape(t.text) + r"[^\W_]*")
        else:
            parts.append(r"(?<![^\W_])" + re.escape(t.text) + r"(?![^\W_])")
    pattern = re.compile("|".join(parts), re.IGNORECASE)
    folded = unicodedata.normalize("NFKC", text)
    if len(folded) != len(text):  # spans must point into the text as shown
        folded = text
    return [m.span() for m in pattern.finditer(folded) if m.end() > m.start()]


def highlight(text: str | None, terms: list[Term]) -> str:
    """Return a text as HTML (escaped) with the search's matches in <mark>."""
    text = text or ""
    out: list[str] = []
    at = 0
    for start, end in highlight_spans(text, terms):
        out.append(escape(text[at:start]))
        out.append(f"<mark>{escape(text[start:end])}</mark>")
        at = end
    out.append(escape(text[at:]))
    return "".join(out)


def marker(query: str) -> Callable[[str | None], Markup]:
    """Return a function that shows a text as HTML with this search's matches marked."""
    terms = query_terms(query)
    return lambda text: Markup(highlight(text, terms))


# UTF-8 read as Windows-1252 (old CSV exports): a UTF-8 lead byte (Â..ô) followed by a
# continuation byte (0x80..0xBF), as cp1252 shows it: "ÐŸÑ€Ð¸", "Ã©", "ä½ å¥½".
_CP1252_HIGH = "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ"
_MOJIBAKE = re.compile(f"[\u00c2-\u00f4][\u0080-\u00bf{_CP1252_HIGH}]")
_TO_CP1252 = {ch: bytes([b]) for ch, b in ((bytes([b]).decode("cp1252", "ignore"), b)
              for b in range(0x80, 0xA0)) if ch}  # fmt: skip


def fix_mojibake(text: str) -> str:
    """Return text with UTF-8 that was decoded as Windows-1252 or Latin-1 decoded right.

    Only a text that is all such mojibake is repaired (its characters re-encoded must form
    valid UTF-8 with at least one multi-byte character); any other text is returned as is."""
    if not text or text.isascii() or not _MOJIBAKE.search(text):
        return text
    raw = bytearray()
    for ch in text:
        code = ord(ch)
        if code < 0x100:
            raw.append(code)
        elif (byte := _TO_CP1252.get(ch)) is not None:
            raw += byte
        else:
            return text
    try:
        fixed = raw.decode("utf-8")
    except UnicodeDecodeError:
        return text
    return fixed if len(fixed) < len(text) else text


def repair_post(post: Any) -> None:
    """Repair the mojibake of a mapped post's text, title and author name in place.

    Its raw record keeps what was read."""
    post.text = fix_mojibake(post.text)
    if post.title:
        post.title = fix_mojibake(post.title)
    if post.author_name:
        post.author_name = fix_mojibake(post.author_name)
