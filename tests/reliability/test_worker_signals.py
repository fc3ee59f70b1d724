"""Stopping `elshi worker` in the middle of a crisis broadcast, with real signals.

A real worker process sends a broadcast to a few hundred people over a real SMTP server
(aiosmtpd) and the loopback Telegram and SMS gateways. While a Telegram request is held
open by the gateway (a send under way), the test sends SIGTERM, SIGINT or SIGKILL, then
starts a new worker and lets it finish.

What each signal guarantees:

- SIGTERM and SIGINT stop gracefully: the send under way completes and is recorded, no new
  delivery is claimed, the process exits with 0. After a restart every recipient has
  exactly one message per channel, and every delivery is "sent".
- SIGKILL cannot be handled: each worker thread may leave the one delivery it was sending
  "sending" (claimed, possibly handed to the gateway). After the lease those become
  "unknown" and are never sent again on that channel, so their recipients have at most
  one message there. Every other recipient has exactly one message per channel, and
  every other delivery is "sent".
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from elshi import crypto, jobs
from elshi.crisis import flows, service
from elshi.crisis.models import Delivery, Recipient
from elshi.db import Database, utcnow
from elshi.settings import Settings, load_settings
from tests.crisis.support import MESSAGES, Team, populate, team
from tests.crisis.test_crisis_delivery import _point
from tests.platform.test_jobs import _worker_env
from tests.speak.platforms import PlatformServer

N = 300
THREADS = 2
LEASE = 2
HOLD = 5  # seconds the Telegram gateway holds the request under way when the signal comes


@pytest.fixture
def gateways() -> Iterator[PlatformServer]:
    server = PlatformServer().start()
    yield server
    server.stop()


def _wait(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


class Workers:
    """`elshi worker` processes of one test, with their output kept for failures."""

    def __init__(self, settings: Settings, env: dict[str, str], folder: Path) -> None:
        self.settings, self.env, self.folder = settings, env, folder
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.folder / f"worker-{len(self.procs) + 1}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "elshi.cli", "worker", "--threads", str(THREADS)],
            env=_worker_env(self.settings, **self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def output(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.folder.glob("worker-*.log"))
        )

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _rows(db: Database) -> list[tuple[int, str, str, str, str, str]]:
    """Every delivery: id, channel, status, and the recipient's e-mail, chat and phone."""
    with db.session() as s:
        return [
            (d.id, d.channel, d.status, r.email, r.telegram_chat_id, r.phone)
            for d, r in s.execute(
                select(Delivery, Recipient).join(Recipient, Recipient.id == Delivery.recipient_id)
            )
        ]


def _address(row: tuple[int, str, str, str, str, str]) -> str:
    _, channel, _, email, chat, phone = row
    return {"email": email, "telegram": chat, "sms": phone}[channel]


def _arrived(smtp: Any, gateways: PlatformServer) -> dict[str, Counter[str]]:
    return {
        "email": Counter(env.rcpt_tos[0] for env in (list(smtp.messages) if smtp else [])),
        "telegram": Counter(p["chat_id"] for p in list(gateways.posts["telegram"])),
        "sms": Counter(p["to"] for p in list(gateways.posts["sms"])),
    }


