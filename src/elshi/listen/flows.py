"""Ingest: read a connector's records, map, validate, dedupe, quarantine and store in batches."""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from elshi.connectors.base import (
    BadRecord,
    Connector,
    FetchContext,
    MappingError,
    PostIn,
    RawRecord,
    snippet,
)
from elshi.db import Database, utcnow
from elshi.listen.models import Author, IngestRun, Post, Quarantine, Source
from elshi.listen.text import content_hash, index_text
from elshi.plugins import get_connector

log = logging.getLogger(__name__)

POST = cast(Table, Post.__table__)
AUTHOR = cast(Table, Author.__table__)
QUARANTINE = cast(Table, Quarantine.__table__)


@dataclass
class IngestReport:
    """Counts for one import or poll."""

    connector: str
    origin: str
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    near_duplicates: int = 0
    skipped: int = 0
    quarantined: int = 0
    run_id: int | None = None
    error: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as a plain dict."""
        return asdict(self)


Progress = Callable[[int], None]


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


@dataclass(slots=True)
class _Item:
    """A mapped post with what can be computed before the database is involved."""

    post: PostIn
    raw: RawRecord
    hash: int | None
    #: SQLite only: (metrics, extra, raw) as JSON text, published_at as stored, FTS texts.
    cols: tuple[Any, ...] | None = None


class _Writer:
    """Writes batches of mapped posts; one transaction per batch, on one connection."""

    def __init__(self, db: Database, *, source_id: int | None, connector: str, origin: str):
        self.db = db
        self.source_id = source_id
        self.connector = connector
        self.origin = origin
        self.sqlite = db.engine.dialect.name == "sqlite"
        self.authors: dict[tuple[str, str], int] = {}
        self._conn: Connection | None = None
        self._written = 0
        self._analyze_at = _ANALYZE_FIRST
        #: Authors cached during the open transaction: forgotten if it rolls back.
        self._pending: list[tuple[str, str]] = []

    def prepare(self, pairs: list[tuple[PostIn, RawRecord]]) -> list[_Item]:
        """Hash and serialise a batch; pure CPU work, done while the previous batch is stored."""
        if not self.sqlite:
            return [_Item(p, r, content_hash(p.text, p.title)) for p, r in pairs]
        dumps = _JSON.encode
        return [
            _Item(
                p,
                r,
                content_hash(p.text, p.title),
                (
                    dumps(p.metrics) if p.metrics else "{}",
                    dumps(p.extra) if p.extra else "{}",
                    dumps(r.payload),
                    _sqlite_time(p.published_at),
                    index_text(p.title),
                    index_text(p.text),
                    " ".join(filter(None, (p.author_handle, p.author_name))),
                ),
            )
            for p, r in pairs
        ]

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.db.engine.connect()
            if self.sqlite:
                # Checkpoint the WAL rarely during a bulk import: index pages that many
                # batches touch are then copied into the database once, not once per batch.
                self._conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={_BULK_WAL_PAGES}")
                self._conn.commit()
        return self._conn

    def close(self) -> None:
        """Restore the connection's settings, fold the WAL into the database, release it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self.sqlite:
                conn.rollback()
                conn.exec_driver_sql("PRAGMA wal_autocheckpoint=1000")
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                conn.commit()
        except SQLAlchemyError as exc:
            log.warning("could not checkpoint after import: %s", exc)
        finally:
            conn.close()

    def write(self, items: list[_Item], report: IngestReport) -> None:
        """Store one batch; on a database error, retry row by row so one bad row is isolated."""
        conn = self._connection()
        self._pending = []
        try:
            with conn.begin():
                self._write(conn, items, report)
        except SQLAlchemyError as exc:
            for key in self._pending:
                self.authors.pop(key, None)
            if len(items) == 1:
                raw = items[0].raw
                reason = f"database rejected the record: {getattr(exc, 'orig', None) or exc}"
                self.quarantine([(raw.location, reason, snippet(raw.payload))], report)
                return
            log.warning("batch failed (%s); retrying row by row", exc)
            for item in items:
                self.write([item], report)
            return
        self._written += len(items)
        if not self.sqlite and self._written >= self._analyze_at:
            # A growing table with stale statistics makes PostgreSQL scan it whole for the
            # dedupe lookups; fresh statistics keep them on the indexes.
            self._analyze_at *= 4
            try:
                with conn.begin():
                    conn.exec_driver_sql("ANALYZE post")
            except SQLAlchemyError as exc:
                log.warning("could not analyze the post table: %s", exc)

    def quarantine(self, rows: list[tuple[str, str, str | None]], report: IngestReport) -> None:
        """Store records that could not become posts."""
        if not rows:
            return
        conn = self._connection()
        with conn.begin():
            conn.execute(
                insert(QUARANTINE),
                [
                    {
                        "source_id": self.source_id,
                        "connector": self.connector,
                        "origin": self.origin,
                        "location": loc[:200],
                        "reason": reason,
                        "raw": raw,
                        "created_at": utcnow(),
                    }
                    for loc, reason, raw in rows
                ],
            )
        report.quarantined += len(rows)
        for _, reason, _ in rows:
            key = reason.split(":")[0][:80]
            report.reasons[key] = report.reasons.get(key, 0) + 1

    def _author_ids(self, conn: Connection, posts: list[PostIn]) -> None:
        wanted = {
            (p.platform, p.author_handle): p.author_name
            for p in posts
            if p.author_handle and (p.platform, p.author_handle) not in self.authors
        }
        if not wanted:
            return
        self._lookup_authors(conn, list(wanted))
        missing = [k for k in wanted if k not in self.authors]
        if missing:
            ins = (sqlite_insert if self.sqlite else pg_insert)(AUTHOR)
            conn.execute(
                ins.on_conflict_do_nothing(index_elements=["platform", "handle"]),
                [
                    {"platform": p, "handle": h, "name": wanted[(p, h)], "extra": {}}
                    for p, h in missing
                ],
            )
            self._lookup_authors(conn, missing)
        if len(self.authors) > _AUTHOR_CACHE:
            # Bounded memory on huge imports: forget the cache, the table still has every author.
            self.authors = {k: self.authors[k] for k in wanted if k in self.authors}

    def _lookup_authors(self, conn: Connection, keys: list[tuple[str, str]]) -> None:
        by_platform: dict[str, list[str]] = {}
        for platform, handle in keys:
            by_platform.setdefault(platform, []).append(handle)
        for platform, handles in by_platform.items():
            for chunk in _chunks(handles, 500):
                rows = conn.execute(
                    select(AUTHOR.c.id, AUTHOR.c.handle).where(
                        AUTHOR.c.platform == platform, AUTHOR.c.handle.in_(chunk)
                    )
                )
                for aid, handle in rows:
                    self.authors[(platform, handle)] = aid
                    self._pending.append((platform, handle))

    def _write(self, conn: Connection, items: list[_Item], report: IngestReport) -> None:
        # Dedupe within the batch, then against the store, on (platform, external id).
        fresh: dict[tuple[str, str], _Item] = {}
        for item in items:
            key = (item.post.platform, item.post.external_id)
            if key in fresh:
                report.duplicates += 1
            else:
                fresh[key] = item
        by_platform: dict[str, list[str]] = {}
        for platform, ext in fresh:
            by_platform.setdefault(platform, []).append(ext)
        for platform, exts in by_platform.items():
            for chunk in _chunks(exts, 500):
                for (ext,) in conn.execute(
                    select(POST.c.external_id).where(
                        POST.c.platform == platform, POST.c.external_id.in_(chunk)
                    )
                ):
                    fresh.pop((platform, ext), None)
                    report.duplicates += 1
        if not fresh:
            return
        entries = list(fresh.values())
        self._author_ids(conn, [i.post for i in entries])

        # Near duplicates: same normalised text as a post already stored (or earlier in batch).
        known: dict[int, int] = {}
        wanted = sorted({i.hash for i in entries if i.hash})
        for chunk in _chunks(wanted, 500):
            for row in conn.execute(
                select(POST.c.content_hash, func.min(POST.c.id))
                .where(POST.c.content_hash.in_(chunk))
                .group_by(POST.c.content_hash)
            ):
                known[row[0]] = row[1]

        dup_of = [known.get(i.hash) if i.hash else None for i in entries]
        if self.sqlite:
            ids = self._insert_sqlite(conn, entries, dup_of)
        else:
            ids = self._insert_returning(conn, entries, dup_of)
        near = 0
        batch_first: dict[int, int] = {}
        dup_updates = []
        for item, dup, pid in zip(entries, dup_of, ids, strict=True):
            h = item.hash
            if not h:
                continue
            if dup is not None:
                near += 1
            elif h in batch_first:
                dup_updates.append({"b_id": pid, "b_dup": batch_first[h]})
                near += 1
            else:
                batch_first[h] = pid
        if dup_updates:
            conn.execute(
                update(POST)
                .where(POST.c.id == bindparam("b_id"))
                .values(dup_of_id=bindparam("b_dup")),
                dup_updates,
            )
        if self.sqlite:
            conn.exec_driver_sql(
                "INSERT INTO post_fts(rowid, title, body, author) VALUES (?, ?, ?, ?)",
                [
                    (pid, *i.cols[4:])
                    for i, pid in zip(entries, ids, strict=True)
                    if i.cols is not None
                ],
            )
        report.stored += len(ids)
        report.near_duplicates += near

    def _insert_returning(
        self, conn: Connection, entries: list[_Item], dup_of: list[int | None]
    ) -> list[int]:
        now = utcnow()
        authors = self.authors
        rows = [
            {
                "source_id": self.source_id,
                "platform": post.platform,
                "external_id": post.external_id,
                "connector": self.connector,
                "url": post.url,
                "author_id": authors.get((post.platform, post.author_handle or "")),
                "author_handle": post.author_handle,
                "author_name": post.author_name,
                "title": post.title,
                "text": post.text,
                "lang": post.lang,
                "published_at": post.published_at,
                "collected_at": now,
                "metrics": post.metrics,
                "reply_to": post.reply_to,
                "repost_of": post.repost_of,
                "content_hash": item.hash,
                "dup_of_id": dup,
                "extra": post.extra,
                "raw": item.raw.payload,
                "raw_kind": item.raw.kind,
            }
            for item, dup in zip(entries, dup_of, strict=True)
            for post in (item.post,)
        ]
        return list(
            conn.execute(
                insert(POST).returning(POST.c.id, sort_by_parameter_order=True), rows
            ).scalars()
        )

    def _insert_sqlite(
        self, conn: Connection, entries: list[_Item], dup_of: list[int | None]
    ) -> list[int]:
        """Insert through the driver's executemany (no per-row SQLAlchemy work); return ids."""
        now = _sqlite_time(utcnow())
        authors = self.authors
        source_id, connector = self.source_id, self.connector
        rows = []
        for item, dup in zip(entries, dup_of, strict=True):
            p, cols = item.post, item.cols
            assert cols is not None
            rows.append(
                (
                    source_id,
                    p.platform,
                    p.external_id,
                    connector,
                    p.url,
                    authors.get((p.platform, p.author_handle or "")),
                    p.author_handle,
                    p.author_name,
                    p.title,
                    p.text,
                    p.lang,
                    cols[3],
                    now,
                    cols[0],
                    p.reply_to,
                    p.repost_of,
                    item.hash,
                    dup,
                    cols[1],
                    cols[2],
                    item.raw.kind,
                )
            )
        conn.exec_driver_sql(_SQLITE_INSERT, rows)
        # Ids by key, not by arithmetic on rowids: correct whatever else writes to the table.
        found: dict[tuple[str, str], int] = {}
        by_platform: dict[str, list[str]] = {}
        for item in entries:
            by_platform.setdefault(item.post.platform, []).append(item.post.external_id)
        for platform, exts in by_platform.items():
            for chunk in _chunks(exts, 500):
                marks = ",".join("?" * len(chunk))
                for pid, ext in conn.exec_driver_sql(
                    "SELECT id, external_id FROM post "
                    f"WHERE platform = ? AND external_id IN ({marks})",
                    (platform, *chunk),
                ):
                    found[(platform, ext)] = pid
        return [found[(i.post.platform, i.post.external_id)] for i in entries]


