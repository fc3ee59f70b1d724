"""Images with a statement version: checked by content, stored privately, uploaded to each
channel in its documented way (once, even across retries), shown on the news page, in the
feeds and in the newsletter; bad images and a channel refusing one are explained."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import update

from elshi.app import create_app
from elshi.db import Database, utcnow
from elshi.settings import Settings
from elshi.speak import flows, media, service
from elshi.speak.channels.base import ChannelContext
from elshi.speak.models import Publication, Statement, StatementVersion
from tests.speak.platforms import Mailbox, PlatformServer, staff

SOCIAL = ("telegram", "mastodon", "bluesky", "x", "facebook")
KK = "Қазақстан елшілігі Берлинде мәдениет күндерін өткізеді 🇰🇿"
ALT = "Домбырашылар сахнада"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def jpeg(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "JPEG")
    return out.getvalue()


def noise_png(side: int) -> bytes:
    """A PNG that does not compress (random pixels): its size is about 3 * side**2 bytes."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG")
    return out.getvalue()


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


def _statement(
    db: Database, settings: Settings, team: dict[str, Any], images: list[tuple[bytes, str]]
) -> int:
    with db.session() as s:
        st = service.create_statement(
            db=s,
            actor=team["drafter"],
            mission_id=team["mission_id"],
            title="Culture days",
            lang="kk",
            text=KK,
            headline="Мәдениет күндері",
        )
        for data, name in images:
            service.add_image(
                db=s,
                actor=team["drafter"],
                settings=settings,
                statement_id=st.id,
                lang="kk",
                data=data,
                filename=name,
                alt=ALT,
            )
        service.submit(db=s, actor=team["drafter"], statement_id=st.id)
        sid = st.id
    with db.session() as s:
        service.decide(db=s, actor=team["approver"], statement_id=sid, approve=True)
    return sid


def _accounts(
    db: Database,
    settings: Settings,
    team: dict[str, Any],
    platforms: PlatformServer,
    channels: tuple[str, ...],
    mailbox: Mailbox | None = None,
) -> dict[str, int]:
    out = {}
    with db.session() as s:
        for ch in channels:
            if ch == "web":
                config, secrets = {}, {}
            elif ch == "email":
                assert mailbox is not None
                config, secrets = mailbox.config(), {}
            else:
                config, secrets = platforms.account(ch)
            out[ch] = service.add_account(
                db=s,
                actor=team["admin"],
                settings=settings,
                mission_id=team["mission_id"],
                channel=ch,
                name=ch.title(),
                config=config,
                secrets=secrets,
            ).id
    return out


def _schedule(db: Database, team: dict[str, Any], sid: int, accounts: dict[str, int]) -> dict:
    with db.session() as s:
        pubs = service.schedule(
            db=s, actor=team["drafter"], statement_id=sid, account_ids=list(accounts.values())
        )
        return {p.channel: p.id for p in pubs}


def _pub(db: Database, pid: int) -> Publication:
    with db.session() as s:
        pub = s.get(Publication, pid)
        assert pub is not None
        s.expunge(pub)
        return pub


def _version_media(db: Database, sid: int) -> list[dict[str, Any]]:
    with db.session() as s:
        return list(service.versions_of(db=s, statement_id=sid)["kk"].media)


