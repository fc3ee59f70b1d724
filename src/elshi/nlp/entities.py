"""Offline entity recognition for diplomacy: countries, capitals, organisations, leaders and a
mission's watch list in kk (Cyrillic and Latin), ru, en, zh and ar, plus people, organisations and
places beyond the gazetteer in Kazakh text (a CRF trained on KazNERD) and, with lower confidence,
capitalised names in Russian text (rules).

`extract(text, lang, watchlist)` returns `Entity` objects with a canonical id ("country:KZ",
"org:SCO", "person:tokayev", "watch:...", or "ner:<type>:<surface>" for CRF finds), the span, the
source ("gazetteer", "watchlist", "crf" or "heuristic"), a score and the reasons. The CRF model is
`models/kk_ner.crfsuite`, rebuilt by `scripts/train_entities.py`. Models load once, lazily; all
functions are thread-safe (each thread gets its own CRF tagger).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elshi.nlp.base import ProcessWide
from elshi.nlp.folding import KK_CASE_ENDINGS
from elshi.nlp.gazetteer import (
    Alias,
    EntityInfo,
    Gazetteer,
    Hit,
    default_gazetteer,
    sentence_initial,
    tokenize,
)

log = logging.getLogger(__name__)

MODEL_PATH = Path(__file__).parent / "models" / "kk_ner.crfsuite"
#: Only this prefix of a text is analysed: a 1 MB post costs no more than a long article.
MAX_CHARS = 20_000
#: The CRF and the Russian rules, slower per character, read only this prefix.
CRF_MAX_CHARS = 5_000
#: Longest sentence (in tokens) given to the CRF at once.
CRF_MAX_TOKENS = 200
#: KazNERD's fine types that extract() reports, and the coarse type each becomes.
COARSE = {
    "PERSON": "person",
    "ORGANISATION": "org",
    "GPE": "gpe",
    "LOCATION": "location",
    "FACILITY": "location",
}
#: Gazetteer types as the CRF's coarse types: a CRF find overlapping a known name of the same
#: kind is a worse copy of it ("Тоқаев Ақордада" as one person); of another kind it may be
#: a larger name around it (a ministry named after its country).
_KIND_OF = {
    "person": "person",
    "org": "org",
    "country": "gpe",
    "territory": "gpe",
    "capital": "gpe",
    "city": "gpe",
    "region": "location",
}
HEURISTIC_SCORE = {"person": 0.45, "org": 0.4, "name": 0.3}
SOURCES = ("gazetteer", "watchlist", "crf", "heuristic")

_KK_LETTERS = re.compile(r"[әғқңөұүһіӘҒҚҢӨҰҮҺІ]")
_CYR = re.compile(r"[\u0400-\u052f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_CRF_TOKEN = re.compile(r"[^\W_]+(?:[-–'’][^\W_]+)*%?|%(?:-[^\W_]+)?|\S")
_SENT_END = {".", "!", "?", "…"}
_PUNCT = re.compile(r"^[^\w\s]+$")
#: Kazakh endings stripped from the last word of a CRF find to guess its id; ambiguous short
#: endings (-да, -на, -ны) are left alone because names end in them too (Астана, Мұхтар-ды...).
_KK_ID_ENDINGS = tuple(sorted(KK_CASE_ENDINGS, key=len, reverse=True))


@dataclass(slots=True)
class Entity:
    """One entity mention: canonical id, type, surface text and span, where it came from, why."""

    id: str
    type: str
    text: str
    start: int
    end: int
    source: str
    score: float
    features: list[str] = field(default_factory=list)
    fine_type: str | None = None


# --------------------------------------------------------------------------------------------
# Watch list.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WatchTerm:
    """A mission's own term: an id, its spellings (any script) and a type to report."""

    id: str
    aliases: tuple[str, ...]
    type: str = "watch"


def _slug(text: str) -> str:
    return re.sub(r"[^\w]+", "-", text.strip().lower()).strip("-") or "term"


