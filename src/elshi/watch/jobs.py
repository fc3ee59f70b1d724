"""Watch-list tasks: match new posts and update the rollups as they arrive, then check alerts."""

from __future__ import annotations

from typing import Any

from elshi.jobs import crontab, enqueue, periodic, runtime, task
from elshi.watch.matching import process_posts

#: Batches one task reads before it checks the alert rules and queues itself again, so that
#: a new watch list back-filling a large history does not hold up alerts on fresh posts.
BATCHES_PER_TASK = 50


def update_watches_now() -> dict[str, Any]:
    """Match posts not yet seen by each watch list, then evaluate alert rules (the stage after
    watches in jobs.PIPELINE runs here, on the posts just matched)."""
    from elshi.alerts.flows import evaluate_after_batch

    db = runtime().db
    result = process_posts(db, max_batches=BATCHES_PER_TASK, wait_for_enrichment=True)
    fired = evaluate_after_batch(db, settings=runtime().settings, matched=result.matched)
    if result.more:
        enqueue("update_watches")
    return result.as_dict() | {"alerts": fired}


@task(retries=2, retry_delay=30)
def update_watches(after_id: int | None = None, last_id: int | None = None) -> dict[str, Any]:
    """Queued after each enrichment batch: bring watch lists and alerts up to date.

    The range of new post ids is not needed: each watch list reads on from its own cursor."""
    return update_watches_now()


@periodic(crontab(minute="*"))
def catch_up_watches() -> dict[str, Any]:
    """Every minute: catch up on posts no queued update reached."""
    return update_watches_now()
