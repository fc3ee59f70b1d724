"""A platform that takes a post and then fails (502, or the connection dropped) gets it once.

Each social channel runs against its loopback platform, which can accept a post and then
answer 502 Bad Gateway ("accept502") or close the connection without an answer
("acceptdrop"), answer 502 without taking it ("502"), and fail the read of recent posts
elshi looks the post up with ("lookup:<platform>" in `broken`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from elshi.db import Database, utcnow
from elshi.settings import Settings
from elshi.speak import flows, service
from elshi.speak.channels.base import ChannelContext
from elshi.speak.models import Publication
from tests.speak.platforms import PlatformServer
from tests.speak.test_speak_channels import SOCIAL, _pub, _schedule_now, _setup

#: Channels without an idempotency key: a retry could post twice, so elshi looks first.
SEARCHED = ("telegram", "x", "facebook")
#: The request that makes a post, and the read elshi looks the post up with, per platform.
POST_PATH = {
    "telegram": "/sendMessage",
    "mastodon": "/api/v1/statuses",
    "bluesky": "com.atproto.repo.createRecord",
    "x": "/2/tweets",
    "facebook": "/feed",
}
LOOKUP_PATH = {
    "telegram": "/tme/s/",
    "x": "/x/2/users/42/tweets",
    "facebook": "/facebook/v21.0/1001/feed",
}


@pytest.fixture
def platforms() -> Iterator[PlatformServer]:
    server = PlatformServer().start()
    yield server
    server.stop()


@pytest.fixture
def ctx(settings: Settings, db: Database) -> Iterator[ChannelContext]:
    c = ChannelContext(settings=settings, db=db)
    yield c
    c.close()


def _calls(platforms: PlatformServer, channel: str) -> list[str]:
    """The posting ("POST") and look-up ("LOOK") requests one platform got, in order."""
    out = []
    for method, path, _auth in platforms.requests:
        if method == "POST" and path.startswith(f"/{channel}/"):
            if path.endswith(POST_PATH[channel]):
                out.append("POST")
        elif method == "GET" and path.startswith(LOOKUP_PATH.get(channel, "-")):
            out.append("LOOK")
    return out


def _due_now(db: Database, pid: int) -> None:
    """Let the back-off pass: the retry (or look-up) is due now."""
    with db.session() as s:
        s.execute(
            update(Publication)
            .where(Publication.id == pid)
            .values(retry_at=utcnow() - timedelta(seconds=1))
        )


def _worker_round(db: Database, ctx: ChannelContext) -> dict[str, list[int]]:
    """One round of the scheduler and the queue: what publish_due finds, sent in turn."""
    found = flows.publish_due(db, ctx)
    for pid in found["due"]:
        flows.send_publication(db, pid, ctx)
    return found


def _advice(pub: Publication, lang: str = "en") -> str:
    """What the statement page tells a person to do about this publication."""
    from starlette.requests import Request

    from elshi.speak.views.common import advice

    request = Request({"type": "http", "headers": [], "query_string": b"", "state": {}})
    request.state.lang = lang
    return advice(request, pub)


def _stored_id(platforms: PlatformServer, channel: str) -> str:
    [stored] = platforms.posts[channel]
    return str(stored.get("id", stored.get("uri")))


def _one_channel(
    db: Database, settings: Settings, platforms: PlatformServer, channel: str
) -> tuple[dict[str, Any], int]:
    team = _setup(db, settings, platforms, channels=(channel,))
    return team, _schedule_now(db, team)[channel]


@pytest.mark.parametrize("fault", ["accept502", "acceptdrop"])
@pytest.mark.parametrize("channel", SOCIAL)
def test_a_post_taken_then_failed_is_published_once_with_its_id(
    db: Database,
    settings: Settings,
    platforms: PlatformServer,
    ctx: ChannelContext,
    channel: str,
    fault: str,
) -> None:
    team, pid = _one_channel(db, settings, platforms, channel)
    platforms.fail(channel, fault)
    flows.publish_statement(db, actor=team["drafter"], statement_id=team["statement_id"], ctx=ctx)
    assert len(platforms.posts[channel]) == 1
    if channel in SEARCHED:
        # Looked up at once and found: recorded, never posted again.
        assert _calls(platforms, channel) == ["POST", "LOOK"]
        assert _pub(db, pid).status == "sent"
    else:
        # Sending again is safe (same Idempotency-Key / record key): it is tried again.
        pending = _pub(db, pid)
        assert pending.status == "pending" and pending.retry_at is not None
        _due_now(db, pid)
        assert _worker_round(db, ctx)["due"] == [pid]
    pub = _pub(db, pid)
    assert len(platforms.posts[channel]) == 1, platforms.posts[channel]
    assert pub.status == "sent" and pub.error_kind is None and pub.error_detail == {}
    assert pub.external_id == _stored_id(platforms, channel)
    assert pub.url
    # Nothing is left to do: the next rounds post nothing more.
    _worker_round(db, ctx)
    assert len(platforms.posts[channel]) == 1


@pytest.mark.parametrize("channel", SOCIAL)
def test_a_gateway_error_without_the_post_is_retried_and_posts_once(
    db: Database,
    settings: Settings,
    platforms: PlatformServer,
    ctx: ChannelContext,
    channel: str,
) -> None:
    team, pid = _one_channel(db, settings, platforms, channel)
    platforms.fail(channel, "502")
    flows.publish_statement(db, actor=team["drafter"], statement_id=team["statement_id"], ctx=ctx)
    first = _pub(db, pid)
    assert platforms.posts[channel] == []
    assert first.status == "pending" and first.error_kind == "server_error"
    assert first.retry_at is not None and first.retry_at > utcnow()
    _due_now(db, pid)
    _worker_round(db, ctx)
    pub = _pub(db, pid)
    assert pub.status == "sent" and pub.external_id == _stored_id(platforms, channel)
    if channel in SEARCHED:
        # Looked for after the 502 (not there), and once more right before the retry.
        assert _calls(platforms, channel) == ["POST", "LOOK", "LOOK", "POST"]


@pytest.mark.parametrize("fault", ["accept502", "502"])
@pytest.mark.parametrize("channel", SEARCHED)
def test_a_failed_look_up_waits_as_unknown_and_a_later_check_settles_it(
    db: Database,
    settings: Settings,
    platforms: PlatformServer,
    ctx: ChannelContext,
    channel: str,
    fault: str,
) -> None:
    team, pid = _one_channel(db, settings, platforms, channel)
    platforms.fail(channel, fault)
    platforms.broken.add(f"lookup:{channel}")
    flows.publish_statement(db, actor=team["drafter"], statement_id=team["statement_id"], ctx=ctx)
    posted = 1 if fault == "accept502" else 0
    doubt = _pub(db, pid)
    assert doubt.status == "unknown" and doubt.error_kind == "unsure"
    assert "looking for the post failed" in (doubt.error or "")
    assert doubt.retry_at is not None and doubt.retry_at > utcnow()  # a later check
    assert doubt.error_detail["in_doubt"] is True
    assert "without posting it twice" in _advice(doubt)
    assert doubt.retry_at.strftime("%H:%M") in _advice(doubt, "ru")
    # Due again while the platform still cannot be read: still unknown, nothing sent blind.
    _due_now(db, pid)
    assert _worker_round(db, ctx)["checked"] == [pid]
    again = _pub(db, pid)
    assert again.status == "unknown" and again.retry_at is not None
    assert again.error_detail["checks"] == 2
    assert _calls(platforms, channel) == ["POST", "LOOK", "LOOK"]
    assert len(platforms.posts[channel]) == posted
    # The platform can be read again: the next check settles it.
    platforms.broken.discard(f"lookup:{channel}")
    _due_now(db, pid)
    assert _worker_round(db, ctx)["checked"] == [pid]
    pub = _pub(db, pid)
    assert len(platforms.posts[channel]) == 1, platforms.posts[channel]
    assert pub.status == "sent" and pub.external_id == _stored_id(platforms, channel)
    # Found when it was there; sent (after a look) when it was not.
    tail = ["LOOK"] if fault == "accept502" else ["LOOK", "POST"]
    assert _calls(platforms, channel) == ["POST", "LOOK", "LOOK", *tail]


def test_looking_up_stops_after_the_last_check_and_waits_for_a_person(
    db: Database, settings: Settings, platforms: PlatformServer, ctx: ChannelContext
) -> None:
    team, pid = _one_channel(db, settings, platforms, "x")
    platforms.fail("x", "accept502")
    platforms.broken.add("lookup:x")
    flows.publish_statement(db, actor=team["drafter"], statement_id=team["statement_id"], ctx=ctx)
    for _ in range(settings.publish_max_attempts):
        _due_now(db, pid)
        _worker_round(db, ctx)
    pub = _pub(db, pid)
    assert pub.status == "unknown" and pub.retry_at is None
    assert "press Mark as sent" in _advice(pub)
    assert _worker_round(db, ctx) == {"due": [], "reconciled": [], "checked": []}
    assert len(platforms.posts["x"]) == 1
    flows.mark_sent(db, actor=team["drafter"], publication_id=pid)
    assert _pub(db, pid).status == "sent"


def test_a_private_telegram_channel_cannot_be_searched_and_waits_for_a_person(
    db: Database, settings: Settings, platforms: PlatformServer, ctx: ChannelContext
) -> None:
    team = _setup(db, settings, platforms, channels=())
    config, secrets = platforms.account("telegram")
    with db.session() as s:
        account = service.add_account(
            db=s,
            actor=team["admin"],
            settings=settings,
            mission_id=team["mission_id"],
            channel="telegram",
            name="Private channel",
            config={**config, "chat_id": "-1001234567890", "languages": ["kk"]},
            secrets=secrets,
        ).id
    pid = _schedule_now(db, {**team, "accounts": {"telegram": account}})["telegram"]
    platforms.fail("telegram", "accept502")
    flows.publish_statement(db, actor=team["drafter"], statement_id=team["statement_id"], ctx=ctx)
    pub = _pub(db, pid)
    assert pub.status == "unknown" and pub.retry_at is None and pub.error_kind == "unsure"
    assert "cannot say if it arrived" in (pub.error or "")
    _worker_round(db, ctx)
    assert len(platforms.posts["telegram"]) == 1
    with pytest.raises(service.SpeakError, match="Check the channel"):
        flows.retry_publication(db, actor=team["drafter"], publication_id=pid)
    flows.mark_sent(db, actor=team["drafter"], publication_id=pid)
    assert _pub(db, pid).status == "sent"


@pytest.mark.parametrize("channel", SEARCHED)
def test_a_crash_with_a_failed_look_up_is_never_sent_blind(
    db: Database,
    settings: Settings,
    platforms: PlatformServer,
    ctx: ChannelContext,
    channel: str,
) -> None:
    """The worker stopped mid-send and the look-up after it fails: checked again later."""
    _team, pid = _one_channel(db, settings, platforms, channel)
    assert flows._claim(db, pid)
    with db.session() as s:
        s.execute(
            update(Publication)
            .where(Publication.id == pid)
            .values(claimed_at=utcnow() - timedelta(hours=1))
        )
    platforms.broken.add(f"lookup:{channel}")
    assert _worker_round(db, ctx)["reconciled"] == [pid]
    pub = _pub(db, pid)
    assert pub.status == "unknown" and pub.retry_at is not None
    assert "worker stopped" in (pub.error or "")
    assert platforms.posts[channel] == []
    platforms.broken.discard(f"lookup:{channel}")
    _due_now(db, pid)
    _worker_round(db, ctx)
    assert _pub(db, pid).status == "sent" and len(platforms.posts[channel]) == 1
