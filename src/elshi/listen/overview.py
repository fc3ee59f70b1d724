"""Queries behind the listen pages: the overview counts, search facets and the visible sources."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from elshi.listen.models import Annotation, Author, Post, Quarantine, Source
from elshi.listen.service import visible_posts


@dataclass
class Overview:
    """Counts shown on the home page."""

    posts: int = 0
    newest: datetime | None = None
    languages: list[tuple[str, int]] = field(default_factory=list)
    platforms: list[tuple[str, int]] = field(default_factory=list)
    sources: int = 0
    health: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0


def visible_sources(*, db: Session, mission_ids: frozenset[int] | None) -> list[Source]:
    """Return the sources of these missions (None: all), plus those of no mission."""
    q = select(Source).order_by(Source.id)
    if mission_ids is not None:
        q = q.where(or_(Source.mission_id.is_(None), Source.mission_id.in_(mission_ids)))
    return list(db.scalars(q))


def _counts(
    db: Session, column: InstrumentedAttribute[Any], scope: list[ColumnElement[bool]]
) -> list[tuple[str, int]]:
    rows = db.execute(
        select(column, func.count()).where(*scope).group_by(column).order_by(func.count().desc())
    )
    return [(str(value or "?"), int(n)) for value, n in rows]


def overview(*, db: Session, mission_ids: frozenset[int] | None) -> Overview:
    """Count visible posts by language and platform, and sources by health."""
    sources = visible_sources(db=db, mission_ids=mission_ids)
    health: dict[str, int] = {}
    for source in sources:
        health[source.health] = health.get(source.health, 0) + 1
    scope = [] if mission_ids is None else [visible_posts(mission_ids)]
    # Quarantined records of sources of no mission are for headquarters only.
    quarantined = (
        []
        if mission_ids is None
        else [Quarantine.source_id.in_(select(Source.id).where(Source.mission_id.in_(mission_ids)))]
    )
    return Overview(
        posts=db.scalar(select(func.count()).select_from(Post).where(*scope)) or 0,
        newest=db.scalar(select(func.max(Post.published_at)).where(*scope)),
        languages=_counts(db, Post.lang, scope),
        platforms=_counts(db, Post.platform, scope),
        sources=len(sources),
        health=health,
        quarantined=db.scalar(select(func.count()).select_from(Quarantine).where(*quarantined))
        or 0,
    )


def facets(*, db: Session) -> tuple[list[str], list[str]]:
    """Return the languages and platforms that stored posts have."""
    langs = db.scalars(select(Post.lang).where(Post.lang.is_not(None)).distinct())
    platforms = db.scalars(select(Post.platform).distinct())
    return sorted(x for x in langs if x), sorted(platforms)


#: At most this many matching posts are counted for the explorer's facets.
FACET_CAP = 10_000


def facet_counts(*, db: Session, ids: Select[Any]) -> dict[str, list[tuple[Any, int]]]:
    """Count the first FACET_CAP posts of `ids` by language, platform, source and sentiment
    (the 12 largest of each)."""
    capped = ids.limit(FACET_CAP).subquery()
    inner = select(capped.c.id)

    def count(col: Any, *where: Any) -> list[tuple[Any, int]]:
        n = func.count()
        return [
            (k, int(v))
            for k, v in db.execute(
                select(col, n).where(*where).group_by(col).order_by(n.desc()).limit(12)
            )
        ]

    return {
        "language": count(Post.lang, Post.id.in_(inner)),
        "platform": count(Post.platform, Post.id.in_(inner)),
        "source": count(Post.source_id, Post.id.in_(inner)),
        "sentiment": count(
            Annotation.label, Annotation.enricher == "sentiment", Annotation.post_id.in_(inner)
        ),
    }


def author_and_source(*, db: Session, post: Post) -> tuple[Author | None, Source | None]:
    """Return a post's author and source (None where the post has none)."""
    author = db.get(Author, post.author_id) if post.author_id else None
    source = db.get(Source, post.source_id) if post.source_id else None
    return author, source
