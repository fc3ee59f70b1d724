"""The first hour in a real browser, on a server that runs on a port of its own (not 8000).

One server for the module: the demo loaded into a SQLite copy, its enrichment, narrative and
watch-list jobs run in-process on an immediate queue (as `elshi demo` queues them for its
worker), a real SMTP server for alert e-mails. Then:

- after the demo, the dashboard's sentiment chart has numbers, share of voice and most
  mentioned are not empty;
- the alert rule form shows only the chosen kind's sentence with scripts, every kind without;
- a triggered alert's e-mail links to the port the server runs on;
- alert rules are saved while enrichment writes to the same SQLite file (no "database is
  locked"); this one runs last, as it leaves posts waiting for enrichment.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from tests.conftest import _clear_env
from tests.consulate.support import Sink
from tests.e2e.conftest import free_port, screens, serve_app
from tests.e2e.test_accessibility import AXE_OPTIONS, SERIOUS
from tests.workspace_helpers import add_post

from elshi import jobs
from elshi.alerts import wording
from elshi.alerts.models import Alert, AlertRule
from elshi.app import create_app
from elshi.db import Database
from elshi.demo import load_demo
from elshi.listen.models import Annotation, Post, Source
from elshi.nlp.jobs import newest_post_id
from elshi.nlp.pipeline import enrich_posts
from elshi.settings import Settings, load_settings
from elshi.watch.models import Watch
from elshi.web import i18n

pytestmark = pytest.mark.browser

#: Demo posts: enough for every chart of a dashboard, few enough to enrich in seconds.
DEMO_POSTS = 120
#: Posts waiting for enrichment while the rule form is sent.
BACKLOG = 3000
DUTY = "duty@mfa.example"


@dataclass
class Hour:
    """The served demo: its address and port, database, settings, sign-in and mail sink."""

    url: str
    port: int
    db: Database
    settings: Settings
    email: str
    password: str
    sink: Sink
    watch_id: int
    ids: dict[str, Any] = field(default_factory=dict)


def run_jobs_after(db: Database, settings: Settings, after_id: int) -> None:
    """Run what the queue runs on posts stored after `after_id` (enrichment, then narratives
    and watch lists, then alerts and their deliveries), here and now."""
    immediate = settings.model_copy(update={"queue_url": "memory://", "queue_immediate": True})
    jobs.bind(immediate, db)
    jobs.enqueue("enrich_new_posts", after_id)


@pytest.fixture(scope="module")
def hour(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Hour]:
    from aiosmtpd.controller import Controller

    home = tmp_path_factory.mktemp("first-hour") / "home"
    home.mkdir()
    shutil.copy(sqlite_template, home / "elshi.db")
    port = free_port()
    assert port != 8000
    sink = Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    with pytest.MonkeyPatch.context() as mp:
        _clear_env(mp)
        mp.setenv("ELSHI_HOME", str(home))
        mp.setenv("ELSHI_DATABASE_URL", f"sqlite:///{home / 'elshi.db'}")
        mp.setenv("ELSHI_DEMO", "1")
        settings = load_settings(demo=True, port=port)  # as `elshi demo --port` loads them
        settings.smtp_host, settings.smtp_port = "127.0.0.1", smtp.port
        settings.smtp_from = "elshi <no-reply@mfa.example>"
        db = Database(settings)
        try:
            info = load_demo(db, settings=settings, posts=DEMO_POSTS)
            run_jobs_after(db, settings, 0)
            with db.session() as s:
                watch_id = s.scalar(
                    select(Watch.id).where(Watch.name == "Kazakhstan–China relations")
                )
                assert watch_id is not None
            with serve_app(create_app(settings, db=db), port=port) as url:
                yield Hour(
                    url=url,
                    port=port,
                    db=db,
                    settings=settings,
                    email=info["email"],
                    password=info["password"],
                    sink=sink,
                    watch_id=watch_id,
                )
        finally:
            smtp.stop()
            db.dispose()


@pytest.fixture
def page(hour: Hour, browser: Any) -> Iterator[Any]:
    """A signed-in page in English on a desktop."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    try:
        yield sign_in(context.new_page(), hour)
    finally:
        context.close()


