"""Seven-day forecasts of a watch list's volume and negative share, with back-tested error.

The model is small and explainable: a level (median of the last 14 days after removing the
weekday pattern) times a weekday factor (median ratio of each weekday to its trailing week),
times an event factor on days with a known event (visit, summit, vote). The event factor is
learned from past event days in the history (1.5 when there are none). The uncertainty band
comes from the model's own errors when it is replayed over the past four weeks: the 10th and
90th percentiles of log(actual / forecast), so the band is as wide as the model was wrong.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from elshi.watch.models import Watch
from elshi.watch.service import daily_series, events_for

HORIZON = 7
HISTORY_DAYS = 84
MIN_DAYS = 14
BACKTEST_ORIGINS = 21
DEFAULT_EVENT_FACTOR = 1.5


@dataclass
class Forecast:
    """Forecast days with point values and 80% bands, and how wrong the model was before."""

    days: list[date]
    volume: list[float]
    volume_low: list[float]
    volume_high: list[float]
    negative_share: float
    negative_low: float
    negative_high: float
    mae: float | None = None
    mape: float | None = None
    share_mae: float | None = None
    origins: int = 0
    event_factor: float = DEFAULT_EVENT_FACTOR
    events: list[Any] = field(default_factory=list)


def _weekday_factors(
    days: list[date], n: list[int], end: int, skip: set[date] | frozenset[date] = frozenset()
) -> list[float]:
    ratios: list[list[float]] = [[] for _ in range(7)]
    for i in range(7, end):
        if days[i] in skip:
            continue
        level = sum(n[i - 7 : i]) / 7
        if level > 0:
            ratios[days[i].weekday()].append(n[i] / level)
    factors = [statistics.median(r) if r else 1.0 for r in ratios]
    mean = sum(factors) / 7 or 1.0
    return [max(f / mean, 0.05) for f in factors]


def predict(
    days: list[date],
    n: list[int],
    end: int,
    horizon: int,
    event_days: set[date],
    event_factor: float,
) -> list[float]:
    """Forecast `horizon` days after index `end` (exclusive) from n[:end]."""
    factors = _weekday_factors(days, n, end, event_days)
    recent = range(max(0, end - 14), end)
    deseason = [
        n[i] / factors[days[i].weekday()] / (event_factor if days[i] in event_days else 1.0)
        for i in recent
    ]
    level = statistics.median(deseason) if deseason else 0.0
    out = []
    for h in range(1, horizon + 1):
        d = days[end - 1] + timedelta(days=h)
        value = level * factors[d.weekday()] * (event_factor if d in event_days else 1.0)
        out.append(max(0.0, value))
    return out


def learn_event_factor(days: list[date], n: list[int], event_days: set[date]) -> float:
    """Return how many times the usual count event days had (1.5 without past events).

    The usual count of a day is its trailing week's mean times its weekday factor.
    """
    factors = _weekday_factors(days, n, len(days), event_days)
    ratios = []
    for i, d in enumerate(days):
        if d in event_days and i >= 7:
            usual = sum(n[i - 7 : i]) / 7 * factors[d.weekday()]
            if usual > 0:
                ratios.append(n[i] / usual)
    if not ratios:
        return DEFAULT_EVENT_FACTOR
    return min(max(statistics.mean(ratios), 1.0), 5.0)


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def forecast_series(
    days: list[date], n: list[int], against: list[int], event_days: set[date]
) -> Forecast | None:
    """Forecast the week after the last day, and replay the model over the weeks before."""
    first = next((i for i, v in enumerate(n) if v), None)
    if first is None or len(days) - first < MIN_DAYS:
        return None
    days, n, against = days[first:], n[first:], against[first:]
    factor = learn_event_factor(days, n, event_days)
    errors: list[float] = []
    abs_err: list[float] = []
    pct_err: list[float] = []
    share_err: list[float] = []
    origins = 0
    for end in range(
        max(MIN_DAYS, len(days) - BACKTEST_ORIGINS - HORIZON), len(days) - HORIZON + 1
    ):
        pred = predict(days, n, end, HORIZON, event_days, factor)
        actual = n[end : end + HORIZON]
        origins += 1
        base = sum(against[max(0, end - 14) : end]) / max(1, sum(n[max(0, end - 14) : end]))
        for p, a, g in zip(pred, actual, against[end : end + HORIZON], strict=False):
            errors.append(math.log((a + 1) / (p + 1)))
            abs_err.append(abs(a - p))
            if a:
                pct_err.append(abs(a - p) / a)
                share_err.append(abs(g / a - base))
    point = predict(days, n, len(days), HORIZON, event_days, factor)
    if len(errors) >= 10:
        lo_q, hi_q = _quantile(errors, 0.1), _quantile(errors, 0.9)
    else:
        lo_q, hi_q = math.log(0.5), math.log(1.5)
    recent_n = sum(n[-14:])
    share = sum(against[-14:]) / recent_n if recent_n else 0.0
    spread = (statistics.mean(share_err) if share_err else 0.0) + 1.28 * math.sqrt(
        share * (1 - share) / max(1.0, recent_n / 14)
    )
    last = days[-1]
    return Forecast(
        days=[last + timedelta(days=h) for h in range(1, HORIZON + 1)],
        volume=[round(v, 1) for v in point],
        volume_low=[round(max(0.0, (v + 1) * math.exp(lo_q) - 1), 1) for v in point],
        volume_high=[round((v + 1) * math.exp(hi_q) - 1, 1) for v in point],
        negative_share=round(share, 4),
        negative_low=round(max(0.0, share - spread), 4),
        negative_high=round(min(1.0, share + spread), 4),
        mae=round(statistics.mean(abs_err), 2) if abs_err else None,
        mape=round(statistics.mean(pct_err), 4) if pct_err else None,
        share_mae=round(statistics.mean(share_err), 4) if share_err else None,
        origins=origins,
        event_factor=round(factor, 2),
    )


def forecast_watch(*, db: Session, watch: Watch, until: date) -> Forecast | None:
    """Forecast the seven days after `until` for a watch list (None without 14 days of data)."""
    since = until - timedelta(days=HISTORY_DAYS - 1)
    days, n, against = daily_series(db=db, watch_id=watch.id, since=since, until=until)
    events = events_for(db=db, watch=watch, since=since, until=until + timedelta(days=HORIZON))
    fc = forecast_series(days, n, against, {e.day for e in events})
    if fc is not None:
        fc.events = [e for e in events if e.day > until]
    return fc
