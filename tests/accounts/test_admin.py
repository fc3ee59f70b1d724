"""Admin pages: missions, users and roles per mission, sources; forms check CSRF and input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from elshi.accounts import flows
from elshi.accounts import service as accounts
from elshi.accounts.models import AuditEvent, RoleGrant, User
from elshi.app import create_app
from elshi.db import Database
from elshi.listen.models import Source
from elshi.missions import service as missions
from elshi.missions.models import Mission
from elshi.settings import Settings
from elshi.web import i18n
from elshi.web.pages import FIELD_NAMES
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
    short = i18n.gettext("kk", accounts.SHORT_PASSWORD) % {"n": accounts.MIN_PASSWORD}
    assert r.status_code == 400 and short in r.text
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


def test_admin_disables_a_user_who_is_signed_out_at_once(
    client: TestClient, db: Database, settings: Settings
) -> None:
    with TestClient(create_app(settings, db=db)) as press:
        sign_in(press, "press@example.org")
        assert press.get("/posts", follow_redirects=False).status_code == 200
        sign_in(client, "admin@example.org")
        token = csrf(client, "/admin")
        with db.session() as s:
            ids = {u.email: u.id for u in s.scalars(select(User))}
        assert client.post(f"/admin/users/{ids['press@example.org']}/disable").status_code == 400
        own = client.post(
            f"/admin/users/{ids['admin@example.org']}/disable", data={"csrf_token": token}
        )
        assert own.status_code == 400
        assert i18n.gettext("kk", "You cannot disable your own account.") in own.text
        assert (
            client.post("/admin/users/99999/disable", data={"csrf_token": token}).status_code == 400
        )
        r = client.post(
            f"/admin/users/{ids['press@example.org']}/disable",
            data={"csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert press.get("/posts", follow_redirects=False).status_code == 303
        assert sign_in_status(press, "press@example.org") == 401
        r = client.post(
            f"/admin/users/{ids['press@example.org']}/enable",
            data={"csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert sign_in_status(press, "press@example.org") == 303
    with db.session() as s:
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert "user.disable" in actions and "user.enable" in actions


def test_others_may_not_disable_users(client: TestClient, db: Database) -> None:
    sign_in(client, "press@example.org")
    token = csrf(client, "/posts")
    with db.session() as s:
        admin_id = s.scalars(select(User.id).where(User.email == "admin@example.org")).one()
    r = client.post(f"/admin/users/{admin_id}/disable", data={"csrf_token": token})
    assert r.status_code == 403
    with db.session() as s:
        assert s.get(User, admin_id).is_active  # type: ignore[union-attr]


def sign_in_status(client: TestClient, email: str) -> int:
    client.cookies.clear()
    token = csrf(client, "/login")
    r = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )
    return r.status_code


@pytest.mark.parametrize("lang", ["kk", "ru"])
def test_admin_errors_are_shown_in_the_chosen_language(
    client: TestClient, db: Database, lang: str
) -> None:
    sign_in(client, "admin@example.org")
    assert client.get(f"/admin?lang={lang}").status_code == 200
    token = csrf(client, "/admin")

    def said(message: str, **params: object) -> str:
        text = i18n.gettext(lang, message)
        assert text != message, f"{message!r} has no {lang} translation"
        return text % params if params else text

    def refused(
        path: str, data: dict[str, str], field: str, message: str, **params: object
    ) -> None:
        r = client.post(path, data={"csrf_token": token, **data})
        assert r.status_code == 400, r.text
        expected = f"{said('Not saved:')} {said(FIELD_NAMES[field])}: {said(message, **params)}"
        # The page escapes the quotes around the value the user typed.
        assert expected.replace("'", "&#39;") in r.text
        assert i18n.gettext("en", message) % params not in r.text

    refused("/admin/missions", {"slug": "Bad Slug"}, "slug", missions.BAD_SLUG, slug="'Bad Slug'")
    refused(
        "/admin/missions",
        {"slug": "ankara", "country": "TUR"},
        "country",
        missions.BAD_COUNTRY,
        code="'TUR'",
    )
    refused(
        "/admin/missions",
        {"slug": "hq", "name": "again"},
        "slug",
        missions.SLUG_TAKEN,
        slug="hq",
    )
    user = {"name": "N", "password": PASSWORD, "role": "analyst", "mission": "hq"}
    refused(
        "/admin/users",
        {**user, "email": "not-an-address"},
        "email",
        accounts.NOT_EMAIL,
        email="'not-an-address'",
    )
    refused(
        "/admin/users",
        {**user, "email": "press@example.org"},
        "email",
        accounts.EMAIL_TAKEN,
        email="press@example.org",
    )
    refused(
        "/admin/users",
        {**user, "email": "new@example.org", "mission": "nowhere"},
        "mission",
        flows.NO_MISSION,
        slug="'nowhere'",
    )
    grant = {"email": "press@example.org", "mission": "hq"}
    refused("/admin/grants", {**grant, "role": "king"}, "role", "Choose a role from the list.")
    refused(
        "/admin/grants",
        {**grant, "email": "nobody@example.org", "role": "analyst"},
        "email",
        flows.NO_USER,
        email="'nobody@example.org'",
    )
    with db.session() as s:
        assert s.scalar(select(Mission).where(Mission.slug == "ankara")) is None
        assert s.scalar(select(User).where(User.email == "new@example.org")) is None


def test_a_page_for_staff_says_so_in_the_chosen_language(client: TestClient, db: Database) -> None:
    with db.session() as s:
        accounts.create_user(db=s, email="norole@example.org", password=PASSWORD)
    sign_in(client, "norole@example.org")
    r = client.get("/admin?lang=ru")
    assert r.status_code == 403
    assert r.json()["detail"] == i18n.gettext("ru", "This page is for the staff of a mission only.")
    assert client.get("/api/posts").json()["detail"] == "staff only"
