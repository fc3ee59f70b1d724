"""Inauthenticity signals on real timestamps of the IRA sample: activity, regular intervals,
amplification; and the score as the share of the weights that fired."""

from __future__ import annotations

import csv
import gzip
import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from elshi.actors import signals
from elshi.actors.signals import AccountFacts


def ira_rows(shared_data: Path, handle: str) -> list[dict[str, str]]:
    path = shared_data / "ira-troll-tweets-sample" / "tweets" / f"{handle}.csv.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def when(row: dict[str, str]) -> datetime:
    return datetime.strptime(row["publish_date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


@pytest.mark.parametrize("handle", ["CalebPaar", "Solano_Ki", "AnastasiaR777"])
def test_activity_on_real_timestamps(shared_data: Path, handle: str) -> None:
    rows = ira_rows(shared_data, handle)
    times = [when(r) for r in rows]
    facts = AccountFacts(handle=handle, times=[t.timestamp() for t in times], posts=len(rows))
    got = signals.activity(facts)
    e = got["evidence"]
    span = (max(times) - min(times)).total_seconds() / 86400
    per_day = len(times) / max(span, 1.0)
    _day, n = Counter(t.date() for t in times).most_common(1)[0]
    assert e["posts"] == len(rows)
    assert e["per_day"] == round(per_day, 1)
    assert e["busiest_posts"] == n
    assert Counter(t.date() for t in times)[datetime.fromisoformat(e["busiest_day"]).date()] == n
    assert got["fired"] == (per_day > signals.POSTS_PER_DAY or n > signals.POSTS_ONE_DAY)


def test_a_real_burst_fires_activity_and_a_quiet_account_does_not(shared_data: Path) -> None:
    busy = ira_rows(shared_data, "CalebPaar")
    quiet = ira_rows(shared_data, "Solano_Ki")
    top = Counter(when(r).date() for r in busy).most_common(1)[0][1]
    assert top > signals.POSTS_ONE_DAY  # the account's busiest day in the sample
    assert signals.activity(AccountFacts("a", times=[when(r).timestamp() for r in busy]))["fired"]
    assert not signals.activity(AccountFacts("b", times=[when(r).timestamp() for r in quiet]))[
        "fired"
    ]


def test_regular_intervals_tell_a_schedule_from_real_posting(shared_data: Path) -> None:
    rows = ira_rows(shared_data, "AnastasiaR777")
    real = sorted(when(r).timestamp() for r in rows)
    got = signals.regularity(AccountFacts("a", times=real))
    gaps = [b - a for a, b in itertools.pairwise(real)]
    mean = sum(gaps) / len(gaps)
    sd = (sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5
    assert got["known"] and got["evidence"]["cv"] == round(sd / mean, 3)
    assert got["fired"] == (sd / mean < signals.REGULAR_CV)
    # The same number of posts from the same first post, every 15 minutes: a schedule.
    start = datetime.fromtimestamp(real[0], tz=UTC)
    clock = [(start + timedelta(minutes=15 * i)).timestamp() for i in range(len(real))]
    scheduled = signals.regularity(AccountFacts("b", times=clock))
    assert scheduled["fired"] and scheduled["evidence"]["cv"] == 0
    assert not signals.regularity(AccountFacts("c", times=real[:5]))["known"]


def test_amplification_counts_the_real_retweet_flag(shared_data: Path) -> None:
    rows = ira_rows(shared_data, "AnastasiaR777")
    retweets = sum(r["retweet"] == "1" for r in rows)
    got = signals.amplification(AccountFacts("a", posts=len(rows), reposts=retweets))
    assert got["evidence"]["share"] == round(retweets / len(rows), 3)
    assert got["fired"] == (retweets / len(rows) >= signals.AMPLIFICATION)


def test_the_score_is_the_share_of_the_weights_that_fired() -> None:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    times = [(start + timedelta(minutes=10 * i)).timestamp() for i in range(300)]
    facts = AccountFacts(
        handle="user84736291",
        name="",
        times=times,
        posts=300,
        reposts=290,
        created_at=start - timedelta(days=3),
        default_avatar=True,
        groups=[(7, 12)],
    )
    score, found = signals.assess(facts)
    assert {s["key"] for s in found} == set(signals.SIGNALS)
    assert all(s["fired"] for s in found)
    assert score == 1.0
    anon = next(s for s in found if s["key"] == "anonymity")
    assert anon["evidence"]["found"] == ["no_name", "default_avatar", "generated_handle"]
    calm = AccountFacts(handle="someone", name="Someone", times=times[:3], posts=3)
    score, found = signals.assess(calm)
    assert score == 0.0 and not any(s["fired"] for s in found)
    assert {s["key"] for s in found if not s["known"]} == {"regularity", "amplification", "age"}
