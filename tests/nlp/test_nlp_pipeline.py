"""The enrichment pipeline: versioned annotations, re-runs, requirements, bad posts isolated."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from types import SimpleNamespace
from typing import ClassVar

import pytest
from sqlalchemy import select, text

from elshi.connectors.base import PostIn, RawRecord
from elshi.connectors.demo import DemoConnector
from elshi.db import Database
from elshi.listen.flows import ingest_records
from elshi.listen.models import Annotation, Post
from elshi.nlp.base import AnnotationIn, Enricher, PostText
from elshi.nlp.pipeline import enrich_posts, ordered
from elshi.plugins import get_manager, hookimpl


class Length(Enricher):
    """Counts characters; fails on posts containing 'BOOM'."""

    slug: ClassVar[str] = "test-length"
    title: ClassVar[str] = "length"
    version: ClassVar[str] = "1"
    calls: ClassVar[int] = 0

    def enrich_batch(self, posts: list[PostText]) -> list[AnnotationIn]:
        type(self).calls += 1
        if any("BOOM" in p.text for p in posts):
            raise RuntimeError("boom")
        return [
            AnnotationIn(post_id=p.id, label=str(len(p.text)), score=float(len(p.text)))
            for p in posts
        ]


class Lang(Enricher):
    """Calls everything Kazakh when it has Kazakh letters, else English; needs the length."""

    slug: ClassVar[str] = "test-lang"
    title: ClassVar[str] = "lang"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("test-length",)
    sets_post_lang: ClassVar[bool] = True

    def enrich_batch(self, posts: list[PostText]) -> list[AnnotationIn]:
        out = []
        for p in posts:
            assert "test-length" in p.context
            kk = any(ch in p.text for ch in "әғқңөұүһі")
            out.append(
                AnnotationIn(
                    post_id=p.id,
                    label="kk" if kk else "en",
                    value={"n": p.context["test-length"]["label"]},
                )
            )
        return out


def writing_elsewhere(db: Database) -> bool:
    """Return True when a connection other than this check's holds a write on the database.

    SQLite: another connection cannot take the write lock at once. PostgreSQL: another
    backend holds a row-write lock on the annotation table.
    """
    if db.engine.dialect.name == "sqlite":
        with sqlite3.connect(str(db.engine.url.database), timeout=0, isolation_level=None) as raw:
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                return True
            raw.execute("ROLLBACK")
        return False
    with db.engine.connect() as conn:
        held = conn.execute(
            text(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                " WHERE c.relname = 'annotation' AND l.mode = 'RowExclusiveLock'"
                " AND l.pid <> pg_backend_pid()"
            )
        ).scalar()
    return bool(held)


class Probe(Enricher):
    """Runs after the length enricher and notes whether the batch is already writing."""

    slug: ClassVar[str] = "test-probe"
    title: ClassVar[str] = "probe"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("test-length",)
    db: ClassVar[Database | None] = None
    seen: ClassVar[list[bool]] = []

    def enrich_batch(self, posts: list[PostText]) -> list[AnnotationIn]:
        assert self.db is not None
        type(self).seen.append(writing_elsewhere(self.db))
        return [AnnotationIn(post_id=p.id, label="seen") for p in posts]


@pytest.fixture
def test_enrichers() -> Iterator[None]:
    plugin = SimpleNamespace(elshi_enrichers=hookimpl(lambda: [Length, Lang, Probe]))
    get_manager().register(plugin, name="test-enrichers")
    yield
    get_manager().unregister(name="test-enrichers")


class _NoLang(DemoConnector):
    slug = "nolang"

    def to_post(self, raw: RawRecord) -> PostIn:
        post = super().to_post(raw)
        post.lang = None
        return post


def _load(db: Database, n: int = 40) -> None:
    conn = _NoLang()
    ingest_records(
        db, conn, list(conn.fetch(conn.parse_config({"count": n}), {}, None)), origin="t"
    )  # type: ignore[arg-type]


def test_requirements_run_first(test_enrichers: None) -> None:
    assert [e.slug for e in ordered(["test-lang"])] == ["test-length", "test-lang"]
    with pytest.raises(KeyError, match="no enricher"):
        ordered(["missing"])


def test_enrich_annotates_fills_language_and_skips_current(
    db: Database, test_enrichers: None
) -> None:
    _load(db)
    counts = enrich_posts(db, slugs=["test-lang"], batch_size=16)
    assert counts["posts"] == 40
    assert counts["by_enricher"] == {"test-length": 40, "test-lang": 40}
    with db.session() as s:
        posts = {p.id: p for p in s.scalars(select(Post))}
        rows = list(s.scalars(select(Annotation).where(Annotation.enricher == "test-length")))
        assert len(rows) == 40
        for a in rows:
            assert a.label == str(len(posts[a.post_id].text))
        for p in posts.values():
            assert p.lang == ("kk" if any(ch in p.text for ch in "әғқңөұүһі") else "en")
    again = enrich_posts(db, slugs=["test-lang"])
    assert again["annotations"] == 0
    Length.version = "2"
    try:
        rerun = enrich_posts(db, slugs=["test-lang"])
        assert rerun["by_enricher"] == {"test-length": 40}
        with db.session() as s:
            versions = set(
                s.scalars(select(Annotation.version).where(Annotation.enricher == "test-length"))
            )
            assert versions == {"2"}
            assert (
                s.scalar(select(Annotation).where(Annotation.enricher == "test-length").limit(1))
                is not None
            )
    finally:
        Length.version = "1"


def test_a_batch_writes_nothing_until_every_enricher_has_computed(
    db: Database, test_enrichers: None
) -> None:
    """Other workers can write while a batch computes: its writes come last, in one go."""
    _load(db, 30)
    Probe.db, Probe.seen = db, []
    assert not writing_elsewhere(db)
    counts = enrich_posts(db, slugs=["test-probe"], batch_size=10)
    assert counts["by_enricher"] == {"test-length": 30, "test-probe": 30}
    # Three batches; while the probe computed, the length results of its batch were not
    # being written yet (before, they were, and the write lock was held).
    assert Probe.seen == [False, False, False]
    with db.session() as s:
        labels = {
            (a.enricher, a.label)
            for a in s.scalars(select(Annotation).where(Annotation.enricher == "test-probe"))
        }
    assert labels == {("test-probe", "seen")}
    assert not writing_elsewhere(db)


def test_one_bad_post_does_not_sink_the_batch(db: Database, test_enrichers: None) -> None:
    _load(db, 10)
    with db.session() as s:
        victim = s.scalars(select(Post).order_by(Post.id).limit(1)).one()
        victim.text = "BOOM " + victim.text
        victim_id = victim.id
    counts = enrich_posts(db, slugs=["test-length"])
    assert counts["errors"] == 1
    with db.session() as s:
        bad = s.scalar(select(Annotation).where(Annotation.post_id == victim_id))
        assert bad is not None and bad.label is None and "boom" in bad.value["error"]
        good = list(s.scalars(select(Annotation).where(Annotation.post_id != victim_id)))
        assert len(good) == 9 and all(a.label for a in good)


def test_language_enricher_fills_missing_languages(db: Database) -> None:
    texts = {
        "kk": "Қазақстан Республикасының Сыртқы істер министрлігі жаңа бастаманы ұсынды.",
        "ru": "Министерство иностранных дел Казахстана выступило с новой инициативой.",
        "en": "The Foreign Ministry of Kazakhstan put forward a new initiative today.",
        "zh": "哈萨克斯坦外交部今天提出了一项新倡议。",
        "und": "👍👍 🙂",
    }

    class Fixed(DemoConnector):
        slug = "fixed"

        def to_post(self, raw: RawRecord) -> PostIn:
            return PostIn(platform="test", external_id=raw.payload["id"], text=raw.payload["text"])

    records = [RawRecord(payload={"id": k, "text": v}, location=k) for k, v in texts.items()]
    ingest_records(db, Fixed(), records, origin="t")
    counts = enrich_posts(db, slugs=["language"])
    assert counts["by_enricher"] == {"language": 5} and counts["errors"] == 0
    with db.session() as s:
        for post in s.scalars(select(Post)):
            ann = s.scalar(select(Annotation).where(Annotation.post_id == post.id))
            assert ann is not None and ann.label == post.external_id
            assert post.lang == (None if post.external_id == "und" else post.external_id)
            assert ann.value["features"] or post.external_id == "und"


def test_sentiment_enricher_uses_the_detected_language(db: Database) -> None:
    texts = {
        "kk-pos": "Керемет қызмет, елшілікке үлкен рахмет, бәрі өте жақсы!",
        "kk-neg": "Өте жаман қызмет, ешкім жауап бермеді, уақыт босқа кетті.",
        "ru-pos": "Отличная работа посольства, огромное спасибо, всё прекрасно!",
        "ru-neg": "Ужасная работа, никто не отвечает, это просто отвратительно.",
        "en-pos": "Wonderful help from the embassy, thank you so much, great work!",
        "en-neg": "Terrible service, nobody answered, an awful and useless experience.",
    }

    class Fixed(DemoConnector):
        slug = "fixed"

        def to_post(self, raw: RawRecord) -> PostIn:
            return PostIn(platform="test", external_id=raw.payload["id"], text=raw.payload["text"])

    records = [RawRecord(payload={"id": k, "text": v}, location=k) for k, v in texts.items()]
    ingest_records(db, Fixed(), records, origin="t")
    counts = enrich_posts(db, slugs=["sentiment"])
    assert counts["by_enricher"] == {"language": 6, "sentiment": 6}
    with db.session() as s:
        for post in s.scalars(select(Post)):
            ann = s.scalar(
                select(Annotation).where(
                    Annotation.post_id == post.id, Annotation.enricher == "sentiment"
                )
            )
            assert ann is not None
            lang, polarity = post.external_id.split("-")
            assert ann.value["lang"] == lang
            assert (ann.score > 0) == (polarity == "pos"), (post.text, ann.score)
            if lang != "ru":  # the Russian model is trained on news, not reviews: sign only
                assert ann.label == ("positive" if polarity == "pos" else "negative")
            assert ann.value["evidence"], "an explanation names the words that drove the result"
            words = " ".join(w for w, _ in ann.value["evidence"])
            assert any(part.casefold() in post.text.casefold() for part in words.split())


def test_entity_enricher_finds_ids_across_scripts_and_cases(db: Database) -> None:
    texts = {
        "kk": "Қазақстанның сыртқы саясаты ШЫҰ саммитінде талқыланды.",
        "ru": "Президент Казахстана выступил на саммите ШОС в Китае.",
        "zh": "哈萨克斯坦总统出席了上海合作组织峰会。",
    }

    class Fixed(DemoConnector):
        slug = "fixed"

        def to_post(self, raw: RawRecord) -> PostIn:
            return PostIn(platform="test", external_id=raw.payload["id"], text=raw.payload["text"])

    records = [RawRecord(payload={"id": k, "text": v}, location=k) for k, v in texts.items()]
    ingest_records(db, Fixed(), records, origin="t")
    enrich_posts(db, slugs=["entities"])
    with db.session() as s:
        for post in s.scalars(select(Post)):
            ann = s.scalar(
                select(Annotation).where(
                    Annotation.post_id == post.id, Annotation.enricher == "entities"
                )
            )
            assert ann is not None
            assert {"country:KZ", "org:SCO"} <= set(ann.value["ids"]), (post.external_id, ann.value)
            for m in ann.value["mentions"]:
                assert post.text[m["start"] : m["end"]] == m["text"]