def test_images_reach_every_channel_in_its_documented_shape(
    db: Database,
    settings: Settings,
    platforms: PlatformServer,
    mailbox: Mailbox,
    ctx: ChannelContext,
) -> None:
    team = staff(db)
    red, blue = jpeg(64, 48, (200, 30, 30)), jpeg(40, 40, (30, 30, 200))
    sid = _statement(db, settings, team, [(red, "stage.jpg"), (blue, "hall.jpg")])
    stored = _version_media(db, sid)
    assert [m["alt"] for m in stored] == [ALT, ALT]
    assert [(m["width"], m["height"]) for m in stored] == [(64, 48), (40, 40)]
    # Stored privately, re-encoded: the bytes on disk are the ones the digest covers.
    for m in stored:
        path = media.root(settings) / m["key"][:2] / m["key"]
        assert path.stat().st_mode & 0o777 == 0o600
    with db.session() as s:
        service.subscribe(
            db=s, mission_id=team["mission_id"], email="reader@example.org", lang="kk"
        )
        from elshi.speak.models import Subscriber

        s.execute(update(Subscriber).values(confirmed_at=utcnow()))
    accounts = _accounts(db, settings, team, platforms, (*SOCIAL, "web", "email"), mailbox)
    ids = _schedule(db, team, sid, accounts)
    result = flows.publish_statement(db, actor=team["drafter"], statement_id=sid, ctx=ctx)
    assert set(result.values()) == {"sent"}, {ch: _pub(db, pid).error for ch, pid in ids.items()}

    # Telegram: an album by sendMediaGroup (multipart, attach://), the text as its caption.
    tg = platforms.live("telegram")
    assert len(tg) == 2 and all("photo" in p for p in tg)
    assert tg[0]["caption"] == KK and tg[1]["caption"] is None
    assert [u["dimensions"] for u in platforms.uploads["telegram"]] == [(64, 48), (40, 40)]
    assert _pub(db, ids["telegram"]).external_id == tg[0]["id"]

    # Mastodon: POST /api/v2/media with the alt text as description, then media_ids[].
    up = platforms.uploads["mastodon"]
    assert [u["fields"]["description"] for u in up] == [ALT, ALT]
    (status,) = platforms.live("mastodon")
    assert status["media_ids"] == [u["id"] for u in up]

    # Bluesky: uploadBlob (raw bytes, typed), then an app.bsky.embed.images embed.
    (post,) = platforms.live("bluesky")
    assert [u["content_type"] for u in platforms.uploads["bluesky"]] == ["image/jpeg"] * 2
    embed = post["embed"]
    assert embed["$type"] == "app.bsky.embed.images"
    assert [i["alt"] for i in embed["images"]] == [ALT, ALT]
    assert [i["image"]["ref"]["$link"] for i in embed["images"]] == [
        u["id"] for u in platforms.uploads["bluesky"]
    ]
    assert embed["images"][0]["aspectRatio"] == {"width": 64, "height": 48}

    # X: media upload (tweet_image) and its alt text, then media.media_ids on the post.
    xu = platforms.uploads["x"]
    assert [u["fields"]["media_category"] for u in xu] == ["tweet_image"] * 2
    assert [u["fields"]["alt_text"] for u in xu] == [ALT, ALT]
    assert platforms.live("x")[0]["media_ids"] == [u["id"] for u in xu]

    # Facebook: /{page-id}/photos unpublished, then attached to the feed post.
    fu = platforms.uploads["facebook"]
    assert [u["fields"]["published"] for u in fu] == ["false", "false"]
    assert [u["fields"]["alt_text_custom"] for u in fu] == [ALT, ALT]
    assert platforms.live("facebook")[0]["photos"] == [u["id"] for u in fu]

    # The news page, its feeds and the newsletter show the images elshi serves.
    client = TestClient(create_app(settings, db=db))
    page = client.get("/news/berlin/kk").text
    key = stored[0]["key"]
    assert f'<img src="/news-media/{key}" alt="{ALT}" width="64" height="48"' in page
    served = client.get(f"/news-media/{key}")
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert served.content == media.read(settings, key)
    assert served.headers["x-content-type-options"] == "nosniff"
    rss = client.get("/news/berlin/kk/rss.xml").text
    assert f'<enclosure url="{settings.base_url}/news-media/{key}"' in rss
    assert f'length="{stored[0]["size"]}" type="image/jpeg"' in rss
    feed = json.loads(client.get("/news/berlin/kk/feed.json").text)
    assert feed["items"][0]["image"] == f"{settings.base_url}/news-media/{key}"
    (letter,) = mailbox.to("reader@example.org")
    assert isinstance(letter, EmailMessage)
    html = letter.get_body(("html",))
    assert html is not None
    assert f'src="{settings.base_url}/news-media/{key}" alt="{ALT}"' in html.get_content()
    plain = letter.get_body(("plain",))
    assert plain is not None and f"/news-media/{key}" in plain.get_content()


