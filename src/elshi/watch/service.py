"""Watch lists and what the workspace pages read: dashboards, top lists, saved searches, events."""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, inspect, select
from sqlalchemy.orm import Session

from elshi.accounts.service import PermissionDenied, Principal, audit_by, get_readable, scoped
from elshi.db import utcnow
from elshi.errors import N_, FieldError, NotFound
from elshi.listen.models import Annotation, Author, Post, Source
from elshi.missions.models import Mission
from elshi.watch.matching import ENTITY_ID
from elshi.watch.models import (
    ACTOR_TYPES,
    CountryDaily,
    DailyColumns,
    KnownEvent,
    SavedSearch,
    Watch,
    WatchDaily,
    WatchEntityDaily,
    WatchMatch,
)

MAX_TERMS = 200
MAX_RANGE_DAYS = 366
EVENT_KINDS = ("visit", "summit", "vote", "holiday", "other")


class InvalidWatch(FieldError):
    """A watch-list field is not valid."""


#: What a name or title too short or too long is told, by its most characters.
_LENGTHS = {
    200: N_("between 1 and 200 characters"),
    300: N_("between 1 and 300 characters"),
}


def _text(value: str, field: str, most: int) -> str:
    """Return a name or title without outer spaces; refuse it empty or over `most` long."""
    value = value.strip()
    if not value or len(value) > most:
        raise InvalidWatch(field, _LENGTHS[most])
    return value


# ---------------------------------------------------------------------------- terms


def parse_terms(value: str, *, field_name: str = "terms") -> list[dict[str, Any]]:
    """Parse one term per line, aliases split by '|'; an alias like country:CN is an entity."""
    terms: list[dict[str, Any]] = []
    for lineno, line in enumerate(value.splitlines(), start=1):
        parts = [p.strip() for p in line.split("|") if p.strip()]
        if not parts:
            continue
        entity = next((p for p in parts if ENTITY_ID.match(p)), None)
        names = [p for p in parts if p != entity]
        if any(len(p) > 200 for p in parts):
            raise InvalidWatch(
                field_name, N_("line %(line)s: a name is longer than 200 characters"), line=lineno
            )
        if not names and entity is None:
            raise InvalidWatch(field_name, N_("line %(line)s: no name"), line=lineno)
        term: dict[str, Any] = {"name": names[0] if names else entity, "aliases": names[1:]}
        if entity:
            term["entity"] = entity
        terms.append(term)
    if len(terms) > MAX_TERMS:
        raise InvalidWatch(field_name, N_("at most %(n)s lines"), n=MAX_TERMS)
    return terms


def format_terms(terms: list[dict[str, Any]]) -> str:
    """Return terms as the text the form shows (one per line, aliases split by '|')."""
    lines = []
    for t in terms:
        parts = [t.get("name") or "", *(t.get("aliases") or [])]
        if t.get("entity") and t["entity"] not in parts:
            parts.append(t["entity"])
        lines.append(" | ".join(p for p in parts if p))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- access


def _require(principal: Principal, permission: str, mission_id: int) -> None:
    if not principal.can(permission, mission_id):
        raise PermissionDenied(f"{permission} in mission {mission_id}")


def mission_view(*, db: Session, mission_id: int) -> frozenset[int] | None:
    """Return the missions whose data a mission's own digest and alerts draw on: every mission
    for headquarters, else the mission itself (with what belongs to no mission)."""
    kind = db.scalar(select(Mission.kind).where(Mission.id == mission_id))
    return None if kind == "hq" else frozenset({mission_id})


def may_see_mission(principal: Principal, mission_id: int) -> bool:
    """Return True when the user may read this mission's data."""
    return principal.can("listen.read", mission_id)


def list_watches(*, db: Session, principal: Principal) -> list[Watch]:
    """Return the watch lists of the missions the user may see."""
    q = select(Watch).order_by(Watch.mission_id, Watch.name)
    q = scoped(q, Watch.mission_id, principal, "listen.read")
    return list(db.scalars(q))


def get_watch(*, db: Session, principal: Principal, watch_id: int) -> Watch:
    """Return a watch list the user may see, or raise NotFound."""
    return get_readable(db, Watch, watch_id, principal, NotFound(f"no watch list {watch_id}"))


