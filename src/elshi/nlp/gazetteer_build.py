"""Building the shipped gazetteer data: CLDR names through Babel merged with the curated tables.

Run by `scripts/train_entities.py`; the matcher in `elshi.nlp.gazetteer` only loads the result.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from elshi.nlp.folding import _WORD, _is_abbr, fold, kk_to_latin, script_of
from elshi.nlp.gazetteer import (
    CLDR_LOCALES,
    CURATED_PATH,
    DATA_VERSION,
    DROP_ALIASES,
    LANGS,
    LEADERS_COMPILED,
    NON_STATES,
    SKIP_CODES,
    Alias,
    EntityInfo,
    _token_edges,
)


def read_curated(path: Path = CURATED_PATH) -> dict[str, list[list[str]]]:
    """Read the curated tables: "[section]" headers, "#" comments, "|"-separated rows."""
    sections: dict[str, list[list[str]]] = {}
    rows: list[list[str]] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            rows = sections.setdefault(line[1:-1], [])
        elif rows is not None:
            rows.append([c.strip() for c in line.split("|")])
    return sections


def _rows(sections: Mapping[str, list[list[str]]], name: str, width: int) -> Iterator[list[str]]:
    for row in sections.get(name, []):
        yield row + [""] * (width - len(row))


def _names(cell: str) -> list[str]:
    return [n.strip() for n in cell.split(";") if n.strip()]


def _clean_cldr(name: str, lang: str) -> list[str]:
    """Return usable aliases of a CLDR name ("Myanmar (Burma)" gives both, "&" gives "and")."""
    out: list[str] = []
    inner = re.findall(r"[（(]([^)）]+)[)）]", name)
    main = re.sub(r"\s*[（(][^)）]+[)）]", "", name).strip()
    if lang == "zh":
        return [name, main + "".join(inner)] if inner else [name]
    for n in (main, *(i for i in inner if i[:1].isupper() and not _is_abbr(i))):
        if not n:
            continue
        out.append(n)
        if lang == "en" and "&" in n:
            out.append(n.replace("&", "and"))
        if lang == "en" and n.startswith("St. "):
            out.append("Saint " + n[4:])
    return out


def build_data(
    word_counts: Mapping[str, Mapping[str, Counter[str]]] | None = None,
) -> dict[str, Any]:
    """Return the gazetteer as JSON-able data: CLDR names merged with the curated tables.

    `word_counts` maps a language to "lower" and "title" counts of folded words in real text of
    that language that started lower-case / upper-case (not at a sentence start); a single-word
    name of that language seen at least as often lower-case as capitalised is marked strict
    (capital letter required, never at the start of a sentence).
    """
    from babel import Locale

    entities: dict[str, EntityInfo] = {}
    aliases: dict[str, list[Alias]] = {}

    def add(
        eid: str, etype: str, lang: str, names: Iterable[str], display: bool = True, **info: Any
    ) -> None:
        ent = entities.get(eid)
        if ent is None:
            ent = entities[eid] = EntityInfo(eid, etype, {}, info.get("country"), info.get("role"))
            aliases[eid] = []
        seen = {(a.text, a.lang) for a in aliases[eid]}
        for name in names:
            if name in DROP_ALIASES.get(lang, set()):
                continue
            if display:
                ent.names.setdefault(lang, name)
            for text, alang in _variants(name, lang):
                if (text, alang) not in seen:
                    seen.add((text, alang))
                    aliases[eid].append(Alias(text, alang))

    curated = read_curated()
    territories = {loc: Locale.parse(loc).territories for loc in CLDR_LOCALES}
    for row in _rows(curated, "countries", 6):
        code = row[0]
        etype = "territory" if code in NON_STATES else "country"
        for lang, cell in zip(LANGS, row[1:], strict=True):
            add(f"country:{code}", etype, lang, _names(cell), display=False)
    for row in _rows(curated, "organisations", 6):
        for lang, cell in zip(LANGS, row[1:], strict=True):
            add(f"org:{row[0]}", "org", lang, _names(cell))
    for code in ("EU", "UN"):
        for loc, lang in CLDR_LOCALES.items():
            add(f"org:{code}", "org", lang, _clean_cldr(territories[loc][code], lang))
    for code in sorted(territories["en"]):
        if code in SKIP_CODES:
            continue
        if code.isdigit():
            eid, etype = f"region:{code}", "region"
        else:
            eid, etype = f"country:{code}", "territory" if code in NON_STATES else "country"
        for loc, lang in CLDR_LOCALES.items():
            name = territories[loc].get(code)
            if name:
                add(eid, etype, lang, _clean_cldr(name, lang))
    for row in _rows(curated, "cities", 8):
        code, etype, slug = row[:3]
        for lang, cell in zip(LANGS, row[3:], strict=True):
            add(f"city:{slug}", etype, lang, _names(cell), country=code)
    for row in _rows(curated, "people", 8):
        slug, country, role = row[:3]
        for lang, cell in zip(LANGS, row[3:], strict=True):
            add(f"person:{slug}", "person", lang, _names(cell), country=country, role=role)
    if word_counts is not None:
        _mark_strict(aliases, word_counts)
    return {
        "version": DATA_VERSION,
        "leaders_compiled": LEADERS_COMPILED,
        "cldr": _cldr_version(),
        "entities": [
            {
                "id": ent.id,
                "type": ent.type,
                "names": ent.names,
                **({"country": ent.country} if ent.country else {}),
                **({"role": ent.role} if ent.role else {}),
                "aliases": [
                    [a.text, a.lang, 1] if a.strict else [a.text, a.lang] for a in aliases[ent.id]
                ],
            }
            for ent in entities.values()
        ],
    }


def _cldr_version() -> str:
    import babel

    return f"CLDR via Babel {babel.__version__}"


def _variants(name: str, lang: str) -> list[tuple[str, str]]:
    """Return (alias, alias language) pairs for a name: Kazakh names also in Latin letters."""
    out = [(name, lang)]
    words = _WORD.findall(name)
    if (
        lang == "kk"
        and script_of(name) == "Cyrl"
        and not any(_is_abbr(t) for t in words)
        and not (len(words) == 1 and len(words[0]) <= 3)
    ):
        for informal in (False, True):
            out.append((kk_to_latin(name, informal), "kk-Latn"))
    return out


def _mark_strict(
    aliases: dict[str, list[Alias]], counts: Mapping[str, Mapping[str, Counter[str]]]
) -> None:
    for items in aliases.values():
        for a in items:
            if a.lang not in counts:
                continue
            lower = counts[a.lang].get("lower", Counter())
            title = counts[a.lang].get("title", Counter())
            tokens = _WORD.findall(a.text)
            if len(tokens) != 1 or _is_abbr(tokens[0]) or script_of(a.text) not in ("Cyrl", "Latn"):
                continue
            n_lower = n_title = 0
            for stem, cls in _token_edges(tokens[0], a.lang, last=True, watch=False):
                for ending in cls.direct:
                    n_lower += lower.get(stem + ending, 0)
                    n_title += title.get(stem + ending, 0)
            if n_lower >= 3 and n_lower >= n_title:
                a.strict = True
    # A word common in one language is ambiguous in the others that share its script.
    strict = {fold(a.text) for items in aliases.values() for a in items if a.strict}
    for items in aliases.values():
        for a in items:
            if fold(a.text) in strict:
                a.strict = True
