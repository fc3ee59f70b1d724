"""What changed in a statement's words since its last approved version, word by word."""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, Literal

import regex

from elshi.speak.models import STATEMENT_LANGUAGES

#: Spaces, a run of letters and digits, one CJK character (they are written without spaces)
#: or any other single character (punctuation, an emoji's part).
_TOKEN = regex.compile(r"\s+|[\p{Han}\p{Hiragana}\p{Katakana}]|[\p{L}\p{M}\p{N}_]+|.", regex.DOTALL)

Kind = Literal["same", "added", "removed"]


@dataclass(frozen=True)
class Piece:
    """A run of text that is unchanged, added or removed."""

    kind: Kind
    text: str


@dataclass(frozen=True)
class Change:
    """One changed part of one language version: its headline, text or a channel's variant."""

    lang: str
    part: Literal["headline", "text", "variant"]
    channel: str
    pieces: list[Piece]


def word_diff(old: str, new: str) -> list[Piece]:
    """Return the words of `new` with what was added to and removed from `old` marked."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    pieces: list[Piece] = []

    def put(kind: Kind, words: list[str]) -> None:
        if not words:
            return
        if pieces and pieces[-1].kind == kind:
            pieces[-1] = Piece(kind, pieces[-1].text + "".join(words))
        else:
            pieces.append(Piece(kind, "".join(words)))

    for op, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            put("same", b[j1:j2])
        else:
            put("removed", a[i1:i2])
            put("added", b[j1:j2])
    return pieces


def changes(approved: list[dict[str, Any]], now: list[dict[str, Any]]) -> list[Change]:
    """Return every headline, text and channel variant that differs between the approved
    content and the content now (a version added or taken away shows whole)."""
    before = {v["lang"]: v for v in approved}
    after = {v["lang"]: v for v in now}
    out: list[Change] = []
    for lang in STATEMENT_LANGUAGES:
        old, new = before.get(lang, {}), after.get(lang, {})
        if not old and not new:
            continue
        parts: list[tuple[Literal["headline", "text", "variant"], str, str, str]] = [
            ("headline", "", old.get("headline", ""), new.get("headline", "")),
            ("text", "", old.get("text", ""), new.get("text", "")),
        ]
        old_variants, new_variants = old.get("variants") or {}, new.get("variants") or {}
        for channel in sorted(set(old_variants) | set(new_variants)):
            parts.append(
                ("variant", channel, old_variants.get(channel, ""), new_variants.get(channel, ""))
            )
        for part, channel, was, is_now in parts:
            if was != is_now:
                out.append(Change(lang, part, channel, word_diff(was, is_now)))
    return out