_AUTHOR_CACHE = 200_000
#: PostgreSQL: rows written before the first ANALYZE of the post table (then x4 each time).
_ANALYZE_FIRST = 5_000
#: WAL pages (4 KiB) allowed to pile up between checkpoints during an import.
_BULK_WAL_PAGES = 25_000
#: Records between two progress callbacks (a callback per record costs more than the record).
_PROGRESS_EVERY = 97
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_POST_COLUMNS = (
    "source_id",
    "platform",
    "external_id",
    "connector",
    "url",
    "author_id",
    "author_handle",
    "author_name",
    "title",
    "text",
    "lang",
    "published_at",
    "collected_at",
    "metrics",
    "reply_to",
    "repost_of",
    "content_hash",
    "dup_of_id",
    "extra",
    "raw",
    "raw_kind",
)
_SQLITE_INSERT = (
    f"INSERT INTO post ({', '.join(_POST_COLUMNS)}) VALUES ({', '.join('?' * len(_POST_COLUMNS))})"
)


def _sqlite_time(value: datetime | None) -> str | None:
    # The text form SQLAlchemy's SQLite DateTime uses, so UTCDateTime reads it back unchanged.
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


def _chunks(seq: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


class _Pipeline:
    """Runs the writer in a second thread once an import spans several batches.

    Mapping (Python) and storing (mostly inside the database driver, which releases the GIL)
    then overlap. Batches are written in order by one thread, so dedupe against earlier
    batches works as before; at most two batches wait in the queue, so memory stays bounded.
    """

    def __init__(self, writer: _Writer, report: IngestReport) -> None:
        self.writer = writer
        self.report = report
        self.queue: queue.Queue[tuple[str, list[Any]] | None] = queue.Queue(maxsize=2)
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def _run(self) -> None:
        while True:
            job = self.queue.get()
            if job is None:
                return
            if self.error is not None:
                continue  # drain after a failure; the main thread raises it
            try:
                self._do(job)
            except BaseException as exc:  # handed over: the main thread raises it
                self.error = exc

    def _do(self, job: tuple[str, list[Any]]) -> None:
        kind, items = job
        if kind == "posts":
            self.writer.write(items, self.report)
        else:
            self.writer.quarantine(items, self.report)

    def submit(self, kind: str, items: list[Any], *, last: bool = False) -> None:
        """Write now (small imports) or hand the batch to the writer thread."""
        if self.error is not None:
            raise self.error
        if self.thread is None:
            if last or kind != "posts":
                self._do((kind, items))
                return
            self.thread = threading.Thread(
                target=self._run, name="elshi-ingest-writer", daemon=True
            )
            self.thread.start()
        self.queue.put((kind, items))

    def finish(self) -> None:
        """Wait for queued batches, release the connection, and raise a writer error if any."""
        try:
            if self.thread is not None:
                self.queue.put(None)
                self.thread.join()
        finally:
            self.writer.close()
        if self.error is not None:
            raise self.error


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
) -> IngestReport:
    """Map and store records; bad ones go to quarantine and the rest goes on."""
    report = IngestReport(connector=connector.slug, origin=origin)
    writer = _Writer(db, source_id=source_id, connector=connector.slug, origin=origin)
    pipe = _Pipeline(writer, report)
    batch: list[tuple[PostIn, RawRecord]] = []
    bad: list[tuple[str, str, str | None]] = []
    to_post = connector.to_post
    ticks = 0
    try:
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
                        _check(post, max_chars)
                        batch.append((post, rec))
                except (
                    MappingError,
                    _Rejected,
                    ValueError,
                    KeyError,
                    TypeError,
                    AttributeError,
                ) as exc:
                    reason = exc.reason if isinstance(exc, _Rejected) else _describe(exc)
                    bad.append((rec.location, reason, snippet(rec.payload)))
            if len(batch) >= batch_size:
                pipe.submit("posts", writer.prepare(batch))
                batch = []
            if len(bad) >= 200:
                pipe.submit("bad", bad)
                bad = []
            if progress is not None:
                ticks += 1
                if ticks >= _PROGRESS_EVERY:
                    progress(ticks)
                    ticks = 0
        if batch:
            pipe.submit("posts", writer.prepare(batch), last=True)
        if bad:
            pipe.submit("bad", bad, last=True)
    except BaseException:
        try:
            pipe.finish()
        except BaseException as exc:  # the first error is the one to report
            log.warning("writer failed too: %s", exc)
        raise
    pipe.finish()
    if progress is not None and ticks:
        progress(ticks)
    return report


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing required field: {exc.args[0]}"
    return str(exc) or exc.__class__.__name__


