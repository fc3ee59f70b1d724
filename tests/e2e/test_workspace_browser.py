"""The analyst's workspace in a real browser (Debian chromium via Playwright): sign in, open a
dashboard, filter, open a post, create an alert rule that fires on a fixture stream and
acknowledge it, download a chart, switch to Kazakh; plus checks of labels, contrast and keys."""

from __future__ import annotations

import csv
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests.conftest import FIXTURES
from tests.e2e.conftest import free_port as _free_port
from tests.e2e.conftest import screens as _screens

from elshi.alerts.flows import evaluate_after_batch
from elshi.app import create_app
from elshi.connectors.base import FetchContext
from elshi.db import Database
from elshi.demo import load_demo
from elshi.listen.flows import import_with
from elshi.nlp.pipeline import enrich_posts
from elshi.plugins import get_connector
from elshi.settings import Settings
from elshi.watch.matching import process_posts
from elshi.web import i18n

pytestmark = pytest.mark.browser
STREAM = FIXTURES / "workspace" / "stream.ndjson"

#: Run in the page: every visible form control must have a label the screen reader reads.
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(e => e.type !== 'hidden' && e.offsetParent !== null)
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
               && !e.getAttribute('aria-labelledby'))
  .map(e => e.outerHTML.slice(0, 80))"""

#: Run in the page: WCAG contrast of text against its first opaque background, lowest first.
CONTRAST = """() => {
  const lum = c => { const [r, g, b] = c.match(/[\\d.]+/g).slice(0, 3).map(v => {
      v = v / 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const bg = e => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;
      const m = c.match(/[\\d.]+/g); if (m && (m.length < 4 || +m[3] > 0.5)) return c; }
    return 'rgb(255, 255, 255)'; };
  const out = [];
  for (const e of document.querySelectorAll('main *, header *')) {
    const own = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || e.offsetParent === null || e.closest('svg')) continue;
    const a = lum(getComputedStyle(e).color), b = lum(bg(e));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    out.push([Math.round(ratio * 100) / 100, e.tagName + ' ' + e.textContent.trim().slice(0, 30)]);
  }
  return out.sort((x, y) => x[0] - y[0]).slice(0, 3);
}"""


@pytest.fixture
def server(settings: Settings, db: Database) -> Iterator[dict[str, Any]]:
    """Serve elshi with the demo corpus, enriched and matched, on 127.0.0.1."""
    import uvicorn

    info = load_demo(db, settings=settings, posts=400)
    enrich_posts(db)
    process_posts(db)
    port = _free_port()
    srv = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, db=db), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield {**info, "url": f"http://127.0.0.1:{port}", "settings": settings, "db": db}
    srv.should_exit = True
    thread.join(timeout=10)


def _stream(server: dict[str, Any]) -> int:
    """Import the fixture stream as the queue would, then match it and check the rules."""
    db, settings = server["db"], server["settings"]
    ctx = FetchContext(settings=settings)
    try:
        import_with(db, connector=get_connector("tabular"), config={"path": str(STREAM)}, ctx=ctx)
    finally:
        ctx.close()
    enrich_posts(db)
    result = process_posts(db)
    return evaluate_after_batch(db, settings=settings, matched=result.matched)


#: The smallest rendered size (CSS px) of any shown chart text: its font size times the
#: drawing's scale on screen.
SMALLEST_CHART_TEXT = """() => {
  let least = 1e9;
  for (const t of document.querySelectorAll('figure.chart svg text')) {
    if (!t.getBoundingClientRect().width) continue;
    const scale = t.ownerSVGElement.getScreenCTM().a;
    least = Math.min(least, parseFloat(getComputedStyle(t).fontSize) * scale);
  }
  return least;
}"""


def _accessible(page: Any, where: str) -> None:
    assert page.evaluate(UNLABELLED) == [], where
    worst = page.evaluate(CONTRAST)
    assert worst and worst[0][0] >= 4.5, (where, worst)


def test_analyst_workspace(server: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    hosts: set[str] = set()
    errors: list[str] = []
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, locale="en-GB", accept_downloads=True
    )
    page = context.new_page()
    page.on("request", lambda r: hosts.add(urlsplit(r.url).hostname or r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    url = server["url"]
    shots = _screens(tmp_path)

    # Sign in.
    page.goto(url + "/watch?lang=en")
    page.fill("#email", server["email"])
    page.fill("#password", server["password"])
    page.click("form.stack button[type=submit]")
    page.wait_for_url(url + "/watch?lang=en")

    # Open a dashboard.
    page.click("text=Kazakhstan–China relations")
    page.wait_for_url(re.compile(r".*/watch/\d+$"))
    watch_url = page.url
    total = int(page.locator("#total").inner_text().replace(",", ""))
    assert total > 0
    # Each chart shows one of its two drawings, whose text is at least 12 px on a phone...
    assert page.locator("figure.chart svg:visible").count() == 8
    assert 12 <= page.evaluate(SMALLEST_CHART_TEXT) < 30
    # ... and on a desktop, where the volume chart spans the page and the others share it.
    page.set_viewport_size({"width": 1280, "height": 900})
    assert page.locator("figure.chart svg:visible").count() == 8
    assert page.locator("#chart-volume svg.chart-wide").is_visible()
    page.screenshot(path=str(shots / "dashboard-en-desktop.png"), full_page=True)
    assert 12 <= page.evaluate(SMALLEST_CHART_TEXT) < 30
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.locator("#chart-volume svg title").first.text_content().startswith("Posts per day")
    page.screenshot(path=str(shots / "dashboard-en-phone.png"), full_page=True)
    _accessible(page, "dashboard")

    # Filter by language, with the keyboard.
    page.select_option("#language", "ru")
    page.focus("form.search button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*language=ru.*"))
    russian = int(page.locator("#total").inner_text().replace(",", ""))
    assert 0 < russian < total
    outline = page.evaluate(
        "() => { const b = document.querySelector('form.search button'); b.focus();"
        " return getComputedStyle(b).outlineStyle; }"
    )
    assert outline != "none"

    # Download a chart as PNG and its data as CSV.
    with page.expect_download() as dl:
        page.click("#chart-volume a:has-text('PNG')")
    png = Path(dl.value.path()).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and dl.value.suggested_filename.endswith(".png")
    with page.expect_download() as dl:
        page.click("#chart-languages a:has-text('CSV')")
    rows = Path(dl.value.path()).read_text(encoding="utf-8").splitlines()
    header = next(csv.reader(rows[:1]))
    assert header[0] == "label" and len(rows) == 2  # only Russian after the filter

    # Open a post.
    page.click("ol.top-posts a >> nth=0")
    page.wait_for_url(re.compile(r".*/posts/\d+"))
    assert page.locator("#annotations h3").count() >= 2
    assert page.locator("#sentiment-label").inner_text() in ("negative", "neutral", "positive")
    _accessible(page, "post")

    # From the post to the narratives, and into the first one.
    page.click("#narrative a:has-text('All narratives')")
    page.wait_for_url(url + "/narratives")
    assert page.locator("#narratives li.narrative").count() >= 1  # the demo has stories
    _accessible(page, "narratives")
    page.click("#narratives li.narrative h2 a >> nth=0")
    page.wait_for_url(re.compile(r".*/narratives/\d+$"))
    assert page.locator("#narrative-size").is_visible()
    _accessible(page, "narrative")

    # Create an alert rule on the watch list.
    page.goto(watch_url + "/alerts")
    page.fill("#rule-name", "Border closure")
    page.select_option("#kind", "term")
    page.fill("#terms", "border\nграница\nшекара")
    _accessible(page, "rules")
    with page.expect_navigation():
        page.click("#rule-form button[type=submit]")
    assert page.url == watch_url + "/alerts"
    assert "Border closure" in page.locator("table").inner_text()

    # A fixture stream arrives; the rule fires.
    assert _stream(server) == 1
    page.goto(url + "/alerts")
    assert page.locator("#nav-alerts .count").inner_text() == "1"
    page.click("ul.alerts a >> nth=0")
    assert "3 new posts" in page.locator("#alert-summary").inner_text()
    assert page.locator("#why").inner_text().count("border") >= 1
    _accessible(page, "alert")
    with page.expect_navigation():
        page.click("#ack")
    assert page.locator("#alert-status").inner_text() == "acknowledged"
    assert page.locator("#nav-alerts .count").count() == 0

    # Switch the interface to Kazakh.
    page.goto(watch_url)
    page.click("nav.langs a[hreflang=kk]")
    page.wait_for_url(re.compile(r".*lang=kk.*"))
    assert page.locator("html").get_attribute("lang") == "kk"
    assert page.locator("#forecast-h").inner_text() == i18n.gettext(
        "kk", "Forecast for the next 7 days"
    )
    assert page.locator("nav.main a[href='/watch']").inner_text() == "Бақылау тізімдері"
    page.screenshot(path=str(shots / "dashboard-kk-phone.png"), full_page=True)
    for path in ("/explore", "/alerts", "/admin", "/digest"):
        page.goto(url + path)
        _accessible(page, path)

    assert hosts == {"127.0.0.1"}, hosts
    assert errors == []
    context.close()
