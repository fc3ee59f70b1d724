"""E-consulate additions: stay reminders, catalogue editing, mission time zones, the JSON API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from elshi import jobs
from elshi.consulate import service
from elshi.consulate.models import Citizen, Registration
from elshi.db import Database, utcnow
from elshi.settings import Settings
from tests.consulate_support import Sink, World, citizen, link_in, world


@pytest.fixture
def w(db: Database) -> World:
    return world(db)


def _stay(s: Any, citizen_id: int, mission_id: int, leave_in: int, **fields: Any) -> int:
    today = date.today()
    row = service.register_stay(
        db=s,
        citizen_id=citizen_id,
        raw={
            "mission_id": str(mission_id),
            "country_code": "DE",
            "city": fields.pop("city", "Berlin"),
            "arrive_on": str(today),
            "leave_on": str(today + timedelta(days=leave_in)),
        },
    )
    for name, value in fields.items():
        setattr(row, name, value)
    s.flush()
    return row.id


# ---------------------------------------------------------------------------- stay reminders


def test_stay_reminders_go_once_per_reason_over_smtp(
    db: Database, w: World, settings: Settings, smtp: Sink
) -> None:
    long_ago = utcnow() - timedelta(days=40)
    with db.session() as s:
        carol = citizen(s, "carol@example.org", "Carol Confirmed")
        dana = citizen(s, "dana@example.org", "Dana Gone")
        s.get(Citizen, w.bob).lang = "ru"  # type: ignore[union-attr]
        ending = _stay(s, w.alice, w.a, 2, city="Potsdam")
        stale = _stay(s, w.bob, w.b, 60, city="Lyon", created_at=long_ago)
        _stay(s, carol, w.a, 60, created_at=long_ago, confirmed_at=utcnow() - timedelta(days=1))
        _stay(s, dana, w.a, 2, status="cancelled")
    # The job queues each e-mail; the queue runs here at once and sends it over real SMTP.
    immediate = settings.model_copy(update={"queue_url": "memory://", "queue_immediate": True})
    rt = jobs.bind(immediate, db)
    assert rt.tasks["remind_stays"].call_local() == 2

    [alice_mail] = smtp.texts("alice@example.org")
    assert "Potsdam" in alice_mail and "confirm" in alice_mail
    assert link_in(alice_mail, "/consulate/home").endswith("/consulate/home#stays")
    [bob_mail] = smtp.texts("bob@example.org")
    assert "Lyon" in bob_mail and "Подтвердите" in bob_mail  # in the citizen's language
    assert smtp.texts("carol@example.org") == smtp.texts("dana@example.org") == []

    # Nothing new happened: no second e-mail for the same reason.
    assert rt.tasks["remind_stays"].call_local() == 0
    assert len(smtp.messages) == 2
    with db.session() as s:
        assert s.get(Registration, ending).reminded_at is not None  # type: ignore[union-attr]
        service.confirm_stay(db=s, citizen_id=w.bob, registration_id=stale)
    # Bob confirmed: he is asked again only after another unconfirmed period.
    with db.session() as s:
        later = utcnow() + timedelta(days=29)
        assert stale not in {r.id for r in _due(s, settings, later)}
        assert stale in {r.id for r in _due(s, settings, later + timedelta(days=2))}


def _due(s: Any, settings: Settings, now: Any) -> list[Registration]:
    return service.stays_to_remind(
        db=s,
        ending_days=settings.stay_reminder_ending_days,
        unconfirmed_days=settings.stay_reminder_unconfirmed_days,
        now=now,
    )


def test_ending_reminder_follows_an_earlier_unconfirmed_one(
    db: Database, w: World, settings: Settings
) -> None:
    now = utcnow()
    with db.session() as s:
        stay = _stay(s, w.alice, w.a, 40, created_at=now - timedelta(days=31))
        assert [r.id for r in _due(s, settings, now)] == [stay]
        s.get(Registration, stay).reminded_at = now  # type: ignore[union-attr]
        assert _due(s, settings, now) == []
        # Three days before the end the citizen hears once more, then not again.
        near_end = now + timedelta(days=38)
        assert [r.id for r in _due(s, settings, near_end)] == [stay]
        s.get(Registration, stay).reminded_at = near_end  # type: ignore[union-attr]
        assert _due(s, settings, near_end + timedelta(days=1)) == []
        # A stay already over is left to expire.
        assert _due(s, settings, now + timedelta(days=41)) == []


# ---------------------------------------------------------------------------- scale-out


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                out.append(int(entry.name))
    return out


def test_web_runs_several_processes_with_server_timing(settings: Settings) -> None:
    from tests.consulate_support import free_port

    port = free_port()
    env = {**os.environ, "ELSHI_SERVER_TIMING": "1", "ELSHI_SECRET_KEY": "x" * 40}
    proc = subprocess.Popen(
        [sys.executable, "-m", "elshi.cli", "web", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        response = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert response is not None, proc.stdout.read() if proc.stdout else ""
        assert response.status_code == 200
        timing = response.headers["server-timing"]
        assert timing.startswith("app;dur=") and float(timing.split("=")[1]) >= 0
        python_children = [
            c for c in _children(proc.pid) if "python" in Path(f"/proc/{c}/cmdline").read_text()
        ]
        assert len(python_children) >= 2  # two serving processes (and uvicorn's supervisor)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_server_timing_is_off_by_default(settings: Settings, db: Database) -> None:
    from fastapi.testclient import TestClient

    from elshi.app import create_app

    with TestClient(create_app(settings, db=db)) as client:
        assert "server-timing" not in client.get("/health").headers
