"""NLP tasks: enrich new posts in batches as they arrive, and catch up on any left behind.

Language, sentiment and entities run first, in one job per import or poll; narratives, which
embed every post, run after them as a job of their own in batches of `narratives_batch`, so a
burst of new posts is understood at once and grouped into stories as fast as the embeddings go.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from elshi.db import Database
from elshi.jobs import crontab, enqueue, pass_on, periodic, runtime, task
from elshi.listen import service as listen
from elshi.listen.models import Post
from elshi.nlp.pipeline import enrich_posts, not_enriched, ordered


def newest_post_id(db: Database) -> int:
    """Return the highest post id (0 for an empty store), in a session of its own."""
    with db.session() as s:
        return listen.newest_post_id(db=s)


#: Posts per enrichment task: a large import is split so that every worker (every core) takes
#: a share of it instead of one worker taking all.
CHUNK = 5_000


@task(retries=2, retry_delay=30)
def enrich_new_posts(after_id: int) -> Any:
    """Enrich posts stored after `after_id`: at once, or in chunks queued for every worker."""
    newest = newest_post_id(runtime().db)
    if newest - after_id <= CHUNK:
        return enrich_range(after_id, newest)
    for start in range(after_id, newest, CHUNK):
        enqueue("enrich_range", start, min(start + CHUNK, newest))
    return {"queued": -(-(newest - after_id) // CHUNK)}


@task(retries=2, retry_delay=30)
def enrich_range(after_id: int, last_id: int) -> Any:
    """Enrich posts after_id < id <= last_id; then queue the stages after enrichment
    (narratives, when an enricher runs apart, and watch lists)."""
    counts = enrich_posts(runtime().db, min_id=after_id + 1, max_id=last_id, apart=False)
    pass_on("enrich", after_id, last_id, skip=() if ordered(apart=True) else ("narratives",))
    return counts


@task(retries=2, retry_delay=30)
def assign_narratives(after_id: int, last_id: int | None = None) -> dict[str, Any]:
    """Run the enrichers queued apart (narratives) over posts after `after_id` (to last_id)."""
    db = runtime().db
    return enrich_posts(
        db,
        min_id=after_id + 1,
        max_id=last_id,
        apart=True,
        batch_size=db.settings.narratives_batch,
    )


def first_unenriched(db: Database, *, apart: bool = False) -> int | None:
    """Return the lowest id of a post that the last enricher of the pipeline has not seen."""
    todo = not_enriched(apart=apart)
    if todo is None:
        return None
    with db.session() as s:
        return s.scalar(select(func.min(Post.id)).where(todo))


@periodic(crontab(minute="*/5"))
def enrich_pending() -> dict[str, Any] | None:
    """Enrich posts that no queued batch reached (a worker was down, a task failed)."""
    db = runtime().db
    start = first_unenriched(db)
    if start is None:
        return None
    return enrich_posts(db, min_id=start, apart=False)


@periodic(crontab(minute="*/5"))
def narratives_pending() -> dict[str, Any] | None:
    """Assign narratives to posts that no queued batch reached."""
    db = runtime().db
    start = first_unenriched(db, apart=True)
    if start is None:
        return None
    return enrich_posts(db, min_id=start, apart=True, batch_size=db.settings.narratives_batch)
