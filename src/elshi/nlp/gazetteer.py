"""Gazetteer of countries, capitals, regions, international organisations and leaders, and the
matcher that finds them (and a mission's watch list) in kk (Cyrillic and Latin), ru, en, zh and ar
text across case endings.

Country and region names come from CLDR (through Babel); capitals, organisations, leaders and
extra spellings are curated tables in `models/gazetteer_curated.txt`.
`gazetteer_build.build_data()` merges them into the shipped `models/gazetteer.json` (rebuilt by
`scripts/train_entities.py`, which also marks names that are common lower-case words in real
text as "strict"). Cyrillic and Latin text is matched over word tokens: a name's stem plus one
ending from a bounded list (Kazakh case, possessive and plural endings with their vowel-harmony
variants; Russian declension by the name's own ending; English possessive). Chinese is matched
as substrings, Arabic as words with optional و/ف/ب/ل/ك/ال prefixes. Script detection and
folding live in `elshi.nlp.folding`. Everything here is pure and thread-safe once built.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elshi.nlp.base import ProcessWide
from elshi.nlp.folding import (
    _AR_LETTERS,
    _ARABIC,
    _HAN,
    _KK_LETTERS,
    _WORD,
    _case_key,
    _fold_ar,
    _is_abbr,
    fold,
    kk_to_latin,
    script_of,
)

DATA_PATH = Path(__file__).parent / "models" / "gazetteer.json"
#: Hand-written tables (extra country names, capitals and cities, organisations, people).
CURATED_PATH = Path(__file__).parent / "models" / "gazetteer_curated.txt"
DATA_VERSION = 1
#: When the people table was compiled: offices change, so roles go stale.
LEADERS_COMPILED = "2026-11 (offices as known at the end of 2025)"

#: Surface strings never taken as a name: a match inside one of these is dropped. Chinese and
#: Arabic are matched as substrings, where short names hide inside other words.
BLOCKERS = {
    "zh": (
        *("发展中国家", "内蒙古", "內蒙古", "印度洋", "朝鲜半岛"),
        *("马里兰", "马里奥", "阿曼达", "上合作"),
    ),
    "ar": ("صلاة المغرب",),
}
#: CLDR names dropped because they are common words (or another entity's name) in that language.
DROP_ALIASES = {
    "ar": {"مالي", "عمان"},
    "en": {"Jersey", "Chad"},
    "zh": {"中非", "查德"},
}
#: CLDR codes that are not places to report.
SKIP_CODES = {"EZ", "QO", "XA", "XB", "ZZ", "001", "UN", "EU"}
#: CLDR territories that are not UN members or observer states: reported as "territory".
NON_STATES = frozenset(
    re.findall(
        r"[A-Z]{2}",
        "AC AI AQ AS AW AX BL BM BQ BV CC CK CP CQ CW CX DG EA EH FK FO GF GG GI GL GP GS GU HK "
        "HM IC IO IM JE KY MF MO MP MQ MS NC NF NU PF PM PN PR RE SH SJ SX TA TC TF TK TW UM VG "
        "VI WF XK YT",
    )
)
LANGS = ("kk", "ru", "en", "zh", "ar")
CLDR_LOCALES = {"kk": "kk", "ru": "ru", "en": "en", "zh": "zh", "zh_Hant": "zh", "ar": "ar"}

# --------------------------------------------------------------------------------------------
# Endings.
# --------------------------------------------------------------------------------------------
_KK_PLURAL = ("", "лар", "лер", "дар", "дер", "тар", "тер")
_KK_POSSESSIVE = (
    *("", "ы", "і", "сы", "сі", "ым", "ім", "м", "ың", "ің", "ң"),
    *("ымыз", "іміз", "мыз", "міз", "ыңыз", "іңіз", "ңыз", "ңіз"),
)
_KK_CASE = (
    *("", "ның", "нің", "дың", "дің", "тың", "тің", "ға", "ге", "қа", "ке", "на", "не", "а", "е"),
    *("ны", "ні", "ды", "ді", "ты", "ті", "н", "да", "де", "та", "те", "нда", "нде"),
    *("дан", "ден", "тан", "тен", "нан", "нен", "мен", "бен", "пен", "менен", "бенен", "пенен"),
    *("ымен", "імен", "дай", "дей", "тай", "тей", "ша", "ше"),
)
_KK_LOCATIVE_ADJ = ("дағы", "дегі", "тағы", "тегі", "ндағы", "ндегі")
_KK_DERIVED = ("лық", "лік", "дық", "дік", "тық", "тік")


def _kk_endings() -> set[str]:
    """Return Kazakh plural x possessive x case endings plus -дағы and -лық derivations."""
    out: set[str] = set()
    for plural in _KK_PLURAL:
        for poss in _KK_POSSESSIVE:
            for case in _KK_CASE:
                out.add(plural + poss + case)
            for loc in _KK_LOCATIVE_ADJ:
                out.add(plural + poss + loc)
    for der in _KK_DERIVED:
        for plural in _KK_PLURAL:
            for case in _KK_CASE:
                out.add(der + plural + case)
    return out


#: Russian declension by a name's ending: (suffix of the nominative, letters to cut, endings).
_RU_CLASSES: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("ия", 1, ("я", "и", "ю", "ей", "ею")),
    ("ая", 2, ("ая", "ой", "ую", "ою", "ей")),
    ("яя", 2, ("яя", "ей", "юю", "ею")),
    ("ый", 2, ("ый", "ого", "ому", "ым", "ом")),
    ("ий", 2, ("ий", "ого", "его", "ому", "ему", "им", "ым", "ом", "ем")),
    ("ой", 2, ("ой", "ого", "ому", "ым", "ом")),
    ("ое", 2, ("ое", "ого", "ому", "ым", "ом")),
    ("ее", 2, ("ее", "его", "ему", "им", "ем")),
    ("ые", 2, ("ые", "ых", "ым", "ыми")),
    ("ие", 2, ("ие", "их", "им", "ими")),
    ("ых", 0, ("",)),
    ("их", 0, ("",)),
    ("я", 1, ("я", "и", "ю", "е", "ей", "ею")),
    ("а", 1, ("а", "ы", "и", "е", "у", "ой", "ою")),
    ("й", 1, ("й", "я", "ю", "ем", "е")),
    ("ь", 1, ("ь", "и", "ью", "я", "ю", "ем", "е")),
    ("ы", 1, ("ы", "ов", "ам", "ами", "ах")),
)
_RU_INDECLINABLE = tuple("оеиуюэ")
_RU_CONSONANT = ("", "а", "у", "ом", "е", "ы", "ов", "ам", "ами", "ах")
_RU_SURNAME = ("ов", "ев", "ин", "ын")
_RU_SURNAME_EXTRA = ("ым", "ой", "ых")


# --------------------------------------------------------------------------------------------
# Data model.
# --------------------------------------------------------------------------------------------
@dataclass(slots=True)
class EntityInfo:
    """A known entity: canonical id, type, display names and (for cities and people) a country."""

    id: str
    type: str
    names: dict[str, str] = field(default_factory=dict)
    country: str | None = None
    role: str | None = None


@dataclass(slots=True)
class Alias:
    """One spelling of an entity. `lang` decides which endings it takes; strict = common word."""

    text: str
    lang: str
    strict: bool = False


@dataclass(slots=True)
class Hit:
    """One match: character span, entity index, the alias and ending that matched, and why."""

    start: int
    end: int
    ref: int
    alias: str
    ending: str
    score: float
    how: str


# --------------------------------------------------------------------------------------------
# Token matcher for Cyrillic and Latin.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Class:
    name: str
    direct: frozenset[str]
    separated: frozenset[str]


def _folded(items: Iterable[str]) -> frozenset[str]:
    return frozenset(fold(e) for e in items)


_KK_END = _folded(_kk_endings())
_KK_LAT_END = frozenset(
    fold(kk_to_latin(e, informal)) for e in _kk_endings() for informal in (False, True)
)
_EXACT = _Class("exact", frozenset({""}), frozenset())
_KK = _Class("kk", _KK_END, _KK_END - {""})
_KK_LAT = _Class("kk-Latn", _KK_LAT_END, _KK_LAT_END - {""})
_EN = _Class("en", frozenset({""}), frozenset({"s"}))
_ABBR_CYR = _Class("abbr", _KK_END, _KK_END - {""})
_ABBR_LAT = _Class("abbr", frozenset({""}), frozenset({"s"}) | (_KK_LAT_END - {""}))
_RU_CACHE: dict[tuple[str, ...], _Class] = {}
_DERIVED = tuple(fold(d) for d in _KK_DERIVED) + tuple(
    fold(kk_to_latin(d, i)) for d in _KK_DERIVED for i in (False, True)
)


def _ru_class(endings: tuple[str, ...]) -> _Class:
    cls = _RU_CACHE.get(endings)
    if cls is None:
        cls = _RU_CACHE[endings] = _Class("ru", _folded(endings), frozenset())
    return cls


def _ru_edge(key: str) -> tuple[str, _Class]:
    """Return (stem, declension class) of a folded Russian word."""
    for suffix, cut, endings in _RU_CLASSES:
        if key.endswith(suffix) and len(key) - cut >= 2:
            return key[: len(key) - cut], _ru_class(endings)
    if key.endswith(_RU_INDECLINABLE):
        return key, _EXACT
    endings = _RU_CONSONANT + (_RU_SURNAME_EXTRA if key.endswith(_RU_SURNAME) else ())
    return key, _ru_class(endings)


def _token_edges(token: str, lang: str, *, last: bool, watch: bool) -> list[tuple[str, _Class]]:
    """Return the (stem, ending class) pairs under which an alias word may appear in text."""
    key = fold(token)
    if _is_abbr(token):
        if not last:
            return [(key, _EXACT)]
        return [(key, _ABBR_CYR if script_of(token) == "Cyrl" else _ABBR_LAT)]
    if lang == "ru":
        return [_ru_edge(key)]
    if lang == "kk":
        return [(key, _KK if last else _EXACT)]
    if lang == "kk-Latn":
        return [(key, _KK_LAT if last else _EXACT)]
    if lang == "cyrl":
        edges = [_ru_edge(key)]
        if last:
            edges.append((key, _KK))
        return edges
    return [(key, _EN if last else _EXACT)]


# Case modes of an alias word.
_M_NONE, _M_ANY, _M_TITLE, _M_STRICT, _M_EXACT = range(5)


class _Node:
    __slots__ = ("children", "terminals")

    def __init__(self) -> None:
        self.children: dict[str, list[_Edge]] = {}
        self.terminals: list[tuple[int, str, bool]] = []


#: An edge of the alias trie: ending class, case mode, the word as written, the next node.
_Edge = tuple[_Class, int, str, _Node]
#: Word keys whose first trie edges are remembered before the memory is emptied.
FIRST_CACHE = 100_000


@dataclass(slots=True)
class _Tokens:
    text: str
    spans: list[tuple[int, int]]
    words: list[str]
    keys: list[str]
    seps: list[str]
    shouting: bool


def _sep(between: str) -> str | None:
    """Return how two words join: " " (space or hyphen), "." or "'" (inside a name) or None."""
    core = between.strip()
    if not core:
        return " " if between else None
    if core in ("-", "‐", "–") and len(between) <= 3:
        return " "
    if core == ".":
        return "."
    if core in ("'", "’", "ʼ") and len(between) == 1:
        return "'"
    return None


def tokenize(text: str) -> _Tokens:
    """Return the word tokens of a text with their spans, matching keys and separators."""
    spans: list[tuple[int, int]] = []
    words: list[str] = []
    for m in _WORD.finditer(text):
        spans.append(m.span())
        words.append(m.group())
    keys = [fold(w) for w in words]
    seps = [text[spans[i][1] : spans[i + 1][0]] for i in range(len(spans) - 1)]
    # Counted by C loops (map/filter) rather than a Python loop over every character.
    letters = "".join(filter(str.isalpha, text[:2000]))
    shouting = len(letters) >= 10 and sum(map(str.isupper, letters)) >= 0.5 * len(letters)
    return _Tokens(text, spans, words, keys, seps, shouting)


def _in_capitals(toks: _Tokens, i: int) -> bool:
    """Return True when a short abbreviation sits in shouted text ("HELP US NOW")."""
    if toks.shouting:
        return True
    words = toks.words

    def caps(j: int) -> bool | None:
        if j < 0 or j >= len(words):
            return None
        w = words[j]
        return len(w) >= 2 and w.isupper() and not any(c.isdigit() for c in w)

    before, after = caps(i - 1), caps(i + 1)
    return bool(before or after) and before is not False and after is not False


def sentence_initial(text: str, start: int) -> bool:
    """Return True when the word at `start` begins a sentence (or a line)."""
    i = start - 1
    while i >= 0 and (text[i].isspace() or text[i] in "\"'«»“”„‘’()[]—–-*•#@"):
        if text[i] == "\n":
            return True
        i -= 1
    return i < 0 or text[i] in ".!?…:;"


class TokenMatcher:
    """A trie over alias words; each edge accepts the word's stem plus one ending of its class."""

    def __init__(self) -> None:
        self.root = _Node()
        self.prefixes: set[str] = set()
        self.lengths: tuple[int, ...] = ()
        self._endings: set[str] = set()
        #: Ending classes whose endings are already in `_endings`.
        self._classes: set[_Class] = set()
        #: What `_first_edges` found per word key (emptied when an alias is added).
        self._first: dict[str, tuple[tuple[str, _Edge], ...]] = {}
        self.collisions: list[tuple[str, int, int]] = []

    def add(
        self, ref: int, alias: str, lang: str, *, strict: bool = False, watch: bool = False
    ) -> None:
        """Add one Cyrillic or Latin alias of entity `ref`."""
        tokens = list(_WORD.finditer(alias))
        if not tokens:
            return
        self._first.clear()
        seps = [alias[tokens[i].end() : tokens[i + 1].start()] for i in range(len(tokens) - 1)]
        paths: list[tuple[_Node, str]] = [(self.root, "")]
        for i, m in enumerate(tokens):
            word = m.group()
            last = i == len(tokens) - 1
            mode = self._mode(word, i, lang, strict=strict, watch=watch)
            sep = "" if i == 0 else _sep(seps[i - 1]) or " "
            new_paths: list[tuple[_Node, str]] = []
            for node, _ in paths:
                for stem, cls in _token_edges(word, lang, last=last, watch=watch):
                    if len(stem) < 1:
                        continue
                    child = self._edge(node, sep + stem, cls, mode, _case_key(word))
                    new_paths.append((child, stem))
                    if i == 0:
                        self.prefixes.add(stem[:2])
                    if cls not in self._classes:
                        self._classes.add(cls)
                        self._endings.update(cls.direct)
            paths = new_paths
        abbr = len(tokens) == 1 and _is_abbr(tokens[0].group())
        for node, _ in paths:
            if node.terminals and node.terminals[0][0] != ref:
                self.collisions.append((alias, node.terminals[0][0], ref))
                continue
            if not node.terminals:
                node.terminals.append((ref, alias, abbr))

    @staticmethod
    def _mode(word: str, i: int, lang: str, *, strict: bool, watch: bool) -> int:
        if _is_abbr(word):
            return _M_EXACT
        if i > 0:
            return _M_NONE
        letters = sum(1 for c in word if c.isalpha())
        if word[:1].islower():
            return _M_ANY
        if letters <= 3:
            return _M_EXACT
        if strict:
            return _M_STRICT
        if watch or (script_of(word) == "Cyrl" and letters >= 5):
            return _M_ANY
        return _M_TITLE

    @staticmethod
    def _edge(node: _Node, key: str, cls: _Class, mode: int, orig: str) -> _Node:
        edges = node.children.setdefault(key, [])
        for ecls, emode, eorig, child in edges:
            if ecls == cls and emode == mode and (mode != _M_EXACT or eorig == orig):
                return child
        child = _Node()
        edges.append((cls, mode, orig, child))
        return child

    def freeze(self) -> None:
        """Precompute the ending lengths to try; call after the last add()."""
        self.lengths = tuple(sorted({len(e) for e in self._endings if e}))

    def _splits(self, key: str) -> Iterator[tuple[str, str]]:
        yield key, ""
        for n in self.lengths:
            if n >= len(key):
                break
            ending = key[-n:]
            if ending in self._endings:
                yield key[:-n], ending

    def _first_edges(self, key: str) -> tuple[tuple[str, _Edge], ...]:
        """Return (ending, edge) for each alias a word key can start with its ending, remembered."""
        found = self._first.get(key)
        if found is None:
            children = self.root.children
            found = tuple(
                (ending, edge)
                for stem, ending in self._splits(key)
                for edge in children.get(stem, ())
                if ending in edge[0].direct
            )
            if len(self._first) >= FIRST_CACHE:
                self._first.clear()
            self._first[key] = found
        return found

    def find(self, toks: _Tokens) -> list[Hit]:
        """Return the longest match starting at each word (overlaps are resolved later)."""
        hits: list[Hit] = []
        keys = toks.keys
        prefixes = self.prefixes
        for i, key in enumerate(keys):
            if key[:2] not in prefixes:
                continue
            best: tuple[int, int, tuple[int, str, bool], str] | None = None
            kazakh: bool | None = None
            for ending, (cls, mode, orig, node) in self._first_edges(key):
                if not self._case_ok(toks, i, mode, orig):
                    continue
                if cls.name == "ru":
                    # A Russian name never has Kazakh letters: "Ғана" is not "Гана".
                    if kazakh is None:
                        kazakh = bool(_KK_LETTERS.search(toks.words[i]))
                    if kazakh:
                        continue
                found = self._walk(toks, node, i, ending, cls)
                if found and (best is None or found[0] > best[0]):
                    best = found
            if best is not None:
                _, end, (ref, alias, abbr), ending = best
                hits.append(self._hit(toks, i, end, ref, alias, abbr, ending))
        return hits

    def _walk(
        self, toks: _Tokens, node: _Node, j: int, ending: str, cls: _Class
    ) -> tuple[int, int, tuple[int, str, bool], str] | None:
        """Return (last word index, end offset, terminal, ending) of the longest match."""
        best = None
        if node.terminals:
            end = toks.spans[j][1]
            last, fin = j, ending
            if ending == "" and j + 1 < len(toks.keys) and cls.separated:
                between = toks.seps[j]
                nxt = toks.keys[j + 1]
                if between in ("-", "'", "’", "ʼ", "‘") and nxt in cls.separated:
                    end, last, fin = toks.spans[j + 1][1], j + 1, between + nxt
            best = (last, end, node.terminals[0], fin)
        if node.children and j + 1 < len(toks.keys):
            sep = _sep(toks.seps[j])
            if sep is not None:
                for stem, nxt_ending in self._splits(toks.keys[j + 1]):
                    for ncls, mode, orig, child in node.children.get(sep + stem, ()):
                        if nxt_ending not in ncls.direct:
                            continue
                        if mode == _M_EXACT and not self._case_ok(toks, j + 1, mode, orig):
                            continue
                        found = self._walk(toks, child, j + 1, nxt_ending, ncls)
                        if found and (best is None or found[0] > best[0]):
                            best = found
        return best

    @staticmethod
    def _case_ok(toks: _Tokens, i: int, mode: int, orig: str) -> bool:
        word = toks.words[i]
        if mode in (_M_NONE, _M_ANY):
            return True
        if mode == _M_EXACT:
            if len(orig) <= 4 and _is_abbr(orig) and _in_capitals(toks, i):
                return False
            key = _case_key(word)
            if not key.startswith(orig):
                return False
            rest = key[len(orig) :]
            return not rest or not rest[:1].isupper() or not _is_abbr(orig)
        if not word[:1].isupper():
            return False
        if mode == _M_STRICT:
            return not sentence_initial(toks.text, toks.spans[i][0])
        return True

    @staticmethod
    def _hit(toks: _Tokens, i: int, end: int, ref: int, alias: str, abbr: bool, ending: str) -> Hit:
        start = toks.spans[i][0]
        surface = toks.text[start:end]
        bare = ending.lstrip("-'’ʼ‘")
        if ending and len(ending) < len(surface):
            ending = surface[len(surface) - len(ending) :]
        score = 0.9 if abbr else 0.95
        how = f"alias '{alias}' + ending '{ending}'"
        if bare:
            score -= 0.03
        if bare.startswith(_DERIVED):
            score = 0.75
            how += " (derived adjective)"
        if surface[:1].islower() and alias[:1].isupper():
            score -= 0.1
            how += " (lower case)"
        return Hit(start, end, ref, alias, ending, round(score, 2), how)


