"""Crisis side effects: deliver queued messages per channel (e-mail over SMTP, Telegram Bot
API, SMS through a gateway plugin), with claim-before-send, rate limits, retries with backoff,
and the reconciliation of deliveries a stopped worker left "sending".
"""

from __future__ import annotations

import contextlib
import json
import logging
import smtplib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import and_, func, select, update

from elshi import crypto, netguard
from elshi.crisis import service
from elshi.crisis.models import Broadcast, Crisis, Delivery, Recipient
from elshi.crisis.sms import GatewayError
from elshi.db import Database, utcnow
from elshi.plugins import get_sms_gateway
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


class SendError(Exception):
    """One delivery failed; `retry` says whether a later try may succeed."""

    def __init__(self, message: str, *, retry: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after


@dataclass
class Outgoing:
    """One message to one person on one channel."""

    delivery_id: int
    key: str
    to: str
    lang: str
    subject: str
    text: str


class Sender:
    """Sends on one channel; keeps a connection open for a batch."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def send(self, msg: Outgoing) -> str:  # pragma: no cover - overridden
        """Send one message and return the channel's id for it."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class EmailSender(Sender):
    """E-mail through the SMTP server of the settings, one connection per batch."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self.smtp is None:
            s = self.settings
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=30)
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password)
            self.smtp = smtp
        return self.smtp

    def send(self, msg: Outgoing) -> str:
        """Send one e-mail; its Message-ID is fixed by the delivery, so receivers can dedupe."""
        if not self.settings.smtp_host:
            raise SendError("ELSHI_SMTP_HOST is not set", retry=False)
        em = EmailMessage()
        em["From"] = self.settings.smtp_from
        em["To"] = msg.to
        em["Subject"] = msg.subject
        em["Message-ID"] = f"<{msg.key}@elshi>"
        em["X-Elshi-Delivery"] = msg.key
        em.set_content(msg.text)
        try:
            self._connect().send_message(em)
        except smtplib.SMTPRecipientsRefused as exc:
            raise SendError(f"address refused: {exc.recipients}", retry=False) from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise SendError(f"SMTP {exc.smtp_code}", retry=exc.smtp_code < 500) from exc
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise SendError(f"SMTP: {exc}", retry=True) from exc
        return msg.key

    def close(self) -> None:
        """Say QUIT."""
        if self.smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self.smtp.quit()
            self.smtp = None


class HttpSender(Sender):
    """A sender over HTTP with one keep-alive client."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.http = httpx.Client(
            timeout=settings.http_timeout, headers={"User-Agent": settings.user_agent}
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()


class TelegramSender(HttpSender):
    """Telegram Bot API sendMessage to the person's chat with the mission's bot."""

    def send(self, msg: Outgoing) -> str:
        """Send; 429 carries parameters.retry_after."""
        token = self.settings.telegram_bot_token
        if not token:
            raise SendError("ELSHI_TELEGRAM_BOT_TOKEN is not set", retry=False)
        url = f"{self.settings.telegram_api_url.rstrip('/')}/bot{token}/sendMessage"
        try:
            resp = self.http.post(url, json={"chat_id": msg.to, "text": msg.text})
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise SendError(f"Telegram unreachable: {exc}", retry=True) from exc
        try:
            data = resp.json()
        except ValueError:
            data = {}
        if resp.status_code == 200 and data.get("ok"):
            return str(data["result"]["message_id"])
        after = (data.get("parameters") or {}).get("retry_after")
        retry = resp.status_code == 429 or resp.status_code >= 500
        raise SendError(
            f"Telegram: {data.get('description') or resp.status_code}",
            retry=retry,
            retry_after=float(after) if after else None,
        )


class SmsSender(HttpSender):
    """SMS through the gateway plugin the settings name."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.gateway = get_sms_gateway(settings.crisis_sms_gateway)

    def send(self, msg: Outgoing) -> str:
        """Send through the gateway with the delivery's idempotency key."""
        if not self.settings.crisis_sms_url:
            raise SendError("ELSHI_CRISIS_SMS_URL is not set", retry=False)
        try:
            return self.gateway.send(
                self.http, self.settings, to=msg.to, body=msg.text, key=msg.key
            )
        except GatewayError as exc:
            raise SendError(str(exc), retry=exc.retry, retry_after=exc.retry_after) from exc


@dataclass
class _PushAnswer:
    """A push service's answer in the shape pywebpush reads (status_code, reason, text)."""

    status_code: int
    reason: str
    text: str
    headers: httpx.Headers


class _GuardedPushSession:
    """What pywebpush posts through: elshi's checked HTTP client, not requests.

    Each POST goes to a known push service (ELSHI_PUSH_HOSTS) at the public address that was
    checked (elshi.netguard); redirects are not followed.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.http = netguard.client(
            settings, follow_redirects=False, headers={"User-Agent": settings.user_agent}
        )

    def post(self, url: str, *, data: Any = None, headers: Any = None, timeout: Any = None) -> Any:
        """POST after checking that the endpoint is a known push service."""
        netguard.check_push_endpoint(url, settings=self.settings, resolve=None)
        resp = self.http.post(
            url,
            content=data,
            headers=dict(headers or {}),
            timeout=timeout or self.settings.http_timeout,
        )
        return _PushAnswer(resp.status_code, resp.reason_phrase, resp.text, resp.headers)

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()


class PushSender(Sender):
    """Web push through pywebpush: the text encrypted for the browser (aes128gcm), VAPID-signed."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        from elshi.crisis.push import vapid

        self.key = vapid(settings)
        self.session = _GuardedPushSession(settings)

    def send(self, msg: Outgoing) -> str:
        """Send; 404/410 mean the subscription is gone, 429 and 5xx are tried again.

        An endpoint that is not a known push service at a public address is refused for good.
        """
        from pywebpush import WebPushException, webpush

        if not msg.to:
            raise SendError("no push subscription", retry=False)
        subscription = json.loads(msg.to)
        payload = json.dumps({"title": msg.subject, "body": msg.text, "tag": msg.key})
        try:
            resp: Any = webpush(
                subscription,
                data=payload,
                vapid_private_key=self.key,
                vapid_claims={"sub": self.settings.crisis_push_subject},
                ttl=24 * 3600,
                timeout=self.settings.http_timeout,
                headers={"Topic": msg.key[-32:].replace("-", "")},
                requests_session=self.session,
            )
        except WebPushException as exc:
            status = exc.response.status_code if exc.response is not None else 0
            retry = status in (0, 429) or status >= 500
            raise SendError(f"web push: HTTP {status or 'error'}", retry=retry) from exc
        except netguard.Refused as exc:
            raise SendError(f"web push refused: {exc}", retry=False) from exc
        except (OSError, httpx.HTTPError) as exc:
            raise SendError(f"web push: {exc}", retry=True) from exc
        return str(resp.headers.get("location") or msg.key)

    def close(self) -> None:
        """Close the HTTP client."""
        self.session.close()


SENDERS: dict[str, type[Sender]] = {
    "email": EmailSender,
    "telegram": TelegramSender,
    "push": PushSender,
    "sms": SmsSender,
}


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
) -> Outgoing:
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
    return Outgoing(
        delivery_id=delivery_id,
        key=f"crisis-d{delivery_id}",
        to=to[channel],
        lang=lang,
        subject=m.get("subject") or crisis.title,
        text=text,
    )