def save_watch(
    *,
    db: Session,
    principal: Principal,
    mission_id: int,
    name: str,
    terms: str,
    context_terms: str = "",
    description: str = "",
    focus_entity: str = "country:KZ",
    watch_id: int | None = None,
) -> Watch:
    """Create or change a watch list; changed terms re-match the history from the start."""
    _require(principal, "watch.manage", mission_id)
    name = _text(name, "name", 200)
    parsed = parse_terms(terms)
    if not parsed:
        raise InvalidWatch("terms", N_("give at least one term"))
    context = parse_terms(context_terms, field_name="context_terms")
    focus = focus_entity.strip() or "country:KZ"
    if not ENTITY_ID.match(focus):
        raise InvalidWatch("focus", N_("an entity id such as country:KZ"))
    if db.get(Mission, mission_id) is None:
        raise InvalidWatch("mission", N_("no such mission"))
    if watch_id is None:
        watch = Watch(mission_id=mission_id, terms=[], context_terms=[], processed_to=0)
        db.add(watch)
    else:
        watch = get_watch(db=db, principal=principal, watch_id=watch_id)
        _require(principal, "watch.manage", watch.mission_id)
    changed = (
        watch.terms != parsed or watch.context_terms != context or watch.mission_id != mission_id
    )
    watch.name, watch.description, watch.focus_entity = name, description.strip(), focus
    watch.terms, watch.context_terms, watch.mission_id = parsed, context, mission_id
    watch.updated_at = utcnow()
    db.flush()
    if changed and watch_id is not None:
        reset_watch(db=db, watch_id=watch.id)
    return watch


def reset_watch(*, db: Session, watch_id: int) -> None:
    """Forget a watch list's matches and rollups so the queue matches history again."""
    from elshi.watch.models import WatchHourly

    for model in (WatchMatch, WatchDaily, WatchHourly, WatchEntityDaily):
        db.execute(delete(model).where(model.watch_id == watch_id))
    watch = db.get(Watch, watch_id)
    if watch is not None:
        watch.processed_to = 0


def delete_watch(*, db: Session, principal: Principal, watch_id: int) -> None:
    """Delete a watch list with its matches, rules and alerts."""
    watch = get_watch(db=db, principal=principal, watch_id=watch_id)
    _require(principal, "watch.manage", watch.mission_id)
    reset_watch(db=db, watch_id=watch_id)
    db.delete(watch)


# ---------------------------------------------------------------------------- dashboard


@dataclass
class Filters:
    """The dashboard's time range (inclusive days) and optional splits."""

    since: date
    until: date
    lang: str | None = None
    platform: str | None = None
    source_id: int | None = None

    @property
    def days(self) -> list[date]:
        """Return every day of the range."""
        return [self.since + timedelta(days=i) for i in range((self.until - self.since).days + 1)]

    @property
    def filtered(self) -> bool:
        """Return True when a split narrows the posts."""
        return bool(self.lang or self.platform or self.source_id)


@dataclass
class Comparison:
    """The period of the same length just before a dashboard's, and how the range differs."""

    since: date
    until: date
    total: int
    negative_share: float | None
    #: Relative change of the number of posts (0.25: a quarter more); None from zero posts.
    total_change: float | None
    #: Change of the share against the topic in percentage points; None if either is unknown.
    share_change: float | None


@dataclass
class Dashboard:
    """Everything one dashboard shows."""

    watch: Watch
    filters: Filters
    days: list[date]
    volume: list[int]
    sentiment: dict[str, list[int]]
    stance: dict[str, list[int]]
    by_lang: list[tuple[str, int]]
    by_platform: list[tuple[str, int]]
    by_source: list[tuple[str, int]]
    share_of_voice: list[tuple[str, int]]
    top_entities: list[tuple[str, int]]
    top_authors: list[tuple[Author | None, int]]
    top_posts: list[Post]
    narratives: list[dict[str, Any]] | None = None
    total: int = 0
    negative_share: float | None = None
    previous: Comparison | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def latest_day(*, db: Session, watch_id: int) -> date | None:
    """Return the last day the watch list matched anything."""
    return db.scalar(select(func.max(WatchDaily.day)).where(WatchDaily.watch_id == watch_id))


def default_range(*, db: Session, watch_id: int, days: int = 30) -> tuple[date, date]:
    """Return the last `days` days up to today, or up to the last match if none came this week."""
    today = utcnow().date()
    last = latest_day(db=db, watch_id=watch_id)
    until = today if last is None or last > today - timedelta(days=7) else last
    return until - timedelta(days=days - 1), until


