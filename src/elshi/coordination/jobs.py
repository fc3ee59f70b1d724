"""Coordination tasks: update the co-actions after each ingest, and catch up periodically."""

from __future__ import annotations

from typing import Any

from elshi.coordination import service
from elshi.jobs import crontab, periodic, runtime, task


@task(retries=2, retry_delay=60)
def update_coordination(after_id: int = 0) -> dict[str, Any]:
    """Pair the posts stored since the last update (the pipeline's `coordination` stage,
    queued after ingest with the id the ingest started after) and draw the groups again."""
    db = runtime().db
    return service.update(db, params=service.stored_params(db)).as_dict()


@periodic(crontab(minute="*/15"))
def coordination_catch_up() -> dict[str, Any] | None:
    """Run the update if posts were stored that no queued update paired."""
    db = runtime().db
    with db.engine.connect() as conn:
        st = service.state(conn)
        newest = service.newest_post_id(conn)
    if newest <= (int(st["last_post_id"]) if st is not None else 0):
        return None
    return service.update(db, params=service.stored_params(db)).as_dict()
