"""Digests made: one row per mission, language and day."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from elshi.db import Base, UTCDateTime, utcnow


class DigestRun(Base):
    """A digest made for one mission, language and day, and to whom it was sent."""

    __tablename__ = "digest_run"
    __table_args__ = (UniqueConstraint("mission_id", "lang", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mission_id: Mapped[int] = mapped_column(ForeignKey("mission.id", ondelete="CASCADE"))
    lang: Mapped[str] = mapped_column(String(8))
    day: Mapped[date] = mapped_column(Date)
    made_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