def _chosen(table: Any, f: Filters) -> list[ColumnElement[bool]]:
    """The language, platform and source the filters ask for, on a table that has them."""
    conds: list[ColumnElement[bool]] = []
    if f.lang:
        conds.append(table.lang == f.lang)
    if f.platform:
        conds.append(table.platform == f.platform)
    if f.source_id:
        conds.append(table.source_id == f.source_id)
    return conds


def _rollup_where(
    watch_id: int, f: Filters, table: type[DailyColumns] = WatchDaily
) -> list[ColumnElement[bool]]:
    """The filters on a daily roll-up (posts or entities) of one watch list."""
    conds: list[ColumnElement[bool]] = [
        table.watch_id == watch_id,
        table.day >= f.since,
        table.day <= f.until,
    ]
    return conds + _chosen(table, f)


def _match_where(watch_id: int, f: Filters) -> list[ColumnElement[bool]]:
    from datetime import UTC, time

    conds: list[ColumnElement[bool]] = [
        WatchMatch.watch_id == watch_id,
        WatchMatch.published_at >= datetime.combine(f.since, time.min, UTC),
        WatchMatch.published_at < datetime.combine(f.until + timedelta(days=1), time.min, UTC),
    ]
    return conds + _chosen(WatchMatch, f)


def _group(db: Session, column: Any, conds: list[ColumnElement[bool]]) -> list[tuple[Any, int]]:
    total = func.sum(WatchDaily.n)
    rows = db.execute(select(column, total).where(*conds).group_by(column).order_by(total.desc()))
    return [(k, int(n or 0)) for k, n in rows]


def narrative_table_exists(db: Session) -> bool:
    """Return True when stored narratives can be read (the narrative table is migrated)."""
    return bool(inspect(db.get_bind()).has_table("narrative"))


def top_narratives(
    *, db: Session, mission_ids: frozenset[int] | None, limit: int = 5
) -> list[dict[str, Any]] | None:
    """Return the biggest live narratives these missions see a post of (None: every mission):
    id, title from key terms, size; None when narratives are not stored."""
    from elshi.nlp.models import NarrativeRow
    from elshi.nlp.service import visible_member

    if not narrative_table_exists(db):
        return None
    q = select(NarrativeRow).where(NarrativeRow.merged_into.is_(None))
    if mission_ids is not None:
        q = q.where(visible_member(mission_ids))
    rows = db.scalars(q.order_by(NarrativeRow.count.desc(), NarrativeRow.id).limit(limit))
    return [
        {"id": r.id, "title": ", ".join((r.terms or [])[:4]) or f"#{r.id}", "size": r.count}
        for r in rows
    ]


def watch_narratives(
    *, db: Session, conditions: list[Any], limit: int = 5
) -> list[dict[str, Any]] | None:
    """Return the narratives most of a watch list's matches (within `conditions`) belong to:
    id, title from key terms, and how many of the matches; None when narratives are not stored."""
    from elshi.nlp.models import NarrativeRow
    from elshi.nlp.service import SLUG

    if not narrative_table_exists(db):
        return None
    n = func.count()
    counts: Counter[int] = Counter()
    rows = db.execute(
        select(Annotation.label, n)
        .join(WatchMatch, WatchMatch.post_id == Annotation.post_id)
        .where(*conditions, Annotation.enricher == SLUG, Annotation.label.is_not(None))
        .group_by(Annotation.label)
    )
    for label, k in rows:
        if label is not None and label.isdigit():
            counts[int(label)] += int(k)
    found = {r.id: r for r in db.scalars(select(NarrativeRow).where(NarrativeRow.id.in_(counts)))}
    merged: Counter[int] = Counter()
    for nid, k in counts.items():
        row = found.get(nid)
        if row is not None:
            merged[row.merged_into or row.id] += k
    heads = {r.id: r for r in db.scalars(select(NarrativeRow).where(NarrativeRow.id.in_(merged)))}
    top = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [
        {
            "id": nid,
            "title": ", ".join((heads[nid].terms or [])[:4]) if nid in heads else f"#{nid}",
            "size": k,
        }
        for nid, k in top
    ]