def _as_term(item: WatchTerm | str | Mapping[str, Any]) -> WatchTerm | None:
    if isinstance(item, WatchTerm):
        return item
    if isinstance(item, str):
        return WatchTerm(f"watch:{_slug(item)}", (item,)) if item.strip() else None
    if isinstance(item, Mapping):
        names = [item.get("name"), *(item.get("aliases") or ())]
        aliases = tuple(dict.fromkeys(str(n) for n in names if n and str(n).strip()))
        if not aliases:
            return None
        tid = str(item.get("id") or f"watch:{_slug(aliases[0])}")
        return WatchTerm(tid, aliases, str(item.get("type") or "watch"))
    return None


class Watchlist:
    """A compiled watch list. A lower-case alias matches in any case, a capitalised one needs a
    capital letter, an all-capitals one (an abbreviation) is matched exactly; all take the case
    endings of their script (Kazakh and Russian endings for Cyrillic, 's for Latin)."""

    def __init__(self, terms: Iterable[WatchTerm | str | Mapping[str, Any]]) -> None:
        self.terms: list[WatchTerm] = [t for t in map(_as_term, terms) if t is not None]
        infos = [EntityInfo(t.id, t.type, {"any": t.aliases[0]}) for t in self.terms]
        aliases = [[Alias(a, "watch") for a in t.aliases] for t in self.terms]
        self.gazetteer = Gazetteer(infos, aliases, watch=True)

    def key(self) -> tuple[tuple[str, tuple[str, ...], str], ...]:
        """Return a hashable description of the terms."""
        return tuple((t.id, t.aliases, t.type) for t in self.terms)


_watch_cache: OrderedDict[Any, Watchlist] = OrderedDict()
_watch_lock = threading.Lock()


def compile_watchlist(watchlist: Watchlist | Iterable[Any] | None) -> Watchlist | None:
    """Return a compiled watch list (cached by content, so passing the same list is cheap)."""
    if watchlist is None or isinstance(watchlist, Watchlist):
        return watchlist
    terms = [t for t in map(_as_term, watchlist) if t is not None]
    key = tuple((t.id, t.aliases, t.type) for t in terms)
    with _watch_lock:
        cached = _watch_cache.get(key)
        if cached is not None:
            _watch_cache.move_to_end(key)
            return cached
    compiled = Watchlist(terms)
    with _watch_lock:
        _watch_cache[key] = compiled
        while len(_watch_cache) > 32:
            _watch_cache.popitem(last=False)
    return compiled


# --------------------------------------------------------------------------------------------
# CRF features (shared by training, tagging and evaluation).
# --------------------------------------------------------------------------------------------
def _shape(word: str) -> str:
    out: list[str] = []
    for ch in word[:12]:
        c = "X" if ch.isupper() else "x" if ch.isalpha() else "d" if ch.isdigit() else ch
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)


def _kk_split(low: str) -> tuple[str, str]:
    for ending in _KK_ID_ENDINGS:
        if low.endswith(ending) and len(low) - len(ending) >= 3:
            return low[: -len(ending)], ending
    return low, ""


def _word_features(word: str) -> list[str]:
    low = word.lower()
    stem, ending = _kk_split(low)
    feats = [
        "w=" + low,
        "sh=" + _shape(word),
        "s2=" + low[-2:],
        "s3=" + low[-3:],
        "s4=" + low[-4:],
        "s5=" + low[-5:],
        "p2=" + low[:2],
        "p3=" + low[:3],
        "p4=" + low[:4],
        "stem=" + stem,
        "end=" + ending,
        "len=" + str(min(len(word), 12)),
    ]
    if word[:1].isupper():
        feats.append("title")
    if len(word) > 1 and word.isupper():
        feats.append("upper")
    if any(ch.isdigit() for ch in word):
        feats.append("digit")
    if "-" in word:
        feats.append("hyphen")
    if _PUNCT.match(word):
        feats.append("punct")
    return feats


