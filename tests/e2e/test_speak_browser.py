"""A real browser through a statement's life: written in Kazakh, translated into Russian and
English, approved by someone else, scheduled and published to three channels (loopback
platform servers), its engagement shown; and every kind of failure explained."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from tests.e2e.conftest import free_port as _free_port
from tests.e2e.conftest import screens as _screens
from tests.e2e.test_accessibility import AXE_OPTIONS, SERIOUS
from tests.speak.platforms import (
    COUNTING_SAMPLES,
    PlatformServer,
    every_channel,
    server_figure,
    staff,
)

from elshi import jobs
from elshi.app import create_app
from elshi.db import Database
from elshi.settings import Settings, load_settings
from elshi.speak import service

pytestmark = pytest.mark.browser

KK = "Қазақстан елшілігі 5–7 желтоқсанда Берлинде мәдениет күндерін өткізеді. Барлығын шақырамыз!"
RU = "Посольство Казахстана проводит дни культуры в Берлине 5–7 декабря. Приглашаем всех!"
EN = "The Embassy of Kazakhstan holds culture days in Berlin on 5–7 December. All welcome!"
PASSWORD = "correct horse battery"


@pytest.fixture
def platforms() -> Iterator[PlatformServer]:
    server = PlatformServer().start()
    yield server
    server.stop()


@pytest.fixture
def site(db: Database, settings: Settings, platforms: PlatformServer) -> Iterator[dict[str, Any]]:
    """elshi on loopback with a queue that runs tasks at once, and a team with channels."""
    import uvicorn

    team = staff(db)
    port = _free_port()
    live = load_settings(queue_url="memory://", queue_immediate=True, port=port)
    rt = jobs.bind(live, db)
    config = uvicorn.Config(
        create_app(live, db=db, runtime=rt), host="127.0.0.1", port=port, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield {**team, "url": f"http://127.0.0.1:{port}", "settings": live}
    srv.should_exit = True
    thread.join(timeout=10)


def _account(
    db: Database,
    site: dict[str, Any],
    platforms: PlatformServer,
    channel: str,
    name: str,
    languages: list[str],
) -> int:
    config, secrets = platforms.account(channel) if channel != "web" else ({}, {})
    with db.session() as s:
        return service.add_account(
            db=s,
            actor=site["admin"],
            settings=site["settings"],
            mission_id=site["mission_id"],
            channel=channel,
            name=name,
            config={**config, "languages": languages},
            secrets=secrets,
        ).id


def _submit(page: Any, selector: str) -> None:
    """Click a form's button and wait for the page it leads to."""
    with page.expect_navigation():
        page.click(selector)


