"""axe-core on every page template, staff and citizen, on a desktop and a phone, in kk, ru, en.

The pages are those of `elshi.web.policy` (as tests/platform/test_every_page.py renders them),
served from the demo world by uvicorn and opened in Debian's chromium. axe-core's script comes
inside the axe-playwright-python package (nothing is fetched at run time). Each page is checked
once per screen size, in one language chosen in turn, so every language and every template is
covered without checking each page nine times. A violation of WCAG 2.0/2.1 A or AA whose
impact is serious or critical fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import AXE_OPTIONS as AXE_OPTIONS  # other browser tests use them
from tests.e2e.conftest import SERIOUS as SERIOUS
from tests.e2e.conftest import serious_violations, serve_app
from tests.page_world import EXPECTED_STATUS, World, demo_world, page_routes, pages

from elshi.app import create_app
from elshi.demo.people import PEOPLE, STAFF
from elshi.web import i18n

pytestmark = pytest.mark.browser

SCREENS = {"desktop": (1280, 800), "phone": (390, 844)}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[World]:
    """The demo, loaded once for the module."""
    yield from demo_world(tmp_path_factory, sqlite_template)


def sample(world: World) -> list[tuple[str, str, str]]:
    """(role, citizen e-mail, URL) with a language each: every route once, languages in turn."""
    out: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    langs = i18n.LANGUAGES
    for n, (path, who) in enumerate(page_routes()):
        lang = langs[n % len(langs)]
        for role, email, url in pages(world, path, who, lang):
            if (path, role) in seen or url in EXPECTED_STATUS:
                continue
            seen.add((path, role))
            sep = "&" if "?" in url else "?"
            out.append((role, email, f"{url}{sep}lang={lang}"))
    return out


def _sign_in(page: Any, base: str, world: World, role: str, email: str) -> None:
    if role == "anonymous":
        return
    if role == "citizen":
        page.goto(f"{base}/consulate/login")
    else:
        page.goto(f"{base}/login")
        email = "admin@demo.elshi.example" if role == "admin" else STAFF[0][0]
    page.fill("#email", email)
    page.fill("#password", world.password)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_load_state()


def test_no_serious_accessibility_violation_on_any_page(browser: Any, world: World) -> None:
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    assert "axe" in axe.axe_script[:200].lower()  # the bundled script, not a download
    app = create_app(world.settings, db=world.db)
    urls = sample(world)
    assert {role for role, _, _ in urls} >= {"admin", "consul", "citizen", "anonymous"}
    failures: list[str] = []
    checked = 0
    with serve_app(app) as base:
        for screen, (width, height) in SCREENS.items():
            contexts: dict[tuple[str, str], Any] = {}
            try:
                for role, email, url in urls:
                    key = (role, email)
                    if key not in contexts:
                        ctx = browser.new_context(viewport={"width": width, "height": height})
                        page = ctx.new_page()
                        _sign_in(page, base, world, role, email)
                        contexts[key] = (ctx, page)
                    page = contexts[key][1]
                    response = page.goto(base + url)
                    assert response is not None and response.status < 500, url
                    checked += 1
                    failures += [
                        f"{screen} {role} {url}: {v}" for v in serious_violations(axe, page)
                    ]
            finally:
                for ctx, _ in contexts.values():
                    ctx.close()
    assert checked >= 2 * 40
    assert not failures, f"{len(failures)} violations:\n" + "\n".join(failures)


def test_the_menu_folds_on_a_phone(browser: Any, world: World) -> None:
    """On a phone the staff menu is one button until opened; on a desktop it is all there."""
    app = create_app(world.settings, db=world.db)
    with serve_app(app) as base:
        for (width, height), folded in (((390, 844), True), ((1280, 800), False)):
            ctx = browser.new_context(viewport={"width": width, "height": height})
            try:
                page = ctx.new_page()
                _sign_in(page, base, world, "admin", "")
                page.goto(f"{base}/posts?lang=ru")
                link = page.locator("nav.main a[href='/explore']")
                assert link.is_visible() is not folded
                if folded:
                    page.locator("header.top .menu-toggle").click()
                    assert link.is_visible()
                    box = page.locator("header.top").bounding_box()
                    assert box is not None and box["width"] <= width
            finally:
                ctx.close()
        # The citizen's pages fold the same way.
        ctx = browser.new_context(viewport={"width": 390, "height": 844})
        try:
            page = ctx.new_page()
            _sign_in(page, base, world, "citizen", PEOPLE[2].email)
            page.goto(f"{base}/consulate/home")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
        finally:
            ctx.close()