def sentence_features(tokens: Sequence[str], gaz: Sequence[str] | None = None) -> list[list[str]]:
    """Return CRF features for one tokenised sentence (`gaz`: "B-country", "I-org", ... or "")."""
    base = [_word_features(t) for t in tokens]
    splits = [_kk_split(t.lower()) for t in tokens]
    short = [
        [
            "w=" + t.lower(),
            "sh=" + _shape(t),
            "s3=" + t.lower()[-3:],
            "title" if t[:1].isupper() else "lower",
        ]
        for t in tokens
    ]
    n = len(tokens)
    out: list[list[str]] = []
    for i in range(n):
        feats = ["bias", *base[i]]
        if gaz is not None and gaz[i]:
            feats.append("gaz=" + gaz[i])
            feats.append("gazt=" + gaz[i][2:])
        for off in (-2, -1, 1, 2):
            j = i + off
            if 0 <= j < n:
                feats.extend(f"{off}:{f}" for f in short[j])
                if abs(off) == 1:
                    feats.append(f"{off}:stem=" + splits[j][0])
                    feats.append(f"{off}:end=" + splits[j][1])
                    if gaz is not None and gaz[j]:
                        feats.append(f"{off}:gaz=" + gaz[j])
            elif off in (-1, 1):
                feats.append("BOS" if off < 0 else "EOS")
        if i > 0:
            feats.append("bi=" + tokens[i - 1].lower() + "|" + tokens[i].lower())
        out.append(feats)
    return out


def gazetteer_tags(
    spans: Sequence[tuple[int, int]], hits: Iterable[Hit], gazetteer: Gazetteer
) -> list[str]:
    """Return "B-type"/"I-type"/"" per token from gazetteer hits over the same text."""
    tags = [""] * len(spans)
    for h in hits:
        etype = gazetteer.info(h.ref).type
        first = True
        for i, (s, e) in enumerate(spans):
            if s >= h.start and e <= h.end:
                tags[i] = ("B-" if first else "I-") + etype
                first = False
    return tags


def tokens_with_spans(text: str) -> list[tuple[str, int, int]]:
    """Split text into KazNERD-like tokens (words with their hyphenated endings, punctuation)."""
    return [(m.group(), m.start(), m.end()) for m in _CRF_TOKEN.finditer(text)]


def _sentences(tokens: list[tuple[str, int, int]]) -> Iterator[list[tuple[str, int, int]]]:
    current: list[tuple[str, int, int]] = []
    for tok in tokens:
        current.append(tok)
        if tok[0] in _SENT_END or len(current) >= CRF_MAX_TOKENS:
            yield current
            current = []
    if current:
        yield current


def chunks(labels: Sequence[str]) -> list[tuple[str, int, int]]:
    """Return (type, first, last+1) entity chunks of an IOB2 sequence, as conlleval/seqeval do."""
    out: list[tuple[str, int, int]] = []
    start: int | None = None
    kind = ""
    for i, label in enumerate([*labels, "O"]):
        tag, _, typ = label.partition("-")
        if start is not None and (tag != "I" or typ != kind):
            out.append((kind, start, i))
            start = None
        if tag == "B" or (tag == "I" and start is None):
            start, kind = i, typ
    return out


class CrfTagger:
    """The shipped KazNERD CRF: tags tokenised Kazakh sentences (a pycrfsuite tagger per thread)."""

    def __init__(self, path: Path = MODEL_PATH) -> None:
        self.path = path
        self._local = threading.local()

    @property
    def available(self) -> bool:
        """Return True when the model file is present."""
        return self.path.is_file()

    def _tagger(self) -> Any:
        tagger = getattr(self._local, "tagger", None)
        if tagger is None:
            import pycrfsuite

            tagger = pycrfsuite.Tagger()
            tagger.open(str(self.path))
            self._local.tagger = tagger
        return tagger

    def tag(
        self, tokens: Sequence[str], gaz: Sequence[str] | None = None, *, marginals: bool = False
    ) -> tuple[list[str], list[float]]:
        """Return the label of each token and (with marginals) its probability."""
        if not tokens:
            return [], []
        tagger = self._tagger()
        labels: list[str] = list(tagger.tag(sentence_features(tokens, gaz)))
        probs = [tagger.marginal(lab, i) for i, lab in enumerate(labels)] if marginals else []
        return labels, probs

    def weights(self) -> dict[tuple[str, str], float]:
        """Return the model's weight of each (feature, label) pair (read once per process)."""
        return _weights.get(lambda: dict(self._tagger().info().state_features))

    def explain(
        self,
        feats: Sequence[Sequence[str]],
        labels: Sequence[str],
        start: int,
        end: int,
        k: int = 4,
    ) -> list[str]:
        """Return the k features that pushed tokens start..end hardest toward their labels.

        `feats` are the sentence's features (`sentence_features`), computed once per sentence.
        """
        weights = self.weights()
        scored: dict[str, float] = {}
        for i in range(start, end):
            for feat in feats[i]:
                w = weights.get((feat, labels[i]), 0.0)
                name = feat if i == start else f"{feat} (token {i - start + 1})"
                if w > 0 and w > scored.get(name, 0.0):
                    scored[name] = w
        top = sorted(scored.items(), key=lambda kv: -kv[1])[:k]
        return [f"CRF feature {name} +{w:.2f}" for name, w in top]


