"""Speak pages: editor with counters, approval by another person, errors with what to do,
the public news page with RSS, Atom and JSON Feed, newsletter sign-up, CSRF."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from elshi.app import create_app
from elshi.db import Database
from elshi.settings import Settings
from elshi.speak import flows, service
from elshi.speak.channels.base import ChannelContext
from elshi.speak.models import Publication
from elshi.web import i18n
from tests.speak.platforms import Mailbox, PlatformServer, add_accounts, staff

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
KK = "Қазақстан елшілігі Берлинде мәдениет күндерін өткізеді."


@pytest.fixture
def team(db: Database, settings: Settings, platforms: PlatformServer) -> dict[str, Any]:
    team = staff(db)
    configs = {ch: platforms.account(ch) for ch in ("telegram", "x", "bluesky")}
    add_accounts(db, team, settings, {**configs, "web": ({}, {})})
    return team


def _client(settings: Settings, db: Database) -> TestClient:
    return TestClient(create_app(settings, db=db))


def _token(client: TestClient, path: str) -> str:
    match = CSRF.search(client.get(path).text)
    assert match
    return match[1]


def _sign_in(client: TestClient, email: str) -> None:
    r = client.post(
        "/login",
        data={
            "email": email,
            "password": "correct horse battery",
            "next": "/speak",
            "csrf_token": _token(client, "/login"),
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:300]


def test_statement_from_draft_to_publication_with_errors_explained(
    settings: Settings, db: Database, team: dict[str, Any], platforms: PlatformServer
) -> None:
    drafter, approver = _client(settings, db), _client(settings, db)
    with drafter, approver:
        _sign_in(drafter, "drafter@berlin.example")
        _sign_in(approver, "approver@berlin.example")
        form = {
            "mission_id": str(team["mission_id"]),
            "title": "Culture days",
            "lang": "kk",
            "text": KK,
            "headline": "Мәдениет күндері",
        }
        # no CSRF token: refused, and the typed text is kept in the form
        r = drafter.post("/speak/new", data=form, follow_redirects=False)
        assert r.status_code == 400 and KK in r.text
        assert i18n.gettext("kk", "The form has expired. Please try again.") in r.text
        r = drafter.post(
            "/speak/new",
            data={**form, "csrf_token": _token(drafter, "/speak/new")},
            follow_redirects=False,
        )
        assert r.status_code == 303
        path = r.headers["location"]
        sid = int(path.rsplit("/", 1)[-1])
        page = drafter.get(path)
        # counters per channel in words: Telegram 4,096, X 280, Bluesky 300
        counters = re.sub(r"</?span[^>]*>", "", page.text).replace("\xa0", " ")
        of = i18n.gettext("kk", "%(n)s of %(max)s characters")
        n = len(KK)
        assert f"telegram account: {of % {'n': n, 'max': '4 096'}}" in counters
        assert f"x account: {of % {'n': n, 'max': '280'}}" in counters
        assert f"bluesky account: {of % {'n': n, 'max': '300'}}" in counters
        token = _token(drafter, path)
        r = drafter.post(
            f"/speak/{sid}/translate",
            data={"csrf_token": token, "source": "kk", "target": "ru", "text": "Посольство"},
        )
        assert r.status_code == 200  # followed the redirect to the editor
        long_ru = "Посольство Казахстана проводит дни культуры в Берлине. " * 6
        r = drafter.post(
            f"/speak/{sid}/versions/ru", data={"csrf_token": token, "text": long_ru, "headline": ""}
        )
        assert 'class="over"' in r.text  # over X's 280 and Bluesky's 300
        r = drafter.post(f"/speak/{sid}/submit", data={"csrf_token": token})
        assert r.status_code == 400
        assert (
            i18n.gettext("kk", "Mark these translations reviewed before submitting: %(langs)s.")
            % {"langs": "ru"}
            in r.text
        )
        drafter.post(f"/speak/{sid}/versions/ru/reviewed", data={"csrf_token": token})
        r = drafter.post(f"/speak/{sid}/submit", data={"csrf_token": token})
        assert i18n.gettext("kk", "Submitted for approval.") in r.text
        # the drafter has no approve buttons; the approver sees it in the queue
        assert 'value="approve"' not in r.text
        queue = approver.get("/speak-queue")
        assert f"/speak/{sid}" in queue.text
        atoken = _token(approver, path)
        r = approver.post(
            f"/speak/{sid}/decide", data={"csrf_token": atoken, "decision": "return", "comment": ""}
        )
        assert r.status_code == 400
        r = approver.post(
            f"/speak/{sid}/decide",
            data={"csrf_token": atoken, "decision": "approve", "comment": ""},
        )
        assert i18n.gettext("kk", "Approved.") in r.text
        # Telegram's token expired; X answers 429; the news page still publishes.
        platforms.expired.add("telegram")
        platforms.fail("x", "429")
        r = drafter.post(
            f"/speak/{sid}/schedule",
            data={
                "csrf_token": token,
                "when": "now",
                "tz": "Asia/Almaty",
                "account": [
                    str(team["telegram"]),
                    str(team["x"]),
                    str(team["bluesky"]),
                    str(team["web"]),
                ],
            },
        )
        assert r.status_code == 200
    ctx = ChannelContext(settings=settings, db=db)
    for pid in flows.publish_due(db, ctx)["due"]:
        flows.send_publication(db, pid, ctx)
    ctx.close()
    with _client(settings, db) as drafter:
        _sign_in(drafter, "drafter@berlin.example")
        page = drafter.get(f"/speak/{sid}?lang=en").text
        rows = {
            (m[0], m[1]): m[2]
            for m in re.findall(r'data-channel="(\w+)" data-lang="(\w+)" data-status="(\w+)"', page)
        }
        assert rows == {
            ("telegram", "kk"): "failed",
            ("telegram", "ru"): "failed",
            ("x", "kk"): "pending",
            ("x", "ru"): "failed",
            ("bluesky", "kk"): "sent",
            ("bluesky", "ru"): "failed",
            ("web", "kk"): "sent",
            ("web", "ru"): "sent",
        }
        assert "access token has expired or was revoked" in page
        assert "elshi channels set-secret" in page
        assert "asked elshi to slow down" in page
        assert "too long for this channel" in page and "of 280" in page
        # the news page shows the published versions, with feeds
        news = drafter.get("/news/berlin/kk")
        assert KK in news.text and "Мәдениет күндері" in news.text
        rss = ET.fromstring(drafter.get("/news/berlin/kk/rss.xml").content)
        assert rss.find("channel/item/title").text == "Мәдениет күндері"  # type: ignore[union-attr]
        atom = ET.fromstring(drafter.get("/news/berlin/ru/atom.xml").content)
        ns = {"a": "http://www.w3.org/2005/Atom"}
        assert long_ru.strip()[:40] in atom.find("a:entry/a:content", ns).text  # type: ignore[union-attr]
        feed = drafter.get("/news/berlin/kk/feed.json")
        assert feed.headers["content-type"].startswith("application/feed+json")
        item = json.loads(feed.text)["items"][0]
        assert item["content_text"] == KK
        item_page = drafter.get(item["url"].replace(settings.base_url, ""))
        assert item_page.status_code == 200
        assert drafter.get("/news/nowhere/kk").status_code == 404
        assert drafter.get("/news/berlin/de").status_code == 404
    with db.session() as s:
        web_kk = s.scalar(
            select(Publication).where(Publication.channel == "web", Publication.lang == "kk")
        )
        assert web_kk is not None and web_kk.local_views == 1
        # reach page shows the channels
    with _client(settings, db) as drafter:
        _sign_in(drafter, "drafter@berlin.example")
        assert drafter.get(f"/speak/{sid}/reach").status_code == 200
        assert drafter.get(f"/speak/{sid}/rebuttal").status_code == 200
        assert drafter.get("/speak-calendar").status_code == 200
        assert drafter.get("/speak-calendar?month=2026-13").status_code == 400
        api = drafter.get(f"/api/statements/{sid}/publications").json()
        assert {p["error_kind"] for p in api} >= {"expired_token", "rate_limited", "too_long"}


def test_other_missions_and_anonymous_cannot_see_statements(
    settings: Settings, db: Database, team: dict[str, Any]
) -> None:
    with db.session() as s:
        sid = service.create_statement(
            db=s,
            actor=team["drafter"],
            mission_id=team["mission_id"],
            title="Secret draft",
            lang="kk",
            text=KK,
        ).id
    staff(db, "tokyo")
    with _client(settings, db) as c:
        assert c.get(f"/speak/{sid}", follow_redirects=False).status_code == 303
        _sign_in(c, "drafter@tokyo.example")
        r = c.get(f"/speak/{sid}")
        assert r.status_code == 404 and "Secret draft" not in r.text
        assert "Secret draft" not in c.get("/speak").text
        for page in ("reach", "rebuttal"):
            r = c.get(f"/speak/{sid}/{page}")
            assert r.status_code == 404 and "Secret draft" not in r.text, page
        for part in ("publications", "reach"):
            r = c.get(f"/api/statements/{sid}/{part}")
            assert r.status_code == 404, part
            assert r.json() == {"detail": f"no statement with id {sid}"}


def test_newsletter_sign_up_on_the_news_page(
    settings: Settings, db: Database, team: dict[str, Any]
) -> None:
    box = Mailbox().start()
    try:
        with db.session() as s:
            service.add_account(
                db=s,
                actor=team["admin"],
                settings=settings,
                mission_id=team["mission_id"],
                channel="email",
                name="Newsletter",
                config=box.config(),
                secrets={},
            )
        with _client(settings, db) as c:
            token = _token(c, "/news/berlin/ru")
            r = c.post("/news/berlin/ru", data={"csrf_token": token, "email": "not-an-address"})
            assert r.status_code == 400
            # The page speaks the language of its address (ru), whatever the browser asks.
            assert i18n.gettext("ru", "This is not an e-mail address.") in r.text
            r = c.post("/news/berlin/ru", data={"csrf_token": token, "email": "olga@example.ru"})
            assert r.status_code == 200 and len(box.to("olga@example.ru")) == 1
            link = re.search(r"/news-confirm/\S+", box.to("olga@example.ru")[0].get_content())
            assert link
            assert c.get(link[0]).status_code == 200
            assert c.get("/news-confirm/forged").status_code == 404
        with db.session() as s:
            from elshi.speak.models import Subscriber

            sub = s.scalar(select(Subscriber))
            assert sub is not None and sub.confirmed_at is not None and sub.lang == "ru"
    finally:
        box.stop()


def test_demo_has_a_rebuttal_with_volume_and_stance_before_and_after(
    settings: Settings, db: Database
) -> None:
    from elshi.accounts.service import Principal
    from elshi.demo import load_demo
    from elshi.nlp.pipeline import enrich_posts

    info = load_demo(db, settings=settings, posts=600)
    enrich_posts(db, slugs=["sentiment"])
    with db.session() as s:
        [st] = service.list_statements(db=s, actor=Principal.system())
        r = service.rebuttal(db=s, actor=Principal.system(), statement_id=st.id, days=30)
    assert r is not None and r.before.volume > 0 and r.after.volume > 0
    assert r.before.negative_share is not None and r.after.negative_share is not None
    with _client(settings, db) as c:
        r2 = c.post(
            "/login",
            data={
                "email": info["email"],
                "password": info["password"],
                "next": "/",
                "csrf_token": _token(c, "/login"),
            },
            follow_redirects=False,
        )
        assert r2.status_code == 303
        page = c.get(f"/speak/{st.id}/rebuttal?days=30&lang=en").text
        assert f'<span class="n">{r.before.volume}</span>' in page
        assert f'<span class="n">{r.after.volume}</span>' in page
        assert f"{round(r.after.negative_share * 100)}%" in page
        assert page.count("<rect") == len(r.before.daily) + len(r.after.daily)
