"""Slots and appointments: mission time zones, slots, booking, moving, the day list."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from elshi.accounts import service as accounts
from elshi.accounts.service import PermissionDenied, Principal
from elshi.consulate.models import (
    Appointment,
    Citizen,
    ServiceRequest,
    Slot,
)
from elshi.consulate.service import (
    ALREADY_BOOKED,
    BAD_CAPACITY,
    BAD_COUNT,
    BAD_MINUTES,
    BAD_STATUS,
    BAD_TIME,
    NOT_BOOKED,
    SKIPPED_TIME,
    SLOT_FULL,
    SLOT_MISSION,
    SLOT_PAST,
    Invalid,
    NotFound,
    Problem,
    SlotFull,
    _gather,
    _invalid,
    _parse_date,
    clean_text,
)
from elshi.consulate.service.access import record_access
from elshi.consulate.service.citizens import _own
from elshi.consulate.service.requests import _event, citizen_request
from elshi.db import utcnow
from elshi.missions.models import Mission
from elshi.missions.service import zone_of
from elshi.web.i18n import N_

CHOOSE_SLOT = N_("Choose a time from the list.")


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
    accounts.audit_by(
        actor,
        db,
        "consulate.slots_add",
        "slot",
        mission_id=mission_id,
        count=len(slots),
        first=first.isoformat(),
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
    if request_id is not None:
        _appointment_event(db, row, "booked", now)
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
    _appointment_event(db, row, "moved", now)
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
    _appointment_event(db, row, "cancelled", row.updated_at)
    return row


#: What an appointment event means, in the citizen's request history.
APPOINTMENT_EVENTS = {
    "booked": N_("appointment booked"),
    "moved": N_("appointment moved"),
    "cancelled": N_("appointment cancelled"),
}


def _appointment_event(db: Session, row: Appointment, action: str, now: datetime) -> None:
    """Write the booking, move or cancellation into the request's history, as the citizen."""
    if row.request_id is None:
        return
    request = db.get(ServiceRequest, row.request_id)
    if request is not None:
        _event(
            db, request, kind="citizen", actor_id=row.citizen_id, label="", action=action, now=now
        )


@dataclass(frozen=True)
class Booked:
    """The appointment of a request, and whether an earlier one was moved to the new slot."""

    appointment: Appointment
    moved: bool


def book_or_move(*, db: Session, citizen_id: int, request_id: int, slot_id: str) -> Booked:
    """Book a slot for the citizen's request, or move the request's booked appointment to it."""
    request = citizen_request(db=db, citizen_id=citizen_id, request_id=request_id)
    if not slot_id.isdigit():
        raise _invalid("slot_id", CHOOSE_SLOT)
    current = _active_appointment(db, request.id)
    if current is not None:
        row = move(db=db, citizen_id=citizen_id, appointment_id=current.id, slot_id=int(slot_id))
        return Booked(row, moved=True)
    row = book(db=db, slot_id=int(slot_id), citizen_id=citizen_id, request_id=request.id)
    return Booked(row, moved=False)


def _with_slots(db: Session, where: Any) -> list[tuple[Appointment, Slot]]:
    """The appointments that match `where`, with their slots, soonest first."""
    rows = db.execute(
        select(Appointment, Slot)
        .join(Slot, Slot.id == Appointment.slot_id)
        .where(where)
        .order_by(Slot.starts_at)
    )
    return [(a, s) for a, s in rows]


def citizen_appointments(*, db: Session, citizen_id: int) -> list[tuple[Appointment, Slot]]:
    """Return the citizen's appointments with their slots, soonest first."""
    return _with_slots(db, Appointment.citizen_id == citizen_id)


def request_appointments(*, db: Session, request_id: int) -> list[tuple[Appointment, Slot]]:
    """Return the appointments booked for one request with their slots, soonest first."""
    return _with_slots(db, Appointment.request_id == request_id)


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
            row=row.appointment,
            mission_id=mission_id,
            action="list",
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
        row=row,
        mission_id=slot.mission_id,
        action="change",
    )
    db.flush()
    return row
