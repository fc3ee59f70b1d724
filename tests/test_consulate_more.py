"""E-consulate additions: stay reminders, catalogue editing, mission time zones, the JSON API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from elshi import jobs
from elshi.accounts import service as accounts
from elshi.accounts.models import AuditEvent
from elshi.consulate import service
from elshi.consulate.models import Citizen, Registration, ServiceType, Slot, StaffAccess
from elshi.db import Database, utcnow
from elshi.settings import Settings
from tests.consulate_support import Sink, World, citizen, free_port, link_in, world
from tests.test_consulate_web import (
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


def _stay(s: Any, citizen_id: int, mission_id: int, leave_in: int, **fields: Any) -> int:
    today = date.today()
    row = service.register_stay(
        db=s,
        citizen_id=citizen_id,
        raw={
            "mission_id": str(mission_id),
            "country_code": "DE",
            "city": fields.pop("city", "Berlin"),
            "arrive_on": str(today),
            "leave_on": str(today + timedelta(days=leave_in)),
        },
    )
    for name, value in fields.items():
        setattr(row, name, value)
    s.flush()
    return row.id


# ---------------------------------------------------------------------------- stay reminders


def test_stay_reminders_go_once_per_reason_over_smtp(
    db: Database, w: World, settings: Settings, smtp: Sink
) -> None:
    long_ago = utcnow() - timedelta(days=40)
    with db.session() as s:
        carol = citizen(s, "carol@example.org", "Carol Confirmed")
        dana = citizen(s, "dana@example.org", "Dana Gone")
        s.get(Citizen, w.bob).lang = "ru"  # type: ignore[union-attr]
        ending = _stay(s, w.alice, w.a, 2, city="Potsdam")
        stale = _stay(s, w.bob, w.b, 60, city="Lyon", created_at=long_ago)
        _stay(s, carol, w.a, 60, created_at=long_ago, confirmed_at=utcnow() - timedelta(days=1))
        _stay(s, dana, w.a, 2, status="cancelled")
    # The job queues each e-mail; the queue runs here at once and sends it over real SMTP.
    immediate = settings.model_copy(update={"queue_url": "memory://", "queue_immediate": True})
    rt = jobs.bind(immediate, db)
    assert rt.tasks["remind_stays"].call_local() == 2

    [alice_mail] = smtp.texts("alice@example.org")
    assert "Potsdam" in alice_mail and "confirm" in alice_mail
    assert link_in(alice_mail, "/consulate/home").endswith("/consulate/home#stays")
    [bob_mail] = smtp.texts("bob@example.org")
    assert "Lyon" in bob_mail and "Подтвердите" in bob_mail  # in the citizen's language
    assert smtp.texts("carol@example.org") == smtp.texts("dana@example.org") == []

    # Nothing new happened: no second e-mail for the same reason.
    assert rt.tasks["remind_stays"].call_local() == 0
    assert len(smtp.messages) == 2
    with db.session() as s:
        assert s.get(Registration, ending).reminded_at is not None  # type: ignore[union-attr]
        service.confirm_stay(db=s, citizen_id=w.bob, registration_id=stale)
    # Bob confirmed: he is asked again only after another unconfirmed period.
    with db.session() as s:
        later = utcnow() + timedelta(days=29)
        assert stale not in {r.id for r in _due(s, settings, later)}
        assert stale in {r.id for r in _due(s, settings, later + timedelta(days=2))}


def _due(s: Any, settings: Settings, now: Any) -> list[Registration]:
    return service.stays_to_remind(
        db=s,
        ending_days=settings.stay_reminder_ending_days,
        unconfirmed_days=settings.stay_reminder_unconfirmed_days,
        now=now,
    )


def test_ending_reminder_follows_an_earlier_unconfirmed_one(
    db: Database, w: World, settings: Settings
) -> None:
    now = utcnow()
    with db.session() as s:
        stay = _stay(s, w.alice, w.a, 40, created_at=now - timedelta(days=31))
        assert [r.id for r in _due(s, settings, now)] == [stay]
        s.get(Registration, stay).reminded_at = now  # type: ignore[union-attr]
        assert _due(s, settings, now) == []
        # Three days before the end the citizen hears once more, then not again.
        near_end = now + timedelta(days=38)
        assert [r.id for r in _due(s, settings, near_end)] == [stay]
        s.get(Registration, stay).reminded_at = near_end  # type: ignore[union-attr]
        assert _due(s, settings, near_end + timedelta(days=1)) == []
        # A stay already over is left to expire.
        assert _due(s, settings, now + timedelta(days=41)) == []


# ---------------------------------------------------------------------------- scale-out


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                out.append(int(entry.name))
    return out


def test_web_runs_several_processes_with_server_timing(settings: Settings) -> None:
    port = free_port()
    env = {**os.environ, "ELSHI_SERVER_TIMING": "1", "ELSHI_SECRET_KEY": "x" * 40}
    proc = subprocess.Popen(
        [sys.executable, "-m", "elshi.cli", "web", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        response = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert response is not None, proc.stdout.read() if proc.stdout else ""
        assert response.status_code == 200
        timing = response.headers["server-timing"]
        assert timing.startswith("app;dur=") and float(timing.split("=")[1]) >= 0
        python_children = [
            c for c in _children(proc.pid) if "python" in Path(f"/proc/{c}/cmdline").read_text()
        ]
        assert len(python_children) >= 2  # two serving processes (and uvicorn's supervisor)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_server_timing_is_off_by_default(settings: Settings, db: Database) -> None:
    from fastapi.testclient import TestClient

    from elshi.app import create_app

    with TestClient(create_app(settings, db=db)) as client:
        assert "server-timing" not in client.get("/health").headers


# ---------------------------------------------------------------------------- catalogue on the web


NEW_SERVICE = {
    "slug": "apostille",
    "name_kk": "Апостиль",
    "name_ru": "Апостиль",
    "name_en": "Apostille",
    "fee": "12,50",
    "currency": "eur",
    "active": "on",
    "f0_name": "document_title",
    "f0_type": "text",
    "f0_max": "120",
    "f0_required": "on",
    "f0_kk": "Құжат атауы",
    "f0_ru": "Название документа",
    "f0_en": "Document title",
    "f1_name": "",  # an empty row is left out
    "d0_slug": "original",
    "d0_required": "on",
    "d0_kk": "Түпнұсқа",
    "d0_ru": "Оригинал",
    "d0_en": "Original",
    "s0_kk": "Тексеру",
    "s0_ru": "Проверка",
    "s0_en": "Check",
}


def _post_catalogue(client: Any, data: dict[str, str], path: str = "/consular/catalogue") -> Any:

    token = _csrf(client, "/consular/catalogue")
    return client.post(path, data={"csrf_token": token, **data}, follow_redirects=False)


def test_officer_creates_edits_and_deactivates_a_service(
    db: Database, w: World, settings: Settings
) -> None:

    client = _client(settings, db)
    _staff_login(client, "officer.a@mfa.example")
    page = client.get("/consular/catalogue")
    assert page.status_code == 200 and "/consular/catalogue/new" in page.text
    assert client.get("/consular/catalogue/new").status_code == 200

    r = _post_catalogue(client, {**NEW_SERVICE, "mission_id": str(w.a)})
    assert r.status_code == 303, r.text[:800]
    with db.session() as s:
        row = s.scalar(select(ServiceType).where(ServiceType.slug == "apostille"))
        assert row is not None and row.mission_id == w.a
        assert (row.fee_cents, row.currency, row.needs_appointment) == (1250, "EUR", False)
        assert [f["name"] for f in row.fields] == ["document_title"]
        assert row.fields[0]["max"] == 120 and row.fields[0]["names"]["ru"] == "Название документа"
        assert [d["slug"] for d in row.documents] == ["original"]
        assert row.steps == [{"kk": "Тексеру", "ru": "Проверка", "en": "Check"}]
        apostille = row.id
        assert s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.action == "consulate.catalogue", AuditEvent.object_id == str(apostille)
            )
        )

    # Edit: the form shows the stored values; a new fee and a second field are kept, the id
    # (slug) stays whatever the form says.
    form = client.get(f"/consular/catalogue/{apostille}").text
    assert 'value="12.50"' in form and 'value="document_title"' in form
    edited = NEW_SERVICE | {
        "slug": "renamed",
        "fee": "20",
        "f1_name": "copies",
        "f1_type": "select",
        "f1_options": "1, 2, 3",
        "f1_kk": "Көшірмелер",
        "f1_ru": "Копии",
        "f1_en": "Copies",
        "service_type_id": str(apostille),
    }
    assert _post_catalogue(client, edited).status_code == 303
    with db.session() as s:
        row = s.get(ServiceType, apostille)
        assert row is not None and row.slug == "apostille" and row.fee_cents == 2000
        assert row.fields[1] == {
            "name": "copies",
            "names": {"kk": "Көшірмелер", "ru": "Копии", "en": "Copies"},
            "type": "select",
            "required": False,
            "max": 200,
            "options": ["1", "2", "3"],
        }

    # Deactivated, it leaves the citizens' catalogue; activated, it comes back.
    r = _post_catalogue(client, {}, f"/consular/catalogue/{apostille}/deactivate")
    assert r.status_code == 303
    visitor = _client(settings, db)
    _citizen_login(visitor, "alice@example.org")
    assert "Apostille" not in visitor.get(f"/consulate/services?mission={w.a}").text
    assert (
        _post_catalogue(client, {}, f"/consular/catalogue/{apostille}/activate").status_code == 303
    )
    assert "Apostille" in visitor.get(f"/consulate/services?mission={w.a}").text


def test_catalogue_form_refuses_bad_input_whole(db: Database, w: World, settings: Settings) -> None:

    client = _client(settings, db)
    _staff_login(client, "officer.a@mfa.example")
    with db.session() as s:
        before = s.scalar(select(func.count()).select_from(ServiceType))
    bad = NEW_SERVICE | {
        "mission_id": str(w.a),
        "slug": "Bad Slug!",
        "name_ru": "",
        "fee": "ten euros",
        "currency": "EURO",
        "f1_name": "document_title",  # the same name twice
        "f1_kk": "a",
        "f1_ru": "b",
        "f1_en": "c",
        "f2_name": "choice",
        "f2_type": "select",  # a list without choices
        "f2_kk": "a",
        "f2_ru": "b",
        "f2_en": "c",
        "f3_name": "x",
        "f3_max": "99999",
        "f3_kk": "<script>\x07</script>",
        "f4_name": "y",
        "f4_type": "script",
        "f4_kk": "a",
        "f4_ru": "b",
        "f4_en": "c",
    }
    r = _post_catalogue(client, bad)
    assert r.status_code == 400
    for message in (
        service.BAD_SLUG,
        service.ALL_LANGUAGES,
        service.BAD_FEE,
        service.BAD_CURRENCY,
        service.BAD_FIELD_TYPE,
        service.USED_TWICE,
        service.NEED_OPTIONS,
        service.BAD_FIELD_MAX,
        service.CONTROL_CHARS,
    ):
        assert message.replace("'", "&#39;") in r.text, message
    for field in ("slug", "name_ru", "fee", "currency", "f4_type", "f1_name", "f2_options"):
        assert f'id="{field}-error"' in r.text or f'name="{field}"' in r.text
    assert 'value="ten euros"' in r.text  # what was typed is shown again
    # An id the mission already uses is refused rather than overwriting that service.
    r = _post_catalogue(client, NEW_SERVICE | {"mission_id": str(w.a), "slug": "visa"})
    assert r.status_code == 400 and service.SLUG_TAKEN in r.text
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ServiceType)) == before


def test_catalogue_access_by_role_and_mission(db: Database, w: World, settings: Settings) -> None:
    officer = _client(settings, db)
    _staff_login(officer, "officer.a@mfa.example")
    # Mission B's service: not found for an officer of A, and no creating at B either.
    assert officer.get(f"/consular/catalogue/{w.visa_b}").status_code == 404
    edit_b = NEW_SERVICE | {"service_type_id": str(w.visa_b)}
    assert _post_catalogue(officer, edit_b).status_code == 404
    assert _post_catalogue(officer, NEW_SERVICE | {"mission_id": str(w.b)}).status_code == 403
    r = _post_catalogue(officer, {}, f"/consular/catalogue/{w.visa_b}/deactivate")
    assert r.status_code == 404
    # No form token: refused.
    r = officer.post(f"/consular/catalogue/{w.visa_a}/deactivate", follow_redirects=False)
    assert r.status_code == 400
    # The ambassador reads requests but does not edit the catalogue.
    ambassador = _client(settings, db)
    _staff_login(ambassador, "ambassador.a@mfa.example")
    assert ambassador.get("/consular/catalogue").status_code == 403
    assert ambassador.get(f"/consular/catalogue/{w.visa_a}").status_code == 403
    r = _post_catalogue(ambassador, {}, f"/consular/catalogue/{w.visa_a}/deactivate")
    assert r.status_code == 403
    # HQ's admin edits any mission's catalogue.
    admin = _client(settings, db)
    _staff_login(admin, "admin@mfa.example")
    assert admin.get(f"/consular/catalogue?mission={w.b}").status_code == 200
    with db.session() as s:
        assert all(t.active for t in service.services(db=s, mission_id=w.a, active_only=False))


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


# ---------------------------------------------------------------------------- JSON API


def test_citizen_api_shows_only_own_data(db: Database, w: World, settings: Settings) -> None:
    visitor = _client(settings, db)
    assert visitor.get("/api/consulate/me").status_code == 401
    _citizen_login(visitor, "alice@example.org")
    req = _draft(visitor, w.visa_a)
    _submitted(visitor, req)
    with db.session() as s:
        _stay(s, w.alice, w.a, 10, city="Potsdam")
        other = service.create_draft(db=s, citizen_id=w.bob, service_type_id=w.visa_a).id

    me = visitor.get("/api/consulate/me").json()
    assert me["email"] == "alice@example.org" and me["stays"][0]["city"] == "Potsdam"
    assert [(r["id"], r["service"], r["status"]) for r in me["requests"]] == [
        (req, "visa", "submitted")
    ]
    detail = visitor.get(f"/api/consulate/me/requests/{req}").json()
    assert detail["answers"]["passport_number"] == "N1234567"
    assert sorted(d["kind"] for d in detail["documents"]) == ["passport", "photo"]
    assert [e["action"] for e in detail["history"]][:1] == ["created"]
    assert "storage_key" not in detail["documents"][0]
    # Bob's request by id: the same 404 as a request that does not exist.
    assert visitor.get(f"/api/consulate/me/requests/{other}").status_code == 404
    assert visitor.get("/api/consulate/me/requests/999999").status_code == 404
    # A staff session is not a citizen one.
    officer = _client(settings, db)
    _staff_login(officer, "officer.a@mfa.example")
    assert officer.get("/api/consulate/me").status_code == 401


def test_officer_api_is_scoped_to_the_mission_and_recorded(
    db: Database, w: World, settings: Settings
) -> None:

    visitor = _client(settings, db)
    _citizen_login(visitor, "alice@example.org")
    in_a = _draft(visitor, w.visa_a)
    _submitted(visitor, in_a)
    in_b = _draft(visitor, w.visa_b)
    _submitted(visitor, in_b)
    with db.session() as s:
        _, token = accounts.create_api_token(db=s, user_id=w.officer_a.user_id, name="desk")
        _, analyst = accounts.create_api_token(db=s, user_id=w.analyst_a.user_id, name="x")
    api = _client(settings, db)
    api.headers["authorization"] = f"Bearer {token}"
    queue = api.get("/api/consulate/queue").json()
    assert queue["total"] == 1 and [r["id"] for r in queue["rows"]] == [in_a]
    assert api.get("/api/consulate/queue?status=approved").json()["total"] == 0
    assert api.get("/api/consulate/queue?status=nonsense").status_code == 422
    detail = api.get(f"/api/consulate/requests/{in_a}").json()
    assert detail["applicant_name"] == "Alice Applicant" and detail["status"] == "submitted"
    assert api.get(f"/api/consulate/requests/{in_b}").status_code == 404  # mission B's
    with db.session() as s:
        seen = s.scalar(
            select(func.count())
            .select_from(StaffAccess)
            .where(StaffAccess.citizen_id == w.alice, StaffAccess.object_id == in_a)
        )
        assert seen == 1  # the citizen sees this read under 'who viewed my file'
    # An analyst of mission A has no consular access; no token at all is a 401.
    api.headers["authorization"] = f"Bearer {analyst}"
    assert api.get("/api/consulate/queue").status_code == 403
    assert api.get(f"/api/consulate/requests/{in_a}").status_code == 404
    del api.headers["authorization"]
    assert api.get("/api/consulate/queue").status_code == 401
    # The API is documented in the OpenAPI description.
    paths = api.get("/api/openapi.json").json()["paths"]
    assert {"/api/consulate/me", "/api/consulate/queue"} <= set(paths)
