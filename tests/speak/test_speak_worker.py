"""Idempotence: a worker killed in the middle of publishing, restarted, posts nothing twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from elshi import jobs
from elshi.db import Database
from elshi.settings import Settings
from elshi.speak import service
from elshi.speak.models import Publication
from tests.platform.test_jobs import _worker_env
from tests.speak.platforms import PlatformServer
from tests.speak.test_speak_channels import SOCIAL, _schedule_now, _setup


@pytest.fixture
def platforms() -> Iterator[PlatformServer]:
    server = PlatformServer().start()
    yield server
    server.stop()


def _start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = _worker_env(settings, ELSHI_PUBLISH_LEASE_SECONDS="2")
    return subprocess.Popen(
        [sys.executable, "-m", "elshi.cli", "worker", "--threads", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait(what: str, check: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _statuses(db: Database, ids: dict[str, int]) -> dict[str, str]:
    with db.session() as s:
        return {ch: s.get(Publication, pid).status for ch, pid in ids.items()}  # type: ignore[union-attr]


def test_worker_killed_mid_publish_and_restarted_posts_nothing_twice(
    db: Database, settings: Settings, platforms: PlatformServer
) -> None:
    team = _setup(db, settings, platforms)
    # Mastodon and Telegram accept the post, then answer only after 8 seconds: the worker is
    # killed while it waits, after the platform has the post and before elshi records it.
    platforms.fail("mastodon", "hold:8")
    platforms.fail("telegram", "hold:8")
    ids = _schedule_now(db, team)
    rt = jobs.bind(settings)
    for ch in ("mastodon", "telegram", "bluesky", "x", "facebook"):
        jobs.enqueue("send_publication", ids[ch])
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(_start_worker(settings))
        _wait("mastodon to receive the post", lambda: len(platforms.posts["mastodon"]) == 1)
        assert _statuses(db, ids)["mastodon"] == "sending"
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait(timeout=10)
        time.sleep(2.5)  # past the lease: the restarted worker treats the claim as abandoned
        procs.append(_start_worker(settings))
        _wait("telegram to receive the post", lambda: len(platforms.posts["telegram"]) == 1)
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait(timeout=10)
        time.sleep(2.5)
        procs.append(_start_worker(settings))
        _wait(
            "every publication to settle",
            lambda: all(v in ("sent", "unknown") for v in _statuses(db, ids).values()),
        )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        rt.huey.flush()
    for ch in SOCIAL:
        assert len(platforms.posts[ch]) == 1, f"{ch}: {platforms.posts[ch]}"
    statuses = _statuses(db, ids)
    # Mastodon: sent again with the same Idempotency-Key, the instance returned the first post.
    assert statuses["mastodon"] == "sent"
    with db.session() as s:
        pub = s.get(Publication, ids["mastodon"])
        assert pub is not None and pub.external_id == platforms.posts["mastodon"][0]["id"]
        assert pub.attempts == 2
    # Telegram has no idempotency key: the message was found on the public channel's web
    # preview, never sent again.
    assert statuses["telegram"] == "sent"
    assert {statuses[c] for c in ("bluesky", "x", "facebook")} == {"sent"}
    with db.session() as s:
        views = {p.id: p for p in service.list_publications(db=s, actor=team["drafter"])}
        assert views[ids["telegram"]].external_id == platforms.posts["telegram"][0]["id"]
        assert views[ids["telegram"]].error_kind is None
