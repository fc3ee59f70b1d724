"""The delivery layer: every message elshi sends to a person or a system goes through here.

One module per medium (email, telegram, sms, push, webhook), each with a Sender that keeps
its connection for many messages and a `send(message, settings)` for one; a failure is a
SendError. A message caused by a change is put in the outbox with `enqueue(session, message)`,
in the change's transaction, and sent from there (elshi.notify.outbox). Crisis broadcasts,
alerts and newsletters keep delivery rows of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from elshi.notify.message import MEDIA, Attachment, Message, Sender, SendError
from elshi.settings import Settings

if TYPE_CHECKING:
    from elshi.notify.models import OutboxMessage

__all__ = [
    "MEDIA",
    "Attachment",
    "Message",
    "SendError",
    "Sender",
    "enqueue",
    "open_sender",
    "send",
]


def enqueue(s: Session, message: Message, *, mission_id: int | None = None) -> OutboxMessage:
    """Put a message in the outbox in the caller's transaction; it is sent after the commit."""
    from elshi.notify import outbox

    return outbox.enqueue(s, message, mission_id=mission_id)


def open_sender(medium: str, settings: Settings) -> Sender:
    """Return a sender for a medium (close it when done)."""
    from elshi.notify.email import EmailSender
    from elshi.notify.push import PushSender
    from elshi.notify.sms import SmsSender
    from elshi.notify.telegram import TelegramSender
    from elshi.notify.webhook import WebhookSender

    senders: dict[str, Callable[[Settings], Sender]] = {
        "email": EmailSender,
        "telegram": TelegramSender,
        "sms": SmsSender,
        "push": PushSender,
        "webhook": WebhookSender,
    }
    if medium not in senders:
        raise SendError(f"unknown medium {medium!r}", retry=False, kind="config")
    return senders[medium](settings)


def send(message: Message, settings: Settings) -> str:
    """Send one message on its medium; return the medium's id for it. Raise SendError."""
    with open_sender(message.medium, settings) as sender:
        return sender.send(message)
