"""Crisis tasks: deliver a broadcast's batches, and every minute reconcile and escalate."""

from __future__ import annotations

from typing import Any

from elshi.crisis import flows
from elshi.jobs import crontab, enqueue, periodic, runtime, stopping, task


@task()
def crisis_deliver(broadcast_id: int, channel: str) -> dict[str, int]:
    """Send one batch of a broadcast on one channel; queue the next batch while some are due
    (a worker asked to stop ends the batch after the send under way)."""
    rt = runtime()
    out = flows.deliver(rt.db, rt.settings, broadcast_id=broadcast_id, channel=channel)
    progressed = any(out.values())
    # A stopping worker queues nothing: the next one finds what is due when it starts.
    if progressed and not stopping() and (broadcast_id, channel) in flows.due_batches(rt.db):
        enqueue("crisis_deliver", broadcast_id, channel)
    return out


def _tick() -> dict[str, Any]:
    rt = runtime()
    found = flows.tick(rt.db, rt.settings)
    for broadcast_id, channel in found["due"]:
        enqueue("crisis_deliver", broadcast_id, channel)
    return found


@task()
def crisis_tick_now() -> dict[str, Any]:
    """Reconcile what a stopped worker left, escalate unanswered people, queue due batches."""
    return _tick()


@periodic(crontab(minute="*"))
def crisis_tick() -> dict[str, Any]:
    """Every minute: the same as crisis_tick_now."""
    return _tick()
