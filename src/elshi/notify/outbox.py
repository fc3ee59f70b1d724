"""The transactional outbox: a message is stored with the change that causes it, then sent.

`enqueue(s, message)` adds the message to the outbox in the caller's session, so it is stored
if and only if the change is: a rolled-back sign-up sends no e-mail, and a stored one never
loses its e-mail to a queue that was down. When the session commits, delivery is started at
once (`kick`): through the task queue when this process has one for this database, else right
here. Starting it is best effort; the `sweep_outbox` task (every minute, and when a worker
starts) sends whatever is due, so a lost start only delays a message.

Delivery claims each row for a while (pending -> sending, one UPDATE only one worker can win),
sends it through the medium's Sender (elshi.notify), and marks it sent, or due again later
(the medium's Retry-After, else 30 s doubling up to an hour), or failed for good: at once for
a failure no retry can mend, after ELSHI_OUTBOX_MAX_ATTEMPTS tries otherwise. A row a stopped
worker left "sending" is claimed again when its claim runs out; its key (the e-mail's
Message-ID) lets the receiver recognise a second copy.

E-mail with no SMTP server set (ELSHI_SMTP_HOST empty) is not sent: its recipient, subject and
links are printed on the console and it is kept as "logged", with its full text, on the admin
page /admin/outbox. In demo mode every e-mail is printed too.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, event, or_, select, update
from sqlalchemy.orm import Session

from elshi.accounts.service import Principal, authorize, mask_email, scoped
from elshi.db import Database, utcnow
from elshi.errors import NotFound
from elshi.notify import email as mail
from elshi.notify.message import Message, Sender, SendError
from elshi.notify.models import OutboxMessage
from elshi.settings import Settings

log = logging.getLogger(__name__)

#: How long a worker holds a claimed row before another may take it.
LEASE = timedelta(minutes=10)
#: Rows sent per run of the delivery task.
BATCH = 200
#: Rows claimed in one UPDATE.
CLAIM = 20
#: Who may see and retry the outbox: admins (at headquarters: every row; in a mission: its rows).
PERMISSION = "users.manage"

_LINK = re.compile(r"https?://[^\s<>\"')\]]+")
_PENDING = "elshi.outbox.pending"
_HOOKED = "elshi.outbox.hooked"


class NotRetried(ValueError):
    """Only a failed message can be tried again."""


# ---------------------------------------------------------------------------- writing


def enqueue(s: Session, message: Message, *, mission_id: int | None = None) -> OutboxMessage:
    """Keep `message` in the outbox, in the caller's transaction; it goes out after the commit.

    `mission_id` says whose admins see it on the outbox page (none: headquarters only). A
    message without a key gets one, so its receiver can recognise it if it arrives twice.
    """
    if not message.key:
        message = replace(message, key=f"outbox-{uuid.uuid4().hex}")
    row = OutboxMessage(
        key=message.key,
        channel=message.medium,
        recipient=message.to,
        payload=message.as_dict(),
        mission_id=mission_id,
        status="pending",
        attempts=0,
        next_attempt_at=utcnow(),
    )
    s.add(row)
    _kick_after_commit(s)
    return row


def _kick_after_commit(s: Session) -> None:
    """Start delivery when this session's transaction commits (nothing when it rolls back)."""
    s.info[_PENDING] = True
    if not s.info.get(_HOOKED):
        s.info[_HOOKED] = True
        event.listen(s, "after_commit", _after_commit)
        event.listen(s, "after_rollback", _after_rollback)


def _after_commit(s: Session) -> None:
    if s.info.pop(_PENDING, False):
        database = s.info.get("database")
        kick(database if isinstance(database, Database) else None)


def _after_rollback(s: Session) -> None:
    s.info.pop(_PENDING, None)


