"""Coordination tasks: update the co-actions after each ingest, and catch up periodically;
after each update the coordination alert rules are checked (groups that appear or grow)."""

from __future__ import annotations

from typing import Any

from elshi.alerts.flows import evaluate_coordination
from elshi.coordination import service
from elshi.jobs import crontab, periodic, runtime, task


@task(retries=2, retry_delay=60)
def update_coordination(after_id: int = 0) -> dict[str, Any]:
    """Pair the posts stored since the last update (the pipeline's `coordination` stage,
    queued after ingest with the id the ingest started after), draw the groups again and
    raise the alerts of groups that appeared or grew."""
    rt = runtime()
    report = service.update(rt.db, params=service.stored_params(rt.db)).as_dict()
    return report | {"alerts": evaluate_coordination(rt.db, settings=rt.settings)}


@periodic(crontab(minute="*/15"))
def coordination_catch_up() -> dict[str, Any] | None:
    """Run the update if posts were stored that no queued update paired."""
    rt = runtime()
    with rt.db.engine.connect() as conn:
        st = service.state(conn)
        newest = service.newest_post_id(conn)
    if newest <= (int(st["last_post_id"]) if st is not None else 0):
        return None
    report = service.update(rt.db, params=service.stored_params(rt.db)).as_dict()
    return report | {"alerts": evaluate_coordination(rt.db, settings=rt.settings)}
