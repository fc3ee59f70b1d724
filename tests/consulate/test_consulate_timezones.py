"""Mission time zones: checked on entry; slots in local time across a clock change."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from elshi.consulate.models import Slot
from elshi.db import Database
from elshi.settings import Settings
from tests.consulate.support import World, world
from tests.consulate.test_consulate_web import (
    _citizen_login,
    _client,
    _csrf,
    _draft,
    _staff_login,
    _submitted,
)


@pytest.fixture
def w(db: Database) -> World:
    return world(db)


# ---------------------------------------------------------------------------- mission time zones


def _spring_forward(today: date) -> date:
    """The next last Sunday of March (clocks go forward in Europe at 02:00 local time)."""
    year = today.year if today < date(today.year, 3, 20) else today.year + 1
    last = date(year, 3, 31)
    return last - timedelta(days=(last.weekday() - 6) % 7)


def test_mission_time_zone_is_checked(cli: Any, db: Database, w: World) -> None:
    result = cli("missions", "timezone", "berlin", "Mars/Olympus_Mons")
    assert result.exit_code == 2 and "Mars/Olympus_Mons" in result.output
    assert cli("missions", "timezone", "nowhere", "Europe/Berlin").exit_code == 4  # not found
    result = cli("missions", "add", "rome", "--name", "Embassy in Rome", "--timezone", "Rome")
    assert result.exit_code == 2 and "IANA" in result.output
    assert cli("missions", "timezone", "berlin", "Europe/Berlin").exit_code == 0
    listed = cli("missions", "list", "--json").output
    assert '"timezone": "Europe/Berlin"' in listed


def test_slots_opened_and_booked_in_local_time_across_a_clock_change(
    cli: Any, db: Database, w: World, settings: Settings
) -> None:
    assert cli("missions", "timezone", "berlin", "Europe/Berlin").exit_code == 0
    day = _spring_forward(date.today())
    officer = _client(settings, db)
    _staff_login(officer, "officer.a@mfa.example")
    token = _csrf(officer, f"/consular/slots?mission={w.a}")
    form = {"csrf_token": token, "mission_id": str(w.a), "day": day.isoformat()}
    form |= {"count": "4", "minutes": "30", "capacity": "2"}
    # 02:30 does not exist in Berlin that night: refused, nothing opened.
    r = officer.post("/consular/slots", data=form | {"start": "02:30"}, follow_redirects=False)
    assert r.status_code == 400 and "The clocks skip this time" in r.text
    r = officer.post("/consular/slots", data=form | {"start": "01:00"}, follow_redirects=False)
    assert r.status_code == 303
    with db.session() as s:
        slots = list(s.scalars(select(Slot).where(Slot.mission_id == w.a).order_by(Slot.starts_at)))
    # Four slots of 30 real minutes from 01:00 CET (00:00 UTC): the clocks jump after the second.
    assert [x.starts_at.strftime("%H:%M") for x in slots] == ["00:00", "00:30", "01:00", "01:30"]
    calendar = officer.get(f"/consular/slots?mission={w.a}&week={day.isoformat()}").text
    assert all(t in calendar for t in ("01:00", "01:30", "03:00", "03:30"))
    assert "02:00" not in calendar and "(Europe/Berlin)" in calendar

    visitor = _client(settings, db)
    _citizen_login(visitor, "alice@example.org")
    req = _draft(visitor, w.visa_a)
    _submitted(visitor, req)
    token = _csrf(visitor, f"/consulate/requests/{req}")
    r = visitor.post(
        f"/consulate/requests/{req}/book",
        data={"csrf_token": token, "slot_id": str(slots[2].id)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    page = visitor.get(f"/consulate/requests/{req}").text
    assert f"{day.isoformat()} 03:00 (Europe/Berlin)" in page
    assert f"{day.isoformat()} 03:00 (Europe/Berlin)" in visitor.get("/consulate/home").text
    listing = officer.get(f"/consular/appointments?mission={w.a}&day={day.isoformat()}").text
    assert "03:00" in listing and "Alice Applicant" in listing
