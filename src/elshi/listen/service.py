"""Listen queries and mutations: sources, search, quarantine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import httpx
from pydantic import ValidationError
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.orm import Session

from elshi import netguard
from elshi.accounts.service import Principal, audit_by, authorize, readable, scoped
from elshi.db import utcnow
from elshi.listen.models import Annotation, Author, Post, Quarantine, Source
from elshi.listen.text import Term, query_terms
from elshi.missions.models import Mission
from elshi.plugins import UnknownPlugin, connectors, get_connector
from elshi.settings import Settings

MAX_LIMIT = 500


def newest_post_id(*, db: Session) -> int:
    """Return the highest post id (0 for an empty store); new posts will be above it."""
    return int(db.scalar(select(func.max(Post.id))) or 0)


class InvalidSource(ValueError):
    """A source's connector or config is not valid; the message says which field."""


def _config_problems(connector: str, exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
    )
    return f"bad {connector} config: {problems}"


def add_source(
    *,
    db: Session,
    connector: str,
    config: dict[str, Any],
    name: str | None = None,
    every_minutes: int | None = None,
    mission_id: int | None = None,
) -> Source:
    """Add a source after validating its config against the connector's schema.

    A source is polled: its connector must fetch from the network (files are imported once
    with `elshi ingest`), and its addresses must be http(s) (ws(s) for streams).
    """
    try:
        plugin = get_connector(connector)
    except UnknownPlugin as exc:
        raise InvalidSource(str(exc.args[0])) from None
    try:
        plugin.parse_config(config)
    except ValidationError as exc:
        raise InvalidSource(_config_problems(connector, exc)) from exc
    problem = plugin.poll_problem(config)
    if problem is not None:
        raise InvalidSource(problem)
    if every_minutes is not None and every_minutes < 1:
        raise InvalidSource("--every must be at least 1 minute")
    if mission_id is not None and db.get(Mission, mission_id) is None:
        raise InvalidSource(f"no mission with id {mission_id}")
    source = Source(
        connector=connector,
        config=config,
        name=name or str(config.get(plugin.target_field) or connector),
        every_minutes=every_minutes,
        mission_id=mission_id,
        cursor={},
        next_run_at=utcnow() if every_minutes else None,
    )
    db.add(source)
    db.flush()
    return source


def web_connectors() -> list[str]:
    """Return the connectors a source may be added with from the web: those that fetch from
    an http(s) address (no file imports, no connector that needs files on the machine)."""
    return sorted(
        slug for slug, cls in connectors().items() if cls.pollable and cls.address_fields()
    )


def add_web_source(
    *,
    db: Session,
    actor: Principal,
    settings: Settings,
    connector: str,
    config: dict[str, Any],
    name: str | None = None,
    every_minutes: int | None = None,
    mission_id: int | None = None,
    resolve: netguard.Resolver = netguard.resolve_host,
) -> Source:
    """Add a source from the web or API: an http(s) source of a mission the actor manages.

    Raises PermissionDenied without sources.manage in the mission (no mission: headquarters),
    and InvalidSource for a connector that reads files, a file path, a non-http address or
    an address that is not public (ELSHI_FETCH_ALLOW_PRIVATE opens private ranges).
    """
    authorize(actor, "sources.manage", mission_id=mission_id)
    if connector not in web_connectors():
        raise InvalidSource(
            f"{connector!r} sources cannot be added here; choose one of: "
            f"{', '.join(web_connectors())} (files are imported by the operator with "
            "`elshi ingest`)"
        )
    plugin = get_connector(connector)
    try:
        found = plugin.addresses(config)
    except ValidationError as exc:
        raise InvalidSource(_config_problems(connector, exc)) from exc
    for field, (value, schemes) in found.items():
        try:
            netguard.check_url(str(value), settings=settings, schemes=schemes, resolve=resolve)
        except netguard.Refused as exc:
            raise InvalidSource(f"{field}: {exc}") from None
        except httpx.ConnectError:
            pass  # not resolvable now: each fetch checks the address again
    source = add_source(
        db=db,
        connector=connector,
        config=config,
        name=name,
        every_minutes=every_minutes,
        mission_id=mission_id,
    )
    audit_by(
        actor,
        db,
        "source.create",
        "source",
        source.id,
        mission_id=mission_id,
        connector=connector,
    )
    return source


