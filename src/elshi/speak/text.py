"""How long a text is, the way each platform counts it.

- X counts "weighted" code points (twitter-text v3): code points in the Latin, Cyrillic,
  Arabic and other ranges below U+1100 and some punctuation weigh 1, everything else
  (Chinese, Japanese, Korean, most symbols) weighs 2; every emoji sequence weighs 2; every
  URL counts as 23; the text is NFC-normalised first. The limit is 280.
- Bluesky counts grapheme clusters (what a reader sees as one character): 300.
- Mastodon counts grapheme clusters with every URL as 23; the limit is the instance's.
- Telegram counts UTF-16 code units after entity parsing: 4,096.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

import regex

Counting = Literal["graphemes", "x_weighted", "utf16", "codepoints"]

_GRAPHEME = regex.compile(r"\X")
#: Characters that can join a grapheme cluster with a neighbour. A text without any of them
#: has one grapheme per code point, which is much quicker to count than with \X.
_JOINING = regex.compile(
    r"[\r\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}\p{GCB=Prepend}"
    r"\p{GCB=Regional_Indicator}\p{GCB=L}\p{GCB=V}\p{GCB=T}\p{GCB=LV}\p{GCB=LVT}]"
)
_URL = regex.compile(r"https?://[^\s<>\"']+", regex.IGNORECASE)
#: twitter-text v3 (scale 100): code points in these ranges weigh 1, all others 2.
_X_HEAVY = regex.compile(r"[^\u0000-\u10FF\u2000-\u200D\u2010-\u201F\u2032-\u2037]")
X_URL_LENGTH = 23
_EMOJI = regex.compile(r"\p{Extended_Pictographic}|\p{Regional_Indicator}")
_EMOJI_PART = r"\p{Extended_Pictographic}[\p{Emoji_Modifier}\uFE0F\u20E3\U000E0020-\U000E007F]*"
_EMOJI_SEQUENCE = regex.compile(
    r"\p{Regional_Indicator}{2}|" + _EMOJI_PART + r"(?:\u200D" + _EMOJI_PART + r")*"
)


def graphemes(text: str) -> int:
    """Return the number of user-perceived characters (extended grapheme clusters)."""
    if not _JOINING.search(text):
        return len(text)
    return len(_GRAPHEME.findall(text))


def _x_plain(text: str) -> int:
    """Weigh text by code point: 1 in the light ranges, 2 elsewhere."""
    return len(text) + len(_X_HEAVY.findall(text))


def _x_segment(text: str) -> int:
    if not _EMOJI.search(text):
        return _x_plain(text)
    # Every emoji sequence (a flag, a skin tone, a family joined by ZWJ) weighs 2 as a whole.
    found = _EMOJI_SEQUENCE.findall(text)
    return 2 * len(found) + _x_plain(_EMOJI_SEQUENCE.sub("", text))


def x_weighted_length(text: str) -> int:
    """Return the weighted length X uses for its 280 limit."""
    text = unicodedata.normalize("NFC", text)
    total, pos = 0, 0
    for m in _URL.finditer(text):
        total += _x_segment(text[pos : m.start()]) + X_URL_LENGTH
        pos = m.end()
    return total + _x_segment(text[pos:])


def graphemes_with_urls(text: str, url_length: int = X_URL_LENGTH) -> int:
    """Return graphemes with every URL counted as a fixed length (Mastodon)."""
    total, pos = 0, 0
    for m in _URL.finditer(text):
        total += graphemes(text[pos : m.start()]) + url_length
        pos = m.end()
    return total + graphemes(text[pos:])


def utf16_length(text: str) -> int:
    """Return the length in UTF-16 code units (Telegram)."""
    return len(text.encode("utf-16-le")) // 2


def measure(text: str, counting: Counting) -> int:
    """Return the length of a text under one counting rule."""
    if counting == "x_weighted":
        return x_weighted_length(text)
    if counting == "graphemes":
        return graphemes(text)
    if counting == "utf16":
        return utf16_length(text)
    return len(text)


@dataclass(frozen=True)
class Limit:
    """A platform's length rule: how it counts and the most it allows."""

    max: int
    counting: Counting = "graphemes"
    urls_as: int | None = None

    def length(self, text: str) -> int:
        """Return the text's length under this rule."""
        if self.counting == "graphemes" and self.urls_as is not None:
            return graphemes_with_urls(text, self.urls_as)
        return measure(text, self.counting)

    def check(self, text: str) -> LengthCheck:
        """Return the length, the limit and whether the text fits."""
        n = self.length(text)
        return LengthCheck(length=n, limit=self.max, ok=0 < n <= self.max)


@dataclass(frozen=True)
class LengthCheck:
    """The outcome of a length check."""

    length: int
    limit: int
    ok: bool

    @property
    def over(self) -> int:
        """Return by how much the text is too long (0 if it fits)."""
        return max(0, self.length - self.limit)