def _broadcast(db: Database, t: Team) -> tuple[int, dict[str, int]]:
    """Open a crisis over Istanbul, approve and send its broadcast; return it and its counts."""
    with db.session() as s:
        b = service.create_crisis(
            db=s,
            actor=t.officer,
            mission_id=t.mission_id,
            title="Earthquake in Istanbul",
            area=service.parse_area({"countries": "TR", "cities": "Istanbul"}),
            audience="present",
            messages=MESSAGES,
        )
        bid = b.id
    with db.session() as s:
        service.approve(db=s, actor=t.officer2, broadcast_id=bid)
    with db.session() as s:
        return bid, service.send(db=s, actor=t.officer2, broadcast_id=bid)


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name
)
def test_a_signalled_worker_leaves_no_recipient_without_their_one_message(
    db: Database,
    settings: Settings,
    smtp: Any,
    gateways: PlatformServer,
    tmp_path: Path,
    sig: signal.Signals,
) -> None:
    t = team(db)
    populate(db, t.mission_id, N)
    env = _point(settings, gateways, smtp) | {
        # Slow enough that the signal comes mid-way through every channel.
        "ELSHI_CRISIS_RATE_EMAIL": "100",
        "ELSHI_CRISIS_RATE_TELEGRAM": "40",
        "ELSHI_CRISIS_RATE_SMS": "20",
        "ELSHI_CRISIS_LEASE_SECONDS": str(LEASE),
        "ELSHI_WORKER_GRACE_SECONDS": "20",
    }
    bid, counts = _broadcast(db, t)
    assert counts["email"] > 200 and counts["telegram"] == 100 and counts["sms"] > 0

    rt = jobs.bind(settings)
    for channel in ("email", "telegram", "sms"):
        jobs.enqueue("crisis_deliver", bid, channel)
    workers = Workers(settings, env, tmp_path)
    try:
        # The first Telegram request is accepted by the gateway but answered HOLD s later:
        # the signal comes while that send is under way, with e-mails still going out.
        gateways.fail("telegram", f"hold:{HOLD}")
        first = workers.start()
        _wait("the held Telegram request", lambda: not gateways.faults["telegram"])
        _wait("the first e-mails", lambda: len(smtp.messages) >= 20)
        first.send_signal(sig)
        code = first.wait(timeout=60)
        held_chat = gateways.posts["telegram"][-1]["chat_id"]
        at_stop = _rows(db)
        left_sending = {r[0] for r in at_stop if r[2] == "sending"}
        assert flows.pending_count(db) > len(left_sending), "the signal came too late"

        if sig == signal.SIGKILL:
            assert code == -signal.SIGKILL
            # At most the one send under way per worker thread; the held one is among them.
            assert 1 <= len(left_sending) <= THREADS, at_stop
            assert any(r[0] in left_sending and r[4] == held_chat for r in at_stop)
            with db.session() as s:
                claimed = s.scalar(
                    select(func.max(Delivery.claimed_at)).where(Delivery.id.in_(left_sending))
                )
            assert claimed is not None
            _wait("the lease", lambda: utcnow() > claimed + timedelta(seconds=LEASE + 0.5))
        else:
            assert code == 0, workers.output()
            # The send under way was finished and recorded; nothing is left half-done.
            assert not left_sending, at_stop
            held = [r for r in at_stop if r[1] == "telegram" and r[4] == held_chat]
            assert [r[2] for r in held] == ["sent"]
            assert {r[2] for r in at_stop} <= {"sent", "pending"}

        workers.start()
        _wait("every delivery to settle", lambda: flows.pending_count(db) == 0)
    finally:
        workers.stop_all()
        rt.huey.flush()

    rows = _rows(db)
    arrived = _arrived(smtp, gateways)
    unknown = {r[0] for r in rows if r[2] == "unknown"}
    assert unknown == (left_sending if sig == signal.SIGKILL else set()), workers.output()
    for row in rows:
        got = arrived[row[1]][_address(row)]
        if row[0] in unknown:
            # Its send was under way at the kill: at most one message, never a second.
            assert got <= 1, row
            if row[1] == "telegram":
                assert got == 1  # the gateway had accepted the held message
        else:
            assert row[2] == "sent", row
            assert got == 1, (row, got)
    # Nobody outside the broadcast got anything; only an "unknown" one may have nothing.
    for channel in ("email", "telegram", "sms"):
        expected = {_address(r) for r in rows if r[1] == channel}
        assert len(expected) == counts[channel]
        missing = expected - set(arrived[channel])
        assert set(arrived[channel]) <= expected
        assert missing <= {_address(r) for r in rows if r[1] == channel and r[0] in unknown}


@pytest.mark.parametrize("channel", ["telegram", "sms"])
def test_an_unanswered_send_is_unknown_and_the_rest_of_the_batch_goes_on(
    db: Database, settings: Settings, gateways: PlatformServer, channel: str
) -> None:
    t = team(db)
    populate(db, t.mission_id, 12, telegram_every=1, unverified_every=0)
    _point(settings, gateways, None)
    settings.crisis_rate_telegram = settings.crisis_rate_sms = 0
    settings.http_timeout = 0.5
    bid, counts = _broadcast(db, t)
    if channel == "sms":
        with db.session() as s:
            b = service.find_broadcast(db=s, broadcast_id=bid)
            assert b is not None
            counts["sms"] = service.queue_deliveries(db=s, broadcast=b, channel="sms")
    assert counts[channel] == 12
    # The gateway takes the first message but answers after elshi stopped waiting.
    gateways.fail(channel, "hold:2")
    out = flows.deliver(db, settings, broadcast_id=bid, channel=channel)
    assert (out["unknown"], out["sent"]) == (1, 11)
    again = flows.deliver(db, settings, broadcast_id=bid, channel=channel)
    assert not any(again.values())  # the unknown one is never sent again on this channel

    rows = [r for r in _rows(db) if r[1] == channel]
    arrived = _arrived(None, gateways)[channel]
    assert Counter(r[2] for r in rows) == {"sent": 11, "unknown": 1}
    assert {_address(r) for r in rows} == set(arrived) and max(arrived.values()) == 1
    with db.session() as s:
        unknown = s.scalars(select(Delivery).where(Delivery.status == "unknown")).one()
    assert unknown.error and "ReadTimeout" in unknown.error


