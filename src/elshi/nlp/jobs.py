"""NLP tasks: enrich new posts in batches as they arrive, and catch up on any left behind."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, func, select

from elshi.db import Database
from elshi.jobs import crontab, enqueue, periodic, runtime, task
from elshi.listen.models import Annotation, Post
from elshi.nlp.pipeline import enrich_posts, ordered


def newest_post_id(db: Database) -> int:
    """Return the highest post id (0 for an empty store); new posts will be above it."""
    with db.session() as s:
        return int(s.scalar(select(func.max(Post.id))) or 0)


@task(retries=2, retry_delay=30)
def enrich_new_posts(after_id: int) -> dict[str, Any]:
    """Run the default pipeline over posts stored after `after_id`, then update watch lists."""
    counts = enrich_posts(runtime().db, min_id=after_id + 1)
    enqueue("update_watches")
    return counts


def first_unenriched(db: Database) -> int | None:
    """Return the lowest id of a post that the first enricher of the pipeline has not seen."""
    pipeline = ordered()
    if not pipeline:
        return None
    first = pipeline[0].slug
    with db.session() as s:
        done = exists().where(and_(Annotation.post_id == Post.id, Annotation.enricher == first))
        return s.scalar(select(func.min(Post.id)).where(~done))


@periodic(crontab(minute="*/5"))
def enrich_pending() -> dict[str, Any] | None:
    """Enrich posts that no queued batch reached (a worker was down, a task failed)."""
    db = runtime().db
    start = first_unenriched(db)
    if start is None:
        return None
    return enrich_posts(db, min_id=start)