def test_unpublished_images_are_not_public_and_staff_see_only_their_missions(
    db: Database, settings: Settings
) -> None:
    team = staff(db)
    other = staff(db, "paris")
    with db.session() as s:
        st = service.create_statement(
            db=s,
            actor=team["drafter"],
            mission_id=team["mission_id"],
            title="Draft",
            lang="kk",
            text=KK,
        )
        item = service.add_image(
            db=s,
            actor=team["drafter"],
            settings=settings,
            statement_id=st.id,
            lang="kk",
            data=jpeg(),
            filename="x.jpg",
            alt=ALT,
        )
    client = TestClient(create_app(settings, db=db))
    assert client.get(f"/news-media/{item['key']}").status_code == 404
    assert client.get("/news-media/../../etc/passwd").status_code == 404
    with db.session() as s:
        assert service.image_for_staff(db=s, actor=team["drafter"], key=item["key"]) is not None
        assert service.image_for_staff(db=s, actor=other["drafter"], key=item["key"]) is None


def test_retries_and_a_crash_never_upload_or_post_twice(
    db: Database, settings: Settings, platforms: PlatformServer, ctx: ChannelContext
) -> None:
    team = staff(db)
    long_text = KK + " " + "Мәдениет " * 150  # over Telegram's 1,024-character caption
    with db.session() as s:
        st = service.create_statement(
            db=s,
            actor=team["drafter"],
            mission_id=team["mission_id"],
            title="Culture days",
            lang="kk",
            text=long_text,
        )
        service.save_version(
            db=s,
            actor=team["drafter"],
            statement_id=st.id,
            lang="kk",
            text=long_text,
            variants={"x": KK, "bluesky": KK, "mastodon": KK},
        )
        service.add_image(
            db=s,
            actor=team["drafter"],
            settings=settings,
            statement_id=st.id,
            lang="kk",
            data=jpeg(),
            filename="stage.jpg",
            alt=ALT,
        )
        service.submit(db=s, actor=team["drafter"], statement_id=st.id)
        sid = st.id
    with db.session() as s:
        service.decide(db=s, actor=team["approver"], statement_id=sid, approve=True)
    accounts = _accounts(db, settings, team, platforms, SOCIAL)
    ids = _schedule(db, team, sid, accounts)
    for ch in SOCIAL:
        platforms.fail(ch, "500")  # the image goes up, then the post itself fails
    flows.publish_statement(db, actor=team["drafter"], statement_id=sid, ctx=ctx)
    for ch in SOCIAL:
        pub = _pub(db, ids[ch])
        assert pub.status == "pending" and pub.error_kind == "server_error", ch
        assert len(platforms.uploads[ch]) == 1, ch
        assert platforms.live(ch) == [] or ch == "telegram", ch
    # Telegram sent the photo, then the long text failed: the photo is remembered.
    assert _pub(db, ids["telegram"]).extra["photo_message_ids"]

    # Mastodon's worker "crashes" after the retry is claimed: the row is left in sending.
    with db.session() as s:
        s.execute(
            update(Publication)
            .where(Publication.id == ids["mastodon"])
            .values(status="sending", claimed_at=utcnow() - timedelta(hours=1))
        )
        s.execute(
            update(Publication)
            .where(Publication.id != ids["mastodon"])
            .values(retry_at=utcnow() - timedelta(seconds=1))
        )
    assert flows.reconcile(db, ids["mastodon"], ctx) == "sent"
    for ch in ("telegram", "bluesky", "x", "facebook"):
        assert flows.send_publication(db, ids[ch], ctx) == "sent", _pub(db, ids[ch]).error
    for ch in SOCIAL:
        assert len(platforms.uploads[ch]) == 1, ch
    assert len(platforms.live("mastodon")) == 1
    assert platforms.live("mastodon")[0]["media_ids"] == [platforms.uploads["mastodon"][0]["id"]]
    assert len(platforms.live("bluesky")) == 1 and len(platforms.live("x")) == 1
    assert platforms.live("facebook")[0]["photos"] == [platforms.uploads["facebook"][0]["id"]]
    tg = platforms.live("telegram")
    assert [("photo" in p, p["text"]) for p in tg] == [(True, ""), (False, long_text.strip())]
    # Running the whole statement again sends nothing more.
    flows.publish_statement(db, actor=team["drafter"], statement_id=sid, ctx=ctx)
    assert sum(len(platforms.posts[ch]) for ch in SOCIAL) == 6

    # Editing the Mastodon status keeps its picture (an edit without media_ids drops it).
    flows.edit_publication(db, actor=team["drafter"], publication_id=ids["mastodon"], ctx=ctx)
    assert platforms.live("mastodon")[0]["media_ids"] == [platforms.uploads["mastodon"][0]["id"]]
    # Deleting the Telegram post takes down its text and the picture sent before it.
    flows.delete_publication(db, actor=team["drafter"], publication_id=ids["telegram"], ctx=ctx)
    assert platforms.live("telegram") == []


