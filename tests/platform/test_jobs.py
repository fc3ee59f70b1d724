"""The task queue: jobs cross processes over real Redis and SQLite; the scheduler polls sources."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from elshi import jobs
from elshi.db import Database
from elshi.listen import service
from elshi.listen.models import Annotation, Post, Source
from elshi.settings import Settings, load_settings
from tests.conftest import REDIS_URL, service_missing


def _worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELSHI_")}
    env.update(
        ELSHI_HOME=str(settings.home),
        ELSHI_DATABASE_URL=settings.db_url,
        ELSHI_DEMO="1",
        ELSHI_QUEUE_NAME=settings.queue_name,
        **extra,
    )
    if settings.queue_url:
        env["ELSHI_QUEUE_URL"] = settings.queue_url
    return env


@pytest.fixture
def worker_process(request: pytest.FixtureRequest) -> Iterator[object]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "elshi.cli", *args],
            env=_worker_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _redis_settings(settings: Settings) -> Settings:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except Exception as exc:
        service_missing("Redis", exc)
    return load_settings(queue_url=REDIS_URL, queue_name=f"elshi-test-{uuid.uuid4().hex[:8]}")


def _add_demo_source(db: Database, count: int = 50) -> int:
    with db.session() as s:
        return service.add_source(db=s, connector="demo", config={"count": count, "seed": 11}).id


@pytest.mark.redis
def test_job_queued_here_runs_in_a_worker_process_over_redis(
    settings: Settings, db: Database, worker_process
) -> None:
    rsettings = _redis_settings(settings)
    source_id = _add_demo_source(db)
    worker_process(rsettings, "worker", "--threads", "1")
    rt = jobs.bind(rsettings)
    pong = jobs.enqueue("ping", "hello")
    assert pong is not None
    answer = pong.get(blocking=True, timeout=60)
    assert answer["note"] == "hello"
    assert answer["pid"] != os.getpid()
    polled = jobs.enqueue("poll_source", source_id)
    assert polled is not None
    report = polled.get(blocking=True, timeout=60)
    assert report["stored"] == 50
    with db.session() as s:
        assert (
            s.scalar(select(func.count()).select_from(Post).where(Post.source_id == source_id))
            == 50
        )
    rt.huey.flush()


def test_job_crosses_processes_on_the_default_sqlite_queue(
    settings: Settings, worker_process
) -> None:
    worker_process(settings, "worker", "--threads", "1")
    rt = jobs.bind(settings)
    assert type(rt.huey).__name__ == "SqliteHuey"
    assert Path(settings.home, "queue.db").exists()
    result = jobs.enqueue("ping", "sqlite")
    assert result is not None
    answer = result.get(blocking=True, timeout=60)
    assert answer["pid"] != os.getpid()


def test_scheduler_queues_due_sources_only(settings: Settings, db: Database) -> None:
    immediate = load_settings(queue_immediate=True, queue_url="memory://")
    due_id = _add_demo_source(db, 20)
    with db.session() as s:
        later = service.add_source(db=s, connector="demo", config={"count": 5, "seed": 2})
        later.every_minutes = 60
        later.next_run_at = None
        unscheduled_id = later.id
        s.get(Source, due_id).every_minutes = 15  # type: ignore[union-attr]
        s.get(Source, due_id).next_run_at = s.get(Source, due_id).created_at  # type: ignore[union-attr]
    jobs.bind(immediate, db)
    queued = jobs.runtime().tasks["schedule_due_sources"].call_local()
    assert queued == [due_id]
    with db.session() as s:
        src = s.get(Source, due_id)
        assert src is not None and src.health == "ok"
        assert src.next_run_at is not None and src.next_run_at > src.last_success_at  # type: ignore[operator]
        assert (
            s.scalar(select(func.count()).select_from(Post).where(Post.source_id == unscheduled_id))
            == 0
        )
        assert (
            s.scalar(select(func.count()).select_from(Post).where(Post.source_id == due_id)) == 20
        )
        # the poll queued enrichment of the new posts, which ran at once in immediate mode
        langs = s.scalars(select(Annotation.label).where(Annotation.enricher == "language"))
        assert sorted(set(langs)) == ["en", "kk", "ru"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_runs_web_worker_and_scheduler_in_one_process(
    settings: Settings, db: Database, worker_process
) -> None:
    with db.session() as s:
        src = service.add_source(
            db=s, connector="demo", config={"count": 30, "seed": 5}, every_minutes=15
        )
        source_id = src.id
    port = _free_port()
    proc = worker_process(settings, "serve", "--port", str(port))
    deadline = time.monotonic() + 60
    health = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            pytest.fail(f"elshi serve exited with {proc.returncode}: {out}")
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
            with db.session() as s:
                stored = s.scalar(
                    select(func.count()).select_from(Post).where(Post.source_id == source_id)
                )
            if stored == 30:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    assert health is not None and health["status"] == "ok"
    with db.session() as s:
        assert (
            s.scalar(select(func.count()).select_from(Post).where(Post.source_id == source_id))
            == 30
        )


def test_cli_ingest_queues_enrichment_and_catch_up_finds_the_rest(
    settings: Settings, db: Database, cli, tmp_path: Path
) -> None:
    from elshi.nlp.jobs import enrich_pending, first_unenriched

    r = cli("demo", "--no-serve", "--posts", "40")
    assert r.exit_code == 0, r.output
    assert first_unenriched(db) == 1
    rt = jobs.bind(settings, db)
    pending = rt.huey.pending()
    assert [t.name for t in pending] == ["enrich_new_posts"]
    for t in pending:
        rt.huey.execute(t)
    assert first_unenriched(db) is None
    with db.session() as s:
        n = s.scalar(
            select(func.count()).select_from(Annotation).where(Annotation.enricher == "language")
        )
        assert n == 40
        s.execute(Annotation.__table__.delete().where(Annotation.post_id > 30))
    assert first_unenriched(db) == 31
    counts = rt.tasks["enrich_pending"].call_local()
    assert counts["by_enricher"]["language"] == 10
    assert first_unenriched(db) is None
    assert enrich_pending is not None


def test_pipeline_states_the_order_and_each_stage_queues_the_next(
    settings: Settings, db: Database
) -> None:
    from elshi.nlp.pipeline import ordered

    stages = [s.name for s in jobs.PIPELINE]
    assert stages == ["ingest", "enrich", "narratives", "watches", "alerts", "coordination"]
    assert [s.name for s in jobs.following("ingest")] == ["enrich", "coordination"]
    assert [s.name for s in jobs.following("enrich")] == ["narratives", "watches"]
    with pytest.raises(KeyError, match="no pipeline stage 'nope'"):
        jobs.following("nope")
    rt = jobs.bind(settings, db)
    assert {s.task for s in jobs.PIPELINE if s.task} <= set(rt.tasks)
    source_id = _add_demo_source(db, 12)
    report = rt.tasks["poll_source"].call_local(source_id)
    assert report["stored"] == 12
    ran: list[str] = []
    while (t := rt.huey.dequeue()) is not None and len(ran) < 20:
        ran.append(t.name)
        rt.huey.execute(t)
    narratives = ["assign_narratives"] if ordered(apart=True) else []
    assert ran == ["enrich_new_posts", "update_coordination", *narratives, "update_watches"]
    with db.session() as s:
        assert service.newest_post_id(db=s) == s.scalar(select(func.max(Post.id))) > 0
