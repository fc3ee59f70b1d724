"""Crisis side effects: deliver queued messages per channel (e-mail, Telegram, SMS, web push,
all through elshi.notify), with claim-before-send (one row at a time, so a stopped worker
leaves at most the row it was sending), rate limits, retries with backoff, and the
reconciliation of deliveries a stopped worker left "sending".
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update

from elshi import crypto, jobs, notify
from elshi.crisis import service
from elshi.crisis.models import Broadcast, Crisis, Delivery, Recipient
from elshi.db import Database, utcnow
from elshi.notify import Message, Sender, SendError
from elshi.notify.email import EmailSender
from elshi.notify.sms import SmsSender as SmsSender
from elshi.settings import Settings

log = logging.getLogger(__name__)

BATCH = 200
CHECKIN_HINT = {
    "kk": "Жауап беріңіз (қауіпсізмін / көмек керек / кеттім):",
    "ru": "Ответьте (в безопасности / нужна помощь / уехал):",
    "en": "Answer (I am safe / I need help / I have left):",
}
SMS_HINT = {
    "kk": "SMS жауап: SAFE, HELP немесе LEFT",
    "ru": "Ответ по SMS: SAFE, HELP или LEFT",
    "en": "Reply by SMS: SAFE, HELP or LEFT",
}


def open_sender(settings: Settings, channel: str) -> Sender:
    """The delivery layer's sender for a channel; e-mail keeps one SMTP connection a batch."""
    if channel == "email":
        return EmailSender(settings, timeout=30)
    return notify.open_sender(channel, settings)


def _rate(settings: Settings, channel: str) -> float:
    return float(getattr(settings, f"crisis_rate_{channel}", 0) or 0)


def _pick(messages: dict[str, dict[str, str]], lang: str) -> tuple[str, dict[str, str]]:
    for code in (lang, "en", *messages):
        if code in messages:
            return code, messages[code]
    raise KeyError("broadcast has no message")


def compose(
    settings: Settings,
    *,
    channel: str,
    crisis: Crisis,
    messages: dict[str, dict[str, str]],
    delivery_id: int,
    recipient: Any,
    push_to: str = "",
) -> Message:
    """Build one person's message in their language with their personal check-in link."""
    lang, m = _pick(messages, recipient.lang)
    link = service.checkin_url(
        base_url=settings.base_url,
        key=crypto.purpose_key(settings, crypto.CHECKIN),
        crisis_id=crisis.id,
        recipient_id=recipient.id,
    )
    to = {
        "email": recipient.email,
        "telegram": recipient.telegram_chat_id,
        "push": push_to,
        "sms": recipient.phone,
    }
    if channel == "sms":
        text = service.sms_body(m, link=link)
    else:
        text = f"{m['text']}\n\n{CHECKIN_HINT[lang]}\n{link}\n\n{SMS_HINT[lang]}\n"
    return Message(
        medium=channel,
        to=to[channel],
        key=f"crisis-d{delivery_id}",
        subject=m.get("subject") or crisis.title,
        text=text,
    )


def _claim(
    db: Database, delivery_id: int, now: datetime, done: tuple[int, dict[str, Any]] | None
) -> bool:
    """Record the last send's outcome and claim the next row (pending -> sending), in one
    transaction; return True when this worker won the row (only one can)."""
    with db.engine.begin() as conn:
        if done is not None:
            _record(conn, *done)
        won = conn.execute(
            update(Delivery)
            .where(
                Delivery.id == delivery_id,
                Delivery.status == "pending",
                Delivery.due_at <= now,
            )
            .values(status="sending", claimed_at=now, attempts=Delivery.attempts + 1)
            .returning(Delivery.id)
        ).first()
        return won is not None


def _record(conn: Any, delivery_id: int, values: dict[str, Any]) -> None:
    conn.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == "sending")
        .values(**values)
    )


def _settle(db: Database, done: tuple[int, dict[str, Any]] | None) -> None:
    """Record the outcome of a send in its own transaction."""
    if done is not None:
        with db.engine.begin() as conn:
            _record(conn, *done)


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Wait before the next try: the gateway's Retry-After, else 30 s doubling up to 30 min."""
    if retry_after is not None:
        return max(1.0, retry_after)
    return float(min(1800, 30 * 2 ** max(0, attempt - 1)))


