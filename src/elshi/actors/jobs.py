"""Actor tasks: assess every account (types by rule, inauthenticity signals) periodically."""

from __future__ import annotations

from typing import Any

from elshi.actors import service
from elshi.jobs import crontab, periodic, runtime, task


@task(retries=1, retry_delay=300)
def assess_actors() -> dict[str, Any]:
    """Give accounts their types by rule and compute their signals (after a list import)."""
    with runtime().db.session() as s:
        return service.assess(s).as_dict()


@periodic(crontab(minute="40"))
def actors_hourly() -> dict[str, Any]:
    """Assess every account once an hour, after the coordination groups were drawn again."""
    with runtime().db.session() as s:
        return service.assess(s).as_dict()
