"""The actor pages: the list upload (headquarters only, a file and never a path, each bad
line shown), the type's reason and the signals on an author's page, and actors linking
accounts of several platforms; each seen only through the viewer's missions' posts."""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from elshi.accounts.models import AuditEvent
from elshi.actors import service as actors
from elshi.actors.models import ActorList, ActorListEntry
from elshi.app import create_app
from elshi.db import Database
from elshi.listen.models import Author
from elshi.settings import Settings
from tests.workspace_helpers import add_post, add_source, add_staff, csrf, sign_in, three_missions

#: Real IRA accounts whose first posts go to Alpha's source.
IRA = ("AnastasiaR777", "Solano_Ki")
POSTS_EACH = 40


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=db)) as c:
        yield c


@pytest.fixture
def world(db: Database, shared_data: Path) -> dict[str, Any]:
    ids: dict[str, Any] = {"authors": {}}
    with db.session() as s:
        ids.update(three_missions(s))
        add_staff(s, "hq@example.org", "analyst", "hq")
        alpha = add_source(s, "Alpha feed", ids["alpha"])
        bravo = add_source(s, "Bravo feed", ids["bravo"])
        for handle in IRA:
            author = Author(platform="twitter", handle=handle, name=handle)
            s.add(author)
            s.flush()
            ids["authors"][handle] = author.id
            path = shared_data / "ira-troll-tweets-sample" / "tweets" / f"{handle}.csv.gz"
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                for row in list(csv.DictReader(fh))[:POSTS_EACH]:
                    when = datetime.strptime(row["publish_date"], "%Y-%m-%d %H:%M:%S")
                    post = add_post(
                        s,
                        row["content"],
                        when.replace(tzinfo=UTC),
                        platform="twitter",
                        source_id=alpha.id,
                        author=author,
                    )
                    post.extra = {"retweet": row["retweet"] == "1"}  # as the ira profile keeps it
        for platform, handle, name, src in (
            ("telegram", "anastasia_channel", "Анастасия", alpha),
            ("mastodon", "mfa_kz@mastodon.social", "MFA Kazakhstan", bravo),
        ):
            author = Author(platform=platform, handle=handle, name=name)
            s.add(author)
            s.flush()
            ids["authors"][handle] = author.id
            add_post(
                s,
                f"post of {handle}",
                datetime(2026, 3, 1, tzinfo=UTC),
                platform=platform,
                source_id=src.id,
                author=author,
            )
        s.commit()
    return ids


def upload(client: TestClient, data: bytes, filename: str, **fields: str) -> Any:
    token = csrf(client, "/actors")
    return client.post(
        "/actors/lists",
        params={"lang": "en"},
        data={"csrf_token": token, **fields},
        files={"file": (filename, data, "text/csv")},
    )


def test_headquarters_uploads_a_list_and_the_author_page_shows_why(
    client: TestClient, db: Database, world: dict[str, Any], shared_data: Path
) -> None:
    sign_in(client, "hq@example.org")
    authors_csv = shared_data / "ira-troll-tweets-sample" / "authors.csv"
    page = upload(
        client,
        authors_csv.read_bytes(),
        "authors.csv",
        name="IRA accounts",
        platform="twitter",
        actor_type="inauthentic",
        country="RU",
    )
    assert page.status_code == 200, page.text[:500]
    with authors_csv.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert f"Accounts stored: {len(rows)}; lines refused: 0." in page.text
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ActorListEntry)) == len(rows)
        assert s.scalars(select(ActorList.name)).one() == "IRA accounts"
        events = s.scalars(select(AuditEvent.action)).all()
        assert "actors.list_imported" in events

    bad = b"platform,handle,type,country\ntwitter,ok_one,journalist,KZ\ntwitter,two,alien,KZ\n"
    page = upload(client, bad, "mixed.csv")
    assert "Accounts stored: 1; lines refused: 1." in page.text
    assert "<strong>line 3, column type</strong>: unknown type &#39;alien&#39;" in page.text

    with db.session() as s:
        actors.assess(s)
    anastasia = world["authors"]["AnastasiaR777"]
    text = client.get(f"/authors/{anastasia}", params={"lang": "en"}).text
    line = next(n for n, r in enumerate(rows, start=2) if r["author_id"] == "AnastasiaR777")
    assert '<strong id="actor-type">suspected inauthentic</strong>' in text
    assert f"By rule: the imported list “IRA accounts” names it (line {line})." in text
    assert "Country: RU." in text
    assert 'data-signal="amplification"' in text and "Signal score:" in text
    assert "never a verdict on its own" in text
    # In Kazakh and Russian the same page reads in the reader's language.
    assert "Жалғандық белгілері" in client.get(f"/authors/{anastasia}", params={"lang": "kk"}).text
    assert (
        "Сигналы неаутентичности" in client.get(f"/authors/{anastasia}", params={"lang": "ru"}).text
    )

    registry = client.get("/actors", params={"lang": "en"}).text
    assert 'href="/actors" aria-current="page"' in registry
    assert "IRA accounts" in registry and "mixed.csv" in registry
    assert f'href="/authors/{anastasia}"' in registry


