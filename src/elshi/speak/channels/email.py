"""An e-mail newsletter to the mission's confirmed subscribers, sent over SMTP."""

from __future__ import annotations

from html import escape
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from elshi.accounts.service import audit
from elshi.db import utcnow
from elshi.notify import Message, SendError
from elshi.notify.email import EmailSender, SmtpServer
from elshi.plugins import hookimpl
from elshi.speak.channels.base import (
    Channel,
    ChannelConfig,
    ChannelContext,
    ChannelError,
    Metrics,
    Outgoing,
    Sent,
    from_send_error,
)
from elshi.speak.media import absolute


class EmailConfig(ChannelConfig):
    """The SMTP server and the sender."""

    smtp_host: str = Field(description="SMTP server host name.")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP port.")
    security: str = Field(
        default="starttls", description="starttls, tls (implicit, port 465) or none (loopback)."
    )
    username: str = Field(default="", description="SMTP user name; empty for none.")
    from_address: str = Field(description="Sender, e.g. Embassy <news@embassy.example>.")
    languages: list[str] = Field(
        default_factory=list,
        description="Languages sent (subscribers get their own language); empty means all.",
    )


class EmailSecrets(BaseModel):
    """Credentials."""

    password: str = Field(default="", description="SMTP password; empty for none.")


def send_mail(
    config: EmailConfig,
    secrets: EmailSecrets,
    *,
    to: str,
    subject: str,
    body: str,
    timeout: float = 20.0,
    unsubscribe: str = "",
    html: str | None = None,
) -> str:
    """Send one plain-text e-mail (with an HTML alternative when given) through the channel's
    SMTP server (elshi.notify.email); return its Message-ID. Failures are ChannelErrors."""
    server = SmtpServer(
        host=config.smtp_host,
        port=config.smtp_port,
        from_address=config.from_address,
        security=config.security,
        username=config.username,
        password=secrets.password,
        timeout=timeout,
    )
    message = Message(
        medium="email", to=to, subject=subject, text=body, html=html, unsubscribe=unsubscribe
    )
    try:
        with EmailSender(server=server) as sender:
            return sender.send(message)
    except SendError as exc:
        raise from_send_error(exc) from exc


def newsletter_html(
    post: Outgoing, images: list[dict[str, Any]], base: str, unsubscribe: str
) -> str:
    """Return the HTML version of a newsletter: the text, then its images served by elshi."""
    paragraphs = "".join(
        f'<p dir="auto">{escape(part).replace(chr(10), "<br>")}</p>'
        for part in post.text.split("\n\n")
    )
    figures = "".join(
        f'<p><img src="{escape(absolute(base, str(m["url"])))}" '
        f'alt="{escape(str(m.get("alt", "")))}" width="{int(m.get("width") or 0)}" '
        'style="max-width:100%;height:auto"></p>'
        for m in images
    )
    title = f"<h1>{escape(post.headline)}</h1>" if post.headline else ""
    return (
        f'<!doctype html><html lang="{escape(post.lang)}"><body>{title}{paragraphs}{figures}'
        f'<hr><p><a href="{escape(unsubscribe)}">{escape(unsubscribe)}</a></p></body></html>'
    )


class EmailChannel(Channel):
    """A newsletter: each confirmed subscriber of the mission whose language matches gets the
    version in that language. A delivery row per subscriber is written before each e-mail, so
    a retry sends only to those not yet reached."""

    slug = "email"
    title = "E-mail newsletter (SMTP, double opt-in)"
    Config = EmailConfig
    Secrets = EmailSecrets
    retry_safe = True

    images = "an HTML part shows the pictures (served by elshi) beside the plain text."

    subject_fallback = "title"

    def publish(
        self, ctx: ChannelContext, config: EmailConfig, secrets: EmailSecrets, post: Outgoing
    ) -> Sent:
        """Send the version to every confirmed subscriber of its language not yet reached."""
        from elshi.speak.models import Delivery, Subscriber

        assert ctx.db is not None
        with ctx.db.session() as s:
            rows = s.execute(
                select(Subscriber.id, Subscriber.email).where(
                    Subscriber.mission_id == post.mission_id,
                    Subscriber.lang == post.lang,
                    Subscriber.confirmed_at.is_not(None),
                    Subscriber.unsubscribed_at.is_(None),
                )
            ).all()
            # Subscribers' addresses are personal data: record that the newsletter read them.
            audit(
                db=s,
                action="subscriber.read",
                object_type="publication",
                object_id=post.publication_id,
                actor_label="newsletter",
                mission_id=post.mission_id,
                detail={"subscribers": len(rows), "lang": post.lang},
            )
        for sub_id, address in rows:
            try:
                with ctx.db.session() as s:
                    s.add(Delivery(publication_id=post.publication_id, subscriber_id=sub_id))
            except IntegrityError:
                continue  # reached (or tried) on an earlier attempt: never twice
            try:
                self._send_one(ctx, config, secrets, post, sub_id, address)
            except ChannelError as exc:
                if exc.kind != "rejected":
                    # The server or the account is at fault and the message was not taken:
                    # forget this try so the retry sends it, then stop.
                    with ctx.db.session() as s:
                        s.execute(
                            delete(Delivery).where(
                                Delivery.publication_id == post.publication_id,
                                Delivery.subscriber_id == sub_id,
                            )
                        )
                    raise
                status = "refused"  # this one address was refused: the others still get it
            else:
                status = "sent"
            with ctx.db.session() as s:
                d = s.scalar(
                    select(Delivery).where(
                        Delivery.publication_id == post.publication_id,
                        Delivery.subscriber_id == sub_id,
                    )
                )
                if d is not None:
                    d.status, d.at = status, utcnow()
        return Sent(external_id=f"newsletter-{post.publication_id}")

    def _send_one(
        self,
        ctx: ChannelContext,
        config: EmailConfig,
        secrets: EmailSecrets,
        post: Outgoing,
        sub_id: int,
        address: str,
    ) -> None:
        from elshi.speak.service import unsubscribe_url

        leave = unsubscribe_url(ctx.settings, sub_id)
        images = [m for m in post.media if m.get("key")]
        body = post.text
        for m in images:
            body += f"\n\n[{m.get('alt', '')}] {absolute(ctx.settings.base_url, m['url'])}"
        send_mail(
            config,
            secrets,
            to=address,
            subject=post.headline or post.text[:80],
            body=body + f"\n\n--\n{leave}",
            timeout=ctx.settings.http_timeout,
            unsubscribe=leave,
            html=newsletter_html(post, images, ctx.settings.base_url, leave) if images else None,
        )

    def metrics(
        self, ctx: ChannelContext, config: Any, secrets: Any, sent: Sent, publication_id: int
    ) -> Metrics:
        """Subscribers reached (views)."""
        from sqlalchemy import func

        from elshi.speak.models import Delivery

        assert ctx.db is not None
        with ctx.db.session() as s:
            n = s.scalar(
                select(func.count()).where(
                    Delivery.publication_id == publication_id, Delivery.status == "sent"
                )
            )
        return Metrics(views=n or 0, raw={"delivered": n or 0})


@hookimpl
def elshi_channels() -> list[type[Channel]]:
    """Register the newsletter channel."""
    return [EmailChannel]
