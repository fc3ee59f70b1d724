"""Engine, sessions and the declarative base; SQLite pragmas for the embedded default."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, String, Text, create_engine, event, inspect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from elshi.crypto import SEALED_PREFIX, Keyring, SealedUnreadable
from elshi.settings import Settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


def sealer(settings: Settings) -> Keyring:
    """The keys that seal values at rest and make blind indexes (purpose keys)."""
    return Keyring.of(settings)


def keyring_of(bind: Session | Connection | Engine | Dialect) -> Keyring:
    """The keyring of a session's, connection's or engine's database."""
    dialect: Any = bind
    if isinstance(bind, Session):
        dialect = bind.get_bind().dialect
    elif isinstance(bind, Connection | Engine):
        dialect = bind.dialect
    keyring: Keyring | None = getattr(dialect, "elshi_keyring", None)
    if keyring is None:
        raise SealedUnreadable("no sealing key on this database connection")
    return keyring


class _Sealed(TypeDecorator[Any]):
    """A value encrypted at rest with the engine's sealing key ("sealed:" and a Fernet token).

    Values written before sealing existed (no prefix) are still read, and sealed when next
    written. The empty string is stored as it is (so "has a phone" stays a plain condition).
    A value that cannot be opened raises: a changed secret key must not quietly lose data.
    """

    impl: Any = Text
    cache_ok = True
    unreadable = ""

    def _to_text(self, value: Any) -> str:
        return str(value)

    def _from_text(self, value: str) -> Any:
        return value

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        text = self._to_text(value)
        if text == "":
            return ""
        return keyring_of(dialect).seal(text)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None or not isinstance(value, str):
            return value
        if not value.startswith(SEALED_PREFIX):
            return self._from_text(value)
        try:
            return self._from_text(keyring_of(dialect).open(value))
        except SealedUnreadable as exc:
            raise SealedUnreadable(f"{exc}{self.unreadable}") from None


class SealedString(_Sealed):
    """A short secret (a TOTP key) sealed at rest."""

    impl = String(255)
    cache_ok = True
    unreadable = "; turn the user's two-step sign-in off and on again"


class SealedText(_Sealed):
    """Personal data of any length (a phone number, an address, a message) sealed at rest."""

    impl = Text
    cache_ok = True


class SealedJSON(_Sealed):
    """A JSON value (form answers, companions) sealed at rest as one text."""

    impl = Text
    cache_ok = True

    def _to_text(self, value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def _from_text(self, value: str) -> Any:
        return json.loads(value) if value else None


def blind_indexed(
    model: Any,
    source: str,
    index: str,
    kind: str,
    value: Callable[[Any], str | None] | None = None,
) -> None:
    """Keep `model.<index>` the blind index of `model.<source>` (or of value(source)) on every
    insert and on every update that changes the source."""

    def fill(_mapper: Any, connection: Connection, target: Any, *, insert: bool) -> None:
        if not insert and not inspect(target).attrs[source].history.has_changes():
            return
        raw = getattr(target, source)
        setattr(target, index, keyring_of(connection).index(kind, value(raw) if value else raw))

    event.listen(model, "before_insert", lambda m, c, t: fill(m, c, t, insert=True))
    event.listen(model, "before_update", lambda m, c, t: fill(m, c, t, insert=False))


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations name constraints."""

    metadata = MetaData(naming_convention=NAMING)


class Timestamps:
    """When a row was made and last changed (the code that changes it sets `updated_at`)."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


#: How long a writer waits for SQLite's write lock before "database is locked" (ms).
BUSY_TIMEOUT_MS = 30_000
#: WAL pages (4 KiB) after which a commit folds the WAL back into the database: SQLite's own
#: default, for bulk imports too, so the WAL stays a few MB and never eats the free space.
WAL_AUTOCHECKPOINT_PAGES = 1000
#: Bytes of WAL kept on disk after a checkpoint (the rest of the file is given back).
WAL_SIZE_LIMIT = 16 * 1024 * 1024
#: A user-facing writer (a check-in) asks for the write lock this often (ms) while bulk
#: work holds it, so it gets the lock in the pause a bulk writer leaves between batches.
URGENT_POLL_MS = 2
#: The pause a bulk writer (an import, the near-duplicate pass) leaves after each commit.
BULK_YIELD_SECONDS = 0.01


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


def _begin_immediate(conn: Connection, *, urgent: bool) -> None:
    """Open a write transaction on a SQLite connection now, not at its first write."""
    raw: Any = conn.connection.dbapi_connection
    if raw.in_transaction:
        return
    if not urgent:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        return
    # SQLite's busy handler backs off to 100 ms between tries, and a bulk writer that commits
    # and starts its next batch at once would win nearly every time; a short timeout retried
    # here asks every few milliseconds instead.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    raw.execute(f"PRAGMA busy_timeout={URGENT_POLL_MS}")
    try:
        while True:
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except Exception as exc:
                code = getattr(getattr(exc, "orig", exc), "sqlite_errorcode", None)
                if code != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
                conn.rollback()
    finally:
        raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def make_engine(settings: Settings) -> Engine:
    """Create the engine for the configured database."""
    url = settings.db_url
    # A request takes a connection in one worker thread and may need another thread to go on;
    # with fewer connections than threads, busy requests would wait on each other.
    pool = {
        "pool_size": min(10, settings.database_pool_size),
        "max_overflow": max(0, settings.database_pool_size - 10),
    }
    if settings.is_sqlite:
        if url.startswith("sqlite:///") and ":memory:" not in url:
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
            hide_parameters=True,  # SQL logs and errors never show personal data
            **pool,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, hide_parameters=True, **pool)
    from elshi.crypto import secrets_of
    from elshi.keys import credential_keys

    engine.dialect.elshi_keyring = sealer(settings)  # type: ignore[attr-defined]
    # For the migration that moved channel credentials to their purpose key.
    engine.dialect.elshi_credentials = credential_keys(  # type: ignore[attr-defined]
        secrets_of(settings), fixed=bool(settings.credentials_key), legacy=True
    )
    return engine


