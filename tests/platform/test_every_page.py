"""Every page, in kk, ru and en, as the people who use it: no raw code and no English chrome.

The world is the demo (staff, citizens with requests at every status, a past crisis) plus what
the demo leaves out of a first hour: an open crisis whose message went out, an alert, a saved
search and newsletter links. Every GET page of `elshi.web.policy.POLICY` is rendered as the
role it is for (the admin at headquarters, the consul, each citizen, anyone) and read as a
person reads it: the visible text (and the labels a screen reader speaks), not the markup.
User-entered text (posts, names, titles, messages) is marked `dir="auto"` in the templates and
is not checked for wording.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from elshi.accounts import service as accounts
from elshi.alerts.models import RULE_KINDS
from elshi.app import create_app
from elshi.consulate.models import (
    APPOINTMENT_STATUSES,
    REQUEST_STATUSES,
    Citizen,
    RequestEvent,
    ServiceRequest,
    ServiceType,
)
from elshi.crisis import service as crisis_service
from elshi.crisis.models import (
    ANSWERS,
    AUDIENCES,
    BROADCAST_STATUSES,
    CHANNELS,
    CRISIS_STATUSES,
    DELIVERY_STATUSES,
    Crisis,
    Recipient,
)
from elshi.db import Database
from elshi.demo import load_demo
from elshi.demo.people import PEOPLE, STAFF
from elshi.listen.models import Author, Post
from elshi.missions import service as missions
from elshi.settings import Settings, load_settings
from elshi.speak.models import PUBLICATION_STATUSES, STATEMENT_STATUSES, Publication, Statement
from elshi.watch.models import Watch
from elshi.web import i18n
from elshi.web.policy import POLICY
from tests.conftest import _clear_env
from tests.workspace_helpers import csrf, sign_in

LANGS = i18n.LANGUAGES

#: GET routes that are not pages (data, files, feeds, redirects to a download), and why.
NOT_PAGES: dict[str, str] = {
    "/health": "JSON",
    "/api/openapi.json": "JSON",
    "/api/docs": "the API's own reference page (Swagger UI), English by design",
    "/static": "files",
    "/static/swagger": "files",
    "/watch/{watch_id}/chart/{name}.{fmt}": "an image or CSV",
    "/digest.pdf": "a PDF",
    "/speak/media/{key}": "an image",
    "/news-media/{key}": "an image",
    "/consulate/manifest.webmanifest": "JSON",
    "/consulate/sw.js": "a script",
    "/consulate/documents/{document_id}": "the citizen's own file",
    "/consulate/export": "the citizen's data as JSON",
    "/consular/documents/{document_id}": "a citizen's file",
    "/crisis/{crisis_id}/evacuation.{fmt}": "a CSV or PDF",
    "/c/push/key": "JSON",
}


def page_routes() -> list[tuple[str, str]]:
    """Return (path, who) for every GET page of the policy table."""
    out = []
    for (method, path), rule in sorted(POLICY.items()):
        if method != "GET" or path.startswith("/api/") or path in NOT_PAGES:
            continue
        out.append((path, rule.who))
    return out


# ---------------------------------------------------------------------------- the world


@dataclass
class World:
    """The demo's database with its ids, and signed-in clients by role."""

    db: Database
    settings: Settings
    password: str
    ids: dict[str, Any] = field(default_factory=dict)
    #: citizen e-mail -> their request id
    citizen_requests: dict[str, int] = field(default_factory=dict)


