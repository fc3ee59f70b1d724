"""Web push (RFC 8030, messages encrypted per RFC 8291, VAPID per RFC 8292) with pywebpush.

elshi makes its own VAPID key pair on first use and keeps it in <home>/vapid.pem; browsers
subscribe with the public key (GET /consulate/push/key) and the subscription is stored per
citizen (POST /consulate/push/subscribe).
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02

from elshi import netguard
from elshi.notify.message import Message, Sender, SendError
from elshi.settings import Settings

_LOCK = threading.Lock()


def key_path(settings: Settings) -> Path:
    """Where the VAPID private key lives."""
    return Path(settings.home) / "vapid.pem"


def vapid(settings: Settings) -> Vapid02:
    """Return elshi's VAPID key, making and saving one (mode 600) the first time."""
    path = key_path(settings)
    with _LOCK:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = Vapid02()
            key.generate_keys()
            path.write_bytes(key.private_pem())
            path.chmod(0o600)
    return Vapid02.from_file(str(path))


def public_key(settings: Settings) -> str:
    """Return the applicationServerKey browsers subscribe with (base64url, uncompressed P-256)."""
    path = key_path(settings)
    if not path.exists():
        vapid(settings)
    return _public_key(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _public_key(path: str, mtime_ns: int) -> str:
    # Read and parsed once per key file (and again if the file is replaced), not per request.
    raw = Vapid02.from_file(path).public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


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
    """Web push through pywebpush: the text encrypted for the browser (aes128gcm), VAPID-signed.

    `to` is the browser's subscription (JSON); the notification shows the subject as its
    title and the text as its body, and the key is its tag and (shortened) its Topic.
    """

    medium = "push"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.key = vapid(settings)
        self.session = _GuardedPushSession(settings)

    def send(self, message: Message) -> str:
        """Send; 404/410 mean the subscription is gone, 429 and 5xx are tried again.

        An endpoint that is not a known push service at a public address is refused for good.
        """
        from pywebpush import WebPushException, webpush

        if not message.to:
            raise SendError("no push subscription", retry=False, kind="config")
        subscription = json.loads(message.to)
        payload = json.dumps({"title": message.subject, "body": message.text, "tag": message.key})
        try:
            resp: Any = webpush(
                subscription,
                data=payload,
                vapid_private_key=self.key,
                vapid_claims={"sub": self.settings.crisis_push_subject},
                ttl=24 * 3600,
                timeout=self.settings.http_timeout,
                headers={"Topic": message.key[-32:].replace("-", "")},
                requests_session=self.session,
            )
        except WebPushException as exc:
            status = exc.response.status_code if exc.response is not None else 0
            retry = status in (0, 429) or status >= 500
            raise SendError(
                f"web push: HTTP {status or 'error'}",
                retry=retry,
                kind="rate" if status == 429 else "server" if retry else "refused",
                status=status or None,
            ) from exc
        except netguard.Refused as exc:
            raise SendError(f"web push refused: {exc}", retry=False, kind="refused") from exc
        except (OSError, httpx.HTTPError) as exc:
            raise SendError(f"web push: {exc}", retry=True, kind="network") from exc
        return str(resp.headers.get("location") or message.key)

    def close(self) -> None:
        """Close the HTTP client."""
        self.session.close()


def send(message: Message, settings: Settings) -> str:
    """Send one web push notification; raise SendError on failure."""
    with PushSender(settings) as sender:
        return sender.send(message)