def kick(database: Database | None = None) -> None:
    """Start sending what is due: by the queue of this process when it serves this database,
    else here and now (no queue: the command line, a test). Never raises: a failure to start
    only waits for the next sweep."""
    from elshi import jobs

    rt = jobs.current()
    if rt is not None and (database is None or rt.db is database):
        try:
            jobs.enqueue("deliver_outbox")
        except Exception as exc:  # the queue is down: the periodic sweep sends it later
            log.warning(
                "outbox: could not queue the delivery (%s: %s); the next sweep sends it",
                type(exc).__name__,
                exc,
            )
        return
    if database is None:
        return
    try:
        deliver_due(database, settings=database.settings)
    except Exception:  # a delivery failure must not undo or fail the change just stored
        log.exception("outbox: delivery failed; the next sweep tries again")


# ---------------------------------------------------------------------------- delivering


def _due(now: datetime) -> Any:
    return or_(
        and_(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now),
        and_(OutboxMessage.status == "sending", OutboxMessage.claimed_until < now),
    )


def _claim(db: Database, ids: list[int], now: datetime) -> set[int]:
    """Claim due rows (one UPDATE ... RETURNING): only one worker can win each row."""
    with db.engine.begin() as conn:
        won = conn.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), _due(now))
            .values(
                status="sending",
                claimed_until=now + LEASE,
                attempts=OutboxMessage.attempts + 1,
            )
            .returning(OutboxMessage.id)
        )
        return {int(r[0]) for r in won}


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Wait before the next try: the medium's Retry-After, else 30 s doubling up to an hour."""
    if retry_after is not None:
        return max(1.0, retry_after)
    return float(min(3600, 30 * 2 ** max(0, attempt - 1)))


def links(text: str) -> list[str]:
    """Return the links in a text, in order, each once."""
    return list(dict.fromkeys(m.rstrip(".,;:") for m in _LINK.findall(text or "")))


def console_text(message: Message, *, sent: bool) -> str:
    """What the console shows of an e-mail: recipient, subject and every link."""
    head = (
        "e-mail sent (demo mode)"
        if sent
        else "e-mail not sent: no SMTP server is set (ELSHI_SMTP_HOST); "
        "it is kept on the admin page /admin/outbox"
    )
    lines = [head, f"  to: {message.to}", f"  subject: {message.subject}"]
    lines += [f"  link: {link}" for link in links(message.text)]
    return "\n".join(lines) + "\n"


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


class _Senders:
    """One open Sender per medium for a run; a medium that cannot open fails its messages."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.open: dict[str, Sender] = {}

    def get(self, medium: str) -> Sender:
        if medium not in self.open:
            from elshi import notify

            self.open[medium] = notify.open_sender(medium, self.settings)
        return self.open[medium]

    def close(self) -> None:
        for sender in self.open.values():
            try:
                sender.close()
            except Exception:  # closing is best effort
                log.debug("outbox: closing the %s sender failed", sender.medium, exc_info=True)


def _send_one(
    settings: Settings, senders: _Senders, message: Message, attempts: int
) -> dict[str, Any]:
    """Send one claimed message; return the row's new values."""
    now = utcnow()
    if message.medium == "email" and not mail.configured(settings):
        _print(console_text(message, sent=False))
        log.warning(
            "outbox: e-mail to %s kept, not sent: no SMTP server is set", mask_email(message.to)
        )
        return {"status": "logged", "sent_at": now, "claimed_until": None, "last_error": None}
    try:
        senders.get(message.medium).send(message)
    except SendError as exc:
        error = str(exc)[:2000]
        if exc.kind == "unsure":
            # The request left but no answer came: it may have arrived. Not sent again
            # unless an admin asks for it.
            error = f"{error} (it may have arrived; not tried again)"[:2000]
        elif exc.retry and attempts < settings.outbox_max_attempts:
            wait = backoff_seconds(attempts, exc.retry_after)
            return {
                "status": "pending",
                "next_attempt_at": now + timedelta(seconds=wait),
                "claimed_until": None,
                "last_error": error,
            }
        return {
            "status": "failed",
            "next_attempt_at": None,
            "claimed_until": None,
            "last_error": error,
        }
    except Exception as exc:  # a bad message or a broken medium: this one fails, the rest go on
        log.exception("outbox: sending a %s message failed", message.medium)
        return {
            "status": "failed",
            "next_attempt_at": None,
            "claimed_until": None,
            "last_error": f"{type(exc).__name__}: {exc}"[:2000],
        }
    if message.medium == "email" and settings.demo:
        _print(console_text(message, sent=True))
    return {
        "status": "sent",
        "sent_at": now,
        "next_attempt_at": None,
        "claimed_until": None,
        "last_error": None,
    }


