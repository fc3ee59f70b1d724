"""Tables of the e-consulate: citizen accounts apart from staff, and everything they file."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from elshi.accounts.models import AccountColumns, SessionColumns
from elshi.crypto import PASSPORT, PHONE
from elshi.db import (
    Base,
    JSONType,
    SealedJSON,
    SealedText,
    Timestamps,
    UTCDateTime,
    blind_indexed,
    utcnow,
)

REQUEST_STATUSES = ("draft", "submitted", "in_review", "more_documents", "approved", "rejected")
OPEN_STATUSES = ("submitted", "in_review", "more_documents")
DECIDED_STATUSES = ("approved", "rejected")
OPEN_WHERE = text("status IN ('submitted', 'in_review', 'more_documents')")
APPOINTMENT_STATUSES = ("booked", "cancelled", "attended", "no_show")


class Citizen(AccountColumns, Base):
    """A citizen or visitor with an account of their own (never a staff user)."""

    __tablename__ = "citizen"

    phone: Mapped[str] = mapped_column(SealedText(), default="")
    #: Blind index of the phone (crypto.blind_index): found without opening every row.
    phone_index: Mapped[str | None] = mapped_column(String(64), index=True)
    lang: Mapped[str] = mapped_column(String(2), default="en")
    #: Telegram chat with the mission's bot (set when the citizen starts the bot); crisis use.
    telegram_chat_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CitizenToken(Base):
    """A one-time e-mail link (verify or reset); only its SHA-256 digest is stored."""

    __tablename__ = "citizen_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(
        ForeignKey("citizen.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CitizenSession(SessionColumns, Base):
    """A citizen's signed-in browser; the cookie holds a signed key whose digest is stored."""

    __tablename__ = "citizen_session"

    citizen_id: Mapped[int] = mapped_column(
        ForeignKey("citizen.id", ondelete="CASCADE"), index=True
    )