def test_a_mission_analyst_cannot_import_and_the_web_takes_no_path(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    sign_in(client, "alpha@example.org")
    page = client.get("/actors", params={"lang": "en"})
    assert page.status_code == 200 and 'action="/actors/lists"' not in page.text
    r = upload(client, b"platform,handle,type\ntwitter,x,journalist\n", "l.csv")
    assert r.status_code == 403
    client.cookies.clear()
    sign_in(client, "hq@example.org")
    token = csrf(client, "/actors")
    r = client.post(
        "/actors/lists",
        params={"lang": "en"},
        data={"csrf_token": token, "path": "/etc/passwd", "file": "/etc/passwd"},
    )
    assert r.status_code == 200 and "Choose a file to upload." in r.text
    r = client.post("/actors/lists", files={"file": ("l.csv", b"handle\nx\n", "text/csv")})
    assert r.status_code == 400  # no form token
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ActorList)) == 0


def test_accounts_of_two_platforms_linked_into_one_actor_seen_by_their_mission_only(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    with db.session() as s:
        actors.assess(s)
    a = world["authors"]
    sign_in(client, "alpha@example.org")
    registry = client.get("/actors", params={"lang": "en"}).text
    assert f'href="/authors/{a["AnastasiaR777"]}"' in registry
    assert f'href="/authors/{a["mfa_kz@mastodon.social"]}"' not in registry

    token = csrf(client, f"/authors/{a['AnastasiaR777']}")
    r = client.post(
        f"/authors/{a['AnastasiaR777']}/actor",
        data={"csrf_token": token, "name": "Anastasia R."},
        follow_redirects=False,
    )
    assert r.status_code == 303
    actor_url = r.headers["location"]
    actor_id = int(re.fullmatch(r"/actors/(\d+)", actor_url)[1])  # type: ignore[index]
    page = client.get(f"/authors/{a['anastasia_channel']}", params={"lang": "en"}).text
    assert f'<option value="{actor_id}">Anastasia R.</option>' in page
    r = client.post(
        f"/authors/{a['anastasia_channel']}/actor",
        data={"csrf_token": token, "actor": str(actor_id)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == actor_url
    one = client.get(actor_url, params={"lang": "en"}).text
    assert "X (Twitter)" in one and "Telegram" in one
    assert f'id="account-{a["AnastasiaR777"]}"' in one
    assert f'id="account-{a["anastasia_channel"]}"' in one

    client.cookies.clear()
    sign_in(client, "bravo@example.org")
    assert client.get(actor_url).status_code == 404
    token = csrf(client, f"/authors/{a['mfa_kz@mastodon.social']}")
    r = client.post(
        f"/authors/{a['mfa_kz@mastodon.social']}/actor",
        data={"csrf_token": token, "actor": str(actor_id)},
    )
    assert r.status_code == 404  # an actor bravo does not see cannot be joined
    r = client.post(
        f"/actors/{actor_id}/accounts/{a['AnastasiaR777']}/remove", data={"csrf_token": token}
    )
    assert r.status_code == 404

    client.cookies.clear()
    sign_in(client, "alpha@example.org")
    token = csrf(client, actor_url)
    r = client.post(
        f"/actors/{actor_id}/accounts/{a['anastasia_channel']}/remove",
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    one = client.get(actor_url).text
    assert f'id="account-{a["anastasia_channel"]}"' not in one
    with db.session() as s:
        actions = s.scalars(select(AuditEvent.action)).all()
    assert actions.count("actor.linked") == 2 and actions.count("actor.unlinked") == 1