def sign_in(page: Any, hour: Hour) -> Any:
    page.goto(f"{hour.url}/login?lang=en")
    page.fill("#email", hour.email)
    page.fill("#password", hour.password)
    with page.expect_navigation():
        page.click("form.stack button[type=submit]")
    return page


def chart_numbers(page: Any, slug: str) -> list[tuple[str, list[float]]]:
    """The rows of a chart's table of numbers (what screen readers read): label, values."""
    rows = []
    for row in page.locator(f"#chart-{slug} table.chart-table tr").all():
        label = row.locator("th[scope=row]")
        if not label.count():
            continue
        cells = row.locator("td").all_inner_texts()
        values = [float(re.sub(r"[^\d.]", "", c.replace(",", ""))) for c in cells if c.strip()]
        rows.append((label.inner_text(), values))
    return rows


def add_rule(page: Any, hour: Hour, name: str, terms: str, emails: str = "") -> None:
    """Fill in and send the rule form for a term rule, as a person would."""
    page.goto(f"{hour.url}/watch/{hour.watch_id}/alerts")
    page.fill("#rule-name", name)
    page.select_option("#kind", "term")
    page.fill("#terms", terms)
    if emails:
        page.fill("#emails", emails)
    with page.expect_navigation():
        page.click("#rule-form button[type=submit]")


# ---------------------------------------------------------------------------- after the demo


def test_after_the_demo_the_dashboard_has_sentiment_voice_and_mentions(
    hour: Hour, page: Any
) -> None:
    page.goto(f"{hour.url}/watch/{hour.watch_id}")
    assert page.locator("#chart-sentiment").is_visible()
    sentiment = chart_numbers(page, "sentiment")
    assert sentiment, "the sentiment chart has no day with a number"
    assert sum(v for _, values in sentiment for v in values) > 0
    # The drawing shows it too: some bar or line of the chart is not on the zero line.
    shapes = page.locator("#chart-sentiment .chart-wide svg").locator("path, rect, polyline")
    assert shapes.count() > 0
    voice = chart_numbers(page, "voice")
    assert voice and all(values for _, values in voice)
    assert sum(v for _, values in voice for v in values) > 0
    mentioned = chart_numbers(page, "entities")
    assert mentioned and sum(v for _, values in mentioned for v in values) > 0


# ---------------------------------------------------------------------------- the rule form


def test_the_rule_form_shows_only_the_chosen_kind_with_scripts(
    hour: Hour, page: Any, tmp_path: Path
) -> None:
    page.goto(f"{hour.url}/watch/{hour.watch_id}/alerts")
    page.select_option("#kind", "term")
    assert page.locator("#kind-term").is_visible()
    assert page.locator("#terms").is_enabled()
    for other, setting in (
        ("volume_spike", "threshold"),
        ("negative_jump", "jump_min_count"),
        ("source_silent", "silent_hours"),
    ):
        assert page.locator(f"#kind-{other}").is_hidden()
        assert page.locator(f"#{setting}").is_disabled()  # not sent with the form
    page.select_option("#kind", "volume_spike")
    sentence = page.locator("#kind-volume_spike .sentence").inner_text()
    assert sentence.startswith("Alert me when at least") and "Kazakhstan–China" in sentence
    assert page.locator("#kind-term").is_hidden()
    page.screenshot(path=str(screens(tmp_path) / "rule-form-en.png"), full_page=True)


