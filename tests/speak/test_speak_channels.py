"""Channels against loopback servers that follow each platform's documented formats."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from elshi.db import Database, utcnow
from elshi.settings import Settings
from elshi.speak import flows, service
from elshi.speak.channels.base import ChannelContext
from elshi.speak.models import Publication
from elshi.web import i18n
from tests.speak.platforms import Mailbox, PlatformServer, staff

SOCIAL = ("telegram", "mastodon", "bluesky", "x", "facebook")
TEXT = {
    "kk": "Қазақстан елшілігі Берлинде мәдениет күндерін өткізеді 🇰🇿",
    "ru": "Посольство Казахстана проводит в Берлине дни культуры 🇰🇿",
    "en": "The Embassy of Kazakhstan holds culture days in Berlin 🇰🇿",
}


@pytest.fixture
def platforms() -> Iterator[PlatformServer]:
    server = PlatformServer().start()
    yield server
    server.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox().start()
    yield box
    box.stop()


@pytest.fixture
def ctx(settings: Settings, db: Database) -> Iterator[ChannelContext]:
    c = ChannelContext(settings=settings, db=db)
    yield c
    c.close()


def _setup(
    db: Database,
    settings: Settings,
    platforms: PlatformServer,
    texts: dict[str, str] = TEXT,
    channels: tuple[str, ...] = SOCIAL,
) -> dict[str, Any]:
    team = staff(db)
    with db.session() as s:
        st = service.create_statement(
            db=s,
            actor=team["drafter"],
            mission_id=team["mission_id"],
            title="Culture days",
            lang="kk",
            text=texts["kk"],
            headline="Мәдениет күндері",
        )
        for lang in [lang for lang in texts if lang != "kk"]:
            service.draft_translation(
                db=s, actor=team["drafter"], statement_id=st.id, source_lang="kk", target_lang=lang
            )
            service.save_version(
                db=s, actor=team["drafter"], statement_id=st.id, lang=lang, text=texts[lang]
            )
            service.mark_reviewed(db=s, actor=team["drafter"], statement_id=st.id, lang=lang)
        service.submit(db=s, actor=team["drafter"], statement_id=st.id)
        team["statement_id"] = st.id
    with db.session() as s:
        service.decide(
            db=s, actor=team["approver"], statement_id=team["statement_id"], approve=True
        )
    accounts = {}
    with db.session() as s:
        for ch in channels:
            config, secrets = platforms.account(ch)
            config["languages"] = ["kk"] if ch != "bluesky" else ["ru"]
            accounts[ch] = service.add_account(
                db=s,
                actor=team["admin"],
                settings=settings,
                mission_id=team["mission_id"],
                channel=ch,
                name=ch.title(),
                config=config,
                secrets=secrets,
            ).id
    team["accounts"] = accounts
    return team


def _schedule_now(db: Database, team: dict[str, Any], *names: str) -> dict[str, int]:
    with db.session() as s:
        pubs = service.schedule(
            db=s,
            actor=team["drafter"],
            statement_id=team["statement_id"],
            account_ids=[team["accounts"][n] for n in names or team["accounts"]],
        )
        return {p.channel: p.id for p in pubs}


def _pub(db: Database, pid: int) -> Publication:
    with db.session() as s:
        pub = s.get(Publication, pid)
        assert pub is not None
        s.expunge(pub)
        return pub


def test_publish_to_every_platform_then_collect_engagement(
    db: Database, settings: Settings, platforms: PlatformServer, ctx: ChannelContext
) -> None:
    team = _setup(db, settings, platforms)
    ids = _schedule_now(db, team)
    result = flows.publish_statement(
        db, actor=team["drafter"], statement_id=team["statement_id"], ctx=ctx
    )
    assert sorted(result.values()) == ["sent"] * 5
    for ch in SOCIAL:
        assert len(platforms.live(ch)) == 1, ch
    assert platforms.live("telegram")[0]["text"] == TEXT["kk"]
    assert platforms.live("bluesky")[0]["text"] == TEXT["ru"]
    assert platforms.live("bluesky")[0]["langs"] == ["ru"]
    assert (
        platforms.live("mastodon")[0]["idempotency_key"]
        == _pub(db, ids["mastodon"]).idempotency_key
    )
    tg = _pub(db, ids["telegram"])
    assert tg.url and tg.url.endswith(f"/kzembassy_test/{tg.external_id}")
    assert (
        _pub(db, ids["x"]).url
        == f"https://x.com/KazEmbassyTest/status/{_pub(db, ids['x']).external_id}"
    )

    platforms.set_metrics(f"telegram:{tg.external_id}", views=1500)
    platforms.set_metrics(
        f"mastodon:{_pub(db, ids['mastodon']).external_id}", reactions=12, reposts=4, replies=2
    )
    platforms.set_metrics(
        f"bluesky:{_pub(db, ids['bluesky']).external_id}", reactions=30, reposts=5, replies=1
    )
    platforms.set_metrics(
        f"x:{_pub(db, ids['x']).external_id}", views=900, reactions=20, reposts=3, replies=6
    )
    platforms.set_metrics(
        f"facebook:{_pub(db, ids['facebook']).external_id}",
        views=700,
        reactions=40,
        reposts=7,
        replies=9,
    )
    assert flows.collect_reach(db, ctx) == 5
    with db.session() as s:
        r = service.reach(db=s, statement_id=team["statement_id"])
    assert r.total == {"views": 3100, "reactions": 102, "reposts": 19, "replies": 18}
    assert r.by_lang["ru"] == {"views": 0, "reactions": 30, "reposts": 5, "replies": 1}
    assert r.by_channel["telegram"]["views"] == 1500
    assert r.by_channel["x"] == {"views": 900, "reactions": 20, "reposts": 3, "replies": 6}


def test_errors_are_explained_and_the_other_channels_still_publish(
    db: Database, settings: Settings, platforms: PlatformServer, ctx: ChannelContext
) -> None:
    long_ru = "Посольство Казахстана сообщает: " + "дни культуры " * 30
    team = _setup(db, settings, platforms, texts={**TEXT, "ru": long_ru.strip()})
    platforms.fail("telegram", "expired")
    platforms.fail("mastodon", "429")
    platforms.fail("x", "500")
    ids = _schedule_now(db, team)
    # Over Bluesky's 300 graphemes: refused before any call, with the numbers.
    bsky = _pub(db, ids["bluesky"])
    assert bsky.status == "failed" and bsky.error_kind == "too_long"
    assert bsky.error_detail == {"length": len(long_ru.strip()), "limit": 300}
    flows.publish_statement(db, actor=team["drafter"], statement_id=team["statement_id"], ctx=ctx)
    tg, md, x, fb = (_pub(db, ids[c]) for c in ("telegram", "mastodon", "x", "facebook"))
    assert tg.status == "failed" and tg.error_kind == "expired_token"
    assert "Unauthorized" in (tg.error or "")
    assert md.status == "pending" and md.error_kind == "rate_limited"
    assert md.retry_at is not None and timedelta(seconds=250) < md.retry_at - utcnow()
    assert x.status == "pending" and x.error_kind == "server_error" and x.retry_at
    assert fb.status == "sent" and len(platforms.live("facebook")) == 1
    assert platforms.live("telegram") == [] and platforms.live("bluesky") == []
    # A person renews the token and retries; the worker retries the 500 by itself.
    with db.session() as s:
        s.execute(
            update(Publication)
            .values(retry_at=utcnow() - timedelta(seconds=1))
            .where(Publication.id.in_([md.id, x.id]))
        )
    flows.retry_publication(db, actor=team["drafter"], publication_id=tg.id)
    due = flows.publish_due(db, ctx)["due"]
    assert sorted(due) == sorted([tg.id, md.id, x.id])
    for pid in due:
        assert flows.send_publication(db, pid, ctx) == "sent"
    assert [len(platforms.live(c)) for c in ("telegram", "mastodon", "x", "facebook")] == [1] * 4


def test_x_rate_limit_reads_the_reset_header_and_facebook_expired_token(
    db: Database, settings: Settings, platforms: PlatformServer, ctx: ChannelContext
) -> None:
    team = _setup(db, settings, platforms, channels=("x", "facebook"))
    platforms.fail("x", "429")
    platforms.fail("facebook", "expired")
    ids = _schedule_now(db, team)
    flows.publish_statement(db, actor=team["drafter"], statement_id=team["statement_id"], ctx=ctx)
    x, fb = _pub(db, ids["x"]), _pub(db, ids["facebook"])
    assert x.error_kind == "rate_limited" and x.retry_at is not None
    assert timedelta(seconds=800) < x.retry_at - utcnow() <= timedelta(seconds=901)
    assert fb.status == "failed" and fb.error_kind == "expired_token"
    assert "Session has expired" in (fb.error or "")


def test_a_crash_mid_send_never_posts_twice(
    db: Database, settings: Settings, platforms: PlatformServer, ctx: ChannelContext
) -> None:
    """The platform got the post but the worker died before recording it."""
    team = _setup(db, settings, platforms)
    ids = _schedule_now(db, team)
    from elshi.plugins import get_channel
    from elshi.speak.flows import _load, _outgoing, _plugin

    for ch, pid in ids.items():
        assert flows._claim(db, pid)
        pub, account, st = _load(db, pid)  # type: ignore[misc]
        plugin, config, secrets = _plugin(account, ctx)
        post = _outgoing(pub, st, "")
        prepared = plugin.prepare(post)
        with db.session() as s:
            row = s.get(Publication, pid)
            assert row is not None
            row.extra = {**row.extra, **prepared}
            row.claimed_at = utcnow() - timedelta(hours=1)  # the worker is gone
        post.extra.update(prepared)
        get_channel(ch).publish(ctx, config, secrets, post)  # ...and then it crashed
    assert all(len(platforms.posts[c]) == 1 for c in SOCIAL)
    result = flows.publish_due(db, ctx)
    assert sorted(result["reconciled"]) == sorted(ids.values())
    for ch in SOCIAL:
        assert len(platforms.posts[ch]) == 1, f"{ch} was posted twice"
    # Each found its post (Telegram on the public channel's web preview), with its id.
    for ch, pid in ids.items():
        pub = _pub(db, pid)
        assert pub.status == "sent", ch
        stored = platforms.posts[ch][0]
        assert pub.external_id == stored.get("id", stored.get("uri")), ch


def test_edit_and_delete_where_the_platform_allows(
    db: Database, settings: Settings, platforms: PlatformServer, ctx: ChannelContext
) -> None:
    team = _setup(db, settings, platforms)
    ids = _schedule_now(db, team)
    flows.publish_statement(db, actor=team["drafter"], statement_id=team["statement_id"], ctx=ctx)
    # a corrected kk text, approved again, then edited in place where possible
    with db.session() as s:
        service.save_version(
            db=s,
            actor=team["drafter"],
            statement_id=team["statement_id"],
            lang="kk",
            text=TEXT["kk"] + " (5–7 желтоқсан)",
        )
        service.submit(db=s, actor=team["drafter"], statement_id=team["statement_id"])
    with db.session() as s:
        service.decide(
            db=s, actor=team["approver"], statement_id=team["statement_id"], approve=True
        )
    for ch in ("telegram", "mastodon", "facebook"):
        flows.edit_publication(db, actor=team["drafter"], publication_id=ids[ch], ctx=ctx)
        assert "желтоқсан" in str(
            platforms.live(ch)[0].get("text") or platforms.live(ch)[0].get("message")
        )
    with pytest.raises(service.SpeakError, match="does not allow editing"):
        flows.edit_publication(db, actor=team["drafter"], publication_id=ids["x"], ctx=ctx)
    for ch in SOCIAL:
        flows.delete_publication(db, actor=team["drafter"], publication_id=ids[ch], ctx=ctx)
        assert platforms.live(ch) == [], ch
        assert _pub(db, ids[ch]).status == "deleted"


def test_bluesky_signs_in_again_when_its_session_expires(
    db: Database, settings: Settings, platforms: PlatformServer, ctx: ChannelContext
) -> None:
    team = _setup(db, settings, platforms, channels=("bluesky",))
    ids = _schedule_now(db, team)
    platforms.sessions.clear()  # every access token the server issued is now expired
    flows.publish_statement(db, actor=team["drafter"], statement_id=team["statement_id"], ctx=ctx)
    assert _pub(db, ids["bluesky"]).status == "sent"
    creates = [r for r in platforms.requests if r[1].endswith("createSession")]
    assert creates, "signed in"


def test_newsletter_double_opt_in_and_delivery_once_per_subscriber(
    db: Database,
    settings: Settings,
    platforms: PlatformServer,
    mailbox: Mailbox,
    ctx: ChannelContext,
) -> None:
    team = _setup(db, settings, platforms, channels=())
    with db.session() as s:
        acc = service.add_account(
            db=s,
            actor=team["admin"],
            settings=settings,
            mission_id=team["mission_id"],
            channel="email",
            name="Newsletter",
            config=mailbox.config(),
            secrets={},
        ).id
    for email, lang in (
        ("aigerim@example.kz", "kk"),
        ("ivan@example.ru", "ru"),
        ("late@example.org", "kk"),
    ):
        assert flows.request_subscription(
            db, mission_slug="berlin", email=email, lang=lang, ctx=ctx
        )
    with pytest.raises(service.SpeakError, match="not an e-mail"):
        flows.request_subscription(db, mission_slug="berlin", email="nope", lang="kk", ctx=ctx)
    confirm = mailbox.to("aigerim@example.kz")[0]
    assert (
        confirm["Subject"]
        == i18n.gettext("kk", "Confirm your subscription") + ": Embassy in Berlin"
    )
    token = re.search(r"/news-confirm/(\S+)", confirm.get_content())[1]  # type: ignore[index]
    ivan = re.search(r"/news-confirm/(\S+)", mailbox.to("ivan@example.ru")[0].get_content())
    with db.session() as s:
        assert service.confirm_subscription(db=s, token=token) is not None
        assert service.confirm_subscription(db=s, token=ivan[1]) is not None  # type: ignore[index]
        assert service.confirm_subscription(db=s, token="forged") is None
    ids = _schedule_now(db, {**team, "accounts": {"email": acc}})
    mailbox.messages.clear()
    flows.publish_statement(db, actor=team["drafter"], statement_id=team["statement_id"], ctx=ctx)
    assert _pub(db, ids["email"]).status == "sent"
    kk_mail = mailbox.to("aigerim@example.kz")
    assert len(kk_mail) == 1 and TEXT["kk"] in kk_mail[0].get_content()
    assert kk_mail[0]["Subject"] == "Мәдениет күндері"
    assert len(mailbox.to("ivan@example.ru")) == 1
    assert TEXT["ru"] in mailbox.to("ivan@example.ru")[0].get_content()
    assert mailbox.to("late@example.org") == []  # never confirmed
    # a retry (e.g. after a crash) reaches nobody twice
    with db.session() as s:
        s.execute(
            update(Publication)
            .where(Publication.id == ids["email"])
            .values(status="sending", claimed_at=utcnow() - timedelta(hours=1))
        )
    flows.publish_due(db, ctx)
    assert len(mailbox.to("aigerim@example.kz")) == 1
    unsub = re.search(r"/news-unsubscribe/(\S+)", kk_mail[0].get_content())[1]  # type: ignore[index]
    with db.session() as s:
        assert service.unsubscribe(db=s, settings=settings, token=unsub) is not None
        assert service.unsubscribe(db=s, settings=settings, token=unsub + "x") is None


def test_newsletter_goes_on_past_a_refused_address_and_keeps_no_address_in_errors(
    db: Database,
    settings: Settings,
    platforms: PlatformServer,
    mailbox: Mailbox,
    ctx: ChannelContext,
) -> None:
    from elshi.speak.models import Delivery, Subscriber

    team = _setup(db, settings, platforms, channels=())
    with db.session() as s:
        acc = service.add_account(
            db=s,
            actor=team["admin"],
            settings=settings,
            mission_id=team["mission_id"],
            channel="email",
            name="Newsletter",
            config=mailbox.config(),
            secrets={},
        ).id
        for email in ("gone@example.kz", "dana@example.kz"):
            sub, _ = service.subscribe(db=s, mission_id=team["mission_id"], email=email, lang="kk")
            sub.confirmed_at = utcnow()
    mailbox.refuse.add("gone@example.kz")
    ids = _schedule_now(db, {**team, "accounts": {"email": acc}})
    flows.publish_statement(db, actor=team["drafter"], statement_id=team["statement_id"], ctx=ctx)
    assert _pub(db, ids["email"]).status == "sent"
    assert len(mailbox.to("dana@example.kz")) == 1 and mailbox.to("gone@example.kz") == []
    with db.session() as s:
        rows = {
            email: status
            for email, status in s.execute(
                select(Subscriber.email, Delivery.status).join(
                    Delivery, Delivery.subscriber_id == Subscriber.id
                )
            )
        }
    assert rows == {"gone@example.kz": "refused", "dana@example.kz": "sent"}
    # the SMTP server's answer names the address: masked before it is stored or shown
    from elshi.speak.channels.base import ChannelError
    from elshi.speak.channels.email import EmailConfig, EmailSecrets, send_mail

    with pytest.raises(ChannelError) as caught:
        send_mail(
            EmailConfig.model_validate(mailbox.config()),
            EmailSecrets(),
            to="gone@example.kz",
            subject="s",
            body="b",
        )
    assert "gone@example.kz" not in caught.value.message
