"""A broadcast to 2,000 registered citizens over real SMTP (aiosmtpd) and loopback Telegram
and SMS gateways, delivered by a real worker process that is killed mid-way and restarted;
escalation to SMS and the call list; check-ins; the dashboard's counts against the records.

How fast a larger crisis goes out is measured by bench/crisis.py, not here."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest
from sqlalchemy import func, select

from elshi import crypto, jobs
from elshi.accounts.service import Principal
from elshi.crisis import flows, service
from elshi.crisis.models import CheckIn, Delivery, Recipient
from elshi.db import Database, utcnow
from elshi.settings import Settings
from tests.crisis.support import MESSAGES, populate, team
from tests.platform.test_jobs import _worker_env
from tests.speak.platforms import TOKENS, PlatformServer

N = 2_000


@pytest.fixture
def gateways() -> Iterator[PlatformServer]:
    server = PlatformServer().start()
    yield server
    server.stop()


def _point(settings: Settings, gateways: PlatformServer, smtp: Any) -> dict[str, str]:
    settings.telegram_bot_token = TOKENS["telegram"]
    settings.telegram_api_url = f"{gateways.url}/telegram"
    settings.crisis_sms_url = f"{gateways.url}/sms"
    settings.crisis_sms_account = "AC0123"
    settings.crisis_sms_token = TOKENS["sms"]
    settings.crisis_sms_from = "+4930000000"
    return {
        "ELSHI_SMTP_HOST": settings.smtp_host,
        "ELSHI_SMTP_PORT": str(settings.smtp_port),
        "ELSHI_TELEGRAM_BOT_TOKEN": TOKENS["telegram"],
        "ELSHI_TELEGRAM_API_URL": settings.telegram_api_url,
        "ELSHI_CRISIS_SMS_URL": settings.crisis_sms_url,
        "ELSHI_CRISIS_SMS_ACCOUNT": "AC0123",
        "ELSHI_CRISIS_SMS_TOKEN": TOKENS["sms"],
        "ELSHI_CRISIS_SMS_FROM": "+4930000000",
        "ELSHI_CRISIS_LEASE_SECONDS": "2",
        "ELSHI_CRISIS_RATE_EMAIL": "0",
        "ELSHI_CRISIS_RATE_SMS": "0",
        "ELSHI_CRISIS_RATE_TELEGRAM": "0",
        "ELSHI_CRISIS_ESCALATE_MINUTES": "30",
    }


def _start_worker(settings: Settings, extra: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "elshi.cli", "worker", "--threads", "2"],
        env=_worker_env(settings, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait(what: str, check: Callable[[], bool], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def _statuses(db: Database) -> dict[tuple[str, str], int]:
    with db.session() as s:
        return {
            (c, st): n
            for c, st, n in s.execute(
                select(Delivery.channel, Delivery.status, func.count()).group_by(
                    Delivery.channel, Delivery.status
                )
            )
        }


def _emails(smtp: Any) -> list[tuple[str, str]]:
    out = []
    for env in list(smtp.messages):
        msg = message_from_bytes(env.content, policy=policy.default)
        body = msg.get_body(preferencelist=("plain",))
        out.append((env.rcpt_tos[0], body.get_content() if body else ""))
    return out


def test_thousands_of_people_killed_worker_escalation_and_dashboard(
    db: Database, settings: Settings, smtp: Any, gateways: PlatformServer
) -> None:
    t = team(db)
    populate(db, t.mission_id, N)
    populate(db, t.mission_id, 40, city="Ankara", center=(39.93, 32.86), prefix="a")
    extra = _point(settings, gateways, smtp)
    area = service.parse_area({"countries": "TR", "cities": "Istanbul"})

    with db.session() as s:
        seen = service.preview(
            db=s, actor=Principal.system(), mission_id=t.mission_id, area=area, audience="present"
        )
        assert seen.people == N  # Ankara is outside the area
        b = service.create_crisis(
            db=s,
            actor=t.officer,
            mission_id=t.mission_id,
            title="Earthquake in Istanbul",
            area=area,
            audience="present",
            messages=MESSAGES,
        )
        bid, cid = b.id, b.crisis_id
    with db.session() as s, pytest.raises(service.Invalid, match="second officer"):
        service.approve(db=s, actor=t.officer, broadcast_id=bid)
    with db.session() as s:
        service.approve(db=s, actor=t.officer2, broadcast_id=bid)
    with db.session() as s:
        counts = service.send(db=s, actor=t.officer2, broadcast_id=bid)
    with_telegram = sum(1 for i in range(N) if i % 3 == 0)
    unverified = sum(1 for i in range(N) if i % 20 == 1)
    only_phone = sum(1 for i in range(N) if i % 20 == 1 and i % 3 != 0)
    assert counts == {
        "email": N - unverified,
        "telegram": with_telegram,
        "push": 0,
        "sms": only_phone,
    }

    rt = jobs.bind(settings)
    for channel in ("email", "telegram", "sms"):
        jobs.enqueue("crisis_deliver", bid, channel)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(_start_worker(settings, extra))
        _wait("the worker to send 400 e-mails", lambda: len(smtp.messages) >= 400)
        procs[-1].send_signal(signal.SIGKILL)  # mid-way, possibly mid-send
        procs[-1].wait(timeout=10)
        stopped_at = len(smtp.messages)
        assert stopped_at < counts["email"], "the kill came too late to test anything"
        time.sleep(2.5)  # past the lease
        procs.append(_start_worker(settings, extra))
        _wait("every first-wave delivery to settle", lambda: flows.pending_count(db) == 0)

        first = _statuses(db)
        assert sum(n for (c, _), n in first.items()) == sum(counts.values())
        # Check-ins: people answer through the personal link in the e-mail they received.
        answers: dict[int, str] = {}
        rng_rows = []
        for i, (_, text) in enumerate(_emails(smtp)):
            token = re.search(r"/c/([0-9a-z]+-[0-9a-z]+-[\w-]+)", text)
            assert token, text
            keys = crypto.verify_keys(settings, crypto.CHECKIN)
            c, rid = service.read_token(keys=keys, token=token.group(1))
            assert c == cid
            kind = i % 20
            if kind < 11:
                answer = "safe" if kind < 9 else ("help" if kind == 9 else "left")
                rng_rows.append((rid, answer, kind))
        with db.session() as s:
            for rid, answer, _kind in rng_rows:
                service.record_checkin(
                    s,
                    crisis_id=cid,
                    recipient_id=rid,
                    answer=answer,
                    note="trapped on 3rd floor" if answer == "help" else "",
                    latitude=41.0 + (rid % 100) / 1000 if answer == "help" else None,
                    longitude=28.9 + (rid % 70) / 1000 if answer == "help" else None,
                    nonce=uuid.uuid4().hex,
                )
                answers[rid] = answer
        # A person changes their answer (the latest counts), and a replayed form is stored once.
        some = next(r for r, a in answers.items() if a == "safe")
        with db.session() as s:
            for _ in range(2):
                service.record_checkin(
                    s, crisis_id=cid, recipient_id=some, answer="help", nonce="replayed-01"
                )
        answers[some] = "help"

        # 30 minutes without an answer: SMS to everyone unanswered who has a phone, except
        # those who already had the first-wave SMS (one SMS per person and broadcast).
        silent_without_sms = (
            select(func.count())
            .select_from(Recipient)
            .where(
                Recipient.crisis_id == cid,
                ~select(CheckIn.id).where(CheckIn.recipient_id == Recipient.id).exists(),
                ~select(Delivery.id)
                .where(Delivery.recipient_id == Recipient.id, Delivery.channel == "sms")
                .exists(),
            )
        )
        with db.session() as s:
            expected_sms = s.scalar(silent_without_sms)
            sms_before = s.scalar(select(func.count()).where(Delivery.channel == "sms"))
        assert sms_before == only_phone
        later = utcnow() + timedelta(minutes=31)
        with db.session() as s:
            esc = service.escalate(db=s, minutes=30, now=later)
        assert esc["sms"] == expected_sms > 0
        with db.session() as s:
            assert s.scalar(select(func.count()).where(Delivery.channel == "sms")) == (
                sms_before + expected_sms
            )
            assert s.scalar(silent_without_sms) == 0
        jobs.enqueue("crisis_deliver", bid, "sms")
        _wait("the SMS escalation to settle", lambda: flows.pending_count(db) == 0)
        # A few answer by SMS reply keyword.
        replied = 0
        for post in list(gateways.posts["sms"])[:25]:
            with db.session() as s:
                got = service.sms_reply(
                    db=s, phone=post["to"], body="SAFE ok now", nonce=uuid.uuid4().hex
                )
            replied += got == "safe"
        assert replied == 25
        # Another 30 minutes: whoever is still silent goes on the call list.
        with db.session() as s:
            service.escalate(db=s, minutes=30, now=later + timedelta(minutes=31))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        rt.huey.flush()

    # -- no one is messaged twice on the same channel -------------------------------------
    per_address = Counter(to for to, _ in _emails(smtp))
    assert per_address and max(per_address.values()) == 1
    per_chat = Counter(p["chat_id"] for p in gateways.posts["telegram"])
    assert max(per_chat.values()) == 1
    per_phone = Counter(p["to"] for p in gateways.posts["sms"])
    assert max(per_phone.values()) == 1

    statuses = _statuses(db)
    # The kill left at most the one send each of the two worker threads had under way.
    assert sum(n for (_, st), n in statuses.items() if st == "unknown") <= 2, statuses
    for channel, arrived in (
        ("email", len(per_address)),
        ("telegram", len(per_chat)),
        ("sms", len(per_phone)),
    ):
        sent = statuses.get((channel, "sent"), 0)
        unknown = statuses.get((channel, "unknown"), 0)
        # Everything recorded sent arrived; an "unknown" one may or may not have.
        assert sent <= arrived <= sent + unknown, (channel, sent, unknown, arrived)
        assert statuses.get((channel, "pending"), 0) == 0
        assert statuses.get((channel, "sending"), 0) == 0

    # -- the dashboard matches every delivery and check-in record -------------------------
    with db.session() as s:
        w = service.welfare(db=s, crisis_id=cid)
        rows = s.execute(
            select(CheckIn.recipient_id, CheckIn.answer)
            .where(CheckIn.crisis_id == cid)
            .order_by(CheckIn.id)
        ).all()
        latest = {rid: a for rid, a in rows}
        sent_to = set(s.scalars(select(Delivery.recipient_id).where(Delivery.status == "sent")))
        everyone = set(s.scalars(select(Recipient.id).where(Recipient.crisis_id == cid)))
        by_status = Counter(
            (c, st) for c, st in s.execute(select(Delivery.channel, Delivery.status))
        )
        call = service.call_list(db=s, crisis_id=cid)
    tally = Counter(latest.values())
    assert w.people == len(everyone) == N
    assert (w.safe, w.help, w.left) == (tally["safe"], tally["help"], tally["left"])
    silent = everyone - set(latest)
    assert w.not_answered == len(silent & sent_to)
    assert w.not_reached == len(silent - sent_to)
    assert w.safe + w.help + w.left + w.not_answered + w.not_reached == N
    assert w.confirmed_present == tally["safe"] + tally["help"]
    assert w.estimated_present + w.registered_only == len(silent)
    assert w.checkins == len(rows) == len(rng_rows) + 1 + replied
    assert {(c, st): n for c in w.deliveries for st, n in w.deliveries[c].items()} == dict(
        by_status
    )
    assert w.call_list == len(call) == len(silent)
    assert all(r.id in silent for r in call)