def test_the_words_follow_the_number_typed(hour: Hour, page: Any) -> None:
    """Typing a count changes the words around it to the plural form it needs, the same
    words the server writes for that count (Russian: 1 пост, 3 поста, 5 постов)."""
    page.goto(f"{hour.url}/watch/{hour.watch_id}/alerts?lang=ru")
    page.select_option("#kind", "volume_spike")
    words = page.locator("#kind-volume_spike p.sentence span.words")
    seen: set[tuple[str, ...]] = set()
    expected: list[str] = []
    for count, hours in (("1", "1"), ("3", "2"), ("5", "21"), ("111", "12")):
        page.fill("#min_count", count)
        page.fill("#window_hours", hours)
        expected = [
            w
            for name, w in wording.rule_sentence(
                "volume_spike", {"min_count": count, "window_hours": hours}, "ru"
            )
            if not name
        ]
        assert words.all_text_contents() == expected, (count, hours)
        seen.add(tuple(expected))
    assert len(seen) == 4
    page.fill("#min_count", "много")  # not a number: the words stay as they were
    assert words.all_text_contents() == expected


def test_a_refused_value_names_and_marks_its_field(hour: Hour, page: Any, tmp_path: Path) -> None:
    from axe_playwright_python.sync_playwright import Axe

    page.goto(f"{hour.url}/watch/{hour.watch_id}/alerts?lang=ru")
    page.fill("#rule-name", "Всплеск")
    page.select_option("#kind", "volume_spike")
    page.fill("#threshold", "много")
    with page.expect_navigation():
        page.click("#rule-form button[type=submit]")
    error = page.locator("#form-error").inner_text()
    assert error == f"{i18n.gettext('ru', 'Threshold')}: {i18n.gettext('ru', 'not a number')}"
    field = page.locator("#threshold")
    assert field.get_attribute("aria-invalid") == "true" and field.input_value() == "много"
    assert page.locator("#kind-volume_spike").is_visible()  # the chosen kind stays shown
    assert page.locator("#kind-term").is_hidden()
    page.screenshot(path=str(screens(tmp_path) / "rule-error-ru.png"), full_page=True)
    result = Axe().run(page, options=AXE_OPTIONS).response
    assert [v["id"] for v in result["violations"] if v.get("impact") in SERIOUS] == []


def test_the_rule_form_works_without_scripts(hour: Hour, browser: Any) -> None:
    context = browser.new_context(java_script_enabled=False, locale="en-GB")
    try:
        page = sign_in(context.new_page(), hour)
        page.goto(f"{hour.url}/watch/{hour.watch_id}/alerts")
        for kind in ("volume_spike", "negative_jump", "term", "source_silent"):
            assert page.locator(f"#kind-{kind}").is_visible()
            assert page.locator(f"#kind-{kind} legend").inner_text()
        page.fill("#rule-name", "Against us, no scripts")
        page.select_option("#kind", "negative_jump")
        page.fill("#jump_window_hours", "6")
        page.fill("#window_hours", "72")  # the spike's window: not read for this kind
        with page.expect_navigation():
            page.click("#rule-form button[type=submit]")
        assert page.url.endswith(f"/watch/{hour.watch_id}/alerts")
        row = page.locator("#rules tr", has_text="Against us, no scripts")
        assert "within 6 hours" in row.inner_text()
    finally:
        context.close()
    with hour.db.session() as s:
        rule = s.scalar(select(AlertRule).where(AlertRule.name == "Against us, no scripts"))
        assert rule is not None and rule.kind == "negative_jump"
        assert rule.params["window_hours"] == 6


# ---------------------------------------------------------------------------- alert links


