"""E-consulate pages over HTTP: CSRF, ids changed in URLs, bad uploads and bookings, officers."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from elshi.app import create_app
from elshi.consulate import service
from elshi.consulate.models import Appointment, Document, Registration, ServiceRequest, Slot
from elshi.db import Database
from elshi.settings import Settings
from elshi.web import i18n
from tests.consulate.support import (
    PASSWORD,
    PNG_2x2,
    Sink,
    World,
    link_in,
    pdf,
    slot,
    world,
)

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def w(db: Database) -> World:
    return world(db)


def _client(settings: Settings, db: Database) -> TestClient:
    client = TestClient(create_app(settings, db=db))
    client.headers["accept-language"] = "en"
    return client


def _csrf(client: TestClient, path: str) -> str:
    page = client.get(path)
    match = CSRF.search(page.text)
    assert match, page.text[:400]
    return match[1]


def _citizen_login(client: TestClient, email: str) -> None:
    token = _csrf(client, "/consulate/login")
    r = client.post(
        "/consulate/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/consulate/home", r.text[:300]


def _staff_login(client: TestClient, email: str) -> None:
    token = _csrf(client, "/login")
    r = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token, "next": "/consular"},
        follow_redirects=False,
    )
    assert r.status_code == 303


def _draft(client: TestClient, service_type_id: int) -> int:
    token = _csrf(client, "/consulate/services")
    r = client.post(
        f"/consulate/services/{service_type_id}/apply",
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    return int(r.headers["location"].rsplit("/", 1)[1])


ANSWERS = {
    "full_name": "Alice Applicant",
    "birth_date": "1990-02-03",
    "passport_number": "N1234567",
    "purpose": "tourism",
    "entry_date": "2027-01-10",
}


def _upload(client: TestClient, req_id: int, kind: str, name: str, data: bytes) -> Any:
    token = _csrf(client, f"/consulate/requests/{req_id}")
    return client.post(
        f"/consulate/requests/{req_id}/documents",
        data={"csrf_token": token, "kind": kind},
        files={"file": (name, data, "application/pdf")},
        follow_redirects=False,
    )


def _submitted(client: TestClient, req_id: int) -> None:
    assert _upload(client, req_id, "passport", "p.pdf", pdf()).status_code == 303
    assert _upload(client, req_id, "photo", "p.png", PNG_2x2).status_code == 303
    token = _csrf(client, f"/consulate/requests/{req_id}")
    r = client.post(
        f"/consulate/requests/{req_id}/answers",
        data={**ANSWERS, "csrf_token": token, "action": "submit"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]


def test_sign_up_verify_and_sign_in_over_http(settings: Settings, db: Database, smtp: Sink) -> None:
    with _client(settings, db) as c:
        token = _csrf(c, "/consulate/signup")
        form = {"email": "eve@example.org", "name": "Eve", "password": "short", "csrf_token": token}
        weak = c.post("/consulate/signup", data=form)
        assert weak.status_code == 400
        assert "at least 12 characters" in weak.text and 'aria-invalid="true"' in weak.text
        no_csrf = c.post("/consulate/signup", data={**form, "csrf_token": "forged"})
        assert no_csrf.status_code == 400 and "expired" in no_csrf.text
        ok = c.post(
            "/consulate/signup", data={**form, "password": PASSWORD}, follow_redirects=False
        )
        assert ok.status_code == 303
        assert len(smtp.texts("eve@example.org")) == 1
        token = _csrf(c, "/consulate/login")
        early = c.post(
            "/consulate/login",
            data={"email": "eve@example.org", "password": PASSWORD, "csrf_token": token},
        )
        assert early.status_code == 403 and "Confirm your e-mail first" in early.text
        first, mail = smtp.texts("eve@example.org")  # signing in unverified sends a new link
        assert link_in(first, "/consulate/verify") != link_in(mail, "/consulate/verify")
        link = link_in(mail, "/consulate/verify")
        assert c.get(link.split("8000", 1)[1], follow_redirects=False).status_code == 303
        assert c.get(link.split("8000", 1)[1]).status_code == 400  # used once
        _citizen_login(c, "eve@example.org")
        home = c.get("/consulate/home")
        assert "Hello, Eve" in home.text
        cookie = next(x for x in c.cookies.jar if x.name == "elshi_citizen")
        assert cookie.has_nonstandard_attr("HttpOnly")
        # A citizen session opens no staff page.
        assert c.get("/consular", follow_redirects=False).headers["location"].startswith("/login")


def test_changing_ids_in_urls_reveals_nothing(settings: Settings, db: Database, w: World) -> None:
    with _client(settings, db) as alice, _client(settings, db) as bob:
        _citizen_login(alice, "alice@example.org")
        _citizen_login(bob, "bob@example.org")
        req_id = _draft(alice, w.visa_a)
        _submitted(alice, req_id)
        with db.session() as s:
            doc_id = s.scalars(select(Document.id)).first()
        page = alice.get(f"/consulate/requests/{req_id}")
        assert page.status_code == 200 and "Alice Applicant" in page.text
        token = _csrf(bob, "/consulate/home")
        for method, path, data in [
            ("get", f"/consulate/requests/{req_id}", None),
            ("get", f"/consulate/documents/{doc_id}", None),
            ("post", f"/consulate/requests/{req_id}/messages", {"body": "hi"}),
            ("post", f"/consulate/requests/{req_id}/answers", {"full_name": "x"}),
            ("post", f"/consulate/documents/{doc_id}/delete", {}),
            ("post", f"/consulate/requests/{req_id}/book", {"slot_id": "1"}),
        ]:
            r = (
                getattr(bob, method)(path, data={**(data or {}), "csrf_token": token})
                if method == "post"
                else bob.get(path)
            )
            assert r.status_code == 404, (path, r.status_code)
            assert "Alice" not in r.text and "N1234567" not in r.text
        with db.session() as s:
            assert s.get(ServiceRequest, req_id).answers["full_name"] == "Alice Applicant"  # type: ignore[union-attr]
        download = alice.get(f"/consulate/documents/{doc_id}")
        assert download.status_code == 200 and download.content.startswith(b"%PDF-")
        assert download.headers["content-disposition"].startswith("attachment;")
        assert download.headers["content-type"] == "application/pdf"
        assert "sandbox" in download.headers["content-security-policy"]
        assert download.headers["x-content-type-options"] == "nosniff"


def test_officer_of_another_mission_sees_nothing(
    settings: Settings, db: Database, w: World
) -> None:
    with _client(settings, db) as alice:
        _citizen_login(alice, "alice@example.org")
        req_id = _draft(alice, w.visa_a)
        _submitted(alice, req_id)
    with db.session() as s:
        doc_id = s.scalars(select(Document.id)).first()
    with _client(settings, db) as b:
        _staff_login(b, "officer.b@mfa.example")
        queue = b.get("/consular")
        assert queue.status_code == 200 and "0 requests" in queue.text
        assert b.get(f"/consular/requests/{req_id}").status_code == 404
        assert b.get(f"/consular/documents/{doc_id}").status_code == 404
        token = _csrf(b, "/consular")
        for action in ("claim", "approve", "reject", "ask", "message"):
            r = b.post(
                f"/consular/requests/{req_id}/{action}", data={"csrf_token": token, "note": "x"}
            )
            assert r.status_code == 404, action
        assert "Alice" not in b.get("/consular/search?q=alice").text
    with _client(settings, db) as analyst:
        _staff_login(analyst, "analyst.a@mfa.example")
        assert analyst.get("/consular").status_code == 403
        assert analyst.get(f"/consular/requests/{req_id}").status_code == 404
    with db.session() as s:
        assert s.get(ServiceRequest, req_id).status == "submitted"  # type: ignore[union-attr]
        assert service.access_log(db=s, citizen_id=w.alice) == []


def test_bad_uploads_over_http(settings: Settings, db: Database, w: World) -> None:
    with _client(settings, db) as c:
        _citizen_login(c, "alice@example.org")
        req_id = _draft(c, w.visa_a)
        big = _upload(c, req_id, "passport", "big.pdf", b"%PDF-1.4\n" + b"0" * (50 * 1024 * 1024))
        assert big.status_code == 413 and "larger than 10 MB" in big.text
        exe = _upload(c, req_id, "passport", "invoice.pdf", b"MZ\x90\x00" + b"\x00" * 2000)
        assert exe.status_code == 400
        assert "Only PDF, JPEG and PNG files are accepted" in exe.text
        html = _upload(c, req_id, "photo", "x.html", b"<html><script>alert(1)</script></html>")
        assert html.status_code == 400 and "none of them" in html.text
        token = _csrf(c, f"/consulate/requests/{req_id}")
        nofile = c.post(
            f"/consulate/requests/{req_id}/documents", data={"csrf_token": token, "kind": "photo"}
        )
        assert nofile.status_code == 400 and "Choose a file to upload" in nofile.text
        forged = c.post(
            f"/consulate/requests/{req_id}/documents",
            data={"csrf_token": "forged", "kind": "photo"},
            files={"file": ("p.png", PNG_2x2, "image/png")},
        )
        assert forged.status_code == 400
        submit = c.post(
            f"/consulate/requests/{req_id}/answers",
            data={
                "csrf_token": token,
                "action": "submit",
                "full_name": "<b>x</b>",
                "purpose": "spying",
            },
        )
        assert submit.status_code == 400
        assert (
            "Choose one of the options." in submit.text and "This field is required." in submit.text
        )
        assert "<b>x</b>" not in submit.text and "&lt;b&gt;x&lt;/b&gt;" in submit.text
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Document)) == 0
        assert s.get(ServiceRequest, req_id).status == "draft"  # type: ignore[union-attr]
    files = (
        [p for p in settings.uploads_path.rglob("*") if p.is_file()]
        if settings.uploads_path.exists()
        else []
    )
    assert files == []


def test_booking_full_and_past_slots_over_http(settings: Settings, db: Database, w: World) -> None:
    with db.session() as s:
        one = slot(s, w.a, 1)
        past = slot(s, w.a, 3, hours=-2)
    with _client(settings, db) as alice, _client(settings, db) as bob:
        _citizen_login(alice, "alice@example.org")
        _citizen_login(bob, "bob@example.org")
        a_req, b_req = _draft(alice, w.visa_a), _draft(bob, w.visa_a)
        _submitted(alice, a_req)
        _submitted(bob, b_req)
        token = _csrf(alice, f"/consulate/requests/{a_req}")
        ok = alice.post(
            f"/consulate/requests/{a_req}/book",
            data={"csrf_token": token, "slot_id": str(one)},
            follow_redirects=False,
        )
        assert ok.status_code == 303 and ok.headers["location"].endswith("notice=booked")
        token = _csrf(bob, f"/consulate/requests/{b_req}")
        full = bob.post(
            f"/consulate/requests/{b_req}/book", data={"csrf_token": token, "slot_id": str(one)}
        )
        assert full.status_code == 409 and "fully booked" in full.text
        late = bob.post(
            f"/consulate/requests/{b_req}/book", data={"csrf_token": token, "slot_id": str(past)}
        )
        assert late.status_code == 400 and "This time has passed" in late.text
        junk = bob.post(
            f"/consulate/requests/{b_req}/book", data={"csrf_token": token, "slot_id": "x'; drop"}
        )
        assert junk.status_code == 400
    with db.session() as s:
        assert [s.get(Slot, i).booked for i in (one, past)] == [1, 0]  # type: ignore[union-attr]
        assert s.scalar(select(func.count()).select_from(Appointment)) == 1


def test_stay_form_refuses_bad_dates_and_keeps_what_was_typed(
    settings: Settings, db: Database, w: World
) -> None:
    today = date.today()
    with _client(settings, db) as c:
        _citizen_login(c, "alice@example.org")
        token = _csrf(c, "/consulate/stays/new")
        form = {
            "csrf_token": token,
            "mission_id": str(w.a),
            "country_code": "DE",
            "city": "Berlin",
            "arrive_on": str(today + timedelta(days=5)),
            "leave_on": str(today + timedelta(days=1)),
            "companion_0_name": "Sam",
        }
        bad = c.post("/consulate/stays/new", data=form)
        assert bad.status_code == 400 and "before the arrival date" in bad.text
        assert 'value="Sam"' in bad.text
        form["leave_on"] = str(today + timedelta(days=9))
        assert c.post("/consulate/stays/new", data=form, follow_redirects=False).status_code == 303
        home = c.get("/consulate/home")
        assert "please confirm" not in home.text  # just registered: nothing to confirm yet
        with db.session() as s:
            reg = s.scalars(select(Registration)).one()
            assert reg.companions == [{"name": "Sam", "relation": ""}]
        token = _csrf(c, "/consulate/home")
        c.post(f"/consulate/stays/{reg.id}/confirm", data={"csrf_token": token})
        with db.session() as s:
            assert s.get(Registration, reg.id).confirmed_at is not None  # type: ignore[union-attr]


def test_officer_pages_and_the_citizen_sees_who_looked(
    settings: Settings, db: Database, w: World, smtp: Sink
) -> None:
    with _client(settings, db) as alice:
        _citizen_login(alice, "alice@example.org")
        req_id = _draft(alice, w.visa_a)
        _submitted(alice, req_id)
        with _client(settings, db) as officer:
            _staff_login(officer, "officer.a@mfa.example")
            queue = officer.get("/consular")
            assert "1 request<" in queue.text and f"/consular/requests/{req_id}" in queue.text
            assert "Alice" not in queue.text  # the queue shows no personal data
            page = officer.get(f"/consular/requests/{req_id}")
            assert "Alice Applicant" in page.text
            token = _csrf(officer, f"/consular/requests/{req_id}")
            officer.post(f"/consular/requests/{req_id}/claim", data={"csrf_token": token})
            empty = officer.post(
                f"/consular/requests/{req_id}/reject", data={"csrf_token": token, "note": ""}
            )
            assert empty.status_code == 400 and "Give a reason" in empty.text
            officer.post(
                f"/consular/requests/{req_id}/ask",
                data={"csrf_token": token, "note": "Hotel booking"},
            )
            day = (date.today() + timedelta(days=1)).isoformat()
            added = officer.post(
                "/consular/slots",
                data={
                    "csrf_token": token,
                    "mission_id": str(w.a),
                    "day": day,
                    "start": "09:00",
                    "count": "4",
                    "minutes": "15",
                    "capacity": "2",
                },
                follow_redirects=False,
            )
            assert added.status_code == 303
            bad = officer.post(
                "/consular/slots",
                data={
                    "csrf_token": token,
                    "mission_id": str(w.a),
                    "day": "tomorrow",
                    "start": "25:00",
                    "count": "0",
                    "minutes": "15",
                    "capacity": "9999",
                },
            )
            assert (
                bad.status_code == 400 and "Not a date" in bad.text and "Places must be" in bad.text
            )
            assert "4" in officer.get(f"/consular/slots?week={day}").text
        status = alice.get(f"/consulate/requests/{req_id}")
        assert "more documents needed" in status.text and "Hotel booking" in status.text
        access = alice.get("/consulate/access")
        assert "officer.a" in access.text and "opened your request" in access.text
        export = alice.get("/consulate/export")
        assert export.headers["content-disposition"].startswith("attachment")
        assert export.json()["requests"][0]["status"] == "more_documents"
    mails = smtp.texts("alice@example.org")
    assert any("more documents needed" in m and "Hotel booking" in m for m in mails)


def test_pwa_manifest_and_service_worker(settings: Settings, db: Database) -> None:
    with _client(settings, db) as c:
        manifest = c.get("/consulate/manifest.webmanifest?lang=kk")
        assert manifest.headers["content-type"] == "application/manifest+json"
        data = manifest.json()
        assert data["scope"] == "/consulate/" and data["display"] == "standalone"
        assert data["name"] == i18n.gettext("kk", "e-Consulate") != "e-Consulate"
        for icon in data["icons"]:
            assert c.get(icon["src"]).headers["content-type"] == "image/png"
        sw = c.get("/consulate/sw.js")
        assert sw.headers["content-type"].startswith("text/javascript")
        assert "caches" in sw.text and "http" not in sw.text.replace("self.location", "")
        page = c.get("/consulate/?lang=ru")
        assert 'rel="manifest"' in page.text and "Электронное консульство" in page.text
        assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self'
        for lang in ("kk", "ru", "en"):
            assert c.get(f"/consulate/signup?lang={lang}").status_code == 200
