"""Outgoing messages survive a queue outage: the transactional outbox, over real Redis and SMTP.

Every e-mail is stored in the transaction of the change that causes it; delivery is started
after the commit (through the queue when there is one) and a sweep sends whatever a lost start
left behind. These tests run their own redis-server, a real SMTP server (aiosmtpd), the web
app and, for the outage, a real `elshi worker` process.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from elshi import jobs, notify
from elshi.accounts import service as accounts
from elshi.app import create_app
from elshi.consulate import flows
from elshi.consulate.models import Citizen
from elshi.db import Database, utcnow
from elshi.notify import outbox
from elshi.notify.models import OutboxMessage
from elshi.settings import Settings
from tests.conftest import service_missing
from tests.consulate.support import PASSWORD, Sink, free_port, link_in, world

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# ---------------------------------------------------------------------------- helpers


class Answering(Sink):
    """An SMTP handler that answers each message with the next reply given (then 250 OK)."""

    def __init__(self, *replies: str) -> None:
        super().__init__()
        self.replies = list(replies)
        self.refused = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.replies:
            self.refused += 1
            return self.replies.pop(0)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp_answering(settings: Settings) -> Iterator[Any]:
    """Start a real SMTP server with a handler of the test's choosing; settings point at it."""
    from aiosmtpd.controller import Controller

    controllers = []

    def start(handler: Sink) -> Sink:
        controller = Controller(handler, hostname="127.0.0.1", port=free_port())
        controller.start()
        controllers.append(controller)
        settings.smtp_host, settings.smtp_port = "127.0.0.1", controller.port
        settings.smtp_from = "elshi <no-reply@mfa.example>"
        return handler

    yield start
    for controller in controllers:
        controller.stop()


def _client(settings: Settings, db: Database, runtime: Any = None) -> TestClient:
    client = TestClient(create_app(settings, db=db, runtime=runtime))
    client.headers["accept-language"] = "en"
    return client


def _csrf(client: TestClient, path: str) -> str:
    match = CSRF.search(client.get(path).text)
    assert match, path
    return match[1]


def _sign_up(client: TestClient, email: str, name: str = "Citizen") -> None:
    r = client.post(
        "/consulate/signup",
        data={
            "email": email,
            "name": name,
            "password": PASSWORD,
            "csrf_token": _csrf(client, "/consulate/signup"),
        },
        follow_redirects=False,
    )
    # The page tells the citizen to check their mail: that must now be true.
    assert r.status_code == 303 and r.headers["location"].endswith("notice=check_mail"), r.text


def _staff_login(client: TestClient, email: str) -> None:
    r = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": _csrf(client, "/login")},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:300]


def _rows(db: Database) -> list[OutboxMessage]:
    with db.session() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


