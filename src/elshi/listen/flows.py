"""Ingest: read a connector's records, map, validate, dedupe, quarantine and store in batches.

Here: mapping and checking records, imports and polls (with their runs), the bulk load of a
big file (mapped in a child process) and near duplicates. writer.py stores the batches.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import pickle
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text, update

from elshi.connectors.base import (
    BadRecord,
    Connector,
    FetchContext,
    PostIn,
    RawRecord,
    refuse_empty,
    snippet,
)
from elshi.db import BULK_YIELD_SECONDS, Database, disk_full, utcnow
from elshi.errors import NotFound
from elshi.listen.models import Source
from elshi.listen.runs import finish_run, start_run
from elshi.listen.text import repair_post
from elshi.listen.writer import _PROGRESS_EVERY, _Pipeline, _prepare, _Writer, unstorable
from elshi.listen.writer import AUTHOR as AUTHOR
from elshi.listen.writer import POST as POST
from elshi.listen.writer import QUARANTINE as QUARANTINE
from elshi.listen.writer import IngestReport as IngestReport
from elshi.listen.writer import Progress as Progress
from elshi.plugins import get_connector
from elshi.settings import Settings

log = logging.getLogger(__name__)


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check(post: PostIn, max_chars: int) -> None:
    if not post.external_id or not str(post.external_id).strip():
        raise _Rejected("missing required field: external id")
    if not (post.text or post.title):
        raise _Rejected("missing required field: text")
    if len(post.external_id) > 300:
        raise _Rejected(f"external id longer than 300 characters ({len(post.external_id)})")
    if len(post.text) > max_chars:
        raise _Rejected(f"text longer than {max_chars} characters ({len(post.text)})")
    for name in ("author_handle", "author_name"):
        value = getattr(post, name)
        if value is not None and len(value) > 300:
            raise _Rejected(f"{name} longer than 300 characters ({len(value)})")
    if post.url is not None and len(post.url) > 4000:
        raise _Rejected(f"url longer than 4000 characters ({len(post.url)})")
    for name in _TEXTS:
        value = getattr(post, name)
        if isinstance(value, str) and (problem := unstorable(value)):
            raise _Rejected(f"{name} contains {problem}, which cannot be stored")


#: The text fields of a post that must be storable (no lone surrogate, no NUL).
_TEXTS = (
    "external_id",
    "text",
    "title",
    "url",
    "author_handle",
    "author_name",
    "lang",
    "reply_to",
    "repost_of",
)


def _mapped(
    connector: Connector,
    records: Iterable[RawRecord | BadRecord],
    *,
    origin: str,
    batch_size: int,
    max_chars: int,
    sqlite: bool,
    report: IngestReport,
) -> Iterator[tuple[str, Any]]:
    """Map records; yield ("posts", prepared batch), ("bad", quarantine rows) and ("tick", n)."""
    batch: list[tuple[PostIn, RawRecord]] = []
    bad: list[tuple[str, str, str | None]] = []
    to_post = connector.to_post
    ticks = 0
    for rec in records:
        report.read += 1
        if isinstance(rec, BadRecord):
            where = (
                f"{rec.origin}: {rec.location}"
                if rec.origin and rec.origin != origin
                else rec.location
            )
            bad.append((where, rec.reason, rec.raw))
        else:
            try:
                post = to_post(rec)
                if post is None:
                    report.skipped += 1
                else:
                    repair_post(post)
                    _check(post, max_chars)
                    batch.append((post, rec))
            except Exception as exc:  # one record's error of any kind: that record only
                reason = exc.reason if isinstance(exc, _Rejected) else _record_problem(exc)
                bad.append((rec.location, reason, snippet(rec.payload)))
        if len(batch) >= batch_size:
            items = _prepare(batch, sqlite, bad)
            batch = []
            if items:
                yield "posts", items
        if len(bad) >= 200:
            yield "bad", bad
            bad = []
        ticks += 1
        if ticks >= _PROGRESS_EVERY:
            yield "tick", ticks
            ticks = 0
    if batch and (items := _prepare(batch, sqlite, bad)):
        yield "posts", items
    if bad:
        yield "bad", bad
    if ticks:
        yield "tick", ticks


def _store(
    messages: Iterable[tuple[str, Any]],
    writer: _Writer,
    report: IngestReport,
    progress: Progress | None,
) -> None:
    """Hand mapped batches to the writer (in a second thread once there are several)."""
    pipe = _Pipeline(writer, report)
    pending: tuple[str, Any] | None = None
    try:
        for kind, body in messages:
            if kind == "tick":
                if progress is not None:
                    progress(body)
                continue
            if pending is not None:
                pipe.submit(*pending)
            pending = (kind, body)
        if pending is not None:
            pipe.submit(*pending, last=True)
    except BaseException as first:
        try:
            pipe.finish()
        except BaseException as exc:  # the first error is the one to report
            if exc is not first:
                log.warning("writer failed too: %s", exc)
        raise
    pipe.finish()


def ingest_records(
    db: Database,
    connector: Connector,
    records: Iterable[RawRecord | BadRecord],
    *,
    origin: str,
    source_id: int | None = None,
    batch_size: int = 2000,
    max_chars: int = 100_000,
    progress: Progress | None = None,
    bulk: bool = False,
    run_id: int | None = None,
    input_bytes: int | None = None,
) -> IngestReport:
    """Map and store records; bad ones go to quarantine and the rest goes on.

    With bulk=True near duplicates are left pending: call mark_near_duplicates afterwards.
    """
    report, writer = _begin(db, connector, origin, source_id, bulk, run_id, input_bytes)
    messages = _mapped(
        connector,
        records,
        origin=origin,
        batch_size=batch_size,
        max_chars=max_chars,
        sqlite=writer.sqlite,
        report=report,
    )
    _store(messages, writer, report, progress)
    return report


def _begin(
    db: Database,
    connector: Connector,
    origin: str,
    source_id: int | None,
    defer_near_dups: bool,
    run_id: int | None,
    input_bytes: int | None,
) -> tuple[IngestReport, _Writer]:
    """Start a run's report and the writer that stores its posts."""
    report = IngestReport(connector=connector.slug, origin=origin)
    writer = _Writer(
        db,
        source_id=source_id,
        connector=connector.slug,
        origin=origin,
        defer_near_dups=defer_near_dups,
        run_id=run_id,
        input_bytes=input_bytes,
    )
    return report, writer


