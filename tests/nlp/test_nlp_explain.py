"""Stance per target entity, and explanations of every result of a post in the API."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from elshi.accounts import flows
from elshi.accounts.service import Principal
from elshi.app import create_app
from elshi.db import Database
from elshi.listen.models import Annotation, Post
from elshi.nlp.pipeline import enrich_posts
from elshi.settings import Settings

SYSTEM = Principal.system("test")
TEXTS = {
    "ru": "Россия резко осудила США, но похвалила Казахстан за мудрую политику.",
    "en": "Kazakhstan did a wonderful job hosting the summit, while Russia was criticised harshly.",
    "kk": "Қазақстан керемет жетістікке жетті, ал Ресей сынға ұшырады.",
    "kk-ner": "Бүгін Ержан Нұрланұлы Алматы қаласында тамаша концерт берді.",
    "none": "Погода сегодня хорошая, все гуляют в парке.",
}


def _store(db: Database) -> dict[str, int]:
    with db.session() as s:
        posts = [
            Post(platform="test", external_id=k, connector="t", text=v, metrics={}, extra={})
            for k, v in TEXTS.items()
        ]
        s.add_all(posts)
        s.flush()
        return {p.external_id: p.id for p in posts}


def test_stance_is_per_target_entity(db: Database) -> None:
    _store(db)
    counts = enrich_posts(db, slugs=["stance"])
    assert counts["by_enricher"]["stance"] == len(TEXTS) and counts["errors"] == 0
    with db.session() as s:
        got = {
            ext: value
            for ext, value in s.execute(
                select(Post.external_id, Annotation.value)
                .join(Annotation, Annotation.post_id == Post.id)
                .where(Annotation.enricher == "stance")
            )
        }
    expected = {
        "ru": {"country:RU": "negative", "country:US": "negative", "country:KZ": "positive"},
        "en": {"country:KZ": "positive", "country:RU": "negative"},
        "kk": {"country:KZ": "positive", "country:RU": "negative"},
    }
    for ext, targets in expected.items():
        found = {t["id"]: t for t in got[ext]["targets"]}
        assert {k: found[k]["label"] for k in targets} == targets, (ext, found)
        for target in found.values():
            assert target["mentions"] >= 1 and target["evidence"], target
            words = " ".join(w for w, _ in target["evidence"]).casefold()
            assert any(w in TEXTS[ext].casefold() for w in words.split())
    assert got["none"]["targets"] == []


def test_explain_shows_what_drove_each_result(settings: Settings, db: Database) -> None:
    ids = _store(db)
    db.settings = db.settings.model_copy(update={"narratives_model": "hashing"})
    enrich_posts(db)
    with db.session() as s:
        flows.add_user(
            db=s,
            actor=SYSTEM,
            email="reader@example.org",
            password="correct horse battery staple 42",
            name="reader",
            role="analyst",
            mission_slug="hq",
        )
        token = flows.issue_token(db=s, actor=SYSTEM, email="reader@example.org")
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings, db=db)) as client:
        assert client.get(f"/api/posts/{ids['ru']}/explain").status_code == 401
        assert client.get("/api/posts/999999/explain", headers=auth).status_code == 404
        ru = client.get(f"/api/posts/{ids['ru']}/explain", headers=auth).json()
        assert ru["language"]["label"] == "ru" and ru["language"]["features"]
        assert ru["sentiment"]["words"] and ru["sentiment"]["model"] == "shipped"
        assert any(w["word"] == "осудила" and w["weight"] < 0 for w in ru["sentiment"]["words"])
        kz = next(e for e in ru["entities"] if e["id"] == "country:KZ")
        assert kz["source"] == "gazetteer" and kz["text"] == "Казахстан"
        assert kz["entry"]["names"]["en"] == "Kazakhstan" and "alias" in kz["why"][0]
        stance = {t["target"]: t for t in ru["stance"]}
        assert stance["country:KZ"]["label"] == "positive"
        assert any(w["word"] == "похвалила" for w in stance["country:KZ"]["words"])
        assert ru["narrative"]["id"] and set(ru["narrative"]["shared_terms"]) <= set(
            w.lower() for w in TEXTS["ru"].replace(",", " ").replace(".", " ").split()
        )
        kk = client.get(f"/api/posts/{ids['kk-ner']}/explain", headers=auth).json()
        person = next(e for e in kk["entities"] if e["source"] == "crf")
        assert person["type"] == "person" and person["text"] == "Ержан Нұрланұлы"
        assert any(w.startswith("CRF feature ") for w in person["why"])
        almaty = next(e for e in kk["entities"] if e["id"] == "city:almaty")
        assert almaty["entry"]["type"] == "city"
        detail = client.get(f"/api/posts/{ids['ru']}", headers=auth).json()
        assert detail["narrative"]["id"] == ru["narrative"]["id"]
        assert {a["enricher"] for a in detail["annotations"]} == {
            "language",
            "sentiment",
            "entities",
            "stance",
            "narratives",
        }
