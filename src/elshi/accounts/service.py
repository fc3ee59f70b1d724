"""Users, roles and the audit log."""

from __future__ import annotations

import re
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from elshi.accounts.models import ROLES, AuditEvent, RoleGrant, User

_hasher = PasswordHasher()
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 12


class InvalidUser(ValueError):
    """A user field is not valid; the message names it."""


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Return True when the password matches the hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_user(*, db: Session, email: str, password: str, name: str = "") -> User:
    """Create a user with a hashed password."""
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidUser(f"email {email!r}: not an e-mail address")
    if len(password) < MIN_PASSWORD:
        raise InvalidUser(f"password: must be at least {MIN_PASSWORD} characters")
    if db.scalar(select(User.id).where(User.email == email)) is not None:
        raise InvalidUser(f"email {email!r}: a user with this e-mail exists")
    user = User(email=email, name=name, password_hash=hash_password(password))
    db.add(user)
    db.flush()
    return user


def get_user(*, db: Session, email: str) -> User | None:
    """Return the user with this e-mail."""
    return db.scalar(select(User).where(User.email == email.strip().lower()))


def grant_role(*, db: Session, user_id: int, mission_id: int, role: str) -> RoleGrant:
    """Give a user a role in a mission (idempotent)."""
    if role not in ROLES:
        raise InvalidUser(f"role {role!r}: must be one of {', '.join(ROLES)}")
    grant = db.scalar(
        select(RoleGrant).where(
            RoleGrant.user_id == user_id, RoleGrant.mission_id == mission_id, RoleGrant.role == role
        )
    )
    if grant is None:
        grant = RoleGrant(user_id=user_id, mission_id=mission_id, role=role)
        db.add(grant)
        db.flush()
    return grant


def roles_of(*, db: Session, user_id: int) -> list[tuple[int, str]]:
    """Return (mission id, role) pairs of a user."""
    return [
        (g.mission_id, g.role)
        for g in db.scalars(select(RoleGrant).where(RoleGrant.user_id == user_id))
    ]


def list_users(*, db: Session) -> list[User]:
    """Return every user."""
    return list(db.scalars(select(User).order_by(User.id)))


def audit(
    *, db: Session, action: str, object_type: str, object_id: Any = None, actor_id: int | None = None,
    actor_label: str = "system", mission_id: int | None = None, detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record who did what to which object."""
    event = AuditEvent(
        action=action, object_type=object_type,
        object_id=None if object_id is None else str(object_id), actor_id=actor_id,
        actor_label=actor_label, mission_id=mission_id, detail=detail or {},
    )
    db.add(event)
    return event