def _start_run(db: Database, *, connector: str, origin: str, source_id: int | None) -> int:
    with db.session() as s:
        run = IngestRun(connector=connector, origin=origin, source_id=source_id)
        s.add(run)
        s.flush()
        return run.id


def _finish_run(db: Database, run_id: int, report: IngestReport, status: str) -> None:
    with db.session() as s:
        run = s.get(IngestRun, run_id)
        assert run is not None
        run.finished_at = utcnow()
        run.read = report.read
        run.stored = report.stored
        run.duplicates = report.duplicates
        run.near_duplicates = report.near_duplicates
        run.quarantined = report.quarantined
        run.status = status
        run.error = report.error


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
    """Fetch from a connector with a config and store the result; record the run."""
    cfg = connector.parse_config(config)
    target = config.get(connector.target_field)
    origin = str(target if target is not None else connector.slug)
    cursor = {} if cursor is None else cursor
    run_id = _start_run(db, connector=connector.slug, origin=origin, source_id=source_id)
    bulk = _bulk_eligible(db, connector, target)
    if bulk:
        _drop_bulk_indexes(db)
    try:
        report = ingest_records(
            db,
            connector,
            connector.fetch(cfg, cursor, ctx),
            origin=origin,
            source_id=source_id,
            batch_size=ctx.settings.ingest_batch_size,
            max_chars=ctx.settings.max_field_chars,
            progress=progress,
        )
    except Exception as exc:
        report = IngestReport(connector=connector.slug, origin=origin, error=_describe(exc))
        report.run_id = run_id
        _finish_run(db, run_id, report, "failed")
        raise
    finally:
        if bulk:
            ensure_indexes(db)
    report.run_id = run_id
    _finish_run(db, run_id, report, "ok")
    return report


