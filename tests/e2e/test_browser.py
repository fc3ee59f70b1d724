"""A real browser (Debian chromium via Playwright) against elshi served by uvicorn on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests.e2e.conftest import screens as _screens
from tests.e2e.conftest import serve_app

from elshi.app import create_app
from elshi.db import Database
from elshi.demo import load_demo
from elshi.listen.models import Post
from elshi.settings import Settings

KAZAKH_WORD = "ынтымақтастық"
ARABIC = "سفارة كازاخستان تعلن عن أيام الثقافة في برلين"

pytestmark = pytest.mark.browser


@pytest.fixture
def server(settings: Settings, db: Database) -> Iterator[dict[str, Any]]:
    """Serve elshi with demo data on 127.0.0.1 from a thread."""
    info = load_demo(db, settings=settings, posts=400)
    with db.session() as s:
        s.add(
            Post(
                platform="rss",
                external_id="ar-1",
                connector="test",
                lang="ar",
                text=ARABIC,
                metrics={},
                extra={},
            )
        )
    with serve_app(create_app(settings, db=db)) as url:
        yield {**info, "url": url}


def test_sign_in_search_and_switch_language(
    server: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    hosts: list[str] = []
    console: list[str] = []
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="kk-KZ")
    page = context.new_page()
    page.on("request", lambda r: hosts.append(urlsplit(r.url).hostname or r.url))
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)

    page.goto(server["url"] + "/posts")
    assert page.url.startswith(server["url"] + "/login")
    assert page.locator("h1").inner_text() == "Қызметкерлердің кіруі"
    page.screenshot(path=str(_screens(tmp_path) / "login-kk-phone.png"))
    page.fill("#email", server["email"])
    page.fill("#password", server["password"])
    page.click("form.stack button[type=submit]")
    page.wait_for_url(server["url"] + "/posts")

    page.fill("#q", KAZAKH_WORD)
    page.select_option("#language", "kk")
    page.click("form.search button[type=submit]")
    page.wait_for_url("**/posts?q=*")
    summary = page.locator("#summary").inner_text()
    assert summary.startswith("Табылды:")
    found = int("".join(ch for ch in summary.split(":")[1].split("·")[0] if ch.isdigit()))
    texts = page.locator("article.post .text").all_inner_texts()
    assert found > 0 and 0 < len(texts) <= 20
    assert all(KAZAKH_WORD in t for t in texts)
    assert page.locator("article.post .text").first.get_attribute("dir") == "auto"
    assert page.locator("article.post .text").first.get_attribute("lang") == "kk"
    page.locator("article.post").nth(2).scroll_into_view_if_needed()
    page.screenshot(path=str(_screens(tmp_path) / "posts-kk-phone.png"))

    page.click("nav.langs a[hreflang=ru]")
    page.wait_for_url("**lang=ru*")
    assert page.locator("html").get_attribute("lang") == "ru"
    assert page.locator("h1").inner_text() == "Публикации"
    assert page.locator("#summary").inner_text().startswith(f"Найдено: {found}")
    assert page.locator("label[for=q]").inner_text() == "Что искать"
    shot = _screens(tmp_path) / "posts-ru-phone.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    page.goto(server["url"] + "/posts?language=ar")
    arabic = page.locator("article.post .text").first
    assert arabic.inner_text() == ARABIC
    assert arabic.evaluate("e => getComputedStyle(e).direction") == "rtl"
    assert page.locator("label[for=q]").evaluate("e => getComputedStyle(e).direction") == "ltr"
    page.screenshot(path=str(_screens(tmp_path) / "posts-ar-phone.png"))

    page.set_viewport_size({"width": 1280, "height": 900})
    page.click("nav.main a[href='/']")
    assert page.locator("h1").inner_text() == "Обзор"
    assert page.locator(".stat .n").first.inner_text().replace("\xa0", "").replace(" ", "") == "401"
    page.screenshot(path=str(_screens(tmp_path) / "home-ru-desktop.png"), full_page=True)

    page.click("nav.main a[href='/sources']")
    assert page.locator("table.sources tbody tr").count() == 1
    assert page.locator("table.sources .badge").inner_text() == "работает"
    page.screenshot(path=str(_screens(tmp_path) / "sources-ru-desktop.png"))

    page.goto(server["url"] + "/api/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=15_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/posts" in p for p in paths)
    page.screenshot(path=str(_screens(tmp_path) / "api-docs.png"))

    context.close()
    assert hosts and set(hosts) == {"127.0.0.1"}, set(hosts)
    assert not [m for m in console if "Content Security Policy" in m], console
