"""Queries and changes of the e-consulate, with access by role and mission checked here.

A citizen reaches only their own records: every citizen-facing function takes `citizen_id`
and answers NotFound for anything that is not theirs (the same answer as for an id that
does not exist, so changing an id in a URL reveals nothing). Staff functions take the acting
Principal, check the role in the record's mission, and record every read or change of a
citizen's data where it happens, so no caller can forget the audit.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, TextClause, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, load_only

from elshi.accounts import service as accounts
from elshi.accounts.service import LoginPolicy, PermissionDenied, Principal
from elshi.consulate.models import (
    DECIDED_STATUSES,
    OPEN_STATUSES,
    Appointment,
    Citizen,
    CitizenSession,
    CitizenToken,
    Document,
    Message,
    Registration,
    RequestEvent,
    ServiceRequest,
    ServiceType,
    Slot,
    StaffAccess,
)
from elshi.consulate.schemas import LANGS, ServiceSpec
from elshi.crypto import PASSPORT, PHONE, normalise_passport
from elshi.db import keyring_of, utcnow
from elshi.missions.models import Mission
from elshi.missions.service import zone_of
from elshi.web.bounds import parse_date
from elshi.web.i18n import N_

#: Open requests, as the literal predicate of the queue's partial indexes.
OPEN_FILTER = text("service_request.status IN (" + ", ".join(f"'{s}'" for s in OPEN_STATUSES) + ")")

# ---------------------------------------------------------------------------- errors

# Problem, Invalid and NotFound are the package's (elshi.errors); callers may import them here.
from elshi.errors import Invalid, NotFound, Problem  # noqa: E402


class SlotFull(Invalid):
    """The last place of the slot went to someone else."""


class EmailTaken(Invalid):
    """An account with this e-mail exists (sign-up answers as if it did not; see flows)."""


def _invalid(name: str, message: str, **params: Any) -> Invalid:
    return Invalid(Problem(name, message, params))


# ---------------------------------------------------------------------------- messages

BAD_EMAIL = N_("This is not an e-mail address.")
EMAIL_TAKEN = N_("An account with this e-mail exists. Sign in or reset the password.")
SHORT_PASSWORD = N_("The password must be at least %(n)s characters long.")
WEAK_PASSWORD = N_("The password must not contain your e-mail address or one repeated character.")
REQUIRED = N_("This field is required.")
TOO_LONG = N_("At most %(n)s characters.")
CONTROL_CHARS = N_("Contains characters that are not allowed.")
BAD_DATE = N_("Not a date: use the form 2026-12-31.")
BAD_NUMBER = N_("Not a whole number.")
BAD_CHOICE = N_("Choose one of the options.")
DATES_REVERSED = N_("The departure date is before the arrival date.")
TRIP_OVER = N_("The trip is already over.")
TRIP_TOO_LONG = N_("A stay can be registered for at most 5 years.")
BAD_COUNTRY = N_("Use the two-letter country code, e.g. DE.")
BAD_MISSION = N_("Choose a mission from the list.")
TOO_MANY_COMPANIONS = N_("At most %(n)s people can travel with you on one registration.")
BAD_STATUS = N_("This cannot be done while the request is %(status)s.")
MISSING_DOCUMENT = N_("Upload the required document: %(name)s.")
REASON_REQUIRED = N_("Give a reason; the applicant will read it.")
NOTE_REQUIRED = N_("Say which documents are needed.")
SLOT_PAST = N_("This time has passed. Choose another one.")
SLOT_FULL = N_("This time has just been fully booked. Choose another one.")
SLOT_MISSION = N_("This time is at another mission than your request.")
ALREADY_BOOKED = N_("You already have an appointment for this request. Move it instead.")
NOT_BOOKED = N_("This appointment is no longer booked.")
EMPTY_MESSAGE = N_("Write a message.")
BAD_CAPACITY = N_("Places must be between 1 and 500.")
BAD_TIME = N_("Not a time: use the form 09:30.")
BAD_COUNT = N_("Between 1 and 96 slots at a time.")
BAD_MINUTES = N_("Between 5 and 480 minutes.")
SKIPPED_TIME = N_("The clocks skip this time that day in %(zone)s. Choose another one.")

BAD_SLUG = N_("Use lower-case Latin letters, digits, - or _, starting with a letter.")
ALL_LANGUAGES = N_("Fill in the Kazakh, Russian and English text.")
BAD_FEE = N_("Enter the fee as an amount, e.g. 60 or 60.50.")
BAD_CURRENCY = N_("Use the three-letter currency code, e.g. EUR.")
USED_TWICE = N_("This name is used twice.")
BAD_FIELD_TYPE = N_("Choose a field type from the list.")
BAD_FIELD_MAX = N_("A whole number from 1 to 5000.")
NEED_OPTIONS = N_("A list needs its choices, separated by commas.")
SLUG_TAKEN = N_("The mission already has a service with this id.")

STATUS_NAMES = {
    "draft": N_("draft"),
    "submitted": N_("submitted"),
    "in_review": N_("in review"),
    "more_documents": N_("more documents needed"),
    "approved": N_("approved"),
    "rejected": N_("rejected"),
}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
MAX_COMPANIONS = 20


def clean_text(name: str, value: Any, *, max_len: int, required: bool = False) -> str:
    """Return a form value stripped and NFC-normalised, or raise Invalid naming the field."""
    text = unicodedata.normalize("NFC", str(value if value is not None else "")).strip()
    if _CONTROL.search(text.replace("\n", "").replace("\r", "").replace("\t", "")):
        raise _invalid(name, CONTROL_CHARS)
    if len(text) > max_len:
        raise _invalid(name, TOO_LONG, n=max_len)
    if required and not text:
        raise _invalid(name, REQUIRED)
    return text


def _gather(checks: Iterable[tuple[str, Any]]) -> tuple[dict[str, Any], list[Problem]]:
    """Run (name, thunk) checks and collect every problem instead of stopping at the first."""
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, check in checks:
        try:
            out[name] = check()
        except Invalid as exc:
            problems.extend(exc.problems)
    return out, problems


def _parse_date(name: str, value: str, *, required: bool = True) -> date | None:
    text = clean_text(name, value, max_len=10, required=required)
    if not text:
        return None
    day = parse_date(text)
    if day is None:
        raise _invalid(name, BAD_DATE)
    return day


# ---------------------------------------------------------------------------- citizen accounts


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


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return accounts.hash_password(secrets.token_urlsafe(16))


def check_citizen_password(
    *,
    db: Session,
    email: str,
    password: str,
    ip: str,
    policy: LoginPolicy,
    now: datetime | None = None,
) -> tuple[Citizen | None, str]:
    """Check a password: (citizen, "ok"|"unknown"|"locked"|"wrong"|"inactive"|"unverified").

    Every path costs one argon2 check, the locked one too (see accounts.check_password).
    """
    citizen = get_citizen_by_email(db=db, email=email)
    if citizen is None:
        accounts.verify_password(_dummy_hash(), password)  # same time: no account probing
        return None, "unknown"
    matches = accounts.verify_password(citizen.password_hash, password)
    if accounts.is_locked(db=db, ip=ip, policy=policy, citizen_id=citizen.id, now=now):
        return citizen, "locked"
    if not matches:
        return citizen, "wrong"
    if not citizen.is_active:
        return citizen, "inactive"
    if citizen.email_verified_at is None:
        return citizen, "unverified"
    return citizen, "ok"


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
    now = now or utcnow()
    key = secrets.token_urlsafe(32)
    db.add(
        CitizenSession(
            key_hash=_digest(key),
            citizen_id=citizen_id,
            created_at=now,
            expires_at=now + lifetime,
            mfa_pending=mfa_pending,
        )
    )
    db.execute(delete(CitizenSession).where(CitizenSession.expires_at < now))
    db.flush()
    return key


def find_session(*, db: Session, key: str, now: datetime | None = None) -> CitizenSession | None:
    """Return the unexpired citizen session with this key."""
    row = db.scalar(select(CitizenSession).where(CitizenSession.key_hash == _digest(key)))
    if row is None or row.expires_at <= (now or utcnow()):
        return None
    return row


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


# ---------------------------------------------------------------------------- registrations


def _companions(raw: Mapping[str, Any]) -> list[dict[str, str]]:
    out = []
    for i in range(MAX_COMPANIONS + 1):
        name = clean_text(f"companion_{i}_name", raw.get(f"companion_{i}_name"), max_len=200)
        relation = clean_text(
            f"companion_{i}_relation", raw.get(f"companion_{i}_relation"), max_len=100
        )
        if name:
            out.append({"name": name, "relation": relation})
    if len(out) > MAX_COMPANIONS:
        raise _invalid("companions", TOO_MANY_COMPANIONS, n=MAX_COMPANIONS)
    return out


def parse_stay(*, db: Session, raw: Mapping[str, Any], today: date) -> dict[str, Any]:
    """Check a stay form; return clean values or raise Invalid with every problem."""

    def country() -> str:
        code = clean_text("country_code", raw.get("country_code"), max_len=2, required=True)
        if not re.fullmatch(r"[A-Za-z]{2}", code):
            raise _invalid("country_code", BAD_COUNTRY)
        return code.upper()

    values, problems = _gather(
        [
            ("mission_id", lambda: _mission_id(db, raw.get("mission_id"))),
            ("country_code", country),
            ("city", lambda: clean_text("city", raw.get("city"), max_len=200, required=True)),
            ("address", lambda: clean_text("address", raw.get("address"), max_len=500)),
            ("arrive_on", lambda: _parse_date("arrive_on", raw.get("arrive_on", ""))),
            ("leave_on", lambda: _parse_date("leave_on", raw.get("leave_on", ""))),
            ("phone", lambda: clean_text("phone", raw.get("phone"), max_len=40)),
            (
                "emergency_contact",
                lambda: clean_text("emergency_contact", raw.get("emergency_contact"), max_len=300),
            ),
            ("companions", lambda: _companions(raw)),
        ]
    )
    arrive, leave = values.get("arrive_on"), values.get("leave_on")
    if arrive and leave:
        if leave < arrive:
            problems.append(Problem("leave_on", DATES_REVERSED))
        elif leave < today:
            problems.append(Problem("leave_on", TRIP_OVER))
        elif (leave - arrive).days > 5 * 366:
            problems.append(Problem("leave_on", TRIP_TOO_LONG))
    if problems:
        raise Invalid(*problems)
    return values


def register_stay(
    *, db: Session, citizen_id: int, raw: Mapping[str, Any], today: date | None = None
) -> Registration:
    """Register a stay abroad for a citizen; it waits for the citizen's confirmation."""
    values = parse_stay(db=db, raw=raw, today=today or utcnow().date())
    row = Registration(citizen_id=citizen_id, status="active", **values)
    db.add(row)
    db.flush()
    return row


