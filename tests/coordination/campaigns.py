"""A built slice for the coordination pages: two campaigns of accounts posting the same
hashtags, link and text seconds apart, in the sources of two missions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from elshi.coordination import service
from elshi.db import Database
from elshi.listen.models import Author
from tests.workspace_helpers import add_post, add_source, three_missions

START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
ROUNDS = 3
#: Alpha's campaign: every post in Alpha's source. A handle and a text a spreadsheet would run.
ALPHA_HANDLES = ("=troll_one", "troll_two", "troll_three", "troll_four")
ALPHA_TEXT = "+Vote now #kazcamp #round{r} https://example.org/vote?utm_source=tw"
#: The mixed campaign: two accounts post in Alpha's source, two in Bravo's.
MIXED_HANDLES = ("alpha_bot1", "alpha_bot2", "bravo_bot3", "bravo_bot4")
MIXED_TEXT = "Share this #bravocamp #wave{r} https://news.example.net/story"


def build(db: Database) -> dict[str, Any]:
    """Store the missions, staff, sources, authors and posts, then find the groups."""
    ids: dict[str, Any] = {}
    with db.session() as s:
        ids.update(three_missions(s))
        src_a = add_source(s, "Alpha feed", ids["alpha"])
        src_b = add_source(s, "Bravo feed", ids["bravo"])
        authors = {}
        for h in (*ALPHA_HANDLES, *MIXED_HANDLES):
            a = Author(platform="twitter", handle=h, name=h.strip("=").replace("_", " ").title())
            s.add(a)
            s.flush()
            authors[h] = a
        posts: dict[str, list[int]] = {}
        for r in range(ROUNDS):
            at = START + timedelta(hours=r)
            for i, h in enumerate(ALPHA_HANDLES):
                p = add_post(
                    s,
                    ALPHA_TEXT.format(r=r),
                    at + timedelta(seconds=3 * i),
                    platform="twitter",
                    source_id=src_a.id,
                    author=authors[h],
                )
                posts.setdefault(h, []).append(p.id)
            for i, h in enumerate(MIXED_HANDLES):
                p = add_post(
                    s,
                    MIXED_TEXT.format(r=r),
                    at + timedelta(minutes=30, seconds=2 * i),
                    lang="kk" if h.startswith("bravo") else "en",
                    platform="twitter",
                    source_id=(src_a if h.startswith("alpha") else src_b).id,
                    author=authors[h],
                )
                posts.setdefault(h, []).append(p.id)
        ids["authors"] = {h: a.id for h, a in authors.items()}
        ids["posts"] = posts
    service.update(db, params=service.Params(window=60, narrow=5))
    with db.engine.connect() as conn:
        found = service.groups(conn)
    group_of = {a: g["id"] for g in found for a in g["members"]}
    authors_ = ids["authors"]
    ids["alpha_group"] = group_of[authors_[ALPHA_HANDLES[0]]]
    ids["mixed_group"] = group_of[authors_[MIXED_HANDLES[0]]]
    assert ids["alpha_group"] != ids["mixed_group"]
    assert {group_of[authors_[h]] for h in MIXED_HANDLES} == {ids["mixed_group"]}
    return ids