class Registration(Timestamps, Base):
    """A stay abroad registered with a mission (where, from when to when, who comes along)."""

    __tablename__ = "registration"
    __table_args__ = (
        Index("ix_registration_mission_leave", "mission_id", "leave_on"),
        Index("ix_registration_area", "country_code", "city"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(
        ForeignKey("citizen.id", ondelete="CASCADE"), index=True
    )
    mission_id: Mapped[int] = mapped_column(ForeignKey("mission.id"))
    country_code: Mapped[str] = mapped_column(String(2))
    city: Mapped[str] = mapped_column(String(200))
    #: Region (province, state) and optional position: how a crisis area finds the stay.
    region: Mapped[str] = mapped_column(String(200), default="", server_default="")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    address: Mapped[str] = mapped_column(SealedText(), default="")
    arrive_on: Mapped[date] = mapped_column(Date)
    leave_on: Mapped[date] = mapped_column(Date)
    phone: Mapped[str] = mapped_column(SealedText(), default="")
    phone_index: Mapped[str | None] = mapped_column(String(64), index=True)
    emergency_contact: Mapped[str] = mapped_column(SealedText(), default="")
    companions: Mapped[list[dict[str, Any]]] = mapped_column(SealedJSON(), default=list)
    status: Mapped[str] = mapped_column(String(16), default="active")
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: When the citizen was last asked by e-mail to confirm or close this stay.
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ServiceType(Base):
    """A consular service a mission offers: its form fields, documents, fee and steps."""

    __tablename__ = "service_type"
    __table_args__ = (UniqueConstraint("mission_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mission_id: Mapped[int] = mapped_column(ForeignKey("mission.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(64))
    names: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    documents: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    steps: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    fee_cents: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    needs_appointment: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ServiceRequest(Base):
    """One application by one citizen for one service at one mission."""

    __tablename__ = "service_request"
    __table_args__ = (
        Index("ix_service_request_queue", "mission_id", "status", "submitted_at"),
        Index("ix_service_request_citizen", "citizen_id", "id"),
        # The officers' default queue (open requests, oldest first) reads these in order
        # instead of sorting every open request of a mission on each page.
        Index(
            "ix_service_request_open_mission",
            "mission_id",
            "submitted_at",
            "id",
            postgresql_where=OPEN_WHERE,
            sqlite_where=OPEN_WHERE,
        ),
        Index(
            "ix_service_request_open",
            "submitted_at",
            "id",
            postgresql_where=OPEN_WHERE,
            sqlite_where=OPEN_WHERE,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizen.id", ondelete="CASCADE"))
    mission_id: Mapped[int] = mapped_column(ForeignKey("mission.id"))
    service_type_id: Mapped[int] = mapped_column(ForeignKey("service_type.id"))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    answers: Mapped[dict[str, str]] = mapped_column(SealedJSON(), default=dict)
    #: Blind index of the passport number among the answers.
    passport_index: Mapped[str | None] = mapped_column(String(64), index=True)
    assigned_to: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)


class RequestEvent(Base):
    """One step in a request's history: who did what, when."""

    __tablename__ = "request_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("service_request.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_label: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")


class Document(Base):
    """An uploaded file of a request, stored outside the web root under a random name."""

    __tablename__ = "consular_document"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("service_request.id", ondelete="CASCADE"), index=True
    )
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizen.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(80), unique=True)
    scanner: Mapped[str] = mapped_column(String(32), default="none")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Slot(Base):
    """A time at a mission with a number of places; `booked` never exceeds `capacity`."""

    __tablename__ = "slot"
    __table_args__ = (
        CheckConstraint("booked >= 0 AND booked <= capacity", name="booked_within_capacity"),
        Index("ix_slot_mission_starts", "mission_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mission_id: Mapped[int] = mapped_column(ForeignKey("mission.id", ondelete="CASCADE"))
    service_type_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_type.id", ondelete="SET NULL")
    )
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    minutes: Mapped[int] = mapped_column(Integer, default=15)
    capacity: Mapped[int] = mapped_column(Integer, default=1)
    booked: Mapped[int] = mapped_column(Integer, default=0)


class Appointment(Timestamps, Base):
    """A place in a slot held by a citizen (for a request, when there is one)."""

    __tablename__ = "appointment"

    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slot.id", ondelete="CASCADE"), index=True)
    citizen_id: Mapped[int] = mapped_column(
        ForeignKey("citizen.id", ondelete="CASCADE"), index=True
    )
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_request.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(16), default="booked")


class Message(Base):
    """A secure message on a request, from the citizen or from the consular section."""

    __tablename__ = "consular_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("service_request.id", ondelete="CASCADE"), index=True
    )
    sender_kind: Mapped[str] = mapped_column(String(16))
    sender_id: Mapped[int | None] = mapped_column(Integer)
    sender_label: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(SealedText())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StaffAccess(Base):
    """A staff member read or changed a citizen's data: what the citizen sees as 'who viewed'."""

    __tablename__ = "staff_access"
    __table_args__ = (Index("ix_staff_access_citizen_at", "citizen_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizen.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    staff_label: Mapped[str] = mapped_column(String(200))
    mission_id: Mapped[int | None] = mapped_column(ForeignKey("mission.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(32))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[int | None] = mapped_column(Integer)


def passport_answer(answers: dict[str, str] | None) -> str | None:
    """The passport number among a request's answers (a field whose name says passport)."""
    return next((v for k, v in (answers or {}).items() if "passport" in k and v), None)


blind_indexed(Citizen, "phone", "phone_index", PHONE)
blind_indexed(Registration, "phone", "phone_index", PHONE)
blind_indexed(ServiceRequest, "answers", "passport_index", PASSPORT, passport_answer)


class TravelAdvisory(Base):
    """One published travel advisory for a country (or one of its regions); never changed.

    Every publication is a new row, so the rows of a country are its history and the newest
    row of a (country, region) pair is the advisory in force there.
    """

    __tablename__ = "travel_advisory"
    __table_args__ = (
        CheckConstraint("level BETWEEN 1 AND 4", name="advisory_level"),
        Index("ix_travel_advisory_country", "country_code", "published_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    country_code: Mapped[str] = mapped_column(String(2))
    #: Empty for the whole country, else the region (province, state) the advisory is about.
    region: Mapped[str] = mapped_column(String(200), default="", server_default="")
    level: Mapped[int] = mapped_column(Integer)
    #: The advisory's text by language: {"kk": ..., "ru": ..., "en": ...}.
    texts: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    #: The level before this publication (None when it is the first for its area).
    previous_level: Mapped[int | None] = mapped_column(Integer)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    published_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    published_by_label: Mapped[str] = mapped_column(String(200), default="")
    #: How many citizens were notified of this publication's level change.
    notified: Mapped[int] = mapped_column(Integer, default=0)


class AdvisorySubscription(Base):
    """A citizen follows the advisories of a country they are not registered in."""

    __tablename__ = "advisory_subscription"
    __table_args__ = (UniqueConstraint("citizen_id", "country_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(
        ForeignKey("citizen.id", ondelete="CASCADE"), index=True
    )
    country_code: Mapped[str] = mapped_column(String(2), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