def dashboard(*, db: Session, principal: Principal, watch_id: int, filters: Filters) -> Dashboard:
    """Return a watch list's dashboard data for a range of days, read from the rollups."""
    watch = get_watch(db=db, principal=principal, watch_id=watch_id)
    f = filters
    conds = _rollup_where(watch.id, f)
    index = {d: i for i, d in enumerate(f.days)}
    n_days = len(index)
    volume = [0] * n_days
    sentiment = {k: [0] * n_days for k in ("negative", "neutral", "positive")}
    stance = {k: [0] * n_days for k in ("negative", "positive")}
    rows = db.execute(
        select(
            WatchDaily.day,
            func.sum(WatchDaily.n),
            func.sum(WatchDaily.neg),
            func.sum(WatchDaily.neu),
            func.sum(WatchDaily.pos),
            func.sum(WatchDaily.against),
            func.sum(WatchDaily.favor),
        )
        .where(*conds)
        .group_by(WatchDaily.day)
    )
    for day, n, neg, neu, pos, against, favor in rows:
        i = index[day]
        volume[i] = int(n or 0)
        sentiment["negative"][i], sentiment["neutral"][i] = int(neg or 0), int(neu or 0)
        sentiment["positive"][i] = int(pos or 0)
        stance["negative"][i], stance["positive"][i] = int(against or 0), int(favor or 0)
    total = sum(volume)
    source_names = dict(db.execute(select(Source.id, Source.name)).all())
    by_source = [
        (source_names.get(k, "—") if k else "—", n)
        for k, n in _group(db, WatchDaily.source_id, conds)
    ]
    mconds = _match_where(watch.id, f)
    ent_total = func.sum(WatchEntityDaily.n)
    ent_conds = _rollup_where(watch.id, f, WatchEntityDaily)
    top_entities = [
        (e, int(n))
        for e, n in db.execute(
            select(WatchEntityDaily.entity, ent_total)
            .where(*ent_conds)
            .group_by(WatchEntityDaily.entity)
            .order_by(ent_total.desc(), WatchEntityDaily.entity)
            .limit(10)
        )
    ]
    author_n = func.count()
    author_rows = db.execute(
        select(WatchMatch.author_id, author_n)
        .where(*mconds, WatchMatch.author_id != 0)
        .group_by(WatchMatch.author_id)
        .order_by(author_n.desc())
        .limit(10)
    ).all()
    authors = {
        a.id: a
        for a in db.scalars(select(Author).where(Author.id.in_([r[0] for r in author_rows])))
    }
    post_ids = list(
        db.scalars(
            select(WatchMatch.post_id)
            .where(*mconds)
            .order_by(WatchMatch.engagement.desc(), WatchMatch.post_id.desc())
            .limit(10)
        )
    )
    posts_by_id = {p.id: p for p in db.scalars(select(Post).where(Post.id.in_(post_ids)))}
    against = sum(stance["negative"])
    negative_share = (against / total) if total else None
    return Dashboard(
        watch=watch,
        filters=f,
        days=f.days,
        volume=volume,
        sentiment=sentiment,
        stance=stance,
        by_lang=[(k or "?", n) for k, n in _group(db, WatchDaily.lang, conds)],
        by_platform=[(k or "?", n) for k, n in _group(db, WatchDaily.platform, conds)],
        by_source=by_source,
        share_of_voice=share_of_voice(db=db, principal=principal, filters=f),
        top_entities=top_entities,
        top_authors=[(authors.get(a), int(n)) for a, n in author_rows],
        top_posts=[posts_by_id[i] for i in post_ids if i in posts_by_id],
        narratives=watch_narratives(db=db, conditions=mconds),
        total=total,
        negative_share=negative_share,
        previous=compare_previous(
            db=db, watch_id=watch.id, filters=f, total=total, negative_share=negative_share
        ),
    )


def compare_previous(
    *, db: Session, watch_id: int, filters: Filters, total: int, negative_share: float | None
) -> Comparison:
    """Return the totals of the period of the same length (and splits) just before `filters`'
    range, and the change from them to `total` and `negative_share`."""
    span = len(filters.days)
    prev = replace(
        filters,
        since=filters.since - timedelta(days=span),
        until=filters.since - timedelta(days=1),
    )
    n, against = db.execute(
        select(func.sum(WatchDaily.n), func.sum(WatchDaily.against)).where(
            *_rollup_where(watch_id, prev)
        )
    ).one()
    before = int(n or 0)
    share = int(against or 0) / before if before else None
    return Comparison(
        since=prev.since,
        until=prev.until,
        total=before,
        negative_share=share,
        total_change=(total - before) / before if before else None,
        share_change=(
            (negative_share - share) * 100
            if negative_share is not None and share is not None
            else None
        ),
    )


