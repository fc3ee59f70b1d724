"""A JSON webhook: POST the payload, signed with ELSHI_WEBHOOK_SECRET, to a public address."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from elshi import netguard
from elshi.notify.message import Message, Sender, SendError
from elshi.settings import Settings


def signature(secret: str, body: bytes) -> str:
    """Return the X-Elshi-Signature value of a webhook body (HMAC-SHA256, hex)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender(Sender):
    """POSTs each message's payload as JSON to its URL (`to`); any answer but 2xx fails."""

    medium = "webhook"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def send(self, message: Message) -> str:
        """POST the payload; return the HTTP status."""
        settings, url = self.settings, message.to
        if not url.startswith(("http://", "https://")):
            raise SendError(f"webhook {url!r}: not an http(s) URL", retry=False, kind="config")
        body = json.dumps(message.payload or {}, ensure_ascii=False, default=str).encode()
        headers = {"Content-Type": "application/json", "User-Agent": settings.user_agent}
        if settings.webhook_secret:
            headers["X-Elshi-Signature"] = signature(settings.webhook_secret, body)
        try:
            # Staff set webhook addresses: they reach public addresses only (elshi.netguard).
            with netguard.client(settings, follow_redirects=False) as http:
                response = http.post(url, content=body, headers=headers)
        except netguard.Refused as exc:
            raise SendError(f"webhook {url}: refused: {exc}", retry=False, kind="refused") from exc
        except httpx.HTTPError as exc:
            raise SendError(
                f"webhook {url}: {type(exc).__name__}: {exc}", retry=True, kind="network"
            ) from exc
        status = response.status_code
        if not 200 <= status < 300:
            retry = status == 429 or status >= 500
            raise SendError(
                f"webhook {url}: answered HTTP {status}",
                retry=retry,
                kind="rate" if status == 429 else "server" if retry else "refused",
                status=status,
            )
        return str(status)


def send(message: Message, settings: Settings) -> str:
    """POST one webhook; raise SendError on failure."""
    with WebhookSender(settings) as sender:
        return sender.send(message)