def test_a_channel_refusing_the_image_is_explained_and_the_others_publish(
    db: Database, settings: Settings, platforms: PlatformServer, ctx: ChannelContext
) -> None:
    team = staff(db)
    big = noise_png(620)  # about 1.15 MB: under elshi's 5 MB, over Bluesky's 1 MB
    assert 1_000_000 < len(big) < 5_000_000
    sid = _statement(db, settings, team, [(big, "crowd.png")])
    accounts = _accounts(db, settings, team, platforms, SOCIAL)
    ids = _schedule(db, team, sid, accounts)
    platforms.fail("mastodon", "media")
    result = flows.publish_statement(db, actor=team["drafter"], statement_id=sid, ctx=ctx)
    assert result[ids["mastodon"]] == "failed"
    assert result[ids["bluesky"]] == "failed"
    for ch in ("telegram", "x", "facebook"):
        assert result[ids[ch]] == "sent", ch
        assert len(platforms.live(ch)) >= 1
    masto = _pub(db, ids["mastodon"])
    assert masto.error_kind == "media_rejected"
    assert masto.error == (
        "Mastodon refused the image crowd.png: Mastodon: Validation failed: "
        "File content type is invalid"
    )
    bsky = _pub(db, ids["bluesky"])
    assert bsky.error_kind == "media_rejected"
    size = _version_media(db, sid)[0]["size"]
    assert f"Bluesky takes images up to 1 MB; crowd.png has {size / 1e6:.1f} MB" in (
        bsky.error or ""
    )
    assert platforms.uploads["bluesky"] == [] and platforms.live("bluesky") == []
    assert platforms.live("mastodon") == []
    # The editor says what to do about it.
    client = TestClient(create_app(settings, db=db), headers={"Accept-Language": "en"})
    _sign_in(client, "drafter@berlin.example")
    page = client.get(f"/speak/{sid}").text
    assert "refused an image of this version" in page


def _sign_in(client: TestClient, email: str) -> None:
    token = CSRF.search(client.get("/login").text)
    assert token
    r = client.post(
        "/login",
        data={
            "email": email,
            "password": "correct horse battery",
            "next": "/speak",
            "csrf_token": token[1],
        },
        follow_redirects=False,
    )
    assert r.status_code == 303