def share_of_voice(
    *, db: Session, principal: Principal, filters: Filters, limit: int = 8
) -> list[tuple[str, int]]:
    """Posts mentioning each country in the range (from the sources the user may see)."""
    total = func.sum(CountryDaily.n)
    q = (
        select(CountryDaily.entity, total)
        .where(CountryDaily.day >= filters.since, CountryDaily.day <= filters.until)
        .group_by(CountryDaily.entity)
        .order_by(total.desc())
        .limit(limit)
    )
    ids = principal.missions_where("listen.read")
    if filters.source_id:
        q = q.where(CountryDaily.source_id == filters.source_id)
    if ids is not None:
        hidden = select(Source.id).where(
            Source.mission_id.is_not(None), Source.mission_id.not_in(ids)
        )
        q = q.where(CountryDaily.source_id.not_in(hidden))
    return [(e, int(n)) for e, n in db.execute(q)]


def split_values(*, db: Session, watch_id: int) -> dict[str, list[Any]]:
    """Return the languages, platforms and sources a watch list's posts have (for filters)."""

    def distinct(col: Any) -> list[Any]:
        return sorted(
            v
            for v in db.scalars(select(col).where(WatchDaily.watch_id == watch_id).distinct())
            if v
        )

    return {
        "langs": distinct(WatchDaily.lang),
        "platforms": distinct(WatchDaily.platform),
        "sources": distinct(WatchDaily.source_id),
    }


def daily_series(
    *, db: Session, watch_id: int, since: date, until: date
) -> tuple[list[date], list[int], list[int]]:
    """Return days, posts and posts against the topic per day (forecast input)."""
    f = Filters(since=since, until=until)
    index = {d: i for i, d in enumerate(f.days)}
    n = [0] * len(index)
    neg = [0] * len(index)
    for day, total, against in db.execute(
        select(WatchDaily.day, func.sum(WatchDaily.n), func.sum(WatchDaily.against))
        .where(*_rollup_where(watch_id, f))
        .group_by(WatchDaily.day)
    ):
        n[index[day]] = int(total or 0)
        neg[index[day]] = int(against or 0)
    return f.days, n, neg


# ---------------------------------------------------------------------------- posts and authors


def matches_of_post(
    *, db: Session, principal: Principal, post_id: int
) -> list[tuple[Watch, WatchMatch]]:
    """Return the watch lists (that the user may see) a post matched, with why."""
    rows = db.execute(
        select(Watch, WatchMatch)
        .join(WatchMatch, WatchMatch.watch_id == Watch.id)
        .where(WatchMatch.post_id == post_id)
    ).all()
    return [(w, m) for w, m in rows if may_see_mission(principal, w.mission_id)]


def author_in_reach(*, db: Session, principal: Principal, author_id: int, permission: str) -> bool:
    """Return True when the author wrote a post in a source of a mission where `permission` is held.

    Reading also reaches authors of ministry-wide sources (of no mission); labelling them, which
    every mission sees, needs the permission at headquarters.
    """
    stmt = (
        select(Post.id)
        .outerjoin(Source, Source.id == Post.source_id)
        .where(Post.author_id == author_id)
    )
    stmt = scoped(
        stmt, Source.mission_id, principal, permission, shared=permission == "listen.read"
    )
    return db.scalar(stmt.limit(1)) is not None


def set_actor_type(*, db: Session, principal: Principal, author_id: int, actor_type: str) -> Author:
    """Set an author's actor type by hand (state media, official or diplomat, journalist,
    politician, citizen, suspected inauthentic, unknown), or give it back to the rules
    ("rules": elshi.actors, imported lists, platform labels, names)."""
    if actor_type == "rules":
        from elshi.actors.service import use_rules

        return use_rules(db=db, principal=principal, author_id=author_id)
    if actor_type not in ACTOR_TYPES:
        raise InvalidWatch("actor_type", N_("choose one from the list"))
    author = db.get(Author, author_id)
    if author is None or not author_in_reach(
        db=db, principal=principal, author_id=author_id, permission="listen.read"
    ):
        raise NotFound(f"no author {author_id}")
    if not author_in_reach(
        db=db, principal=principal, author_id=author_id, permission="authors.manage"
    ):
        raise PermissionDenied("authors.manage")
    author.actor_type = actor_type
    author.actor_type_by = principal.user_id
    author.actor_type_at = utcnow()
    audit_by(principal, db, "author.actor_type", "author", author.id, actor_type=actor_type)
    return author