def list_sources(
    *, db: Session, actor: Principal | None = None, permission: str = "listen.read"
) -> list[Source]:
    """Return sources, oldest first: all of them, or those the actor holds `permission` for.

    With listen.read, sources of no mission are shared with every reader; with any other
    permission (sources.manage) they belong to headquarters.
    """
    q = select(Source).order_by(Source.id)
    if actor is not None:
        q = scoped(q, Source.mission_id, actor, permission, shared=permission == "listen.read")
    return list(db.scalars(q))


def due_sources(*, db: Session, now: datetime | None = None) -> list[int]:
    """Return ids of enabled scheduled sources whose next run is due."""
    now = now or utcnow()
    return list(
        db.scalars(
            select(Source.id).where(
                Source.enabled.is_(True),
                Source.every_minutes.is_not(None),
                Source.next_run_at <= now,
            )
        )
    )


def remove_source(*, db: Session, source_id: int) -> bool:
    """Delete a source; its posts stay, detached."""
    source = db.get(Source, source_id)
    if source is None:
        return False
    db.delete(source)
    return True


def visible_source(*, db: Session, actor: Principal, source_id: int) -> Source | None:
    """Return a source whose quarantine the actor may read, or None.

    Raw payloads may hold anything a source sent, so the quarantine of a source of no
    mission (and of imports made without a source) is for headquarters only.
    """
    return readable(db, Source, source_id, actor)


def list_quarantine(
    *,
    db: Session,
    actor: Principal | None = None,
    source_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Quarantine]:
    """Return quarantined records, newest first: all, or those of the actor's missions."""
    q = select(Quarantine).order_by(Quarantine.id.desc()).limit(limit).offset(offset)
    if source_id is not None:
        q = q.where(Quarantine.source_id == source_id)
    if actor is not None:
        q = q.where(quarantine_scope(actor))
    return list(db.scalars(q))


def quarantine_scope(actor: Principal) -> ColumnElement[bool]:
    """Return the condition for quarantined records the actor may read (listen.read)."""
    ids = actor.missions_where("listen.read")
    if ids is None:
        return true()
    return Quarantine.source_id.in_(select(Source.id).where(Source.mission_id.in_(ids)))


def get_post(*, db: Session, post_id: int, mission_ids: frozenset[int] | None) -> Post | None:
    """Return a post if it exists and these missions may see it."""
    q = select(Post).where(Post.id == post_id)
    if mission_ids is not None:
        q = q.where(visible_posts(mission_ids))
    return db.scalar(q)


def annotations_of(*, db: Session, post_id: int) -> list[Annotation]:
    """Return every enricher's annotation of a post, by enricher name."""
    return list(
        db.scalars(
            select(Annotation).where(Annotation.post_id == post_id).order_by(Annotation.enricher)
        )
    )


def parse_duration(value: str) -> timedelta:
    """Parse '15m', '2h', '1d', '30s' or a plain number of minutes."""
    value = value.strip().lower()
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    try:
        if value[-1] in units:
            amount = float(value[:-1])
            unit = units[value[-1]]
        else:
            amount, unit = float(value), "minutes"
    except (ValueError, IndexError):
        raise ValueError(f"not a duration: {value!r} (use e.g. 15m, 2h, 1d)") from None
    if amount <= 0:
        raise ValueError(f"duration must be positive: {value!r}")
    return timedelta(**{unit: amount})


@dataclass
class SearchQuery:
    """A search with its filters; every field optional."""

    q: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    source_id: int | None = None
    platform: str | None = None
    lang: str | None = None
    author: str | None = None
    limit: int = 20
    offset: int = 0
    #: Missions whose posts may be seen; None means all (HQ). Posts of sources that belong to
    #: no mission, and imports made without a source, are visible to every mission.
    mission_ids: frozenset[int] | None = None
    #: A subquery of post ids to search within (a watch list's matches, an annotation label).
    within: Any = None


def _fts5_expr(terms: list[Term]) -> str:
    parts = []
    for t in terms:
        quoted = '"' + t.text.replace('"', '""') + '"'
        parts.append(quoted + "*" if t.kind == "prefix" else quoted)
    return " AND ".join(parts)


