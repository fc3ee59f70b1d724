"""/healthz, /readyz and /metrics, request ids and JSON logs; and no personal data in the logs
of a citizen's whole flow at DEBUG."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from elshi import logs
from elshi.app import create_app
from elshi.consulate.models import Registration, ServiceRequest
from elshi.db import Database, utcnow
from elshi.listen.models import IngestRun
from elshi.notify.models import OutboxMessage
from elshi.settings import Settings
from tests.consulate.support import PASSWORD, PNG_2x2, Sink, link_in, pdf, world
from tests.consulate.test_consulate_web import ANSWERS, _citizen_login, _csrf, _draft, _upload

LOOPBACK = ("127.0.0.1", 40000)


def _client(settings: Settings, db: Database, client: tuple[str, int] = LOOPBACK) -> TestClient:
    c = TestClient(create_app(settings, db=db), client=client)
    c.headers["accept-language"] = "en"
    return c


def _samples(text: str, name: str) -> dict[str, float]:
    """Map each sample of a metric (its labels as text) to its value."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            out[key[len(name) :]] = float(value)
    return out


def test_healthz_and_readyz(settings: Settings, db: Database) -> None:
    with _client(settings, db) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert checks["database"] == "ok" and checks["queue"] == "ok"
        assert checks["disk"].startswith("ok (")


def test_readyz_names_what_is_not_ready(settings: Settings, db: Database) -> None:
    low = settings.model_copy(
        update={"ready_min_free_mb": 10_000_000, "queue_url": "redis://127.0.0.1:9/0"}
    )
    with _client(low, db) as c:
        r = c.get("/readyz")
    assert r.status_code == 503 and r.headers["retry-after"]
    checks = r.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["queue"].startswith("unreachable")
    assert "10000000 MB needed" in checks["disk"] and "ELSHI_READY_MIN_FREE_MB" in checks["disk"]


def test_metrics_are_not_public(settings: Settings, db: Database) -> None:
    with _client(settings, db, client=("203.0.113.7", 5000)) as c:
        assert c.get("/metrics").status_code == 403
    with _client(settings, db) as c:
        # From this machine but through a reverse proxy: refused too.
        assert c.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 403
        assert c.get("/metrics").status_code == 200
    tokened = settings.model_copy(update={"metrics_token": "s3cret-metrics-token"})
    with _client(tokened, db) as c:
        assert c.get("/metrics").status_code == 403  # a token is set: loopback is not enough
        wrong = c.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        ok = c.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"})
        assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")


def test_metrics_count_routes_queue_jobs_deliveries_and_sign_in_failures(
    settings: Settings, db: Database
) -> None:
    w = world(db)
    with db.session() as s:
        now = utcnow()
        for status, stored in (("ok", 7), ("ok", 5), ("failed", 0)):
            s.add(
                IngestRun(
                    connector="rss",
                    origin="https://feed.example",
                    status=status,
                    stored=stored,
                    read=stored,
                    finished_at=now,
                )
            )
        for i, (channel, status) in enumerate(
            [("email", "failed"), ("email", "failed"), ("sms", "failed"), ("email", "pending")]
        ):
            s.add(
                OutboxMessage(
                    key=f"k{i}", channel=channel, recipient="x", payload={}, status=status
                )
            )
    with _client(settings, db) as c:
        # The counters are the process's: other tests' requests count too, so compare.
        first = c.get("/metrics").text
        before = _samples(first, "elshi_signin_failures_total")
        requests_before = _samples(first, "elshi_http_requests_total")
        latency_before = _samples(first, "elshi_http_request_duration_seconds_count")
        for post_id in (123456, 654321):
            c.get(f"/posts/{post_id}", follow_redirects=False)
        token = _csrf(c, "/consulate/login")
        c.post(
            "/consulate/login",
            data={"email": "alice@example.org", "password": "wrong one", "csrf_token": token},
        )
        text = c.get("/metrics").text
    assert w.alice
    requests = _samples(text, "elshi_http_requests_total")
    posts_303 = '{method="GET",route="/posts/{post_id}",status="303"}'
    assert requests[posts_303] == requests_before.get(posts_303, 0) + 2
    assert "123456" not in text and "654321" not in text  # templates, never raw paths
    after = _samples(text, "elshi_signin_failures_total")
    key = '{account="citizen"}'
    assert after[key] == before.get(key, 0) + 1
    posts = '{method="GET",route="/posts/{post_id}"}'
    latency = _samples(text, "elshi_http_request_duration_seconds_count")
    assert latency[posts] == latency_before.get(posts, 0) + 2
    outbox = _samples(text, "elshi_outbox_messages")
    assert outbox['{channel="email",state="failed"}'] == 2
    assert outbox['{channel="sms",state="failed"}'] == 1
    depth = _samples(text, "elshi_queue_depth")
    assert depth['{queue="outbox",state="pending"}'] == 1
    assert '{queue="tasks",state="pending"}' in depth
    assert _samples(text, "elshi_queue_age_seconds")['{queue="outbox"}'] >= 0
    assert _samples(text, "elshi_ingest_runs") == {'{state="failed"}': 1, '{state="ok"}': 2}
    assert _samples(text, "elshi_ingest_posts_total")['{outcome="stored"}'] == 12
    assert _samples(text, "elshi_database_up") == {"": 1}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Logs as `elshi web` writes them (JSON lines), at DEBUG, into a buffer."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    # SQLAlchemy keeps its own logger at WARNING unless told: tell it, so SQL is logged too.
    sql = logging.getLogger("sqlalchemy")
    sql_level = sql.level
    sql.setLevel(logging.DEBUG)
    buffer = io.StringIO()
    logs.configure(level=logging.DEBUG, fmt="json", stream=buffer)
    try:
        yield buffer
    finally:
        sql.setLevel(sql_level)
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)