class RedisServer:
    """A redis-server of this test's own on a free port, with no persistence."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        service_missing("redis-server", FileNotFoundError("redis-server is not installed"))
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def _start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELSHI_")}
    env.update(
        ELSHI_HOME=str(settings.home),
        ELSHI_DATABASE_URL=settings.db_url,
        ELSHI_DEMO="1",
        ELSHI_QUEUE_URL=settings.queue_url,
        ELSHI_QUEUE_NAME=settings.queue_name,
        ELSHI_SMTP_HOST=settings.smtp_host,
        ELSHI_SMTP_PORT=str(settings.smtp_port),
        ELSHI_SMTP_FROM=settings.smtp_from,
    )
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "elshi.cli", "worker", "--threads", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_for(condition: Any, what: str, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}; worker log:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


# ---------------------------------------------------------------------------- the outage


@pytest.mark.redis
def test_nine_sign_ups_through_a_redis_outage_each_get_one_email(
    settings: Settings,
    db: Database,
    smtp: Sink,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    settings.queue_url = redis_server.url
    settings.queue_name = "outbox-outage"
    rt = jobs.bind(settings, db)
    addresses = [f"person{i}@example.org" for i in range(9)]
    with _client(settings, db, runtime=rt) as c:
        for email in addresses[:3]:  # queued in Redis, but no worker takes them yet
            _sign_up(c, email)
        redis_server.stop()  # the outage: Redis and what it queued are gone
        for email in addresses[3:]:
            _sign_up(c, email)  # the start of delivery fails; the sign-up is stored anyway
    assert smtp.messages == []
    rows = _rows(db)
    assert [r.recipient for r in rows] == addresses
    assert {r.status for r in rows} == {"pending"}

    redis_server.start()  # Redis is back, empty
    log = tmp_path / "worker.log"
    worker = _start_worker(settings, log)  # its start-up sweeps the outbox
    try:
        _wait_for(lambda: len(smtp.messages) >= 9, "nine e-mails did not arrive", log)
        _wait_for(lambda: {r.status for r in _rows(db)} == {"sent"}, "rows not marked sent", log)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    # A sweep afterwards finds nothing to send: each citizen got exactly one e-mail.
    assert outbox.deliver_due(db, settings=settings, now=utcnow() + timedelta(hours=2)) == {
        "sent": 0,
        "logged": 0,
        "retry": 0,
        "failed": 0,
    }
    assert len(smtp.messages) == 9
    for email in addresses:
        [mail] = smtp.texts(email)
        assert "/consulate/verify?token=" in link_in(mail, "/consulate/verify")
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Citizen)) == 9


# ---------------------------------------------------------------------------- transactions


def test_a_rolled_back_change_sends_no_email(settings: Settings, db: Database, smtp: Sink) -> None:
    with pytest.raises(RuntimeError), db.session() as s:
        flows.sign_up(
            db=s, settings=settings, email="gone@example.org", password=PASSWORD, name="Gone"
        )
        assert len(s.new) >= 1  # the e-mail waits in the session with the account
        raise RuntimeError("the rest of the change failed")
    assert _rows(db) == []
    # A later commit of another change does not send it either.
    with db.session() as s:
        flows.sign_up(
            db=s, settings=settings, email="kept@example.org", password=PASSWORD, name="Kept"
        )
    assert smtp.texts("gone@example.org") == []
    assert len(smtp.texts("kept@example.org")) == 1
    assert outbox.deliver_due(db, settings=settings, now=utcnow() + timedelta(hours=2))["sent"] == 0


# ---------------------------------------------------------------------------- failures


def test_a_refused_send_is_tried_again_later_then_sent_once(
    settings: Settings, db: Database, smtp_answering: Any
) -> None:
    server = smtp_answering(Answering("451 4.3.0 Try again later"))
    with db.session() as s:
        flows.sign_up(
            db=s, settings=settings, email="later@example.org", password=PASSWORD, name="Later"
        )
    [row] = _rows(db)  # the first try at the commit was refused for now
    assert server.refused == 1 and server.messages == []
    assert row.status == "pending" and row.attempts == 1
    assert "SMTP 451" in (row.last_error or "")
    assert row.next_attempt_at is not None and row.next_attempt_at > utcnow()
    # Not due yet: a sweep now leaves it alone.
    assert outbox.deliver_due(db, settings=settings)["sent"] == 0
    assert outbox.deliver_due(db, settings=settings, now=row.next_attempt_at)["sent"] == 1
    [row] = _rows(db)
    assert row.status == "sent" and row.attempts == 2 and row.last_error is None
    assert len(server.texts("later@example.org")) == 1
    assert outbox.deliver_due(db, settings=settings, now=utcnow() + timedelta(days=1))["sent"] == 0
    assert len(server.messages) == 1


def test_tries_end_after_the_configured_number(
    settings: Settings, db: Database, smtp_answering: Any
) -> None:
    settings.outbox_max_attempts = 3
    server = smtp_answering(Answering(*["421 4.3.2 Shutting down"] * 5))
    with db.session() as s:
        notify.enqueue(s, notify.Message(medium="email", to="x@example.org", subject="s", text="t"))
    later = utcnow()
    for _ in range(3):
        later += timedelta(hours=2)
        outbox.deliver_due(db, settings=settings, now=later)
    [row] = _rows(db)
    assert row.status == "failed" and row.attempts == 3 and server.refused == 3
    assert "SMTP 421" in (row.last_error or "")


def test_a_permanent_failure_is_shown_to_admins_who_can_retry_it(
    settings: Settings, db: Database, smtp_answering: Any
) -> None:
    w = world(db)
    server = smtp_answering(Answering("550 5.1.1 No such mailbox here"))
    with db.session() as s:
        admin_a = accounts.create_user(
            db=s, email="admin.a@mfa.example", password=PASSWORD, name="Admin A"
        )
        accounts.grant_role(db=s, user_id=admin_a.id, mission_id=w.a, role="admin")
        admin_b = accounts.create_user(
            db=s, email="admin.b@mfa.example", password=PASSWORD, name="Admin B"
        )
        accounts.grant_role(db=s, user_id=admin_b.id, mission_id=w.b, role="admin")
        notify.enqueue(
            s,
            notify.Message(
                medium="email",
                to="applicant@example.org",
                subject="Your request BER-1",
                text="See https://elshi.example/consulate/requests/1",
            ),
            mission_id=w.a,
        )
    [row] = _rows(db)
    assert row.status == "failed" and row.attempts == 1  # 5xx: no later try can mend it
    assert "SMTP 550" in (row.last_error or "")

    with _client(settings, db) as hq:
        _staff_login(hq, "admin@mfa.example")
        page = hq.get("/admin/outbox")
        assert page.status_code == 200
        assert "applicant@example.org" in page.text and "SMTP 550" in page.text
        assert f'action="/admin/outbox/{row.id}/retry"' in page.text
        assert 'href="/admin/outbox"' in hq.get("/admin").text
    with _client(settings, db) as mission_a:
        _staff_login(mission_a, "admin.a@mfa.example")
        page = mission_a.get("/admin/outbox")
        assert "a***@e***.org" in page.text and "applicant@example.org" not in page.text
    with _client(settings, db) as mission_b:
        _staff_login(mission_b, "admin.b@mfa.example")
        assert "No messages yet." in mission_b.get("/admin/outbox").text
        refused = mission_b.post(
            f"/admin/outbox/{row.id}/retry",
            data={"csrf_token": _csrf(mission_b, "/admin/outbox")},
            follow_redirects=False,
        )
        assert refused.status_code == 404
    with _client(settings, db) as analyst:
        _staff_login(analyst, "analyst.a@mfa.example")
        assert analyst.get("/admin/outbox").status_code == 403
    assert _rows(db)[0].status == "failed"

    # The mailbox exists now: the admin of the mission retries it, and it goes out.
    with _client(settings, db) as mission_a:
        _staff_login(mission_a, "admin.a@mfa.example")
        token = _csrf(mission_a, "/admin/outbox")
        done = mission_a.post(
            f"/admin/outbox/{row.id}/retry", data={"csrf_token": token}, follow_redirects=False
        )
        assert done.status_code == 303 and done.headers["location"] == "/admin/outbox"
        again = mission_a.post(
            f"/admin/outbox/{row.id}/retry", data={"csrf_token": token}, follow_redirects=False
        )
        assert again.status_code == 409  # sent: nothing to retry
    [row] = _rows(db)
    assert row.status == "sent"
    assert len(server.texts("applicant@example.org")) == 1


# ---------------------------------------------------------------------------- no SMTP server


def test_without_smtp_emails_are_printed_and_kept_and_their_link_works(
    settings: Settings, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert settings.smtp_host == ""
    world(db)
    with _client(settings, db) as citizen:
        _sign_up(citizen, "demo.citizen@example.org", "Demo Citizen")
        printed = capsys.readouterr().out
        assert "to: demo.citizen@example.org" in printed
        assert "subject: Confirm your e-mail for the e-consulate" in printed
        link = re.search(r"link: (\S+/consulate/verify\?token=\S+)", printed)
        assert link, printed
        [row] = _rows(db)
        assert row.status == "logged" and row.sent_at is not None

        with _client(settings, db) as admin:
            _staff_login(admin, "admin@mfa.example")
            page = admin.get("/admin/outbox")
            assert page.status_code == 200
            assert "No SMTP server is set" in page.text and "kept, not sent" in page.text
            assert "demo.citizen@example.org" in page.text
            shown = re.search(r'<a href="([^"]+/consulate/verify\?token=[^"]+)"', page.text)
            assert shown, page.text[-2000:]
        url = shown[1].replace("&amp;", "&")
        assert url == link[1]

        path = url.split("://", 1)[1].split("/", 1)[1]
        assert citizen.get("/" + path, follow_redirects=False).status_code == 303
        r = citizen.post(
            "/consulate/login",
            data={
                "email": "demo.citizen@example.org",
                "password": PASSWORD,
                "csrf_token": _csrf(citizen, "/consulate/login"),
            },
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/consulate/home"
    with db.session() as s:
        verified = s.scalar(select(Citizen).where(Citizen.email == "demo.citizen@example.org"))
        assert verified is not None and verified.email_verified_at is not None


# ---------------------------------------------------------------------------- at rest


def test_recipient_and_text_are_sealed_and_follow_a_key_rotation(
    settings: Settings, db: Database, cli: Any, tmp_path: Path
) -> None:
    from sqlalchemy import text

    with db.session() as s:
        flows.sign_up(
            db=s, settings=settings, email="sealed@example.org", password=PASSWORD, name="Sealed"
        )
    with db.engine.connect() as conn:
        recipient, payload = conn.execute(text("SELECT recipient, payload FROM outbox")).one()
    assert recipient.startswith("sealed:") and payload.startswith("sealed:")
    assert "sealed@example.org" not in recipient + payload and "token=" not in payload

    new_key = "the-outbox-key-after-rotation-0123456789abcdef"
    key_file = tmp_path / "new.key"
    key_file.write_text(new_key + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    result = cli("keys", "rotate", "--new-key-file", str(key_file))
    assert result.exit_code == 0, result.output
    rotated = Database(settings.model_copy(update={"secret_key": new_key}))
    try:
        [row] = _rows(rotated)
        assert row.recipient == "sealed@example.org"
        assert "/consulate/verify?token=" in row.payload["text"]
    finally:
        rotated.dispose()


def test_old_messages_that_are_done_with_are_pruned(settings: Settings, db: Database) -> None:
    assert settings.smtp_host == ""  # the e-mail is kept, not sent
    with db.session() as s:
        notify.enqueue(s, notify.Message(medium="email", to="a@example.org", subject="s"))
    with db.session() as s:
        waiting = notify.enqueue(s, notify.Message(medium="webhook", to="https://h.example/x"))
        waiting.next_attempt_at = utcnow() + timedelta(days=365)  # still to be tried
    assert [r.status for r in _rows(db)] == ["logged", "pending"]
    assert outbox.prune(db, keep_days=30) == 0  # not old enough
    assert outbox.prune(db, keep_days=30, now=utcnow() + timedelta(days=31)) == 1
    assert [r.status for r in _rows(db)] == ["pending"]
