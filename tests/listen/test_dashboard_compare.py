"""The dashboard compares its range with the period of the same length just before it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from elshi.accounts.service import Principal
from elshi.app import create_app
from elshi.db import Database
from elshi.missions import service as missions
from elshi.settings import Settings
from elshi.watch import service
from elshi.watch.matching import process_posts
from elshi.watch.models import WatchMatch
from tests.workspace_helpers import add_post, add_staff, sign_in

SYSTEM = Principal.system("test")
SINCE, UNTIL = date(2026, 3, 11), date(2026, 3, 20)  # ten days; the ten before: 1 to 10 March


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=db)) as c:
        yield c


def _posts(db: Database) -> int:
    with db.session() as s:
        hq = missions.ensure_hq(db=s)
        m = missions.create_mission(db=s, slug="beijing", name="Beijing", parent_id=hq.id)
        add_staff(s, "analyst@example.org", "analyst", "beijing")
        wid = service.save_watch(
            db=s, principal=SYSTEM, mission_id=m.id, name="KZ–CN", terms="China | Қытай"
        ).id
        texts = [
            ("China closes the border, a bad and harmful decision", "negative"),
            ("China and Kazakhstan sign a good trade deal", "positive"),
            ("China opens a consulate", "neutral"),
        ]
        for day, k in [(2, 0), (4, 1), (6, 2), (9, 1)]:  # four posts before
            text, sentiment = texts[k]
            when = datetime(2026, 3, day, 10, tzinfo=UTC)
            add_post(s, text, when, sentiment=sentiment)
        for day, k in [(11, 0), (12, 0), (13, 1), (15, 2), (18, 0), (20, 0)]:  # six in range
            text, sentiment = texts[k]
            add_post(s, text, datetime(2026, 3, day, 10, tzinfo=UTC), sentiment=sentiment)
        # Outside both periods: not counted.
        add_post(s, texts[0][0], datetime(2026, 2, 27, 10, tzinfo=UTC), sentiment="negative")
        add_post(s, texts[0][0], datetime(2026, 3, 21, 10, tzinfo=UTC), sentiment="negative")
    process_posts(db)
    return wid


def _against(db: Database, wid: int, since: date, until: date) -> tuple[int, int]:
    """Posts and posts against the topic in a range, counted from the matches themselves."""
    with db.session() as s:
        rows = s.execute(
            select(WatchMatch.stance, func.count())
            .where(WatchMatch.watch_id == wid, WatchMatch.day >= since, WatchMatch.day <= until)
            .group_by(WatchMatch.stance)
        ).all()
    return sum(n for _, n in rows), sum(n for st, n in rows if st == "negative")


def test_comparison_with_the_previous_period(db: Database) -> None:
    wid = _posts(db)
    n_now, against_now = _against(db, wid, SINCE, UNTIL)
    n_before, against_before = _against(db, wid, date(2026, 3, 1), date(2026, 3, 10))
    assert (n_now, n_before) == (6, 4) and against_now > 0
    with db.session() as s:
        d = service.dashboard(
            db=s, principal=SYSTEM, watch_id=wid, filters=service.Filters(SINCE, UNTIL)
        )
    prev = d.previous
    assert prev is not None
    assert (prev.since, prev.until) == (date(2026, 3, 1), date(2026, 3, 10))
    assert prev.total == 4 and prev.total_change == pytest.approx(0.5)
    assert prev.negative_share == pytest.approx(against_before / 4)
    assert prev.share_change == pytest.approx((against_now / 6 - against_before / 4) * 100)

    # The same splits apply to both periods; a period with no posts gives no change.
    with db.session() as s:
        d = service.dashboard(
            db=s,
            principal=SYSTEM,
            watch_id=wid,
            filters=service.Filters(SINCE, UNTIL, lang="ru"),
        )
    assert d.previous is not None and d.previous.total == 0
    assert d.previous.total_change is None and d.previous.share_change is None


def test_dashboard_shows_totals_and_changes(client: TestClient, db: Database) -> None:
    wid = _posts(db)
    _n_now, against_now = _against(db, wid, SINCE, UNTIL)
    _n, against_before = _against(db, wid, date(2026, 3, 1), date(2026, 3, 10))
    sign_in(client, "analyst@example.org")
    page = client.get(
        f"/watch/{wid}",
        params={"since": SINCE.isoformat(), "until": UNTIL.isoformat(), "lang": "en"},
    )
    assert page.status_code == 200

    def text(id_: str) -> str:
        found = re.search(rf'id="{id_}">(.*?)</(?:span|p)>', page.text, re.S)
        assert found, id_
        return re.sub(r"<[^>]+>", "", found[1]).strip()

    assert text("total-delta") == "+50% · previous period: 4"
    change = (against_now / 6 - against_before / 4) * 100
    before = round(against_before / 4 * 100, 1)
    assert text("share-delta") == f"{change:+.1f} points · previous period: {before}%"
    assert text("compared") == (
        "Compared with the period of the same length just before: 2026-03-01 – 2026-03-10."
    )
    ru = client.get(
        f"/watch/{wid}",
        params={"since": SINCE.isoformat(), "until": UNTIL.isoformat(), "lang": "ru"},
    )
    assert "предыдущий период: 4" in ru.text


def test_no_change_is_claimed_from_an_empty_period(client: TestClient, db: Database) -> None:
    wid = _posts(db)
    sign_in(client, "analyst@example.org")
    # 2 March alone (one post); 1 March, the day before, has none.
    page = client.get(
        f"/watch/{wid}", params={"since": "2026-03-02", "until": "2026-03-02", "lang": "en"}
    )
    delta = re.search(r'id="total-delta">(.*?)</span>', page.text, re.S)
    assert delta and re.sub(r"<[^>]+>", "", delta[1]).strip() == "previous period: 0"
    assert "%" not in delta[1]
