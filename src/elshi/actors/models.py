"""Actor tables: imported lists of accounts, each account's assessment (its type by rule and
its inauthenticity signals) and actors joining accounts of several platforms."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from elshi.db import Base, JSONType, UTCDateTime, utcnow


class ActorList(Base):
    """A list of accounts with their types, as imported (a ministry's list of state media)."""

    __tablename__ = "actor_list"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: The file's name as given (never opened again: the entries are stored).
    filename: Mapped[str] = mapped_column(String(300), default="")
    entries: Mapped[int] = mapped_column(Integer, default=0)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    imported_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )


class ActorListEntry(Base):
    """One account of a list: platform, handle (lower case, no @), type and country."""

    __tablename__ = "actor_list_entry"
    __table_args__ = (Index("ix_actor_list_entry_account", "platform", "handle"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("actor_list.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(32))
    handle: Mapped[str] = mapped_column(String(300))
    actor_type: Mapped[str] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(8))
    name: Mapped[str | None] = mapped_column(String(300))
    note: Mapped[str | None] = mapped_column(Text)
    #: Where in the file the entry was (line of a CSV, item of a JSON list).
    line: Mapped[int] = mapped_column(Integer, default=0)


class AccountAssessment(Base):
    """What the rules and signals say of one account, the last time they were computed."""

    __tablename__ = "account_assessment"

    author_id: Mapped[int] = mapped_column(
        ForeignKey("author.id", ondelete="CASCADE"), primary_key=True
    )
    #: The type the rules give (None: no rule applies) and why: {"rule": "list", ...}.
    auto_type: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: The type the rules last wrote on the author (a hand-set type is never overwritten).
    applied_type: Mapped[str | None] = mapped_column(String(32))
    #: Share of the signals' weights that fired, 0..1, and each signal with its evidence.
    score: Mapped[float] = mapped_column(Float, default=0.0, index=True)
    signals: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    posts: Mapped[int] = mapped_column(Integer, default=0)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Actor(Base):
    """A person or organisation behind accounts on several platforms, linked by hand."""

    __tablename__ = "actor"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )


class ActorAccount(Base):
    """An account linked to an actor (an account belongs to one actor at most)."""

    __tablename__ = "actor_account"

    author_id: Mapped[int] = mapped_column(
        ForeignKey("author.id", ondelete="CASCADE"), primary_key=True
    )
    actor_id: Mapped[int] = mapped_column(ForeignKey("actor.id", ondelete="CASCADE"), index=True)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    linked_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