def deliver_due(
    db: Database, *, settings: Settings, now: datetime | None = None, limit: int = BATCH
) -> dict[str, int]:
    """Send up to `limit` messages that are due; return how many went each way."""
    out = {"sent": 0, "logged": 0, "retry": 0, "failed": 0}
    now = now or utcnow()
    with db.session() as s:
        ids = list(
            s.scalars(
                select(OutboxMessage.id).where(_due(now)).order_by(OutboxMessage.id).limit(limit)
            )
        )
    senders = _Senders(settings)
    try:
        for start in range(0, len(ids), CLAIM):
            won = _claim(db, ids[start : start + CLAIM], now)
            for row_id in sorted(won):
                with db.session() as s:
                    row = s.get(OutboxMessage, row_id)
                    if row is None:
                        continue
                    try:
                        message = Message.from_dict(row.payload)
                    except (TypeError, ValueError, KeyError) as exc:
                        values: dict[str, Any] = {
                            "status": "failed",
                            "claimed_until": None,
                            "last_error": f"outbox message {row_id} cannot be read: {exc}",
                        }
                    else:
                        values = _send_one(settings, senders, message, row.attempts)
                    for name, value in values.items():
                        setattr(row, name, value)
                kind = "retry" if values["status"] == "pending" else values["status"]
                out[kind] += 1
    finally:
        senders.close()
    if out["retry"] or out["failed"]:
        log.warning("outbox: %s", out)
    return out


def prune(db: Database, *, keep_days: int, now: datetime | None = None) -> int:
    """Delete messages sent, kept or failed more than `keep_days` ago; return how many."""
    cutoff = (now or utcnow()) - timedelta(days=keep_days)
    with db.session() as s:
        done = s.execute(
            delete(OutboxMessage).where(
                OutboxMessage.status.in_(("sent", "logged", "failed")),
                OutboxMessage.created_at < cutoff,
            )
        )
        return int(getattr(done, "rowcount", 0) or 0)


# ---------------------------------------------------------------------------- the admin page


def visible(s: Session, *, actor: Principal, limit: int = 200) -> list[OutboxMessage]:
    """The newest messages the actor may see: every one at headquarters, else their missions'."""
    authorize_somewhere(actor)
    stmt = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    return list(s.scalars(scoped(stmt, OutboxMessage.mission_id, actor, PERMISSION)))


def authorize_somewhere(actor: Principal) -> None:
    """Refuse an actor who is not an admin anywhere."""
    if not actor.can_somewhere(PERMISSION):
        authorize(actor, PERMISSION, mission_id=None)


def shown_recipient(row: OutboxMessage, actor: Principal) -> str:
    """The recipient as the page shows it: in full at headquarters, masked elsewhere."""
    if actor.can(PERMISSION, None):
        return row.recipient
    return mask_email(row.recipient) if "@" in row.recipient else row.recipient[:4] + "***"


def retry(s: Session, *, actor: Principal, message_id: int) -> OutboxMessage:
    """Make a failed message due again now (the "retry now" button), with a fresh count."""
    row = s.get(OutboxMessage, message_id)
    if row is None or not actor.can(PERMISSION, row.mission_id):
        raise NotFound(f"no outbox message {message_id}")
    if row.status != "failed":
        raise NotRetried(f"outbox message {message_id} is {row.status}, not failed")
    row.status = "pending"
    row.attempts = 0
    row.next_attempt_at = utcnow()
    row.last_error = None
    _kick_after_commit(s)
    return row
