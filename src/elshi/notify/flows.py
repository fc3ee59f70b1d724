"""Outbound delivery: e-mail over SMTP, a JSON webhook, a Telegram bot message."""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
from email.message import EmailMessage
from typing import Any

import httpx

from elshi import netguard
from elshi.notify.email import smtp_send
from elshi.settings import Settings


class DeliveryError(RuntimeError):
    """Sending failed; the message says where and why (kept on the delivery, retried)."""


def email_configured(settings: Settings) -> bool:
    """Return True when an SMTP server is set."""
    return bool(settings.smtp_host)


def send_email(
    *,
    settings: Settings,
    to: list[str],
    subject: str,
    text: str,
    html: str | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
) -> None:
    """Send one message to some addresses; attachments are (filename, mime type, bytes)."""
    if not settings.smtp_host:
        raise DeliveryError("e-mail: ELSHI_SMTP_HOST is not set")
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, mime, data in attachments or []:
        main, _, sub = mime.partition("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=filename)
    try:
        smtp_send(settings, msg, timeout=settings.http_timeout)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(
            f"e-mail via {settings.smtp_host}:{settings.smtp_port}: {type(exc).__name__}: {exc}"
        ) from exc


def signature(secret: str, body: bytes) -> str:
    """Return the X-Elshi-Signature value of a webhook body (HMAC-SHA256, hex)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(*, settings: Settings, url: str, payload: dict[str, Any]) -> None:
    """POST a JSON payload; any answer but 2xx is a failure."""
    if not url.startswith(("http://", "https://")):
        raise DeliveryError(f"webhook {url!r}: not an http(s) URL")
    body = json.dumps(payload, ensure_ascii=False, default=str).encode()
    headers = {"Content-Type": "application/json", "User-Agent": settings.user_agent}
    if settings.webhook_secret:
        headers["X-Elshi-Signature"] = signature(settings.webhook_secret, body)
    try:
        # Staff set webhook addresses: they reach public addresses only (elshi.netguard).
        with netguard.client(settings, follow_redirects=False) as http:
            response = http.post(url, content=body, headers=headers)
    except netguard.Refused as exc:
        raise DeliveryError(f"webhook {url}: refused: {exc}") from exc
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook {url}: {type(exc).__name__}: {exc}") from exc
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"webhook {url}: answered HTTP {response.status_code}")


def send_telegram(*, settings: Settings, chat_id: str, text: str) -> None:
    """Send a message through the Bot API (sendMessage)."""
    if not settings.telegram_bot_token:
        raise DeliveryError("telegram: ELSHI_TELEGRAM_BOT_TOKEN is not set")
    url = f"{settings.telegram_api_url.rstrip('/')}/bot{settings.telegram_bot_token}/sendMessage"
    try:
        response = httpx.post(
            url,
            json={"chat_id": chat_id, "text": text[:4096], "disable_web_page_preview": True},
            timeout=settings.http_timeout,
        )
    except httpx.HTTPError as exc:
        raise DeliveryError(f"telegram: {type(exc).__name__}") from exc
    ok = response.status_code == 200 and response.json().get("ok") is True
    if not ok:
        raise DeliveryError(f"telegram: answered HTTP {response.status_code}")
