"""Travel advisories: publication with history, e-mails once per level change, page and feed."""

from __future__ import annotations

import re
from typing import Any

import feedparser
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from elshi.accounts.service import PermissionDenied
from elshi.app import create_app
from elshi.consulate import advisories, countries
from elshi.consulate.models import AdvisorySubscription, Citizen, TravelAdvisory
from elshi.db import Database
from elshi.errors import Invalid
from elshi.notify.models import OutboxMessage
from elshi.settings import Settings
from elshi.web import i18n
from tests.consulate.support import PASSWORD, Sink, World, add_stay, citizen, world

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def w(db: Database) -> World:
    return world(db)


def _form(country: str = "DE", level: Any = 3, **more: str) -> dict[str, Any]:
    form = {
        "country_code": country,
        "level": str(level),
        "text_kk": "Елге сапарды қайта қарастырыңыз.",
        "text_ru": "Пересмотрите необходимость поездки.",
        "text_en": "Reconsider travel to the country.",
    }
    form.update(more)
    return form


def _publish(db: Database, settings: Settings, w: World, **form: Any) -> int:
    with db.session() as s:
        return advisories.publish(
            db=s, settings=settings, actor=w.hq_admin, raw=_form(**form)
        ).advisory.id


def test_level_changes_reach_registered_and_following_citizens_once(
    db: Database, w: World, settings: Settings, smtp: Sink
) -> None:
    with db.session() as s:
        carol = citizen(s, "carol@example.org", "Carol Elsewhere")
        dana = citizen(s, "dana@example.org", "Dana Follows France")
        eve = citizen(s, "eve@example.org", "Eve Cancelled")
        s.get(Citizen, w.bob).lang = "ru"  # type: ignore[union-attr]
        add_stay(s, w.alice, w.a, 30)  # in Germany (DE)
        add_stay(s, carol, w.b, 30, country_code="FR")
        add_stay(s, eve, w.a, 30, status="cancelled")
        # Alice is registered there and follows too: she is still told once.
        assert advisories.follow(s, w.alice, "DE")
        assert advisories.follow(s, w.bob, "de")
        assert not advisories.follow(s, w.bob, "DE")  # following twice keeps one row
        assert advisories.follow(s, dana, "FR")

    first = _publish(db, settings, w, level=3)
    assert len(smtp.texts("alice@example.org")) == 1
    [bob_mail] = smtp.texts("bob@example.org")
    assert "Германия" in bob_mail and "Пересмотрите необходимость поездки." in bob_mail
    assert "/consulate/advisories/DE?lang=ru" in bob_mail
    [alice_mail] = smtp.texts("alice@example.org")
    assert "level 3" in alice_mail and "Reconsider travel to the country." in alice_mail
    # Bob hears why he got it (he follows the country); Alice is registered there.
    assert i18n.gettext("ru", advisories.BODY_FOLLOWED) in bob_mail
    assert i18n.gettext("en", advisories.BODY_FOLLOWED) not in alice_mail
    for other in ("carol@example.org", "dana@example.org", "eve@example.org"):
        assert smtp.texts(other) == []

    # A new text at the same level: published, nobody e-mailed.
    same = _publish(db, settings, w, level=3, text_en="Still: reconsider travel.")
    assert len(smtp.messages) == 2
    # Level down to 2: one more e-mail each.
    down = _publish(db, settings, w, level=2)
    assert len(smtp.texts("alice@example.org")) == 2
    assert len(smtp.texts("bob@example.org")) == 2
    assert len(smtp.messages) == 4
    # France's first advisory: Carol (registered) and Dana (follows), nobody in Germany.
    _publish(db, settings, w, country="FR", level=4)
    assert len(smtp.texts("carol@example.org")) == len(smtp.texts("dana@example.org")) == 1
    assert len(smtp.messages) == 6

    with db.session() as s:
        rows = advisories.history(s, "DE")
        assert [r.id for r in rows] == [down, same, first]
        assert [(r.level, r.previous_level, r.notified) for r in rows] == [
            (2, 3, 2),
            (3, 3, 0),
            (3, None, 2),
        ]
        assert rows[1].texts["en"] == "Still: reconsider travel."
        assert rows[2].texts["en"] == "Reconsider travel to the country."  # kept as it was
        current = advisories.current(s, "DE")
        assert current is not None and current.id == down
        keys = list(s.scalars(select(OutboxMessage.key).order_by(OutboxMessage.id)))
        assert len(keys) == len(set(keys)) == 6


def test_region_advisory_is_kept_apart_and_first_level_one_tells_nobody(
    db: Database, w: World, settings: Settings, smtp: Sink
) -> None:
    with db.session() as s:
        add_stay(s, w.alice, w.a, 30)
    _publish(db, settings, w, level=1)
    assert smtp.messages == []  # level 1 is the normal state: no change to tell
    _publish(db, settings, w, level=4, region="Bavaria")
    [mail] = smtp.texts("alice@example.org")
    assert "Bavaria" in mail and "level 4" in mail
    with db.session() as s:
        in_force = advisories.in_force(s, "DE")
        assert [(r.region, r.level) for r in in_force] == [("", 1), ("Bavaria", 4)]


def test_only_headquarters_may_publish(db: Database, w: World, settings: Settings) -> None:
    with db.session() as s, pytest.raises(PermissionDenied):
        advisories.publish(db=s, settings=settings, actor=w.officer_a, raw=_form())
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(TravelAdvisory)) == 0