def deliver(
    db: Database, settings: Settings, *, broadcast_id: int, channel: str, limit: int = BATCH
) -> dict[str, int]:
    """Send up to `limit` due deliveries of one broadcast on one channel.

    Each row is claimed right before its send (pending -> sending, an UPDATE only one
    worker can win) and its outcome recorded with the next claim: sent, failed, pending
    again with a later due time, or unknown when the request left and no answer came. So a
    row is "sending" only while its send may be under way: a worker that stops (or is
    killed) leaves at most that one row, which becomes "unknown"; every row it had not
    started stays pending for the next worker. Asked to stop (SIGTERM), the worker finishes
    the send under way and returns before claiming the next row.
    """
    out = {"sent": 0, "failed": 0, "retry": 0, "skipped": 0, "unknown": 0}
    now = utcnow()
    with db.session() as s:
        b = s.get(Broadcast, broadcast_id)
        crisis = s.get(Crisis, b.crisis_id) if b is not None else None
        if b is None or crisis is None or crisis.halted or b.status != "sent":
            return out
        rows = s.execute(
            select(Delivery.id, Delivery.attempts, Recipient)
            .join(Recipient, Recipient.id == Delivery.recipient_id)
            .where(
                Delivery.broadcast_id == broadcast_id,
                Delivery.channel == channel,
                Delivery.status == "pending",
                Delivery.due_at <= now,
            )
            .order_by(Delivery.id)
            .limit(limit)
        ).all()
        messages = dict(b.messages)
        subs = (
            service.push_subscriptions(db=s, citizen_ids=[r[2].citizen_id for r in rows])
            if channel == "push"
            else {}
        )
    if not rows or jobs.stopping():
        return out
    sender = open_sender(settings, channel)
    rate = _rate(settings, channel)
    gap = 1.0 / rate if rate > 0 else 0.0
    last = 0.0
    #: The outcome of the last send, recorded with the next claim (one transaction a send).
    done: tuple[int, dict[str, Any]] | None = None
    try:
        for delivery_id, attempts, recipient in rows:
            if jobs.stopping():
                break
            if gap:
                wait = last + gap - time.monotonic()
                if wait > 0:
                    _settle(db, done)  # not left "sending" while waiting
                    done = None
                    if jobs.wait_unless_stopping(wait):
                        break
                last = time.monotonic()
            won = _claim(db, delivery_id, utcnow(), done)
            done = None
            if not won:
                out["skipped"] += 1
                continue
            sub = subs.get(recipient.citizen_id)
            push_to = json.dumps(sub) if sub else ""
            done = _send_one(
                settings,
                sender,
                channel,
                crisis,
                messages,
                out,
                delivery_id,
                attempts,
                recipient,
                push_to,
            )
    finally:
        _settle(db, done)
        sender.close()
    return out


def _send_one(
    settings: Settings,
    sender: Sender,
    channel: str,
    crisis: Crisis,
    messages: dict[str, dict[str, str]],
    out: dict[str, int],
    delivery_id: int,
    attempts: int,
    recipient: Any,
    push_to: str = "",
) -> tuple[int, dict[str, Any]]:
    """Send one claimed delivery; return the row's new values."""
    try:
        msg = compose(
            settings,
            channel=channel,
            crisis=crisis,
            messages=messages,
            delivery_id=delivery_id,
            recipient=recipient,
            push_to=push_to,
        )
    except Exception as exc:  # nothing left: the message could not be made
        log.error("crisis delivery %d: cannot compose: %s", delivery_id, exc)
        out["failed"] += 1
        return delivery_id, {"status": "failed", "error": f"cannot compose: {exc}"[:500]}
    try:
        external = sender.send(msg)
    except SendError as exc:
        if exc.kind == "unsure":
            # The request left and no answer came: the person may have it, so it is never
            # sent again on this channel (escalation takes over). The rest of the batch goes on.
            out["unknown"] += 1
            return delivery_id, {"status": "unknown", "error": str(exc)[:500]}
        tries = attempts + 1
        if exc.retry and tries < settings.crisis_max_attempts:
            due = utcnow() + timedelta(seconds=backoff_seconds(tries, exc.retry_after))
            out["retry"] += 1
            return delivery_id, {"status": "pending", "due_at": due, "error": str(exc)[:500]}
        out["failed"] += 1
        return delivery_id, {"status": "failed", "error": str(exc)[:500]}
    out["sent"] += 1
    return delivery_id, {"status": "sent", "sent_at": utcnow(), "external_id": external[:200]}


def due_batches(db: Database, *, now: datetime | None = None) -> list[tuple[int, str]]:
    """Return (broadcast, channel) pairs that have deliveries due now."""
    now = now or utcnow()
    with db.session() as s:
        return [
            (int(b), str(c))
            for b, c in s.execute(
                select(Delivery.broadcast_id, Delivery.channel)
                .join(Broadcast, Broadcast.id == Delivery.broadcast_id)
                .join(Crisis, Crisis.id == Broadcast.crisis_id)
                .where(
                    Delivery.status == "pending",
                    Delivery.due_at <= now,
                    Crisis.halted.is_(False),
                    Broadcast.status == "sent",
                )
                .group_by(Delivery.broadcast_id, Delivery.channel)
            )
        ]


def reconcile(db: Database, settings: Settings, *, now: datetime | None = None) -> int:
    """Deliveries a stopped worker left "sending" past the lease become "unknown": they are
    never sent again on that channel (the person may have it), and escalation takes over."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.crisis_lease_seconds)
    with db.engine.begin() as conn:
        res = conn.execute(
            update(Delivery)
            .where(and_(Delivery.status == "sending", Delivery.claimed_at < cutoff))
            .values(status="unknown", error="the worker stopped while sending; not sent again")
        )
    return int(res.rowcount or 0)


def tick(db: Database, settings: Settings, *, now: datetime | None = None) -> dict[str, Any]:
    """Reconcile, escalate, and return the batches due now."""
    found: dict[str, Any] = {"unknown": reconcile(db, settings, now=now)}
    with db.session() as s:
        found.update(service.escalate(db=s, minutes=settings.crisis_escalate_minutes, now=now))
    found["due"] = due_batches(db, now=now)
    return found


def pending_count(db: Database, *, broadcast_id: int | None = None) -> int:
    """Count deliveries still pending or being sent."""
    with db.session() as s:
        stmt = select(func.count()).where(Delivery.status.in_(("pending", "sending")))
        if broadcast_id is not None:
            stmt = stmt.where(Delivery.broadcast_id == broadcast_id)
        return int(s.scalar(stmt) or 0)
