"""Ingest's writer: prepared batches of posts stored with dedupe, authors and quarantine.

flows.py maps records into batches; this module writes them, one transaction per batch on one
connection (row by row when a batch fails), in a second thread once an import spans several
batches. IngestReport holds the counts of one import.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import (
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)

from elshi.connectors.base import PostIn, RawRecord, snippet, storable
from elshi.db import (
    BULK_YIELD_SECONDS,
    BUSY_TIMEOUT_MS,
    SPACE_HEADROOM,
    WAL_SIZE_LIMIT,
    Database,
    disk_full,
    stored_bytes,
    utcnow,
)
from elshi.listen.models import Author, IngestRun, Post, Quarantine
from elshi.listen.text import content_hash, index_text

log = logging.getLogger(__name__)

POST = cast(Table, Post.__table__)
AUTHOR = cast(Table, Author.__table__)
QUARANTINE = cast(Table, Quarantine.__table__)
RUN = cast(Table, IngestRun.__table__)


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


#: A mapped post ready to store, as a plain tuple: cheap to build, and cheap to pickle when a
#: child process maps a big file. Indexes of its fields:
(
    _PLATFORM,
    _EXT,
    _URL,
    _HANDLE,
    _NAME,
    _TITLE,
    _TEXT,
    _LANG,
    _PUBLISHED,  # SQLite: text as stored; PostgreSQL: datetime
    _METRICS,  # SQLite: JSON text; PostgreSQL: dict
    _REPLY,
    _REPOST,
    _HASH,
    _EXTRA,  # SQLite: JSON text; PostgreSQL: dict
    _RAW,  # SQLite: JSON text; PostgreSQL: the payload
    _KIND,
    _LOCATION,
    _FTS_TITLE,  # SQLite only: what the full-text index gets
    _FTS_BODY,
    _FTS_AUTHOR,
) = range(20)
_Item = tuple[Any, ...]


def _prepare(
    pairs: list[tuple[PostIn, RawRecord]],
    sqlite: bool,
    bad: list[tuple[str, str, str | None]] | None = None,
) -> list[_Item]:
    """Hash and serialise a batch; pure CPU work, done while the previous batch is stored.

    A record that cannot be serialised (nested too deeply, say) is added to `bad` as a
    quarantine row, or raises when no list is given.
    """
    items: list[_Item] = []
    for p, r in pairs:
        try:
            items.append(_prepare_one(p, r, sqlite))
        except (RecursionError, ValueError, TypeError, OverflowError) as exc:
            if bad is None:
                raise
            reason = str(exc) if isinstance(exc, _Unstorable) else row_problem(None, exc)
            bad.append((r.location, reason, snippet(r.payload)))
    return items


def _prepare_one(p: PostIn, r: RawRecord, sqlite: bool) -> _Item:
    """Serialise one mapped post into a row to insert (see the _Item indexes)."""
    dumps = _JSON.encode
    if sqlite:
        stored: tuple[Any, ...] = (
            _sqlite_time(p.published_at),
            dumps(p.metrics) if p.metrics else "{}",
            dumps(p.extra) if p.extra else "{}",
            dumps(r.payload),
            index_text(p.title),
            index_text(p.text),
            " ".join(filter(None, (p.author_handle, p.author_name))),
        )
        for name, dumped, value in zip(
            ("metrics", "extra", "raw record"),
            stored[1:4],
            (p.metrics, p.extra, r.payload),
            strict=True,
        ):
            # JSON writes NUL as an escape SQLite would keep; PostgreSQL refuses it, so it is
            # refused here too: a file imports the same on either database.
            if "\\u0000" in dumped and (problem := unstorable_in(value)):
                raise _Unstorable(f"{name} contains {problem}, which cannot be stored")
    else:
        stored = (p.published_at, p.metrics, p.extra, r.payload, None, None, None)
    published, metrics, extra, raw, fts_title, fts_body, fts_author = stored
    return (
        p.platform,
        p.external_id,
        p.url,
        p.author_handle,
        p.author_name,
        p.title,
        p.text,
        p.lang,
        published,
        metrics,
        p.reply_to,
        p.repost_of,
        content_hash(p.text, p.title),
        extra,
        raw,
        r.kind,
        r.location,
        fts_title,
        fts_body,
        fts_author,
    )


class _Writer:
    """Writes batches of mapped posts; one transaction per batch, on one connection."""

    def __init__(
        self,
        db: Database,
        *,
        source_id: int | None,
        connector: str,
        origin: str,
        defer_near_dups: bool = False,
        run_id: int | None = None,
        input_bytes: int | None = None,
    ):
        self.db = db
        #: The size of the file imported, to tell how much more space a full disk lacks.
        self.input_bytes = input_bytes
        self._raw_seen = 0
        self._size_at_start: int | None = None
        #: Bulk loads store posts as pending and decide near duplicates in one pass at the end
        #: (mark_near_duplicates), which also covers the pending posts of a killed import.
        self.defer_near_dups = defer_near_dups
        #: The run this import records: its heartbeat is kept in the batches' transactions.
        self.run_id = run_id
        self._beat = time.monotonic()
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

    def _connection(self) -> Connection:
        if self._conn is None:
            self._size_at_start = stored_bytes(self.db)
            self._conn = self.db.engine.connect()
        return self._conn

    def space_needed(self) -> int:
        """About how many more bytes this import needs: what the rest of the input grows
        the database by at the rate seen so far, and some room to spare."""
        grown = stored_bytes(self.db) - (self._size_at_start or 0)
        if not self.input_bytes or self._raw_seen <= 0 or grown <= 0:
            return SPACE_HEADROOM
        left = max(0, self.input_bytes - self._raw_seen)
        return int(left * grown / self._raw_seen) + SPACE_HEADROOM

    def close(self) -> None:
        """Fold the WAL into the database and give its space back; release the connection."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self.sqlite:
                conn.rollback()
                _truncate_wal(conn)
        except SQLAlchemyError as exc:
            log.warning("could not checkpoint after import: %s", exc)
        finally:
            conn.close()

    def _begin(self, conn: Connection) -> Any:
        """Open a batch's transaction; on SQLite take the write lock now (BEGIN IMMEDIATE)."""
        tx = conn.begin()
        if self.sqlite:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        return tx

    def _after_commit(self, conn: Connection) -> None:
        """Between two batches: keep the WAL small, and give other writers their turn."""
        if not self.sqlite:
            return
        if _wal_bytes(self.db) > _WAL_TRUNCATE_AT:
            _truncate_wal(conn)
        # A person's write (a check-in) waits for this lock; it gets it in this pause.
        time.sleep(BULK_YIELD_SECONDS)

    def write(self, items: list[_Item], report: IngestReport) -> None:
        """Store one batch; on a database error, retry it in halves so one bad row is isolated.

        A batch larger than _MAX_TRANSACTION rows is stored in several transactions, so the
        write lock is never held long. A row the database still refuses on its own is
        quarantined with the reason; a full disk stops the import (DiskFull), and so does an
        error that is not a row's fault (the connection is lost, the database is locked).
        """
        if len(items) > _MAX_TRANSACTION:
            for part in _chunks(items, _MAX_TRANSACTION):
                self.write(part, report)
            return
        conn = self._connection()
        self._pending = []
        done = IngestReport(connector=report.connector, origin=report.origin)
        try:
            with self._begin(conn):
                self._write(conn, items, done)
                self._heartbeat(conn)
        except _ROW_ERRORS as exc:
            for key in self._pending:
                self.authors.pop(key, None)
            if isinstance(exc, SQLAlchemyError):
                full = disk_full(exc, self.db, needed=self.space_needed())
                if full is not None:
                    raise full from exc  # no row of this batch is at fault: stop, and say so
            if isinstance(exc, _NOT_A_ROW):
                raise
            if len(items) == 1:
                item = items[0]
                self.quarantine(
                    [(item[_LOCATION], row_problem(item, exc), snippet(item[_RAW]))], report
                )
                return
            log.warning("batch of %d failed (%s); retrying in halves", len(items), exc)
            half = len(items) // 2
            self.write(items[:half], report)
            self.write(items[half:], report)
            return
        report.stored += done.stored
        report.duplicates += done.duplicates
        report.near_duplicates += done.near_duplicates
        self._after_commit(conn)
        self._written += len(items)
        if self.sqlite:
            self._raw_seen += sum(len(i[_RAW]) for i in items)
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
        with self._begin(conn):
            conn.execute(
                insert(QUARANTINE),
                [
                    {
                        "source_id": self.source_id,
                        "connector": self.connector,
                        "origin": storable(self.origin),
                        "location": storable(loc)[:200],
                        "reason": storable(reason),
                        "raw": None if raw is None else storable(raw),
                        "created_at": utcnow(),
                    }
                    for loc, reason, raw in rows
                ],
            )
        report.quarantined += len(rows)
        for _, reason, _ in rows:
            key = reason.split(":")[0][:80]
            report.reasons[key] = report.reasons.get(key, 0) + 1

    def _heartbeat(self, conn: Connection) -> None:
        if self.run_id is None or time.monotonic() - self._beat < _HEARTBEAT_SECONDS:
            return
        self._beat = time.monotonic()
        conn.execute(update(RUN).where(RUN.c.id == self.run_id).values(heartbeat_at=utcnow()))

    def _author_ids(self, conn: Connection, items: list[_Item]) -> None:
        wanted = {
            (i[_PLATFORM], i[_HANDLE]): i[_NAME]
            for i in items
            if i[_HANDLE] and (i[_PLATFORM], i[_HANDLE]) not in self.authors
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
            key = (item[_PLATFORM], item[_EXT])
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
        self._author_ids(conn, entries)

        if self.defer_near_dups:
            ids = self._insert(conn, entries, [None] * len(entries))
            self._index(conn, entries, ids)
            report.stored += len(ids)
            return
        # Near duplicates: same normalised text as a post already stored (or earlier in batch).
        known: dict[int, int] = {}
        wanted = sorted({i[_HASH] for i in entries if i[_HASH]})
        for chunk in _chunks(wanted, 500):
            for row in conn.execute(
                select(POST.c.content_hash, func.min(POST.c.id))
                .where(POST.c.content_hash.in_(chunk))
                .group_by(POST.c.content_hash)
            ):
                known[row[0]] = row[1]

        dup_of = [known.get(i[_HASH]) if i[_HASH] else None for i in entries]
        ids = self._insert(conn, entries, dup_of)
        near = 0
        batch_first: dict[int, int] = {}
        dup_updates = []
        for item, dup, pid in zip(entries, dup_of, ids, strict=True):
            h = item[_HASH]
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
        self._index(conn, entries, ids)
        report.stored += len(ids)
        report.near_duplicates += near

    def _insert(
        self, conn: Connection, entries: list[_Item], dup_of: list[int | None]
    ) -> list[int]:
        if self.sqlite:
            return self._insert_sqlite(conn, entries, dup_of)
        return self._insert_returning(conn, entries, dup_of)

    def _index(self, conn: Connection, entries: list[_Item], ids: list[int]) -> None:
        """SQLite: add the rows to the full-text index (PostgreSQL's trigger does it there)."""
        if self.sqlite:
            conn.exec_driver_sql(
                "INSERT INTO post_fts(rowid, title, body, author) VALUES (?, ?, ?, ?)",
                [
                    (pid, i[_FTS_TITLE], i[_FTS_BODY], i[_FTS_AUTHOR])
                    for i, pid in zip(entries, ids, strict=True)
                ],
            )

    def _insert_returning(
        self, conn: Connection, entries: list[_Item], dup_of: list[int | None]
    ) -> list[int]:
        now = utcnow()
        authors = self.authors
        rows = [
            {
                "source_id": self.source_id,
                "platform": i[_PLATFORM],
                "external_id": i[_EXT],
                "connector": self.connector,
                "url": i[_URL],
                "author_id": authors.get((i[_PLATFORM], i[_HANDLE] or "")),
                "author_handle": i[_HANDLE],
                "author_name": i[_NAME],
                "title": i[_TITLE],
                "text": i[_TEXT],
                "lang": i[_LANG],
                "published_at": i[_PUBLISHED],
                "collected_at": now,
                "metrics": i[_METRICS],
                "reply_to": i[_REPLY],
                "repost_of": i[_REPOST],
                "content_hash": i[_HASH],
                "dup_of_id": dup,
                "extra": i[_EXTRA],
                "raw": i[_RAW],
                "raw_kind": i[_KIND],
                "near_dup_pending": self.defer_near_dups,
            }
            for i, dup in zip(entries, dup_of, strict=True)
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
        pending = 1 if self.defer_near_dups else 0
        rows = [
            (
                source_id,
                i[_PLATFORM],
                i[_EXT],
                connector,
                i[_URL],
                authors.get((i[_PLATFORM], i[_HANDLE] or "")),
                i[_HANDLE],
                i[_NAME],
                i[_TITLE],
                i[_TEXT],
                i[_LANG],
                i[_PUBLISHED],
                now,
                i[_METRICS],
                i[_REPLY],
                i[_REPOST],
                i[_HASH],
                dup,
                i[_EXTRA],
                i[_RAW],
                i[_KIND],
                pending,
            )
            for i, dup in zip(entries, dup_of, strict=True)
        ]
        conn.exec_driver_sql(_SQLITE_INSERT, rows)
        # This transaction holds the write lock, so the rows got consecutive rowids ending at
        # the largest; checked on the first and last rows, else looked up by key.
        last = conn.exec_driver_sql("SELECT max(id) FROM post").scalar_one()
        first = last - len(rows) + 1
        ends: dict[int, str] = dict(
            conn.exec_driver_sql(
                "SELECT id, external_id FROM post WHERE id IN (?, ?)", (first, last)
            ).all()
        )
        if ends.get(first) == entries[0][_EXT] and ends.get(last) == entries[-1][_EXT]:
            return list(range(first, last + 1))
        found: dict[tuple[str, str], int] = {}
        by_platform: dict[str, list[str]] = {}
        for item in entries:
            by_platform.setdefault(item[_PLATFORM], []).append(item[_EXT])
        for platform, exts in by_platform.items():
            for chunk in _chunks(exts, 500):
                marks = ",".join("?" * len(chunk))
                for pid, ext in conn.exec_driver_sql(
                    "SELECT id, external_id FROM post "
                    f"WHERE platform = ? AND external_id IN ({marks})",
                    (platform, *chunk),
                ):
                    found[(platform, ext)] = pid
        return [found[(i[_PLATFORM], i[_EXT])] for i in entries]


#: Errors a batch may fail with because of one of its rows: the batch is then split.
_ROW_ERRORS = (SQLAlchemyError, UnicodeError, ValueError, OverflowError, RecursionError)
#: Errors that are no row's fault: the import stops with them rather than quarantining rows.
_NOT_A_ROW = (OperationalError, InterfaceError, DisconnectionError)
#: Text fields of a row, by name, checked for what no database can store.
_TEXT_FIELDS = (
    ("external id", _EXT),
    ("text", _TEXT),
    ("title", _TITLE),
    ("url", _URL),
    ("author_handle", _HANDLE),
    ("author_name", _NAME),
    ("lang", _LANG),
    ("reply_to", _REPLY),
    ("repost_of", _REPOST),
)


def unstorable(value: str) -> str | None:
    """Say what in a text no database can store (a lone surrogate, NUL), or return None."""
    at = value.find("\x00")
    if at >= 0:
        return f"a NUL character (U+0000) at character {at + 1}"
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone surrogate (U+{ord(value[exc.start]):04X}) at character {exc.start + 1}"
    return None


def unstorable_in(value: Any, limit: int = 100_000) -> str | None:
    """Find what no database can store in a JSON value (keys too); say what and where.

    Walks without recursion, so a value nested however deep is looked at safely.
    """
    stack: list[tuple[Any, str]] = [(value, "")]
    seen = 0
    while stack and seen < limit:
        node, where = stack.pop()
        seen += 1
        if isinstance(node, str):
            if problem := unstorable(node):
                return f"{problem} in {where or 'the value'}"
        elif isinstance(node, dict):
            for key, child in node.items():
                name = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and (problem := unstorable(key)):
                    return f"{problem} in the name of {name}"
                stack.append((child, name))
        elif isinstance(node, list | tuple):
            stack.extend((child, f"{where}[{n}]") for n, child in enumerate(node))
    return None


class _Unstorable(ValueError):
    """A record holds what no database can store; the message says what and where."""


def row_problem(item: _Item | None, exc: BaseException) -> str:
    """Return why a row could not be stored, naming the field when it is one of its texts."""
    if isinstance(exc, RecursionError):
        return "record nested too deeply to store"
    if item is not None:
        for name, index in _TEXT_FIELDS:
            value = item[index]
            if isinstance(value, str) and (problem := unstorable(value)):
                return f"{name} contains {problem}, which cannot be stored"
        for name, index in (("raw record", _RAW), ("metrics", _METRICS), ("extra", _EXTRA)):
            value = item[index]
            problem = unstorable(value) if isinstance(value, str) else unstorable_in(value)
            if problem:
                return f"{name} contains {problem}, which cannot be stored"
    detail = getattr(exc, "orig", None) or exc
    if item is None:
        return f"record cannot be serialised: {str(detail).strip() or type(exc).__name__}"
    return f"database rejected the record: {str(detail).strip() or type(exc).__name__}"


_AUTHOR_CACHE = 200_000
#: PostgreSQL: rows written before the first ANALYZE of the post table (then x4 each time).
_ANALYZE_FIRST = 5_000
#: Rows stored in one transaction at most: a user-facing write waits for one such
#: transaction at worst.
_MAX_TRANSACTION = 500
#: A WAL file larger than this is checkpointed and truncated between two batches.
_WAL_TRUNCATE_AT = WAL_SIZE_LIMIT
#: Seconds between two heartbeats of a run (see elshi.listen.runs).
_HEARTBEAT_SECONDS = 30.0
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
    "near_dup_pending",
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


def _wal_bytes(db: Database) -> int:
    path = db.path
    try:
        return os.stat(f"{path}-wal").st_size if path is not None else 0
    except OSError:
        return 0


def _truncate_wal(conn: Connection) -> None:
    """Checkpoint the whole WAL and truncate it, unless readers hold it (then next time)."""
    raw: Any = conn.connection.dbapi_connection
    raw.execute("PRAGMA busy_timeout=50")  # never wait long for readers to move on
    try:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


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