def _open_crisis(db: Database, settings: Settings, mission_id: int) -> tuple[int, str, str]:
    """Open a crisis in Berlin and send its message; return its id and a ru and a kk token."""
    from elshi import crypto

    with db.session() as s:
        users = [accounts.get_user(db=s, email=e) for e, _, _ in STAFF[:2]]
        first, second = (accounts.load_principal(db=s, user_id=u.id) for u in users if u)
        assert first is not None and second is not None
        messages = {
            "kk": {
                "subject": "Берлин: су тасқыны",
                "text": "Шпрее өзені арнасынан шықты. Жағдайыңызды хабарлаңыз.",
                "sms": "Берлинде су тасқыны. Жауап беріңіз:",
            },
            "ru": {
                "subject": "Берлин: наводнение",
                "text": "Река Шпрее вышла из берегов. Сообщите, как вы.",
                "sms": "Наводнение в Берлине. Ответьте:",
            },
            "en": {
                "subject": "Berlin: flood",
                "text": "The Spree has burst its banks. Tell us how you are.",
                "sms": "Flood in Berlin. Answer here:",
            },
        }
        b = crisis_service.create_crisis(
            db=s,
            actor=first,
            mission_id=mission_id,
            title="Spree flood (staff title)",
            area={"cities": ["Berlin"]},
            audience="present",
            messages=messages,
        )
        broadcast_id, crisis_id = b.id, b.crisis_id
    with db.session() as s:
        crisis_service.approve(db=s, actor=second, broadcast_id=broadcast_id)
    with db.session() as s:
        crisis_service.send(db=s, actor=first, broadcast_id=broadcast_id)
    key = crypto.purpose_key(settings, crypto.CHECKIN)
    tokens = {}
    with db.session() as s:
        for r in s.scalars(select(Recipient).where(Recipient.crisis_id == crisis_id)):
            tokens[r.lang] = crisis_service.checkin_token(
                key=key, crisis_id=crisis_id, recipient_id=r.id
            )
    return crisis_id, tokens["ru"], tokens["kk"]


def _alert(db: Database) -> int:
    """Raise a term alert on a demo watch list from its matched posts."""
    from elshi.accounts.service import Principal
    from elshi.alerts import flows
    from elshi.alerts import service as alerts

    with db.session() as s:
        watch = s.scalars(select(Watch).order_by(Watch.id)).first()
        assert watch is not None
        rule = alerts.create_rule(
            db=s,
            principal=Principal.system(),
            watch_id=watch.id,
            kind="term",
            name="Any term",
            params={"terms": ["Китай", "Қытай", "China", "консульский", "граница", "border"]},
        )
        # The demo's posts came before its watch lists: check them all as if they were new.
        finding = alerts.check_terms(s, rule, list(s.scalars(select(Post.id))))
        assert finding is not None, "the demo posts mention none of the terms"
        alert = flows._raise(s, rule, watch, finding)
        alert_id = alert.id if alert else None
    assert alert_id is not None, "the demo posts raised no alert"
    return int(alert_id)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[World]:
    """Load the demo once for the module (a SQLite copy: this test reads, it does not migrate)."""
    home = tmp_path_factory.mktemp("every-page") / "home"
    home.mkdir()
    shutil.copy(sqlite_template, home / "elshi.db")
    with pytest.MonkeyPatch.context() as mp:
        _clear_env(mp)
        mp.setenv("ELSHI_HOME", str(home))
        mp.setenv("ELSHI_DATABASE_URL", f"sqlite:///{home / 'elshi.db'}")
        mp.setenv("ELSHI_DEMO", "1")
        settings = load_settings()
        db = Database(settings)
        info = load_demo(db, settings=settings, posts=40)
        w = World(db=db, settings=settings, password=info["password"])
        with db.session() as s:
            embassy = missions.get_mission(db=s, slug="berlin")
            assert embassy is not None
            mission_id = embassy.id
        crisis_id, ru_token, kk_token = _open_crisis(db, settings, mission_id)
        alert_id = _alert(db)
        from elshi.speak.subscribers import subscribe
        from elshi.watch import service as watches

        with db.session() as s:
            admin = accounts.get_user(db=s, email=info["email"])
            assert admin is not None
            principal = accounts.load_principal(db=s, user_id=admin.id)
            assert principal is not None
            saved = watches.save_search(
                db=s, principal=principal, name="Китай", params={"q": "Китай"}, mission_id=None
            )
            confirm = {
                lang: subscribe(
                    db=s, mission_id=mission_id, email=f"reader-{lang}@example.org", lang=lang
                )[1]
                for lang in LANGS
            }
            for c in s.scalars(select(Citizen)):
                rid = s.scalar(select(ServiceRequest.id).where(ServiceRequest.citizen_id == c.id))
                if rid is not None:
                    w.citizen_requests[c.email] = rid
            past = s.scalar(select(Crisis.id).where(Crisis.status == "closed"))
            w.ids = {
                "mission_slug": "berlin",
                "post_id": s.scalar(select(Post.id).order_by(Post.id)),
                "author_id": s.scalar(select(Author.id).order_by(Author.id)),
                "watch_id": s.scalar(select(Watch.id).order_by(Watch.id)),
                "alert_id": alert_id,
                "statement_id": s.scalar(select(Statement.id)),
                "items": dict(s.execute(select(Publication.lang, Publication.id)).all()),
                "service_type_id": s.scalar(select(ServiceType.id).order_by(ServiceType.id)),
                "crisis_ids": [crisis_id, past],
                "checkin": {"ru": ru_token, "kk": kk_token},
                "saved": saved.token,
                "confirm": confirm,
                "request_ids": list(
                    s.scalars(select(ServiceRequest.id).where(ServiceRequest.status != "draft"))
                ),
                "open_crisis": crisis_id,
                "slugs": set(s.scalars(select(ServiceType.slug))),
                "documents": {
                    d["slug"] for st in s.scalars(select(ServiceType)) for d in st.documents
                },
                "events": set(s.scalars(select(RequestEvent.action))),
            }
        yield w
        db.dispose()


