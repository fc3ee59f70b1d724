"""Coordination tables: the state of the update, the co-actions found, their edges and the
groups of accounts."""

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
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from elshi.db import Base, JSONType, UTCDateTime, utcnow


class CoordinationState(Base):
    """Where the update stands: the windows the stored co-actions were found with and the
    last post paired. One row (id 1); other windows mean a full recomputation."""

    __tablename__ = "coordination_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    window_seconds: Mapped[float] = mapped_column(Float)
    narrow_seconds: Mapped[float] = mapped_column(Float)
    #: Every post with an id up to this one has been paired.
    last_post_id: Mapped[int] = mapped_column(BigInteger, default=0)
    posts: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Thresholds the groups were last drawn with.
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: The highest group id ever given: a group that is new gets a higher one, so an id
    #: (in an alert, a bookmark) never names another group later.
    last_group_id: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CoAction(Base):
    """A post of an account that another account matched (same key) within the window.

    Kept for the kinds whose evidence is stored (not `service.COUNTED_KINDS`, whose
    co-actions a page works out again from the posts when it needs them)."""

    __tablename__ = "co_action"
    __table_args__ = (
        UniqueConstraint("kind", "post_id", "partner_id"),
        Index("ix_co_action_pair", "kind", "author_id", "partner_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    post_id: Mapped[int] = mapped_column(ForeignKey("post.id", ondelete="CASCADE"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("author.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id", ondelete="CASCADE"))
    #: A partner post was within the narrow window too.
    fast: Mapped[bool] = mapped_column(Boolean, default=False)


class CoEdge(Base):
    """The directed weight account -> partner of one kind (or "all"): how many of the
    account's posts co-act with the partner, and how many of them fast."""

    __tablename__ = "co_edge"
    __table_args__ = (UniqueConstraint("kind", "author_id", "partner_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id", ondelete="CASCADE"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("author.id", ondelete="CASCADE"))
    weight: Mapped[int] = mapped_column(Integer)
    fast_weight: Mapped[int] = mapped_column(Integer, default=0)


class CoParticipation(Base):
    """How many of an account's posts co-act, in one kind (or "all"): the minimum
    participation is read here, not counted again from the co-actions."""

    __tablename__ = "co_participation"
    __table_args__ = (UniqueConstraint("kind", "author_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id", ondelete="CASCADE"))
    posts: Mapped[int] = mapped_column(Integer)


class CoGroup(Base):
    """A group of accounts that act together, as community detection drew it."""

    __tablename__ = "co_group"

    id: Mapped[int] = mapped_column(primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    edges: Mapped[int] = mapped_column(Integer)
    weight: Mapped[int] = mapped_column(Integer)
    #: Mean over the group's pairs of min/max of the two directions' weights (1: mutual).
    symmetry: Mapped[float] = mapped_column(Float)
    #: Share of the group's co-actions that were within the narrow window.
    speed_share: Mapped[float] = mapped_column(Float)
    platforms: Mapped[list[str]] = mapped_column(JSONType, default=list)
    languages: Mapped[list[str]] = mapped_column(JSONType, default=list)
    kinds: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    first_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: What the group pushed: {"texts": [[text, n]], "links": [...], "hashtags": [...],
    #: "narratives": [[narrative id, title, n]]}.
    top: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CoGroupMember(Base):
    """An account in a group, with its weighted degree inside the group."""

    __tablename__ = "co_group_member"
    __table_args__ = (UniqueConstraint("group_id", "author_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("co_group.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id", ondelete="CASCADE"), index=True)
    degree: Mapped[int] = mapped_column(Integer, default=0)
