"""Staff users, their roles per mission, and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from elshi.db import Base, JSONType, SealedString, UTCDateTime, utcnow

ROLES = ("admin", "ambassador", "analyst", "press", "approver", "consular", "citizen")


class AccountColumns:
    """What every kind of account that signs in stores (see `accounts.signin.Account`).

    Staff users (`User`) and citizens (`consulate.models.Citizen`) add their own columns.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    totp_secret: Mapped[str | None] = mapped_column(SealedString())
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class User(AccountColumns, Base):
    """A person who signs in: staff of a mission, or a citizen."""

    __tablename__ = "user_account"


class RoleGrant(Base):
    """One role of one user in one mission."""

    __tablename__ = "role_grant"
    __table_args__ = (UniqueConstraint("user_id", "mission_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    mission_id: Mapped[int] = mapped_column(ForeignKey("mission.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))


class AuditEvent(Base):
    """Who did what to which object, when: every change and every read of personal data."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    actor_label: Mapped[str] = mapped_column(String(200), default="system")
    mission_id: Mapped[int | None] = mapped_column(ForeignKey("mission.id"))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    note: Mapped[str | None] = mapped_column(Text)


class ApiToken(Base):
    """A bearer token for scripts; only its SHA-256 digest is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    #: "read" (GET on /api/ only, the default) or "write" (also API writes).
    scope: Mapped[str] = mapped_column(String(20), default="read", server_default="read")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SessionColumns:
    """What every kind of signed-in browser stores: the key's digest, its times, the TOTP step.

    A session table adds the column of its owner (a staff user, a citizen).
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    mfa_pending: Mapped[bool] = mapped_column(Boolean, default=False)


class WebSession(SessionColumns, Base):
    """A signed-in browser; the cookie holds a signed random key whose digest is stored here."""

    __tablename__ = "web_session"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))


class LoginAttempt(Base):
    """One sign-in attempt, kept for the per-address block and the lock per account and address.

    `user_id` names the staff user and `citizen_id` the citizen it was for (neither for an
    unknown e-mail); a lock that is lifted clears them and keeps the row for the address count.
    """

    __tablename__ = "login_attempt"
    __table_args__ = (Index("ix_login_attempt_ip_at", "ip", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    ip: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizen.id", ondelete="SET NULL"))
    success: Mapped[bool] = mapped_column(Boolean, default=False)
