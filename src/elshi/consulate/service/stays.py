"""Registrations of a stay abroad: parse, register, confirm, cancel, expire, remind."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from elshi.consulate import countries
from elshi.consulate.models import (
    Registration,
)
from elshi.consulate.service import (
    BAD_COUNTRY,
    BAD_STATUS,
    DATES_REVERSED,
    MAX_COMPANIONS,
    TOO_MANY_COMPANIONS,
    TRIP_OVER,
    TRIP_TOO_LONG,
    Invalid,
    Problem,
    _gather,
    _invalid,
    _parse_date,
    clean_text,
)
from elshi.consulate.service.citizens import _mission_id, _own
from elshi.db import utcnow


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
        text = clean_text("country_code", raw.get("country_code"), max_len=100, required=True)
        code = countries.resolve(text)
        if code is None:
            raise _invalid("country_code", BAD_COUNTRY)
        return code

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


def confirmation_due(row: Registration, *, now: datetime, unconfirmed_days: int) -> bool:
    """Whether to ask the citizen to confirm a stay: only once it went unconfirmed for the
    confirmation period (never right after registering or confirming it)."""
    last = row.confirmed_at or row.created_at
    return row.status == "active" and last <= now - timedelta(days=unconfirmed_days)


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
