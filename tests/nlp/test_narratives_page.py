"""The narratives pages: the list and one narrative, seen only through the viewer's posts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from elshi.app import create_app
from elshi.db import Database
from elshi.listen.models import Annotation, Post
from elshi.nlp.models import NarrativeRow
from elshi.settings import Settings
from tests.workspace_helpers import add_post, add_source, sign_in, three_missions

#: Narrative 11 is made only of mission A's posts; 12 of A's and B's; 13 of unowned posts.
ONLY_A, MIXED, SHARED = 11, 12, 13


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=db)) as c:
        yield c


def _member(s: Session, post: Post, narrative_id: int) -> None:
    s.add(
        Annotation(
            post_id=post.id,
            enricher="narratives",
            version="1",
            label=str(narrative_id),
            score=0.9,
            value={},
        )
    )


def _narrative(s: Session, nid: int, terms: list[str], posts: list[Post], now: datetime) -> None:
    hours: dict[str, int] = {}
    langs: dict[str, int] = {}
    for p in posts:
        assert p.published_at is not None
        key = str(int(p.published_at.timestamp()) // 3600)
        hours[key] = hours.get(key, 0) + 1
        langs[p.lang or "und"] = langs.get(p.lang or "und", 0) + 1
        _member(s, p, nid)
    s.add(
        NarrativeRow(
            id=nid,
            count=len(posts),
            first_seen=min(p.published_at for p in posts if p.published_at),
            last_seen=max(p.published_at for p in posts if p.published_at),
            langs=langs,
            terms=terms,
            terms_by_lang={"en": terms},
            hours=hours,
            backend="test",
            state={},
        )
    )


@pytest.fixture
def world(db: Database) -> dict[str, int]:
    """Three missions: A's and B's sources carry posts; C has none."""
    now = datetime.now(UTC).replace(microsecond=0)
    with db.session() as s:
        ids = three_missions(s)
        src_a = add_source(s, "Alpha feed", ids["alpha"])
        src_b = add_source(s, "Bravo feed", ids["bravo"])
        a_posts = [
            add_post(
                s,
                f"alphasecret pipeline leak {i}",
                now - timedelta(hours=i + 1),
                source_id=src_a.id,
            )
            for i in range(3)
        ]
        _narrative(s, ONLY_A, ["alphasecret", "pipeline"], a_posts, now)
        mixed_a = add_post(
            s, "alphahidden visit of the minister", now - timedelta(hours=2), source_id=src_a.id
        )
        mixed_b = [
            add_post(
                s,
                f"Министр сапары туралы {i}",
                now - timedelta(hours=i + 1),
                lang="kk",
                source_id=src_b.id,
            )
            for i in range(6)
        ]
        _narrative(s, MIXED, ["visit", "minister", "сапар"], [mixed_a, *mixed_b], now)
        shared = [
            add_post(s, f"Open data forum {i}", now - timedelta(days=3, hours=i)) for i in range(2)
        ]
        _narrative(s, SHARED, ["forum", "open data"], shared, now)
        # A narrative merged into the mixed one: its address leads there.
        s.add(NarrativeRow(id=99, count=0, merged_into=MIXED, backend="test", state={}))
        s.flush()
        ids["mixed_a_post"] = mixed_a.id
        ids["mixed_b_post"] = mixed_b[0].id
    return ids


def test_mission_b_sees_its_narratives_and_never_mission_a_posts(
    client: TestClient, world: dict[str, int]
) -> None:
    sign_in(client, "bravo@example.org")
    page = client.get("/narratives", params={"lang": "en"})  # the choice sticks (a cookie)
    assert page.status_code == 200
    text = page.text
    assert f'href="/narratives/{MIXED}"' in text and f'href="/narratives/{SHARED}"' in text
    assert f'href="/narratives/{ONLY_A}"' not in text and "alphasecret" not in text
    # Of the mixed narrative, B counts and shows only its own six posts.
    assert "alphahidden" not in text
    item = text.split(f'href="/narratives/{MIXED}"', 1)[1].split("</li>\n", 1)[0]
    assert "Posts: 6" in item and "Kazakh 6" in item
    assert "New: 6 posts in the last 24 hours" in item  # A's post is not even counted here
    assert 'href="/narratives"' in text and 'aria-current="page"' in text

    emerging = client.get("/narratives", params={"emerging": "1"}).text
    assert f'href="/narratives/{MIXED}"' in emerging  # six of B's posts in the last hours
    assert f'href="/narratives/{SHARED}"' not in emerging

    assert client.get(f"/narratives/{ONLY_A}").status_code == 404
    one = client.get(f"/narratives/{MIXED}")
    assert one.status_code == 200 and "Posts: 6" in one.text
    assert f'href="/posts/{world["mixed_b_post"]}"' in one.text
    assert f'href="/posts/{world["mixed_a_post"]}"' not in one.text
    assert "alphahidden" not in one.text

    merged = client.get("/narratives/99", follow_redirects=False)
    assert merged.status_code == 303 and merged.headers["location"] == f"/narratives/{MIXED}"
    assert client.get("/narratives/424242").status_code == 404


def test_a_third_mission_sees_only_narratives_of_unowned_posts(
    client: TestClient, world: dict[str, int]
) -> None:
    sign_in(client, "charlie@example.org")
    text = client.get("/narratives", params={"lang": "en"}).text
    assert f'href="/narratives/{SHARED}"' in text
    assert f'href="/narratives/{ONLY_A}"' not in text
    assert f'href="/narratives/{MIXED}"' not in text
    for nid in (ONLY_A, MIXED, 99):
        assert client.get(f"/narratives/{nid}").status_code == 404, nid


def test_mission_a_sees_all_three_and_filters(client: TestClient, world: dict[str, int]) -> None:
    sign_in(client, "alpha@example.org")
    text = client.get("/narratives", params={"lang": "en"}).text
    for nid in (ONLY_A, MIXED, SHARED):
        assert f'href="/narratives/{nid}"' in text
    emerging = client.get("/narratives", params={"emerging": "1"}).text
    assert f'href="/narratives/{ONLY_A}"' not in emerging  # 3 posts: too few to be a trend
    assert f'href="/narratives/{MIXED}"' not in emerging  # new, but only 1 post of A's
    assert f'href="/narratives/{SHARED}"' not in emerging  # 2 posts, days ago
    assert "No narrative is new or growing in the last 24 hours." in emerging
    kazakh = client.get("/narratives", params={"language": "kk"}).text
    assert f'href="/narratives/{MIXED}"' in kazakh and f'href="/narratives/{ONLY_A}"' not in kazakh
    one = client.get(f"/narratives/{MIXED}")
    # A sees its one post of the mixed narrative, and no trend in it (one post is no trend).
    assert "Posts: 1" in one.text and "alphahidden" in one.text and "Министр" not in one.text
    assert "in the last 24 hours" not in one.text


def test_post_page_links_to_its_narrative(client: TestClient, world: dict[str, int]) -> None:
    sign_in(client, "bravo@example.org")
    page = client.get(f"/posts/{world['mixed_b_post']}", params={"lang": "en"})
    assert page.status_code == 200
    section = page.text.split('id="narrative"', 1)[1].split("</section>", 1)[0]
    assert f'href="/narratives/{MIXED}"' in section and "visit, minister, сапар" in section
    assert 'href="/narratives"' in section
    assert "See the narratives page." not in page.text


def test_pages_are_translated(client: TestClient, world: dict[str, int]) -> None:
    from elshi.web import i18n

    sign_in(client, "bravo@example.org")
    for lang in ("kk", "ru"):
        text = client.get("/narratives", params={"lang": lang}).text
        assert i18n.gettext(lang, "Narratives") in text
        assert i18n.gettext(lang, "Posts: %(n)s") % {"n": 6} in text
