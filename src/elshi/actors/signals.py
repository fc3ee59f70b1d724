"""Inauthenticity signals of one account, with their evidence: DFRLab's "three A's"
(activity, anonymity, amplification) as BotSlayer and DFRLab's #BotSpot describe them, plus
membership of a coordination group and the account's age where the platform tells it.

Each signal says what was measured, the threshold and whether it fired; the score is the
share of the signals' weights that fired (0..1). A score is a lead for an analyst to look at
the evidence, never a verdict on its own: a busy news desk posts more than 72 times a day, a
fan account mostly reposts, a community of friends acts together.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: DFRLab: more than 72 posts a day on average is suspicious, 144 highly suspicious; a
#: single day above the higher figure fires the signal too (a burst of a campaign).
POSTS_PER_DAY = 72
POSTS_ONE_DAY = 144
#: Gaps between posts needed before their regularity is judged, and the coefficient of
#: variation (standard deviation / mean of the gaps) below which posting is clockwork.
MIN_GAPS = 20
REGULAR_CV = 0.3
#: Share of reposts from which an account mostly amplifies others, and the posts it needs.
AMPLIFICATION = 0.9
MIN_POSTS = 10
#: An account younger than this at its first stored post is new.
NEW_ACCOUNT_DAYS = 30
#: Digits at the end of a handle that look like a platform's suggested name (name12345678).
GENERATED_DIGITS = 6

#: Each signal's weight in the score (they add up to 1).
WEIGHTS: dict[str, float] = {
    "activity": 0.2,
    "regularity": 0.15,
    "anonymity": 0.15,
    "amplification": 0.2,
    "coordination": 0.2,
    "age": 0.1,
}
SIGNALS = tuple(WEIGHTS)


@dataclass
class AccountFacts:
    """What is known of one account: its posts' times, how many were reposts, its profile."""

    handle: str
    name: str | None = None
    #: Publication times of its posts, seconds since the epoch.
    times: list[float] = field(default_factory=list)
    posts: int = 0
    reposts: int = 0
    #: From the platform's payload, where it gives them (None: not known).
    created_at: datetime | None = None
    default_avatar: bool | None = None
    automated: bool | None = None
    #: Coordination groups it belongs to: (group id, group size).
    groups: list[tuple[int, int]] = field(default_factory=list)


def _signal(key: str, fired: bool, known: bool, **evidence: Any) -> dict[str, Any]:
    return {
        "key": key,
        "fired": bool(fired and known),
        "known": known,
        "weight": WEIGHTS[key],
        "evidence": evidence,
    }


def activity(f: AccountFacts) -> dict[str, Any]:
    """Posts per day over the days the account was seen posting, and its busiest day."""
    if not f.times:
        return _signal("activity", False, f.automated is not None, automated=f.automated)
    times = sorted(f.times)
    days = max((times[-1] - times[0]) / 86400, 1.0)
    per_day = len(times) / days
    busiest = Counter(
        datetime.fromtimestamp(t, tz=UTC).date().isoformat() for t in times
    ).most_common(1)[0]
    return _signal(
        "activity",
        per_day > POSTS_PER_DAY or busiest[1] > POSTS_ONE_DAY or bool(f.automated),
        True,
        posts=len(times),
        days=round(days, 1),
        per_day=round(per_day, 1),
        threshold=POSTS_PER_DAY,
        busiest_day=busiest[0],
        busiest_posts=busiest[1],
        day_threshold=POSTS_ONE_DAY,
        automated=f.automated,
    )


def regularity(f: AccountFacts) -> dict[str, Any]:
    """How evenly spaced the posts are: the coefficient of variation of the gaps between
    them (near 0 for a schedule, above 1 for people's bursts)."""
    times = sorted(f.times)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    if len(gaps) < MIN_GAPS:
        return _signal("regularity", False, False, gaps=len(gaps), needed=MIN_GAPS)
    mean = sum(gaps) / len(gaps)
    if mean <= 0:
        return _signal("regularity", True, True, gaps=len(gaps), cv=0.0, mean_gap=0.0)
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
    cv = sd / mean
    return _signal(
        "regularity",
        cv < REGULAR_CV,
        True,
        gaps=len(gaps),
        cv=round(cv, 3),
        threshold=REGULAR_CV,
        mean_gap=round(mean, 1),
    )


def anonymity(f: AccountFacts) -> dict[str, Any]:
    """No display name, the platform's default avatar, or a handle ending in many digits."""
    no_name = None if f.name is None else not f.name.strip()
    digits = len(f.handle) - len(f.handle.rstrip("0123456789"))
    generated = digits >= GENERATED_DIGITS and digits < len(f.handle)
    found = [
        what
        for what, yes in (
            ("no_name", no_name),
            ("default_avatar", f.default_avatar),
            ("generated_handle", generated),
        )
        if yes
    ]
    return _signal(
        "anonymity",
        bool(found),
        True,
        found=found,
        avatar_known=f.default_avatar is not None,
    )


def amplification(f: AccountFacts) -> dict[str, Any]:
    """The share of its posts that are reposts of others."""
    if f.posts < MIN_POSTS:
        return _signal("amplification", False, False, posts=f.posts, needed=MIN_POSTS)
    share = f.reposts / f.posts
    return _signal(
        "amplification",
        share >= AMPLIFICATION,
        True,
        reposts=f.reposts,
        posts=f.posts,
        share=round(share, 3),
        threshold=AMPLIFICATION,
    )


def coordination(f: AccountFacts) -> dict[str, Any]:
    """Membership of groups of accounts that act together (elshi.coordination)."""
    return _signal(
        "coordination",
        bool(f.groups),
        True,
        groups=[{"id": g, "size": n} for g, n in sorted(f.groups)],
    )


def age(f: AccountFacts) -> dict[str, Any]:
    """How old the account was at its first stored post, where the platform says."""
    if f.created_at is None or not f.times:
        return _signal("age", False, False)
    first = min(f.times)
    days = (first - f.created_at.timestamp()) / 86400
    return _signal(
        "age",
        days < NEW_ACCOUNT_DAYS,
        True,
        created=f.created_at.date().isoformat(),
        days_at_first_post=round(days, 1),
        threshold=NEW_ACCOUNT_DAYS,
    )


def assess(f: AccountFacts) -> tuple[float, list[dict[str, Any]]]:
    """Return the score (share of the weights that fired) and every signal with evidence."""
    found = [
        activity(f),
        regularity(f),
        anonymity(f),
        amplification(f),
        coordination(f),
        age(f),
    ]
    return round(score_of(found), 3), found


def score_of(found: Sequence[dict[str, Any]]) -> float:
    """The share of the weights of the signals that fired."""
    return sum(s["weight"] for s in found if s["fired"]) / sum(WEIGHTS.values())
