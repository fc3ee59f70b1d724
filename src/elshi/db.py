"""Engine, sessions and the declarative base; SQLite pragmas for the embedded default."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, String, Text, create_engine, event, inspect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


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
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pool
        )
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, **pool)
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

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session that commits on success and rolls back on error."""
        db = self.sessionmaker()
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
