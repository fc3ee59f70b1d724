"""Old names kept for callers outside elshi: use elshi.notify (Message, send, SendError)."""

from __future__ import annotations

from typing import Any

from elshi.notify import webhook
from elshi.notify.message import Message, SendError
from elshi.settings import Settings

DeliveryError = SendError


def post_webhook(*, settings: Settings, url: str, payload: dict[str, Any]) -> None:
    """POST a JSON payload (elshi.notify.webhook.send); raise SendError on failure."""
    webhook.send(Message(medium="webhook", to=url, payload=payload), settings)
