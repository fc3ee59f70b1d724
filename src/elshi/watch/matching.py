"""Match posts against watch lists and keep the rollups up to date, batch by batch.

Runs in the queue after enrichment (and on demand): each watch list remembers the highest post
id it has seen, so a new watch list back-fills history and an existing one reads only new posts.
Every batch adds to the daily and hourly rollups in the same transaction as the matches, so the
dashboard reads a few hundred rollup rows instead of scanning posts.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from elshi.db import Database
from elshi.listen.models import Annotation, Post, Source
from elshi.missions.models import Mission
from elshi.nlp.entities import Watchlist, compile_watchlist
from elshi.nlp.gazetteer import tokenize
from elshi.watch.models import (
    CountryDaily,
    RollupCursor,
    Watch,
    WatchDaily,
    WatchEntityDaily,
    WatchHourly,
    WatchMatch,
)

log = logging.getLogger(__name__)
ENTITY_ID = re.compile(r"^[a-z]+:[\w.-]+$")
COUNTRY_CURSOR = "country_daily"
#: Metrics that count how people engaged with a post (views are reach, not engagement).
ENGAGEMENT_KEYS = ("likes", "reposts", "replies", "shares", "forwards", "comments", "quotes")


@dataclass
class CompiledWatch:
    """A watch list ready to match: its gazetteers and entity ids."""

    id: int
    mission_id: int
    all_missions: bool
    processed_to: int
    terms: Watchlist | None
    context: Watchlist | None
    term_entities: dict[str, str]
    context_entities: set[str]
    #: The names of each term (by index), the targets whose stance a matching post is read for.
    targets: list[list[str]]


@dataclass
class BatchResult:
    """What one pass did: posts read and new matches per watch list."""

    posts: int = 0
    matched: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    #: True when the pass stopped at max_batches with posts left to read.
    more: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Return counts for logs and the CLI."""
        return {"posts": self.posts, "matches": {k: len(v) for k, v in self.matched.items()}}


def _names(term: dict[str, Any]) -> list[str]:
    return [str(a) for a in [term.get("name"), *(term.get("aliases") or [])] if a]


def compile_watch(watch: Watch, *, hq_ids: set[int]) -> CompiledWatch:
    """Compile a watch list's terms into gazetteers (cached by their content)."""

    def gaz(terms: Sequence[dict[str, Any]], prefix: str) -> Watchlist | None:
        items = [
            {"id": f"{prefix}{i}", "name": names[0], "aliases": names[1:]}
            for i, t in enumerate(terms)
            if (names := [n for n in _names(t) if not ENTITY_ID.match(n)])
        ]
        return compile_watchlist(items) if items else None

    term_entities = {
        str(t["entity"]): f"t{i}" for i, t in enumerate(watch.terms) if t.get("entity")
    }
    return CompiledWatch(
        id=watch.id,
        mission_id=watch.mission_id,
        all_missions=watch.mission_id in hq_ids,
        processed_to=watch.processed_to,
        terms=gaz(watch.terms, "t"),
        context=gaz(watch.context_terms, "c"),
        term_entities=term_entities,
        context_entities={str(t["entity"]) for t in watch.context_terms if t.get("entity")},
        targets=[[n for n in _names(t) if not ENTITY_ID.match(n)] for t in watch.terms],
    )


def match_text(
    w: CompiledWatch, text: str, entity_ids: Iterable[str], toks: Any = None
) -> dict[str, Any] | None:
    """Return why a post matches (terms, context, entities), or None when it does not.

    `toks` is the text's gazetteer tokenisation, shared by every watch list reading the post.
    """
    ents = set(entity_ids)
    hits: list[dict[str, Any]] = []
    if w.terms is not None:
        for h in w.terms.gazetteer.find(text, toks):
            hits.append({"term": int(w.terms.terms[h.ref].id[1:]), "text": text[h.start : h.end]})
    for eid, tid in w.term_entities.items():
        if eid in ents:
            hits.append({"term": int(tid[1:]), "entity": eid})
    if not hits:
        return None
    context: list[dict[str, Any]] = []
    if w.context is not None or w.context_entities:
        if w.context is not None:
            for h in w.context.gazetteer.find(text, toks):
                context.append(
                    {"term": int(w.context.terms[h.ref].id[1:]), "text": text[h.start : h.end]}
                )
        context.extend({"entity": e} for e in sorted(ents & w.context_entities))
        if not context:
            return None
    return {"terms": hits[:10], "context": context[:10]}


