"""Send plain-text e-mail through the SMTP server named in the settings."""

from __future__ import annotations

import logging
import smtplib
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from elshi.accounts.service import mask_email
from elshi.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Email:
    """One message to one address."""

    to: str
    subject: str
    body: str

    def as_dict(self) -> dict[str, Any]:
        """Return the message as a JSON-ready dict (for the task queue)."""
        return asdict(self)


def build_message(settings: Settings, email: Email) -> EmailMessage:
    """Return the MIME message elshi sends for an Email."""
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = email.to
    msg["Subject"] = email.subject
    msg["Message-ID"] = make_msgid(domain="elshi")
    msg.set_content(email.body)
    return msg


def send_email(settings: Settings, email: Email) -> bool:
    """Send one e-mail; return False (and log, address masked) when no SMTP host is set."""
    if not settings.smtp_host:
        log.warning("e-mail to %s not sent: ELSHI_SMTP_HOST is not set", mask_email(email.to))
        return False
    smtp_send(settings, build_message(settings, email), timeout=20)
    log.info("e-mail sent to %s", mask_email(email.to))
    return True


def smtp_send(settings: Settings, msg: EmailMessage, *, timeout: float) -> None:
    """Hand one message to the SMTP server the settings name (STARTTLS and login if set)."""
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password)
        smtp.send_message(msg)
