"""The enrichment catch-up and a queued job annotate the same post (issue 21, fault 8).

On PostgreSQL the catch-up died with UniqueViolation (uq_annotation_post_id) when a job inserted
the same post's annotation between the catch-up's delete and its insert. Annotation writes are
upserts now: whoever commits second updates the row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from sqlalchemy import insert, select, text

from elshi.connectors.demo import DemoConnector
from elshi.db import Database, utcnow
from elshi.listen.flows import ingest_records
from elshi.listen.models import Annotation, Post
from elshi.nlp.base import AnnotationIn, Enricher, PostText
from elshi.nlp.jobs import first_unenriched
from elshi.nlp.pipeline import enrich_posts
from elshi.plugins import get_manager, hookimpl


class Tagger(Enricher):
    """Labels every post "catch-up"; on its first batch, runs `meanwhile` (another writer)."""

    slug: ClassVar[str] = "test-tagger"
    title: ClassVar[str] = "tagger"
    version: ClassVar[str] = "2"
    meanwhile: ClassVar[Any] = None

    def enrich_batch(self, posts: list[PostText]) -> list[AnnotationIn]:
        hook, type(self).meanwhile = type(self).meanwhile, None
        if hook is not None:
            hook([p.id for p in posts])
        return [
            AnnotationIn(post_id=p.id, label="catch-up", value={"by": "catch-up"}) for p in posts
        ]


@pytest.fixture
def tagger() -> Iterator[type[Tagger]]:
    plugin = SimpleNamespace(elshi_enrichers=hookimpl(lambda: [Tagger]))
    get_manager().register(plugin, name="test-race-enrichers")
    Tagger.meanwhile = None
    yield Tagger
    Tagger.meanwhile = None
    get_manager().unregister(name="test-race-enrichers")


def load_posts(db: Database, n: int = 5) -> list[int]:
    demo = DemoConnector()
    records = list(demo.fetch(demo.parse_config({"count": n}), {}, None))  # type: ignore[arg-type]
    ingest_records(db, demo, records, origin="race")
    with db.session() as s:
        return list(s.scalars(select(Post.id).order_by(Post.id)))


def job_row(post_id: int) -> dict[str, Any]:
    """The annotation an in-flight enrichment job writes for a post."""
    return {
        "post_id": post_id,
        "enricher": "test-tagger",
        "version": "1",
        "label": "job",
        "score": None,
        "value": {"by": "job"},
        "created_at": utcnow(),
    }


def annotations(db: Database) -> dict[int, list[tuple[str, str | None]]]:
    out: dict[int, list[tuple[str, str | None]]] = {}
    with db.session() as s:
        for a in s.scalars(select(Annotation).where(Annotation.enricher == "test-tagger")):
            out.setdefault(a.post_id, []).append((a.version, a.label))
    return out


def test_catch_up_after_a_job_wrote_the_same_annotation(db: Database, tagger: type[Tagger]) -> None:
    """A job commits the post's annotation while the catch-up computes: one row, the newest."""
    ids = load_posts(db)

    def job_writes(batch: list[int]) -> None:
        with db.engine.begin() as conn:
            conn.execute(insert(Annotation.__table__), [job_row(batch[0])])

    tagger.meanwhile = job_writes
    start = first_unenriched(db)
    assert start == ids[0]
    counts = enrich_posts(db, slugs=["test-tagger"], min_id=start)
    assert counts["by_enricher"] == {"test-tagger": len(ids)}
    assert annotations(db) == {i: [("2", "catch-up")] for i in ids}


def test_catch_up_racing_an_uncommitted_job_on_postgresql(
    db: Database, tagger: type[Tagger]
) -> None:
    """The job's insert is in flight (not committed) when the catch-up writes the same post.

    The catch-up's insert waits on the job's unique-key entry; when the job commits, the
    catch-up updates that row instead of dying with UniqueViolation.
    """
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: the catch-up waits for the job's commit")
    ids = load_posts(db)
    job = db.engine.connect()
    job_tx = job.begin()
    job.execute(insert(Annotation.__table__), [job_row(ids[0])])
    job_pid = job.execute(text("SELECT pg_backend_pid()")).scalar()
    failure: list[BaseException] = []

    def catch_up() -> None:
        try:
            enrich_posts(db, slugs=["test-tagger"], min_id=first_unenriched(db))
        except BaseException as exc:  # reported by the test thread
            failure.append(exc)

    worker = threading.Thread(target=catch_up, name="catch-up")
    worker.start()
    try:
        # Wait (polling, bounded) until the catch-up is blocked behind the job's row.
        deadline = time.monotonic() + 60
        with db.engine.connect() as watch:
            while True:
                waiting = watch.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database() AND pid <> :job"
                    ),
                    {"job": job_pid},
                ).scalar()
                if waiting or not worker.is_alive() or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        assert waiting, "the catch-up never reached the job's row"
        job_tx.commit()
    finally:
        if job_tx.is_active:
            job_tx.rollback()
        job.close()
        worker.join(60)
    assert not worker.is_alive()
    assert failure == []
    assert annotations(db) == {i: [("2", "catch-up")] for i in ids}
