"""The outbox: every message elshi sends to a person, kept until it is sent or given up."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from elshi.db import Base, SealedJSON, SealedText, UTCDateTime, utcnow

#: pending: waits for its next try; sending: a worker holds it (until claimed_until);
#: sent: handed over; failed: given up (the last error says why; an admin may retry it);
#: logged: not sent because no server is set for its medium, shown on the admin page instead.
STATUSES = ("pending", "sending", "sent", "failed", "logged")


class OutboxMessage(Base):
    """One message to one recipient, written in the transaction of the change that causes it.

    The recipient and the message (its text carries names and links with tokens) are sealed
    at rest. `key` identifies the message to its receiver (the e-mail's Message-ID), so a
    message sent twice after a worker stopped mid-send can be recognised as one.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(SealedText())
    payload: Mapped[dict[str, Any]] = mapped_column(SealedJSON())
    mission_id: Mapped[int | None] = mapped_column(
        ForeignKey("mission.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