def _ingest_in_child(
    db: Database,
    connector: Connector,
    config: dict[str, Any],
    cursor: dict[str, Any],
    *,
    ctx: FetchContext,
    origin: str,
    source_id: int | None,
    progress: Progress | None,
    run_id: int | None = None,
    input_bytes: int | None = None,
) -> IngestReport:
    """Read and map in a child process while this one stores: two cores for a big file.

    Parsing and mapping are Python work that would otherwise take the GIL from the writer; the
    child sends prepared batches through a pipe, in order, so results are the same as inline.
    """
    report, writer = _begin(db, connector, origin, source_id, True, run_id, input_bytes)
    mp = multiprocessing.get_context("spawn")
    reader, sender = mp.Pipe(duplex=False)
    job = _ChildJob(
        connector=connector,
        config=config,
        cursor=cursor,
        settings=ctx.settings,
        origin=origin,
        sqlite=writer.sqlite,
    )
    proc = mp.Process(target=_child_main, args=(job, sender), name="elshi-ingest-map", daemon=True)
    proc.start()
    sender.close()

    def messages() -> Iterator[tuple[str, Any]]:
        while True:
            try:
                kind, body = pickle.loads(reader.recv_bytes())
            except EOFError:
                proc.join(5)
                raise RuntimeError(
                    f"the mapping process ended unexpectedly (exit code {proc.exitcode})"
                ) from None
            if kind == "error":
                raise body
            if kind == "done":
                report.read, report.skipped, new_cursor = body
                cursor.clear()
                cursor.update(new_cursor)
                return
            yield kind, body

    try:
        _store(messages(), writer, report, progress)
    finally:
        reader.close()
        proc.join(5)
        if proc.is_alive():
            proc.terminate()
            proc.join()
    return report


@dataclass
class _ChildJob:
    connector: Connector
    config: dict[str, Any]
    cursor: dict[str, Any]
    settings: Settings
    origin: str
    sqlite: bool


def _child_main(job: _ChildJob, out: Any) -> None:
    """Child process: fetch and map, send each message pickled; an error is sent, not raised."""
    report = IngestReport(connector=job.connector.slug, origin=job.origin)
    ctx = FetchContext(settings=job.settings)
    try:
        cfg = job.connector.parse_config(job.config)
        for message in _mapped(
            job.connector,
            job.connector.fetch(cfg, job.cursor, ctx),
            origin=job.origin,
            batch_size=job.settings.ingest_batch_size,
            max_chars=job.settings.max_field_chars,
            sqlite=job.sqlite,
            report=report,
        ):
            out.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        out.send_bytes(pickle.dumps(("done", (report.read, report.skipped, job.cursor))))
    except BaseException as exc:  # handed to the parent, which raises it
        try:
            data = pickle.dumps(("error", exc))
        except Exception:
            data = pickle.dumps(("error", RuntimeError(str(exc) or type(exc).__name__)))
        with contextlib.suppress(OSError):  # the parent is gone
            out.send_bytes(data)
    finally:
        ctx.close()
        out.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing required field: {exc.args[0]}"
    return str(exc) or exc.__class__.__name__


