"""The demo loads a small imported list and assesses the accounts, so the actors page of a
fresh install shows types with their reasons; a second run imports nothing new."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from elshi.actors.models import AccountAssessment, ActorList, ActorListEntry
from elshi.app import create_app
from elshi.db import Database
from elshi.demo import DEMO_EMAIL, load_demo
from elshi.demo.actors import DEMO_ACCOUNTS, DEMO_LIST, demo_list_csv
from elshi.listen.models import Author, Post
from elshi.settings import Settings
from tests.workspace_helpers import sign_in


def test_the_demo_types_accounts_by_its_list_and_shows_why(
    db: Database, settings: Settings
) -> None:
    info = load_demo(db, settings=settings, posts=60)
    rows = list(csv.DictReader(io.StringIO(demo_list_csv().decode("utf-8"))))
    listed = {(r["platform"], r["handle"]): r["type"] for r in rows}
    with db.session() as s:
        lst = s.scalars(select(ActorList)).one()
        assert lst.name == DEMO_LIST and lst.entries == len(rows)
        authors = s.scalars(select(Author)).all()
        assessed = s.scalar(select(func.count()).select_from(AccountAssessment))
        assert assessed == len(authors) > 0
        by_list = [a for a in authors if (a.platform, a.handle) in listed]
        assert by_list, "the demo corpus has posts of the listed accounts"
        for a in by_list:
            assert a.actor_type == listed[(a.platform, a.handle)]
            reason = s.get(AccountAssessment, a.id)
            assert reason is not None and reason.reason["rule"] == "list"
        # The state news agency is state media on every platform the corpus gives it.
        kazinform = [a for a in by_list if a.handle == "kazinform"]
        assert all(a.actor_type == "state_media" for a in kazinform)
        assert s.scalar(select(func.count()).select_from(Post)) == info["posts"]
    assert info["typed"] >= len(by_list)

    again = load_demo(db, settings=settings, posts=60)
    assert again["typed"] == info["typed"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ActorList)) == 1
        assert s.scalar(select(func.count()).select_from(ActorListEntry)) == len(rows)

    client = TestClient(create_app(settings, db=db))
    client.headers["accept-language"] = "en"
    sign_in(client, DEMO_EMAIL, info["password"])
    registry = client.get("/actors", params={"lang": "en"})
    assert registry.status_code == 200
    assert DEMO_LIST in registry.text
    assert "No account has a type yet." not in registry.text
    assert "state media" in registry.text
    one = next(a for a in by_list if a.handle == DEMO_ACCOUNTS[2][0])
    page = client.get(f"/authors/{one.id}", params={"lang": "en"}).text
    assert '<strong id="actor-type">state media</strong>' in page
    assert f"By rule: the imported list “{DEMO_LIST}” names it (line" in page
    assert "Country: KZ." in page