class Database:
    """The engine and session factory for one settings object."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings)
        # Sessions know their database: what they write to the outbox is sent after commit.
        self.sessionmaker = sessionmaker(
            self.engine, expire_on_commit=False, info={"database": self}
        )

    @property
    def sqlite(self) -> bool:
        """True when the database is SQLite."""
        return self.engine.dialect.name == "sqlite"

    @property
    def path(self) -> Path | None:
        """The SQLite database file (None for PostgreSQL or an in-memory database)."""
        name = self.engine.url.database
        if not self.sqlite or not name or name == ":memory:":
            return None
        return Path(name)

    @contextmanager
    def session(self, *, write: bool = False, urgent: bool = False) -> Iterator[Session]:
        """Yield a session that commits on success and rolls back on error.

        write=True takes SQLite's write lock at the start (BEGIN IMMEDIATE): a transaction
        that reads and then writes cannot then fail half-way because another process wrote
        in between. urgent=True (a person is waiting: a check-in) also asks for the lock every
        few milliseconds, so it gets in between the batches of an import.
        """
        db = self.sessionmaker()
        try:
            if write and self.sqlite:
                _begin_immediate(db.connection(), urgent=urgent)
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()

    @contextmanager
    def writing(self, *, urgent: bool = False) -> Iterator[Connection]:
        """Yield a connection in a write transaction (BEGIN IMMEDIATE on SQLite); commit on
        success. Keep it short: other writers wait while it is open."""
        with self.engine.connect() as conn:
            if self.sqlite:
                _begin_immediate(conn, urgent=urgent)
            else:
                # Begun here, not on a first execute: work done through the driver's own
                # cursor (the check-in writer) would otherwise never be committed.
                conn.begin()
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


# ---------------------------------------------------------------------------- a full disk

#: Free space below which SQLite's "disk I/O error" on a write is taken to mean a full disk;
#: also the room asked for on top of what a write needs (the WAL, a rebuilt index).
SPACE_HEADROOM = 16 * 1024 * 1024
_LOW_SPACE = SPACE_HEADROOM


class DiskFull(RuntimeError):
    """A write failed for lack of space: where, and about how much more is needed."""

    def __init__(self, where: str, needed: int) -> None:
        self.where = where
        self.needed = max(needed, 1024 * 1024)
        super().__init__(
            f"disk full: {where}, about {-(-self.needed // (1024 * 1024)):,} MB more needed"
        )


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """Yield the exception and every one behind it (a driver's `orig`, causes, contexts)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]


def free_bytes(path: Path) -> int | None:
    """Free space for an unprivileged writer on the filesystem holding path (None: unknown)."""
    for p in (path, *path.parents):
        if p.exists():
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return None
    return None


def is_disk_full(exc: BaseException, path: Path | None = None) -> bool:
    """True when exc (or an error it wraps) says the disk or the database is full.

    SQLite says "database or disk is full" (SQLITE_FULL), or only "disk I/O error" when the
    WAL or its index cannot grow; the latter counts when path's filesystem is nearly full.
    PostgreSQL says so with SQLSTATE 53100, the system with ENOSPC or EDQUOT.
    """
    for e in exception_chain(exc):
        if isinstance(e, DiskFull):
            return True
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(e, "sqlstate", None) == "53100":
            return True
        code = getattr(e, "sqlite_errorcode", None)
        if isinstance(e, sqlite3.Error) and code is not None:
            if code & 0xFF == sqlite3.SQLITE_FULL:
                return True
            if code & 0xFF == sqlite3.SQLITE_IOERR and path is not None:
                free = free_bytes(path)
                if free is not None and free < _LOW_SPACE:
                    return True
        message = str(e)
        if "database or disk is full" in message or "No space left on device" in message:
            return True
    return False


def disk_full(
    exc: BaseException, db: Database | None = None, *, needed: int | None = None
) -> DiskFull | None:
    """Turn an error that means a full disk into a DiskFull naming where; else None."""
    if isinstance(exc, DiskFull):
        return exc
    path = db.path if db is not None else None
    if not is_disk_full(exc, path):
        return None
    if path is not None:
        where = str(path.resolve())
    elif db is not None:
        url = db.engine.url
        where = f"the PostgreSQL server {url.host or 'localhost'} (database {url.database})"
    else:
        where = next(
            (
                str(e.filename)
                for e in exception_chain(exc)
                if isinstance(e, OSError) and e.filename
            ),
            "the database",
        )
    return DiskFull(where, needed if needed is not None else SPACE_HEADROOM)


def stored_bytes(db: Database) -> int:
    """Bytes the SQLite database takes on disk, its WAL included (0 for PostgreSQL)."""
    path = db.path
    if path is None:
        return 0
    total = 0
    for name in (path, Path(f"{path}-wal")):
        with suppress(OSError):
            total += os.stat(name).st_size
    return total