CLAIM = 20


def _claim(db: Database, ids: list[int], now: datetime) -> set[int]:
    """Claim pending rows (one UPDATE ... RETURNING): only one worker can win each row."""
    with db.engine.begin() as conn:
        won = conn.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids), Delivery.status == "pending")
            .values(status="sending", claimed_at=now, attempts=Delivery.attempts + 1)
            .returning(Delivery.id)
        )
        return {int(r[0]) for r in won}


def _settle(db: Database, outcomes: list[tuple[int, dict[str, Any]]]) -> None:
    """Record the outcomes of a claimed chunk in one transaction."""
    if not outcomes:
        return
    with db.engine.begin() as conn:
        for delivery_id, values in outcomes:
            conn.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.status == "sending")
                .values(**values)
            )


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Wait before the next try: the gateway's Retry-After, else 30 s doubling up to 30 min."""
    if retry_after is not None:
        return max(1.0, retry_after)
    return float(min(1800, 30 * 2 ** max(0, attempt - 1)))


def deliver(
    db: Database, settings: Settings, *, broadcast_id: int, channel: str, limit: int = BATCH
) -> dict[str, int]:
    """Send up to `limit` due deliveries of one broadcast on one channel.

    Rows are claimed in small chunks (pending -> sending, one UPDATE that only one worker can
    win) before the channel is called, then marked sent, failed, or pending again with a later
    due time. A worker stopped mid-chunk leaves its rows "sending": they become "unknown".
    """
    out = {"sent": 0, "failed": 0, "retry": 0, "skipped": 0}
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
    if not rows:
        return out
    sender = SENDERS[channel](settings)
    rate = _rate(settings, channel)
    gap = 1.0 / rate if rate > 0 else 0.0
    last = 0.0
    try:
        for start in range(0, len(rows), CLAIM):
            chunk = rows[start : start + CLAIM]
            won = _claim(db, [r[0] for r in chunk], utcnow())
            out["skipped"] += len(chunk) - len(won)
            outcomes: list[tuple[int, dict[str, Any]]] = []
            try:
                for delivery_id, attempts, recipient in chunk:
                    if delivery_id not in won:
                        continue
                    if gap:
                        wait = last + gap - time.monotonic()
                        if wait > 0:
                            time.sleep(wait)
                        last = time.monotonic()
                    push_to = json.dumps(subs[recipient.citizen_id]) if subs else ""
                    outcomes.append(
                        _send_one(
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
                    )
            finally:
                _settle(db, outcomes)
    finally:
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
    msg = compose(
        settings,
        channel=channel,
        crisis=crisis,
        messages=messages,
        delivery_id=delivery_id,
        recipient=recipient,
        push_to=push_to,
    )
    try:
        external = sender.send(msg)
    except SendError as exc:
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
