"""Apply Alembic migrations: `elshi migrate` and every start-up call this.

Each revision runs in its own transaction (on SQLite too: the driver's own transaction
handling, which commits before DDL, is turned off for the migrating connection), so a failure
leaves the database at the last revision that finished, stamp and schema alike.

A database whose stamp is a released revision (0001-0014) is first brought to the schema that
revision really builds (elshi.schema): earlier versions edited landed revisions, so such a
stamp may claim tables the database lacks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_KEY = 7_314_159  # PostgreSQL advisory lock so parallel replicas migrate once
log = logging.getLogger(__name__)


def alembic_config(engine: Engine | None = None) -> Config:
    """Return an Alembic config pointing at elshi's migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    """Return the newest migration's revision id."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """Return the revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine, revision: str = "head") -> str | None:
    """Upgrade the database to `revision`; return the revision it is at afterwards."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        raw: Any = None
        if sqlite:
            # Real transactions around DDL, and foreign keys off while tables are rebuilt
            # (SQLite's own procedure; checked again before the end).
            raw = conn.connection.driver_connection
            conn.commit()
            previous_isolation = raw.isolation_level
            raw.isolation_level = None
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            event.listen(conn, "begin", _sqlite_begin)
        else:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
            conn.commit()
        try:
            _upgrade(conn, revision)
            if sqlite:
                bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                conn.rollback()
                if bad:
                    log.warning("rows whose foreign key points nowhere: %s", bad[:20])
        finally:
            if sqlite:
                conn.rollback()
                event.remove(conn, "begin", _sqlite_begin)
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                raw.isolation_level = previous_isolation
            else:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
                conn.commit()
    return current_revision(engine)


def _upgrade(conn: Connection, revision: str) -> None:
    from elshi import schema

    stamps = MigrationContext.configure(conn).get_current_heads()
    conn.commit()
    cfg = alembic_config()
    if stamps and schema.released(stamps):
        # Bring the schema to what its stamp claims, then to what 0014 builds (revision
        # 0015 does the second part with the reference handed over here).
        (stamp,) = stamps
        with conn.begin(), schema.reference(conn, stamp) as ref:
            for step in schema.repair(conn, ref):
                log.warning("repaired the schema at %s: %s", stamp, step)
        cfg.attributes["repair_reference"] = True
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)
    conn.commit()