def _record_problem(exc: Exception) -> str:
    """Say why one record could not be mapped, whatever it raised."""
    if isinstance(exc, KeyError):
        return f"missing required field: {exc.args[0] if exc.args else ''}"
    if isinstance(exc, RecursionError):
        return "record nested too deeply to read"
    if isinstance(exc, OverflowError):
        return f"number out of range: {exc}"
    if isinstance(exc, UnicodeError):
        return f"text cannot be read or stored: {exc}"
    if isinstance(exc, ValueError | TypeError | AttributeError):
        return str(exc) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__


def import_with(
    db: Database,
    *,
    connector: Connector,
    config: dict[str, Any],
    cursor: dict[str, Any] | None = None,
    source_id: int | None = None,
    ctx: FetchContext,
    progress: Progress | None = None,
) -> IngestReport:
    """Fetch from a connector with a config and store the result; record the run.

    Ends by deciding the near duplicates of every post still waiting for it, this run's and
    those of an earlier run that was killed. A full disk raises DiskFull.
    """
    cfg = connector.parse_config(config)
    target = config.get(connector.target_field)
    origin = str(target if target is not None else connector.slug)
    cursor = {} if cursor is None else cursor
    run_id = start_run(db, connector=connector.slug, origin=origin, source_id=source_id)
    bulk = _bulk_eligible(db, connector, target)
    size = _input_bytes(target) if target is not None else None
    if bulk:
        _drop_bulk_indexes(db)
    report: IngestReport | None = None
    try:
        path = connector.input_path(config)
        if path is not None:
            refuse_empty(path)
        if bulk and _picklable(connector, config, cursor, ctx.settings):
            report = _ingest_in_child(
                db,
                connector,
                config,
                cursor,
                ctx=ctx,
                origin=origin,
                source_id=source_id,
                progress=progress,
                run_id=run_id,
                input_bytes=size,
            )
        else:
            report = ingest_records(
                db,
                connector,
                connector.fetch(cfg, cursor, ctx),
                origin=origin,
                source_id=source_id,
                batch_size=ctx.settings.ingest_batch_size,
                max_chars=ctx.settings.max_field_chars,
                progress=progress,
                bulk=bulk,
                run_id=run_id,
                input_bytes=size,
            )
        if bulk:
            ensure_indexes(db)
        near = mark_near_duplicates(db)
        report.near_duplicates = near if bulk else report.near_duplicates + near
    except BaseException as exc:
        interrupted = not isinstance(exc, Exception)  # Ctrl-C, SystemExit
        full = None if interrupted else disk_full(exc, db)
        failed = IngestReport(connector=connector.slug, origin=origin, run_id=run_id)
        failed.error = "interrupted" if interrupted else str(full or _describe(exc))
        if bulk:
            # Search needs its indexes back; the near-duplicate decisions wait for next time.
            try:
                ensure_indexes(db)
            except Exception as again:
                log.warning("could not rebuild the search indexes: %s", again)
        try:
            finish_run(db, run_id, failed, "interrupted" if interrupted else "failed")
        except Exception as again:
            log.warning("could not record the end of run %s: %s", run_id, again)
        if full is not None and full is not exc:
            raise full from exc
        raise
    report.run_id = run_id
    finish_run(db, run_id, report, "ok")
    return report


def _input_bytes(target: Any) -> int | None:
    """The size of an import's file or folder, or None when it is not one."""
    try:
        path = Path(str(target))
        if path.is_dir():
            return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        return path.stat().st_size if path.is_file() else None
    except (OSError, ValueError):
        return None


def mark_near_duplicates(
    db: Database,
    *,
    everything: bool = False,
    progress: Progress | None = None,
    chunk: int = 5000,
) -> int:
    """Decide near duplicates: point each post at the first post with its normalised text.

    Covers every post still waiting for its decision (near_dup_pending), whichever run stored
    it, so the posts of a killed import are decided by the next one; with everything=True it
    checks every post (a repair of a database imported before decisions were recorded).
    Works in chunks of ids, one short transaction each, so a kill loses no decision made and
    other writers get their turn; running it again changes nothing. Returns posts marked.
    """
    marked = 0
    last = 0
    pending = POST.c.near_dup_pending.is_(True)
    while True:
        with db.engine.connect() as conn:
            if everything:
                low = conn.execute(select(func.min(POST.c.id)).where(POST.c.id > last)).scalar()
                if low is None:
                    break
                lo, hi = int(low), int(low) + chunk - 1
            else:
                ids = list(
                    conn.execute(
                        select(POST.c.id)
                        .where(pending, POST.c.id > last)
                        .order_by(POST.c.id)
                        .limit(chunk)
                    ).scalars()
                )
                if not ids:
                    break
                lo, hi = ids[0], ids[-1]
        with db.writing() as conn:
            done = conn.execute(
                text(
                    "UPDATE post SET dup_of_id = (SELECT min(o.id) FROM post o "
                    "WHERE o.content_hash = post.content_hash) "
                    "WHERE post.id BETWEEN :lo AND :hi AND post.content_hash IS NOT NULL "
                    "AND post.dup_of_id IS NULL AND EXISTS (SELECT 1 FROM post o "
                    "WHERE o.content_hash = post.content_hash AND o.id < post.id)"
                    + ("" if everything else " AND post.near_dup_pending = :yes")
                ),
                {"lo": lo, "hi": hi, "yes": True},
            )
            marked += int(done.rowcount or 0)
            settled = conn.execute(
                update(POST)
                .where(POST.c.id.between(lo, hi), pending)
                .values(near_dup_pending=False)
            )
        if progress is not None:
            progress(int(settled.rowcount or 0) if not everything else _count(db, lo, hi))
        last = hi
        if db.sqlite:
            time.sleep(BULK_YIELD_SECONDS)  # other writers' turn
    return marked


