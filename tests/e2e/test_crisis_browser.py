"""Crisis mode in chromium: one officer drafts a broadcast, a second approves and sends it,
a citizen answers from the link in the e-mail on a phone, and the dashboard counts it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from tests.consulate.support import PASSWORD, Sink, free_port
from tests.crisis.support import populate, team
from tests.e2e.conftest import free_port as free_http_port
from tests.e2e.conftest import screens, serve_app

from elshi import jobs
from elshi.app import create_app
from elshi.db import Database
from elshi.settings import Settings

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def site(settings: Settings, db: Database) -> Iterator[dict[str, Any]]:
    """elshi on loopback with a consulate, two duty officers, 5 citizens in Istanbul, SMTP."""
    t = team(db)
    populate(db, t.mission_id, 5, telegram_every=0, unverified_every=0)
    sink = Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    port = free_http_port()
    settings.smtp_host, settings.smtp_port = "127.0.0.1", smtp.port
    settings.public_url = f"http://127.0.0.1:{port}"
    settings.queue_immediate = True  # the send is delivered at once, in the web process
    settings.queue_url = "memory://"
    rt = jobs.bind(settings, db)
    try:
        with serve_app(create_app(settings, db=db, runtime=rt), port) as url:
            yield {"url": url, "mail": sink, "team": t}
    finally:
        smtp.stop()


def _login(page: Any, url: str, email: str) -> None:
    page.goto(url + "/crisis")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(url + "/crisis")


def test_two_officers_send_and_a_citizen_checks_in_on_a_phone(
    site: dict[str, Any], browser: Any, tmp_path: Any
) -> None:
    url, mail = site["url"], site["mail"]
    shots = screens(tmp_path)
    hosts: list[str] = []
    errors: list[str] = []
    desk = {"viewport": {"width": 1280, "height": 900}, "locale": "en-GB"}
    one_ctx, two_ctx = browser.new_context(**desk), browser.new_context(**desk)
    phone_ctx = browser.new_context(viewport=PHONE, locale="en-GB", is_mobile=True, has_touch=True)
    for ctx in (one_ctx, two_ctx, phone_ctx):
        ctx.on("request", lambda r: hosts.append(urlsplit(r.url).hostname or r.url))
    one, two, citizen = one_ctx.new_page(), two_ctx.new_page(), phone_ctx.new_page()
    for page in (one, two, citizen):
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # The first officer draws the area, writes the message, previews and saves it.
    _login(one, url, "duty1@mfa.example")
    one.fill("#title", "Earthquake in Istanbul")
    one.fill("#countries", "TR")
    one.fill("#cities", "Istanbul")
    one.fill("#subject_en", "Earthquake")
    one.fill("#text_en", "An earthquake struck Istanbul. Tell us you are safe.")
    one.fill("#sms_en", "Earthquake. Answer:")
    one.fill("#text_ru", "В Стамбуле землетрясение.")
    one.click("button[value=preview]")
    assert "5 people will be reached" in one.locator("#preview").inner_text()
    assert "UCS-2" in one.locator("#segments-ru").inner_text()
    one.screenshot(path=str(shots / "crisis-preview.png"), full_page=True)
    one.click("#create")
    one.wait_for_url("**notice=created")
    assert "Waiting for a second officer" in one.locator("#broadcasts").inner_text()
    dashboard = one.url.split("?")[0]

    # The second officer approves and sends.
    _login(two, url, "duty2@mfa.example")
    two.goto(dashboard)
    two.click("button[id^=approve-]")
    two.wait_for_url("**notice=approved")
    two.click("button[id^=send-]")
    two.wait_for_url("**notice=sent")
    assert two.locator("#n-people").inner_text() == "5"
    assert two.locator("#n-safe").inner_text() == "0"
    assert len(mail.messages) == 5

    # A citizen opens the link from the e-mail on a phone and answers.
    letter = next(t for t in (mail.texts(f"p{i}@example.org") for i in range(5)) if t)[0]
    link = re.search(r"http://127\.0\.0\.1:\d+/c/\S+", letter)
    assert link, letter
    citizen.goto(link[0])
    assert citizen.evaluate("document.scripts.length") == 0
    width = citizen.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    citizen.screenshot(path=str(shots / "crisis-checkin-phone.png"), full_page=True)
    citizen.click("button.safe >> nth=0")
    assert "You are marked safe" in citizen.locator("#message").inner_text()

    # The dashboard counts the answer.
    two.goto(dashboard)
    assert two.locator("#n-safe").inner_text() == "1"
    assert two.locator("#n-confirmed").inner_text() == "1"
    assert two.locator("#n-estimated").inner_text() == "4"
    two.screenshot(path=str(shots / "crisis-dashboard.png"), full_page=True)
    assert set(hosts) == {"127.0.0.1"}
    assert not errors, errors


def test_a_citizen_turns_on_emergency_alerts_on_a_phone(
    site: dict[str, Any], browser: Any, db: Database, tmp_path: Any
) -> None:
    """The button asks for permission, subscribes with elshi's VAPID key and stores the
    subscription. The browser's push service lies beyond this machine, so its subscribe call
    answers with a subscription on a known push service (nothing is sent to it here) and real
    P-256 keys."""
    import base64

    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from sqlalchemy import select
    from tests.consulate.support import citizen

    from elshi.crisis.models import PushSubscription

    with db.session() as s:
        cid = citizen(s, "alerts@example.org")
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )
    keys = {
        "p256dh": base64.urlsafe_b64encode(point).rstrip(b"=").decode(),
        "auth": base64.urlsafe_b64encode(b"0123456789abcdef").rstrip(b"=").decode(),
    }
    endpoint = "https://fcm.googleapis.com/fcm/send/phone-1"
    url = site["url"]
    ctx = browser.new_context(viewport=PHONE, locale="en-GB", is_mobile=True, has_touch=True)
    ctx.grant_permissions(["notifications"], origin=url)
    ctx.add_init_script(
        "PushManager.prototype.subscribe = function (options) {"
        "  window.__vapidKeyLength = options.applicationServerKey.length;"
        f"  const sub = {{endpoint: {endpoint!r}, keys: {keys!r}}};"
        "  return Promise.resolve({toJSON: () => sub});"
        "};"
    )
    page = ctx.new_page()
    page.goto(url + "/consulate/login")
    page.fill("#email", "alerts@example.org")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r".*/consulate/home.*"))
    page.click("#push-on")
    page.wait_for_selector("#push-state:not([hidden])")
    assert page.inner_text("#push-state") == "This device will receive emergency alerts."
    assert page.evaluate("window.__vapidKeyLength") == 65  # an uncompressed P-256 public key
    page.screenshot(path=str(screens(tmp_path) / "push-on.png"))
    with db.session() as s:
        row = s.scalars(select(PushSubscription).where(PushSubscription.citizen_id == cid)).one()
        assert row.endpoint == endpoint and row.p256dh == keys["p256dh"]
    ctx.close()


@pytest.fixture
def tile_server() -> Iterator[tuple[str, list[str]]]:
    """A map tile server on loopback (what an operator would run): every tile is one PNG."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.consulate.support import PNG_2x2

    asked: list[str] = []

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG_2x2)))
            self.end_headers()
            self.wfile.write(PNG_2x2)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/tiles/{{z}}/{{x}}/{{y}}.png", asked
    finally:
        server.shutdown()
        server.server_close()


