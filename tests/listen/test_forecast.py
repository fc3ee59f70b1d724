"""Forecast: weekday pattern, known events, an uncertainty band from back-tested errors."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from elshi.accounts.service import Principal
from elshi.app import create_app
from elshi.db import Database
from elshi.forecast.service import DEFAULT_EVENT_FACTOR, forecast_series
from elshi.missions import service as missions
from elshi.settings import Settings
from elshi.watch import service as watches
from elshi.watch.matching import process_posts
from elshi.web import i18n
from tests.workspace_helpers import add_post, add_staff, csrf, sign_in

START = date(2026, 8, 3)  # a Monday


def _series(
    days: int, event_days: set[date], seed: int = 1
) -> tuple[list[date], list[int], list[int]]:
    rng = random.Random(seed)
    ds = [START + timedelta(days=i) for i in range(days)]
    n = []
    for d in ds:
        base = 40 if d.weekday() < 5 else 12
        if d in event_days:
            base *= 3
        n.append(max(0, int(rng.gauss(base, base**0.5))))
    against = [round(v * 0.2) for v in n]
    return ds, n, against


def test_weekly_pattern_band_and_backtest() -> None:
    days, n, against = _series(70, set())
    fc = forecast_series(days, n, against, set())
    assert fc is not None and len(fc.days) == 7 and fc.days[0] == days[-1] + timedelta(days=1)
    by_weekday = {d.weekday(): v for d, v in zip(fc.days, fc.volume, strict=True)}
    weekdays = [by_weekday[k] for k in range(5)]
    weekend = [by_weekday[5], by_weekday[6]]
    assert min(weekdays) > 2 * max(weekend) and 25 <= sum(weekdays) / 5 <= 48
    assert 7 <= sum(weekend) / 2 <= 17
    assert all(
        lo <= v <= hi for lo, v, hi in zip(fc.volume_low, fc.volume, fc.volume_high, strict=True)
    )
    # The band holds most of the truth of a fresh week from the same process.
    _, future, _ = _series(77, set())
    truth = future[70:]
    inside = sum(
        lo <= t <= hi for lo, t, hi in zip(fc.volume_low, truth, fc.volume_high, strict=True)
    )
    assert inside >= 5
    assert fc.origins >= 15 and fc.mae is not None and 1 < fc.mae < 10 and fc.mape is not None
    assert (
        fc.negative_low <= fc.negative_share <= fc.negative_high
        and abs(fc.negative_share - 0.2) < 0.03
    )
    assert fc.share_mae is not None and fc.share_mae < 0.05


def test_known_events_are_learned_and_used() -> None:
    past = {START + timedelta(days=i) for i in (16, 30, 44)}  # Wednesdays
    ahead = START + timedelta(days=72)  # a Wednesday after the history
    days, n, against = _series(70, past)
    with_events = forecast_series(days, n, against, past | {ahead})
    without = forecast_series(days, n, against, past)
    assert with_events is not None and without is not None
    assert (
        2.2 <= with_events.event_factor <= 3.8 and with_events.event_factor != DEFAULT_EVENT_FACTOR
    )
    i = with_events.days.index(ahead)
    assert with_events.volume[i] > 2 * without.volume[i]
    assert [v for k, v in enumerate(with_events.volume) if k != i] == [
        v for k, v in enumerate(without.volume) if k != i
    ]


def test_too_little_history_gives_no_forecast() -> None:
    days, n, against = _series(10, set())
    assert forecast_series(days, n, against, set()) is None


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=db)) as c:
        yield c


def test_dashboard_marks_the_forecast_and_takes_events(client: TestClient, db: Database) -> None:
    with db.session() as s:
        add_staff(s, "analyst@example.org", "analyst", "beijing")
        mid = missions.get_mission(db=s, slug="beijing").id  # type: ignore[union-attr]
        wid = watches.save_watch(
            db=s, principal=Principal.system(), mission_id=mid, name="KZ–CN", terms="China"
        ).id
        days, n, _ = _series(42, set())
        for d, count in zip(days, n, strict=True):
            for k in range(count):
                add_post(
                    s,
                    f"China {d} {k}",
                    datetime.combine(d, datetime.min.time(), UTC) + timedelta(minutes=10 * k),
                    sentiment="neutral",
                )
    process_posts(db)
    sign_in(client, "analyst@example.org")
    until = days[-1].isoformat()
    page = client.get(f"/watch/{wid}", params={"until": until, "days": "30"})
    assert page.status_code == 200
    assert 'id="backtest"' in page.text and "polygon" in page.text
    assert i18n.gettext("kk", "Forecast for the next 7 days") in page.text
    token = csrf(client, f"/watch/{wid}?until={until}")
    visit = (days[-1] + timedelta(days=3)).isoformat()
    assert (
        client.post(
            f"/watch/{wid}/events", data={"csrf_token": token, "day": "someday", "title": "x"}
        ).status_code
        == 400
    )
    assert (
        client.post(
            f"/watch/{wid}/events",
            data={"csrf_token": token, "day": visit, "title": "", "kind": "visit"},
        ).status_code
        == 400
    )
    r = client.post(
        f"/watch/{wid}/events",
        data={"csrf_token": token, "day": visit, "title": "Minister's visit", "kind": "visit"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get(f"/watch/{wid}", params={"until": until, "days": "30"})
    assert "Minister&#39;s visit" in page.text
    csv_text = client.get(
        f"/watch/{wid}/chart/volume.csv", params={"until": until, "days": "30"}
    ).text
    header, *rows = csv_text.strip().splitlines()
    assert "forecast" in header.lower() or i18n.gettext("kk", "forecast") in header
    assert rows[-1].startswith('"' + (days[-1] + timedelta(days=7)).isoformat())
