"""The citizen's forms: error summary, country picker, check-your-answers, name, local times."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from elshi.consulate import countries, service
from elshi.consulate.models import Message, Registration, RequestEvent, ServiceRequest, StaffAccess
from elshi.db import Database
from elshi.missions.models import Mission
from elshi.settings import Settings
from tests.consulate.support import PNG_2x2, World, pdf, world
from tests.consulate.test_consulate_web import (
    ANSWERS,
    _citizen_login,
    _client,
    _csrf,
    _draft,
    _upload,
)


@pytest.fixture
def w(db: Database) -> World:
    return world(db)


@pytest.fixture
def alice(settings: Settings, db: Database, w: World) -> TestClient:
    client = _client(settings, db)
    _citizen_login(client, "alice@example.org")
    return client


def _summary(html: str) -> str:
    """The error summary of a page (it must be there)."""
    match = re.search(r'<div class="error-summary"[^>]*>.*?</div>', html, re.S)
    assert match, html[:2000]
    return match[0]


def _stay(w: World, **change: str) -> dict[str, str]:
    start = date.today() + timedelta(days=3)
    return {
        "mission_id": str(w.a),
        "country_code": "DE",
        "city": "Berlin",
        "address": "Hotel Adlon",
        "arrive_on": start.isoformat(),
        "leave_on": (start + timedelta(days=10)).isoformat(),
        "companion_0_name": "Dias",
        "companion_0_relation": "son",
    } | change


def _answers(
    client: TestClient, req: int, answers: dict[str, str], action: str, query: str = ""
) -> Any:
    """Send a request's form with one of its buttons."""
    token = _csrf(client, f"/consulate/requests/{req}")
    return client.post(
        f"/consulate/requests/{req}/answers{query}",
        data={**answers, "csrf_token": token, "action": action},
        follow_redirects=False,
    )


def _stays(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Registration)) or 0)


# ---------------------------------------------------------------------------- error summary


def test_a_form_with_errors_has_one_summary_linking_each_field(
    settings: Settings, db: Database, w: World
) -> None:
    with _client(settings, db) as c:
        token = _csrf(c, "/consulate/signup")
        form = {"email": "not-an-address", "name": "", "password": "short", "csrf_token": token}
        page = c.post("/consulate/signup", data=form)
    assert page.status_code == 400
    box = _summary(page.text)
    assert 'role="alert"' in box and 'tabindex="-1"' in box and "There is a problem" in box
    links = re.findall(r'<a href="#([a-z_]+)">([^<]+)</a>', box)
    assert {where for where, _ in links} == {"email", "name", "password"}
    assert "at least 12 characters" in dict(links)["password"]
    # Each field in error names its hint and its message.
    field = re.search(r'<input id="password"[^>]*>', page.text)
    assert field and 'aria-describedby="password-hint password-error"' in field[0]
    assert 'aria-invalid="true"' in field[0]
    assert re.search(r'id="password-error">[^<]*at least 12 characters', page.text)
    assert page.text.count('class="error-summary"') == 1
    assert "<title>Error: Create an account · e-Consulate</title>" in page.text


def test_a_problem_of_the_whole_form_is_in_the_summary_too(
    settings: Settings, db: Database, w: World
) -> None:
    with _client(settings, db) as c:
        token = _csrf(c, "/consulate/login")
        page = c.post(
            "/consulate/login",
            data={"email": "alice@example.org", "password": "wrong one", "csrf_token": token},
        )
    assert page.status_code == 401
    box = _summary(page.text)
    assert '<a href="#email">Wrong e-mail or password.' in box


def test_the_summary_speaks_the_page_language(alice: TestClient, w: World) -> None:
    token = _csrf(alice, "/consulate/stays/new")
    form = _stay(w, city="", csrf_token=token, step="check")
    page = alice.post("/consulate/stays/new?lang=ru", data=form)
    assert page.status_code == 400
    box = _summary(page.text)
    assert "Возникла проблема" in box and 'href="#city"' in box


# ---------------------------------------------------------------------------- country picker


def test_countries_are_named_in_the_page_language_and_stored_as_codes(
    alice: TestClient, db: Database, w: World
) -> None:
    kk = alice.get("/consulate/stays/new?lang=kk").text
    assert '<option value="DE" >Германия</option>' in kk and ">Қазақстан<" in kk
    assert 'data-picker="country"' in kk
    en = alice.get("/consulate/stays/new?lang=en").text
    assert '<option value="DE" >Germany</option>' in en
    assert len(countries.choices("ru")) == len(countries.codes()) >= 249
    assert "EU" not in countries.codes() and "ZZ" not in countries.codes()
    # The enhanced picker sends the chosen name; the stay keeps the code.
    token = _csrf(alice, "/consulate/stays/new")
    form = _stay(w, country_code="Германия", csrf_token=token, step="register")
    assert alice.post("/consulate/stays/new", data=form, follow_redirects=False).status_code == 303
    with db.session() as s:
        assert s.scalars(select(Registration.country_code)).one() == "DE"
    assert "Berlin, Германия" in alice.get("/consulate/home?lang=ru").text


