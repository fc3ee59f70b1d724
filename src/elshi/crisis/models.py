"""Crisis tables: the area and its people, broadcasts, deliveries, check-ins and walk-ins.

A delivery row is unique per (broadcast, recipient, channel) and is claimed (status
"sending") before the channel is called, so a stopped worker can never send it twice: a row
left "sending" becomes "unknown" and escalation takes over.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from elshi.crypto import PHONE
from elshi.db import Base, JSONType, SealedText, UTCDateTime, blind_indexed, utcnow

CRISIS_STATUSES = ("open", "closed", "cancelled")
#: awaiting: needs a second officer; approved: may be sent; sending; sent; cancelled.
BROADCAST_STATUSES = ("awaiting", "approved", "sending", "sent", "cancelled")
DELIVERY_STATUSES = ("pending", "sending", "sent", "failed", "unknown", "cancelled")
CHANNELS = ("email", "telegram", "push", "sms")
ANSWERS = ("safe", "help", "left")
AUDIENCES = ("present", "everyone")


class Crisis(Base):
    """An emergency in an area: who is there (a snapshot taken at the first send), and status."""

    __tablename__ = "crisis"

    id: Mapped[int] = mapped_column(primary_key=True)
    mission_id: Mapped[int] = mapped_column(ForeignKey("mission.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    #: {"countries": [...], "regions": [...], "cities": [...], "polygon": [[lat, lon], ...],
    #:  "circle": {"lat": .., "lon": .., "km": ..}}
    area: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    audience: Mapped[str] = mapped_column(String(16), default="present")
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    #: Set by the kill switch: nothing pending is sent any more.
    halted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Recipient(Base):
    """A person in the crisis area, copied from their registration when the crisis is sent."""

    __tablename__ = "crisis_recipient"
    __table_args__ = (UniqueConstraint("crisis_id", "citizen_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    crisis_id: Mapped[int] = mapped_column(ForeignKey("crisis.id", ondelete="CASCADE"))
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizen.id", ondelete="CASCADE"))
    registration_id: Mapped[int | None] = mapped_column(
        ForeignKey("registration.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(String(200), default="")
    lang: Mapped[str] = mapped_column(String(2), default="en")
    email: Mapped[str] = mapped_column(String(320), default="")
    phone: Mapped[str] = mapped_column(SealedText(), default="")
    #: Blind index of the phone: how an SMS answer finds the person.
    phone_index: Mapped[str | None] = mapped_column(String(64), index=True)
    telegram_chat_id: Mapped[str] = mapped_column(String(64), default="")
    city: Mapped[str] = mapped_column(String(200), default="")
    #: True when the registration dates cover the day of sending (else only "registered there").
    dates_cover: Mapped[bool] = mapped_column(Boolean, default=True)
    assigned_to: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    officer_note: Mapped[str] = mapped_column(SealedText(), default="")


class Broadcast(Base):
    """One message of a crisis, in several languages, approved by a second officer."""

    __tablename__ = "crisis_broadcast"

    id: Mapped[int] = mapped_column(primary_key=True)
    crisis_id: Mapped[int] = mapped_column(ForeignKey("crisis.id", ondelete="CASCADE"), index=True)
    #: {"kk": {"subject": .., "text": .., "sms": ..}, "ru": {...}}
    messages: Mapped[dict[str, dict[str, str]]] = mapped_column(JSONType, default=dict)
    #: Follow-ups: "all" or "unanswered" (only people with no answer yet).
    target: Mapped[str] = mapped_column(String(16), default="all")
    status: Mapped[str] = mapped_column(String(16), default="awaiting")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalated_sms_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalated_call_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Delivery(Base):
    """One broadcast to one person on one channel; claimed before the channel is called."""

    __tablename__ = "crisis_delivery"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "recipient_id", "channel"),
        Index("ix_crisis_delivery_queue", "broadcast_id", "channel", "status", "due_at"),
        Index("ix_crisis_delivery_recipient", "recipient_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("crisis_broadcast.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("crisis_recipient.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    external_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)


class CheckIn(Base):
    """One answer: safe, need help, or left the area (the latest per person counts)."""

    __tablename__ = "crisis_checkin"
    __table_args__ = (
        UniqueConstraint("recipient_id", "nonce"),
        Index("ix_crisis_checkin_crisis_recipient", "crisis_id", "recipient_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    crisis_id: Mapped[int] = mapped_column(ForeignKey("crisis.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("crisis_recipient.id", ondelete="CASCADE"))
    answer: Mapped[str] = mapped_column(String(8))
    note: Mapped[str] = mapped_column(SealedText(), default="")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    #: web, sms, officer or relative (a relative who passed the verification step).
    via: Mapped[str] = mapped_column(String(16), default="web")
    relative: Mapped[str] = mapped_column(String(200), default="")
    #: A random value of the form: the same submission sent twice is stored once.
    nonce: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WalkIn(Base):
    """Someone abroad who registered during the crisis without an account (merged later)."""

    __tablename__ = "crisis_walkin"

    id: Mapped[int] = mapped_column(primary_key=True)
    crisis_id: Mapped[int] = mapped_column(ForeignKey("crisis.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), default="")
    phone: Mapped[str] = mapped_column(SealedText(), default="")
    phone_index: Mapped[str | None] = mapped_column(String(64), index=True)
    city: Mapped[str] = mapped_column(String(200), default="")
    answer: Mapped[str] = mapped_column(String(8), default="safe")
    note: Mapped[str] = mapped_column(SealedText(), default="")
    merged_citizen_id: Mapped[int | None] = mapped_column(
        ForeignKey("citizen.id", ondelete="SET NULL")
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PushSubscription(Base):
    """A citizen's browser subscribed to web push (RFC 8030/8291): where and how to encrypt."""

    __tablename__ = "crisis_push_subscription"

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(
        ForeignKey("citizen.id", ondelete="CASCADE"), index=True
    )
    endpoint: Mapped[str] = mapped_column(String(1000), unique=True)
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


blind_indexed(Recipient, "phone", "phone_index", PHONE)
blind_indexed(WalkIn, "phone", "phone_index", PHONE)