def _tsquery(terms: list[Term]) -> str:
    parts = []
    for t in terms:
        words = [w.replace("'", "''").replace("\\", "") for w in t.text.split()]
        if t.kind == "phrase":
            parts.append("(" + " <-> ".join(f"'{w}'" for w in words) + ")")
        elif t.kind == "prefix":
            parts.append(f"'{words[0]}':*")
        else:
            parts.append(f"'{words[0]}'")
    return " & ".join(parts)


def _filters(query: SearchQuery) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if query.since:
        conds.append(Post.published_at >= query.since)
    if query.until:
        conds.append(Post.published_at < query.until)
    if query.source_id is not None:
        conds.append(Post.source_id == query.source_id)
    if query.platform:
        conds.append(Post.platform == query.platform)
    if query.lang:
        conds.append(Post.lang == query.lang)
    if query.author:
        # Through the author table: the post index is on the author's integer id.
        conds.append(Post.author_id.in_(select(Author.id).where(Author.handle == query.author)))
    if query.mission_ids is not None:
        conds.append(visible_posts(query.mission_ids))
    if query.within is not None:
        conds.append(Post.id.in_(query.within))
    return conds


def visible_posts(mission_ids: frozenset[int]) -> ColumnElement[bool]:
    """Return the condition for posts these missions may see (their sources' and unowned ones)."""
    visible = select(Source.id).where(
        or_(Source.mission_id.is_(None), Source.mission_id.in_(mission_ids))
    )
    return or_(Post.source_id.is_(None), Post.source_id.in_(visible))


#: Totals above this are reported as "at least this many": counting every match of a common
#: word across millions of posts would cost more than the page itself.
COUNT_CAP = 1_000


class SearchPage(NamedTuple):
    """A page of results, the total (capped at COUNT_CAP) and whether the total is exact."""

    total: int
    items: list[Post]
    exact: bool


def search_posts(*, db: Session, query: SearchQuery) -> tuple[int, list[Post]]:
    """Full-text search with filters; newest first; returns (total, page)."""
    page = search_page(db=db, query=query)
    return page.total, page.items


def match_conditions(*, db: Session, query: SearchQuery) -> list[ColumnElement[bool]]:
    """Return the WHERE conditions selecting the posts a search matches (text and filters)."""
    conds = _filters(query)
    terms = query_terms(query.q or "")
    if terms:
        if db.get_bind().dialect.name == "sqlite":
            # IN (subquery), not a join: SQLite then runs the MATCH once and probes its rowid
            # list, instead of running a MATCH per candidate post row.
            fts: Select[Any] = (
                select(literal_column("rowid"))
                .select_from(text("post_fts"))
                .where(text("post_fts MATCH :m").bindparams(m=_fts5_expr(terms)))
            )
            conds.append(Post.id.in_(fts))
        else:
            tsq = func.to_tsquery("simple", _tsquery(terms))
            conds.append(literal_column("post.search_vector").op("@@")(tsq))
    return conds


def matching_ids(*, db: Session, query: SearchQuery) -> Select[Any]:
    """Return a SELECT of the ids of posts matching a search (words and filters), unordered."""
    conds = match_conditions(db=db, query=query)
    base: Select[Any] = select(Post.id)
    if conds:
        base = base.where(and_(*conds))
    return base


def search_page(*, db: Session, query: SearchQuery, count_all: bool = False) -> SearchPage:
    """Full-text search with filters, newest first; the total is exact up to COUNT_CAP, or
    always with `count_all` (which counts every match, however many)."""
    limit = max(1, min(query.limit, MAX_LIMIT))
    offset = max(0, query.offset)
    base = matching_ids(db=db, query=query)
    ids = list(
        db.scalars(
            base.order_by(Post.published_at.desc().nulls_last(), Post.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    exact = True
    if ids and len(ids) < limit:
        total = offset + len(ids)  # the last page: no count query needed
    else:
        if count_all:
            total = db.scalar(select(func.count()).select_from(base.subquery())) or 0
        else:
            cap = max(COUNT_CAP, offset + limit)
            total = db.scalar(select(func.count()).select_from(base.limit(cap + 1).subquery())) or 0
            if total > cap:
                total, exact = cap, False
    if not ids:
        return SearchPage(total, [], exact)
    by_id = {p.id: p for p in db.scalars(select(Post).where(Post.id.in_(ids)))}
    return SearchPage(total, [by_id[i] for i in ids], exact)
