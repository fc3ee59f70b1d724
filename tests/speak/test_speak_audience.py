"""Audience quality: the accounts that liked, reposted and replied to the mission's posts,
read on the engagement schedule from Mastodon, Bluesky and X (loopback servers following
their documented formats, with paging), matched to Listen authors and their actor types."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from elshi.app import create_app
from elshi.db import Database
from elshi.listen.models import Author
from elshi.settings import Settings
from elshi.speak import flows, service
from elshi.speak.channels.base import ChannelContext
from elshi.speak.models import Engager, Publication
from tests.speak.platforms import PlatformServer, staff

KK = "Қазақстан елшілігі Берлинде мәдениет күндерін өткізеді"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


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


def _acc(handle: str, name: str = "") -> dict[str, str]:
    return {"handle": handle, "name": name or handle.split("@")[0].split(".")[0].title()}


def _published(
    db: Database, settings: Settings, platforms: PlatformServer, ctx: ChannelContext
) -> tuple[dict[str, Any], dict[str, Publication]]:
    team = staff(db)
    with db.session() as s:
        st = service.create_statement(
            db=s,
            actor=team["drafter"],
            mission_id=team["mission_id"],
            title="Culture days",
            lang="kk",
            text=KK,
        )
        service.submit(db=s, actor=team["drafter"], statement_id=st.id)
        team["statement_id"] = st.id
    with db.session() as s:
        service.decide(
            db=s, actor=team["approver"], statement_id=team["statement_id"], approve=True
        )
    ids = []
    with db.session() as s:
        for ch in ("mastodon", "bluesky", "x", "telegram"):
            config, secrets = platforms.account(ch)
            ids.append(
                service.add_account(
                    db=s,
                    actor=team["admin"],
                    settings=settings,
                    mission_id=team["mission_id"],
                    channel=ch,
                    name=ch.title(),
                    config=config,
                    secrets=secrets,
                ).id
            )
        service.schedule(
            db=s, actor=team["drafter"], statement_id=team["statement_id"], account_ids=ids
        )
    flows.publish_statement(db, actor=team["drafter"], statement_id=team["statement_id"], ctx=ctx)
    with db.session() as s:
        pubs = {
            p.channel: p for p in service.publications_of(db=s, statement_id=team["statement_id"])
        }
        s.expunge_all()
    assert {p.status for p in pubs.values()} == {"sent"}
    return team, pubs


def _authors(db: Database) -> None:
    """Listen's authors, with the actor types analysts gave them (one left untyped)."""
    with db.session() as s:
        for platform, handle, name, actor in (
            ("mastodon", "reporter@news.social", "Anna Reporter", "journalist"),
            ("mastodon", "RT_DE@state.example", "State TV", "state_media"),
            ("mastodon", "mfa@gov.social", "Ministry of Foreign Affairs", "diplomat"),
            ("mastodon", "aigerim@127.0.0.1", "Aigerim", "citizen"),
            ("mastodon", "bot123@spam.example", "Bot 123", "inauthentic"),
            ("mastodon", "someone@known.social", "Someone", None),
            ("bluesky", "mfa.gov.test", "MFA", "diplomat"),
            ("bluesky", "student.bsky.test", "Student", "citizen"),
            ("x", "StateNews", "State News", "state_media"),
        ):
            s.add(Author(platform=platform, handle=handle, name=name, actor_type=actor))


