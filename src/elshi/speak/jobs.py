"""Speak tasks: publish what is due (and reconcile what a stopped worker left), collect reach."""

from __future__ import annotations

from typing import Any

from elshi.jobs import crontab, enqueue, periodic, runtime, task
from elshi.speak import flows
from elshi.speak.channels.base import ChannelContext


def _ctx() -> ChannelContext:
    rt = runtime()
    return ChannelContext(settings=rt.settings, db=rt.db)


@task()
def send_publication(publication_id: int) -> str:
    """Publish one publication (a no-op when another worker claimed it)."""
    ctx = _ctx()
    try:
        return flows.send_publication(runtime().db, publication_id, ctx)
    finally:
        ctx.close()


@periodic(crontab(minute="*"))
def publish_due() -> dict[str, Any]:
    """Reconcile publications a stopped worker left behind, then queue those due now."""
    ctx = _ctx()
    try:
        found = flows.publish_due(runtime().db, ctx)
    finally:
        ctx.close()
    for pid in found["due"]:
        enqueue("send_publication", pid)
    return found


@periodic(crontab(minute="*/5"))
def collect_reach() -> int:
    """Snapshot engagement of recent publications when the configured interval has passed."""
    from datetime import timedelta

    from sqlalchemy import func, select

    from elshi.db import utcnow
    from elshi.speak.models import MetricSnapshot

    rt = runtime()
    with rt.db.session() as s:
        last = s.scalar(select(func.max(MetricSnapshot.at)))
    if last is not None and utcnow() - last < timedelta(minutes=rt.settings.reach_every_minutes):
        return 0
    return collect_reach_now()


@task()
def collect_reach_now() -> int:
    """Snapshot engagement of recent publications now."""
    ctx = _ctx()
    try:
        return flows.collect_reach(runtime().db, ctx)
    finally:
        ctx.close()