_tagger: ProcessWide[CrfTagger] = ProcessWide(CrfTagger)
_weights: ProcessWide[dict[tuple[str, str], float]] = ProcessWide()


def default_tagger() -> CrfTagger:
    """Return the process-wide CRF tagger over the shipped model."""
    return _tagger.get()


# --------------------------------------------------------------------------------------------
# Extraction.
# --------------------------------------------------------------------------------------------
def clean_text(text: Any) -> str:
    """Return analysable text: bytes decoded, lone surrogates replaced, long text cut."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text[: MAX_CHARS * 4]).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        return ""
    text = text[:MAX_CHARS]
    if _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return text


def _base_lang(lang: str | None, text: str) -> str:
    if lang:
        return re.split(r"[-_]", lang.strip().lower(), maxsplit=1)[0]
    if _KK_LETTERS.search(text):
        return "kk"
    if _CYR.search(text):
        return "ru"
    return "und"


def _from_hits(text: str, hits: Iterable[Hit], gazetteer: Gazetteer, source: str) -> list[Entity]:
    out = []
    for h in hits:
        info = gazetteer.info(h.ref)
        surface = text[h.start : h.end]
        out.append(Entity(info.id, info.type, surface, h.start, h.end, source, h.score, [h.how]))
    return out


def _crf_id(kind: str, surface: str) -> str:
    words = surface.lower().split()
    if words:
        words[-1] = _kk_split(words[-1])[0]
    return f"ner:{kind}:{' '.join(words)}"


def _crf_entities(text: str, gaz_hits: list[Hit], gazetteer: Gazetteer) -> list[Entity]:
    tagger = default_tagger()
    if not tagger.available:
        return []
    tokens = tokens_with_spans(text[:CRF_MAX_CHARS])
    out: list[Entity] = []
    for sent in _sentences(tokens):
        words = [t[0] for t in sent]
        spans = [(t[1], t[2]) for t in sent]
        gaz = gazetteer_tags(spans, gaz_hits, gazetteer)
        labels, probs = tagger.tag(words, gaz, marginals=True)
        feats: list[list[str]] | None = None
        for fine, a, b in chunks(labels):
            kind = COARSE.get(fine)
            if kind is None:
                continue
            start, end = spans[a][0], spans[b - 1][1]
            score = round(sum(probs[a:b]) / (b - a), 2)
            surface = text[start:end]
            why = [f"CRF B-{fine} {score:.2f}", f"KazNERD type {fine}"]
            feats = feats or sentence_features(words, gaz)
            why += tagger.explain(feats, labels, a, b)
            out.append(
                Entity(_crf_id(kind, surface), kind, surface, start, end, "crf", score, why, fine)
            )
    return out


_RU_WORD = re.compile(r"[А-ЯЁ][а-яё]+(?:-[А-ЯЁ]?[а-яё]+)*|[А-ЯЁ]{2,6}\b")
_RU_SURNAME = re.compile(
    r"(?:ов|ев|ёв|ин|ын|ский|цкий|ова|ева|ёва|ина|ына|ская|цкая|вич|енко|ян|дзе|швили)"
    r"(?:а|у|ым|ом|е|ой|ых|ы|ого|ому|им|ую)?$"
)
#: Words that start Russian sentences in capitals without being part of a name after them.
_RU_COMMON_STARTS = frozenset(
    re.findall(
        r"\S+",
        """
    в во на по с со к ко у о об от до из за для при после перед между под над как так это этот
    эта эти тот та те он она они оно мы вы я но и а или однако также кроме вчера сегодня завтра
    ранее позже позднее сейчас теперь тогда когда где если чтобы что кто все всё его ее её их там
    здесь уже еще ещё даже лишь только глава президент премьер министр председатель мэр губернатор
    директор генсек лидер посол депутат сенатор спикер канцлер король принц экс бывший новый
    новая новые напомним помимо между тем по-прежнему впрочем зато поэтому потом затем
    """,
    )
)
_RU_NAME_ENDINGS = frozenset(("а", "у", "ом", "е", "ем", "ы", "и", "ой", "ю", "ей", "я"))
_RU_NAME_BASES = ("", "а", "й", "я", "ь")
_RU_ADJECTIVE = re.compile(r"(?:ой|ый|ий|ая|яя|ое|ее|ые|ие|ого|его|ому|ему|ых|их|ым|им|ую|юю)$")
#: Common first names (nominative) in Russian-language news; matched with their case endings.
_RU_FIRST_NAMES = frozenset(
    re.findall(
        r"\S+",
        """
    александр алексей анатолий андрей антон аркадий артем артур борис вадим валентин валерий
    василий виктор виталий владимир владислав вячеслав геннадий георгий глеб григорий денис
    дмитрий евгений егор иван игорь илья кирилл константин лев леонид максим марат марк
    михаил никита николай олег павел петр роман руслан сергей станислав степан тимур федор
    филипп эдуард юрий ярослав дональд джо джозеф барак эммануэль ангела олаф борис риши
    кир реджеп ильхам нурсултан касым жомарт ерлан асет айдос бауыржан даурен ержан нурлан
    мурат ермек олжас алихан серик канат шавкат садыр эмомали сердар гурбангулы
    анна алина алла анастасия валентина вера виктория галина дарья екатерина елена елизавета
    ирина карина кристина ксения лариса любовь людмила маргарита мария марина надежда наталья
    нина оксана ольга полина светлана софья татьяна юлия яна айгерим динара дарига жанна
    """,
    )
)
_RU_ORG_WORDS = re.compile(
    r"(?:компани|корпораци|организаци|парти|банк|фонд|агентств|министерств|ведомств|"
    r"группа|групп|холдинг|завод|университет|служб|комитет|совет|союз|ассоциаци|газет|издани|"
    r"телеканал|движени|концерн|общество|ПАО|ОАО|ООО|АО|ЗАО|НКО)\w*\s*$",
    re.IGNORECASE,
)


def _ru_first_name(word: str) -> bool:
    low = word.lower().replace("ё", "е")
    if low in _RU_FIRST_NAMES:
        return True
    for n in (1, 2, 3):
        stem = low[:-n]
        if low[-n:] in _RU_NAME_ENDINGS and any(
            stem + e in _RU_FIRST_NAMES for e in _RU_NAME_BASES
        ):
            return True
    return False


def _ru_heuristic(text: str, taken: list[tuple[int, int]]) -> list[Entity]:
    """Capitalised word sequences in Russian text, typed by surname endings and context words."""
    body = text[:CRF_MAX_CHARS]
    out: list[Entity] = []
    words = list(_RU_WORD.finditer(body))
    i = 0
    while i < len(words):
        j = i
        while j + 1 < len(words) and body[words[j].end() : words[j + 1].start()] in (" ", "-"):
            j += 1
        start, end = words[i].start(), words[j].end()
        i = j + 1
        if any(start < e and s < end for s, e in taken):
            continue
        if sentence_initial(body, start):
            head = body[start:end].split(maxsplit=1)
            if len(head) == 1:
                continue
            if head[0].lower() in _RU_COMMON_STARTS:
                start += len(head[0]) + 1
        surface = body[start:end]
        count = len(surface.split())
        quoted = start > 0 and body[start - 1] in '«"'
        before = body[max(0, start - 40) : start].rstrip(' «"')
        if surface.isupper() and count == 1:
            kind, why = "org", "capitalised abbreviation"
        elif quoted or _RU_ORG_WORDS.search(before):
            kind, why = "org", "capitalised name after an organisation word or in quotes"
        elif count >= 2 and _ru_first_name(surface.split()[0]):
            kind, why = "person", "first name followed by capitalised words"
        elif count >= 2 and _RU_SURNAME.search(surface.split()[-1]):
            kind, why = "person", "capitalised words ending in a surname suffix"
        elif 2 <= count <= 4 and not _RU_ADJECTIVE.search(surface.split()[0]):
            kind, why = "person", "two or more capitalised words, the first not an adjective"
        elif count == 1 and _RU_SURNAME.search(surface) and len(surface) > 5:
            kind, why = "person", "capitalised word ending in a surname suffix"
        else:
            kind, why = "name", "capitalised word sequence"
        score = HEURISTIC_SCORE[kind]
        out.append(
            Entity(
                f"ner:{kind}:{surface.lower()}",
                kind,
                surface,
                start,
                end,
                "heuristic",
                score,
                [f"rule: {why} (lower confidence)"],
            )
        )
    return out


def extract(
    text: Any,
    lang: str | None = None,
    watchlist: Watchlist | Iterable[Any] | None = None,
    *,
    ner: bool = True,
) -> list[Entity]:
    """Return the entities mentioned in a text, in text order; never raises on bad input.

    `lang` ("kk", "ru", "en", "zh", "ar"; None guesses Kazakh vs Russian from the letters)
    decides whether the Kazakh CRF or the Russian rules run (`ner=False` turns both off);
    gazetteer names are found in every script whatever `lang` says.
    """
    try:
        return _extract(clean_text(text), lang, compile_watchlist(watchlist), ner)
    except Exception:  # a bug on one odd text must not stop a batch
        log.exception("entity extraction failed on a text of type %s", type(text).__name__)
        return []


def _extract(text: str, lang: str | None, watch: Watchlist | None, ner: bool) -> list[Entity]:
    if not text.strip():
        return []
    gazetteer = default_gazetteer()
    toks = tokenize(text)
    hits = gazetteer.find(text, toks)
    out = _from_hits(text, hits, gazetteer, "gazetteer")
    taken = [(h.start, h.end) for h in hits]
    if watch is not None and watch.terms:
        watched = watch.gazetteer.find(text, toks)
        out.extend(_from_hits(text, watched, watch.gazetteer, "watchlist"))
        taken.extend((h.start, h.end) for h in watched)
    base = _base_lang(lang, text)
    if ner and _CYR.search(text):
        if base == "kk":
            kinds = [(h.start, h.end, _KIND_OF.get(gazetteer.info(h.ref).type)) for h in hits]
            for ent in _crf_entities(text, hits, gazetteer):
                inside = any(s <= ent.start and ent.end <= e for s, e in taken)
                same = any(
                    s < ent.end and ent.start < e and kind == ent.type for s, e, kind in kinds
                )
                if not inside and not same:
                    out.append(ent)
        elif base == "ru":
            out.extend(_ru_heuristic(text, taken))
    out.sort(key=lambda e: (e.start, -(e.end - e.start), SOURCES.index(e.source)))
    return out


def extract_batch(
    texts: Iterable[Any],
    langs: Sequence[str | None] | None = None,
    watchlist: Watchlist | Iterable[Any] | None = None,
    *,
    ner: bool = True,
) -> list[list[Entity]]:
    """Return the entities of each text, in order (the watch list is compiled once)."""
    items = list(texts)
    lang_list: Sequence[str | None] = langs if langs is not None else [None] * len(items)
    watch = compile_watchlist(watchlist)
    return [
        extract(t, lang_list[i] if i < len(lang_list) else None, watch, ner=ner)
        for i, t in enumerate(items)
    ]


def describe(entity_id: str) -> EntityInfo | None:
    """Return what the gazetteer knows about an id (names per language, country, role)."""
    gazetteer = default_gazetteer()
    ref = gazetteer.by_id.get(entity_id)
    return None if ref is None else gazetteer.info(ref)


# --------------------------------------------------------------------------------------------
# Evaluation on IOB2 files.
# --------------------------------------------------------------------------------------------
@dataclass
class IobSentence:
    """One sentence of an IOB2 file: tokens, gold labels and the line it starts on."""

    tokens: list[str]
    labels: list[str]
    line: int


def read_iob(path: Path) -> tuple[list[IobSentence], list[tuple[str, str]]]:
    """Read a CoNLL/IOB2 file (token and label per line, blank line between sentences).

    Returns the sentences and the lines that could not be read as (location, reason).
    """
    from elshi.nlp.evaluate import EvalError

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise EvalError(f"{path}: cannot read ({exc.strerror or exc})") from None
    text = raw.decode("utf-8", errors="replace")
    sentences: list[IobSentence] = []
    skipped: list[tuple[str, str]] = []
    tokens: list[str] = []
    labels: list[str] = []
    start = 1
    bad = False
    for no, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("-DOCSTART-"):
            if tokens and not bad:
                sentences.append(IobSentence(tokens, labels, start))
            tokens, labels, bad, start = [], [], False, no + 1
            continue
        parts = line.split()
        label = parts[-1] if len(parts) >= 2 else ""
        if len(parts) < 2 or not re.fullmatch(r"O|[BI]-[\w.$&-]+", label):
            where = f"{Path(path).name}:{no}"
            skipped.append((where, f"expected 'token LABEL' in IOB2, got {line[:60]!r}"))
            bad = True
            continue
        tokens.append(parts[0])
        labels.append(label)
    if tokens and not bad:
        sentences.append(IobSentence(tokens, labels, start))
    if not sentences:
        raise EvalError(f"{path}: no IOB2 sentences found")
    return sentences, skipped


def split_dev(sentences: Sequence[IobSentence]) -> tuple[list[IobSentence], list[IobSentence]]:
    """Split sentences deterministically 90/10 by index: every tenth sentence is development."""
    train = [s for i, s in enumerate(sentences) if i % 10 != 9]
    dev = [s for i, s in enumerate(sentences) if i % 10 == 9]
    return train, dev


def gazetteer_tags_for_tokens(
    tokens: Sequence[str], gazetteer: Gazetteer | None = None
) -> list[str]:
    """Return gazetteer B/I tags for pre-tokenised text (tokens joined by spaces)."""
    gz = gazetteer or default_gazetteer()
    spans: list[tuple[int, int]] = []
    pos = 0
    for t in tokens:
        spans.append((pos, pos + len(t)))
        pos += len(t) + 1
    text = " ".join(tokens)
    return gazetteer_tags(spans, gz.find(text), gz)


def score_chunks(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    mapping: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return entity-level precision/recall/F1 (exact span and type) overall and per type."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # tp, predicted, gold

    def conv(chs: list[tuple[str, int, int]]) -> set[tuple[str, int, int]]:
        if mapping is None:
            return set(chs)
        return {(mapping[k], a, b) for k, a, b in chs if k in mapping}

    for g, p in zip(gold, pred, strict=True):
        gs, ps = conv(chunks(g)), conv(chunks(p))
        for k, _, _ in gs:
            counts[k][2] += 1
        for k, _, _ in ps:
            counts[k][1] += 1
        for k, _, _ in gs & ps:
            counts[k][0] += 1

    def prf(tp: int, npred: int, ngold: int) -> dict[str, float | int]:
        p = tp / npred if npred else 0.0
        r = tp / ngold if ngold else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return {
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(f, 4),
            "support": ngold,
        }

    tp = sum(c[0] for c in counts.values())
    npred = sum(c[1] for c in counts.values())
    ngold = sum(c[2] for c in counts.values())
    return {
        "overall": prf(tp, npred, ngold),
        "per_type": {k: prf(*counts[k]) for k in sorted(counts)},
    }


def evaluate_sentences(
    sentences: Sequence[IobSentence], tagger: CrfTagger | None = None
) -> dict[str, Any]:
    """Tag gold-tokenised sentences with the CRF and score them (fine and coarse types)."""
    crf = tagger or default_tagger()
    if not crf.available:
        from elshi.nlp.evaluate import EvalError

        raise EvalError(f"entity model missing: {crf.path} (run scripts/train_entities.py)")
    gz = default_gazetteer()
    gold = [s.labels for s in sentences]
    pred = [crf.tag(s.tokens, gazetteer_tags_for_tokens(s.tokens, gz))[0] for s in sentences]
    fine = score_chunks(gold, pred)
    coarse = score_chunks(gold, pred, COARSE)
    return {
        "n_sentences": len(sentences),
        "n_tokens": sum(len(s.tokens) for s in sentences),
        "overall": fine["overall"],
        "per_type": fine["per_type"],
        "coarse": coarse,
    }


def evaluate_iob(path: Path | str) -> dict[str, Any]:
    """Score the shipped CRF on a KazNERD-style IOB2 file: entity P/R/F1 overall and per type."""
    sentences, skipped = read_iob(Path(path))
    report = evaluate_sentences(sentences)
    report["skipped"] = skipped
    return report
