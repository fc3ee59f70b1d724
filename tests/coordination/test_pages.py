"""The coordination pages: the groups, one group with its network and co-actions, and the
evidence pack; each seen only through the viewer's missions' posts."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from itertools import combinations
from typing import Any

import networkx as nx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from elshi.accounts.models import AuditEvent
from elshi.app import create_app
from elshi.db import Database
from elshi.settings import Settings
from tests.coordination.campaigns import ALPHA_HANDLES, MIXED_HANDLES, ROUNDS, build
from tests.workspace_helpers import add_staff, sign_in


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=db)) as c:
        yield c


@pytest.fixture
def world(db: Database) -> dict[str, Any]:
    return build(db)


def _csv(z: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(z.read(name).decode("utf-8-sig"))))


def test_alpha_sees_its_campaign_and_only_its_part_of_the_mixed_one(
    client: TestClient, world: dict[str, Any]
) -> None:
    sign_in(client, "alpha@example.org")
    page = client.get("/coordination", params={"lang": "en"})
    assert page.status_code == 200
    text = page.text
    alpha, mixed = world["alpha_group"], world["mixed_group"]
    assert f'href="/coordination/groups/{alpha}"' in text
    assert f'href="/coordination/groups/{mixed}"' in text
    assert 'href="/coordination" aria-current="page"' in text
    item = text.split(f'href="/coordination/groups/{alpha}"', 1)[1].split("</li>", 1)[0]
    assert "4 accounts" in item and "X (Twitter)" in item and "#kazcamp" in item
    assert "same hashtag" in item and "hashtag_seq" not in item
    # Of the mixed group alpha counts only its own two accounts and nothing of Bravo's.
    item = text.split(f'href="/coordination/groups/{mixed}"', 1)[1].split("</li>", 1)[0]
    assert "2 accounts" in item and "Kazakh" not in item

    one = client.get(f"/coordination/groups/{alpha}").text
    for h in ALPHA_HANDLES:
        assert f'href="/authors/{world["authors"][h]}"' in one
        assert f'aria-label="@{h}"' in one  # a node of the picture, a link itself
    assert one.count('<line x1="') == 6  # every pair of the four accounts co-acted
    assert f'href="/coordination/groups/{alpha}/evidence.zip"' in one
    assert "same link" in one and "#kazcamp" in one
    timeline = one.split('class="timeline"', 1)[1]
    # per round 6 pairs of 5 kinds: link, hashtag, hashtag_seq, text and near_text
    assert timeline.count("<tr><td>") == ROUNDS * 6 * 5

    part = client.get(f"/coordination/groups/{mixed}").text
    assert "bravo_bot3" not in part and "bravo_bot4" not in part
    assert "other missions" in part
    assert part.count('<line x1="') == 1


def test_bravo_sees_none_of_alpha_and_charlie_sees_no_group(
    client: TestClient, world: dict[str, Any]
) -> None:
    sign_in(client, "bravo@example.org")
    text = client.get("/coordination", params={"lang": "en"}).text
    assert f'href="/coordination/groups/{world["mixed_group"]}"' in text
    assert f'href="/coordination/groups/{world["alpha_group"]}"' not in text
    assert "troll" not in text and "alpha_bot" not in text and "kazcamp" not in text
    alpha = world["alpha_group"]
    assert client.get(f"/coordination/groups/{alpha}").status_code == 404
    assert client.get(f"/coordination/groups/{alpha}/evidence.zip").status_code == 404
    mixed = client.get(f"/coordination/groups/{world['mixed_group']}").text
    assert "bravo_bot3" in mixed and "alpha_bot1" not in mixed

    client.post("/logout")
    sign_in(client, "charlie@example.org")
    text = client.get("/coordination", params={"lang": "en"}).text
    assert "/coordination/groups/" not in text
    assert "No coordinated group among your missions' posts yet." in text
    assert client.get(f"/coordination/groups/{world['mixed_group']}").status_code == 404


def test_the_evidence_pack_holds_the_accounts_pairs_posts_and_graph(
    client: TestClient, world: dict[str, Any], db: Database
) -> None:
    sign_in(client, "alpha@example.org")
    alpha = world["alpha_group"]
    r = client.get(f"/coordination/groups/{alpha}/evidence.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert "attachment" in r.headers["content-disposition"]
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert sorted(z.namelist()) == ["accounts.csv", "coactions.csv", "graph.graphml", "posts.csv"]

    accounts = _csv(z, "accounts.csv")
    # The handle a spreadsheet would run as a formula is text.
    assert sorted(a["handle"] for a in accounts) == sorted(["'=troll_one", *ALPHA_HANDLES[1:]])
    posts = world["posts"]
    rows = _csv(z, "coactions.csv")
    # Per kind, every pair of posts of one round from two accounts, once.
    by_round = [{posts[h][r] for h in ALPHA_HANDLES} for r in range(ROUNDS)]
    expected = {frozenset(p) for ids in by_round for p in combinations(sorted(ids), 2)}
    kinds = {"hashtag", "hashtag_seq", "link", "text", "near_text"}
    for kind in kinds:
        got = {frozenset((int(x["post a"]), int(x["post b"]))) for x in rows if x["kind"] == kind}
        assert got == expected, kind
    assert {x["kind"] for x in rows} == kinds
    for x in rows:
        assert 0 < float(x["gap seconds"]) <= 9 and x["time a"] <= x["time b"]
        assert x["account a"] != x["account b"]
    link = {x["key"] for x in rows if x["kind"] == "link"}
    assert link == {"example.org/vote"}  # tracking parameter gone

    stored = _csv(z, "posts.csv")
    assert len(stored) == ROUNDS * 4
    assert all(p["text"].startswith("'+Vote now") for p in stored)

    g = nx.read_graphml(io.BytesIO(z.read("graph.graphml")))
    assert sorted(d["label"] for _, d in g.nodes(data=True)) == sorted(ALPHA_HANDLES)
    assert g.number_of_edges() == 6
    assert all(d["weight"] > 0 for _, _, d in g.edges(data=True))

    with db.session() as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "coordination.export")
        ).all()
    assert [(e.object_id, e.detail["posts"]) for e in events] == [(str(alpha), ROUNDS * 4)]


def test_the_mixed_pack_holds_only_the_viewers_posts(
    client: TestClient, world: dict[str, Any]
) -> None:
    sign_in(client, "bravo@example.org")
    r = client.get(f"/coordination/groups/{world['mixed_group']}/evidence.zip")
    z = zipfile.ZipFile(io.BytesIO(r.content))
    handles = {a["handle"] for a in _csv(z, "accounts.csv")}
    assert handles == set(MIXED_HANDLES[2:])
    mine = {p for h in MIXED_HANDLES[2:] for p in world["posts"][h]}
    assert {int(p["post id"]) for p in _csv(z, "posts.csv")} == mine


def test_headquarters_sees_every_group_whole(
    client: TestClient, world: dict[str, Any], db: Database
) -> None:
    with db.session() as s:
        add_staff(s, "hq@example.org", "analyst", "hq")
    sign_in(client, "hq@example.org")
    text = client.get("/coordination", params={"lang": "en"}).text
    for gid in (world["alpha_group"], world["mixed_group"]):
        item = text.split(f'href="/coordination/groups/{gid}"', 1)[1].split("</li>", 1)[0]
        assert "4 accounts" in item
    mixed = client.get(f"/coordination/groups/{world['mixed_group']}").text
    assert all(h in mixed for h in MIXED_HANDLES) and "other missions" not in mixed
    assert "Kazakh" in mixed and "English" in mixed