def test_request_ids_and_json_lines(captured: Any, settings: Settings, db: Database) -> None:
    with _client(settings, db) as c:
        mine = c.get("/healthz", headers={"X-Request-ID": "abc-123"})
        made = c.get("/healthz", headers={"X-Request-ID": "no good\nid"})
    assert mine.headers["x-request-id"] == "abc-123"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    done = [x for x in lines if x["logger"] == "elshi.request"]
    assert {x["request_id"] for x in done} >= {"abc-123", made.headers["x-request-id"]}
    line = next(x for x in done if x["request_id"] == "abc-123")
    assert line["route"] == "/healthz" and line["status"] == 200 and line["level"] == "INFO"


def test_no_personal_data_in_the_logs_of_a_citizen_flow(
    captured: Any, settings: Settings, db: Database, smtp: Sink
) -> None:
    # `captured` comes first: logging is at DEBUG before the database engine is made.
    w = world(db)
    email, phone, passport = "zhanar.pii@example.org", "+49 170 5550123", "K7654321"
    today = date.today()
    with _client(settings, db) as c:
        token = _csrf(c, "/consulate/signup")
        form = {"email": email, "name": "Zhanar", "password": PASSWORD, "csrf_token": token}
        assert c.post("/consulate/signup", data=form, follow_redirects=False).status_code == 303
        link = link_in(smtp.texts(email)[-1], "/consulate/verify")
        assert c.get(link.split("8000", 1)[1], follow_redirects=False).status_code == 303
        token = _csrf(c, "/consulate/login")
        wrong = {"email": email, "password": "not the password", "csrf_token": token}
        assert c.post("/consulate/login", data=wrong).status_code >= 400
        _citizen_login(c, email)
        token = _csrf(c, "/consulate/stays/new")
        stay = {
            "csrf_token": token,
            "mission_id": str(w.a),
            "country_code": "DE",
            "city": "Berlin",
            "phone": phone,
            "arrive_on": str(today + timedelta(days=2)),
            "leave_on": str(today + timedelta(days=9)),
        }
        r = c.post("/consulate/stays/new", data=stay, follow_redirects=False)
        assert r.status_code == 303, r.text[:300]
        req_id = _draft(c, w.visa_a)
        assert _upload(c, req_id, "passport", "p.pdf", pdf()).status_code == 303
        assert _upload(c, req_id, "photo", "p.png", PNG_2x2).status_code == 303
        token = _csrf(c, f"/consulate/requests/{req_id}")
        answers = {**ANSWERS, "passport_number": passport, "csrf_token": token, "action": "submit"}
        r = c.post(f"/consulate/requests/{req_id}/answers", data=answers, follow_redirects=False)
        assert r.status_code == 303, r.text[:300]
        assert c.get(f"/consulate/requests/{req_id}").status_code == 200
    with db.session() as s:  # the flow really stored them
        reg = s.scalars(select(Registration)).one()
        assert reg.phone == phone
        assert passport in json.dumps(s.get(ServiceRequest, req_id).answers)  # type: ignore[union-attr]

    text = captured.getvalue()
    lines = text.splitlines()
    assert len(lines) > 20 and any('"logger": "elshi.request"' in x for x in lines)
    assert any('"DEBUG"' in x for x in lines)  # DEBUG was on
    assert any('"logger": "sqlalchemy.engine' in x for x in lines)  # SQL was logged
    digits = re.sub(r"\D", "", phone)
    for secret in (email, email.split("@")[0], phone, digits, digits[-7:], passport):
        where = text.find(secret)
        assert where < 0, f"{secret!r} found in the logs: {text[max(0, where - 300) : where + 100]}"


def test_worker_without_the_scheduler(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    """A worker machine beside the one that schedules: `elshi worker --no-scheduler`."""
    from elshi import jobs

    made: list[bool] = []
    real = jobs.consumer

    def consumer(rt: Any, *, workers: int = 2, periodic: bool = True) -> Any:
        made.append(periodic)
        return real(rt, workers=workers, periodic=periodic)

    monkeypatch.setattr(jobs, "consumer", consumer)
    monkeypatch.setattr(jobs, "run_consumer", lambda c, grace: None)
    monkeypatch.setenv("ELSHI_QUEUE_URL", "memory://")
    assert "scheduler off" in cli("worker", "--no-scheduler").output
    assert "scheduler on" in cli("worker").output
    assert made == [False, True]