def test_bad_images_are_refused_with_what_and_where_and_nothing_changes(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = staff(db)
    monkeypatch.setattr(settings, "speak_media_max_mb", 0.05)
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
        sid = st.id
    client = TestClient(create_app(settings, db=db), headers={"Accept-Language": "en"})
    _sign_in(client, "drafter@berlin.example")

    def upload(data: bytes, name: str, alt: str) -> Any:
        token = CSRF.search(client.get(f"/speak/{sid}").text)
        assert token
        return client.post(
            f"/speak/{sid}/versions/kk/images",
            data={"csrf_token": token[1], "alt": alt},
            files={"image": (name, data, "image/png")},
            follow_redirects=False,
        )

    big = noise_png(200)  # about 120 KB, over the 50 KB set here
    r = upload(big, "poster.png", ALT)
    assert r.status_code == 400
    assert f"Image poster.png: it has {len(big) / 1e6:.1f} MB; the most is 0.05 MB." in r.text
    r = upload(b"%PDF-1.4 not a picture at all", "leaflet.png", ALT)
    assert r.status_code == 400
    assert "Image leaflet.png: the file is not a JPEG, PNG or WebP image" in r.text
    r = upload(jpeg()[:200], "cut.jpg", ALT)
    assert r.status_code == 400
    assert "Image cut.jpg: the picture could not be read; it may be damaged." in r.text
    r = upload(jpeg(), "stage.jpg", "   ")
    assert r.status_code == 400
    assert "Image stage.jpg: describe the picture in a few words (alt text)" in r.text
    # Nothing stored, nothing changed: still submitted, same revision, no media.
    with db.session() as s:
        st_row = s.get(Statement, sid)
        assert st_row is not None and st_row.status == "submitted" and st_row.revision == 1
        v = s.query(StatementVersion).filter_by(statement_id=sid).one()
        assert v.media == []
    assert not media.root(settings).exists() or not any(media.root(settings).rglob("*"))
    # A good image is taken, and sends the statement back to draft for a new approval.
    r = upload(jpeg(), "stage.jpg", ALT)
    assert r.status_code == 303
    with db.session() as s:
        st_row = s.get(Statement, sid)
        assert st_row is not None and st_row.status == "draft"
    page = client.get(f"/speak/{sid}").text
    (item,) = _version_media(db, sid)
    assert f'<img src="/speak/media/{item["key"]}" alt="{ALT}"' in page
    assert client.get(f"/speak/media/{item['key']}").content == media.read(settings, item["key"])
    # Saving the text with links keeps the uploaded image; removing it deletes its file.
    with db.session() as s:
        service.save_version(
            db=s,
            actor=team["drafter"],
            statement_id=sid,
            lang="kk",
            text=KK,
            media=[{"url": "https://example.org/video"}],
        )
    assert [bool(m.get("key")) for m in _version_media(db, sid)] == [True, False]
    token = CSRF.search(page)
    assert token
    r = client.post(
        f"/speak/{sid}/versions/kk/images/{item['key']}/remove",
        data={"csrf_token": token[1]},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert [m["url"] for m in _version_media(db, sid)] == ["https://example.org/video"]
    with pytest.raises(FileNotFoundError):
        media.read(settings, item["key"])


def test_a_worker_crashing_after_the_post_posts_and_uploads_nothing_twice(
    db: Database, settings: Settings, platforms: PlatformServer, ctx: ChannelContext
) -> None:
    """The platform has the pictures and the post, but the worker died before recording it."""
    from elshi.plugins import get_channel
    from elshi.speak.flows import _headline, _load, _outgoing, _plugin, _save_extra

    team = staff(db)
    sid = _statement(db, settings, team, [(jpeg(), "stage.jpg")])
    channels = ("mastodon", "bluesky", "x", "facebook")
    ids = _schedule(db, team, sid, _accounts(db, settings, team, platforms, channels))
    for ch, pid in ids.items():
        assert flows._claim(db, pid)
        pub, account, st = _load(db, pid)  # type: ignore[misc]
        plugin, config, secrets = _plugin(account, ctx)
        post = _outgoing(pub, st, "")
        post.images = media.images_of(settings, _headline(db, pub)[1])
        post.saver = lambda facts, pid=pid: _save_extra(db, pid, facts)
        post.remember(**plugin.prepare(post))
        with db.session() as s:
            s.execute(
                update(Publication)
                .where(Publication.id == pid)
                .values(claimed_at=utcnow() - timedelta(hours=1))  # the worker is gone
            )
        get_channel(ch).publish(ctx, config, secrets, post)  # ...and then it crashed
    result = flows.publish_due(db, ctx)
    assert sorted(result["reconciled"]) == sorted(ids.values())
    for ch, pid in ids.items():
        assert _pub(db, pid).status == "sent", ch
        assert len(platforms.posts[ch]) == 1, f"{ch} was posted twice"
        assert len(platforms.uploads[ch]) == 1, f"{ch} uploaded the picture twice"
