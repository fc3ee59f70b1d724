"""Appointment places are handed out by the database: never more bookings than places."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from elshi.consulate import service
from elshi.consulate.models import Appointment, Slot
from elshi.db import Database
from tests.conftest import BACKEND
from tests.consulate.support import many_citizens, slot, world

# PostgreSQL takes the full 500 bookings for 100 places; SQLite serialises writers, so a
# smaller crowd shows the same thing in less time.
CROWD, PLACES = (500, 100) if BACKEND == "postgres" else (200, 40)


def _race(db: Database, slot_id: int, citizen_ids: list[int]) -> dict[str, int]:
    outcome = {"booked": 0, "full": 0, "error": 0}
    lock = threading.Lock()
    start = threading.Barrier(min(32, len(citizen_ids)))

    def one(i: int) -> None:
        if i < 32:
            start.wait()
        try:
            with db.session() as s:
                service.book(db=s, slot_id=slot_id, citizen_id=citizen_ids[i])
            key = "booked"
        except service.SlotFull:
            key = "full"
        except Exception:
            key = "error"
        with lock:
            outcome[key] += 1

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(one, range(len(citizen_ids))))
    return outcome


def test_concurrent_bookings_never_exceed_capacity(db: Database) -> None:
    w = world(db)
    with db.session() as s:
        people = many_citizens(s, CROWD)
        slot_id = slot(s, w.a, PLACES)
    outcome = _race(db, slot_id, people)
    assert outcome == {"booked": PLACES, "full": CROWD - PLACES, "error": 0}
    with db.session() as s:
        row = s.get(Slot, slot_id)
        assert row is not None and row.booked == PLACES
        stored = s.scalar(
            select(func.count()).select_from(Appointment).where(Appointment.slot_id == slot_id)
        )
        assert stored == PLACES


def test_last_place_goes_to_exactly_one_of_two(db: Database) -> None:
    w = world(db)
    with db.session() as s:
        slot_id = slot(s, w.a, 1)
    for _ in range(5):
        with db.session() as s:
            row = s.get(Slot, slot_id)
            assert row is not None
            row.booked = 0
            s.query(Appointment).delete()
        outcome = _race(db, slot_id, [w.alice, w.bob])
        assert outcome == {"booked": 1, "full": 1, "error": 0}


def test_full_past_moved_and_cancelled_slots(db: Database) -> None:
    w = world(db)
    with db.session() as s:
        one = slot(s, w.a, 1)
        other = slot(s, w.a, 1, hours=72)
        past = slot(s, w.a, 5, hours=-1)
        elsewhere = slot(s, w.b, 5)
        draft = service.create_draft(db=s, citizen_id=w.alice, service_type_id=w.visa_a)
        draft_id = draft.id
    with db.session() as s:
        mine = service.book(db=s, slot_id=one, citizen_id=w.alice, request_id=draft_id)
        mine_id = mine.id
    with db.session() as s, pytest.raises(service.SlotFull) as full:
        service.book(db=s, slot_id=one, citizen_id=w.bob)
    assert full.value.problems[0].message == service.SLOT_FULL
    with db.session() as s, pytest.raises(service.Invalid) as late:
        service.book(db=s, slot_id=past, citizen_id=w.bob)
    assert late.value.problems[0].message == service.SLOT_PAST
    with db.session() as s, pytest.raises(service.Invalid) as twice:
        service.book(db=s, slot_id=other, citizen_id=w.alice, request_id=draft_id)
    assert twice.value.problems[0].message == service.ALREADY_BOOKED
    with db.session() as s, pytest.raises(service.Invalid) as abroad:
        service.move(db=s, citizen_id=w.alice, appointment_id=mine_id, slot_id=elsewhere)
    assert abroad.value.problems[0].message == service.SLOT_MISSION
    with db.session() as s, pytest.raises(service.NotFound):
        service.cancel(db=s, citizen_id=w.bob, appointment_id=mine_id)  # not Bob's
    with db.session() as s:
        service.move(db=s, citizen_id=w.alice, appointment_id=mine_id, slot_id=other)
    with db.session() as s:
        assert [s.get(Slot, i).booked for i in (one, other)] == [0, 1]  # type: ignore[union-attr]
        service.book(db=s, slot_id=one, citizen_id=w.bob)
        service.cancel(db=s, citizen_id=w.alice, appointment_id=mine_id)
    with db.session() as s:
        assert [s.get(Slot, i).booked for i in (one, other)] == [1, 0]  # type: ignore[union-attr]
        free = service.free_slots(db=s, mission_id=w.a, now=datetime.now(UTC))
        assert [x.id for x in free] == [other]
        assert (
            service.free_slots(db=s, mission_id=w.a, now=datetime.now(UTC) + timedelta(days=5))
            == []
        )


def test_booking_moving_and_cancelling_are_in_the_request_history(db: Database) -> None:
    w = world(db)
    with db.session() as s:
        first = slot(s, w.a, 2)
        second = slot(s, w.a, 2, hours=72)
        req_id = service.create_draft(db=s, citizen_id=w.alice, service_type_id=w.visa_a).id
    with db.session() as s, pytest.raises(service.Invalid) as unchosen:
        service.book_or_move(db=s, citizen_id=w.alice, request_id=req_id, slot_id="")
    assert unchosen.value.problems[0].message == service.CHOOSE_SLOT
    with db.session() as s, pytest.raises(service.NotFound):  # not Bob's request
        service.book_or_move(db=s, citizen_id=w.bob, request_id=req_id, slot_id=str(first))
    with db.session() as s:
        booked = service.book_or_move(
            db=s, citizen_id=w.alice, request_id=req_id, slot_id=str(first)
        )
        assert not booked.moved
    with db.session() as s:
        moved = service.book_or_move(
            db=s, citizen_id=w.alice, request_id=req_id, slot_id=str(second)
        )
        assert moved.moved and moved.appointment.id == booked.appointment.id
        assert moved.appointment.slot_id == second
    with db.session() as s:
        service.cancel(db=s, citizen_id=w.alice, appointment_id=booked.appointment.id)
    with db.session() as s:
        service.book(db=s, slot_id=first, citizen_id=w.bob)  # no request: no history to write
    with db.session() as s:
        events = service.history(db=s, request_id=req_id)
        assert [(e.action, e.to_status, e.actor_kind, e.actor_id) for e in events] == [
            ("created", None, "citizen", w.alice),
            ("booked", None, "citizen", w.alice),
            ("moved", None, "citizen", w.alice),
            ("cancelled", None, "citizen", w.alice),
        ]
        assert [s.get(Slot, i).booked for i in (first, second)] == [1, 0]  # type: ignore[union-attr]
