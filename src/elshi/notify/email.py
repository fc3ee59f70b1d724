"""E-mail over SMTP: the server of the settings (ELSHI_SMTP_*) or one a channel names."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

from elshi.accounts.service import mask_emails
from elshi.notify.message import Message, Sender, SendError
from elshi.settings import Settings


@dataclass(frozen=True)
class SmtpServer:
    """Where e-mail is handed over and who it is from.

    `security` is "starttls", "tls" (implicit, port 465) or "none". `verify` checks the
    server's certificate against the system's trusted authorities (or SSL_CERT_FILE) and its
    host name: a relay on the path cannot read citizens' e-mails by presenting its own.
    """

    host: str
    port: int
    from_address: str
    security: str = "none"
    username: str = ""
    password: str = ""
    verify: bool = True
    timeout: float = 20.0

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float | None = None) -> SmtpServer:
        """The server ELSHI_SMTP_* name (timeout: ELSHI_HTTP_TIMEOUT unless given)."""
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            from_address=settings.smtp_from,
            security="starttls" if settings.smtp_starttls else "none",
            username=settings.smtp_username,
            password=settings.smtp_password,
            verify=True,
            timeout=settings.http_timeout if timeout is None else timeout,
        )

    @property
    def where(self) -> str:
        """How errors name this server."""
        return f"e-mail via {self.host}:{self.port}"


def configured(settings: Settings) -> bool:
    """Return True when an SMTP server is set."""
    return bool(settings.smtp_host)


def compose(message: Message, *, sender: str) -> EmailMessage:
    """Return the MIME message for a Message: plain text, an HTML alternative, attachments.

    With a key, the Message-ID is fixed by it (receivers can drop a second copy) and the
    X-Elshi-Delivery header carries it.
    """
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = message.to
    msg["Subject"] = message.subject
    if message.key:
        msg["Message-ID"] = f"<{message.key}@elshi>"
        msg["X-Elshi-Delivery"] = message.key
    else:
        msg["Message-ID"] = make_msgid(domain="elshi")
    if message.unsubscribe:
        msg["List-Unsubscribe"] = f"<{message.unsubscribe}>"
    msg.set_content(message.text)
    if message.html is not None:
        msg.add_alternative(message.html, subtype="html")
    for a in message.attachments:
        main, _, sub = a.mime.partition("/")
        msg.add_attachment(a.data, maintype=main, subtype=sub, filename=a.filename)
    return msg


class EmailSender(Sender):
    """Sends e-mail over one SMTP connection, opened at the first message, until `close`."""

    medium = "email"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        server: SmtpServer | None = None,
        timeout: float | None = None,
    ) -> None:
        if server is None:
            if settings is None:
                raise TypeError("EmailSender needs settings or a server")
            server = SmtpServer.from_settings(settings, timeout=timeout)
        self.server = server
        self.smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self.smtp is None:
            s = self.server
            context = ssl.create_default_context() if s.verify else None
            if s.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            try:
                if s.security == "starttls":
                    smtp.starttls(context=context)
                if s.username:
                    smtp.login(s.username, s.password)
            except BaseException:
                smtp.close()
                raise
            self.smtp = smtp
        return self.smtp

    def send(self, message: Message) -> str:
        """Send one e-mail; return its key, or its Message-ID when it has none."""
        s = self.server
        if not s.host:
            raise SendError("e-mail: ELSHI_SMTP_HOST is not set", retry=False, kind="config")
        msg = compose(message, sender=s.from_address)
        try:
            self._connect().send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            raise SendError(
                f"{s.where}: sign-in refused: {exc.smtp_code}", retry=False, kind="auth"
            ) from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            # The server's answer may name the recipient: never keep an address in an error.
            detail = mask_emails(
                str(exc.smtp_error, "utf-8", "replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            retry = exc.smtp_code < 500
            raise SendError(
                f"{s.where}: SMTP {exc.smtp_code}: {detail[:300]}",
                retry=retry,
                kind="server" if retry else "refused",
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise SendError(
                f"{s.where}: the server refused the recipient", retry=False, kind="refused"
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise SendError(
                f"{s.where}: {type(exc).__name__}: {exc}", retry=True, kind="network"
            ) from exc
        return message.key or str(msg["Message-ID"])

    def close(self) -> None:
        """Say QUIT."""
        if self.smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self.smtp.quit()
            self.smtp = None


def send(
    message: Message,
    settings: Settings,
    *,
    server: SmtpServer | None = None,
    timeout: float | None = None,
) -> str:
    """Send one e-mail over its own connection; raise SendError on failure."""
    with EmailSender(settings, server=server, timeout=timeout) as sender:
        return sender.send(message)
