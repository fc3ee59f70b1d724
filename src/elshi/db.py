"""Engine, sessions and the declarative base; SQLite pragmas for the embedded default."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import JSON, DateTime, MetaData, String, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from elshi.settings import Settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")

SEALED_PREFIX = "sealed:"


class SealedUnreadable(ValueError):
    """A sealed value cannot be opened with the configured secret key."""


def sealer(settings: Settings) -> Fernet:
    """The key that seals secrets at rest, derived from ELSHI_SECRET_KEY."""
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"elshi.sealed", info=b"fernet"
    ).derive(settings.secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


class SealedString(TypeDecorator[str]):
    """A short secret (a TOTP key) encrypted at rest with the engine's sealing key.

    Values written before sealing existed (no prefix) are still read, and sealed when next
    written. A value that cannot be opened raises: a changed secret key must not quietly turn
    a second factor off.
    """

    impl = String(255)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        key: Fernet | None = getattr(dialect, "elshi_sealer", None)
        if key is None:
            raise SealedUnreadable("no sealing key on this database connection")
        return SEALED_PREFIX + key.encrypt(value.encode()).decode()

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is None or not value.startswith(SEALED_PREFIX):
            return value
        key: Fernet | None = getattr(dialect, "elshi_sealer", None)
        try:
            if key is None:
                raise InvalidToken
            return key.decrypt(value.removeprefix(SEALED_PREFIX).encode()).decode()
        except InvalidToken:
            raise SealedUnreadable(
                "a stored secret cannot be decrypted: ELSHI_SECRET_KEY changed since it was "
                "saved; turn the user's two-step sign-in off and on again"
            ) from None


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
    engine.dialect.elshi_sealer = sealer(settings)  # type: ignore[attr-defined]
    return engine


class Database:
    """The engine and session factory for one settings object."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

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