def _env(settings: Settings, gateways: PlatformServer, smtp: Any, **extra: str) -> dict[str, str]:
    return _point(settings, gateways, smtp) | {
        "ELSHI_CRISIS_RATE_EMAIL": "100",
        "ELSHI_CRISIS_RATE_TELEGRAM": "40",
        "ELSHI_CRISIS_RATE_SMS": "20",
        "ELSHI_CRISIS_LEASE_SECONDS": str(LEASE),
        **extra,
    }


def test_a_second_signal_stops_at_once(
    db: Database, settings: Settings, smtp: Any, gateways: PlatformServer, tmp_path: Path
) -> None:
    t = team(db)
    populate(db, t.mission_id, 20, telegram_every=1)
    bid, _ = _broadcast(db, t)
    rt = jobs.bind(settings)
    jobs.enqueue("crisis_deliver", bid, "telegram")
    workers = Workers(
        settings, _env(settings, gateways, smtp, ELSHI_WORKER_GRACE_SECONDS="300"), tmp_path
    )
    try:
        # The first Telegram request is held for far longer than the test waits.
        gateways.fail("telegram", "hold:120")
        proc = workers.start()
        _wait("the held Telegram request", lambda: not gateways.faults["telegram"])
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=2)  # waiting for the send under way, as it should
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, workers.output()
    finally:
        workers.stop_all()
        rt.huey.flush()
    # It left without the send under way, which stays "sending" (then "unknown").
    statuses = Counter(r[2] for r in _rows(db) if r[1] == "telegram")
    assert statuses["sending"] == 1 and statuses["sent"] == 0


def test_sighup_starts_the_worker_again_and_nobody_is_skipped(
    settings: Settings, smtp: Any, gateways: PlatformServer, tmp_path: Path
) -> None:
    # A secret key given in the environment (which elshi takes out of it at start-up) must
    # survive the restart: the links sent afterwards are signed with it too.
    key = "sighup-restart-secret-key-0123456789"
    db = Database(load_settings(secret_key=key))
    t = team(db)
    populate(db, t.mission_id, 120)
    bid, counts = _broadcast(db, t)
    rt = jobs.bind(settings)
    for channel in ("email", "telegram", "sms"):
        jobs.enqueue("crisis_deliver", bid, channel)
    workers = Workers(settings, _env(settings, gateways, smtp, ELSHI_SECRET_KEY=key), tmp_path)
    try:
        gateways.fail("telegram", f"hold:{HOLD}")  # a send under way when the signal comes
        proc = workers.start()
        _wait("the held Telegram request", lambda: not gateways.faults["telegram"])
        proc.send_signal(signal.SIGHUP)
        assert flows.pending_count(db) > 0, "the signal came too late"
        _wait("every delivery to settle", lambda: flows.pending_count(db) == 0)
        assert proc.poll() is None  # the same process, started again
    finally:
        workers.stop_all()
        rt.huey.flush()
        db.dispose()
    assert workers.output().count("worker running") == 2
    rows = _rows(db)
    arrived = _arrived(smtp, gateways)
    assert {r[2] for r in rows} == {"sent"}
    for channel in ("email", "telegram", "sms"):
        got = arrived[channel]
        assert len(got) == counts[channel] and set(got.values()) == {1}, channel
    keys = crypto.verify_keys(load_settings(secret_key=key), crypto.CHECKIN)
    for env in smtp.messages:
        body = message_from_bytes(env.content, policy=policy.default).get_body(("plain",))
        text = body.get_content() if body else ""
        token = re.search(r"/c/([0-9a-z]+-[0-9a-z]+-[\w-]+)", text)
        assert token, text
        service.read_token(keys=keys, token=token.group(1))  # raises unless signed with `key`
