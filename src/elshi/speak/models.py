"""Speak tables: statements and their language versions, approvals, channel accounts,
publications, engagement snapshots and newsletter subscribers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from elshi.db import Base, JSONType, Timestamps, UTCDateTime, utcnow

#: Languages a statement may be written in.
STATEMENT_LANGUAGES = ("kk", "ru", "en", "zh", "ar")
STATEMENT_STATUSES = ("draft", "submitted", "returned", "approved", "archived")
#: pending: waits for its time; sending: a worker claimed it; sent; failed: needs a person;
#: unknown: a worker stopped mid-send on a platform that cannot tell whether it arrived;
#: deleted: taken down after it was sent.
PUBLICATION_STATUSES = ("pending", "sending", "sent", "failed", "unknown", "deleted")


class Statement(Timestamps, Base):
    """A position the mission wants to say, in one or more languages."""

    __tablename__ = "statement"
    __table_args__ = (Index("ix_statement_mission_scheduled", "mission_id", "scheduled_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mission_id: Mapped[int] = mapped_column(ForeignKey("mission.id"))
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    required_approvals: Mapped[int] = mapped_column(Integer, default=1)
    #: Bumped by every change of content; approvals count only for the current revision.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    approved_revision: Mapped[int | None] = mapped_column(Integer)
    #: Digest of every version's text as approved; checked again right before sending.
    approved_digest: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    submitted_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    schedule_tz: Mapped[str | None] = mapped_column(String(64))
    #: Rebuttal: the Listen search this statement answers, and optionally a narrative id.
    topic_query: Mapped[str | None] = mapped_column(Text)
    narrative_id: Mapped[int | None] = mapped_column(Integer)


class StatementVersion(Base):
    """The statement in one language: text, media and per-channel variants."""

    __tablename__ = "statement_version"
    __table_args__ = (UniqueConstraint("statement_id", "lang"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("statement.id", ondelete="CASCADE"))
    lang: Mapped[str] = mapped_column(String(8))
    headline: Mapped[str] = mapped_column(String(300), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    #: [{"url": ..., "alt": ...}]: pictures or video links shown with the text.
    media: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    #: {"x": "shorter text for X", ...}: replaces the text on that channel.
    variants: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    #: Drafted from this language (translation); None for an original.
    source_lang: Mapped[str | None] = mapped_column(String(8))
    translated_with: Mapped[str | None] = mapped_column(String(64))
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def text_for(self, channel: str) -> str:
        """Return the text to send on a channel: its variant if there is one."""
        return (self.variants or {}).get(channel) or self.text


class Approval(Base):
    """One approver's decision on one revision of a statement."""

    __tablename__ = "approval"

    id: Mapped[int] = mapped_column(primary_key=True)
    statement_id: Mapped[int] = mapped_column(
        ForeignKey("statement.id", ondelete="CASCADE"), index=True
    )
    revision: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    user_label: Mapped[str] = mapped_column(String(320), default="")
    decision: Mapped[str] = mapped_column(String(16))  # approve | return
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: What an approver approved: every version's headline, text and channel variants
    #: ([{"lang", "headline", "text", "variants"}]), so a later edit can be shown against it.
    content: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)


class ChannelAccount(Base):
    """A mission's account on one channel, with its settings and encrypted credentials."""

    __tablename__ = "channel_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    mission_id: Mapped[int] = mapped_column(ForeignKey("mission.id"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: Fernet token of the credentials' JSON; never shown, never logged.
    secret: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Publication(Timestamps, Base):
    """One version of a statement on one channel account.

    The row, with its idempotency key, is written before the platform is called, so a retry
    after a crash finds it and never posts twice.
    """

    __tablename__ = "publication"
    __table_args__ = (
        UniqueConstraint("version_id", "account_id"),
        Index("ix_publication_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    statement_id: Mapped[int] = mapped_column(
        ForeignKey("statement.id", ondelete="CASCADE"), index=True
    )
    version_id: Mapped[int] = mapped_column(ForeignKey("statement_version.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("channel_account.id"))
    channel: Mapped[str] = mapped_column(String(32))
    lang: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text, default="")
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    external_id: Mapped[str | None] = mapped_column(String(300))
    url: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    error_detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Channel-specific facts that must survive a crash (e.g. the Bluesky record key).
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    local_views: Mapped[int] = mapped_column(Integer, default=0)


class MetricSnapshot(Base):
    """Engagement of one publication as the platform reported it at one time."""

    __tablename__ = "metric_snapshot"
    __table_args__ = (Index("ix_metric_snapshot_publication_at", "publication_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publication.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    views: Mapped[int | None] = mapped_column(Integer)
    reactions: Mapped[int | None] = mapped_column(Integer)
    reposts: Mapped[int | None] = mapped_column(Integer)
    replies: Mapped[int | None] = mapped_column(Integer)
    raw: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class Subscriber(Base):
    """A newsletter subscriber of a mission (double opt-in: confirmed_at set by the link)."""

    __tablename__ = "subscriber"
    __table_args__ = (UniqueConstraint("mission_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mission_id: Mapped[int] = mapped_column(ForeignKey("mission.id"))
    email: Mapped[str] = mapped_column(String(320))
    lang: Mapped[str] = mapped_column(String(8))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Delivery(Base):
    """One newsletter e-mail to one subscriber; written before the SMTP call."""

    __tablename__ = "newsletter_delivery"
    __table_args__ = (UniqueConstraint("publication_id", "subscriber_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publication.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="sending")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


#: How an account engaged with a publication.
ENGAGEMENT_KINDS = ("reply", "repost", "like")


class Engager(Base):
    """An account that replied to, reposted or liked a publication, as the platform lists it.

    The account is matched to a Listen author (same platform and handle) when the audience is
    shown, so an actor type set later in Listen counts at once.
    """

    __tablename__ = "publication_engager"
    __table_args__ = (
        UniqueConstraint("publication_id", "handle", "kind"),
        Index("ix_publication_engager_platform_handle", "platform", "handle"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publication.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(32))
    #: As Listen stores authors: user@instance (Mastodon), handle or DID (Bluesky), username (X).
    handle: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(300), default="")
    kind: Mapped[str] = mapped_column(String(16))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
