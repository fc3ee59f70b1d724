"""The consular JSON API: citizens see their own data; officers their mission's."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from elshi.accounts import service as accounts
from elshi.consulate import service
from elshi.consulate.models import StaffAccess
from elshi.db import Database
from elshi.settings import Settings
from tests.consulate.support import World, add_stay, world
from tests.consulate.test_consulate_web import (
    _citizen_login,
    _client,
    _draft,
    _staff_login,
    _submitted,
)


@pytest.fixture
def w(db: Database) -> World:
    return world(db)


# ---------------------------------------------------------------------------- JSON API


def test_citizen_api_shows_only_own_data(db: Database, w: World, settings: Settings) -> None:
    visitor = _client(settings, db)
    assert visitor.get("/api/consulate/me").status_code == 401
    _citizen_login(visitor, "alice@example.org")
    req = _draft(visitor, w.visa_a)
    _submitted(visitor, req)
    with db.session() as s:
        add_stay(s, w.alice, w.a, 10, city="Potsdam")
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
