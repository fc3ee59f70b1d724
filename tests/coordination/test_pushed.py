"""What a group pushed: besides its texts, links and hashtags, the narratives its co-acting posts
belong to (a merged narrative counted as the one it went into), stored with the group and shown
on its page through the viewer's missions' posts only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from elshi.app import create_app
from elshi.coordination import evidence, service
from elshi.db import Database
from elshi.listen.models import Annotation
from elshi.nlp.models import NarrativeRow
from elshi.nlp.service import SLUG
from elshi.settings import Settings
from tests.coordination.campaigns import ALPHA_HANDLES, MIXED_HANDLES, build
from tests.workspace_helpers import sign_in

NARRATIVES = {
    7: (["vote", "kazcamp", "выборы"], None),
    8: (["old"], 7),  # merged into 7
    9: (["share", "story"], None),
    10: (["alpha", "share"], None),
}


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=db)) as c:
        yield c


@pytest.fixture
def world(db: Database) -> dict[str, Any]:
    """The two campaigns, their posts in narratives: Alpha's rounds 0-1 in 7 and round 2 in
    8 (merged into 7); the mixed campaign's Bravo posts in 9, its Alpha posts in 10."""
    w = build(db)
    with db.session() as s:
        for nid, (terms, merged) in NARRATIVES.items():
            s.add(NarrativeRow(id=nid, count=10, terms=terms, merged_into=merged))
        for h in ALPHA_HANDLES:
            for r, pid in enumerate(w["posts"][h]):
                s.add(
                    Annotation(post_id=pid, enricher=SLUG, version="1", label="7" if r < 2 else "8")
                )
        for h in MIXED_HANDLES:
            label = "9" if h.startswith("bravo") else "10"
            for pid in w["posts"][h]:
                s.add(Annotation(post_id=pid, enricher=SLUG, version="1", label=label))
    service.regroup(db, params=service.stored_params(db))
    return w


def _stored(db: Database) -> dict[int, dict[str, Any]]:
    with db.engine.connect() as conn:
        return {g["id"]: g for g in service.groups(conn)}


def test_stored_groups_name_their_narratives(db: Database, world: dict[str, Any]) -> None:
    groups = _stored(db)
    alpha, mixed = groups[world["alpha_group"]], groups[world["mixed_group"]]
    # 4 accounts x 3 rounds; round 2's narrative was merged into 7.
    assert alpha["top"]["narratives"] == [[7, "vote, kazcamp, выборы", 12]]
    assert mixed["top"]["narratives"] == [[9, "share, story", 6], [10, "alpha, share", 6]]
    assert alpha["top"]["hashtags"] and alpha["top"]["texts"]  # the rest is still there


def test_a_mission_sees_only_the_narratives_of_its_posts(
    db: Database, world: dict[str, Any]
) -> None:
    with db.session() as s:
        seen = {
            m: evidence.seen_group(
                db=s, group_id=world["mixed_group"], mission_ids=frozenset({world[m]})
            )
            for m in ("alpha", "bravo")
        }
    assert seen["alpha"] is not None and seen["bravo"] is not None
    assert seen["alpha"].top["narratives"] == [[10, "alpha, share", 6]]
    assert seen["bravo"].top["narratives"] == [[9, "share, story", 6]]


def test_the_group_page_links_its_narratives(client: TestClient, world: dict[str, Any]) -> None:
    sign_in(client, "alpha@example.org")
    page = client.get(f"/coordination/groups/{world['alpha_group']}", params={"lang": "en"}).text
    pushed = page.split('id="pushed-narratives"', 1)[1].split("</ul>", 1)[0]
    assert '<a href="/narratives/7" dir="auto">vote, kazcamp, выборы</a> (12)' in pushed
    mixed = client.get(f"/coordination/groups/{world['mixed_group']}").text
    pushed = mixed.split('id="pushed-narratives"', 1)[1].split("</ul>", 1)[0]
    assert 'href="/narratives/10"' in pushed and 'href="/narratives/9"' not in pushed


def test_without_narratives_the_list_is_empty(client: TestClient, db: Database) -> None:
    w = build(db)
    assert _stored(db)[w["alpha_group"]]["top"]["narratives"] == []
    sign_in(client, "alpha@example.org")
    page = client.get(f"/coordination/groups/{w['alpha_group']}").text
    pushed = page.split('id="pushed-narratives"', 1)[1].split("</ul>", 1)[0]
    assert '<li class="muted">—</li>' in pushed
