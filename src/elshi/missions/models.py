"""HQ and missions: the tenants that own sources, staff and citizens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from elshi.db import Base, UTCDateTime, utcnow

MISSION_KINDS = ("hq", "embassy", "consulate")


class Mission(Base):
    """Headquarters or an embassy/consulate; HQ sees all missions."""

    __tablename__ = "mission"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="embassy")
    country_code: Mapped[str | None] = mapped_column(String(2))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("mission.id"))
    #: IANA time zone of the mission's office (consular slots are shown and booked in it).
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    #: The consular emergency number shown to citizens on crisis pages ("" for none).
    emergency_phone: Mapped[str] = mapped_column(String(40), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