def engagement_of(metrics: dict[str, Any] | None) -> int:
    """Sum the engagement counts of a post's metrics."""
    total = 0
    for key in ENGAGEMENT_KEYS:
        value = (metrics or {}).get(key)
        if isinstance(value, int | float) and value > 0:
            total += int(value)
    return total


def _upsert_add(
    s: Session, model: type[Any], keys: Sequence[str], rows: list[dict[str, Any]]
) -> None:
    """Insert rows, adding their counts to rows that exist (same key columns)."""
    if not rows:
        return
    table = cast(Table, model.__table__)
    ins = (postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)
    counts = [c for c in rows[0] if c not in keys]
    stmt = ins.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: table.c[c] + getattr(ins.excluded, c) for c in counts},
    )
    s.execute(stmt, rows)


def _hour(dt: datetime) -> datetime:
    return dt.replace(minute=0, second=0, microsecond=0)


def _hit_targets(w: CompiledWatch, why: dict[str, Any]) -> list[str]:
    """Return the names of the terms a post matched: what its stance is read towards."""
    seen = dict.fromkeys(h["term"] for h in why["terms"])
    return [n for i in seen if i < len(w.targets) for n in w.targets[i]]


def _stance(text: str, targets: list[str], lang: str | None, sentiment: str) -> str:
    """Return the post's stance towards the matched terms (negative, neutral or positive).

    A post the sentiment model found neutral is recorded as neutral towards the topic without
    a second reading: the stance model re-reads the same words around the mention, and reading
    every neutral post again would halve how many posts a worker can match per second.
    """
    from elshi.nlp.stance import stance

    if not targets or sentiment == "neutral":
        return "neutral" if targets else ""
    try:
        return stance(text, targets, lang).label
    except Exception:  # one odd text must not stop the batch
        log.exception("stance failed on a post")
        return ""


def _load_watches(s: Session) -> list[CompiledWatch]:
    hq_ids = set(s.scalars(select(Mission.id).where(Mission.kind == "hq")))
    return [compile_watch(w, hq_ids=hq_ids) for w in s.scalars(select(Watch).order_by(Watch.id))]


def _cursor(s: Session, name: str) -> int:
    row = s.get(RollupCursor, name)
    if row is None:
        row = RollupCursor(name=name, post_id=0)
        s.add(row)
        s.flush()
    return int(row.post_id)


#: A post collected this recently and not yet enriched holds the watch lists back (its sentiment
#: and entities are about to come); an older one is matched as it is, so that a post no
#: enricher can read never stalls them.
ENRICH_GRACE = timedelta(minutes=30)


def _enriched_to(s: Session, low: int, newest: int, now: datetime) -> int:
    """Return the highest post id up to which every recent post has been enriched."""
    from elshi.nlp.pipeline import not_enriched

    todo = not_enriched()
    if todo is None:
        return newest
    first = s.scalar(
        select(func.min(Post.id)).where(
            Post.id > low, Post.id <= newest, Post.collected_at > now - ENRICH_GRACE, todo
        )
    )
    return newest if first is None else int(first) - 1


def process_posts(
    db: Database,
    *,
    batch_size: int = 2000,
    max_batches: int | None = None,
    wait_for_enrichment: bool = False,
    now: datetime | None = None,
) -> BatchResult:
    """Match posts above each watch list's mark and add them to the rollups; return what changed.

    With `wait_for_enrichment` (the worker's tasks), posts still waiting for their sentiment
    and entities are left for the next run, so that the rollups never count them as unknown.
    """
    result = BatchResult()
    done = 0
    while True:
        if max_batches is not None and done >= max_batches:
            result.more = True
            break
        with db.session() as s:
            watches = _load_watches(s)
            country_to = _cursor(s, COUNTRY_CURSOR)
            newest = int(s.scalar(select(func.max(Post.id))) or 0)
            low = min([w.processed_to for w in watches] + [country_to])
            if wait_for_enrichment and low < newest:
                newest = _enriched_to(s, low, newest, now or datetime.now(UTC))
            if low >= newest:
                break
            hi = min(newest, low + batch_size)
            n = _process_batch(s, watches, country_to, low, hi, result)
            result.posts += n
        done += 1
    return result


