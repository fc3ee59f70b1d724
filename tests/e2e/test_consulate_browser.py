"""The e-consulate end to end in chromium at a phone's size: a visitor and an officer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from tests.consulate.support import PASSWORD, PNG_2x2, Sink, free_port, jpeg_with_gps, link_in, pdf
from tests.consulate.support import world as make_world
from tests.e2e.conftest import free_port as free_http_port
from tests.e2e.conftest import screens, serve_app

from elshi.app import create_app
from elshi.db import Database
from elshi.settings import Settings

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def site(settings: Settings, db: Database) -> Iterator[dict[str, Any]]:
    """elshi on loopback with two missions, their officers, and a real SMTP server."""
    make_world(db)
    sink = Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    port = free_http_port()
    settings.smtp_host, settings.smtp_port = "127.0.0.1", smtp.port
    settings.public_url = f"http://127.0.0.1:{port}"
    try:
        with serve_app(create_app(settings, db=db), port) as url:
            yield {"url": url, "mail": sink}
    finally:
        smtp.stop()


def _files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, data in (
        ("passport.pdf", pdf("passport")),
        ("photo.jpg", jpeg_with_gps()),
        ("hotel.png", PNG_2x2),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        out[name] = path
    return out


def test_visitor_applies_for_a_visa_and_an_officer_decides(
    site: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    url, mail = site["url"], site["mail"]
    shots = screens(tmp_path)
    files = _files(tmp_path)
    hosts: list[str] = []
    errors: list[str] = []

    visitor_ctx = browser.new_context(
        viewport=PHONE, locale="en-GB", is_mobile=True, has_touch=True
    )
    officer_ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    for ctx in (visitor_ctx, officer_ctx):
        ctx.on("request", lambda r: hosts.append(urlsplit(r.url).hostname or r.url))
    visitor, officer = visitor_ctx.new_page(), officer_ctx.new_page()
    for page in (visitor, officer):
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # The officer opens slots for tomorrow.
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    officer.goto(url + "/consular")
    officer.fill("#email", "officer.a@mfa.example")
    officer.fill("#password", PASSWORD)
    officer.click("form.stack button[type=submit]")
    officer.wait_for_url(url + "/consular")
    officer.click("nav.subnav a[href='/consular/slots']")
    officer.fill("#day", tomorrow)
    officer.fill("#start", "10:00")
    officer.fill("#count", "4")
    officer.fill("#capacity", "2")
    officer.click("form.search button[type=submit]")
    officer.wait_for_url("**notice=slots*")
    assert "0/2" in officer.locator("main").inner_text()

    # The visitor signs up on a phone and confirms the e-mail.
    visitor.goto(url + "/consulate/")
    assert visitor.locator("link[rel=manifest]").count() == 1
    visitor.click("a[href='/consulate/signup']")
    visitor.fill("#name", "Aigerim Visitor")
    visitor.fill("#email", "aigerim@example.org")
    visitor.fill("#phone", "+7 701 555 0101")
    visitor.fill("#password", "short")
    visitor.click("form.stack button[type=submit]")
    assert "at least 12 characters" in visitor.locator(".field-error").inner_text()
    visitor.fill("#password", PASSWORD)
    visitor.click("form.stack button[type=submit]")
    visitor.wait_for_url("**/consulate/login?notice=check_mail")
    visitor.screenshot(path=str(shots / "consulate-login-phone.png"))
    [letter] = mail.texts("aigerim@example.org")
    visitor.goto(link_in(letter, "/consulate/verify"))
    visitor.wait_for_url("**notice=verified")
    visitor.fill("#email", "aigerim@example.org")
    visitor.fill("#password", PASSWORD)
    visitor.click("form.stack button[type=submit]")
    visitor.wait_for_url(url + "/consulate/home")
    registered = visitor.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert registered == url + "/consulate/"

    # Register a stay.
    visitor.click("header.top .menu-toggle")  # on a phone the menu is folded
    visitor.click("nav.main a[href='/consulate/stays/new']")
    visitor.fill("#country_code", "Germany")  # the country picker, as a box with suggestions
    visitor.fill("#city", "Berlin")
    visitor.fill("#address", "Hotel Adlon")
    visitor.fill("#arrive_on", date.today().isoformat())
    visitor.fill("#leave_on", (date.today() + timedelta(days=14)).isoformat())
    visitor.fill("#companion_0_name", "Dias")
    visitor.fill("#companion_0_relation", "son")
    visitor.click("#continue")
    assert "Germany" in visitor.locator("#answers").inner_text()
    visitor.click("#register")
    visitor.wait_for_url("**notice=stay")
    assert visitor.locator("#stays form[action$='/confirm']").count() == 0

    # Apply for a visa with two documents.
    visitor.click("header.top .menu-toggle")
    visitor.click("nav.main a[href='/consulate/services']")
    visitor.click("#service-visa button[type=submit]")
    visitor.wait_for_url("**/consulate/requests/*")
    request_url = visitor.url
    visitor.fill("#full_name", "Aigerim Visitor")
    visitor.fill("#birth_date", "1991-04-05")
    visitor.fill("#passport_number", "N7654321")
    visitor.select_option("#purpose", "tourism")
    visitor.fill("#entry_date", (date.today() + timedelta(days=20)).isoformat())
    visitor.click("button[value=save]")
    visitor.wait_for_url("**notice=saved")
    for kind, name in (("passport", "passport.pdf"), ("photo", "photo.jpg")):
        visitor.select_option("#document-kind", kind)
        visitor.set_input_files("#file", str(files[name]))
        visitor.click("#upload button[type=submit]")
        visitor.wait_for_url("**notice=uploaded")
    assert visitor.locator("#documents li").count() == 2
    visitor.click("#continue")
    visitor.wait_for_url("**/check")
    visitor.click("#submit")
    visitor.wait_for_url("**notice=submitted")
    assert visitor.locator("#status").inner_text() == "submitted"

    # Book an appointment.
    visitor.click("#book")
    visitor.wait_for_url("**notice=booked")
    assert tomorrow in visitor.locator("#booked").inner_text()
    visitor.screenshot(path=str(shots / "consulate-request-phone.png"), full_page=True)

    # The officer claims it and asks for one more document.
    officer.goto(url + "/consular")
    officer.click("table.queue a")
    assert "Aigerim Visitor" in officer.locator("#applicant").inner_text()
    officer.click("#claim")
    officer.wait_for_url("**notice=claimed")
    officer.fill("#ask-note", "Please add your hotel booking.")
    officer.click("#ask")
    officer.wait_for_url("**notice=asked")

    # The visitor sees the request, uploads the document and sends it back.
    visitor.goto(request_url)
    assert visitor.locator("#status").inner_text() == "more documents needed"
    assert "hotel booking" in visitor.locator("#asked").inner_text()
    visitor.select_option("#document-kind", "invitation")
    visitor.set_input_files("#file", str(files["hotel.png"]))
    visitor.click("#upload button[type=submit]")
    visitor.wait_for_url("**notice=uploaded")
    visitor.click("#continue")
    visitor.wait_for_url("**/check")
    visitor.click("#submit")
    visitor.wait_for_url("**notice=submitted")
    assert visitor.locator("#status").inner_text() == "in review"

    # The officer approves; the visitor sees the approval and who looked at the file.
    officer.goto(officer.url.split("?")[0])
    assert officer.locator("#documents li").count() == 3
    officer.click("#approve")
    officer.wait_for_url("**notice=decided")
    officer.goto(url + f"/consular/appointments?day={tomorrow}")
    assert "Aigerim Visitor" in officer.locator("table.day").inner_text()
    officer.screenshot(path=str(shots / "consular-day-desktop.png"))

    visitor.goto(request_url)
    assert visitor.locator("#status").inner_text() == "approved"
    visitor.screenshot(path=str(shots / "consulate-approved-phone.png"), full_page=True)
    visitor.goto(url + "/consulate/access")
    assert "officer.a" in visitor.locator("#access").inner_text()
    subjects = [t.split("\n", 1)[0] for t in mail.texts("aigerim@example.org")]
    assert any("approved" in s for s in subjects) and any("more documents" in s for s in subjects)

    # A phone-sized page does not scroll sideways.
    width = visitor.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    visitor_ctx.close()
    officer_ctx.close()
    assert set(hosts) == {"127.0.0.1"}, set(hosts)
    assert not [m for m in errors if "Content Security Policy" in m], errors
