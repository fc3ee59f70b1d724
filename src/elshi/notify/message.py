"""What the delivery layer sends, how a send fails, and what every medium's sender offers.

A `Message` is a plain value (it round-trips through `as_dict`/`from_dict`, so a queue or an
outbox can keep it). Each medium (e-mail, Telegram, SMS, web push, webhook) has a module in
elshi.notify with a `Sender` subclass that can send many messages over one connection, and a
`send(message, settings)` function for one message. Every failure is a `SendError` that says
what failed and where, whether a later try may succeed, and when.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Medium = Literal["email", "telegram", "sms", "push", "webhook"]
MEDIA: tuple[str, ...] = ("email", "telegram", "sms", "push", "webhook")

#: Why a send failed: "config" (elshi is not set up for the medium), "auth" (credentials
#: refused), "refused" (this message or recipient refused), "rate" (too many, try later),
#: "server" (the server failed), "network" (not reached: nothing was sent), "unsure" (the
#: request left but no answer came: the message may have arrived).
Kind = Literal["config", "auth", "refused", "rate", "server", "network", "unsure", ""]


class SendError(Exception):
    """One send failed; `retry` says whether a later try may succeed, `retry_after` when.

    The message says what failed and where (the medium and the server). `kind` and `status`
    (the HTTP status, when there was one) let a caller map the failure to its own terms.
    """

    def __init__(
        self,
        message: str,
        *,
        retry: bool,
        retry_after: float | None = None,
        kind: Kind = "",
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after
        self.kind = kind
        self.status = status


@dataclass(frozen=True)
class Attachment:
    """A file sent with an e-mail."""

    filename: str
    mime: str
    data: bytes


@dataclass(frozen=True)
class Message:
    """One message to one recipient (for e-mail: one or more addresses, comma-separated).

    `to` is an e-mail address, a Telegram chat id, a phone number, a push subscription (JSON)
    or a webhook URL. `key` identifies the message for its receiver: the e-mail Message-ID,
    the SMS gateway's idempotency key, the push notification's tag and topic. `unsubscribe`
    is the link e-mail clients offer (List-Unsubscribe); `preview_links=False` asks Telegram
    not to preview the links in the text. A webhook posts `payload` as JSON.
    """

    medium: str
    to: str
    text: str = ""
    subject: str = ""
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    key: str = ""
    unsubscribe: str = ""
    preview_links: bool = True
    payload: dict[str, Any] | None = field(default=None, hash=False)

    def as_dict(self) -> dict[str, Any]:
        """Return the message as a JSON-ready dict (for a queue or an outbox)."""
        out = asdict(self)
        out["attachments"] = [
            {"filename": a.filename, "mime": a.mime, "data": base64.b64encode(a.data).decode()}
            for a in self.attachments
        ]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        """Read a message written by `as_dict` (an e-mail queued as to/subject/body too)."""
        values = dict(data)
        if "body" in values:  # queued before the delivery layer: {"to", "subject", "body"}
            values["text"] = values.pop("body")
        values.setdefault("medium", "email")
        values["attachments"] = tuple(
            Attachment(a["filename"], a["mime"], base64.b64decode(a["data"]))
            for a in values.get("attachments") or []
        )
        return cls(**values)


class Sender:
    """Sends messages on one medium; keeps its connection open until `close`."""

    medium: str = ""

    def send(self, message: Message) -> str:  # pragma: no cover - overridden
        """Send one message; return the medium's id for it. Raise SendError on failure."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection."""

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def retry_after_header(value: str | None) -> float | None:
    """Read a Retry-After header given in seconds; None otherwise."""
    value = (value or "").strip()
    return float(value) if value.isdigit() else None
