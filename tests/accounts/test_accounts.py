"""Accounts: passwords, lockout, per-address limits, TOTP, API tokens, roles, audit and the CLI."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from elshi.accounts import flows, service
from elshi.accounts.models import ApiToken, AuditEvent, LoginAttempt, User, WebSession
from elshi.accounts.service import LoginPolicy, Principal
from elshi.app import create_app
from elshi.db import Database, SealedUnreadable, utcnow
from elshi.demo import load_demo
from elshi.missions import service as missions
from elshi.settings import Settings

PASSWORD = "correct horse battery"
SYSTEM = Principal.system("test")
POLICY = LoginPolicy(max_failures=3, ip_max_failures=6)
LIFETIME = timedelta(hours=1)


def _add(db: Database, email: str, role: str = "analyst", mission: str = "hq") -> int:
    with db.session() as s:
        user = flows.add_user(
            db=s,
            actor=SYSTEM,
            email=email,
            password=PASSWORD,
            name=email.split("@")[0],
            role=role,
            mission_slug=mission,
        )
        return user.id


def _sign_in(db: Database, email: str, password: str, ip: str = "10.0.0.1") -> flows.SignIn:
    with db.session() as s:
        return flows.sign_in(
            db=s,
            email=email,
            password=password,
            ip=ip,
            user_agent="pytest",
            policy=POLICY,
            lifetime=LIFETIME,
        )


def _audit(db: Database, action: str) -> list[AuditEvent]:
    with db.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=db)) as c:
        yield c


# ---------------------------------------------------------------------------- passwords


def test_passwords_are_argon2id_hashes(db: Database) -> None:
    digest = service.hash_password(PASSWORD)
    assert digest.startswith("$argon2id$")
    assert PASSWORD not in digest
    assert digest != service.hash_password(PASSWORD)  # salted
    assert service.verify_password(digest, PASSWORD)
    assert not service.verify_password(digest, PASSWORD + "!")
    assert not service.verify_password("not a hash", PASSWORD)
    with db.session() as s:
        with pytest.raises(service.InvalidUser, match="at least 12"):
            service.create_user(db=s, email="a@example.org", password="short")
        with pytest.raises(service.InvalidUser, match="not an e-mail"):
            service.create_user(db=s, email="nobody", password=PASSWORD)


def test_production_hashes_at_full_cost_and_test_hashes_still_verify() -> None:
    import subprocess
    import sys

    from argon2.profiles import RFC_9106_LOW_MEMORY

    production = service.PRODUCTION_HASHER
    assert (
        (production.time_cost, production.memory_cost, production.parallelism)
        == (
            RFC_9106_LOW_MEMORY.time_cost,
            RFC_9106_LOW_MEMORY.memory_cost,
            RFC_9106_LOW_MEMORY.parallelism,
        )
        == (3, 65536, 4)
    )
    # The suite hashes cheaply (tests/conftest.py); such hashes verify like any other.
    cheap = service.hash_password(PASSWORD)
    assert "$m=8,t=1,p=1$" in cheap
    assert service.verify_password(cheap, PASSWORD)
    assert not service.verify_password(cheap, PASSWORD + "!")
    full = production.hash(PASSWORD)
    assert "$m=65536,t=3,p=4$" in full
    assert service.verify_password(full, PASSWORD)
    # elshi itself, with its app and command line loaded, hashes at the full cost.
    code = (
        "import elshi.app, elshi.cli.root\n"
        "from elshi.accounts import service\n"
        "assert service._hasher is service.PRODUCTION_HASHER\n"
        "print(service.hash_password('x' * 12))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "$m=65536,t=3,p=4$" in run.stdout


# ---------------------------------------------------------------------------- sign-in limits


def test_account_locks_after_failures_and_state_is_shared(db: Database, settings: Settings) -> None:
    _add(db, "ana@example.org")
    for _ in range(POLICY.max_failures):
        assert _sign_in(db, "ana@example.org", "wrong password!").status == "failed"
    # Even the right password is refused while locked, as seen from another engine (process).
    other = Database(settings)
    try:
        with other.session() as s:
            user = service.get_user(db=s, email="ana@example.org")
            assert user is not None
            assert service.is_locked(db=s, ip="10.0.0.1", policy=POLICY, user_id=user.id)
        assert _sign_in(db, "ana@example.org", PASSWORD).status == "failed"
    finally:
        other.dispose()
    reasons = [e.detail["reason"] for e in _audit(db, "auth.sign_in_failed")]
    assert reasons == ["wrong"] * POLICY.max_failures + ["locked"]
    with db.session() as s:  # the lockout time passes
        for attempt in s.scalars(select(LoginAttempt)):
            attempt.at -= POLICY.lockout
    result = _sign_in(db, "ana@example.org", PASSWORD)
    assert result.status == "ok" and result.session_key
    with db.session() as s:
        user = service.get_user(db=s, email="ana@example.org")
        assert user is not None and user.last_login_at is not None
        assert not service.locked_addresses(db=s, policy=POLICY, user_id=user.id)


def test_address_is_rate_limited(db: Database) -> None:
    _add(db, "ben@example.org")
    for i in range(POLICY.ip_max_failures):
        assert _sign_in(db, f"nobody{i}@example.org", "whatever", ip="10.9.9.9").status == "failed"
    assert _sign_in(db, "ben@example.org", PASSWORD, ip="10.9.9.9").status == "blocked"
    assert _sign_in(db, "ben@example.org", PASSWORD, ip="10.1.1.1").status == "ok"
    with db.session() as s:
        failures = s.scalars(select(LoginAttempt).where(LoginAttempt.ip == "10.9.9.9")).all()
        assert len(failures) == POLICY.ip_max_failures
    blocked = [e for e in _audit(db, "auth.sign_in_failed") if e.detail["reason"] == "rate_limited"]
    assert len(blocked) == 1 and blocked[0].detail["ip"] == "10.9.9.9"


# ---------------------------------------------------------------------------- TOTP


def test_totp_enrolment_and_sign_in(db: Database) -> None:
    _add(db, "cem@example.org")
    with db.session() as s:
        uri = flows.enrol_totp(db=s, actor=SYSTEM, email="cem@example.org")
    assert uri.startswith("otpauth://totp/elshi:cem%40example.org?secret=")
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)

    first = _sign_in(db, "cem@example.org", PASSWORD)
    assert first.status == "code" and first.session_key
    with db.session() as s:
        pending = service.find_session(db=s, key=first.session_key)
        assert pending is not None and pending.mfa_pending

    def code_step(key: str, code: str) -> flows.SignIn:
        with db.session() as s:
            return flows.sign_in_code(
                db=s,
                pending_key=key,
                code=code,
                ip="10.0.0.1",
                user_agent=None,
                policy=POLICY,
                lifetime=LIFETIME,
            )

    wrong = str((int(totp.now()) + 1) % 1_000_000).zfill(6)
    assert code_step(first.session_key, wrong).status == "failed"
    good = totp.now()
    done = code_step(first.session_key, good)
    assert done.status == "ok" and done.session_key and done.session_key != first.session_key
    with db.session() as s:
        assert service.find_session(db=s, key=first.session_key) is None
        full = service.find_session(db=s, key=done.session_key)
        assert full is not None and not full.mfa_pending
    # A code works once: a second sign-in cannot replay it.
    again = _sign_in(db, "cem@example.org", PASSWORD)
    assert again.session_key and code_step(again.session_key, good).status == "failed"
    assert [e.detail["mfa"] for e in _audit(db, "auth.sign_in")] == [True]
    assert len(_audit(db, "totp.enrol")) == 1


def test_rfc6238_reference_value() -> None:
    # RFC 6238 appendix B: SHA-1 secret "12345678901234567890", T=59s gives 94287082.
    user = User(
        email="x@example.org", password_hash="", totp_secret="GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    )
    assert service.verify_totp(user=user, code="287 082", now=datetime.fromtimestamp(59, UTC))
    assert user.totp_last_step == 1
    assert not service.verify_totp(user=user, code="287082", now=datetime.fromtimestamp(59, UTC))


# ---------------------------------------------------------------------------- roles


def test_roles_and_mission_scope(db: Database) -> None:
    with db.session() as s:
        berlin = flows.add_mission(
            db=s, actor=SYSTEM, slug="berlin", name="Embassy in Berlin", country_code="de"
        )
        berlin_id = berlin.id
        hq_id = missions.ensure_hq(db=s).id
    admin_id = _add(db, "hq-admin@example.org", role="admin", mission="hq")
    analyst_id = _add(db, "analyst@example.org", role="analyst", mission="berlin")
    citizen_id = _add(db, "citizen@example.org", role="citizen", mission="berlin")
    with db.session() as s:
        admin = service.load_principal(db=s, user_id=admin_id)
        analyst = service.load_principal(db=s, user_id=analyst_id)
        citizen = service.load_principal(db=s, user_id=citizen_id)
    assert admin and analyst and citizen
    assert admin.missions_where("listen.read") is None and admin.can("users.manage", berlin_id)
    assert analyst.missions_where("listen.read") == frozenset({berlin_id})
    assert analyst.can("listen.read", berlin_id) and not analyst.can("listen.read", hq_id)
    assert not citizen.is_staff and citizen.missions_where("listen.read") == frozenset()
    with db.session() as s, pytest.raises(service.PermissionDenied, match=r"users\.manage"):
        flows.grant(
            db=s, actor=analyst, email="citizen@example.org", role="admin", mission_slug="berlin"
        )
    with db.session() as s:
        flows.grant(
            db=s, actor=admin, email="analyst@example.org", role="press", mission_slug="berlin"
        )
    grants = _audit(db, "role.grant")
    assert len(grants) == 1 and grants[0].actor_id == admin_id
    assert grants[0].detail == {"role": "press", "mission": "berlin"}


# ---------------------------------------------------------------------------- API tokens


def test_token_auth_on_api_posts(client: TestClient, db: Database, settings: Settings) -> None:
    load_demo(db, settings=settings, posts=60)
    _add(db, "script@example.org", role="analyst")
    _add(db, "visitor@example.org", role="citizen")
    with db.session() as s:
        plain = flows.issue_token(db=s, actor=SYSTEM, email="script@example.org", name="cron")
        citizen_token = flows.issue_token(db=s, actor=SYSTEM, email="visitor@example.org")
    with db.session() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.name == "cron")).one()
        assert row.token_hash == hashlib.sha256(plain.encode()).hexdigest()
        assert plain not in (row.token_hash, row.prefix) and plain.startswith(row.prefix)

    anonymous = client.get("/api/posts")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert "Bearer" in anonymous.json()["detail"]

    ok = client.get(
        "/api/posts",
        params={"lang": "kk", "limit": 5},
        headers={"Authorization": f"Bearer {plain}"},
    )
    assert ok.status_code == 200
    body = ok.json()
    assert body["total"] > 0 and 0 < len(body["items"]) <= 5
    assert {p["lang"] for p in body["items"]} == {"kk"}
    me = client.get("/api/me", headers={"Authorization": f"Bearer {plain}"}).json()
    assert me["email"] == "script@example.org" and me["via"] == "token"

    bad = client.get("/api/posts", headers={"Authorization": "Bearer elshi_forged"})
    assert bad.status_code == 401 and "invalid_token" in bad.headers["www-authenticate"]
    assert (
        client.get("/api/posts", headers={"Authorization": f"Bearer {citizen_token}"}).status_code
        == 403
    )
    with db.session() as s:
        service.revoke_api_token(db=s, token_id=row.id)
    assert client.get("/api/posts", headers={"Authorization": f"Bearer {plain}"}).status_code == 401
    with db.session() as s:
        _, value = service.create_api_token(
            db=s, user_id=row.user_id, days=1, now=utcnow() - timedelta(days=2)
        )
    assert client.get("/api/posts", headers={"Authorization": f"Bearer {value}"}).status_code == 401
    assert [e.detail["name"] for e in _audit(db, "token.create")] == ["cron", ""]


def test_anonymous_requests(client: TestClient) -> None:
    for path in ("/api/posts", "/api/sources", "/api/quarantine", "/api/me"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert r.headers["content-type"].startswith("application/json")
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/static/elshi.css").status_code == 200
    page = client.get("/posts?q=x", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fposts%3Fq%3Dx"


def test_session_expires(client: TestClient, db: Database) -> None:
    _add(db, "dana@example.org")
    result = _sign_in(db, "dana@example.org", PASSWORD)
    assert result.session_key
    from elshi.web.deps import SESSION_COOKIE, session_serializer

    cookie = session_serializer(client.app.state.settings).dumps(result.session_key)  # type: ignore[attr-defined]
    client.cookies.set(SESSION_COOKIE, cookie)
    assert client.get("/", follow_redirects=False).status_code == 200
    with db.session() as s:
        row = s.scalars(select(WebSession)).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
    assert client.get("/", follow_redirects=False).status_code == 303
    assert client.get("/api/me").status_code == 401
    client.cookies.set(SESSION_COOKIE, cookie[:-2] + "xx")
    assert client.get("/api/me").status_code == 401


# ---------------------------------------------------------------------------- logs


def test_emails_are_masked_in_logs() -> None:
    assert service.mask_email("aigerim.n@mfa.example.kz") == "a***@m***.kz"
    masked = service.mask_emails("to a@b.org and c.d@e.co.uk.")
    assert masked == "to a***@b***.org and c***@e***.uk."
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(service.MaskEmailsFilter())
    logger = logging.getLogger("elshi.test.mask")
    logger.addHandler(handler)
    try:
        logger.warning("sign-in failed for %s from %s", "ivan.petrov@example.org", "10.0.0.7")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().strip() == "sign-in failed for i***@e***.org from 10.0.0.7"
    # uvicorn's access formatter unpacks a 5-tuple of args: the shape must survive masking.
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("10.0.0.7:5000", "GET", "/posts?q=ivan@example.org", "1.1", 200),
        None,
    )
    assert service.MaskEmailsFilter().filter(record)
    assert record.args == ("10.0.0.7:5000", "GET", "/posts?q=i***@e***.org", "1.1", 200)
    assert record.getMessage() == '10.0.0.7:5000 - "GET /posts?q=i***@e***.org HTTP/1.1" 200'


def test_failed_sign_in_audit_masks_unknown_email(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="elshi"):
        assert _sign_in(db, "stranger@example.org", "guess guess guess").status == "failed"
    assert "sign-in failed for s***@e***.org from 10.0.0.1: unknown" in caplog.messages
    assert "stranger" not in caplog.text
    (event,) = _audit(db, "auth.sign_in_failed")
    assert event.actor_label == "s***@e***.org"
    assert event.detail == {"reason": "unknown", "ip": "10.0.0.1"}
    assert "stranger" not in json.dumps(event.detail)


# ---------------------------------------------------------------------------- CLI


def test_cli_users_and_missions(cli: Any, db: Database) -> None:
    r = cli(
        "missions",
        "add",
        "astana-hq-2",
        "--name",
        "Second office",
        "--kind",
        "consulate",
        "--country",
        "kz",
    )
    assert r.exit_code == 0, r.output
    assert cli("missions", "add", "Bad Slug", "--name", "x").exit_code == 2
    listed = json.loads(cli("missions", "list", "--json").stdout)
    assert {m["slug"] for m in listed} == {"hq", "astana-hq-2"}

    r = cli(
        "users",
        "add",
        "erlan@example.org",
        "--name",
        "Erlan",
        "--role",
        "press",
        "--mission",
        "astana-hq-2",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert r.exit_code == 0, r.output
    r = cli(
        "users", "add", "fatima@example.org", "--role", "analyst", input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert r.exit_code == 0, r.output
    r = cli(
        "users",
        "add",
        "erlan@example.org",
        "--role",
        "press",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert r.exit_code == 2 and "exists" in r.stderr
    r = cli("users", "add", "g@example.org", "--role", "press", "--password-stdin", input="short\n")
    assert r.exit_code == 2 and "at least 12" in r.stderr
    r = cli(
        "users",
        "add",
        "h@example.org",
        "--role",
        "press",
        "--mission",
        "nowhere",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert r.exit_code == 4 and "nowhere" in r.stderr
    r = cli(
        "users", "add", "i@example.org", "--role", "king", "--password-stdin", input=PASSWORD + "\n"
    )
    assert r.exit_code == 2 and "king" in r.stderr

    assert (
        cli(
            "users", "grant", "erlan@example.org", "--role", "approver", "--mission", "astana-hq-2"
        ).exit_code
        == 0
    )
    assert cli("users", "grant", "nobody@example.org", "--role", "press").exit_code == 4
    assert cli("users", "grant", "erlan@example.org", "--role", "emperor").exit_code == 2

    users = {u["email"]: u for u in json.loads(cli("users", "list", "--json").stdout)}
    assert set(users) == {"erlan@example.org", "fatima@example.org"}
    assert users["erlan@example.org"]["roles"] == ["astana-hq-2:approver", "astana-hq-2:press"]
    assert users["fatima@example.org"]["roles"] == ["hq:analyst"]
    table = cli("users", "list")
    assert table.exit_code == 0 and "erlan@example.org" in table.stdout.replace("\n", "")

    r = cli("users", "token", "erlan@example.org", "--name", "nightly")
    assert r.exit_code == 0
    token = r.stdout.strip()
    assert token.startswith("elshi_") and "only this once" in r.stderr
    assert cli("users", "token", "ghost@example.org").exit_code == 4
    r = cli("users", "totp", "erlan@example.org")
    assert r.exit_code == 0 and r.stdout.startswith("otpauth://totp/")
    assert cli("users", "totp", "erlan@example.org", "--disable").exit_code == 0

    with db.session() as s:
        assert (
            s.scalars(select(ApiToken)).one().token_hash
            == hashlib.sha256(token.encode()).hexdigest()
        )
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        labels = {e.actor_label for e in s.scalars(select(AuditEvent))}
    assert actions == [
        "mission.create",
        "user.create",
        "user.create",
        "role.grant",
        "token.create",
        "totp.enrol",
        "totp.disable",
    ]
    assert labels == {"cli"}


@pytest.mark.parametrize(
    "command",
    [
        ["users", "add"],
        ["users", "list"],
        ["users", "grant"],
        ["users", "token"],
        ["users", "totp"],
        ["missions", "add"],
        ["missions", "list"],
    ],
)
def test_cli_help(cli: Any, command: list[str]) -> None:
    import typer

    from elshi.cli import app

    group: Any = typer.main.get_command(app)
    for name in command:
        group = group.commands[name]
    assert group.help and len(group.help) > 15
    r = cli(*command, "--help")
    assert r.exit_code == 0
    assert " ".join(group.help.split()[:3]) in " ".join(r.stdout.split())


def test_posts_are_scoped_to_the_users_missions(
    client: TestClient, db: Database, settings: Settings
) -> None:
    from elshi.listen import service as listen_service
    from elshi.missions import service as missions

    with db.session() as s:
        hq = missions.ensure_hq(db=s)
        berlin = missions.create_mission(db=s, slug="berlin", name="Berlin", parent_id=hq.id)
        beijing = missions.create_mission(db=s, slug="beijing", name="Beijing", parent_id=hq.id)
        src_berlin = listen_service.add_source(
            db=s, connector="demo", config={"count": 30, "seed": 1}, mission_id=berlin.id
        ).id
        src_beijing = listen_service.add_source(
            db=s, connector="demo", config={"count": 20, "seed": 2}, mission_id=beijing.id
        ).id
    from elshi.connectors.base import FetchContext
    from elshi.listen.flows import run_source

    ctx = FetchContext(settings=settings)
    run_source(db, source_id=src_berlin, ctx=ctx)
    run_source(db, source_id=src_beijing, ctx=ctx)
    _add(db, "berlin-analyst@example.org", role="analyst", mission="berlin")
    _add(db, "hq-analyst@example.org", role="analyst", mission="hq")
    with db.session() as s:
        local = flows.issue_token(db=s, actor=SYSTEM, email="berlin-analyst@example.org")
        central = flows.issue_token(db=s, actor=SYSTEM, email="hq-analyst@example.org")

    def seen(token: str) -> set[int | None]:
        body = client.get(
            "/api/posts", params={"limit": 500}, headers={"Authorization": f"Bearer {token}"}
        ).json()
        return {p["source_id"] for p in body["items"]}

    assert seen(local) == {src_berlin}
    assert seen(central) == {src_berlin, src_beijing}


def test_api_post_detail_explains_its_annotations(
    client: TestClient, db: Database, settings: Settings
) -> None:
    from elshi.nlp.pipeline import enrich_posts

    load_demo(db, settings=settings, posts=30)
    enrich_posts(db, slugs=["sentiment", "entities"])
    _add(db, "reader@example.org", role="analyst")
    with db.session() as s:
        token = flows.issue_token(db=s, actor=SYSTEM, email="reader@example.org")
    auth = {"Authorization": f"Bearer {token}"}
    page = client.get("/api/posts", params={"q": "Қазақстан", "limit": 1}, headers=auth).json()
    post = page["items"][0]
    detail = client.get(f"/api/posts/{post['id']}", headers=auth)
    assert detail.status_code == 200
    body = detail.json()
    assert body["text"] == post["text"]
    by = {a["enricher"]: a for a in body["annotations"]}
    assert set(by) == {"language", "sentiment", "entities"}
    assert by["language"]["label"] == "kk" and by["language"]["value"]["features"]
    assert by["sentiment"]["value"]["evidence"], "sentiment explains itself"
    assert "country:KZ" in by["entities"]["value"]["ids"]
    assert any("alias" in " ".join(m["why"]) for m in by["entities"]["value"]["mentions"])
    assert client.get("/api/posts/999999", headers=auth).status_code == 404
    assert client.get(f"/api/posts/{post['id']}").status_code == 401


# ---------------------------------------------------------------------------- own account page


def _page_csrf(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text[:300]
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text[:500]
    return match[1]


def _web_sign_in(client: TestClient, email: str, password: str) -> Any:
    token = _page_csrf(client, "/login")
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token, "next": "/account"},
        follow_redirects=False,
    )


def test_staff_turn_on_two_step_sign_in_on_their_account_page(
    client: TestClient, db: Database
) -> None:
    _add(db, "ana@example.org")
    assert _web_sign_in(client, "ana@example.org", PASSWORD).headers["location"] == "/account"
    page = client.get("/account", headers={"accept-language": "en"})
    assert "Off: only your password protects this account." in page.text
    assert "analyst" in page.text

    offer = client.get("/account/totp")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', offer.text)
    assert secret, offer.text[:500]
    token = _page_csrf(client, "/account/totp")
    wrong = client.post(
        "/account/totp",
        data={"secret": secret[1], "code": "000000", "csrf_token": token},
        follow_redirects=False,
    )
    assert wrong.status_code == 400
    with db.session() as s:
        assert (
            s.scalars(select(User).where(User.email == "ana@example.org")).one().totp_secret is None
        )

    forged = client.post(
        "/account/totp",
        data={"secret": secret[1], "code": pyotp.TOTP(secret[1]).now(), "csrf_token": "x"},
        follow_redirects=False,
    )
    assert forged.status_code == 400
    ok = client.post(
        "/account/totp",
        data={"secret": secret[1], "code": pyotp.TOTP(secret[1]).now(), "csrf_token": token},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/account?done=totp_on"
    with db.session() as s:
        assert (
            s.scalars(select(User).where(User.email == "ana@example.org")).one().totp_secret
            == (secret[1])
        )
    assert _audit(db, "totp.enrol")

    client.cookies.clear()
    again = _web_sign_in(client, "ana@example.org", PASSWORD)
    assert again.status_code == 303 and again.headers["location"].startswith("/login/code")


def test_staff_change_their_password_with_clear_errors(client: TestClient, db: Database) -> None:
    _add(db, "bo@example.org")
    _web_sign_in(client, "bo@example.org", PASSWORD)
    cases = [
        (
            {"current": "not it at all", "new": "a brand new passphrase"},
            "current password is wrong",
        ),
        ({"current": PASSWORD, "new": "short"}, "at least 12 characters"),
        ({"current": PASSWORD, "new": PASSWORD}, "must differ"),
    ]
    for form, message in cases:
        token = _page_csrf(client, "/account")
        bad = client.post(
            "/account/password",
            data={**form, "csrf_token": token},
            headers={"accept-language": "en"},
            follow_redirects=False,
        )
        assert bad.status_code == 400 and message in bad.text
    assert _sign_in(db, "bo@example.org", PASSWORD).status == "ok"

    token = _page_csrf(client, "/account")
    ok = client.post(
        "/account/password",
        data={"current": PASSWORD, "new": "a brand new passphrase", "csrf_token": token},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert _sign_in(db, "bo@example.org", PASSWORD).status == "failed"
    assert _sign_in(db, "bo@example.org", "a brand new passphrase").status == "ok"
    assert _audit(db, "password.change")


def test_cli_disable_reset_password_and_revoke_tokens(cli: Any, db: Database) -> None:
    _add(db, "dana@example.org")
    assert _sign_in(db, "dana@example.org", PASSWORD).status == "ok"
    with db.session() as s:
        plain = flows.issue_token(db=s, actor=SYSTEM, email="dana@example.org", name="script")
    with db.session() as s:
        assert service.find_api_token(db=s, token=plain) is not None
        sessions = s.scalars(select(WebSession)).all()
        assert len(sessions) == 1

    r = cli("users", "disable", "dana@example.org")
    assert r.exit_code == 0, r.output
    with db.session() as s:
        assert s.scalars(select(WebSession)).all() == []
        assert service.load_principal(db=s, user_id=sessions[0].user_id) is None
    assert _sign_in(db, "dana@example.org", PASSWORD).status == "failed"
    assert cli("users", "enable", "dana@example.org").exit_code == 0
    assert _sign_in(db, "dana@example.org", PASSWORD).status == "ok"
    assert cli("users", "disable", "nobody@example.org").exit_code == 4

    short = cli("users", "reset-password", "dana@example.org", "--password-stdin", input="short\n")
    assert short.exit_code == 2 and "at least 12" in short.stderr
    new = "another long passphrase"
    r = cli("users", "reset-password", "dana@example.org", "--password-stdin", input=new + "\n")
    assert r.exit_code == 0, r.output
    with db.session() as s:
        assert s.scalars(select(WebSession)).all() == []
    assert _sign_in(db, "dana@example.org", PASSWORD).status == "failed"
    assert _sign_in(db, "dana@example.org", new).status == "ok"

    listed = cli("users", "tokens", "dana@example.org")
    assert listed.exit_code == 0 and "script" in listed.stdout and plain not in listed.stdout
    with db.session() as s:
        token_id = s.scalars(select(ApiToken.id)).one()
    assert cli("users", "revoke-token", str(token_id)).exit_code == 0
    assert cli("users", "revoke-token", "999999").exit_code == 4
    with db.session() as s:
        assert service.find_api_token(db=s, token=plain) is None
    actions = {e.action for e in _audit(db, "user.disable") + _audit(db, "token.revoke")}
    assert actions == {"user.disable", "token.revoke"}
    assert _audit(db, "password.reset")


def test_login_limits_come_from_settings(settings: Settings, db: Database) -> None:
    tight = settings.model_copy(update={"login_max_failures": 2, "login_lockout_minutes": 60})
    policy = LoginPolicy.from_settings(tight)
    assert policy.max_failures == 2 and policy.lockout == timedelta(minutes=60)
    _add(db, "eve@example.org")
    for _ in range(2):
        with db.session() as s:
            flows.sign_in(
                db=s,
                email="eve@example.org",
                password="wrong password!",
                ip="10.1.1.1",
                user_agent=None,
                policy=policy,
                lifetime=LIFETIME,
            )
    with db.session() as s:
        user = s.scalars(select(User).where(User.email == "eve@example.org")).one()
        assert service.locked_addresses(db=s, policy=policy, user_id=user.id) == ["10.1.1.1"]
    app = create_app(tight, db=db)
    assert app.state.login_policy == policy


def test_totp_keys_are_sealed_at_rest(db: Database, settings: Settings) -> None:
    _add(db, "fara@example.org")
    with db.session() as s:
        uri = flows.enrol_totp(db=s, actor=SYSTEM, email="fara@example.org")
    secret = pyotp.parse_uri(uri).secret
    with db.engine.connect() as conn:
        stored = conn.execute(
            text("SELECT totp_secret FROM user_account WHERE email = 'fara@example.org'")
        ).scalar_one()
    assert stored.startswith("sealed:") and secret not in stored
    with db.session() as s:
        user = s.scalars(select(User).where(User.email == "fara@example.org")).one()
        assert user.totp_secret == secret
        assert service.verify_totp(user=user, code=pyotp.TOTP(secret).now())

    # A key stored before sealing existed is still read, and sealed when next written.
    legacy = pyotp.random_base32()
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE user_account SET totp_secret = :v WHERE email = 'fara@example.org'"),
            {"v": legacy},
        )
    with db.session() as s:
        user = s.scalars(select(User).where(User.email == "fara@example.org")).one()
        assert user.totp_secret == legacy

    # Another secret key cannot open it, and says so rather than turning the factor off.
    other = Database(settings.model_copy(update={"secret_key": "another secret key " * 3}))
    with other.session() as s:
        user = s.scalars(select(User).where(User.email == "fara@example.org")).one()
        user.totp_secret = pyotp.random_base32()
    with pytest.raises(SealedUnreadable, match="ELSHI_SECRET_KEY changed"), db.session() as s:
        s.scalars(select(User).where(User.email == "fara@example.org")).one()
    other.dispose()
