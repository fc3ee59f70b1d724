"""A citizen's first hour on a phone, with no SMTP server: the link waits in the outbox.

elshi runs on a port of its own (never the default 8000) with no public address set, so the
link in the verification e-mail must carry that port. An administrator opens it from the
outbox page, as one would on a server without e-mail; the citizen then signs in, registers a
stay with the country picker, checks the answers, applies, checks again and books a time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tests.consulate.support import PASSWORD, PNG_2x2, pdf, slot
from tests.consulate.support import world as make_world
from tests.e2e.conftest import free_port, screens, serve_app

from elshi.app import create_app
from elshi.consulate.models import Slot
from elshi.db import Database
from elshi.missions.models import Mission
from elshi.settings import Settings

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}
EMAIL = "dana@example.org"


@pytest.fixture
def site(settings: Settings, db: Database) -> Iterator[dict[str, Any]]:
    """elshi on a free loopback port, no SMTP, no public address: links follow the port."""
    w = make_world(db)
    with db.session() as s:
        s.get(Mission, w.a).timezone = "Europe/Berlin"  # type: ignore[union-attr]
        slot_id = slot(s, w.a, 2, hours=72)
    port = free_port()
    while port == 8000:
        port = free_port()
    settings.smtp_host, settings.public_url = "", ""
    settings.host, settings.port = "127.0.0.1", port
    with serve_app(create_app(settings, db=db), port) as url:
        yield {"url": url, "port": port, "slot": slot_id, "db": db}


def _serious_violations(page: Any) -> list[str]:
    """axe-core's serious or critical WCAG 2.1 A/AA findings on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe
    from tests.e2e.test_accessibility import AXE_OPTIONS, SERIOUS

    result = Axe().run(page, options=AXE_OPTIONS).response
    return [
        f"{page.url}: {v['id']} ({v['nodes'][0]['target']})"
        for v in result["violations"]
        if v.get("impact") in SERIOUS
    ]


def _verify_link(page: Any, url: str, timeout: float = 20) -> str:
    """Sign in as the administrator and read the link from the kept e-mail in the outbox."""
    page.goto(url + "/login")
    page.fill("#email", "admin@mfa.example")
    page.fill("#password", PASSWORD)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_load_state()
    deadline = time.monotonic() + timeout
    while True:
        page.goto(url + "/admin/outbox")
        assert page.locator("#no-smtp").count() == 1  # the page says e-mails are kept here
        links = page.locator("#outbox ul.links a").all_inner_texts()
        found = [link for link in links if "/consulate/verify?token=" in link]
        if found:
            return found[0]
        assert time.monotonic() < deadline, page.locator("#outbox").inner_text()
        time.sleep(0.3)