def _count(db: Database, lo: int, hi: int) -> int:
    with db.engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).where(POST.c.id.between(lo, hi))).scalar() or 0
        )


#: A file import at least this large runs as a bulk load on SQLite (see _bulk_eligible).
BULK_MIN_BYTES = 64 * 1024 * 1024
#: Indexes a bulk load builds once at the end: the search filters and the content hash (near
#: duplicates are then marked in one pass). Ingest itself needs only the unique key.
_BULK_INDEXES = (
    "ix_post_content_hash",
    "ix_post_published",
    "ix_post_source_published",
    "ix_post_author_published",
    "ix_post_lang_published",
)


def _picklable(*objects: Any) -> bool:
    """Return True when the objects can be handed to a child process."""
    try:
        pickle.dumps(objects)
    except Exception:
        return False
    return True


def _bulk_eligible(db: Database, connector: Connector, target: Any) -> bool:
    """Return True for a large one-off file import into SQLite.

    Inserting rows into four search indexes with random keys costs more than building those
    indexes once, sorted, at the end, so a big import drops them and rebuilds them after.
    """
    if db.engine.dialect.name != "sqlite" or connector.pollable or target is None:
        return False
    size = _input_bytes(target)
    return size is not None and size >= BULK_MIN_BYTES


def _drop_bulk_indexes(db: Database) -> None:
    with db.engine.begin() as conn:
        for name in _BULK_INDEXES:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")


def ensure_indexes(db: Database) -> None:
    """Create any index of the post table that is missing (after a bulk load or a crash)."""
    with db.engine.begin() as conn:
        for index in POST.indexes:
            index.create(conn, checkfirst=True)


class SourceNotFound(NotFound):
    """No source has this id."""


class SourceRefused(RuntimeError):
    """A source may not be polled (a file, a non-http address); the message says why."""


def run_source(
    db: Database, *, source_id: int, ctx: FetchContext, progress: Progress | None = None
) -> IngestReport:
    """Poll one source now: fetch from its cursor, store, then record health and the next run."""
    with db.session() as s:
        source = s.get(Source, source_id)
        if source is None:
            raise SourceNotFound(f"no source with id {source_id}")
        slug, config, cursor = source.connector, dict(source.config), dict(source.cursor or {})
        every = source.every_minutes
        failures = source.failures
    connector = get_connector(slug)
    started = utcnow()
    problem = connector.poll_problem(config)
    if problem is not None:
        # Only the operator imports files (elshi ingest); a source that names one, however it
        # got into the database, is paused with the reason rather than read.
        message = f"refused, source paused: {problem}"
        with db.session() as s:
            source = s.get(Source, source_id)
            assert source is not None
            source.enabled = False
            source.next_run_at = None
            source.last_run_at = started
            source.last_error_at = utcnow()
            source.last_error = message[:2000]
            source.failures = failures + 1
        log.warning("source %s: %s", source_id, message)
        raise SourceRefused(f"source {source_id}: {message}")
    try:
        report = import_with(
            db,
            connector=connector,
            config=config,
            cursor=cursor,
            source_id=source_id,
            ctx=ctx,
            progress=progress,
        )
    except Exception as exc:
        failures += 1
        minutes = min((every or 15) * 2 ** min(failures, 10), ctx.settings.poll_backoff_max_minutes)
        with db.session() as s:
            source = s.get(Source, source_id)
            assert source is not None
            source.last_run_at = started
            source.last_error_at = utcnow()
            source.last_error = _describe(exc)[:2000]
            source.failures = failures
            source.next_run_at = utcnow() + timedelta(minutes=minutes)
        raise
    with db.session() as s:
        source = s.get(Source, source_id)
        assert source is not None
        source.cursor = cursor
        source.last_run_at = started
        source.last_success_at = utcnow()
        source.failures = 0
        source.next_run_at = utcnow() + timedelta(minutes=every) if every else None
    return report
