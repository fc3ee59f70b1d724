"""A group's evidence as a printable document, in the reader's language: what the group is,
its accounts, a timeline (co-actions per day) and its co-actions with both posts and the
seconds between them. Printed to PDF by headless Chromium like the digest and the
evacuation list (system fonts: Kazakh, Russian, Arabic and Chinese text print as written)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from elshi.coordination.evidence import Pair, Seen
from elshi.web.templating import environment

#: Co-actions printed (the latest); the ZIP has them all.
MAX_PRINTED = 2000


@dataclass(frozen=True)
class Day:
    """One day of the timeline."""

    day: date
    coactions: int
    accounts: int
    kinds: dict[str, int]


def timeline(pairs: list[Pair]) -> list[Day]:
    """Return the group's co-actions per day (by the first post's day, UTC), oldest first."""
    per_day: dict[date, list[Pair]] = {}
    for x in pairs:
        per_day.setdefault(x.at_a.date(), []).append(x)
    return [
        Day(
            day=d,
            coactions=len(xs),
            accounts=len({a for x in xs for a in (x.a, x.b)}),
            kinds=dict(sorted(Counter(x.kind for x in xs).items())),
        )
        for d, xs in sorted(per_day.items())
    ]


def evidence_html(seen: Seen, *, lang: str, now: datetime) -> str:
    """Return the group's evidence as a standalone HTML document (for a PDF)."""
    printed = seen.pairs[-MAX_PRINTED:]
    return (
        environment(lang)
        .get_template("coordination_evidence.html")
        .render(
            lang=lang,
            g=seen,
            now=now,
            days=timeline(seen.pairs),
            printed=printed,
            handles={a.id: a.handle for a in seen.accounts},
        )
    )
