"""Daily digest: the day against the week, PDF through headless Chromium, e-mail to readers,
once per mission, language and day; `elshi digest` for the demo mission."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from elshi.accounts.service import Principal
from elshi.db import Database
from elshi.digest import flows, service
from elshi.digest.models import DigestRun
from elshi.missions import service as missions
from elshi.settings import Settings, load_settings
from elshi.watch import service as watches
from elshi.watch.models import KnownEvent
from elshi.web import i18n
from tests.workspace_helpers import add_post, add_staff, smtp_server

DAY = date(2026, 10, 20)
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def mission(db: Database) -> str:
    with db.session() as s:
        add_staff(s, "ambassador@example.org", "ambassador", "beijing")
        add_staff(s, "consul@example.org", "consular", "beijing")
        mid = missions.get_mission(db=s, slug="beijing").id  # type: ignore[union-attr]
        w = watches.save_watch(
            db=s, principal=Principal.system(), mission_id=mid, name="KZ–CN", terms="China | Қытай"
        )
        for d in range(1, 22):
            when = datetime.combine(DAY - timedelta(days=d), datetime.min.time(), UTC) + timedelta(
                hours=9
            )
            for k in range(4):
                add_post(s, f"China note {d} {k}", when + timedelta(minutes=k), sentiment="neutral")
        for k in range(8):
            add_post(
                s,
                f"Қытай сапары туралы {k}",
                datetime.combine(DAY, datetime.min.time(), UTC) + timedelta(hours=10, minutes=k),
                lang="kk",
                sentiment="neutral",
                metrics={"likes": k},
            )
        s.add(
            KnownEvent(
                mission_id=mid,
                watch_id=w.id,
                day=DAY + timedelta(days=1),
                kind="visit",
                title="Foreign minister in Beijing",
            )
        )
    return "beijing"


def _digest(db: Database, lang: str) -> service.Digest:
    from elshi.watch.matching import process_posts

    process_posts(db)
    with db.session() as s:
        return service.build(
            db=s, mission=service.get_mission(db=s, slug="beijing"), day=DAY, lang=lang
        )


def test_digest_says_the_day_against_the_week(db: Database, mission: str) -> None:
    d = _digest(db, "kk")
    (w,) = d.watches
    assert w.posts == 8 and w.week_mean == 4 and w.change == 1.0
    assert [p.text for p in w.top_posts] == [
        "Қытай сапары туралы 7",
        "Қытай сапары туралы 6",
        "Қытай сапары туралы 5",
    ]
    assert w.forecast is not None
    html = flows.render_html(d)
    assert html.startswith("<!doctype html>") and '<html lang="kk">' in html
    assert (
        i18n.gettext("kk", "Daily digest") in html
        and i18n.gettext("kk", "What to watch tomorrow") in html
    )
    assert "Foreign minister in Beijing" in html and "(+100%)" in html
    ru = flows.render_html(_digest(db, "ru"))
    assert i18n.gettext("ru", "The day against the week") in ru


def test_digest_pdf_and_email(db: Database, settings: Settings, mission: str) -> None:
    if not CHROMIUM.exists():
        from tests.conftest import service_missing

        service_missing("chromium", FileNotFoundError(str(CHROMIUM)))
    from elshi.watch.matching import process_posts

    process_posts(db)
    with smtp_server() as (port, inbox):
        conf = load_settings(
            **{**settings.model_dump(), "smtp_host": "127.0.0.1", "smtp_port": port}
        )
        db.settings = conf  # the outbox sends with the database's settings
        first = flows.make_and_send(db, settings=conf, mission_slug="beijing", lang="ru", day=DAY)
        again = flows.make_and_send(db, settings=conf, mission_slug="beijing", lang="ru", day=DAY)
    assert (
        first["recipients"] == 1 and first["error"] is None and again["skipped"] == "already made"
    )
    (msg,) = inbox.messages
    assert msg["To"] == "ambassador@example.org"  # consular staff do not get it
    assert msg["Subject"] == f"[elshi] {i18n.gettext('ru', 'Daily digest')}: Beijing, 2026-10-20"
    parts = {p.get_content_type(): p for p in msg.walk()}
    assert "Foreign minister in Beijing" in parts["text/html"].get_content()
    pdf = parts["application/pdf"].get_content()
    assert pdf.startswith(b"%PDF") and len(pdf) > 5000
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(DigestRun)) == 1


def test_a_digest_waits_in_the_outbox_while_mail_is_down(
    db: Database, settings: Settings, mission: str
) -> None:
    from datetime import timedelta

    from elshi.db import utcnow
    from elshi.notify.models import OutboxMessage
    from elshi.notify.outbox import deliver_due
    from elshi.watch.matching import process_posts
    from tests.workspace_helpers import free_port

    process_posts(db)
    down = {**settings.model_dump(), "smtp_host": "127.0.0.1", "smtp_port": free_port()}
    db.settings = load_settings(**down)
    out = flows.make_and_send(
        db, settings=db.settings, mission_slug="beijing", lang="en", day=DAY, pdf=False
    )
    assert out["error"] is None and out["recipients"] == 1
    with db.session() as s:
        row = s.scalars(select(OutboxMessage)).one()
        assert row.status == "pending" and row.attempts == 1 and row.last_error
        row.next_attempt_at = utcnow() - timedelta(seconds=1)
        assert s.scalar(select(func.count()).select_from(DigestRun)) == 1  # made, once
    with smtp_server() as (port, inbox):
        db.settings = load_settings(**{**down, "smtp_port": port})
        assert deliver_due(db, settings=db.settings)["sent"] == 1
    (msg,) = inbox.messages
    assert msg["To"] == "ambassador@example.org" and "Beijing" in msg["Subject"]


def test_failed_digest_is_tried_again(db: Database, settings: Settings, mission: str) -> None:
    conf = load_settings(
        **{
            **settings.model_dump(),
            "smtp_host": "127.0.0.1",
            "smtp_port": 1,
            "chromium_path": "/nonexistent/chromium",
        }
    )
    out = flows.make_and_send(db, settings=conf, mission_slug="beijing", lang="kk", day=DAY)
    assert "chromium not found" in str(out["error"])
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(DigestRun)) == 0


def test_digest_command(cli: Any, db: Database, mission: str, tmp_path: Path) -> None:
    out = tmp_path / "d.html"
    r = cli(
        "digest",
        "--mission",
        "beijing",
        "--format",
        "html",
        "--lang",
        "en",
        "--day",
        "2026-10-20",
        "--out",
        str(out),
    )
    assert r.exit_code == 0, r.output
    assert "Foreign minister in Beijing" in out.read_text(encoding="utf-8")
    assert cli("digest", "--mission", "nowhere").exit_code == 4
    assert cli("digest", "--mission", "beijing", "--format", "docx").exit_code == 2
    assert cli("digest", "--mission", "beijing", "--day", "yesterday").exit_code == 2
    if CHROMIUM.exists():
        pdf = tmp_path / "d.pdf"
        assert (
            cli(
                "digest",
                "--mission",
                "beijing",
                "--format",
                "pdf",
                "--day",
                "2026-10-20",
                "--out",
                str(pdf),
            ).exit_code
            == 0
        )
        assert pdf.read_bytes().startswith(b"%PDF")


def test_digest_page(settings: Settings, db: Database, mission: str) -> None:
    from fastapi.testclient import TestClient

    from elshi.app import create_app
    from tests.workspace_helpers import sign_in

    with TestClient(create_app(settings, db=db)) as client:
        sign_in(client, "ambassador@example.org")
        page = client.get("/digest", params={"mission": "beijing", "day": "2026-10-20", "in": "en"})
        assert page.status_code == 200 and "Foreign minister in Beijing" in page.text
        assert 'href="/digest.pdf?mission=beijing&amp;day=2026-10-20&amp;in=en"' in page.text
        assert client.get("/digest", params={"mission": "hq"}).status_code == 404
        assert (
            client.get("/digest", params={"mission": "beijing", "day": "soon"}).status_code == 400
        )
