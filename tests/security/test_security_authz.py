"""Security audit findings 4, 5, 6, 11, 12 and 13: every query of mission data is scoped by the
missions where the needed permission is held, and API tokens have a scope.

Berlin (mission A) owns the data; Paris (mission B) is the third mission whose staff try it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from elshi.accounts import flows as account_flows
from elshi.accounts import service as accounts
from elshi.accounts.models import ApiToken, User
from elshi.accounts.service import Principal
from elshi.alerts.models import Alert, AlertRule
from elshi.app import create_app
from elshi.consulate import flows as consulate_flows
from elshi.consulate import service as consulate
from elshi.crisis import service as crisis
from elshi.db import Database, utcnow
from elshi.listen.models import Author
from elshi.missions.models import Mission
from elshi.missions.service import InvalidMission
from elshi.settings import Settings
from elshi.watch.models import Watch
from tests.consulate.support import PASSWORD, PNG_2x2, World, pdf, world
from tests.crisis.support import populate
from tests.workspace_helpers import add_post, add_source, csrf

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def w(db: Database) -> World:
    return world(db)


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=db)) as c:
        c.cookies.set("elshi_lang", "en")
        yield c


def _staff(db: Database, email: str, *grants: tuple[int, str]) -> int:
    with db.session() as s:
        user = accounts.create_user(db=s, email=email, password=PASSWORD, name=email)
        for mission_id, role in grants:
            accounts.grant_role(db=s, user_id=user.id, mission_id=mission_id, role=role)
        return user.id


def _principal(db: Database, user_id: int) -> Principal:
    with db.session() as s:
        principal = accounts.load_principal(db=s, user_id=user_id)
    assert principal is not None
    return principal


def _sign_in(client: TestClient, email: str) -> None:
    r = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf(client), "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:300]


def _visa(db: Database, w: World, settings: Settings) -> str:
    """Alice's visa request to Berlin, submitted with its documents; return its reference."""
    with db.session() as s:
        req = consulate.create_draft(db=s, citizen_id=w.alice, service_type_id=w.visa_a)
        consulate.save_answers(
            db=s,
            citizen_id=w.alice,
            request_id=req.id,
            raw={
                "full_name": "Alice Applicant",
                "birth_date": "1990-02-03",
                "passport_number": "N1234567",
                "purpose": "tourism",
                "entry_date": "2027-01-10",
            },
        )
        s.commit()
        for kind, data in (("passport", pdf()), ("photo", PNG_2x2)):
            consulate_flows.upload_document(
                db=s,
                settings=settings,
                citizen_id=w.alice,
                request_id=req.id,
                kind=kind,
                filename=f"{kind}.bin",
                data=data,
            )
        consulate.submit(db=s, citizen_id=w.alice, request_id=req.id)
        return req.reference


# ---------------------------------------------------------------------------- the rule


def test_the_rule_reaches_only_missions_where_the_permission_is_held(
    db: Database, w: World
) -> None:
    dual = _principal(db, _staff(db, "dual@mfa.example", (w.b, "consular"), (w.hq, "press")))
    # Consular in Paris only, even though press at headquarters reaches every mission.
    assert dual.missions_where("consulate.read") == frozenset({w.b})
    assert dual.missions_where("speak.draft") is None
    assert dual.can("consulate.read", w.b) and not dual.can("consulate.read", w.a)
    # Data of no mission needs the permission at headquarters.
    assert not dual.can("consulate.read", None) and dual.can("speak.draft", None)
    assert dual.can_somewhere("consulate.act") and not dual.can_somewhere("users.manage")
    assert Principal.system().missions_where("users.manage") is None


# ---------------------------------------------------------------------------- finding 4