def citizen_stay(*, db: Session, citizen_id: int, registration_id: int) -> Registration:
    """Return one of the citizen's own registrations, or raise NotFound."""
    return _own(db, Registration, registration_id, citizen_id)


def citizen_stays(*, db: Session, citizen_id: int) -> list[Registration]:
    """Return the citizen's registrations, newest first."""
    return list(
        db.scalars(
            select(Registration)
            .where(Registration.citizen_id == citizen_id)
            .order_by(Registration.arrive_on.desc(), Registration.id.desc())
        )
    )


def confirm_stay(
    *, db: Session, citizen_id: int, registration_id: int, now: datetime | None = None
) -> Registration:
    """Confirm that a registered stay is (still) right."""
    row = citizen_stay(db=db, citizen_id=citizen_id, registration_id=registration_id)
    if row.status != "active":
        raise _invalid("status", BAD_STATUS, status=row.status)
    row.confirmed_at = row.updated_at = now or utcnow()
    db.flush()
    return row


def cancel_stay(*, db: Session, citizen_id: int, registration_id: int) -> Registration:
    """End a registration before its dates (plans changed)."""
    row = citizen_stay(db=db, citizen_id=citizen_id, registration_id=registration_id)
    row.status = "cancelled"
    row.updated_at = utcnow()
    db.flush()
    return row


