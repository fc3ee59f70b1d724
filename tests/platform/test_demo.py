"""The demo is a working tour: staff, citizens, requests at every status, a past crisis."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from elshi.app import create_app
from elshi.consulate.models import REQUEST_STATUSES, Citizen, Registration, ServiceRequest
from elshi.crisis.models import CheckIn, Crisis
from elshi.db import Database
from elshi.demo import load_demo
from elshi.demo.people import PEOPLE, STAFF
from elshi.missions.models import Mission
from elshi.settings import Settings
from tests.workspace_helpers import csrf, sign_in


def test_the_demo_has_people_requests_and_a_past_crisis(db: Database, settings: Settings) -> None:
    info = load_demo(db, settings=settings, posts=40)
    assert info["citizens"] == len(PEOPLE)
    with db.session() as s:
        berlin = s.scalars(select(Mission).where(Mission.slug == "berlin")).one()
        assert berlin.timezone == "Europe/Berlin"
        statuses = set(s.scalars(select(ServiceRequest.status)))
        submitted = s.scalars(
            select(ServiceRequest.reference).where(ServiceRequest.status == "submitted")
        ).one()
        assert statuses == set(REQUEST_STATUSES)
        companions = [r.companions for r in s.scalars(select(Registration))]
        assert sum(len(c) for c in companions) >= 3
        crisis = s.scalars(select(Crisis)).one()
        assert crisis.status == "closed"
        answers = set(s.scalars(select(CheckIn.answer).where(CheckIn.crisis_id == crisis.id)))
        assert {"safe", "help"} <= answers
    # A second run adds nothing.
    again = load_demo(db, settings=settings, posts=40)
    assert again["citizens"] == 0
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Citizen)) == len(PEOPLE)
        assert s.scalar(select(func.count()).select_from(Crisis)) == 1

    client = TestClient(create_app(settings, db=db))
    client.headers["accept-language"] = "en"
    password = info["password"]
    # A citizen signs in and finds their request, in words.
    token = csrf(client, "/consulate/login")
    r = client.post(
        "/consulate/login",
        data={"email": PEOPLE[2].email, "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:300]
    home = client.get("/consulate/home")
    assert home.status_code == 200
    assert "more documents needed" in home.text
    assert not re.search(r">\s*more_documents\s*<", home.text)  # a word, not a code
    client.cookies.clear()
    # The consul sees the queue, and the past crisis with its answers.
    sign_in(client, STAFF[0][0], password)
    queue = client.get("/consular")
    assert queue.status_code == 200 and submitted in queue.text
    crises = client.get("/crisis")
    assert crises.status_code == 200 and "Berlin transport strike" in crises.text
    page = client.get(f"/crisis/{crisis.id}")
    assert page.status_code == 200