def client_for(world: World, who: str, lang: str, email: str = "") -> TestClient:
    """A client signed in as `who` (admin, consul, citizen, anonymous), speaking `lang`."""
    client = TestClient(create_app(world.settings, db=world.db))
    client.cookies.set(i18n.COOKIE, lang)
    if who == "admin":
        sign_in(client, "admin@demo.elshi.example", world.password)
    elif who == "consul":
        sign_in(client, STAFF[0][0], world.password)
    elif who == "citizen":
        token = csrf(client, "/consulate/login")
        r = client.post(
            "/consulate/login",
            data={"email": email, "password": world.password, "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text[:300]
    return client


# ---------------------------------------------------------------------------- reading a page

#: Attributes whose words a person reads or hears.
SPOKEN = ("title", "aria-label", "placeholder", "alt")


def visible_text(html: str) -> list[str]:
    """Return the visible text chunks of a page outside user-entered text (`dir="auto"`)."""
    doc = lxml.html.fromstring(html)
    # <code> shows an identifier on purpose (a catalogue entry's id in addresses, a link).
    for bad in doc.xpath("//script|//style|//template|//code|//*[@dir='auto']|//textarea"):
        bad.drop_tree()
    chunks: list[str] = []
    for el in doc.iter():
        if not isinstance(el.tag, str):
            continue
        for attr in SPOKEN:
            if el.get(attr):
                chunks.append(el.get(attr))
        if el.tag == "input" and el.get("type") in ("submit", "button") and el.get("value"):
            chunks.append(el.get("value"))
        for text in (el.text, el.tail):
            if text and text.strip():
                chunks.append(text)
    return [" ".join(c.split()) for c in chunks if c.strip()]


def raw_codes(world: World) -> set[str]:
    """The codes of the models that must never be shown as they are."""
    from elshi.listen.views.explore import ENRICHER_NAMES

    codes = {
        *REQUEST_STATUSES,
        *APPOINTMENT_STATUSES,
        *CRISIS_STATUSES,
        *BROADCAST_STATUSES,
        *DELIVERY_STATUSES,
        *CHANNELS,
        *ANSWERS,
        *AUDIENCES,
        *RULE_KINDS,
        *STATEMENT_STATUSES,
        *PUBLICATION_STATUSES,
        *ENRICHER_NAMES,
        *world.ids["slugs"],
        *world.ids["documents"],
        *world.ids["events"],
        "acknowledged",
        "in_review",
    }
    return {c for c in codes if c}


#: Never shown to a person: Python's reprs, arrows of a log, untranslated plurals.
REPR = re.compile(r"\{'|'\}|\['|'\]|->|\bNone\b|\bTrue\b|\bFalse\b")
BAD_PLURAL = re.compile(
    r"(?<![\d.,])\b1 (people|posts|messages|requests|answers|documents|alerts|minutes|hours|"
    r"days|items|results|citizens|persons|companions|times|mentions|statements)\b"
)


def chrome_msgids(lang: str) -> set[str]:
    """Interface messages whose `lang` translation differs from the English (so English on a
    `lang` page means a missing translation)."""
    out = set()
    for message in i18n.read_catalog(lang):
        if not message.id or isinstance(message.id, tuple) or "%(" in message.id:
            continue
        if message.string and message.string != message.id and len(message.id) > 2:
            out.add(" ".join(message.id.split()))
    return out


def problems(world: World, html: str, lang: str, codes: set[str]) -> list[str]:
    """What a person would trip over on this page."""
    found = []
    chrome = CHROME[lang]
    for chunk in visible_text(html):
        words = set(re.findall(r"[\w-]+", chunk))
        for code in codes & words:
            shown = lang != "en" or "_" in code or "-" in code or code == chunk
            if shown and not (lang == "en" and code == chunk and code in EN_WORDS):
                found.append(f"raw code {code!r} in {chunk!r}")
        if REPR.search(chunk):
            found.append(f"Python text in {chunk!r}")
        if BAD_PLURAL.search(chunk):
            found.append(f"untranslated plural in {chunk!r}")
        if lang != "en" and chunk in chrome:
            found.append(f"English interface text {chunk!r}")
    return found


#: Codes that are also the English words their label translates to (en only).
EN_WORDS = {
    "open",
    "closed",
    "sent",
    "sending",
    "failed",
    "unknown",
    "cancelled",
    "approved",
    "rejected",
    "draft",
    "submitted",
    "acknowledged",
    "safe",
}
CHROME = {lang: chrome_msgids(lang) for lang in LANGS if lang != "en"} | {"en": set()}


# ---------------------------------------------------------------------------- the pages


def pages(world: World, path: str, who: str, lang: str) -> list[tuple[str, str, str]]:
    """Return (role, citizen e-mail, URL) to render for a route in a language."""
    ids = world.ids
    if who in ("staff", "self"):
        roles = ["admin", "consul"] if path.startswith(("/consular", "/crisis")) else ["admin"]
        targets = [(r, "") for r in roles]
    elif who == "citizen":
        targets = [("citizen", p.email) for p in PEOPLE if p.lang == lang] or [
            ("citizen", PEOPLE[0].email)
        ]
    else:
        targets = [("anonymous", "")]
    urls: list[str] = []
    if path == "/c/{token}":
        urls = [f"/c/{ids['checkin'].get(lang, ids['checkin']['ru'])}"]
    elif path == "/s/{token}":
        urls = [f"/s/{ids['saved']}"]
    elif path == "/news-confirm/{token}":
        urls = [f"/news-confirm/{ids['confirm'][lang]}", "/news-confirm/not-a-token"]
    elif path == "/news-unsubscribe/{token}":
        urls = ["/news-unsubscribe/not-a-token"]
    elif path == "/consulate/verify":
        urls = ["/consulate/verify?token=not-a-token"]
    elif path == "/c/register/{crisis_id}":
        urls = [f"/c/register/{ids['open_crisis']}"]
    elif path == "/news/{mission_slug}/{lang}/{item}":
        urls = [f"/news/berlin/{lang}/{ids['items'][lang]}"]
    elif "{crisis_id}" in path:
        urls = [
            path.replace("{crisis_id}", str(c)).replace("{kind}", kind)
            for c in ids["crisis_ids"]
            for kind in ("help", "not_reached", "all")
            if "{kind}" in path or kind == "help"
        ]
    elif "{request_id}" in path:
        if who == "citizen":
            out = []
            for _, email in targets:
                rid = world.citizen_requests[email]
                out.append(("citizen", email, path.replace("{request_id}", str(rid))))
            return out
        urls = [path.replace("{request_id}", str(r)) for r in ids["request_ids"]]
    else:
        url = path.replace("{lang}", lang)
        for name, value in ids.items():
            url = url.replace("{" + name + "}", str(value))
        urls = [url]
    assert all("{" not in u for u in urls), urls
    return [(role, email, url) for role, email in targets for url in urls]


#: Pages that answer with an error on purpose (a spent or made-up link).
EXPECTED_STATUS = {
    "/news-confirm/not-a-token": 404,
    "/news-unsubscribe/not-a-token": 404,
    "/consulate/verify?token=not-a-token": 400,
}


def test_every_get_route_is_a_page_here_or_named_as_not_one() -> None:
    gets = {path for method, path in POLICY if method == "GET"}
    assert set(NOT_PAGES) <= gets, set(NOT_PAGES) - gets
    assert len(page_routes()) > 40


@pytest.mark.parametrize("lang", LANGS)
def test_every_page_speaks_the_readers_language(world: World, lang: str) -> None:
    codes = raw_codes(world)
    clients: dict[tuple[str, str], TestClient] = {}
    failures: list[str] = []
    rendered = 0
    for path, who in page_routes():
        for role, email, url in pages(world, path, who, lang):
            key = (role, email)
            if key not in clients:
                clients[key] = client_for(world, role, lang, email)
            r = clients[key].get(url)
            expected = EXPECTED_STATUS.get(url, 200)
            if r.status_code != expected:
                failures.append(f"{role} {url}: status {r.status_code}, not {expected}")
                continue
            if "text/html" not in r.headers.get("content-type", ""):
                failures.append(f"{role} {url}: {r.headers.get('content-type')}, not a page")
                continue
            assert f'lang="{lang}"' in r.text[:400], f"{url}: page not marked as {lang}"
            rendered += 1
            failures += [f"{role} {url}: {p}" for p in problems(world, r.text, lang, codes)]
    assert rendered > 60
    assert not failures, f"{len(failures)} problems:\n" + "\n".join(sorted(set(failures)))


def test_catalogs_translate_every_message() -> None:
    for lang in LANGS:
        assert i18n.untranslated(i18n.read_catalog(lang)) == [], lang


def test_the_check_in_page_speaks_to_the_citizen_in_their_language(world: World) -> None:
    """No language chosen: a Russian citizen reads the message in Russian, not the staff's
    English title, and sees whom to call."""
    client = TestClient(create_app(world.settings, db=world.db))
    client.headers["accept-language"] = "en"
    page = client.get(f"/c/{world.ids['checkin']['ru']}")
    assert page.status_code == 200
    assert 'lang="ru"' in page.text
    assert "Берлин: наводнение" in page.text
    assert "Река Шпрее вышла из берегов" in page.text
    assert "staff title" not in page.text
    assert "Экстренная линия консульства" in page.text
    assert 'href="tel:+49305550100"' in page.text
    # A language chosen on purpose wins: the same link in Kazakh.
    kk = client.get(f"/c/{world.ids['checkin']['ru']}?lang=kk")
    assert 'lang="kk"' in kk.text and "Берлин: су тасқыны" in kk.text


def test_a_closed_crisis_still_gives_the_emergency_number(world: World) -> None:
    from elshi import crypto

    past = world.ids["crisis_ids"][1]
    with world.db.session() as s:
        rid = s.scalar(select(Recipient.id).where(Recipient.crisis_id == past))
    assert rid is not None
    token = crisis_service.checkin_token(
        key=crypto.purpose_key(world.settings, crypto.CHECKIN), crisis_id=past, recipient_id=rid
    )
    page = TestClient(create_app(world.settings, db=world.db)).get(f"/c/{token}")
    assert page.status_code == 410
    assert "+49 30 555 0100" in page.text


def test_the_alert_reads_in_the_readers_language_with_plurals(world: World) -> None:
    client = client_for(world, "admin", "ru")
    page = client.get(f"/alerts/{world.ids['alert_id']}")
    summary = lxml.html.fromstring(page.text).get_element_by_id("alert-summary").text_content()
    assert "new posts" not in summary and "mention" not in summary
    assert re.search(r"\d+ новы[хе]? публикаци[йия] упомина", summary), summary
    why = lxml.html.fromstring(page.text).get_element_by_id("why").text_content()
    assert "Найденные слова" in why and "{'" not in why
    assert "Получатель" in page.text  # the recipient's column, not a date


def test_plural_forms_follow_each_language() -> None:
    from elshi.web.templating import environment

    text = '{{ ngettext("%(num)s request", "%(num)s requests", n) }}'
    ru = environment("ru").from_string(text)
    assert [ru.render(n=n) for n in (1, 3, 5, 21)] == [
        "1 заявка",
        "3 заявки",
        "5 заявок",
        "21 заявка",
    ]
    assert environment("en").from_string(text).render(n=1) == "1 request"
    assert environment("kk").from_string(text).render(n=7) == "7 өтініш"


def test_words_that_were_mistranslated() -> None:
    ru = i18n.translations("ru")
    assert ru.gettext("Overview") != ru.gettext("Explore")
    assert ru.pgettext("person", "Name") == "Имя"
    assert ru.gettext("Recipient") == "Получатель"


def test_the_news_page_speaks_the_language_of_its_address(world: World) -> None:
    client = TestClient(create_app(world.settings, db=world.db))
    client.headers["accept-language"] = "en"
    page = client.get("/news/berlin/kk")
    assert page.status_code == 200 and 'lang="kk"' in page.text[:200]
    problems_found = problems(world, page.text, "kk", raw_codes(world))
    assert problems_found == []