def test_a_citizen_signs_up_without_smtp_and_books_a_time(
    site: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    url, port = site["url"], site["port"]
    assert port != 8000
    shots = screens(tmp_path)
    files = {"passport.pdf": pdf("passport"), "photo.png": PNG_2x2}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    errors: list[str] = []
    phone = browser.new_context(viewport=PHONE, locale="en-GB", is_mobile=True, has_touch=True)
    desk = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    citizen, admin = phone.new_page(), desk.new_page()
    for page in (citizen, admin):
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # Sign up: the e-mail is kept in the outbox, not sent.
    citizen.goto(url + "/consulate/signup")
    citizen.fill("#name", "Dana Traveller")
    citizen.fill("#email", EMAIL)
    citizen.fill("#password", PASSWORD)
    citizen.click("form.stack button[type=submit]")
    citizen.wait_for_url("**/consulate/login?notice=check_mail")

    link = _verify_link(admin, url)
    assert link.startswith(f"http://127.0.0.1:{port}/consulate/verify?token="), link

    citizen.goto(link)
    citizen.wait_for_url("**notice=verified")
    citizen.fill("#email", EMAIL)
    citizen.fill("#password", PASSWORD)
    citizen.click("form.stack button[type=submit]")
    citizen.wait_for_url(url + "/consulate/home")

    # Register a stay: a country no one has heard of comes back with the error summary.
    start = date.today() + timedelta(days=2)
    citizen.goto(url + "/consulate/stays/new")
    picker = citizen.locator("#country_code")
    assert picker.evaluate("el => el.tagName") == "INPUT"  # the list became a box
    assert picker.get_attribute("list") == "country_code-list"
    assert citizen.locator("#country_code-list option[value='Germany']").count() == 1
    picker.fill("Narnia")
    citizen.fill("#city", "Berlin")
    citizen.fill("#arrive_on", start.isoformat())
    citizen.fill("#leave_on", (start + timedelta(days=10)).isoformat())
    citizen.click("#continue")
    summary = citizen.locator(".error-summary")
    assert summary.get_attribute("role") == "alert"
    assert "There is a problem" in summary.inner_text()
    assert citizen.evaluate("document.activeElement.id") == "errors"
    summary.locator("a[href='#country_code']").click()
    assert citizen.evaluate("document.activeElement.id") == "country_code"
    described = citizen.locator("#country_code").get_attribute("aria-describedby") or ""
    assert "country_code-error" in described
    assert citizen.locator("#country_code").input_value() == "Narnia"
    citizen.screenshot(path=str(shots / "first-hour-stay-error-phone.png"), full_page=True)
    failures = _serious_violations(citizen)

    citizen.locator("#country_code").fill("Germany")
    citizen.fill("#city", "Bonn")
    citizen.click("#continue")
    answers = citizen.locator("#answers")
    assert "Germany" in answers.inner_text() and "Bonn" in answers.inner_text()
    # Change one answer: back to the form at that field, every answer kept.
    answers.locator("button[name=change][value=city]").click()
    assert citizen.evaluate("document.activeElement.id") == "city"
    assert citizen.locator("#country_code").input_value() == "Germany"
    citizen.fill("#city", "Berlin")
    citizen.click("#continue")
    assert "Berlin" in citizen.locator("#answers").inner_text()
    citizen.screenshot(path=str(shots / "first-hour-stay-check-phone.png"), full_page=True)
    failures += _serious_violations(citizen)
    citizen.click("#register")
    citizen.wait_for_url("**notice=stay")
    stays = citizen.locator("#stays").inner_text()
    assert "Berlin, Germany" in stays and "please confirm" not in stays

    # Apply for a visa: the name comes from the account; check the answers, then submit.
    citizen.goto(url + "/consulate/services")
    citizen.click("#service-visa button[type=submit]")
    citizen.wait_for_url("**/consulate/requests/*")
    request_url = citizen.url
    assert citizen.locator("#full_name").input_value() == "Dana Traveller"
    citizen.fill("#birth_date", "1990-05-06")
    citizen.fill("#passport_number", "N5550101")
    citizen.select_option("#purpose", "tourism")
    citizen.fill("#entry_date", (start + timedelta(days=1)).isoformat())
    citizen.click("button[value=save]")
    citizen.wait_for_url("**notice=saved")
    for kind, name in (("passport", "passport.pdf"), ("photo", "photo.png")):
        citizen.select_option("#document-kind", kind)
        citizen.set_input_files("#file", str(tmp_path / name))
        citizen.click("#upload button[type=submit]")
        citizen.wait_for_url("**notice=uploaded")
    citizen.click("#continue")
    citizen.wait_for_url(request_url + "/check")
    checked = citizen.locator("#answers").inner_text()
    assert "N5550101" in checked and "Dana Traveller" in checked
    assert "passport.pdf" in citizen.locator("#checked-documents").inner_text()
    citizen.screenshot(path=str(shots / "first-hour-request-check-phone.png"), full_page=True)
    failures += _serious_violations(citizen)
    citizen.click("#submit")
    citizen.wait_for_url("**notice=submitted")
    assert citizen.locator("#status").inner_text() == "submitted"

    # Book the time, shown in the mission's time zone.
    citizen.click("#book")
    citizen.wait_for_url("**notice=booked")
    with site["db"].session() as s:
        starts = s.get(Slot, site["slot"]).starts_at  # type: ignore[union-attr]
    local = starts.astimezone(ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%d %H:%M")
    assert f"{local} (Europe/Berlin)" in citizen.locator("#booked").inner_text()
    history = citizen.locator("#history").inner_text()
    assert "(Europe/Berlin)" in history and not re.search(r"\d UTC", history)

    assert citizen.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert not failures, "\n".join(failures)  # the error summary and both check pages
    phone.close()
    desk.close()
    assert not [m for m in errors if "Content Security Policy" in m], errors
