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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from elshi.alerts.models import RULE_KINDS
from elshi.app import create_app
from elshi.consulate.models import (
    APPOINTMENT_STATUSES,
    REQUEST_STATUSES,
)
from elshi.crisis import service as crisis_service
from elshi.crisis.models import (
    ANSWERS,
    AUDIENCES,
    BROADCAST_STATUSES,
    CHANNELS,
    CRISIS_STATUSES,
    DELIVERY_STATUSES,
    Recipient,
)
from elshi.db import Database
from elshi.speak.models import PUBLICATION_STATUSES, STATEMENT_STATUSES
from elshi.web import i18n
from elshi.web.policy import POLICY
from tests.page_world import (
    EXPECTED_STATUS,
    NOT_PAGES,
    World,
    client_for,
    demo_world,
    page_routes,
    pages,
)

LANGS = i18n.LANGUAGES


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[World]:
    """The demo, loaded once for the module."""
    yield from demo_world(tmp_path_factory, sqlite_template)


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


def test_the_emergency_number_is_set_and_checked(cli: Any, db: Database) -> None:
    """An administrator gives a mission its number (or a clear refusal naming the input)."""
    from elshi.missions.models import Mission

    result = cli("missions", "add", "rome", "--name", "Embassy in Rome", "--emergency-phone", "x")
    assert result.exit_code == 2 and "'x' is not a phone number" in result.output
    assert cli("missions", "add", "rome", "--name", "Embassy in Rome").exit_code == 0
    assert cli("missions", "phone", "nowhere", "+39 06 555 0100").exit_code == 4  # not found
    result = cli("missions", "phone", "rome", "+39 06 555 0100")
    assert result.exit_code == 0 and "+39 06 555 0100" in result.output
    with db.session() as s:
        rome = s.scalars(select(Mission).where(Mission.slug == "rome")).one()
        assert rome.emergency_phone == "+39 06 555 0100"
