"""The actor registry in a real browser (Debian chromium via Playwright): an analyst at
headquarters uploads a list and the worker's assessment types the accounts, the types show
their reasons, an account's signals show their evidence, two accounts of two platforms become
one actor and its page lists both; an analyst of another mission cannot upload. axe-core
checks every page."""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.e2e.conftest import free_port, screens, serious_violations, serve_app
from tests.workspace_helpers import PASSWORD, add_post, add_source, add_staff, three_missions

from elshi import jobs
from elshi.actors.models import ActorList, ActorListEntry
from elshi.app import create_app
from elshi.db import Database
from elshi.listen.models import Author
from elshi.settings import Settings

pytestmark = pytest.mark.browser

#: A real account of the IRA sample (its first posts are mostly retweets) and a channel.
TWITTER = "AnastasiaR777"
CHANNEL = "anastasia_channel"
POSTS = 40
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def site(settings: Settings, db: Database, shared_data: Path) -> Iterator[dict[str, Any]]:
    """elshi on loopback, the worker's tasks run at once in the web process; two accounts with
    posts in mission Alpha's source, an analyst at headquarters and in each mission."""
    ids: dict[str, Any] = {}
    with db.session() as s:
        ids.update(three_missions(s))
        add_staff(s, "hq@example.org", "analyst", "hq")
        alpha = add_source(s, "Alpha feed", ids["alpha"])
        twitter = Author(platform="twitter", handle=TWITTER, name=TWITTER)
        channel = Author(platform="telegram", handle=CHANNEL, name="Анастасия")
        s.add_all([twitter, channel])
        s.flush()
        path = shared_data / "ira-troll-tweets-sample" / "tweets" / f"{TWITTER}.csv.gz"
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for row in list(csv.DictReader(fh))[:POSTS]:
                when = datetime.strptime(row["publish_date"], "%Y-%m-%d %H:%M:%S")
                post = add_post(
                    s,
                    row["content"],
                    when.replace(tzinfo=UTC),
                    platform="twitter",
                    source_id=alpha.id,
                    author=twitter,
                )
                post.extra = {"retweet": row["retweet"] == "1"}
        add_post(
            s,
            "Новости дня",
            datetime(2026, 3, 1, tzinfo=UTC),
            platform="telegram",
            source_id=alpha.id,
            author=channel,
        )
        ids["twitter"], ids["channel"] = twitter.id, channel.id
        s.commit()
    settings.queue_immediate = True  # the assessment runs at once, as a worker would
    settings.queue_url = "memory://"
    rt = jobs.bind(settings, db)
    with serve_app(create_app(settings, db=db, runtime=rt), free_port()) as url:
        yield {"url": url, **ids}


def _sign_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/login?lang=en")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_load_state()