def test_engaging_accounts_are_collected_matched_and_shown_by_actor_type(
    db: Database, settings: Settings, platforms: PlatformServer, ctx: ChannelContext
) -> None:
    team, pubs = _published(db, settings, platforms, ctx)
    _authors(db)
    masto, bsky, x = pubs["mastodon"], pubs["bluesky"], pubs["x"]
    # Mastodon lists two accounts a page: five favourites take three pages (Link: next).
    platforms.engage(
        f"mastodon:{masto.external_id}",
        likes=[
            _acc("aigerim"),  # a local account: Listen knows it as aigerim@<instance host>
            _acc("reporter@news.social"),
            _acc("rt_de@state.example"),
            _acc("stranger@elsewhere.social"),
            _acc("someone@known.social"),
        ],
        reposts=[_acc("reporter@news.social"), _acc("mfa@gov.social")],
        replies=[_acc("bot123@spam.example")],
    )
    platforms.engage(
        f"bluesky:{bsky.external_id}",
        likes=[_acc("mfa.gov.test"), _acc("student.bsky.test"), _acc("nobody.bsky.test")],
        reposts=[_acc("mfa.gov.test")],
        replies=[_acc("handle.invalid")],  # no handle: Bluesky says handle.invalid; DID kept
    )
    platforms.engage(
        f"x:{x.external_id}",
        likes=[_acc("StateNews"), _acc("randomuser"), _acc("another")],
        reposts=[_acc("StateNews")],
    )

    assert flows.collect_reach(db, ctx) == 4
    assert flows.collect_reach(db, ctx) == 4  # a second round adds no account twice
    with db.session() as s:
        rows = s.scalars(select(Engager).order_by(Engager.id)).all()
        kept = {(e.platform, e.handle, e.kind) for e in rows}
        assert len(rows) == len(kept) == 8 + 5 + 4
    assert ("mastodon", "aigerim@127.0.0.1", "like") in kept
    assert ("mastodon", "rt_de@state.example", "like") in kept
    assert ("bluesky", "did:plc:r0", "reply") in kept
    assert ("x", "statenews", "repost") in kept
    # Paging was followed: the third page of Mastodon favourites was read.
    pages = [p for m, p, _ in platforms.requests if p.endswith("/favourited_by")]
    assert len(pages) == 2 * 3

    with db.session() as s:
        aud = service.audience(db=s, statement_id=team["statement_id"])
    assert aud.types[-1] == "unknown"
    assert aud.total == {
        "state_media": 2,  # rt_de on Mastodon (handle matched without case), StateNews on X
        "diplomat": 2,  # mfa on Mastodon and on Bluesky
        "journalist": 1,  # liked and reposted: one account
        "politician": 0,
        "citizen": 2,
        "inauthentic": 1,
        "unknown": 6,  # not in Listen (5, one known only by its DID), or without a type (1)
    }
    assert aud.accounts == 14
    assert aud.by_channel["mastodon"] == {
        "state_media": 1,
        "diplomat": 1,
        "journalist": 1,
        "politician": 0,
        "citizen": 1,
        "inauthentic": 1,
        "unknown": 2,
    }
    assert aud.by_channel["x"]["state_media"] == 1 and aud.by_channel["x"]["unknown"] == 2
    assert aud.by_kind["repost"]["diplomat"] == 2 and aud.by_kind["reply"]["inauthentic"] == 1
    assert "telegram" not in aud.by_channel  # the Bot API lists no one
    names = [n[0] for n in aud.named]
    assert "Aigerim" not in names and "Student" not in names  # citizens are only counted
    assert names[0] == "State News" or names[0] == "State TV"
    assert {n[3] for n in aud.named} == {"state_media", "diplomat", "journalist", "inauthentic"}

    # An analyst types an author later: the breakdown follows at once.
    with db.session() as s:
        a = s.scalar(select(Author).where(Author.handle == "someone@known.social"))
        assert a is not None
        a.actor_type = "journalist"
    with db.session() as s:
        assert service.audience(db=s, statement_id=team["statement_id"]).total["journalist"] == 2

    client = TestClient(create_app(settings, db=db), headers={"Accept-Language": "en"})
    r = client.get("/login")
    token = CSRF.search(r.text)
    assert token
    client.post(
        "/login",
        data={
            "email": "drafter@berlin.example",
            "password": "correct horse battery",
            "next": "/speak",
            "csrf_token": token[1],
        },
    )
    page = client.get(f"/speak/{team['statement_id']}/reach").text
    assert "14 accounts replied, reposted or liked" in page
    assert 'id="chart-audience"' in page and 'id="chart-audience-mastodon"' in page
    chart = page.split('id="chart-audience"', 1)[1].split("</svg>", 1)[0]
    # "unknown" is drawn apart (its own colour), after the typed accounts.
    assert chart.index(">suspected inauthentic<") < chart.index(">unknown<")
    assert 'fill="#b35c00"' in chart
    assert re.search(r'data-channel="mastodon">.*?data-type="unknown">1<', page, re.S)
    assert "Anna Reporter" in page and "Aigerim" not in page


def test_an_unreadable_list_of_engagers_leaves_the_counts_and_tries_again(
    db: Database, settings: Settings, platforms: PlatformServer, ctx: ChannelContext
) -> None:
    _, pubs = _published(db, settings, platforms, ctx)
    masto = pubs["mastodon"]
    platforms.engage(f"mastodon:{masto.external_id}", likes=[_acc("reporter@news.social")])
    platforms.set_metrics(f"mastodon:{masto.external_id}", reactions=1)
    platforms.broken.add("context")  # the instance answers 500 for the replies this round
    assert flows.collect_reach(db, ctx) == 4  # every snapshot is still taken
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Engager)) == 0
    platforms.broken.clear()
    assert flows.collect_reach(db, ctx) == 4
    with db.session() as s:
        assert s.scalars(select(Engager.handle)).all() == ["reporter@news.social"]


def test_the_api_gives_the_audience_by_actor_type(
    db: Database, settings: Settings, platforms: PlatformServer, ctx: ChannelContext
) -> None:
    team, pubs = _published(db, settings, platforms, ctx)
    _authors(db)
    platforms.engage(f"x:{pubs['x'].external_id}", likes=[_acc("StateNews"), _acc("randomuser")])
    flows.collect_reach(db, ctx)
    from elshi.accounts import service as accounts

    with db.session() as s:
        token = accounts.create_api_token(db=s, user_id=team["drafter_id"], name="t")[1]
    client = TestClient(create_app(settings, db=db))
    r = client.get(
        f"/api/statements/{team['statement_id']}/reach",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["audience"]["state_media"] == 1 and body["audience"]["unknown"] == 1
    assert body["audience_by_channel"] == {
        "x": {
            "state_media": 1,
            "diplomat": 0,
            "journalist": 0,
            "politician": 0,
            "citizen": 0,
            "inauthentic": 0,
            "unknown": 1,
        }
    }
