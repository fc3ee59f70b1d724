"""Countries a citizen can stay in: ISO 3166-1 codes with names in kk, ru and en.

The names are Babel's territory names (CLDR data shipped with the package, no download). A
form stores the two-letter code; the page lists the names in the reader's language, sorted in
that language's alphabet, and `resolve` also accepts a name typed in any of the languages (the
enhanced picker sends what the citizen chose from the list).
"""

from __future__ import annotations

import unicodedata
from functools import cache

import babel

#: Babel's two-letter territories that are not ISO 3166-1 countries (regions, groupings,
#: reserved codes); Kosovo's XK stays, as the consulates use it.
NOT_COUNTRIES = frozenset(
    {"AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "QO", "TA", "UN", "XA", "XB", "ZZ"}
)
LANGS = ("kk", "ru", "en")
#: The Kazakh Cyrillic alphabet in its order (the Russian one is contained in it).
CYRILLIC = "АӘБВГҒДЕЁЖЗИЙКҚЛМНҢОӨПРСТУҰҮФХҺЦЧШЩЪЫІЬЭЮЯ"


def _sort_key(name: str) -> tuple[tuple[int, int], ...]:
    """Order names as a reader of the language expects (Ә after А, Ё after Е, Å as A)."""
    out = []
    for ch in name.upper():
        if ch in CYRILLIC:
            out.append((1, CYRILLIC.index(ch)))
        else:
            base = unicodedata.normalize("NFD", ch)[0]
            out.append((0, ord(base)))
    return tuple(out)


@cache
def codes() -> frozenset[str]:
    """Return every country code a citizen may choose."""
    keys = [str(code) for code in babel.Locale("en").territories]
    return frozenset(
        code for code in keys if len(code) == 2 and code.isalpha() and code not in NOT_COUNTRIES
    )


@cache
def choices(lang: str) -> tuple[tuple[str, str], ...]:
    """Return (code, name) of every country, named in `lang` and sorted by name."""
    names = babel.Locale(lang if lang in LANGS else "en").territories
    rows = [(code, str(names.get(code, code))) for code in codes()]
    return tuple(sorted(rows, key=lambda row: _sort_key(row[1])))


def name(code: str | None, lang: str) -> str:
    """Return a country's name in `lang` (the code itself when it is not a country)."""
    return dict(choices(lang)).get((code or "").upper(), code or "")


@cache
def _by_name() -> dict[str, str]:
    return {country.casefold(): code for lang in LANGS for code, country in choices(lang)}


def resolve(text: str | None) -> str | None:
    """Return the code a form's value means (a code or a name in kk/ru/en), or None."""
    value = " ".join((text or "").split())
    if value.upper() in codes():
        return value.upper()
    return _by_name().get(value.casefold())