def expire_stays(*, db: Session, today: date | None = None) -> int:
    """Mark registrations whose trip has ended as expired; return how many."""
    result = db.execute(
        update(Registration)
        .where(Registration.status == "active", Registration.leave_on < (today or utcnow().date()))
        .values(status="expired", updated_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def stays_to_remind(
    *, db: Session, ending_days: int, unconfirmed_days: int, now: datetime | None = None
) -> list[Registration]:
    """Return active stays whose citizen should be asked to confirm or end them.

    A stay is due when it ends within `ending_days` and the citizen was not yet told so, or
    when it was last confirmed (or registered) `unconfirmed_days` ago or more and no reminder
    went out since; a stay already over is left to expire.
    """
    now = now or utcnow()
    today = now.date()
    stale = now - timedelta(days=unconfirmed_days)
    ending = today + timedelta(days=ending_days)
    last = func.coalesce(Registration.confirmed_at, Registration.created_at)
    candidates = db.scalars(
        select(Registration)
        .where(
            Registration.status == "active",
            Registration.leave_on >= today,
            or_(Registration.leave_on <= ending, last <= stale) if ending_days else last <= stale,
        )
        .order_by(Registration.id)
    )
    due = []
    for row in candidates:
        told = row.reminded_at
        confirmed = row.confirmed_at or row.created_at
        window = row.leave_on - timedelta(days=ending_days)
        ends_soon = bool(ending_days) and row.leave_on <= ending
        if (ends_soon and (told is None or told.date() < window)) or (
            confirmed <= stale and (told is None or told < confirmed)
        ):
            due.append(row)
    return due


# ---------------------------------------------------------------------------- catalogue


def services(*, db: Session, mission_id: int, active_only: bool = True) -> list[ServiceType]:
    """Return a mission's service catalogue."""
    q = select(ServiceType).where(ServiceType.mission_id == mission_id)
    if active_only:
        q = q.where(ServiceType.active.is_(True))
    return list(db.scalars(q.order_by(ServiceType.id)))


def service_types(*, db: Session, ids: Iterable[int]) -> dict[int, ServiceType]:
    """Return the service types with these ids, by id."""
    wanted = set(ids)
    if not wanted:
        return {}
    return {t.id: t for t in db.scalars(select(ServiceType).where(ServiceType.id.in_(wanted)))}


def service_names(*, db: Session, mission_ids: Iterable[int] | None) -> dict[int, ServiceType]:
    """Return the service types of some missions (all for None) with only their names loaded."""
    q = select(ServiceType).options(
        load_only(ServiceType.id, ServiceType.mission_id, ServiceType.slug, ServiceType.names)
    )
    if mission_ids is not None:
        q = q.where(ServiceType.mission_id.in_(list(mission_ids)))
    return {t.id: t for t in db.scalars(q.order_by(ServiceType.mission_id, ServiceType.id))}


def get_service(*, db: Session, service_type_id: int) -> ServiceType:
    """Return an active service type, or raise NotFound."""
    row = db.get(ServiceType, service_type_id)
    if row is None or not row.active:
        raise NotFound(f"service {service_type_id}")
    return row


def upsert_service(*, db: Session, mission_id: int, spec: Mapping[str, Any]) -> ServiceType:
    """Create or replace a service type of a mission from a checked catalogue entry."""
    row = db.scalar(
        select(ServiceType).where(
            ServiceType.mission_id == mission_id, ServiceType.slug == spec["slug"]
        )
    )
    if row is None:
        row = ServiceType(mission_id=mission_id, slug=spec["slug"])
        db.add(row)
    for key in ("names", "fields", "documents", "steps", "fee_cents", "currency"):
        setattr(row, key, spec[key])
    row.needs_appointment = bool(spec.get("needs_appointment", True))
    row.active = bool(spec.get("active", True))
    db.flush()
    return row


FIELD_TYPES = ("text", "textarea", "date", "number", "select")
#: Empty rows the catalogue form offers for new fields, documents and steps.
BLANK_ROWS = 3
_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_FEE = re.compile(r"^\d{1,6}([.,]\d{1,2})?$")


def catalogue(*, db: Session, actor: Principal, mission_id: int) -> list[ServiceType]:
    """Return every service of a mission, the inactive ones too, for an editor of it."""
    if not actor.can("consulate.act", mission_id):
        raise PermissionDenied("consulate.act: needs role consular or admin at the mission")
    return services(db=db, mission_id=mission_id, active_only=False)


def _labels(raw: Mapping[str, Any], prefix: str, *, required: bool) -> dict[str, str] | None:
    """Read the kk/ru/en texts `<prefix>kk`...; None when all are empty and none is needed."""
    texts = {lang: clean_text(prefix + lang, raw.get(prefix + lang), max_len=200) for lang in LANGS}
    if not any(texts.values()) and not required:
        return None
    missing = [lang for lang, text in texts.items() if not text]
    if missing:
        raise _invalid(prefix + missing[0], ALL_LANGUAGES)
    return texts


def _rows(raw: Mapping[str, Any], letter: str) -> list[int]:
    """Return the row numbers of a repeated group (f0_..., f1_...) present in a form."""
    found = set()
    for key in raw:
        head, _, _rest = key.partition("_")
        if head[:1] == letter and head[1:].isdigit() and len(head) <= 4:
            found.add(int(head[1:]))
    return sorted(found)


def _blank(raw: Mapping[str, Any], prefix: str, keys: Iterable[str]) -> bool:
    return not any(str(raw.get(prefix + k) or "").strip() for k in keys)


def _field_row(raw: Mapping[str, Any], i: int) -> dict[str, Any] | None:
    p = f"f{i}_"
    if _blank(raw, p, ("name", "kk", "ru", "en", "options")):
        return None
    out, problems = _gather(
        [
            ("names", lambda: _labels(raw, p, required=True)),
            ("name", lambda: _identifier(p + "name", raw.get(p + "name"), _NAME)),
            ("type", lambda: _choice(p + "type", raw.get(p + "type") or "text", FIELD_TYPES)),
            ("max", lambda: _whole(p + "max", raw.get(p + "max") or "200", 1, 5000)),
        ]
    )
    options = [o.strip() for o in str(raw.get(p + "options") or "").split(",") if o.strip()]
    if out.get("type") == "select" and not options:
        problems.append(Problem(p + "options", NEED_OPTIONS))
    if problems:
        raise Invalid(*problems)
    return out | {"required": bool(raw.get(p + "required")), "options": options}


def _document_row(raw: Mapping[str, Any], i: int) -> dict[str, Any] | None:
    p = f"d{i}_"
    if _blank(raw, p, ("slug", "kk", "ru", "en")):
        return None
    out, problems = _gather(
        [
            ("names", lambda: _labels(raw, p, required=True)),
            ("slug", lambda: _identifier(p + "slug", raw.get(p + "slug"), _NAME)),
        ]
    )
    if problems:
        raise Invalid(*problems)
    return out | {"required": bool(raw.get(p + "required"))}


def _identifier(name: str, value: Any, pattern: re.Pattern[str]) -> str:
    text = clean_text(name, value, max_len=64, required=True)
    if not pattern.match(text):
        raise _invalid(name, BAD_SLUG)
    return text


def _choice(name: str, value: Any, choices: Iterable[str]) -> str:
    text = str(value).strip()
    if text not in choices:
        raise _invalid(name, BAD_FIELD_TYPE)
    return text


def _whole(name: str, value: Any, low: int, high: int) -> int:
    text = str(value).strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise _invalid(name, BAD_FIELD_MAX)
    return int(text)


def _fee(value: Any) -> int:
    text = str(value or "0").strip()
    if not _FEE.match(text):
        raise _invalid("fee", BAD_FEE)
    units, _, cents = text.replace(",", ".").partition(".")
    return int(units) * 100 + int((cents + "00")[:2])


def _currency(value: Any) -> str:
    text = str(value or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", text):
        raise _invalid("currency", BAD_CURRENCY)
    return text


def _repeated(
    raw: Mapping[str, Any], letter: str, parse: Callable[[Mapping[str, Any], int], Any]
) -> tuple[list[tuple[int, Any]], list[Problem]]:
    rows: list[tuple[int, Any]] = []
    problems: list[Problem] = []
    for i in _rows(raw, letter):
        try:
            row = parse(raw, i)
        except Invalid as exc:
            problems.extend(exc.problems)
            continue
        if row is not None:
            rows.append((i, row))
    return rows, problems


def _twice(rows: list[tuple[int, Any]], letter: str, key: str) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for i, row in rows:
        if row[key] in seen:
            problems.append(Problem(f"{letter}{i}_{key}", USED_TWICE))
        seen.add(row[key])
    return problems


def parse_catalogue_form(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check a catalogue form and return a service spec; Invalid names every bad field.

    The form has slug, name_kk/ru/en, fee, currency, needs_appointment and active, then rows:
    f<i>_name/type/required/max/kk/ru/en/options for form fields, d<i>_slug/required/kk/ru/en
    for documents and s<i>_kk/ru/en for steps. Empty rows are left out.
    """
    out, problems = _gather(
        [
            ("slug", lambda: _identifier("slug", raw.get("slug"), _SLUG)),
            ("names", lambda: _labels(raw, "name_", required=True)),
            ("fee_cents", lambda: _fee(raw.get("fee"))),
            ("currency", lambda: _currency(raw.get("currency"))),
        ]
    )
    fields, bad = _repeated(raw, "f", _field_row)
    problems += bad + _twice(fields, "f", "name")
    docs, bad = _repeated(raw, "d", _document_row)
    problems += bad + _twice(docs, "d", "slug")
    steps, bad = _repeated(raw, "s", lambda r, i: _labels(r, f"s{i}_", required=False))
    problems += bad
    if problems:
        raise Invalid(*problems)
    spec = ServiceSpec(
        **out,
        fields=[row for _, row in fields],
        documents=[row for _, row in docs],
        steps=[row for _, row in steps],
        needs_appointment=bool(raw.get("needs_appointment")),
        active=bool(raw.get("active")),
    )
    return spec.model_dump()


def catalogue_values(row: ServiceType | None) -> dict[str, str]:
    """Return the catalogue form's values for a service (or a new one), with empty rows."""
    values: dict[str, str] = {"currency": "EUR", "fee": "0", "active": "on"}
    values["needs_appointment"] = "on"
    fields: list[dict[str, Any]] = []
    docs: list[dict[str, Any]] = []
    steps: list[dict[str, str]] = []
    if row is not None:
        values = {
            "slug": row.slug,
            "fee": f"{row.fee_cents // 100}.{row.fee_cents % 100:02d}",
            "currency": row.currency,
            "needs_appointment": "on" if row.needs_appointment else "",
            "active": "on" if row.active else "",
        }
        values |= {f"name_{lang}": row.names.get(lang, "") for lang in LANGS}
        fields, docs, steps = row.fields, row.documents, row.steps
    for i, f in enumerate([*fields, *[{"required": True}] * BLANK_ROWS]):
        values |= {f"f{i}_{lang}": f.get("names", {}).get(lang, "") for lang in LANGS}
        values |= {
            f"f{i}_name": f.get("name", ""),
            f"f{i}_type": f.get("type", "text"),
            f"f{i}_required": "on" if f.get("required") else "",
            f"f{i}_max": str(f.get("max", 200)),
            f"f{i}_options": ", ".join(f.get("options", [])),
        }
    for i, d in enumerate([*docs, *[{"required": True}] * BLANK_ROWS]):
        values |= {f"d{i}_{lang}": d.get("names", {}).get(lang, "") for lang in LANGS}
        values |= {
            f"d{i}_slug": d.get("slug", ""),
            f"d{i}_required": "on" if d.get("required") else "",
        }
    for i, st in enumerate([*steps, *[{}] * BLANK_ROWS]):
        values |= {f"s{i}_{lang}": st.get(lang, "") for lang in LANGS}
    return values


def save_catalogue_entry(
    *,
    db: Session,
    actor: Principal,
    mission_id: int,
    service_type_id: int | None,
    raw: Mapping[str, Any],
) -> ServiceType:
    """Create a service, or change one, from the catalogue form; audited."""
    if not actor.can("consulate.act", mission_id):
        raise PermissionDenied("consulate.act: needs role consular or admin at the mission")
    current = None
    if service_type_id is not None:
        current = db.get(ServiceType, service_type_id)
        if current is None or current.mission_id != mission_id:
            raise NotFound(f"service {service_type_id}")
        raw = {**raw, "slug": current.slug}  # the id in URLs and requests stays
    spec = parse_catalogue_form(raw)
    if current is None and db.scalar(
        select(ServiceType.id).where(
            ServiceType.mission_id == mission_id, ServiceType.slug == spec["slug"]
        )
    ):
        raise _invalid("slug", SLUG_TAKEN)
    row = upsert_service(db=db, mission_id=mission_id, spec=spec)
    _audit_catalogue(db, actor, row, "changed" if current else "created")
    return row


def set_service_active(
    *, db: Session, actor: Principal, service_type_id: int, active: bool
) -> ServiceType:
    """Offer a service to applicants again, or stop offering it (its requests stay)."""
    row = db.get(ServiceType, service_type_id)
    if row is None:
        raise NotFound(f"service {service_type_id}")
    if not actor.can("consulate.act", row.mission_id):
        raise PermissionDenied("consulate.act: needs role consular or admin at the mission")
    row.active = active
    db.flush()
    _audit_catalogue(db, actor, row, "activated" if active else "deactivated")
    return row


def _audit_catalogue(db: Session, actor: Principal, row: ServiceType, what: str) -> None:
    accounts.audit(
        db=db,
        action="consulate.catalogue",
        object_type="service_type",
        object_id=row.id,
        actor_id=actor.user_id,
        actor_label=actor.label,
        mission_id=row.mission_id,
        detail={"slug": row.slug, "change": what},
    )


def parse_answers(
    service: ServiceType, raw: Mapping[str, Any], *, complete: bool
) -> dict[str, str]:
    """Check form answers against the service's field definitions (all required if complete)."""
    answers: dict[str, str] = {}
    problems: list[Problem] = []
    for spec in service.fields:
        name = str(spec["name"])
        try:
            value = clean_text(
                name,
                raw.get(name),
                max_len=int(spec.get("max", 500)),
                required=complete and bool(spec.get("required")),
            )
            kind = spec.get("type", "text")
            if value and kind == "date":
                _parse_date(name, value)
            elif value and kind == "number" and not re.fullmatch(r"\d{1,9}", value):
                raise _invalid(name, BAD_NUMBER)
            elif value and kind == "select" and value not in spec.get("options", []):
                raise _invalid(name, BAD_CHOICE)
            answers[name] = value
        except Invalid as exc:
            problems.extend(exc.problems)
    if problems:
        raise Invalid(*problems)
    return answers


# ---------------------------------------------------------------------------- requests


def _event(
    db: Session,
    request: ServiceRequest,
    *,
    kind: str,
    actor_id: int | None,
    label: str,
    action: str,
    to_status: str | None = None,
    note: str = "",
    now: datetime | None = None,
) -> RequestEvent:
    event = RequestEvent(
        request_id=request.id,
        at=now or utcnow(),
        actor_kind=kind,
        actor_id=actor_id,
        actor_label=label,
        action=action,
        from_status=request.status if to_status else None,
        to_status=to_status,
        note=note,
    )
    db.add(event)
    if to_status:
        request.status = to_status
    request.updated_at = event.at
    return event


def _reference() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "C-" + "".join(secrets.choice(alphabet) for _ in range(10))


def create_draft(*, db: Session, citizen_id: int, service_type_id: int) -> ServiceRequest:
    """Start a draft request for a service."""
    service = get_service(db=db, service_type_id=service_type_id)
    request = ServiceRequest(
        reference=_reference(),
        citizen_id=citizen_id,
        mission_id=service.mission_id,
        service_type_id=service.id,
        status="draft",
        answers={},
    )
    db.add(request)
    db.flush()
    _event(db, request, kind="citizen", actor_id=citizen_id, label="", action="created")
    db.flush()
    return request


def citizen_request(*, db: Session, citizen_id: int, request_id: int) -> ServiceRequest:
    """Return one of the citizen's own requests, or raise NotFound."""
    return _own(db, ServiceRequest, request_id, citizen_id)


def citizen_requests(*, db: Session, citizen_id: int) -> list[ServiceRequest]:
    """Return the citizen's requests, newest first."""
    return list(
        db.scalars(
            select(ServiceRequest)
            .where(ServiceRequest.citizen_id == citizen_id)
            .order_by(ServiceRequest.id.desc())
        )
    )


def _editable(request: ServiceRequest) -> None:
    if request.status not in ("draft", "more_documents"):
        raise _invalid("status", BAD_STATUS, status=STATUS_NAMES[request.status])


def save_answers(
    *,
    db: Session,
    citizen_id: int,
    request_id: int,
    raw: Mapping[str, Any],
    complete: bool = False,
) -> ServiceRequest:
    """Save form answers of a draft (missing ones allowed unless `complete`, before submitting)."""
    request = citizen_request(db=db, citizen_id=citizen_id, request_id=request_id)
    _editable(request)
    service = db.get(ServiceType, request.service_type_id)
    assert service is not None
    request.answers = parse_answers(service, raw, complete=complete)
    request.updated_at = utcnow()
    db.flush()
    return request


def documents_of(*, db: Session, request_id: int) -> list[Document]:
    """Return a request's documents, oldest first."""
    return list(
        db.scalars(select(Document).where(Document.request_id == request_id).order_by(Document.id))
    )


def submit(
    *, db: Session, citizen_id: int, request_id: int, now: datetime | None = None
) -> ServiceRequest:
    """Submit a draft (or a request waiting for documents) after checking it is complete."""
    request = citizen_request(db=db, citizen_id=citizen_id, request_id=request_id)
    _editable(request)
    service = db.get(ServiceType, request.service_type_id)
    assert service is not None
    problems: list[Problem] = []
    try:
        parse_answers(service, request.answers, complete=True)
    except Invalid as exc:
        problems.extend(exc.problems)
    have = {d.kind for d in documents_of(db=db, request_id=request.id)}
    for doc in service.documents:
        if doc.get("required") and doc["slug"] not in have:
            problems.append(
                Problem(
                    doc["slug"], MISSING_DOCUMENT, {"name": doc["names"].get("en", doc["slug"])}
                )
            )
    if problems:
        raise Invalid(*problems)
    now = now or utcnow()
    resumed = request.status == "more_documents"
    target = "in_review" if resumed and request.assigned_to else "submitted"
    if request.submitted_at is None:
        request.submitted_at = now
    _event(
        db,
        request,
        kind="citizen",
        actor_id=citizen_id,
        label="",
        action="resubmitted" if resumed else "submitted",
        to_status=target,
        now=now,
    )
    db.flush()
    return request


def history(*, db: Session, request_id: int) -> list[RequestEvent]:
    """Return a request's events, oldest first."""
    return list(
        db.scalars(
            select(RequestEvent)
            .where(RequestEvent.request_id == request_id)
            .order_by(RequestEvent.at, RequestEvent.id)
        )
    )


def messages_of(*, db: Session, request_id: int) -> list[Message]:
    """Return a request's messages, oldest first."""
    return list(
        db.scalars(select(Message).where(Message.request_id == request_id).order_by(Message.id))
    )


def post_message(
    *, db: Session, request: ServiceRequest, kind: str, sender_id: int | None, label: str, body: Any
) -> Message:
    """Add a message to a request (the caller has checked access)."""
    text = clean_text("body", body, max_len=5000)
    if not text:
        raise _invalid("body", EMPTY_MESSAGE)
    row = Message(
        request_id=request.id, sender_kind=kind, sender_id=sender_id, sender_label=label, body=text
    )
    db.add(row)
    db.flush()
    return row


def citizen_document(*, db: Session, citizen_id: int, document_id: int) -> Document:
    """Return one of the citizen's own documents, or raise NotFound."""
    return _own(db, Document, document_id, citizen_id)


# ---------------------------------------------------------------------------- staff access


def record_access(
    *,
    db: Session,
    actor: Principal,
    citizen_id: int,
    mission_id: int | None,
    action: str,
    object_type: str,
    object_id: int | None,
    fields: Sequence[str] = (),
    why: str = "",
) -> None:
    """Write what the citizen sees in 'who viewed my file' and the staff audit log.

    `fields` names the sealed personal data opened to show (why="page") or to hand out
    (why="export"): every such decryption is in the audit log with who and whose."""
    db.add(
        StaffAccess(
            citizen_id=citizen_id,
            user_id=actor.user_id,
            staff_label=actor.name or actor.label,
            mission_id=mission_id,
            action=action,
            object_type=object_type,
            object_id=object_id,
        )
    )
    accounts.audit(
        db=db,
        action=f"consulate.{action}",
        object_type=object_type,
        object_id=object_id,
        actor_id=actor.user_id,
        actor_label=actor.label,
        mission_id=mission_id,
        detail={"citizen_id": citizen_id}
        | ({"fields": list(fields), "why": why} if fields else {}),
    )


def _may(actor: Principal, permission: str, mission_id: int) -> bool:
    return actor.can(permission, mission_id)


#: Sealed personal data an officer's request page (and the API's) shows.
REQUEST_PAGE_FIELDS = ("citizen.phone", "service_request.answers", "consular_message.body")
#: Sealed personal data the district search shows (the number of companions).
SEARCH_FIELDS = ("citizen.phone", "registration.companions")


def staff_request(
    *, db: Session, actor: Principal, request_id: int, action: str = "view"
) -> ServiceRequest:
    """Return a request the officer may see (own mission or HQ); record the access."""
    row = db.get(ServiceRequest, request_id)
    if row is None or row.status == "draft" or not _may(actor, "consulate.read", row.mission_id):
        raise NotFound(f"request {request_id}")
    record_access(
        db=db,
        actor=actor,
        citizen_id=row.citizen_id,
        mission_id=row.mission_id,
        action=action,
        object_type="service_request",
        object_id=row.id,
        fields=REQUEST_PAGE_FIELDS if action == "view" else (),
        why="page",
    )
    return row


def staff_citizen(*, db: Session, actor: Principal, request: ServiceRequest) -> Citizen:
    """Return the applicant of a request the officer has opened."""
    citizen = db.get(Citizen, request.citizen_id)
    assert citizen is not None
    return citizen


def staff_document(*, db: Session, actor: Principal, document_id: int) -> Document:
    """Return a document of a request the officer may see; record the download."""
    row = db.get(Document, document_id)
    if row is None:
        raise NotFound(f"document {document_id}")
    request = db.get(ServiceRequest, row.request_id)
    if (
        request is None
        or request.status == "draft"
        or not _may(actor, "consulate.read", request.mission_id)
    ):
        raise NotFound(f"document {document_id}")
    record_access(
        db=db,
        actor=actor,
        citizen_id=row.citizen_id,
        mission_id=request.mission_id,
        action="download",
        object_type="document",
        object_id=row.id,
    )
    return row


def _acting_request(db: Session, actor: Principal, request_id: int) -> ServiceRequest:
    row = staff_request(db=db, actor=actor, request_id=request_id, action="change")
    if not _may(actor, "consulate.act", row.mission_id):
        raise PermissionDenied("consulate.act: needs role consular or admin")
    return row


@dataclass
class QueueRow:
    """One line of the officer's queue (no personal data: reference, service, status, age)."""

    id: int
    reference: str
    service: str
    status: str
    submitted_at: datetime | None
    updated_at: datetime
    assigned_to: int | None
    mission_id: int


def queue(
    *,
    db: Session,
    actor: Principal,
    status: str | None = None,
    service_type_id: int | None = None,
    older_than_days: int | None = None,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
) -> tuple[int, list[QueueRow]]:
    """Return submitted requests of the officer's missions, oldest first, with a total."""
    if not actor.can_somewhere("consulate.read"):
        raise PermissionDenied("consulate.read: needs role consular, ambassador or admin")
    scope: list[ColumnElement[bool] | TextClause] = [ServiceRequest.status != "draft"]
    missions = actor.missions_where("consulate.read")
    if missions is not None:
        scope.append(ServiceRequest.mission_id.in_(missions))
    # The open filter is the literal predicate of the partial indexes that keep the default
    # queue in order: a bound parameter would hide the match from the planner.
    scope.append(ServiceRequest.status == status if status else OPEN_FILTER)
    if service_type_id:
        scope.append(ServiceRequest.service_type_id == service_type_id)
    if older_than_days:
        cutoff = (now or utcnow()) - timedelta(days=older_than_days)
        scope.append(ServiceRequest.submitted_at <= cutoff)
    total = db.scalar(select(func.count()).select_from(ServiceRequest).where(*scope)) or 0
    rows = db.execute(
        select(
            ServiceRequest.id,
            ServiceRequest.reference,
            ServiceType.slug,
            ServiceRequest.status,
            ServiceRequest.submitted_at,
            ServiceRequest.updated_at,
            ServiceRequest.assigned_to,
            ServiceRequest.mission_id,
        )
        .join(ServiceType, ServiceType.id == ServiceRequest.service_type_id)
        .where(*scope)
        .order_by(ServiceRequest.submitted_at, ServiceRequest.id)
        .limit(limit)
        .offset(offset)
    )
    return total, [QueueRow(*r) for r in rows]


def claim(*, db: Session, actor: Principal, request_id: int) -> ServiceRequest:
    """Take a submitted request into review."""
    row = _acting_request(db, actor, request_id)
    if row.status != "submitted":
        raise _invalid("status", BAD_STATUS, status=STATUS_NAMES[row.status])
    row.assigned_to = actor.user_id
    _event(
        db,
        row,
        kind="staff",
        actor_id=actor.user_id,
        label=actor.label,
        action="claimed",
        to_status="in_review",
    )
    db.flush()
    return row


def ask_documents(*, db: Session, actor: Principal, request_id: int, note: Any) -> ServiceRequest:
    """Send a request back to the applicant asking for more documents."""
    row = _acting_request(db, actor, request_id)
    text = clean_text("note", note, max_len=2000)
    if not text:
        raise _invalid("note", NOTE_REQUIRED)
    if row.status not in ("submitted", "in_review"):
        raise _invalid("status", BAD_STATUS, status=STATUS_NAMES[row.status])
    row.assigned_to = row.assigned_to or actor.user_id
    _event(
        db,
        row,
        kind="staff",
        actor_id=actor.user_id,
        label=actor.label,
        action="asked_documents",
        to_status="more_documents",
        note=text,
    )
    db.flush()
    return row


def decide(
    *, db: Session, actor: Principal, request_id: int, approve: bool, reason: Any
) -> ServiceRequest:
    """Approve or reject a request under review; a rejection needs a reason."""
    row = _acting_request(db, actor, request_id)
    text = clean_text("reason", reason, max_len=2000)
    if not approve and not text:
        raise _invalid("reason", REASON_REQUIRED)
    if row.status not in ("submitted", "in_review"):
        raise _invalid("status", BAD_STATUS, status=STATUS_NAMES[row.status])
    now = utcnow()
    row.reason = text
    row.decided_at = now
    row.assigned_to = row.assigned_to or actor.user_id
    _event(
        db,
        row,
        kind="staff",
        actor_id=actor.user_id,
        label=actor.label,
        action="approved" if approve else "rejected",
        to_status="approved" if approve else "rejected",
        note=text,
        now=now,
    )
    db.flush()
    return row


# ---------------------------------------------------------------- slots and appointments


def mission_zone(*, db: Session, mission_id: int) -> ZoneInfo:
    """Return the time zone a mission's office works in."""
    return zone_of(db.get(Mission, mission_id))


def mission_zones(*, db: Session, ids: Iterable[int]) -> dict[int, ZoneInfo]:
    """Return the time zones of some missions, by mission id."""
    wanted = set(ids)
    if not wanted:
        return {}
    return {m.id: zone_of(m) for m in db.scalars(select(Mission).where(Mission.id.in_(wanted)))}


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """Return the UTC instant of a wall-clock time in a zone; Invalid if the clocks skip it."""
    local = datetime.combine(day, at, zone)
    back = local.astimezone(UTC).astimezone(zone)
    if back.replace(tzinfo=None) != local.replace(tzinfo=None):
        raise _invalid("start", SKIPPED_TIME, zone=zone.key)
    return local.astimezone(UTC)


def local_day(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Return the UTC instants where a day begins and ends in a zone (23 to 25 hours apart)."""
    begin = datetime.combine(day, time.min, zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time.min, zone).astimezone(UTC)
    return begin, end


def add_slots(
    *,
    db: Session,
    actor: Principal,
    mission_id: int,
    day: Any,
    start: Any,
    count: Any,
    minutes: Any,
    capacity: Any,
    service_type_id: int | None = None,
) -> list[Slot]:
    """Open `count` consecutive slots on a day, the first at `start` in the mission's time zone.

    Slots follow one another in real minutes: on the night clocks change they keep their length
    and their local times jump with the clock. A start that does not exist there that day (in
    the hour the clocks skip) is refused; in the hour that repeats the first one is taken.
    """
    if not actor.can("consulate.act", mission_id):
        raise PermissionDenied("consulate.act: needs role consular or admin")

    def number(name: str, value: Any, low: int, high: int, message: str) -> int:
        text = str(value or "").strip()
        if not text.isdigit() or not low <= int(text) <= high:
            raise _invalid(name, message)
        return int(text)

    def start_time() -> time:
        try:
            return time.fromisoformat(clean_text("start", start, max_len=5, required=True))
        except ValueError:
            raise _invalid("start", BAD_TIME) from None

    values, problems = _gather(
        [
            ("day", lambda: _parse_date("day", str(day or ""))),
            ("start", start_time),
            ("count", lambda: number("count", count, 1, 96, BAD_COUNT)),
            ("minutes", lambda: number("minutes", minutes, 5, 480, BAD_MINUTES)),
            ("capacity", lambda: number("capacity", capacity, 1, 500, BAD_CAPACITY)),
        ]
    )
    if problems:
        raise Invalid(*problems)
    zone = mission_zone(db=db, mission_id=mission_id)
    first = local_instant(values["day"], values["start"], zone)
    slots = [
        Slot(
            mission_id=mission_id,
            service_type_id=service_type_id,
            starts_at=first + timedelta(minutes=values["minutes"] * i),
            minutes=values["minutes"],
            capacity=values["capacity"],
            booked=0,
        )
        for i in range(values["count"])
    ]
    db.add_all(slots)
    db.flush()
    accounts.audit(
        db=db,
        action="consulate.slots_add",
        object_type="slot",
        actor_id=actor.user_id,
        actor_label=actor.label,
        mission_id=mission_id,
        detail={"count": len(slots), "first": first.isoformat()},
    )
    return slots


def free_slots(
    *,
    db: Session,
    mission_id: int,
    service_type_id: int | None = None,
    now: datetime | None = None,
    days: int = 60,
    limit: int = 60,
) -> list[Slot]:
    """Return future slots of a mission with places left, soonest first."""
    now = now or utcnow()
    q = select(Slot).where(
        Slot.mission_id == mission_id,
        Slot.starts_at > now,
        Slot.starts_at < now + timedelta(days=days),
        Slot.booked < Slot.capacity,
    )
    if service_type_id is not None:
        q = q.where(or_(Slot.service_type_id.is_(None), Slot.service_type_id == service_type_id))
    return list(db.scalars(q.order_by(Slot.starts_at, Slot.id).limit(limit)))


def slots_between(
    *, db: Session, actor: Principal, mission_id: int, start: datetime, end: datetime
) -> list[Slot]:
    """Return a mission's slots in a period (the calendar)."""
    if not actor.can("consulate.read", mission_id):
        raise PermissionDenied("consulate.read: needs role consular, ambassador or admin")
    return list(
        db.scalars(
            select(Slot)
            .where(Slot.mission_id == mission_id, Slot.starts_at >= start, Slot.starts_at < end)
            .order_by(Slot.starts_at, Slot.id)
        )
    )


def _take_place(db: Session, slot_id: int, now: datetime) -> None:
    """Take one place with a conditional UPDATE: the database decides who gets the last one."""
    slot = db.get(Slot, slot_id)
    if slot is None:
        raise NotFound(f"slot {slot_id}")
    if slot.starts_at <= now:
        raise _invalid("slot_id", SLOT_PAST)
    taken = db.execute(
        update(Slot)
        .where(Slot.id == slot_id, Slot.booked < Slot.capacity, Slot.starts_at > now)
        .values(booked=Slot.booked + 1)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise SlotFull(Problem("slot_id", SLOT_FULL))


def _release_place(db: Session, slot_id: int) -> None:
    db.execute(
        update(Slot)
        .where(Slot.id == slot_id, Slot.booked > 0)
        .values(booked=Slot.booked - 1)
        .execution_options(synchronize_session=False)
    )


def _active_appointment(db: Session, request_id: int) -> Appointment | None:
    return db.scalar(
        select(Appointment).where(
            Appointment.request_id == request_id, Appointment.status == "booked"
        )
    )


def book(
    *,
    db: Session,
    slot_id: int,
    citizen_id: int,
    request_id: int | None = None,
    now: datetime | None = None,
) -> Appointment:
    """Book a place in a slot for the citizen; raise SlotFull when none is left."""
    now = now or utcnow()
    slot = db.get(Slot, slot_id)
    if slot is None:
        raise NotFound(f"slot {slot_id}")
    if request_id is not None:
        request = citizen_request(db=db, citizen_id=citizen_id, request_id=request_id)
        if request.mission_id != slot.mission_id:
            raise _invalid("slot_id", SLOT_MISSION)
        if _active_appointment(db, request.id) is not None:
            raise _invalid("slot_id", ALREADY_BOOKED)
    _take_place(db, slot_id, now)
    row = Appointment(
        slot_id=slot_id,
        citizen_id=citizen_id,
        request_id=request_id,
        status="booked",
        created_at=now,
        updated_at=now,
    )
    db.add(row)
    db.flush()
    return row


def citizen_appointment(*, db: Session, citizen_id: int, appointment_id: int) -> Appointment:
    """Return one of the citizen's own appointments, or raise NotFound."""
    return _own(db, Appointment, appointment_id, citizen_id)


def move(
    *,
    db: Session,
    citizen_id: int,
    appointment_id: int,
    slot_id: int,
    now: datetime | None = None,
) -> Appointment:
    """Move an appointment to another slot: the new place is taken before the old is freed."""
    now = now or utcnow()
    row = citizen_appointment(db=db, citizen_id=citizen_id, appointment_id=appointment_id)
    if row.status != "booked":
        raise _invalid("appointment", NOT_BOOKED)
    old = db.get(Slot, row.slot_id)
    new = db.get(Slot, slot_id)
    if new is None:
        raise NotFound(f"slot {slot_id}")
    if old is not None and new.mission_id != old.mission_id:
        raise _invalid("slot_id", SLOT_MISSION)
    _take_place(db, slot_id, now)
    _release_place(db, row.slot_id)
    row.slot_id = slot_id
    row.updated_at = now
    db.flush()
    return row


def cancel(
    *, db: Session, citizen_id: int, appointment_id: int, now: datetime | None = None
) -> Appointment:
    """Cancel an appointment and give its place back."""
    row = citizen_appointment(db=db, citizen_id=citizen_id, appointment_id=appointment_id)
    if row.status != "booked":
        raise _invalid("appointment", NOT_BOOKED)
    row.status = "cancelled"
    row.updated_at = now or utcnow()
    _release_place(db, row.slot_id)
    db.flush()
    return row


def citizen_appointments(*, db: Session, citizen_id: int) -> list[tuple[Appointment, Slot]]:
    """Return the citizen's appointments with their slots, soonest first."""
    rows = db.execute(
        select(Appointment, Slot)
        .join(Slot, Slot.id == Appointment.slot_id)
        .where(Appointment.citizen_id == citizen_id)
        .order_by(Slot.starts_at)
    )
    return [(a, s) for a, s in rows]


def request_appointments(*, db: Session, request_id: int) -> list[tuple[Appointment, Slot]]:
    """Return the appointments booked for one request with their slots, soonest first."""
    rows = db.execute(
        select(Appointment, Slot)
        .join(Slot, Slot.id == Appointment.slot_id)
        .where(Appointment.request_id == request_id)
        .order_by(Slot.starts_at)
    )
    return [(a, s) for a, s in rows]


@dataclass
class DayRow:
    """One appointment on the officer's daily list."""

    appointment: Appointment
    slot: Slot
    citizen_name: str
    reference: str | None


def day_list(*, db: Session, actor: Principal, mission_id: int, day: date) -> list[DayRow]:
    """Return a mission's appointments on one day; record that staff saw each name."""
    if not actor.can("consulate.read", mission_id):
        raise PermissionDenied("consulate.read: needs role consular, ambassador or admin")
    start, end = local_day(day, mission_zone(db=db, mission_id=mission_id))
    rows = db.execute(
        select(Appointment, Slot, Citizen.name, ServiceRequest.reference)
        .join(Slot, Slot.id == Appointment.slot_id)
        .join(Citizen, Citizen.id == Appointment.citizen_id)
        .outerjoin(ServiceRequest, ServiceRequest.id == Appointment.request_id)
        .where(
            Slot.mission_id == mission_id,
            Slot.starts_at >= start,
            Slot.starts_at < end,
            Appointment.status != "cancelled",
        )
        .order_by(Slot.starts_at, Appointment.id)
    )
    out = [DayRow(a, s, name, ref) for a, s, name, ref in rows]
    for row in out:
        record_access(
            db=db,
            actor=actor,
            citizen_id=row.appointment.citizen_id,
            mission_id=mission_id,
            action="list",
            object_type="appointment",
            object_id=row.appointment.id,
        )
    return out


def mark_appointment(
    *, db: Session, actor: Principal, appointment_id: int, status: str
) -> Appointment:
    """Mark an appointment attended or no-show."""
    row = db.get(Appointment, appointment_id)
    slot = db.get(Slot, row.slot_id) if row else None
    if row is None or slot is None or not actor.can("consulate.act", slot.mission_id):
        raise NotFound(f"appointment {appointment_id}")
    if status not in ("attended", "no_show") or row.status == "cancelled":
        raise _invalid("status", BAD_STATUS, status=row.status)
    row.status = status
    row.updated_at = utcnow()
    record_access(
        db=db,
        actor=actor,
        citizen_id=row.citizen_id,
        mission_id=slot.mission_id,
        action="change",
        object_type="appointment",
        object_id=row.id,
    )
    db.flush()
    return row


# ---------------------------------------------------------------------------- district search


@dataclass
class SearchHit:
    """A citizen found in the officer's district, with their registrations there."""

    citizen: Citizen
    registrations: list[Registration]


def search_district(*, db: Session, actor: Principal, q: str, limit: int = 50) -> list[SearchHit]:
    """Find citizens by name, e-mail or phone among those registered with the officer's missions."""
    if not actor.can_somewhere("consulate.read"):
        raise PermissionDenied("consulate.read: needs role consular, ambassador or admin")
    text = clean_text("q", q, max_len=100, required=True)
    pattern = "%" + text.lower().replace("\\", "").replace("%", "").replace("_", "") + "%"
    missions = actor.missions_where("consulate.read")
    in_district = select(Registration.citizen_id)
    requested = select(ServiceRequest.citizen_id).where(ServiceRequest.status != "draft")
    if missions is not None:
        in_district = in_district.where(Registration.mission_id.in_(missions))
        requested = requested.where(ServiceRequest.mission_id.in_(missions))
    found: list[ColumnElement[bool]] = [
        func.lower(Citizen.name).like(pattern),
        Citizen.email.like(pattern),
    ]
    # Phones and passport numbers are sealed: they are found whole, by their blind index.
    keyring = keyring_of(db)
    phones = keyring.lookups(PHONE, text)
    if phones:
        found.append(Citizen.phone_index.in_(phones))
        found.append(Citizen.id.in_(in_district.where(Registration.phone_index.in_(phones))))
    passport = normalise_passport(text)
    if len(passport) >= 5 and passport.isalnum() and any(c.isdigit() for c in passport):
        found.append(
            Citizen.id.in_(
                requested.where(ServiceRequest.passport_index.in_(keyring.lookups(PASSPORT, text)))
            )
        )
    citizens = list(
        db.scalars(
            select(Citizen)
            .where(
                or_(Citizen.id.in_(in_district), Citizen.id.in_(requested)),
                or_(*found),
            )
            .order_by(Citizen.name, Citizen.id)
            .limit(limit)
        )
    )
    hits = []
    for citizen in citizens:
        regs = select(Registration).where(Registration.citizen_id == citizen.id)
        if missions is not None:
            regs = regs.where(Registration.mission_id.in_(missions))
        hits.append(SearchHit(citizen, list(db.scalars(regs.order_by(Registration.id.desc())))))
        record_access(
            db=db,
            actor=actor,
            citizen_id=citizen.id,
            mission_id=None,
            action="search",
            object_type="citizen",
            object_id=citizen.id,
            fields=SEARCH_FIELDS,
            why="page",
        )
    return hits


# ---------------------------------------------------------------- the citizen's own data


def access_log(*, db: Session, citizen_id: int, limit: int = 500) -> list[StaffAccess]:
    """Return every recorded staff access to the citizen's data, newest first."""
    return list(
        db.scalars(
            select(StaffAccess)
            .where(StaffAccess.citizen_id == citizen_id)
            .order_by(StaffAccess.at.desc(), StaffAccess.id.desc())
            .limit(limit)
        )
    )


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def _row(obj: Any, columns: Iterable[str]) -> dict[str, Any]:
    return {c: _iso(getattr(obj, c)) for c in columns}


#: Sealed personal data the citizen's own data export holds.
EXPORT_FIELDS = (
    "citizen.phone",
    "registration.address",
    "registration.phone",
    "registration.emergency_contact",
    "registration.companions",
    "service_request.answers",
    "consular_message.body",
)


def export_citizen(*, db: Session, citizen_id: int) -> dict[str, Any]:
    """Return everything stored about a citizen as JSON-ready data (no secrets).

    The export opens the citizen's sealed data, so it is in the audit log (reading one's own
    pages is not: that would only bury the log)."""
    citizen = get_citizen(db=db, citizen_id=citizen_id)
    requests = citizen_requests(db=db, citizen_id=citizen_id)
    accounts.audit(
        db=db,
        action="citizen.export",
        object_type="citizen",
        object_id=citizen_id,
        actor_label="citizen",
        detail={"citizen_id": citizen_id, "fields": list(EXPORT_FIELDS), "why": "export"},
    )
    return {
        "account": _row(
            citizen,
            ("id", "email", "name", "phone", "lang", "email_verified_at", "created_at"),
        )
        | {"totp_enabled": bool(citizen.totp_secret)},
        "registrations": [
            _row(
                r,
                (
                    "id",
                    "mission_id",
                    "country_code",
                    "city",
                    "address",
                    "arrive_on",
                    "leave_on",
                    "phone",
                    "emergency_contact",
                    "companions",
                    "status",
                    "confirmed_at",
                    "created_at",
                ),
            )
            for r in citizen_stays(db=db, citizen_id=citizen_id)
        ],
        "requests": [
            _row(
                r,
                (
                    "id",
                    "reference",
                    "mission_id",
                    "service_type_id",
                    "status",
                    "answers",
                    "reason",
                    "created_at",
                    "submitted_at",
                    "decided_at",
                ),
            )
            | {
                "history": [
                    _row(e, ("at", "actor_kind", "action", "from_status", "to_status", "note"))
                    for e in history(db=db, request_id=r.id)
                ],
                "documents": [
                    _row(
                        d,
                        ("id", "kind", "filename", "content_type", "size", "sha256", "created_at"),
                    )
                    for d in documents_of(db=db, request_id=r.id)
                ],
                "messages": [
                    _row(m, ("sender_kind", "sender_label", "body", "created_at"))
                    for m in messages_of(db=db, request_id=r.id)
                ],
            }
            for r in requests
        ],
        "appointments": [
            _row(a, ("id", "request_id", "status", "created_at")) | {"starts_at": _iso(s.starts_at)}
            for a, s in citizen_appointments(db=db, citizen_id=citizen_id)
        ],
        "staff_access": [
            _row(x, ("at", "staff_label", "mission_id", "action", "object_type", "object_id"))
            for x in access_log(db=db, citizen_id=citizen_id, limit=100_000)
        ],
    }


# ---------------------------------------------------------------------------- retention


@dataclass(frozen=True)
class Retention:
    """How long each kind of record is kept, in days."""

    registration: int
    request: int
    document: int
    draft: int
    access_log: int
    unverified: int


@dataclass
class PurgeReport:
    """What a purge removed, and the stored files to delete once it is committed."""

    counts: dict[str, int] = field(default_factory=dict)
    storage_keys: list[str] = field(default_factory=list)


def _doc_keys(db: Session, where: Any) -> tuple[list[int], list[str]]:
    rows = db.execute(select(Document.id, Document.storage_key).where(where)).all()
    return [r[0] for r in rows], [r[1] for r in rows]


def purge(*, db: Session, retention: Retention, now: datetime | None = None) -> PurgeReport:
    """Delete records past their retention period; return counts and files to delete."""
    now = now or utcnow()
    report = PurgeReport()
    report.counts["expired_stays"] = expire_stays(db=db, today=now.date())

    def gone(name: str, stmt: Any) -> None:
        report.counts[name] = int(db.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]

    old_requests = select(ServiceRequest.id).where(
        or_(
            ServiceRequest.decided_at < now - timedelta(days=retention.request),
            (ServiceRequest.status == "draft")
            & (ServiceRequest.updated_at < now - timedelta(days=retention.draft)),
        )
    )
    decided_long_ago = select(ServiceRequest.id).where(
        ServiceRequest.status.in_(DECIDED_STATUSES),
        ServiceRequest.decided_at < now - timedelta(days=retention.document),
    )
    unverified = select(Citizen.id).where(
        Citizen.email_verified_at.is_(None),
        Citizen.created_at < now - timedelta(days=retention.unverified),
    )
    ids, keys = _doc_keys(
        db,
        or_(
            Document.request_id.in_(old_requests),
            Document.request_id.in_(decided_long_ago),
            Document.citizen_id.in_(unverified),
        ),
    )
    report.storage_keys = keys
    if ids:
        gone("documents", delete(Document).where(Document.id.in_(ids)))
    else:
        report.counts["documents"] = 0
    gone("requests", delete(ServiceRequest).where(ServiceRequest.id.in_(old_requests)))
    gone(
        "registrations",
        delete(Registration).where(
            Registration.leave_on < (now - timedelta(days=retention.registration)).date()
        ),
    )
    gone(
        "access_log",
        delete(StaffAccess).where(StaffAccess.at < now - timedelta(days=retention.access_log)),
    )
    gone("unverified_accounts", delete(Citizen).where(Citizen.id.in_(unverified)))
    gone("tokens", delete(CitizenToken).where(CitizenToken.expires_at < now))
    return report