# --------------------------------------------------------------------------------------------
# Substring matchers for Chinese and Arabic.
# --------------------------------------------------------------------------------------------
def _trie_regex(words: Iterable[str]) -> str:
    """Return a regex alternation of literal words factored by common prefixes (longest first)."""
    trie: dict[str, Any] = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = True

    def render(node: dict[str, Any]) -> str:
        alts = []
        optional = False
        for ch in sorted(node, key=lambda c: (c == "", c)):
            if ch == "":
                optional = True
                continue
            alts.append(re.escape(ch) + render(node[ch]))
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if optional:
            return f"(?:{body})?"
        return body

    return render(trie)


class SubstringMatcher:
    """Chinese names as substrings; Arabic names as words with optional prefixes."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.table: dict[str, tuple[int, str] | None] = {}
        self.regex: re.Pattern[str] | None = None
        self.collisions: list[tuple[str, int, int]] = []

    def add(self, ref: int, alias: str) -> None:
        """Add one alias of entity `ref`."""
        keys = [alias]
        if self.script == "Arab":
            key = _fold_ar(alias)[0]
            keys = [key]
            if key.startswith("ال"):
                keys.append("ل" + key[2:])
        for key in keys:
            old = self.table.get(key)
            if old is not None and old[0] != ref:
                self.collisions.append((alias, old[0], ref))
                continue
            self.table.setdefault(key, (ref, alias))

    def block(self, text: str) -> None:
        """Never report a name inside this string."""
        key = _fold_ar(text)[0] if self.script == "Arab" else text
        self.table[key] = None

    def freeze(self) -> None:
        """Compile the regex; call after the last add()."""
        if not self.table:
            self.regex = None
            return
        body = _trie_regex(self.table)
        if self.script == "Arab":
            letters = _AR_LETTERS
            pattern = f"(?<![{letters}])((?:[وف])?(?:[بلك])?)({body})(?![{letters}])"
        else:
            pattern = f"()({body})"
        self.regex = re.compile(pattern)

    def find(self, text: str) -> list[Hit]:
        """Return non-overlapping matches, leftmost-longest."""
        if self.regex is None:
            return []
        index: list[int] | None = None
        hay = text
        if self.script == "Arab":
            hay, index = _fold_ar(text)
        hits: list[Hit] = []
        for m in self.regex.finditer(hay):
            entry = self.table.get(m.group(2))
            if entry is None:
                continue
            ref, alias = entry
            s, e = m.span()
            if index is not None:
                s, e = index[s], index[e - 1] + 1
            prefix = m.group(1)
            how = f"alias '{alias}'" + (f" + prefix '{prefix}'" if prefix else " (substring)")
            hits.append(Hit(s, e, ref, alias, prefix, 0.9, how))
        return hits


# --------------------------------------------------------------------------------------------
# Gazetteer: entities + matchers.
# --------------------------------------------------------------------------------------------
_TYPE_RANK = {"country": 0, "org": 1, "territory": 2, "region": 3, "capital": 4, "city": 5}


class Gazetteer:
    """Known entities and the matchers that find their aliases in text."""

    def __init__(
        self,
        entities: Sequence[EntityInfo],
        aliases: Sequence[Sequence[Alias]],
        *,
        watch: bool = False,
    ) -> None:
        self.entities = list(entities)
        self.by_id = {e.id: i for i, e in enumerate(self.entities)}
        self.tokens = TokenMatcher()
        self.zh = SubstringMatcher("Hani")
        self.ar = SubstringMatcher("Arab")
        order = sorted(
            range(len(self.entities)),
            key=lambda i: _TYPE_RANK.get(self.entities[i].type, 6),
        )
        for ref in order:
            for a in aliases[ref]:
                script = script_of(a.text)
                if script == "Hani":
                    self.zh.add(ref, a.text)
                elif script == "Arab":
                    self.ar.add(ref, a.text)
                else:
                    lang = a.lang
                    if watch:
                        lang = (
                            "kk"
                            if _KK_LETTERS.search(a.text)
                            else ("cyrl" if script == "Cyrl" else "en")
                        )
                    self.tokens.add(ref, a.text, lang, strict=a.strict, watch=watch)
        if not watch:
            for text in BLOCKERS["zh"]:
                self.zh.block(text)
            for text in BLOCKERS["ar"]:
                self.ar.block(text)
        self.tokens.freeze()
        self.zh.freeze()
        self.ar.freeze()

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Gazetteer:
        """Build from the JSON structure written by build_data()."""
        entities: list[EntityInfo] = []
        aliases: list[list[Alias]] = []
        for item in data["entities"]:
            entities.append(
                EntityInfo(
                    item["id"],
                    item["type"],
                    dict(item.get("names", {})),
                    item.get("country"),
                    item.get("role"),
                )
            )
            aliases.append(
                [Alias(a[0], a[1], bool(a[2]) if len(a) > 2 else False) for a in item["aliases"]]
            )
        return cls(entities, aliases)

    def find(self, text: str, toks: _Tokens | None = None) -> list[Hit]:
        """Return non-overlapping hits in text order (longest first where they overlap)."""
        hits: list[Hit] = []
        if self.tokens.prefixes:
            hits.extend(self.tokens.find(toks if toks is not None else tokenize(text)))
        if self.zh.regex is not None and _HAN.search(text):
            hits.extend(self.zh.find(text))
        if self.ar.regex is not None and _ARABIC.search(text):
            hits.extend(self.ar.find(text))
        return resolve_overlaps(hits)

    def info(self, ref: int) -> EntityInfo:
        """Return the entity behind a hit."""
        return self.entities[ref]


def resolve_overlaps(hits: list[Hit]) -> list[Hit]:
    """Keep the longest of overlapping hits (the earliest on ties), in text order."""
    if len(hits) < 2:
        return sorted(hits, key=lambda h: h.start)
    chosen: list[Hit] = []
    for h in sorted(hits, key=lambda h: (-(h.end - h.start), h.start)):
        if all(h.end <= c.start or h.start >= c.end for c in chosen):
            chosen.append(h)
    return sorted(chosen, key=lambda h: h.start)


def load_data(path: Path = DATA_PATH) -> dict[str, Any]:
    """Read the shipped gazetteer file, or build it from CLDR when it is missing."""
    if path.is_file():
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
    from elshi.nlp.gazetteer_build import build_data

    return build_data()


_default: ProcessWide[Gazetteer] = ProcessWide(lambda: Gazetteer.from_data(load_data()))


def default_gazetteer() -> Gazetteer:
    """Return the process-wide gazetteer built from the shipped file."""
    return _default.get()
