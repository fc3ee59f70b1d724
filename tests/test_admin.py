"""Admin pages: missions, users and roles per mission, sources; forms check CSRF and input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from elshi.accounts.models import AuditEvent, RoleGrant, User
from elshi.app import create_app
from elshi.db import Database
from elshi.listen.models import Source
from elshi.missions.models import Mission
from elshi.settings import Settings
from elshi.web import i18n
from tests.workspace_helpers import PASSWORD, add_staff, csrf, sign_in


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with db.session() as s:
        add_staff(s, "admin@example.org", "admin", "hq")
        add_staff(s, "press@example.org", "press", "berlin")
    with TestClient(create_app(settings, db=db)) as c:
        yield c


def test_admin_manages_missions_users_roles_and_sources(client: TestClient, db: Database) -> None:
    sign_in(client, "admin@example.org")
    page = client.get("/admin")
    assert page.status_code == 200 and i18n.gettext("kk", "Users and roles") in page.text
    token = csrf(client, "/admin")
    assert (
        client.post("/admin/missions", data={"csrf_token": "x", "slug": "astana"}).status_code
        == 400
    )
    r = client.post("/admin/missions", data={"csrf_token": token, "slug": "Bad Slug", "name": "x"})
    assert r.status_code == 400 and i18n.gettext("kk", "Not saved:") in r.text and "slug" in r.text
    r = client.post(
        "/admin/missions",
        data={"csrf_token": token, "slug": "ankara", "name": "Embassy in Ankara", "country": "TR"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = client.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "email": "new@example.org",
            "password": "short",
            "role": "analyst",
            "mission": "ankara",
        },
    )
    assert r.status_code == 400 and "at least 12" in r.text
    r = client.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "email": "new@example.org",
            "name": "New",
            "password": PASSWORD,
            "role": "analyst",
            "mission": "ankara",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = client.post(
        "/admin/grants",
        data={
            "csrf_token": token,
            "email": "new@example.org",
            "role": "citizen",
            "mission": "ankara",
        },
    )
    assert r.status_code == 400
    r = client.post(
        "/admin/grants",
        data={
            "csrf_token": token,
            "email": "new@example.org",
            "role": "press",
            "mission": "berlin",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.session() as s:
        user = s.scalar(select(User).where(User.email == "new@example.org"))
        assert user is not None
        grants = {
            (g.role, s.get(Mission, g.mission_id).slug)
            for g in s.scalars(select(RoleGrant).where(RoleGrant.user_id == user.id))
        }  # type: ignore[union-attr]
        assert grants == {("analyst", "ankara"), ("press", "berlin")}
        gid = s.scalar(
            select(RoleGrant.id).where(RoleGrant.user_id == user.id, RoleGrant.role == "press")
        )
    assert (
        client.post(
            f"/admin/grants/{gid}/revoke", data={"csrf_token": token}, follow_redirects=False
        ).status_code
        == 303
    )
    r = client.post(
        "/admin/sources", data={"csrf_token": token, "connector": "rss", "config": "{not json"}
    )
    assert r.status_code == 400 and i18n.gettext("kk", "The settings are not valid JSON.") in r.text
    r = client.post(
        "/admin/sources",
        data={"csrf_token": token, "connector": "rss", "config": '{"url": "ftp://x"}'},
    )
    assert r.status_code == 400 and "url" in r.text
    r = client.post(
        "/admin/sources",
        data={
            "csrf_token": token,
            "connector": "rss",
            "name": "Kazinform",
            "config": '{"url": "https://kazinform.example/rss"}',
            "every": "15",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.session() as s:
        src = s.scalar(select(Source).where(Source.name == "Kazinform"))
        assert src is not None and src.every_minutes == 15
        sid = src.id
    client.post(f"/admin/sources/{sid}/toggle", data={"csrf_token": token, "enabled": "0"})
    with db.session() as s:
        assert s.get(Source, sid).enabled is False  # type: ignore[union-attr]
        actions = set(s.scalars(select(AuditEvent.action)))
    assert {
        "mission.create",
        "user.create",
        "role.grant",
        "role.revoke",
        "source.paused",
    } <= actions


def test_other_staff_may_not_administer(client: TestClient) -> None:
    sign_in(client, "press@example.org")
    page = client.get("/admin")
    assert page.status_code == 200  # press officers manage sources
    token = csrf(client, "/admin")
    r = client.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "email": "x@example.org",
            "password": PASSWORD,
            "role": "admin",
            "mission": "hq",
        },
    )
    assert (
        r.status_code == 403
        and i18n.gettext("kk", "You may not do this in this mission.") in r.text
    )
    r = client.post("/admin/missions", data={"csrf_token": token, "slug": "rome", "name": "Rome"})
    assert r.status_code == 403
