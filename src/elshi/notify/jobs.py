"""Outbox tasks: send what is due after each commit, sweep every minute, prune every night."""

from __future__ import annotations

from elshi.jobs import crontab, periodic, runtime, task


@task()
def deliver_outbox() -> dict[str, int]:
    """Send the outbox messages that are due (queued after each commit that stores one)."""
    from elshi.notify.outbox import deliver_due

    rt = runtime()
    return deliver_due(rt.db, settings=rt.settings)


@periodic(crontab(minute="*"))
def sweep_outbox() -> dict[str, int]:
    """Every minute: send what is due, so a message whose start was lost is only delayed."""
    from elshi.notify.outbox import deliver_due

    rt = runtime()
    return deliver_due(rt.db, settings=rt.settings)


@periodic(crontab(minute="27", hour="3"))
def prune_outbox() -> int:
    """Every night: delete messages older than ELSHI_OUTBOX_KEEP_DAYS that are done with."""
    from elshi.notify.outbox import prune

    rt = runtime()
    return prune(rt.db, keep_days=rt.settings.outbox_keep_days)