def test_an_alert_e_mail_links_to_the_port_the_server_runs_on(hour: Hour, page: Any) -> None:
    add_rule(page, hour, "Lantern festival", "lanterns", emails=DUTY)
    assert page.url == f"{hour.url}/watch/{hour.watch_id}/alerts"
    before = newest_post_id(hour.db)
    with hour.db.session() as s:
        source = s.scalar(select(Source).where(Source.connector == "demo"))
        last = s.scalar(select(func.max(Post.published_at)))
        assert source is not None and last is not None
        add_post(
            s,
            "China and Beijing light lanterns for the embassy's festival",
            last + timedelta(minutes=5),
            source_id=source.id,
        )
    run_jobs_after(hour.db, hour.settings, before)
    with hour.db.session() as s:
        fired = [a.id for a in s.scalars(select(Alert)) if a.why.get("rule") == "Lantern festival"]
    assert len(fired) == 1
    alert_id = fired[0]
    mails = hour.sink.texts(DUTY)
    assert len(mails) == 1
    link = f"http://127.0.0.1:{hour.port}/alerts/{alert_id}"
    assert link in mails[0].split()
    assert ":8000/" not in mails[0]
    page.goto(link)
    assert "lanterns" in page.locator("#why").inner_text()
    assert "«lanterns»" in page.locator("#alert-rule").inner_text()


# ---------------------------------------------------------------------------- busy database


def _backlog(db: Database, n: int) -> int:
    """Store n more posts (the demo's texts again), none enriched; return the first new id."""
    first = newest_post_id(db) + 1
    with db.session() as s:
        demo = list(s.execute(select(Post.text, Post.lang, Post.published_at).limit(100)))
        source_id = s.scalar(select(Source.id).where(Source.connector == "demo"))
        s.execute(
            insert(Post),
            [
                {
                    "platform": "rss",
                    "external_id": f"backlog-{k}",
                    "connector": "demo",
                    "source_id": source_id,
                    "text": demo[k % len(demo)][0],
                    "lang": None,
                    "published_at": demo[k % len(demo)][2],
                    "metrics": {},
                    "extra": {},
                }
                for k in range(n)
            ],
        )
    return first


class Enricher(threading.Thread):
    """What a worker does with a large import: enrich the posts in batches, then assign their
    narratives, from a database connection of its own, until told to stop."""

    def __init__(self, settings: Settings, first_id: int, last_id: int) -> None:
        super().__init__(daemon=True)
        self.db = Database(settings)
        self.first_id, self.last_id = first_id, last_id
        self.stop = threading.Event()
        self.batches = 0
        self.finished = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            start = self.first_id
            while not self.stop.is_set() and not self.finished:
                end = start + 49
                enrich_posts(self.db, min_id=start, max_id=end, apart=False, batch_size=50)
                enrich_posts(self.db, min_id=start, max_id=end, apart=True, batch_size=50)
                self.batches += 1
                start = end + 1
                self.finished = start > self.last_id
        except BaseException as exc:  # the test reports it
            self.error = exc
        finally:
            self.db.dispose()


def test_alert_rules_are_saved_while_enrichment_writes(hour: Hour, page: Any) -> None:
    first = _backlog(hour.db, BACKLOG)
    worker = Enricher(hour.settings, first, first + BACKLOG - 1)
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while worker.batches == 0:  # the worker is writing
            assert worker.is_alive(), worker.error
            assert time.monotonic() < deadline, "enrichment never wrote a batch"
            time.sleep(0.05)
        names = [f"Busy rule {n}" for n in range(5)]
        for name in names:
            add_rule(page, hour, name, f"term {name}")
            assert page.url == f"{hour.url}/watch/{hour.watch_id}/alerts", page.content()[:2000]
            assert page.locator("#form-error").count() == 0
            assert "database is locked" not in page.content()
        # The worker was writing all the while: it has not reached the end of the backlog.
        assert worker.is_alive() and not worker.finished, worker.error
    finally:
        worker.stop.set()
        worker.join(timeout=120)
    assert worker.error is None, worker.error
    with hour.db.session() as s:
        stored = set(s.scalars(select(AlertRule.name).where(AlertRule.name.in_(names))))
        enriched = s.scalar(
            select(func.count(func.distinct(Annotation.post_id))).where(Annotation.post_id >= first)
        )
    assert stored == set(names)
    assert enriched and enriched >= 50
    rows = page.locator("#rules tbody tr").all_inner_texts()
    assert all(any(name in row for row in rows) for name in names)