@pytest.mark.parametrize("typed", ["XX", "ZZ", "EU", "Narnia", "D"])
def test_an_unknown_country_is_refused_at_its_field(
    alice: TestClient, db: Database, w: World, typed: str
) -> None:
    token = _csrf(alice, "/consulate/stays/new")
    page = alice.post(
        "/consulate/stays/new", data=_stay(w, country_code=typed, csrf_token=token, step="check")
    )
    assert page.status_code == 400
    assert '<a href="#country_code">Choose the country from the list.</a>' in _summary(page.text)
    assert re.search(r'id="country_code-error">Choose the country from the list.', page.text)
    assert re.search(r'<select id="country_code"[^>]*aria-invalid="true"', page.text)
    assert 'value="Berlin"' in page.text  # what was typed stays, the country for the box too
    assert f'data-typed="{typed}"' in page.text
    assert _stays(db) == 0


# ---------------------------------------------------------------------------- check your answers


def test_a_stay_is_checked_changed_and_only_then_registered(
    alice: TestClient, db: Database, w: World
) -> None:
    token = _csrf(alice, "/consulate/stays/new")
    check = alice.post("/consulate/stays/new", data=_stay(w, csrf_token=token, step="check"))
    assert check.status_code == 200, check.text[:500]
    assert _stays(db) == 0
    for shown in ("Embassy in Berlin", "Germany", "Berlin", "Hotel Adlon", "Dias (son)"):
        assert shown in check.text
    assert 'name="change" value="city"' in check.text
    assert '<span class="visually-hidden"> City</span>' in check.text
    # Back to the form at one answer, with every answer kept.
    hidden = dict(
        re.findall(r'<input type="hidden" name="([a-z_0-9]+)" value="([^"]*)"', check.text)
    )
    assert hidden["city"] == "Berlin" and hidden["companion_0_relation"] == "son"
    back = alice.post("/consulate/stays/new", data=hidden | {"change": "city"})
    assert back.status_code == 200
    assert re.search(r'<input id="city"[^>]*value="Berlin"[^>]*autofocus', back.text)
    assert 'value="Hotel Adlon"' in back.text and _stays(db) == 0
    # A check page with a forged token registers nothing.
    forged = alice.post(
        "/consulate/stays/new", data=hidden | {"step": "register", "csrf_token": "x"}
    )
    assert forged.status_code == 400 and _stays(db) == 0
    done = alice.post(
        "/consulate/stays/new", data=hidden | {"step": "register"}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"].endswith("notice=stay")
    assert _stays(db) == 1
    home = alice.get(done.headers["location"])
    assert "Your stay is registered." in home.text
    assert "please confirm" not in home.text and "/confirm" not in home.text


def test_a_request_is_checked_before_it_is_submitted(
    alice: TestClient, db: Database, w: World
) -> None:
    req = _draft(alice, w.visa_a)
    # Documents missing: the form comes back, the summary sends the citizen to the upload.
    early = _answers(alice, req, ANSWERS, "check")
    assert early.status_code == 400
    assert 'href="#document-kind"' in _summary(early.text)
    kk = _answers(alice, req, ANSWERS, "check", "?lang=kk")
    assert "Төлқұжат" in _summary(kk.text) and "Passport" not in _summary(kk.text)
    alice.get("/consulate/home?lang=en")  # the language chosen sticks: back to English
    assert _upload(alice, req, "passport", "p.pdf", pdf()).status_code == 303
    assert _upload(alice, req, "photo", "p.png", PNG_2x2).status_code == 303
    to_check = _answers(alice, req, ANSWERS, "check")
    assert to_check.status_code == 303
    assert to_check.headers["location"] == f"/consulate/requests/{req}/check"
    page = alice.get(to_check.headers["location"])
    assert page.status_code == 200
    assert "N1234567" in page.text and "tourism" in page.text and "p.pdf" in page.text
    assert f'href="/consulate/requests/{req}#passport_number"' in page.text
    assert f'href="/consulate/requests/{req}#documents"' in page.text
    with db.session() as s:
        assert s.get(ServiceRequest, req).status == "draft"  # type: ignore[union-attr]
    forged = alice.post(f"/consulate/requests/{req}/submit", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    token = _csrf(alice, f"/consulate/requests/{req}/check")
    sent = alice.post(
        f"/consulate/requests/{req}/submit", data={"csrf_token": token}, follow_redirects=False
    )
    assert sent.status_code == 303 and sent.headers["location"].endswith("notice=submitted")
    with db.session() as s:
        assert s.get(ServiceRequest, req).status == "submitted"  # type: ignore[union-attr]
    # Once submitted the page shows the answers only: nothing to change or submit again.
    again = alice.get(f"/consulate/requests/{req}/check")
    assert again.status_code == 200 and "N1234567" in again.text
    assert "/submit" not in again.text and f"/consulate/requests/{req}#" not in again.text
    token = _csrf(alice, f"/consulate/requests/{req}")
    twice = alice.post(f"/consulate/requests/{req}/submit", data={"csrf_token": token})
    assert twice.status_code == 400 and "cannot be done while the request is" in twice.text


def test_someone_elses_request_cannot_be_checked_or_submitted(
    settings: Settings, db: Database, w: World, alice: TestClient
) -> None:
    req = _draft(alice, w.visa_a)
    bob = _client(settings, db)
    _citizen_login(bob, "bob@example.org")
    assert bob.get(f"/consulate/requests/{req}/check").status_code == 404
    token = _csrf(bob, "/consulate/home")
    r = bob.post(f"/consulate/requests/{req}/submit", data={"csrf_token": token})
    assert r.status_code == 404


# ---------------------------------------------------------------------------- name from the account


def test_the_name_is_filled_from_the_account(alice: TestClient, db: Database, w: World) -> None:
    req = _draft(alice, w.visa_a)
    page = alice.get(f"/consulate/requests/{req}").text
    assert re.search(r'<input id="full_name"[^>]*value="Alice Applicant"', page)
    # A name the citizen typed is kept, not replaced by the account's.
    assert _answers(alice, req, {"full_name": "Alice B. Applicant"}, "save").status_code == 303
    page = alice.get(f"/consulate/requests/{req}").text
    assert re.search(r'<input id="full_name"[^>]*value="Alice B. Applicant"', page)


# ---------------------------------------------------------------------------- confirm prompt


def test_a_stay_is_due_for_confirmation_only_after_the_period() -> None:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    row = Registration(status="active", created_at=now - timedelta(days=2), confirmed_at=None)
    assert not service.confirmation_due(row, now=now, unconfirmed_days=30)
    row.created_at = now - timedelta(days=30)
    assert service.confirmation_due(row, now=now, unconfirmed_days=30)
    row.confirmed_at = now - timedelta(hours=1)
    assert not service.confirmation_due(row, now=now, unconfirmed_days=30)
    row.status, row.confirmed_at = "cancelled", None
    assert not service.confirmation_due(row, now=now, unconfirmed_days=30)


def test_home_asks_to_confirm_only_an_old_stay(alice: TestClient, db: Database, w: World) -> None:
    token = _csrf(alice, "/consulate/stays/new")
    form = _stay(w, csrf_token=token, step="register")
    assert alice.post("/consulate/stays/new", data=form, follow_redirects=False).status_code == 303
    assert "please confirm" not in alice.get("/consulate/home").text
    with db.session() as s:
        row = s.scalars(select(Registration)).one()
        row.created_at = row.created_at - timedelta(days=45)
    home = alice.get("/consulate/home").text
    assert "please confirm" in home and f"/consulate/stays/{row.id}/confirm" in home


# ---------------------------------------------------------------------------- times


def test_times_are_shown_in_the_missions_time_zone(
    alice: TestClient, db: Database, w: World
) -> None:
    req = _draft(alice, w.visa_a)
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # 10:00 in Berlin (winter time)
    with db.session() as s:
        s.get(Mission, w.a).timezone = "Europe/Berlin"  # type: ignore[union-attr]
        s.add(
            Message(
                request_id=req, sender_kind="staff", sender_label="o", body="Hello", created_at=at
            )
        )
        for event in s.scalars(select(RequestEvent).where(RequestEvent.request_id == req)):
            event.at = at + timedelta(minutes=5)
        s.add(
            StaffAccess(
                citizen_id=w.alice,
                at=at + timedelta(minutes=7),
                staff_label="officer.a",
                mission_id=w.a,
                action="view",
                object_type="request",
                object_id=req,
            )
        )
    page = alice.get(f"/consulate/requests/{req}").text
    messages = page[page.index('id="messages"') : page.index('id="history"')]
    assert "2026-12-01 10:00 (Europe/Berlin)" in messages
    history = page[page.index('id="history"') :]
    assert "2026-12-01 10:05 (Europe/Berlin)" in history and "UTC" not in history
    access = alice.get("/consulate/access").text
    assert "2026-12-01 10:07 (Europe/Berlin)" in access
