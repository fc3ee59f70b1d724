"""The delivery layer: every message elshi sends to a person or a system goes through here.

One module per medium (email, telegram, sms, push, webhook), each with a Sender that keeps
its connection for many messages and a `send(message, settings)` for one. Callers keep
their own bookkeeping (delivery rows, retries, escalation); a failure is a SendError.
"""

from __future__ import annotations

from collections.abc import Callable

from elshi.notify.message import MEDIA, Attachment, Message, Sender, SendError
from elshi.settings import Settings

__all__ = ["MEDIA", "Attachment", "Message", "SendError", "Sender", "open_sender", "send"]


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