def _process_batch(
    s: Session,
    watches: list[CompiledWatch],
    country_to: int,
    low: int,
    hi: int,
    result: BatchResult,
) -> int:
    rows = s.execute(
        select(
            Post.id,
            Post.title,
            Post.text,
            Post.lang,
            Post.platform,
            Post.source_id,
            Post.author_id,
            Post.published_at,
            Post.collected_at,
            Post.metrics,
        )
        .where(Post.id > low, Post.id <= hi)
        .order_by(Post.id)
    ).all()
    sentiment: dict[int, str] = {}
    entities: dict[int, list[str]] = {}
    # By post id range only: with the enricher in the WHERE clause SQLite picks the
    # (enricher, label) index and reads every sentiment annotation ever stored.
    for post_id, enricher, label, value in s.execute(
        select(Annotation.post_id, Annotation.enricher, Annotation.label, Annotation.value).where(
            Annotation.post_id > low, Annotation.post_id <= hi
        )
    ):
        if enricher == "sentiment":
            sentiment[post_id] = label or ""
        elif enricher == "entities":
            entities[post_id] = list((value or {}).get("ids") or [])
    source_mission = dict(
        s.execute(select(Source.id, Source.mission_id).where(Source.mission_id.is_not(None))).all()
    )
    matches: list[dict[str, Any]] = []
    daily: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)
    hourly: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)
    ent_daily: Counter[tuple[int, date, str, str, int, str]] = Counter()
    countries: Counter[tuple[date, int, str]] = Counter()
    for r in rows:
        when = r.published_at or r.collected_at
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        day = when.date()
        ents = entities.get(r.id, [])
        if r.id > country_to:
            for e in set(ents):
                if e.startswith("country:"):
                    countries[(day, r.source_id or 0, e)] += 1
        text = f"{r.title}\n{r.text}" if r.title else (r.text or "")
        owner = source_mission.get(r.source_id) if r.source_id else None
        toks = tokenize(text)
        for w in watches:
            if r.id <= w.processed_to:
                continue
            if owner is not None and not w.all_missions and owner != w.mission_id:
                continue
            why = match_text(w, text, ents, toks)
            if why is None:
                continue
            sent = sentiment.get(r.id, "")
            st = _stance(text, _hit_targets(w, why), r.lang, sent)
            eng = engagement_of(r.metrics)
            matches.append(
                {
                    "watch_id": w.id,
                    "post_id": r.id,
                    "published_at": when,
                    "day": day,
                    "lang": r.lang or "",
                    "platform": r.platform or "",
                    "source_id": r.source_id or 0,
                    "author_id": r.author_id or 0,
                    "sentiment": sent,
                    "stance": st,
                    "engagement": eng,
                    "why": why,
                    "entities": ents[:20],
                }
            )
            c = daily[(w.id, day, r.lang or "", r.platform or "", r.source_id or 0)]
            c["n"] += 1
            c["neg"] += sent == "negative"
            c["neu"] += sent == "neutral"
            c["pos"] += sent == "positive"
            c["against"] += st == "negative"
            c["favor"] += st == "positive"
            c["engagement"] += eng
            h = hourly[(w.id, _hour(when))]
            h["n"] += 1
            h["against"] += st == "negative"
            for e in set(ents):
                ent_daily[(w.id, day, r.lang or "", r.platform or "", r.source_id or 0, e)] += 1
            result.matched[w.id].append(r.id)
    if matches:
        s.execute(insert(cast(Table, WatchMatch.__table__)), matches)
    cols = ("n", "neg", "neu", "pos", "against", "favor", "engagement")
    keys = ("watch_id", "day", "lang", "platform", "source_id")
    _upsert_add(
        s,
        WatchDaily,
        keys,
        [dict(zip(keys, k, strict=True)) | {c: v[c] for c in cols} for k, v in daily.items()],
    )
    _upsert_add(
        s,
        WatchHourly,
        ("watch_id", "hour"),
        [
            {"watch_id": k[0], "hour": k[1], "n": v["n"], "against": v["against"]}
            for k, v in hourly.items()
        ],
    )
    _upsert_add(
        s,
        WatchEntityDaily,
        ("watch_id", "day", "lang", "platform", "source_id", "entity"),
        [
            {
                "watch_id": k[0],
                "day": k[1],
                "lang": k[2],
                "platform": k[3],
                "source_id": k[4],
                "entity": k[5][:200],
                "n": v,
            }
            for k, v in ent_daily.items()
        ],
    )
    _upsert_add(
        s,
        CountryDaily,
        ("day", "source_id", "entity"),
        [{"day": k[0], "source_id": k[1], "entity": k[2], "n": v} for k, v in countries.items()],
    )
    for w in watches:
        if w.processed_to < hi:
            s.execute(update(Watch).where(Watch.id == w.id).values(processed_to=hi))
            w.processed_to = hi
    if country_to < hi:
        s.execute(
            update(RollupCursor).where(RollupCursor.name == COUNTRY_CURSOR).values(post_id=hi)
        )
    return len(rows)