def _sign_in(browser: Any, site: dict[str, Any], who: str, lang: str = "kk") -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=lang)
    page = context.new_page()
    page.goto(site["url"] + f"/login?lang={lang}")
    page.fill("#email", f"{who}@berlin.example")
    page.fill("#password", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(site["url"] + "/")
    return page


def test_drafter_writes_kazakh_translates_approver_approves_published_with_reach(
    site: dict[str, Any],
    db: Database,
    platforms: PlatformServer,
    browser: Any,
    tmp_path: Path,
) -> None:
    base = site["url"]
    _account(db, site, platforms, "telegram", "Telegram (kk)", ["kk"])
    _account(db, site, platforms, "mastodon", "Mastodon (ru)", ["ru"])
    _account(db, site, platforms, "bluesky", "Bluesky (en)", ["en"])
    hosts: list[str] = []

    page = _sign_in(browser, site, "drafter")
    console: list[str] = []
    page.on("request", lambda r: hosts.append(urlsplit(r.url).hostname or ""))
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.goto(base + "/speak")
    assert page.locator("h1").inner_text() == "Мәлімдемелер"
    _submit(page, "a.button[href='/speak/new']")
    page.fill("#title", "Мәдениет күндері")
    page.select_option("#lang", "kk")
    page.fill("#headline", "Берлинде мәдениет күндері")
    page.fill("#text", KK)
    _submit(page, "form.card button[type=submit]")
    page.wait_for_url("**/speak/*")
    statement_path = urlsplit(page.url).path

    # live counter: Telegram counts this Kazakh text as it is typed
    counter = page.locator("ul.counters[data-for=text-kk] li")
    assert counter.get_attribute("data-count") == str(len(KK))
    page.fill("#text-kk", KK + " 🇰🇿")
    # a space and a flag: 4 UTF-16 units
    assert counter.get_attribute("data-count") == str(len(KK) + 5)
    _submit(page, "#version-kk button[type=submit]")
    page.wait_for_selector("p.ok-note")

    for lang, text in (("ru", RU), ("en", EN)):
        page.select_option("#source", "kk")
        page.select_option("#target", lang)
        # no translation model here: the page says so and takes the translator's text
        assert page.locator("#no-model").is_visible()
        page.fill("#translation-text", text)
        _submit(page, "form[action$='/translate'] button")
        page.wait_for_selector(f"#text-{lang}")
        # side by side: the Kazakh original stays beside the translation, not copied into it
        assert page.locator("#text-kk").input_value().startswith(KK)
        assert page.locator(f"#text-{lang}").input_value() == text
        _submit(page, f"#version-{lang} form[action$='/reviewed'] button")
        page.wait_for_selector("p.ok-note")
    assert page.locator(".versions section.version").count() == 3
    page.screenshot(path=str(_screens(tmp_path) / "speak-editor-kk.png"), full_page=True)
    _submit(page, "form[action$='/submit'] button")
    page.wait_for_selector("p.ok-note")
    assert page.locator("#statement-status").inner_text() == "бекітуді күтуде"
    assert page.locator("button[value=approve]").count() == 0  # not for the author

    approver = _sign_in(browser, site, "approver", "ru")
    approver.goto(base + "/speak-queue")
    _submit(approver, f"a[href='{statement_path}']")
    approver.wait_for_selector("button[value=approve]")
    assert approver.locator("#text-ru").input_value() == RU
    approver.fill("#comment", "Хорошо.")
    _submit(approver, "button[value=approve]")
    approver.wait_for_selector("p.ok-note")
    assert approver.locator("#statement-status").inner_text() == "утверждено к публикации"

    page.reload()
    for box in page.locator("input[name=account]").all():
        box.check()
    page.check("input[name=when][value=later]")
    almaty_now = datetime.now(ZoneInfo("Asia/Almaty")).strftime("%Y-%m-%dT%H:%M")
    page.fill("input[name=at]", almaty_now)
    page.fill("input[name=tz]", "Asia/Almaty")
    _submit(page, "form[action$='/schedule'] button[type=submit]")
    page.wait_for_selector("#publications")
    assert page.locator("tr[data-status=pending]").count() == 3
    page.goto(base + "/speak-calendar")
    assert page.locator("a.cal-item", has_text="Мәдениет күндері").count() == 1

    jobs.enqueue("publish_due")  # the scheduler's tick (the queue runs tasks at once here)
    page.goto(base + statement_path)
    assert page.locator("tr[data-status=sent]").count() == 3
    assert [p["text"] for p in platforms.live("telegram")] == [KK + " 🇰🇿"]
    assert [p["text"] for p in platforms.live("mastodon")] == [RU]
    assert [p["text"] for p in platforms.live("bluesky")] == [EN]

    tg = platforms.live("telegram")[0]["id"]
    platforms.set_metrics(f"telegram:{tg}", views=2400)
    platforms.set_metrics(
        f"mastodon:{platforms.live('mastodon')[0]['id']}", reactions=17, reposts=5, replies=3
    )
    platforms.set_metrics(
        f"bluesky:{platforms.live('bluesky')[0]['uri']}", reactions=9, reposts=2, replies=1
    )
    jobs.enqueue("collect_reach_now")
    _submit(page, "a[href$='/reach']")
    page.wait_for_selector("#reach-total")
    totals = page.locator("#reach-total .stat .n").all_inner_texts()
    assert [t.replace("\xa0", "").replace(" ", "") for t in totals] == ["2400", "26", "7", "4"]
    rows = page.locator("#reach-rows tbody tr")
    assert rows.count() == 3
    page.screenshot(path=str(_screens(tmp_path) / "speak-reach-kk.png"), full_page=True)
    page.goto(base + statement_path + "/rebuttal")
    assert set(hosts) == {"127.0.0.1"}, "the pages load nothing from elsewhere"
    assert console == [], "no script errors and no content-security-policy violations"


def test_too_long_expired_token_429_and_500_are_explained_and_the_rest_publishes(
    site: dict[str, Any],
    db: Database,
    platforms: PlatformServer,
    browser: Any,
    tmp_path: Path,
) -> None:
    base = site["url"]
    accounts = {
        "telegram": _account(db, site, platforms, "telegram", "Telegram", ["kk"]),
        "mastodon": _account(db, site, platforms, "mastodon", "Mastodon", ["kk"]),
        "bluesky": _account(db, site, platforms, "bluesky", "Bluesky", ["kk"]),
        "x": _account(db, site, platforms, "x", "X", ["kk"]),
        "facebook": _account(db, site, platforms, "facebook", "Facebook", ["kk"]),
        "web": _account(db, site, platforms, "web", "News page", ["kk"]),
    }
    long_kk = (
        "Қазақстан мен Германия арасындағы мәдени ынтымақтастық туралы хабарлама. " * 5
    ).strip()
    with db.session() as s:
        sid = service.create_statement(
            db=s,
            actor=site["drafter"],
            mission_id=site["mission_id"],
            title="Long",
            lang="kk",
            text=long_kk,
        ).id
        service.submit(db=s, actor=site["drafter"], statement_id=sid)
    with db.session() as s:
        service.decide(db=s, actor=site["approver"], statement_id=sid, approve=True)
    platforms.expired.add("telegram")
    platforms.fail("mastodon", "429")
    platforms.fail("facebook", "500")

    page = _sign_in(browser, site, "drafter", "en")
    page.goto(base + f"/speak/{sid}")
    # over X's 280 (and Bluesky's 300): the counter says so before anything is sent
    x_counter = page.locator(f"ul.counters[data-for=text-kk] li[data-account='{accounts['x']}']")
    assert x_counter.get_attribute("class") == "over"
    for box in page.locator("input[name=account]").all():
        box.check()
    _submit(page, "form[action$='/schedule'] button[type=submit]")
    page.wait_for_selector("#publications")
    page.screenshot(path=str(_screens(tmp_path) / "speak-errors-en.png"), full_page=True)

    def row(channel: str) -> Any:
        return page.locator(f"tr[data-channel={channel}]")

    assert row("web").get_attribute("data-status") == "sent"
    assert row("telegram").get_attribute("data-status") == "failed"
    assert "access token has expired" in row("telegram").inner_text()
    assert "elshi channels set-secret" in row("telegram").inner_text()
    assert row("telegram").locator("button", has_text="Retry").count() == 1
    assert row("mastodon").get_attribute("data-status") == "pending"
    assert "asked elshi to slow down" in row("mastodon").inner_text()
    # A 500 may come after the platform took the post: elshi looks before it sends again.
    assert row("facebook").get_attribute("data-status") == "pending"
    assert "looks for the post first" in row("facebook").inner_text()
    for channel in ("x", "bluesky"):
        assert row(channel).get_attribute("data-status") == "failed"
        assert "too long for this channel" in row(channel).inner_text()
    assert "of 280" in row("x").inner_text() and "of 300" in row("bluesky").inner_text()
    assert platforms.live("x") == [] and platforms.live("telegram") == []
    # the news page published the text
    page.goto(base + "/news/berlin/kk")
    assert long_kk[:60] in page.locator("article.post .text").first.inner_text()

    # A new token is entered; Retry publishes to Telegram.
    platforms.expired.discard("telegram")
    page.goto(base + f"/speak/{sid}")
    with page.expect_navigation():
        row("telegram").locator("button", has_text="Retry").click()
    page.wait_for_selector("p.ok-note")
    assert row("telegram").get_attribute("data-status") == "sent"
    assert len(platforms.live("telegram")) == 1


def test_picture_uploaded_in_the_editor_is_published_and_who_engages_is_charted(
    site: dict[str, Any],
    db: Database,
    platforms: PlatformServer,
    browser: Any,
    tmp_path: Path,
) -> None:
    import io

    from PIL import Image

    from elshi.listen.models import Author

    base = site["url"]
    _account(db, site, platforms, "web", "News page", ["kk"])
    _account(db, site, platforms, "mastodon", "Mastodon (kk)", ["kk"])
    with db.session() as s:
        sid = service.create_statement(
            db=s,
            actor=site["drafter"],
            mission_id=site["mission_id"],
            title="Мәдениет күндері",
            lang="kk",
            text=KK,
        ).id
    picture = tmp_path / "dombra.png"
    buf = io.BytesIO()
    Image.new("RGB", (120, 80), (0, 97, 168)).save(buf, "PNG")
    picture.write_bytes(buf.getvalue())
    (tmp_path / "leaflet.png").write_bytes(b"%PDF-1.4 a leaflet, not a picture")

    page = _sign_in(browser, site, "drafter", "en")
    page.goto(base + f"/speak/{sid}")
    page.set_input_files("#image-kk", str(tmp_path / "leaflet.png"))
    page.fill("#alt-kk", "Домбыра ойнап тұрған жастар")
    _submit(page, "form.image-upload button")
    assert "leaflet.png: the file is not a JPEG, PNG or WebP image" in page.inner_text("p.error")
    page.set_input_files("#image-kk", str(picture))
    page.fill("#alt-kk", "Домбыра ойнап тұрған жастар")
    _submit(page, "form.image-upload button")
    page.wait_for_selector("p.ok-note")
    img = page.locator("#images-kk img")
    assert img.get_attribute("alt") == "Домбыра ойнап тұрған жастар"
    assert img.evaluate("i => i.complete && i.naturalWidth") == 120
    _submit(page, "form[action$='/submit'] button")

    approver = _sign_in(browser, site, "approver", "en")
    approver.goto(base + f"/speak/{sid}")
    assert approver.locator("#images-kk img").evaluate("i => i.naturalWidth") == 120
    _submit(approver, "button[value=approve]")

    page.reload()
    for box in page.locator("input[name=account]").all():
        box.check()
    _submit(page, "form[action$='/schedule'] button[type=submit]")
    assert page.locator("tr[data-status=sent]").count() == 2
    (status,) = platforms.live("mastodon")
    (upload,) = platforms.uploads["mastodon"]
    assert status["media_ids"] == [upload["id"]]
    assert upload["fields"]["description"] == "Домбыра ойнап тұрған жастар"

    reader = browser.new_context(locale="kk").new_page()
    reader.goto(base + "/news/berlin/kk")
    news_img = reader.locator("figure.news-image img")
    assert news_img.get_attribute("src", timeout=5000).startswith("/news-media/")
    assert news_img.evaluate("i => i.complete && i.naturalWidth") == 120

    with db.session() as s:
        s.add(Author(platform="mastodon", handle="tv@state.example", actor_type="state_media"))
    platforms.engage(
        f"mastodon:{status['id']}",
        likes=[{"handle": "tv@state.example", "name": "State TV"}, {"handle": "anon@x.social"}],
    )
    jobs.enqueue("collect_reach_now")
    page.goto(base + f"/speak/{sid}/reach")
    chart = page.locator("#chart-audience svg:visible")  # one of its two drawings shows
    assert chart.get_attribute("role") == "img"
    assert "2 accounts replied, reposted or liked" in page.inner_text("#audience")
    assert page.locator("#audience-named li").inner_text().startswith("State TV")
    page.screenshot(path=str(_screens(tmp_path) / "speak-audience-en.png"), full_page=True)


def test_counters_and_previews_follow_typing_and_agree_with_the_server(
    site: dict[str, Any], db: Database, platforms: PlatformServer, browser: Any, tmp_path: Path
) -> None:
    every_channel(db, site, site["settings"], platforms)
    with db.session() as s:
        sid = service.create_statement(
            db=s,
            actor=site["drafter"],
            mission_id=site["mission_id"],
            title="Culture days",
            lang="kk",
            text="Сәлем.",
        ).id
    page = _sign_in(browser, site, "drafter", "en")
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.goto(site["url"] + f"/speak/{sid}")
    channels = ("x", "bluesky", "mastodon", "telegram", "facebook", "email", "web")
    assert page.locator("#counters-kk").get_attribute("aria-live") == "polite"

    def shown(channel: str) -> tuple[int, str, str]:
        item = page.locator(f"#counters-kk li[data-account='{site[channel]}']")
        card = page.locator(f"#previews-kk article[data-account='{site[channel]}']")
        count = int(item.get_attribute("data-count") or -1)
        return count, item.inner_text(), card.locator(".body").inner_text()

    for name, text in COUNTING_SAMPLES.items():
        page.fill("#text-kk", "  " + text + "\n")  # typed; the outer spaces are not sent
        for channel in channels:
            count, words, body = shown(channel)
            # the script's figure is the server's, for Cyrillic, Kazakh, Chinese, Arabic,
            # emoji and links alike
            assert count == server_figure(db, site, channel, text), (name, channel)
            assert body == text
            assert f"{count} of" in words or f"{count} characters (no limit)" in words
    count, words, _ = shown("x")
    assert count == len("Толығырақ: ") + 23 + len(" және ") + 23  # a link counts 23 on X

    long_text = "Посольство Казахстана проводит дни культуры. " * 7
    page.fill("#text-kk", long_text)
    n = len(long_text.strip())
    x_item = page.locator(f"#counters-kk li[data-account='{site['x']}']")
    assert x_item.get_attribute("class") == "over"
    assert x_item.inner_text().endswith(f"{n} of 280 characters: too long by {n - 280}")
    assert "over" in (
        page.locator(f"#previews-kk article[data-account='{site['x']}']").get_attribute("class")
        or ""
    )
    mastodon = page.locator(f"#counters-kk li[data-account='{site['mastodon']}']")
    assert mastodon.get_attribute("class") == "fits"
    assert mastodon.inner_text().endswith(f"{n} of 500 characters")
    page.screenshot(path=str(_screens(tmp_path) / "speak-previews-over.png"), full_page=True)

    # a variant for X replaces the text on X only; the headline becomes the e-mail subject
    page.click("#version-kk details:not(.preview-box) summary")
    page.fill("#variant-kk-x", "Қысқа мәтін X үшін.")
    assert shown("x")[0] == len("Қысқа мәтін X үшін.")
    assert shown("x")[2] == "Қысқа мәтін X үшін."
    assert x_item.get_attribute("class") == "fits"
    assert shown("bluesky")[2] == long_text.strip()
    email = page.locator(f"#previews-kk article[data-account='{site['email']}'] .subject")
    assert email.inner_text() == "Culture days"  # no headline yet: the statement's title
    page.fill("#headline-kk", "Мәдениет күндері")
    assert email.inner_text() == "Мәдениет күндері"
    assert _serious_violations(page) == []  # previews, an over-limit counter, the no-model note
    page.fill("#text-kk", "")
    assert (
        "empty" in page.locator(f"#counters-kk li[data-account='{site['telegram']}']").inner_text()
    )
    assert console == []

    # approved, then edited and submitted again: the approver sees what changed
    with db.session() as s:
        for who, step, args in (
            ("drafter", service.save_version, {"lang": "kk", "text": "Бүгін Берлинде кездесу."}),
            ("drafter", service.submit, {}),
            ("approver", service.decide, {"approve": True}),
            ("drafter", service.save_version, {"lang": "kk", "text": "Ертең Берлинде кездесу."}),
            ("drafter", service.submit, {}),
        ):
            step(db=s, actor=site[who], statement_id=sid, **args)
    approver = _sign_in(browser, site, "approver", "ru")
    approver.goto(site["url"] + f"/speak/{sid}")
    # what a screen reader reads: the words say which is which, not only the colour
    assert approver.locator("#changes del").text_content() == "удалено: Бүгін (конец удалённого)"
    assert (
        approver.locator("#changes ins").text_content() == "добавлено: Ертең (конец добавленного)"
    )
    # what the eye sees: struck through and underlined
    assert (
        approver.locator("#changes del").evaluate("e => getComputedStyle(e).textDecorationLine")
        == "line-through"
    )
    assert (
        approver.locator("#changes ins").evaluate("e => getComputedStyle(e).textDecorationLine")
        == "underline"
    )
    assert approver.locator("li.superseded").count() == 1
    approver.screenshot(path=str(_screens(tmp_path) / "speak-approver-diff.png"), full_page=True)
    assert _serious_violations(approver) == []


def _serious_violations(page: Any) -> list[str]:
    """Return axe-core's serious and critical WCAG A/AA findings on the page."""
    from axe_playwright_python.sync_playwright import Axe

    result = Axe().run(page, options=AXE_OPTIONS).response
    return [
        f"{v['id']}: {[node['target'] for node in v['nodes'][:3]]}"
        for v in result["violations"]
        if v.get("impact") in SERIOUS
    ]
