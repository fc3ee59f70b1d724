"""Listen tables: sources, authors, posts, quarantine and import runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.orm import Mapped, mapped_column

from elshi.db import Base, JSONType, UTCDateTime, utcnow


class Source(Base):
    """Something a mission follows: a feed, a channel, an account, a search, an import."""

    __tablename__ = "source"

    id: Mapped[int] = mapped_column(primary_key=True)
    mission_id: Mapped[int | None] = mapped_column(ForeignKey("mission.id"))
    connector: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    every_minutes: Mapped[int | None] = mapped_column(Integer)
    cursor: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)

    @property
    def health(self) -> str:
        """Return ok, failing, new or paused."""
        if not self.enabled:
            return "paused"
        if self.failures:
            return "failing"
        return "ok" if self.last_success_at else "new"


class Author(Base):
    """An account or byline on a platform."""

    __tablename__ = "author"
    __table_args__ = (UniqueConstraint("platform", "handle"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    handle: Mapped[str] = mapped_column(String(300))
    name: Mapped[str | None] = mapped_column(String(300))
    actor_type: Mapped[str | None] = mapped_column(String(32))
    #: Who set the actor type by hand (None: never set, or set by a rule) and when.
    actor_type_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    actor_type_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class Post(Base):
    """One post, message or article, with its raw payload kept for reprocessing."""

    __tablename__ = "post"
    __table_args__ = (
        UniqueConstraint("platform", "external_id"),
        Index("ix_post_published", "published_at"),
        Index("ix_post_source_published", "source_id", "published_at"),
        Index("ix_post_content_hash", "content_hash"),
        Index("ix_post_author_published", "author_id", "published_at"),
        Index("ix_post_lang_published", "lang", "published_at"),
        # Only the posts still waiting for their near-duplicate decision are in this index.
        Index(
            "ix_post_near_dup_pending",
            "id",
            sqlite_where=sql_text("near_dup_pending = 1"),
            postgresql_where=sql_text("near_dup_pending"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("source.id", ondelete="SET NULL"))
    platform: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(300))
    connector: Mapped[str] = mapped_column(String(64))
    url: Mapped[str | None] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("author.id"))
    author_handle: Mapped[str | None] = mapped_column(String(300))
    author_name: Mapped[str | None] = mapped_column(String(300))
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text, default="")
    lang: Mapped[str | None] = mapped_column(String(16))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    collected_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    reply_to: Mapped[str | None] = mapped_column(String(300))
    repost_of: Mapped[str | None] = mapped_column(String(300))
    content_hash: Mapped[int | None] = mapped_column(BigInteger)
    dup_of_id: Mapped[int | None] = mapped_column(Integer)
    #: True until the near-duplicate pass has decided dup_of_id (bulk loads defer it; a
    #: killed import leaves it True, and the next import or `elshi reprocess near-duplicates`
    #: decides it).
    near_dup_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    raw: Mapped[Any] = mapped_column(JSONType, nullable=True)  # as migration 0001 made it
    raw_kind: Mapped[str | None] = mapped_column(String(64))


class _FromSource:
    """Where records came from: the source (none for a one-off import), connector and origin.

    The columns come first in the table (sort_order), as the tables were first written.
    """

    id: Mapped[int] = mapped_column(primary_key=True, sort_order=-1)
    source_id: Mapped[int | None] = mapped_column(
        ForeignKey("source.id", ondelete="SET NULL"), sort_order=-1
    )
    connector: Mapped[str] = mapped_column(String(64), sort_order=-1)
    #: The file, address or channel read.
    origin: Mapped[str] = mapped_column(Text, sort_order=-1)


class Quarantine(_FromSource, Base):
    """A record that could not be stored, with where it came from and why."""

    __tablename__ = "quarantine"

    location: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class IngestRun(_FromSource, Base):
    """One import or poll, with its counts."""

    __tablename__ = "ingest_run"

    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    read: Mapped[int] = mapped_column(Integer, default=0)
    stored: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    near_duplicates: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    #: running, ok, failed, or interrupted (its process died while it was running).
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    #: The process that runs it, and when it last showed it was alive: a run left 'running'
    #: by a process that is gone is shown as interrupted.
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Annotation(Base):
    """One enricher's result for one post (language, sentiment, entities, narrative, ...)."""

    __tablename__ = "annotation"
    __table_args__ = (
        UniqueConstraint("post_id", "enricher"),
        Index("ix_annotation_enricher_label", "enricher", "label"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("post.id", ondelete="CASCADE"))
    enricher: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    label: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[float | None] = mapped_column(Float)
    value: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
