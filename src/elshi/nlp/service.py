"""Narratives in the database: the clustering state, one row per story, and what the API reads."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, delete, exists, func, select, update
from sqlalchemy.orm import Session

from elshi.db import utcnow
from elshi.listen.models import Annotation, Post
from elshi.listen.service import visible_posts
from elshi.nlp.embeddings import Embedder
from elshi.nlp.models import NarrativeRow, NarrativeState
from elshi.nlp.narratives import NarrativeIndex, growth_of

#: The enricher slug whose annotations say which narrative a post is in.
SLUG = "narratives"
STATE_ID = 1
#: Windows before the current one that a growing narrative is compared with.
HISTORY = 7
TERMS = 10


class StaleState(RuntimeError):
    """Another process saved the narrative state after this one loaded it."""


@dataclass
class Loaded:
    """An index and the state version it was loaded from."""

    index: NarrativeIndex
    version: int


_cache: dict[tuple[str, str], Loaded] = {}
_cache_lock = threading.Lock()


def lock_state(*, db: Session) -> int | None:
    """Take the writer's lock on the state row for this transaction; return its version.

    The no-op update makes SQLite start its write transaction now and PostgreSQL lock the row,
    so a second writer waits here instead of assigning posts against an old state.
    """
    db.execute(
        update(NarrativeState)
        .where(NarrativeState.id == STATE_ID)
        .values(version=NarrativeState.version)
    )
    return db.scalar(select(NarrativeState.version).where(NarrativeState.id == STATE_ID))


def load_index(*, db: Session, embedder: Embedder, key: str) -> Loaded:
    """Return the stored index (from this process's cache when it is current) or a new one."""
    version = lock_state(db=db)
    with _cache_lock:
        # Taken out: an index a failed batch assigned posts to must not be used again.
        cached = _cache.pop((key, embedder.model), None)
    if version is None:
        return Loaded(NarrativeIndex(embedder=embedder), 0)
    if cached is not None and cached.version == version:
        return cached
    header = db.scalar(select(NarrativeState.state).where(NarrativeState.id == STATE_ID)) or {}
    items = db.scalars(
        select(NarrativeRow.state)
        .where(NarrativeRow.merged_into.is_(None), NarrativeRow.count > 0)
        .order_by(NarrativeRow.id)
    )
    state = header | {"narratives": [i for i in items if i]}
    return Loaded(NarrativeIndex.from_dict(state, embedder=embedder), version)


def save_index(
    *,
    db: Session,
    loaded: Loaded,
    key: str,
    touched: set[int],
    merged: dict[int, int],
    seconds: float | None = None,
) -> None:
    """Store the index, the rows of the narratives it changed, and move merged members."""
    index = loaded.index
    now = utcnow()
    for gone, kept in merged.items():
        db.execute(
            update(Annotation)
            .where(Annotation.enricher == SLUG, Annotation.label == str(gone))
            .values(label=str(kept))
        )
        db.execute(
            update(NarrativeRow)
            .where(NarrativeRow.id == gone)
            .values(merged_into=kept, count=0, state={}, updated_at=now)
        )
        db.execute(
            update(NarrativeRow).where(NarrativeRow.merged_into == gone).values(merged_into=kept)
        )
    ids = sorted(index.resolve(n) for n in touched | set(merged.values()))
    ids = [n for n in dict.fromkeys(ids) if n in index.narratives]
    existing = set(db.scalars(select(NarrativeRow.id).where(NarrativeRow.id.in_(ids))))
    for nid in ids:
        values = row_values(index, nid) | {"updated_at": now}
        if nid in existing:
            db.execute(update(NarrativeRow).where(NarrativeRow.id == nid).values(**values))
        else:
            db.add(NarrativeRow(id=nid, **values))
    state = index.header()
    if loaded.version == 0:
        db.add(
            NarrativeState(
                id=STATE_ID,
                backend=index.backend or "",
                version=1,
                posts=index.seen,
                state=state,
                last_seconds=seconds,
                updated_at=now,
            )
        )
        version = 1
    else:
        done = db.execute(
            update(NarrativeState)
            .where(NarrativeState.id == STATE_ID, NarrativeState.version == loaded.version)
            .values(
                state=state,
                version=loaded.version + 1,
                posts=index.seen,
                backend=index.backend or "",
                last_seconds=seconds,
                updated_at=now,
            )
        )
        if getattr(done, "rowcount", 1) != 1:
            raise StaleState("the narrative state changed while this batch was assigned")
        version = loaded.version + 1
    db.flush()
    loaded.version = version
    assert index.embedder is not None
    with _cache_lock:
        _cache[(key, index.embedder.model)] = loaded


def forget_cache() -> None:
    """Drop the in-process copy of the index (after a rebuild or in tests)."""
    with _cache_lock:
        _cache.clear()


def row_values(index: NarrativeIndex, narrative_id: int) -> dict[str, Any]:
    """Return the column values of a narrative's row from the index."""
    n = index.narratives[narrative_id]
    return {
        "count": n.count,
        "first_seen": n.first_seen,
        "last_seen": n.last_seen,
        "langs": dict(sorted(n.langs.items())),
        "terms": index.key_terms(narrative_id, TERMS),
        "terms_by_lang": index.terms_by_lang(narrative_id, TERMS),
        "hours": {str(h): c for h, c in sorted(n.hours.items())},
        "merged_into": None,
        "backend": index.backend or "",
        "state": index.item(narrative_id),
    }


def reset(*, db: Session) -> int:
    """Forget every narrative, the state and the posts' assignments; return posts unassigned."""
    gone = db.execute(delete(Annotation).where(Annotation.enricher == SLUG))
    db.execute(delete(NarrativeRow))
    db.execute(delete(NarrativeState))
    forget_cache()
    return int(getattr(gone, "rowcount", 0) or 0)


def state_info(*, db: Session) -> dict[str, Any] | None:
    """Return the backend, posts seen and last save of the narrative state, if any."""
    row = db.execute(
        select(
            NarrativeState.backend,
            NarrativeState.posts,
            NarrativeState.version,
            NarrativeState.updated_at,
        ).where(NarrativeState.id == STATE_ID)
    ).first()
    if row is None:
        return None
    return {"backend": row[0], "posts": row[1], "version": row[2], "updated_at": row[3]}


# -- reading ----------------------------------------------------------------------------------


def _member_posts(narrative_id: int) -> Any:
    return select(Annotation.post_id).where(
        Annotation.enricher == SLUG, Annotation.label == str(narrative_id)
    )


def visible_member(mission_ids: frozenset[int]) -> Any:
    """Return the condition for narratives with a member post these missions may see."""
    return exists().where(
        Annotation.enricher == SLUG,
        Annotation.label == cast(NarrativeRow.id, String),
        Annotation.post_id == Post.id,
        visible_posts(mission_ids),
    )


@dataclass
class Trend:
    """Why a narrative counts as emerging now."""

    reason: str
    recent: int
    baseline: float
    ratio: float


def trend_of(row: NarrativeRow, now: datetime, window: timedelta) -> Trend | None:
    """Return whether a stored narrative is new or growing in the window before `now`."""
    hours = {int(h): int(c) for h, c in (row.hours or {}).items()}
    found = growth_of(hours, row.first_seen, now, window)
    return None if found is None else Trend(*found)


def list_narratives(
    *,
    db: Session,
    mission_ids: frozenset[int] | None,
    emerging: bool = False,
    now: datetime | None = None,
    window: timedelta = timedelta(hours=24),
    lang: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[tuple[NarrativeRow, Trend | None]]:
    """Return live narratives, most recent first (with `emerging`, only new or growing ones)."""
    q = select(NarrativeRow).where(NarrativeRow.merged_into.is_(None), NarrativeRow.count > 0)
    if mission_ids is not None:
        q = q.where(visible_member(mission_ids))
    q = q.order_by(NarrativeRow.last_seen.desc().nulls_last(), NarrativeRow.id.desc())
    when = now or utcnow()
    out: list[tuple[NarrativeRow, Trend | None]] = []
    if not emerging and lang is None:
        rows = db.scalars(q.limit(limit).offset(offset))
        return [(r, trend_of(r, when, window)) for r in rows]
    skipped = 0
    for row in db.scalars(q.execution_options(yield_per=500)):
        if lang is not None and lang not in (row.langs or {}):
            continue
        trend = trend_of(row, when, window)
        if emerging and trend is None:
            continue
        if skipped < offset:
            skipped += 1
            continue
        out.append((row, trend))
        if len(out) >= limit:
            break
    if emerging:
        out.sort(key=lambda rt: (-(rt[1].ratio if rt[1] else 0), -rt[0].count))
    return out


def get_narrative(
    *, db: Session, narrative_id: int, mission_ids: frozenset[int] | None
) -> NarrativeRow | None:
    """Return a narrative (following merges) if it exists and these missions see one member."""
    row = db.get(NarrativeRow, narrative_id)
    hops = 0
    while row is not None and row.merged_into is not None and hops < 100:
        row = db.get(NarrativeRow, row.merged_into)
        hops += 1
    if row is None or row.count == 0:
        return None
    if mission_ids is not None and not db.scalar(
        select(func.count())
        .select_from(Post)
        .where(Post.id.in_(_member_posts(row.id)), visible_posts(mission_ids))
    ):
        return None
    return row


def member_posts(
    *,
    db: Session,
    narrative_id: int,
    mission_ids: frozenset[int] | None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[Post]]:
    """Return how many member posts these missions see and a page of them, newest first."""
    cond: list[Any] = [Post.id.in_(_member_posts(narrative_id))]
    if mission_ids is not None:
        cond.append(visible_posts(mission_ids))
    total = db.scalar(select(func.count()).select_from(Post).where(*cond)) or 0
    posts = db.scalars(
        select(Post)
        .where(*cond)
        .order_by(Post.published_at.desc().nulls_last(), Post.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return int(total), list(posts)


@dataclass
class Seen:
    """What of a narrative one viewer may see: its posts of their missions' sources."""

    posts: int = 0
    langs: dict[str, int] | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    #: Whether it is new or growing in what they see (None: neither).
    trend: Trend | None = None


def seen_by(
    *,
    db: Session,
    narrative_ids: list[int],
    mission_ids: frozenset[int] | None,
    now: datetime | None = None,
    window: timedelta = timedelta(hours=24),
) -> dict[int, Seen]:
    """Return, per narrative, how many member posts these missions see, in which languages,
    when the first and last were published, and whether those posts make it new or growing in
    the window before `now` (None: every mission). A narrative of which they see nothing is
    left out: a viewer learns nothing of another mission's posts, not even their number."""
    if not narrative_ids:
        return {}
    cond: list[Any] = [
        Annotation.enricher == SLUG,
        Annotation.label.in_([str(i) for i in narrative_ids]),
        Annotation.post_id == Post.id,
    ]
    if mission_ids is not None:
        cond.append(visible_posts(mission_ids))
    rows = db.execute(
        select(
            Annotation.label,
            Post.lang,
            func.count(),
            func.min(Post.published_at),
            func.max(Post.published_at),
        )
        .where(*cond)
        .group_by(Annotation.label, Post.lang)
    )
    out: dict[int, Seen] = {}
    for label, lang, n, first, last in rows:
        if label is None or not str(label).isdigit():
            continue
        seen = out.setdefault(int(label), Seen(langs={}))
        seen.posts += int(n)
        assert seen.langs is not None
        key = lang or "und"
        seen.langs[key] = seen.langs.get(key, 0) + int(n)
        if first is not None and (seen.first_seen is None or first < seen.first_seen):
            seen.first_seen = first
        if last is not None and (seen.last_seen is None or last > seen.last_seen):
            seen.last_seen = last
    when = now or utcnow()
    # The trend compares the window with the HISTORY windows before it: read only those posts.
    since = when - window * (HISTORY + 1) - timedelta(hours=1)
    hours: dict[int, dict[int, int]] = {}
    for label, published in db.execute(
        select(Annotation.label, Post.published_at).where(*cond, Post.published_at >= since)
    ):
        if label is not None and str(label).isdigit() and published is not None:
            hour = int(published.timestamp()) // 3600
            per = hours.setdefault(int(label), {})
            per[hour] = per.get(hour, 0) + 1
    for nid, seen in out.items():
        found = growth_of(hours.get(nid, {}), seen.first_seen, when, window, history=HISTORY)
        seen.trend = None if found is None else Trend(*found)
    return out


def title_of(row: NarrativeRow, n: int = 4) -> str:
    """Return a narrative's name for people: its first key terms, or its number."""
    return ", ".join((row.terms or [])[:n]) or f"#{row.id}"


def narrative_of_post(*, db: Session, post_id: int) -> NarrativeRow | None:
    """Return the narrative a post belongs to, if it has been assigned one."""
    label = db.scalar(
        select(Annotation.label).where(Annotation.post_id == post_id, Annotation.enricher == SLUG)
    )
    if not label or not label.isdigit():
        return None
    row = db.get(NarrativeRow, int(label))
    while row is not None and row.merged_into is not None:
        row = db.get(NarrativeRow, row.merged_into)
    return row


# -- explanations -----------------------------------------------------------------------------


def _words(pairs: Any) -> list[dict[str, Any]]:
    return [
        {"word": str(w), "weight": float(c)}
        for w, c in (pairs or [])
        if isinstance(w, str) and isinstance(c, int | float)
    ]


def explain_post(*, db: Session, post: Post) -> dict[str, Any]:
    """Return what drove each stored result of a post: words, gazetteer entries, CRF features."""
    from elshi.nlp.entities import describe
    from elshi.nlp.narratives import words as content_words

    found = {
        a.enricher: a for a in db.scalars(select(Annotation).where(Annotation.post_id == post.id))
    }
    out: dict[str, Any] = {"post_id": post.id, "entities": [], "stance": []}
    if (a := found.get("language")) is not None:
        out["language"] = {
            "label": a.label,
            "score": a.score,
            "script": a.value.get("script"),
            "mixed": a.value.get("mixed"),
            "declared": a.value.get("declared"),
            "features": a.value.get("features", []),
        }
    if (a := found.get("sentiment")) is not None:
        out["sentiment"] = {
            "label": a.label,
            "score": a.score,
            "lang": a.value.get("lang"),
            "model": a.value.get("model", "shipped"),
            "probs": a.value.get("probs", {}),
            "words": _words(a.value.get("evidence")),
        }
    if (a := found.get("entities")) is not None:
        for m in a.value.get("mentions", []):
            item = {k: m.get(k) for k in ("id", "type", "text", "start", "end", "source", "score")}
            item["why"] = m.get("why", [])
            info = describe(m["id"]) if m.get("source") == "gazetteer" else None
            if info is not None:
                item["entry"] = {"id": info.id, "type": info.type, "names": info.names}
                if info.role:
                    item["entry"]["role"] = info.role
            out["entities"].append(item)
    if (a := found.get("stance")) is not None:
        out["stance"] = [
            {
                "target": t.get("id"),
                "type": t.get("type"),
                "label": t.get("label"),
                "score": t.get("score"),
                "mentions": t.get("mentions"),
                "words": _words(t.get("evidence")),
            }
            for t in a.value.get("targets", [])
        ]
    if (a := found.get(SLUG)) is not None and a.label and a.label.isdigit():
        row = narrative_of_post(db=db, post_id=post.id)
        if row is not None:
            mine = set(content_words(f"{post.title or ''} {post.text or ''}"[:20_000]))
            terms = {w for ts in (row.terms_by_lang or {}).values() for w in ts}
            out["narrative"] = {
                "id": row.id,
                "similarity": a.score,
                "new": a.value.get("new"),
                "terms": row.terms,
                "shared_terms": sorted(mine & terms),
            }
    return out
