"""Ingest: read a connector's records, map, validate, dedupe, quarantine and store in batches."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
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

POST = Post.__table__
AUTHOR = Author.__table__
QUARANTINE = Quarantine.__table__


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


class _Writer:
    """Writes batches of mapped posts; one transaction per batch."""

    def __init__(self, db: Database, *, source_id: int | None, connector: str, origin: str):
        self.db = db
        self.source_id = source_id
        self.connector = connector
        self.origin = origin
        self.sqlite = db.engine.dialect.name == "sqlite"
        self.authors: dict[tuple[str, str], int] = {}

    def write(self, items: list[tuple[PostIn, RawRecord]], report: IngestReport) -> None:
        """Store one batch; on a database error, retry row by row so one bad row is isolated."""
        try:
            with self.db.engine.begin() as conn:
                self._write(conn, items, report)
        except SQLAlchemyError as exc:
            if len(items) == 1:
                post, raw = items[0]
                self.quarantine([(raw.location, f"database rejected the record: {exc.orig or exc}",
                                  snippet(raw.payload))], report)
                return
            log.warning("batch failed (%s); retrying row by row", exc)
            for item in items:
                self.write([item], report)

    def quarantine(self, rows: list[tuple[str, str, str | None]], report: IngestReport) -> None:
        """Store records that could not become posts."""
        if not rows:
            return
        with self.db.engine.begin() as conn:
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
        by_platform: dict[str, list[str]] = {}
        for platform, handle in wanted:
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
        missing = [k for k in wanted if k not in self.authors]
        if missing:
            ins = (sqlite_insert if self.sqlite else pg_insert)(AUTHOR)
            conn.execute(
                ins.on_conflict_do_nothing(index_elements=["platform", "handle"]),
                [{"platform": p, "handle": h, "name": wanted[(p, h)], "extra": {}} for p, h in missing],
            )
            for platform, handle in missing:
                aid = conn.execute(
                    select(AUTHOR.c.id).where(
                        AUTHOR.c.platform == platform, AUTHOR.c.handle == handle
                    )
                ).scalar_one()
                self.authors[(platform, handle)] = aid

    def _write(
        self, conn: Connection, items: list[tuple[PostIn, RawRecord]], report: IngestReport
    ) -> None:
        # Dedupe within the batch, then against the store, on (platform, external id).
        fresh: dict[tuple[str, str], tuple[PostIn, RawRecord]] = {}
        for post, raw in items:
            key = (post.platform, post.external_id)
            if key in fresh:
                report.duplicates += 1
            else:
                fresh[key] = (post, raw)
        by_platform: dict[str, list[str]] = {}
        for platform, ext in fresh:
            by_platform.setdefault(platform, []).append(ext)
        for platform, ids in by_platform.items():
            for chunk in _chunks(ids, 500):
                for (ext,) in conn.execute(
                    select(POST.c.external_id).where(
                        POST.c.platform == platform, POST.c.external_id.in_(chunk)
                    )
                ):
                    fresh.pop((platform, ext), None)
                    report.duplicates += 1
        if not fresh:
            return
        posts = [p for p, _ in fresh.values()]
        self._author_ids(conn, posts)

        # Near duplicates: same normalised text as a post already stored (or earlier in batch).
        hashes = [content_hash(p.text, p.title) for p in posts]
        known: dict[str, int] = {}
        wanted = sorted({h for h in hashes if h})
        for chunk in _chunks(wanted, 500):
            for h, first in conn.execute(
                select(POST.c.content_hash, func.min(POST.c.id))
                .where(POST.c.content_hash.in_(chunk))
                .group_by(POST.c.content_hash)
            ):
                known[h] = first

        now = utcnow()
        rows = []
        for (post, raw), h in zip(fresh.values(), hashes, strict=True):
            rows.append(
                {
                    "source_id": self.source_id,
                    "platform": post.platform,
                    "external_id": post.external_id,
                    "connector": self.connector,
                    "url": post.url,
                    "author_id": self.authors.get((post.platform, post.author_handle or "")),
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
                    "content_hash": h,
                    "dup_of_id": known.get(h) if h else None,
                    "extra": post.extra,
                    "raw": raw.payload,
                    "raw_kind": raw.kind,
                }
            )
        ids = list(
            conn.execute(
                insert(POST).returning(POST.c.id, sort_by_parameter_order=True), rows
            ).scalars()
        )
        near = 0
        batch_first: dict[str, int] = {}
        dup_updates = []
        for row, pid in zip(rows, ids, strict=True):
            h = row["content_hash"]
            if not h:
                continue
            if row["dup_of_id"] is not None:
                near += 1
            elif h in batch_first:
                dup_updates.append({"b_id": pid, "b_dup": batch_first[h]})
                near += 1
            else:
                batch_first[h] = pid
        if dup_updates:
            from sqlalchemy import bindparam

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
                    (pid, index_text(r["title"]), index_text(r["text"]),
                     " ".join(filter(None, (r["author_handle"], r["author_name"]))))
                    for r, pid in zip(rows, ids, strict=True)
                ],
            )
        report.stored += len(ids)
        report.near_duplicates += near


def _chunks(seq: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


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
    batch: list[tuple[PostIn, RawRecord]] = []
    bad: list[tuple[str, str, str | None]] = []
    for rec in records:
        report.read += 1
        if isinstance(rec, BadRecord):
            where = f"{rec.origin}: {rec.location}" if rec.origin and rec.origin != origin else rec.location
            bad.append((where, rec.reason, rec.raw))
        else:
            try:
                post = connector.to_post(rec)
                if post is None:
                    report.skipped += 1
                else:
                    _check(post, max_chars)
                    batch.append((post, rec))
            except (MappingError, _Rejected, ValueError, KeyError, TypeError, AttributeError) as exc:
                reason = exc.reason if isinstance(exc, _Rejected) else _describe(exc)
                bad.append((rec.location, reason, snippet(rec.payload)))
        if len(batch) >= batch_size:
            writer.write(batch, report)
            batch = []
        if len(bad) >= 200:
            writer.quarantine(bad, report)
            bad = []
        if progress is not None:
            progress(1)
    if batch:
        writer.write(batch, report)
    writer.quarantine(bad, report)
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
    report.run_id = run_id
    _finish_run(db, run_id, report, "ok")
    return report


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
            db, connector=connector, config=config, cursor=cursor, source_id=source_id,
            ctx=ctx, progress=progress,
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