def test_finding_04_mission_admin_cannot_disable_hq_admin_or_create_missions(
    client: TestClient, db: Database, w: World
) -> None:
    _staff(db, "admin.paris@mfa.example", (w.b, "admin"))
    analyst_paris = _staff(db, "analyst.paris@mfa.example", (w.b, "analyst"))
    both = _staff(db, "both@mfa.example", (w.b, "analyst"), (w.a, "analyst"))
    _sign_in(client, "admin.paris@mfa.example")
    token = csrf(client, "/admin")
    hq_admin = w.hq_admin.user_id
    r = client.post(f"/admin/users/{hq_admin}/disable", data={"csrf_token": token})
    assert r.status_code == 403
    r = client.post(f"/admin/users/{both}/disable", data={"csrf_token": token})
    assert r.status_code == 403
    for kind in ("hq", "embassy"):
        r = client.post(
            "/admin/missions",
            data={"csrf_token": token, "slug": f"rogue-{kind}", "name": "Rogue", "kind": kind},
        )
        assert r.status_code == 403
    with db.session() as s:
        assert s.get(User, hq_admin).is_active and s.get(User, both).is_active  # type: ignore[union-attr]
        assert s.scalar(select(func.count()).where(Mission.slug.like("rogue%"))) == 0
        assert s.scalar(select(func.count()).where(Mission.kind == "hq")) == 1
    # What a mission's admin may do still works: their own mission's analyst.
    r = client.post(
        f"/admin/users/{analyst_paris}/disable", data={"csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303
    with db.session() as s:
        assert not s.get(User, analyst_paris).is_active  # type: ignore[union-attr]
    # The page offers the mission form to headquarters only, and no HQ user to Paris's admin.
    page = client.get("/admin")
    assert 'action="/admin/missions"' not in page.text
    assert "admin@mfa.example" not in page.text and "officer.a@mfa.example" not in page.text


def test_finding_04_headquarters_is_one(db: Database, w: World) -> None:
    with db.session() as s, pytest.raises(InvalidMission):
        account_flows.add_mission(db=s, actor=w.hq_admin, slug="hq2", name="Second", kind="hq")
    with db.session() as s:
        made = account_flows.add_mission(db=s, actor=w.hq_admin, slug="astana", name="Astana")
        assert made.kind == "embassy"


# ---------------------------------------------------------------------------- finding 5


def test_finding_05_consular_search_and_queue_scope_by_consular_missions(
    client: TestClient, db: Database, w: World, settings: Settings
) -> None:
    reference = _visa(db, w, settings)
    with db.session() as s:
        consulate.register_stay(
            db=s,
            citizen_id=w.alice,
            raw={
                "mission_id": str(w.a),
                "country_code": "DE",
                "city": "Berlin",
                "arrive_on": "2026-01-05",
                "leave_on": "2026-12-20",
                "phone": "+4915112345678",
            },
            today=datetime(2026, 1, 1, tzinfo=UTC).date(),
        )
    _staff(db, "dual@mfa.example", (w.b, "consular"), (w.hq, "press"))
    dual = _principal(db, _staff(db, "dual2@mfa.example", (w.b, "consular"), (w.hq, "press")))
    with db.session() as s:
        assert consulate.search_district(db=s, actor=dual, q="Alice") == []
        assert consulate.queue(db=s, actor=dual)[0] == 0
        # Berlin's own officer finds both: the data is there to be found.
        assert [h.citizen.id for h in consulate.search_district(db=s, actor=w.officer_a, q="Alice")]
        assert consulate.queue(db=s, actor=w.officer_a)[0] == 1
    _sign_in(client, "dual@mfa.example")
    page = client.get("/consular/search", params={"q": "Alice"})
    assert page.status_code == 200 and "Alice Applicant" not in page.text
    api = client.get("/api/consulate/queue")
    assert api.status_code == 200 and reference not in api.text
    assert client.get("/consular").status_code == 200
    assert reference not in client.get("/consular", params={"status": "submitted"}).text


# ---------------------------------------------------------------------------- finding 6


def test_finding_06_crisis_preview_of_another_mission_is_refused(
    client: TestClient, db: Database, w: World
) -> None:
    populate(db, w.a, 7, city="Berlin", country="DE", center=(52.52, 13.40), prefix="berl")
    form = {
        "mission_id": str(w.a),
        "title": "Storm",
        "cities": "Berlin",
        "audience": "everyone",
        "text_en": "Storm warning",
        "action": "preview",
    }
    with db.session() as s, pytest.raises(consulate.Invalid):
        crisis.preview(
            db=s, actor=w.officer_b, mission_id=w.a, area={"cities": ["Berlin"]}, audience="present"
        )
    _sign_in(client, "officer.b@mfa.example")
    page = client.get("/crisis")
    r = client.post("/crisis", data=form | {"csrf_token": CSRF.search(page.text)[1]})  # type: ignore[index]
    assert r.status_code == 422
    assert "people will be reached" not in r.text and 'id="preview"' not in r.text
    client.post("/logout", data={"csrf_token": csrf(client, "/")})
    _sign_in(client, "officer.a@mfa.example")
    page = client.get("/crisis")
    r = client.post("/crisis", data=form | {"csrf_token": CSRF.search(page.text)[1]})  # type: ignore[index]
    assert r.status_code == 200 and "7 people will be reached" in r.text


# ---------------------------------------------------------------------------- finding 11


def test_finding_11_author_of_another_mission_cannot_be_relabelled(
    client: TestClient, db: Database, w: World
) -> None:
    _staff(db, "analyst.paris@mfa.example", (w.b, "analyst"))
    with db.session() as s:
        source = add_source(s, "Berlin feed", w.a)
        author = Author(platform="rss", handle="berlin-voice", name="Berlin Voice", extra={})
        s.add(author)
        s.flush()
        add_post(s, "Astana", datetime(2026, 3, 1, tzinfo=UTC), source_id=source.id, author=author)
        aid = author.id
    _sign_in(client, "analyst.paris@mfa.example")
    token = csrf(client, "/")
    assert client.get(f"/authors/{aid}").status_code == 404
    r = client.post(
        f"/authors/{aid}/actor-type", data={"csrf_token": token, "actor_type": "state_media"}
    )
    assert r.status_code == 404
    with db.session() as s:
        assert s.get(Author, aid).actor_type is None  # type: ignore[union-attr]
    client.post("/logout", data={"csrf_token": token})
    _sign_in(client, "analyst.a@mfa.example")
    r = client.post(
        f"/authors/{aid}/actor-type",
        data={"csrf_token": csrf(client, f"/authors/{aid}"), "actor_type": "state_media"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.session() as s:
        assert s.get(Author, aid).actor_type == "state_media"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- finding 12


def test_finding_12_admin_page_shows_no_staff_to_an_analyst(
    client: TestClient, db: Database, w: World
) -> None:
    _staff(db, "analyst.paris@mfa.example", (w.b, "analyst"))
    _staff(db, "admin.paris@mfa.example", (w.b, "admin"))
    _sign_in(client, "analyst.paris@mfa.example")
    page = client.get("/admin")
    assert "officer.a@mfa.example" not in page.text and "admin@mfa.example" not in page.text
    client.post("/logout", data={"csrf_token": csrf(client, "/")})
    # A mission's admin sees the people of their mission only, and only their roles there.
    _sign_in(client, "admin.paris@mfa.example")
    page = client.get("/admin")
    assert "officer.b@mfa.example" in page.text
    assert "officer.a@mfa.example" not in page.text and "analyst.a@mfa.example" not in page.text


# ---------------------------------------------------------------------------- finding 13


def _alert(db: Database, mission_id: int) -> int:
    with db.session() as s:
        watch = Watch(mission_id=mission_id, name="Berlin watch", terms=[], context_terms=[])
        s.add(watch)
        s.flush()
        rule = AlertRule(watch_id=watch.id, kind="term", name="term", params={}, targets={})
        s.add(rule)
        s.flush()
        alert = Alert(
            rule_id=rule.id,
            watch_id=watch.id,
            mission_id=mission_id,
            kind="term",
            key="k",
            summary="Berlin alert",
            why={},
            post_ids=[],
        )
        s.add(alert)
        s.flush()
        return alert.id


def test_finding_13_api_tokens_are_read_only_by_default_and_never_drive_pages(
    client: TestClient, db: Database, w: World
) -> None:
    with db.session() as s:
        plain = account_flows.issue_token(db=s, actor=w.hq_admin, email="admin@mfa.example")
        write = account_flows.issue_token(
            db=s, actor=w.hq_admin, email="admin@mfa.example", scope="write"
        )
        with pytest.raises(accounts.InvalidUser):
            account_flows.issue_token(
                db=s, actor=w.hq_admin, email="admin@mfa.example", scope="admin"
            )
    auth = {"Authorization": f"Bearer {plain}"}
    assert client.get("/api/me", headers=auth).status_code == 200
    # A page, or a form behind it, refuses a token whatever its scope.
    for token in (plain, write):
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/admin", headers=headers).status_code == 401
        r = client.post(
            "/admin/missions",
            headers=headers,
            data={"csrf_token": csrf(client, "/login"), "slug": "rogue", "name": "Rogue"},
        )
        assert r.status_code == 401
    # A read token cannot write through the API; a write token can.
    alert_id = _alert(db, w.a)
    refused = client.post(f"/api/alerts/{alert_id}/ack", headers=auth)
    assert refused.status_code == 403 and "read-only" in refused.text
    with db.session() as s:
        assert s.get(Alert, alert_id).status == "open"  # type: ignore[union-attr]
    done = client.post(f"/api/alerts/{alert_id}/ack", headers={"Authorization": f"Bearer {write}"})
    assert done.status_code == 200 and done.json()["status"] == "acknowledged"
    with db.session() as s:
        assert s.scalar(select(func.count()).where(Mission.slug == "rogue")) == 0
        scopes = sorted(s.scalars(select(ApiToken.scope)))
    assert scopes == ["read", "write"]


def test_finding_13_own_tokens_are_listed_made_and_revoked_on_my_account(
    client: TestClient, db: Database, w: World
) -> None:
    _sign_in(client, "analyst.a@mfa.example")
    token = csrf(client, "/account")
    bad = client.post("/account/tokens", data={"csrf_token": token, "scope": "root", "days": "5"})
    assert bad.status_code == 400
    made = client.post(
        "/account/tokens",
        data={"csrf_token": token, "name": "weekly report", "scope": "read", "days": "30"},
    )
    assert made.status_code == 200
    shown = re.search(r'id="new-token">([^<]+)<', made.text)
    assert shown and "weekly report" in made.text
    # Shown once, in the page's body: the title is the page's name only.
    assert made.text.count('id="new-token"') == 1
    title = re.search(r"<title>(.*?)</title>", made.text, re.S)
    assert title and "<" not in title[1]
    assert client.get("/api/me", headers={"Authorization": f"Bearer {shown[1]}"}).json()[
        "email"
    ] == ("analyst.a@mfa.example")
    with db.session() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.name == "weekly report"))
        assert row is not None and row.scope == "read"
        assert row.expires_at is not None
        assert timedelta(days=29) < row.expires_at - utcnow() <= timedelta(days=30)
        other = account_flows.issue_token(db=s, actor=w.hq_admin, email="admin@mfa.example")
        other_id = s.scalar(select(ApiToken.id).where(ApiToken.user_id == w.hq_admin.user_id))
        assert other
    # Someone else's token is not theirs to revoke.
    assert (
        client.post(f"/account/tokens/{other_id}/revoke", data={"csrf_token": token}).status_code
        == 404
    )
    r = client.post(
        f"/account/tokens/{row.id}/revoke", data={"csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303
    assert client.get("/api/me", headers={"Authorization": f"Bearer {shown[1]}"}).status_code == 401
    with db.session() as s:
        assert s.get(ApiToken, other_id).revoked_at is None  # type: ignore[union-attr]
