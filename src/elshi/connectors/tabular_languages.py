"""Language names and codes in tabular files: "Russian", "ru" and "ru-RU" all become "ru"."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

# ---------------------------------------------------------------------------- languages

_LANG_ALIASES = {
    "farsi": "fa",
    "pushto": "ps",
    "kirghiz": "ky",
    "kyrgyz": "ky",
    "filipino": "tl",
    "tagalog": "tl",
    "in": "id",
    "iw": "he",
    "ji": "yi",
    "jw": "jv",
    "kz": "kk",
    "қазақша": "kk",
    "қазақ тілі": "kk",
    "казахский": "kk",
    "русский": "ru",
    "орыс тілі": "ru",
    "english": "en",
    "ағылшын тілі": "en",
    "английский": "en",
    "chinese (simplified)": "zh",
    "chinese (traditional)": "zh",
}
#: Platform codes meaning "no language": undetermined, no linguistic content, Twitter's q-codes.
_NO_LANG = {"und", "zxx", "mul", "language undefined", "undefined", "unknown", "xx"}


@cache
def _language_names() -> dict[str, str]:
    from babel import Locale

    names: dict[str, str] = {}
    for loc in ("kk", "ru", "en"):  # later wins: English names take precedence
        for code, name in Locale.parse(loc).languages.items():
            code, name = str(code), str(name)
            if "_" in code:
                continue
            key = name.casefold()
            if key not in names or len(code) <= len(names[key]):
                names[key] = code
    codes = {str(code) for code in Locale.parse("en").languages if "_" not in str(code)}
    names.update({c: c for c in codes})
    names.update(_LANG_ALIASES)
    return names


def lang_code(value: Any) -> str | None:
    """Return a language code for a code or a name ('Russian', 'ru', 'en-GB', 'казахский')."""
    return _lang_code(value if isinstance(value, str) else str(value))


@cache
def _lang_code(text: str) -> str | None:
    key = text.strip().casefold().replace("_", "-")
    if not key or key in _NO_LANG or (len(key) == 3 and key.startswith("q")):
        return None
    names = _language_names()
    if key in names:
        return names[key]
    primary = key.split("-")[0]
    if 2 <= len(primary) <= 3 and primary in names:
        return names[primary]
    match = re.match(r"^(.*?)\s*\((.*)\)\s*$", key)
    if match:
        for part in match.groups():
            if part.strip() in names:
                return names[part.strip()]
    return None