def view_author(*, db: Session, principal: Principal, author_id: int) -> Author:
    """Return an author whose posts the user may read, and log that the profile was opened;
    NotFound otherwise."""
    author = db.get(Author, author_id)
    if author is None or not author_in_reach(
        db=db, principal=principal, author_id=author_id, permission="listen.read"
    ):
        raise NotFound(f"no author {author_id}")
    audit_by(principal, db, "author.viewed", "author", author.id)
    return author


def posts_within(*, watch_id: int | None, sentiment: str | None) -> Select[Any] | None:
    """The ids of posts the explorer keeps: matched by this watch list (already checked to be
    the user's) and with this sentiment label; None for no such filter."""
    within = []
    if watch_id:
        within.append(select(WatchMatch.post_id).where(WatchMatch.watch_id == watch_id))
    if sentiment:
        within.append(
            select(Annotation.post_id).where(
                Annotation.enricher == "sentiment", Annotation.label == sentiment
            )
        )
    if not within:
        return None
    if len(within) > 1:
        return within[0].where(WatchMatch.post_id.in_(within[1]))
    return within[0]


# ---------------------------------------------------------------------------- saved searches

SAVED_KEYS = ("q", "language", "platform", "source", "since", "until", "watch", "sentiment")


def save_search(
    *, db: Session, principal: Principal, name: str, params: dict[str, str], mission_id: int | None
) -> SavedSearch:
    """Keep a search under a name; its link opens it for anyone allowed in the mission."""
    name = _text(name, "name", 200)
    kept = {k: str(v)[:500] for k, v in params.items() if k in SAVED_KEYS and v}
    if mission_id is not None and not may_see_mission(principal, mission_id):
        raise PermissionDenied(f"mission {mission_id}")
    row = SavedSearch(
        token=secrets.token_urlsafe(12),
        mission_id=mission_id,
        user_id=principal.user_id,
        name=name,
        params=kept,
    )
    db.add(row)
    db.flush()
    return row


def saved_searches(*, db: Session, principal: Principal) -> list[SavedSearch]:
    """Return the saved searches of the user's missions and their own."""
    rows = db.scalars(select(SavedSearch).order_by(SavedSearch.id.desc()))
    return [
        r
        for r in rows
        if r.user_id == principal.user_id
        or (r.mission_id is not None and may_see_mission(principal, r.mission_id))
    ]


def open_saved(*, db: Session, principal: Principal, token: str) -> SavedSearch:
    """Return a saved search by its link token, if the user may open it."""
    row = db.scalar(select(SavedSearch).where(SavedSearch.token == token))
    if row is None or not (
        row.user_id == principal.user_id
        or (row.mission_id is not None and may_see_mission(principal, row.mission_id))
        or principal.missions_where("listen.read") is None
    ):
        raise NotFound("no such saved search")
    return row


# ---------------------------------------------------------------------------- known events


def add_event(
    *,
    db: Session,
    principal: Principal,
    mission_id: int,
    day: date,
    title: str,
    kind: str = "other",
    watch_id: int | None = None,
) -> KnownEvent:
    """Enter a known date (visit, summit, vote) that the forecast takes into account."""
    _require(principal, "watch.manage", mission_id)
    title = _text(title, "title", 300)
    if kind not in EVENT_KINDS:
        raise InvalidWatch("kind", N_("choose one from the list"))
    event = KnownEvent(mission_id=mission_id, watch_id=watch_id, day=day, title=title, kind=kind)
    db.add(event)
    db.flush()
    return event


def events_for(*, db: Session, watch: Watch, since: date, until: date) -> list[KnownEvent]:
    """Return the known events of a watch list's mission (and of the watch list) in a range."""
    return list(
        db.scalars(
            select(KnownEvent)
            .where(
                KnownEvent.mission_id == watch.mission_id,
                (KnownEvent.watch_id.is_(None)) | (KnownEvent.watch_id == watch.id),
                KnownEvent.day >= since,
                KnownEvent.day <= until,
            )
            .order_by(KnownEvent.day)
        )
    )


def validate_range(since: date, until: date) -> None:
    """Refuse reversed or overlong ranges."""
    if since > until:
        raise InvalidWatch("range", N_("the start is after the end"))
    if (until - since).days >= MAX_RANGE_DAYS:
        raise InvalidWatch("range", N_("at most %(n)s days"), n=MAX_RANGE_DAYS)
