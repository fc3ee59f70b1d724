"""Queued and periodic work of the e-consulate: e-mails, the nightly retention purge."""

from __future__ import annotations

import logging
from typing import Any

from elshi.jobs import crontab, periodic, runtime, task
from elshi.notify import Message

log = logging.getLogger(__name__)


@task()
def send_consular_email(message: dict[str, Any]) -> int:
    """Put an e-mail queued by an earlier version of elshi in the outbox, which sends it."""
    from elshi.notify import enqueue

    with runtime().db.session() as s:
        row = enqueue(s, Message.from_dict(message))
        s.flush()
        return row.id


@periodic(crontab(minute="17", hour="3"))
def purge_consulate() -> dict[str, int]:
    """Expire ended stays and delete records past their retention period, every night."""
    from elshi.consulate.flows import purge_expired

    rt = runtime()
    with rt.db.session() as s:
        counts = purge_expired(db=s, settings=rt.settings)
    log.info("consulate purge: %s", counts)
    return counts


@periodic(crontab(minute="40", hour="8"))
def remind_stays() -> int:
    """Ask citizens, every morning, to confirm or end stays that end soon or went unconfirmed."""
    from elshi.consulate.flows import remind_stays as due_reminders

    rt = runtime()
    with rt.db.session() as s:
        emails = due_reminders(db=s, settings=rt.settings)
    log.info("stay reminders: %d put in the outbox", len(emails))
    return len(emails)