#: A file import at least this large runs as a bulk load on SQLite (see _bulk_eligible).
BULK_MIN_BYTES = 64 * 1024 * 1024
#: Indexes that serve search filters only; ingest itself needs the unique key and the hash.
_BULK_INDEXES = (
    "ix_post_published",
    "ix_post_source_published",
    "ix_post_author_published",
    "ix_post_lang_published",
)


def _bulk_eligible(db: Database, connector: Connector, target: Any) -> bool:
    """Return True for a large one-off file import into SQLite.

    Inserting rows into four search indexes with random keys costs more than building those
    indexes once, sorted, at the end, so a big import drops them and rebuilds them after.
    """
    if db.engine.dialect.name != "sqlite" or connector.pollable or target is None:
        return False
    try:
        path = Path(str(target))
        size = (
            sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            if path.is_dir()
            else path.stat().st_size
        )
    except OSError:
        return False
    return size >= BULK_MIN_BYTES


def _drop_bulk_indexes(db: Database) -> None:
    with db.engine.begin() as conn:
        for name in _BULK_INDEXES:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")


def ensure_indexes(db: Database) -> None:
    """Create any index of the post table that is missing (after a bulk load or a crash)."""
    with db.engine.begin() as conn:
        for index in POST.indexes:
            index.create(conn, checkfirst=True)


class SourceNotFound(LookupError):
    """No source has this id."""


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
