"""Watch-list tasks: match new posts and update the rollups as they arrive, then check alerts."""

from __future__ import annotations

from typing import Any

from elshi.jobs import crontab, periodic, runtime, task
from elshi.watch.matching import process_posts


def update_watches_now() -> dict[str, Any]:
    """Match every post not yet seen by each watch list, then evaluate alert rules."""
    from elshi.alerts.flows import evaluate_after_batch

    db = runtime().db
    result = process_posts(db)
    fired = evaluate_after_batch(db, settings=runtime().settings, matched=result.matched)
    return result.as_dict() | {"alerts": fired}


@task(retries=2, retry_delay=30)
def update_watches() -> dict[str, Any]:
    """Queued after each enrichment batch: bring watch lists and alerts up to date."""
    return update_watches_now()


@periodic(crontab(minute="*"))
def catch_up_watches() -> dict[str, Any]:
    """Every minute: catch up on posts no queued update reached."""
    return update_watches_now()
