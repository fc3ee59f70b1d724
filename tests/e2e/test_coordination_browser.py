"""An analyst opens a coordinated group in a real browser (Debian chromium via Playwright):
the list, the group's network and its table, the co-actions, then downloads the evidence
pack; axe-core checks both pages on a desktop and a phone."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from tests.coordination.campaigns import ALPHA_HANDLES, ROUNDS, build
from tests.e2e.conftest import screens, serious_violations, serve_app
from tests.workspace_helpers import PASSWORD

from elshi.app import create_app
from elshi.db import Database
from elshi.settings import Settings

pytestmark = pytest.mark.browser


def _sign_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_load_state()


def _width(view_box: str) -> float:
    return float(view_box.split()[2])


def test_an_analyst_opens_a_group_and_downloads_its_evidence(
    browser: Any, settings: Settings, db: Database, tmp_path: Path
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    world = build(db)
    group = world["alpha_group"]
    axe = Axe()
    with serve_app(create_app(settings, db=db)) as base:
        ctx = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 800})
        try:
            page = ctx.new_page()
            _sign_in(page, base, "alpha@example.org")
            page.goto(f"{base}/?lang=en")
            page.get_by_role("link", name="Coordination", exact=True).click()
            page.wait_for_url(f"{base}/coordination")
            assert serious_violations(axe, page) == []
            page.get_by_role("link", name=f"Group {group}", exact=True).click()
            page.wait_for_url(f"{base}/coordination/groups/{group}")

            # The picture: one line per pair of accounts, each account a named link.
            picture = page.locator("#network svg")
            assert picture.is_visible()
            assert picture.locator("line").count() == 6
            for h in ALPHA_HANDLES:
                node = picture.get_by_role("link", name=f"@{h}", exact=True)
                assert node.count() == 1
                assert node.get_attribute("href") == f"/authors/{world['authors'][h]}"
            # ... and the same links as a table beside it.
            assert page.locator("table.edges tbody tr").count() == 6
            # per round 6 pairs of 5 kinds: link, hashtag, hashtag_seq, text and near_text
            assert page.locator("table.timeline tbody tr").count() == ROUNDS * 6 * 5
            page.screenshot(path=str(screens(tmp_path) / "coordination-group.png"), full_page=True)
            assert serious_violations(axe, page) == []

            # With scripts on, the drawing zooms and pans, and comes back whole.
            whole = picture.get_attribute("viewBox")
            page.get_by_role("button", name="Zoom in").click()
            zoomed = picture.get_attribute("viewBox")
            assert _width(zoomed) < _width(whole)
            box = picture.bounding_box()
            page.mouse.move(box["x"] + 5, box["y"] + 5)
            page.mouse.down()
            page.mouse.move(box["x"] + 105, box["y"] + 55)
            page.mouse.up()
            moved = picture.get_attribute("viewBox")
            assert moved.split()[:2] != zoomed.split()[:2] and _width(moved) == _width(zoomed)
            page.get_by_role("button", name="Whole network").click()
            assert picture.get_attribute("viewBox") == whole

            # A node is reachable by keyboard and leads to the author's page.
            picture.get_by_role("link", name="@troll_two", exact=True).focus()
            page.keyboard.press("Enter")
            page.wait_for_url(f"{base}/authors/{world['authors']['troll_two']}")
            page.go_back()

            with page.expect_download() as caught:
                page.locator("#evidence-link").click()
            download = caught.value
            assert download.suggested_filename == f"elshi-group-{group}-evidence.zip"
            saved = tmp_path / "pack.zip"
            download.save_as(saved)
            z = zipfile.ZipFile(saved)
            assert sorted(z.namelist()) == [
                "accounts.csv",
                "coactions.csv",
                "graph.graphml",
                "posts.csv",
            ]
            g = nx.read_graphml(io.BytesIO(z.read("graph.graphml")))
            assert g.number_of_nodes() == 4 and g.number_of_edges() == 6
            rows = z.read("coactions.csv").decode("utf-8-sig").splitlines()
            assert len(rows) == 1 + ROUNDS * 6 * 5

            # The same evidence as a PDF, beside the ZIP.
            with page.expect_download() as caught:
                page.locator("#evidence-pdf").click()
            pdf = caught.value
            assert pdf.suggested_filename == f"elshi-group-{group}-evidence.pdf"
            saved = tmp_path / "evidence.pdf"
            pdf.save_as(saved)
            assert saved.read_bytes()[:4] == b"%PDF"

            # On a phone the network and its table stack; axe finds nothing serious.
            phone = ctx.new_page()
            phone.set_viewport_size({"width": 390, "height": 844})
            phone.goto(f"{base}/coordination/groups/{group}?lang=kk")
            assert phone.locator("#network svg").is_visible()
            assert serious_violations(axe, phone) == []
            phone.goto(f"{base}/coordination?lang=ru")
            assert serious_violations(axe, phone) == []
        finally:
            ctx.close()