def _axe_serious(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe
    from tests.e2e.test_accessibility import AXE_OPTIONS, SERIOUS

    result = Axe().run(page, options=AXE_OPTIONS).response
    out = []
    for v in result["violations"]:
        if v.get("impact") in SERIOUS:
            where = "; ".join(", ".join(map(str, n["target"])) for n in v["nodes"][:3])
            out.append(f"{page.url}: {v['id']} ({where})")
    return out


def test_the_map_its_list_tabs_and_choices_on_a_desktop_and_a_phone(
    site: dict[str, Any],
    browser: Any,
    db: Database,
    settings: Settings,
    tile_server: tuple[str, list[str]],
    tmp_path: Any,
) -> None:
    from sqlalchemy import select
    from tests.crisis.support import sent

    from elshi.crisis import service
    from elshi.crisis.models import Recipient

    url, shots = site["url"], screens(tmp_path)
    tiles_url, tiles_asked = tile_server
    _, cid = sent(db, site["team"], countries="TR", circle="41.01 28.97 40")
    with db.session() as s:
        people = list(
            s.scalars(select(Recipient).where(Recipient.crisis_id == cid).order_by(Recipient.id))
        )
        for n, (note, lat, lon) in enumerate(
            (
                ("Trapped on the 2nd floor", 41.02, 28.95),
                ("Need insulin", 40.99, 29.05),
                ("", None, None),
            )
        ):
            service.record_checkin(
                s,
                crisis_id=cid,
                recipient_id=people[n].id,
                answer="help",
                note=note,
                latitude=lat,
                longitude=lon,
                nonce=f"map-{n}",
            )
        s.expunge_all()
    dashboard = f"{url}/crisis/{cid}"
    errors: list[str] = []
    failures: list[str] = []

    # Outlines only (the default): nothing but elshi is asked for anything.
    desk = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    hosts: list[str] = []
    desk.on("request", lambda r: hosts.append(urlsplit(r.url).netloc))
    page = desk.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _login(page, url, "duty1@mfa.example")
    page.goto(dashboard)
    assert page.locator("svg.crisis-map path.country[data-country=Turkey]").count() == 1
    assert page.locator("svg.crisis-map image").count() == 0
    marker = page.get_by_role("link", name=f"{people[0].name}: Trapped on the 2nd floor")
    assert marker.count() == 1 and marker.evaluate("a => a.closest('svg') !== null")
    markers = page.locator("svg.crisis-map a.report")
    assert markers.count() == 2
    box, svg = markers.first.bounding_box(), page.locator("svg.crisis-map").bounding_box()
    assert box and svg and svg["x"] < box["x"] < svg["x"] + svg["width"]
    assert svg["y"] < box["y"] < svg["y"] + svg["height"]
    listed = page.locator("#help-list li")
    assert listed.count() == 3 and "no position given" in listed.nth(2).inner_text()
    assert listed.first.get_by_role("link", name=people[0].name).count() == 1
    # The follow-up radios sit before their words, on one line each.
    for label in page.locator("label.check:has(input[type=radio])").all():
        radio, words = label.locator("input").bounding_box(), label.bounding_box()
        assert radio and words and radio["width"] < 40 and words["height"] < 60
        assert words["x"] <= radio["x"] < words["x"] + 40
    page.screenshot(path=str(shots / "crisis-map-desktop.png"), full_page=True)
    failures += _axe_serious(page)
    # A keyboard user reaches a marker and follows it to the person's row.
    markers.first.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/people/help#person-{people[0].id}")
    assert people[0].name in page.locator("tr:target").inner_text()
    tabs = page.locator("nav.crisis-tabs a")
    assert tabs.count() == 7
    assert page.locator("nav.crisis-tabs a[aria-current=page]").inner_text() == "Need help"
    assert len({round(t.bounding_box()["y"]) for t in tabs.all()}) == 1  # one row on a desk
    failures += _axe_serious(page)
    page.goto(url + "/crisis")
    failures += _axe_serious(page)
    for label in page.locator("#new-crisis label.check").all():
        radio, words = label.locator("input").bounding_box(), label.bounding_box()
        assert radio and words and radio["width"] < 40 and words["height"] < 60
    assert set(hosts) == {urlsplit(url).netloc}
    desk.close()

    # With the operator's tile server, its tiles lie under the outlines.
    settings.crisis_map_tiles_url = tiles_url
    settings.crisis_map_tiles_attribution = "Tiles: test server"
    phone = browser.new_context(viewport=PHONE, locale="en-GB", is_mobile=True, has_touch=True)
    page = phone.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _login(page, url, "duty1@mfa.example")
    page.goto(dashboard)
    page.wait_for_load_state("networkidle")
    images = page.locator("svg.crisis-map g.tiles image")
    assert images.count() >= 1 and len(tiles_asked) == images.count()
    assert all(re.fullmatch(r"/tiles/\d+/\d+/\d+\.png", p) for p in tiles_asked)
    assert "Tiles: test server" in page.locator("#help-reports figcaption").inner_text()
    svg = page.locator("svg.crisis-map").bounding_box()
    assert svg and svg["width"] <= PHONE["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(shots / "crisis-map-phone.png"), full_page=True)
    failures += _axe_serious(page)
    page.goto(f"{dashboard}/people/help")
    tabs = page.locator("nav.crisis-tabs a")
    rows = {round(t.bounding_box()["y"]) for t in tabs.all()}
    assert len(rows) > 1  # the tabs wrap on a phone
    nav = page.locator("nav.crisis-tabs")
    assert nav.evaluate("n => n.scrollWidth <= n.clientWidth")
    page.screenshot(path=str(shots / "crisis-tabs-phone.png"), full_page=True)
    failures += _axe_serious(page)
    phone.close()
    assert not failures, "\n".join(failures)
    assert not errors, errors