def test_headquarters_imports_a_list_reads_why_and_links_two_accounts(
    site: dict[str, Any], browser: Any, db: Database, tmp_path: Path
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    base = site["url"]
    axe = Axe()
    shots = screens(tmp_path)
    listed = tmp_path / "research-list.csv"
    listed.write_text(
        "platform,handle,type,country,note\n"
        f"twitter,@{TWITTER},troll,RU,IRA sample\n"
        f"telegram,https://t.me/{CHANNEL},inauthentic,RU,same persona\n"
        "twitter,someone,alien,RU,\n",
        encoding="utf-8",
    )
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    try:
        page = ctx.new_page()
        _sign_in(page, base, "hq@example.org")
        page.goto(f"{base}/?lang=en")
        page.get_by_role("link", name="Actors", exact=True).click()
        page.wait_for_url(f"{base}/actors")
        assert page.locator("#types").inner_text().count("No account has a type yet.") == 1
        assert serious_violations(axe, page) == []

        # The upload: a file chosen in the form, never a path; the bad line is named.
        page.set_input_files("#list-file", str(listed))
        page.fill("#list-name", "Research team list")
        page.locator("#upload button[type=submit]").click()
        page.wait_for_load_state()
        done = page.locator("#imported")
        assert "Accounts stored: 2; lines refused: 1." in done.inner_text()
        assert "line 4, column type" in done.inner_text()
        assert "unknown type 'alien'" in done.inner_text()
        lists = page.locator("#lists table tbody tr")
        assert lists.count() == 1
        assert "Research team list" in lists.first.inner_text()
        assert "research-list.csv" in lists.first.inner_text()
        page.screenshot(path=str(shots / "actors-imported.png"), full_page=True)
        assert serious_violations(axe, page) == []

        # The worker assessed the accounts: types by the list, with their reason.
        page.goto(f"{base}/actors?lang=en")
        assert "suspected inauthentic: 2" in page.locator("#types").inner_text()
        flagged = page.locator("#flagged tbody tr").filter(has_text=f"@{TWITTER}")
        assert flagged.count() == 1
        reason = flagged.locator("td[title]").get_attribute("title") or ""
        assert "the imported list “Research team list” names it (line 2)" in reason

        # The account's page: its type, why, and its signals with their evidence.
        flagged.get_by_role("link").first.click()
        page.wait_for_url(f"{base}/authors/{site['twitter']}")
        assert page.locator("#actor-type").inner_text() == "suspected inauthentic"
        why = page.locator("#type-reason").inner_text()
        assert "By rule: the imported list “Research team list” names it (line 2)." in why
        assert "Country: RU." in why
        signals = page.locator("#signals")
        assert "Signal score:" in signals.inner_text()
        assert "never a verdict on its own" in signals.inner_text()
        amplification = signals.locator('li[data-signal="amplification"]')
        assert re.search(r"reposts: \d+ of posts: 40", amplification.inner_text())
        assert signals.locator("li[data-signal]").count() == 6
        assert serious_violations(axe, page) == []

        # Two accounts, two platforms, one actor.
        page.fill("#link-name", "Anastasia R.")
        page.locator("#actor form button[type=submit]", has_text="Link").click()
        page.wait_for_url(re.compile(re.escape(base) + r"/actors/\d+$"))
        actor_url = page.url
        page.goto(f"{base}/authors/{site['channel']}?lang=en")
        assert page.locator("#actor-type").inner_text() == "suspected inauthentic"
        page.select_option("#link-actor", label="Anastasia R.")
        page.locator("#actor form button[type=submit]", has_text="Link").click()
        page.wait_for_url(actor_url)
        assert page.locator("h1").inner_text().strip() == "Anastasia R."
        for key in ("twitter", "channel"):
            account = page.locator(f"#account-{site[key]}")
            assert account.count() == 1
            assert "suspected inauthentic" in account.inner_text()
            assert "“Research team list” names it" in account.inner_text()
        text = page.locator("main").inner_text()
        assert "X (Twitter)" in text and "Telegram" in text
        assert f"@{TWITTER}" in text and f"@{CHANNEL}" in text
        page.screenshot(path=str(shots / "actor.png"), full_page=True)
        assert serious_violations(axe, page) == []

        # The registry lists the actor with both accounts.
        page.goto(f"{base}/actors?lang=en")
        actor = page.locator("#actors li").filter(has_text="Anastasia R.")
        assert actor.count() == 1 and "@" + CHANNEL in actor.inner_text()

        # On a phone, in Kazakh and Russian, axe finds nothing serious either.
        phone = ctx.new_page()
        phone.set_viewport_size({"width": 390, "height": 844})
        phone.goto(f"{base}/actors?lang=kk")
        assert serious_violations(axe, phone) == []
        phone.goto(f"{base}/authors/{site['twitter']}?lang=ru")
        assert serious_violations(axe, phone) == []
    finally:
        ctx.close()


def test_an_analyst_of_a_mission_cannot_upload_a_list(
    site: dict[str, Any], browser: Any, db: Database, tmp_path: Path
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    base = site["url"]
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    try:
        page = ctx.new_page()
        _sign_in(page, base, "alpha@example.org")
        page.goto(f"{base}/actors?lang=en")
        assert page.locator("#lists").is_visible()
        assert page.locator("#upload").count() == 0
        assert page.locator("#list-file").count() == 0
        assert serious_violations(Axe(), page) == []

        # Posting the form anyway, with the session's own form token, is refused.
        token = CSRF.search(page.content())
        assert token, "the page carries the session's form token"
        r = page.request.post(
            f"{base}/actors/lists?lang=en",
            multipart={
                "csrf_token": token[1],
                "file": {
                    "name": "l.csv",
                    "mimeType": "text/csv",
                    "buffer": b"platform,handle,type\ntwitter,someone,journalist\n",
                },
            },
        )
        assert r.status == 403
        assert "Lists are imported at headquarters." in r.text()
    finally:
        ctx.close()
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ActorList)) == 0
        assert s.scalar(select(func.count()).select_from(ActorListEntry)) == 0
