"""Citizen accounts: sign-up, passwords, tokens, sessions; the consular missions."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from elshi.accounts import service as accounts
from elshi.consulate.models import (
    Appointment,
    Citizen,
    CitizenSession,
    CitizenToken,
    Document,
    Registration,
    ServiceRequest,
)
from elshi.consulate.service import (
    _EMAIL,
    BAD_EMAIL,
    BAD_MISSION,
    EMAIL_TAKEN,
    SHORT_PASSWORD,
    WEAK_PASSWORD,
    EmailTaken,
    Invalid,
    NotFound,
    Problem,
    _gather,
    _invalid,
    clean_text,
)
from elshi.db import utcnow
from elshi.missions.models import Mission


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def check_new_password(*, password: str, email: str) -> None:
    """Apply the staff password rules, plus: not the e-mail, not one repeated character."""
    if len(password) < accounts.MIN_PASSWORD:
        raise _invalid("password", SHORT_PASSWORD, n=accounts.MIN_PASSWORD)
    local = email.split("@")[0].lower()
    if len(set(password)) < 3 or (len(local) >= 4 and local in password.lower()):
        raise _invalid("password", WEAK_PASSWORD)


def create_citizen(
    *, db: Session, email: str, password: str, name: str, phone: str = "", lang: str = "en"
) -> Citizen:
    """Create a citizen account (not yet verified) with an argon2 password hash."""
    values, problems = _gather(
        [
            ("email", lambda: clean_text("email", email, max_len=320, required=True).lower()),
            ("name", lambda: clean_text("name", name, max_len=200, required=True)),
            ("phone", lambda: clean_text("phone", phone, max_len=40)),
        ]
    )
    if "email" in values and not _EMAIL.match(values["email"]):
        problems.append(Problem("email", BAD_EMAIL))
        values.pop("email")
    try:
        check_new_password(password=password, email=values.get("email", ""))
    except Invalid as exc:
        problems.extend(exc.problems)
    if problems:
        raise Invalid(*problems)
    # Checked only once the rest is right, so the answer never says "taken" beside other faults.
    if get_citizen_by_email(db=db, email=values["email"]) is not None:
        raise EmailTaken(Problem("email", EMAIL_TAKEN))
    citizen = Citizen(
        email=values["email"],
        name=values["name"],
        phone=values["phone"],
        lang=lang if lang in ("kk", "ru", "en") else "en",
        password_hash=accounts.hash_password(password),
    )
    try:
        with db.begin_nested():  # a sign-up at the same moment with the same e-mail
            db.add(citizen)
            db.flush()
    except IntegrityError:
        raise EmailTaken(Problem("email", EMAIL_TAKEN)) from None
    return citizen


def get_citizen_by_email(*, db: Session, email: str) -> Citizen | None:
    """Return the citizen with this e-mail."""
    return db.scalar(select(Citizen).where(Citizen.email == email.strip().lower()))


def get_citizen(*, db: Session, citizen_id: int) -> Citizen:
    """Return an active citizen by id, or raise NotFound."""
    citizen = db.get(Citizen, citizen_id)
    if citizen is None or not citizen.is_active:
        raise NotFound(f"citizen {citizen_id}")
    return citizen


def issue_token(
    *, db: Session, citizen_id: int, purpose: str, lifetime: timedelta, now: datetime | None = None
) -> str:
    """Create a one-time link token (verify or reset) and return it; only its digest is kept."""
    now = now or utcnow()
    plain = secrets.token_urlsafe(32)
    db.execute(
        delete(CitizenToken).where(
            CitizenToken.citizen_id == citizen_id, CitizenToken.purpose == purpose
        )
    )
    db.add(
        CitizenToken(
            citizen_id=citizen_id,
            purpose=purpose,
            token_hash=_digest(plain),
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    db.flush()
    return plain


def use_token(
    *, db: Session, token: str, purpose: str, now: datetime | None = None
) -> Citizen | None:
    """Spend a one-time token; return its citizen, or None when unknown, used or expired."""
    now = now or utcnow()
    row = db.scalar(
        select(CitizenToken).where(
            CitizenToken.token_hash == _digest(token[:200]), CitizenToken.purpose == purpose
        )
    )
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    # Spend it with a conditional update so two clicks cannot both use it.
    spent = db.execute(
        update(CitizenToken)
        .where(CitizenToken.id == row.id, CitizenToken.used_at.is_(None))
        .values(used_at=now)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return db.get(Citizen, row.citizen_id)


def set_password(*, db: Session, citizen: Citizen, password: str) -> None:
    """Replace a citizen's password (rules checked), lift their locks, end all their sessions."""
    check_new_password(password=password, email=citizen.email)
    citizen.password_hash = accounts.hash_password(password)
    accounts.lift_lock(db=db, citizen_id=citizen.id)
    db.execute(delete(CitizenSession).where(CitizenSession.citizen_id == citizen.id))
    db.flush()


def create_session(
    *,
    db: Session,
    citizen_id: int,
    lifetime: timedelta,
    mfa_pending: bool = False,
    now: datetime | None = None,
) -> str:
    """Start a citizen session and return its key (only the digest is stored)."""
    return accounts.open_session(
        db,
        CitizenSession,
        lifetime=lifetime,
        now=now,
        citizen_id=citizen_id,
        mfa_pending=mfa_pending,
    )


def find_session(*, db: Session, key: str, now: datetime | None = None) -> CitizenSession | None:
    """Return the unexpired citizen session with this key."""
    return accounts.find_session_row(db, CitizenSession, key, now)


def session_citizen(*, db: Session, key: str, now: datetime | None = None) -> Citizen | None:
    """Return the active citizen signed in with this key (one query; None if 2FA is pending)."""
    return db.scalar(
        select(Citizen)
        .join(CitizenSession, CitizenSession.citizen_id == Citizen.id)
        .where(
            CitizenSession.key_hash == _digest(key),
            CitizenSession.expires_at > (now or utcnow()),
            CitizenSession.mfa_pending.is_(False),
            Citizen.is_active.is_(True),
        )
    )


def end_session(*, db: Session, key: str) -> None:
    """Delete the citizen session with this key."""
    db.execute(delete(CitizenSession).where(CitizenSession.key_hash == _digest(key)))


_Owned = TypeVar("_Owned", Registration, ServiceRequest, Document, Appointment)


def _own(db: Session, model: type[_Owned], row_id: int, citizen_id: int) -> _Owned:
    """Return a row of the citizen's own, or NotFound (the same answer as for no such id)."""
    row = db.get(model, row_id)
    if row is None or row.citizen_id != citizen_id:
        raise NotFound(f"{model.__tablename__} {row_id}")
    return row


# ---------------------------------------------------------------------------- missions


def consular_missions(*, db: Session) -> list[Mission]:
    """Return the missions that serve citizens (embassies and consulates)."""
    return list(db.scalars(select(Mission).where(Mission.kind != "hq").order_by(Mission.name)))


def _mission_id(db: Session, value: Any) -> int:
    text = str(value or "").strip()
    if not text.isdigit() or len(text) > 9:
        raise _invalid("mission_id", BAD_MISSION)
    mission = db.get(Mission, int(text))
    if mission is None or mission.kind == "hq":
        raise _invalid("mission_id", BAD_MISSION)
    return mission.id