@pytest.mark.parametrize(
    ("form", "where"),
    [
        ({"level": 0}, "level"),
        ({"level": 5}, "level"),
        ({"level": "three"}, "level"),
        ({"level": ""}, "level"),
        ({"country": "Atlantis"}, "country_code"),
        ({"country": ""}, "country_code"),
        ({"text_kk": "  "}, "text_kk"),
        ({"text_ru": ""}, "text_ru"),
        ({"text_en": ""}, "text_en"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(
    db: Database, w: World, settings: Settings, form: dict[str, Any], where: str
) -> None:
    with db.session() as s, pytest.raises(Invalid) as caught:
        advisories.publish(db=s, settings=settings, actor=w.hq_admin, raw=_form(**form))
    assert [p.where for p in caught.value.problems] == [where]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(TravelAdvisory)) == 0


def test_every_bad_field_is_named_at_once(db: Database, w: World, settings: Settings) -> None:
    raw = {"country_code": "XX", "level": "5", "text_kk": "", "text_ru": "", "text_en": ""}
    with db.session() as s, pytest.raises(Invalid) as caught:
        advisories.publish(db=s, settings=settings, actor=w.hq_admin, raw=raw)
    assert {p.where for p in caught.value.problems} == {
        "country_code",
        "level",
        "text_kk",
        "text_ru",
        "text_en",
    }


# ---------------------------------------------------------------------------- web


def _client(settings: Settings, db: Database) -> TestClient:
    client = TestClient(create_app(settings, db=db))
    client.headers["accept-language"] = "en"
    return client


def _csrf(client: TestClient, path: str) -> str:
    match = CSRF.search(client.get(path).text)
    assert match
    return match[1]


def test_atom_feed_parses_with_every_publication(
    db: Database, w: World, settings: Settings
) -> None:
    _publish(db, settings, w, level=2)
    _publish(db, settings, w, level=4, region="Berlin")
    client = _client(settings, db)
    r = client.get("/consulate/advisories/DE/feed.atom?lang=ru")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(r.content)
    assert not feed.bozo, feed.bozo_exception
    assert "Германия" in feed.feed.title
    assert len(feed.entries) == 2
    newest, oldest = feed.entries
    assert "Германия, Berlin" in newest.title and "4" in newest.title
    assert newest.summary == "Пересмотрите необходимость поездки."
    assert "2" in oldest.title and newest.id != oldest.id
    assert newest.link.endswith("/consulate/advisories/DE?lang=ru")
    # A country with no advisory has an empty but valid feed; a non-country has none.
    empty = feedparser.parse(client.get("/consulate/advisories/FR/feed.atom").content)
    assert not empty.bozo and empty.entries == []
    assert client.get("/consulate/advisories/QQ/feed.atom").status_code == 404


@pytest.mark.parametrize("lang", ["kk", "ru", "en"])
def test_public_page_in_each_language(
    db: Database, w: World, settings: Settings, lang: str
) -> None:
    _publish(db, settings, w, level=4)
    client = _client(settings, db)
    page = client.get(f"/consulate/advisories/DE?lang={lang}")
    assert page.status_code == 200
    assert countries.name("DE", lang) in page.text
    texts = {"kk": "Елге сапарды", "ru": "Пересмотрите", "en": "Reconsider travel to the"}
    assert texts[lang] in page.text
    for other, text in texts.items():
        if other != lang:
            assert text not in page.text
    assert 'name="viewport"' in page.text
    assert f"/consulate/advisories/DE/feed.atom?lang={lang}" in page.text
    index = client.get(f"/consulate/advisories?lang={lang}")
    assert index.status_code == 200 and countries.name("DE", lang) in index.text
    assert client.get("/consulate/advisories/QQ").status_code == 404


def test_publish_form_and_following_over_http(db: Database, w: World, settings: Settings) -> None:
    officer = _client(settings, db)
    token = _csrf(officer, "/login")
    officer.post(
        "/login",
        data={"email": "officer.a@mfa.example", "password": PASSWORD, "csrf_token": token},
    )
    assert officer.get("/consular/advisories").status_code == 403

    admin = _client(settings, db)
    token = _csrf(admin, "/login")
    admin.post(
        "/login", data={"email": "admin@mfa.example", "password": PASSWORD, "csrf_token": token}
    )
    token = _csrf(admin, "/consular/advisories")
    bad = admin.post(
        "/consular/advisories",
        data={**_form(country="Atlantis", level=5, text_ru=""), "csrf_token": token},
    )
    assert bad.status_code == 400
    assert "Choose a level from 1 to 4." in bad.text
    assert "Choose the country from the list." in bad.text
    assert "This field is required." in bad.text
    assert "Reconsider travel to the country." in bad.text  # what was typed is kept
    ok = admin.post(
        "/consular/advisories",
        data={**_form(country="Франция", level=3), "csrf_token": token},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"].startswith("/consulate/advisories/FR")

    person = _client(settings, db)
    token = _csrf(person, "/consulate/login")
    person.post(
        "/consulate/login",
        data={"email": "bob@example.org", "password": PASSWORD, "csrf_token": token},
    )
    token = _csrf(person, "/consulate/advisories/FR")
    r = person.post(
        "/consulate/advisories/FR/follow", data={"csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303
    with db.session() as s:
        assert advisories.follows(s, w.bob) == ["FR"]
    page = person.get("/consulate/advisories/FR")
    assert "Stop following this country" in page.text
    home = person.get("/consulate/home")
    assert '<a href="/consulate/advisories/FR">France</a>' in home.text
    token = _csrf(person, "/consulate/advisories/FR")
    person.post("/consulate/advisories/FR/unfollow", data={"csrf_token": token})
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(AdvisorySubscription)) == 0
    # Following needs a signed-in citizen.
    anonymous = _client(settings, db)
    r = anonymous.post("/consulate/advisories/FR/follow", follow_redirects=False)
    assert r.status_code in (303, 400, 403)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(AdvisorySubscription)) == 0
