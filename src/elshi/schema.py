"""The database's schema against what it should be: repair of databases that earlier versions
left behind, and the start-up check that the schema matches the models.

Revisions 0001-0014 were edited and re-parented after they had run on real databases (0011
moved from after 0007 to after 0010; 0001, 0004, 0006, 0008 and 0009 changed in place), so a
database built at an earlier version can carry a revision stamp its tables do not match. The
repair compares the live schema with a *reference*: the schema the released revisions build,
from nothing, on a scratch database of the same kind (an in-memory SQLite database, or a
scratch schema on PostgreSQL). Whatever the reference has and the live database lacks is
added (tables, columns, indexes, unique, check and foreign-key constraints); a column or index
whose definition differs is brought to the reference's. Nothing is ever dropped but indexes
the reference does not have: no row is lost. Released revisions are pinned byte for byte
(tests/platform/test_released_migrations.py), so the reference of a revision never changes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

#: Tables the full-text search keeps outside the models (SQLite's FTS5 table and its shadow
#: tables); they are never compared or repaired here.
SEARCH_TABLE = "post_fts"


# ---------------------------------------------------------------------------- start-up check


@dataclass
class SchemaReport:
    """What the live database lacks compared with the models (by name only: cheap)."""

    missing_tables: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)  # "table.column"

    @property
    def ok(self) -> bool:
        return not self.missing_tables and not self.missing_columns

    def message(self, *, database: str = "the database") -> str:
        parts = []
        if self.missing_tables:
            parts.append("missing tables: " + ", ".join(self.missing_tables))
        if self.missing_columns:
            parts.append("missing columns: " + ", ".join(self.missing_columns))
        return (
            f"{database} does not match this version of elshi ({'; '.join(parts)}). "
            "Run `elshi migrate`; if it still does not match, the database was changed by "
            "hand or by another program: restore it from a backup and run `elshi migrate` "
            "again (see 'Upgrading and schema checks' in docs/operating.md)."
        )


def check_schema(engine: Engine) -> SchemaReport:
    """Compare the live tables and columns with the models (names only)."""
    from elshi.models import Base

    insp = inspect(engine)
    tables = set(insp.get_table_names())
    report = SchemaReport()
    for table in Base.metadata.sorted_tables:
        if table.name not in tables:
            report.missing_tables.append(table.name)
            continue
        have = {c["name"] for c in insp.get_columns(table.name)}
        report.missing_columns += [
            f"{table.name}.{c.name}" for c in table.columns if c.name not in have
        ]
    return report


# ---------------------------------------------------------------------------- the reference


@contextmanager
def reference(conn: Connection, revision: str) -> Iterator[Connection]:
    """A connection to a scratch database (or schema) the released revisions built up to
    `revision`, on the same kind of database as `conn`."""
    from alembic import command

    from elshi.migrate import alembic_config

    cfg = alembic_config()
    if conn.dialect.name == "sqlite":
        scratch = create_engine("sqlite://")
        _share_keys(conn, scratch)
        try:
            with scratch.connect() as ref:
                cfg.attributes["connection"] = ref
                command.upgrade(cfg, revision)
                ref.commit()
                yield ref
        finally:
            scratch.dispose()
        return
    # A scratch schema first in the search path of an engine of its own, so that the
    # revisions (and Alembic's version table) see it as the default schema.
    schema = f"elshi_reference_{uuid.uuid4().hex[:8]}"
    with conn.engine.connect() as admin:
        admin.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.commit()
    scratch = create_engine(
        conn.engine.url,
        poolclass=NullPool,
        connect_args={"options": f"-csearch_path={schema},public"},
    )
    _share_keys(conn, scratch)
    try:
        with scratch.connect() as ref:
            cfg.attributes["connection"] = ref
            cfg.attributes["version_table_schema"] = schema
            command.upgrade(cfg, revision)
            ref.commit()
            ref.info["reference_schema"] = schema
            yield ref
    finally:
        scratch.dispose()
        with conn.engine.connect() as admin:
            admin.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.commit()


def _share_keys(conn: Connection, engine: Engine) -> None:
    for name in ("elshi_keyring", "elshi_credentials"):
        if hasattr(conn.dialect, name):
            setattr(engine.dialect, name, getattr(conn.dialect, name))


# ---------------------------------------------------------------------------- repair


def repair(conn: Connection, ref: Connection) -> list[str]:
    """Bring the live schema on `conn` to the reference on `ref`; return what was done."""
    if conn.dialect.name == "sqlite":
        return _repair_sqlite(conn, ref)
    return _repair_postgresql(conn, ref)


def _norm(sql: str | None) -> str:
    s = re.sub(r"\s+", " ", (sql or "").replace('"', "")).strip().rstrip(";")
    s = re.sub(r"\s*([(),])\s*", r"\1", s)
    return s.lower()


def _sqlite_objects(conn: Connection) -> dict[str, dict[str, tuple[str, str]]]:
    """type -> name -> (table, sql) of the objects that are elshi's."""
    out: dict[str, dict[str, tuple[str, str]]] = {"table": {}, "index": {}}
    rows = conn.exec_driver_sql(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid"
    )
    for kind, name, table, sql in rows:
        if kind not in out or table.startswith(SEARCH_TABLE) or name == "alembic_version":
            continue
        out[kind][name] = (table, sql)
    return out


def _sqlite_signature(conn: Connection, table: str) -> tuple[Any, ...]:
    q = table.replace('"', '""')
    cols = sorted(
        (r[1], _norm(r[2]), r[3], _norm(r[4]), r[5])
        for r in conn.exec_driver_sql(f'PRAGMA table_info("{q}")')
    )
    fks = sorted(
        (r[2], r[3], r[4], r[6]) for r in conn.exec_driver_sql(f'PRAGMA foreign_key_list("{q}")')
    )
    uniques = sorted(
        tuple(c[2] for c in conn.exec_driver_sql(f'PRAGMA index_info("{r[1]}")'))
        for r in conn.exec_driver_sql(f'PRAGMA index_list("{q}")')
        if r[3] == "u"
    )
    sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name=?", (table,)
    ).scalar_one()
    checks = sorted(_norm(c) for c in re.findall(r"CHECK\s*\((.*?)\)\s*(?:,|\n|$)", sql or ""))
    return (cols, fks, uniques, checks)


def _columns(conn: Connection, table: str) -> list[dict[str, Any]]:
    q = table.replace('"', '""')
    return [
        {"name": r[1], "type": r[2], "notnull": bool(r[3]), "default": r[4], "pk": r[5]}
        for r in conn.exec_driver_sql(f'PRAGMA table_info("{q}")')
    ]


def _fill_value(column: dict[str, Any]) -> str:
    """A value for a NOT NULL column without a default that a rebuilt table gains, so old
    rows can be copied: the type's neutral value."""
    kind = (column["type"] or "").upper()
    if any(k in kind for k in ("INT", "NUMERIC", "REAL", "FLOAT", "BOOL", "DECIMAL")):
        return "0"
    if "JSON" in kind:
        return "'{}'"
    if "DATE" in kind or "TIME" in kind:
        return "CURRENT_TIMESTAMP"
    return "''"


def _create_as(conn: Connection, name: str, sql: str, other: str) -> None:
    """Create the table `other` (afresh) with the CREATE TABLE `sql` written for `name`."""
    create = re.sub(
        r'^\s*CREATE TABLE\s+("?)' + re.escape(name) + r"\1",
        f'CREATE TABLE "{other}"',
        sql,
        count=1,
        flags=re.IGNORECASE,
    )
    conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{other}"')
    conn.exec_driver_sql(create)


def _rebuild_sqlite_table(conn: Connection, name: str, sql: str) -> None:
    """Recreate `name` with the reference's CREATE TABLE `sql`, keeping every row (every
    column is copied, one the reference lacks too; new NOT NULL columns get their default or
    a neutral value).
    The caller has turned foreign keys off (migrate does, for SQLite)."""
    temp = f"_repair_{name}"
    _create_as(conn, name, sql, temp)
    new = {c["name"] for c in _columns(conn, temp)}
    for col in _columns(conn, name):  # a column the reference lacks keeps its data
        if col["name"] not in new:
            conn.exec_driver_sql(f'ALTER TABLE "{temp}" ADD COLUMN "{col["name"]}" {col["type"]}')
    old = {c["name"] for c in _columns(conn, name)}
    targets, sources = [], []
    for col in _columns(conn, temp):
        if col["name"] in old:
            targets.append(f'"{col["name"]}"')
            sources.append(f'"{col["name"]}"')
        elif col["notnull"] and col["default"] is None and not col["pk"]:
            targets.append(f'"{col["name"]}"')
            sources.append(_fill_value(col))
    conn.exec_driver_sql(
        f'INSERT INTO "{temp}" ({", ".join(targets)}) SELECT {", ".join(sources)} FROM "{name}"'
    )
    conn.exec_driver_sql(f'DROP TABLE "{name}"')
    conn.exec_driver_sql(f'ALTER TABLE "{temp}" RENAME TO "{name}"')


def _repair_sqlite(conn: Connection, ref: Connection) -> list[str]:
    done: list[str] = []
    want = _sqlite_objects(ref)
    have = _sqlite_objects(conn)
    for table, (_t, sql) in want["table"].items():
        if table not in have["table"]:
            conn.exec_driver_sql(sql)
            done.append(f"created table {table}")
            continue
        ref_sig = _signature_of_sql(ref, table, sql)
        if _sqlite_signature(conn, table) != ref_sig:
            indexes = [n for n, (t, _s) in have["index"].items() if t == table]
            _rebuild_sqlite_table(conn, table, sql)
            done.append(f"rebuilt table {table}")
            for index in indexes:  # dropped with the old table; recreated below
                have["index"].pop(index)
    have = _sqlite_objects(conn)
    for index, (_table, sql) in want["index"].items():
        current = have["index"].get(index)
        if current is not None and _norm(current[1]) == _norm(sql):
            continue
        if current is not None:
            conn.exec_driver_sql(f'DROP INDEX "{index}"')
        conn.exec_driver_sql(sql)
        done.append(f"{'recreated' if current else 'created'} index {index}")
    for index, (table, _sql) in have["index"].items():
        if index not in want["index"] and table in want["table"]:
            conn.exec_driver_sql(f'DROP INDEX "{index}"')
            done.append(f"dropped index {index} (not in this version)")
    return done


def sqlite_alter_table(
    conn: Connection, table: str, *, types: dict[str, str], clauses: Iterable[str] = ()
) -> bool:
    """Give columns of a SQLite table new declared types and add table constraints, by
    rebuilding it (rows and indexes kept); return whether anything changed."""
    sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name=?", (table,)
    ).scalar_one()
    new = sql
    for column, type_sql in types.items():
        new = re.sub(
            r"((?:\(|,)\s*\"?" + re.escape(column) + r"\"? )[A-Za-z]+(\(\d+\))?",
            lambda m: m.group(1) + type_sql,  # noqa: B023 (used at once)
            new,
            count=1,
        )
    for clause in clauses:
        if _norm(clause) not in _norm(new):
            new = new.rstrip().removesuffix(")").rstrip() + ", \n\t" + clause + "\n)"
    if new == sql:
        return False
    indexes = [
        r[0]
        for r in conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type='index' AND tbl_name=? AND sql IS NOT NULL",
            (table,),
        )
    ]
    _rebuild_sqlite_table(conn, table, new)
    for index in indexes:
        conn.exec_driver_sql(index)
    return True


def _signature_of_sql(ref: Connection, table: str, sql: str) -> tuple[Any, ...]:
    """The signature of the table `sql` would create (built in the scratch database)."""
    probe = f"_probe_{table}"
    _create_as(ref, table, sql, probe)
    try:
        sig = _sqlite_signature(ref, probe)
    finally:
        ref.exec_driver_sql(f'DROP TABLE "{probe}"')
    return sig


# ---------------------------------------------------------------------------- PostgreSQL


def _pg_rows(conn: Connection, sql: str, **params: Any) -> list[Any]:
    return list(conn.execute(text(sql), params))


def _repair_postgresql(conn: Connection, ref: Connection) -> list[str]:
    schema = ref.info["reference_schema"]
    done: list[str] = []
    live_insp = inspect(conn)
    ref_insp = inspect(ref)
    live_tables = set(live_insp.get_table_names())
    ref_tables = [t for t in ref_insp.get_table_names(schema=schema) if t != "alembic_version"]

    def unqualify(sql: str) -> str:
        return sql.replace(f'"{schema}".', "").replace(f"{schema}.", "")

    # Tables and columns: the reference's own definitions, read back as DDL text.
    for table in ref_tables:
        cols = _pg_rows(
            ref,
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
            "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
            "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum",
            t=f'"{schema}"."{table}"',
        )
        if table not in live_tables:
            defs = []
            for name, type_, notnull, default in cols:
                d = f'"{name}" {type_}'
                if default is not None:
                    if default.startswith("nextval("):
                        d = f'"{name}" {"BIGSERIAL" if type_ == "bigint" else "SERIAL"}'
                    else:
                        d += f" DEFAULT {unqualify(default)}"
                if notnull:
                    d += " NOT NULL"
                defs.append(d)
            conn.execute(text(f'CREATE TABLE "{table}" ({", ".join(defs)})'))
            done.append(f"created table {table}")
            continue
        have = {
            r[0]: r[1]
            for r in _pg_rows(
                conn,
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0 "
                "AND NOT a.attisdropped",
                t=f'"{table}"',
            )
        }
        for name, type_, notnull, default in cols:
            if name not in have:
                d = f'ALTER TABLE "{table}" ADD COLUMN "{name}" {type_}'
                if default is not None:
                    d += f" DEFAULT {unqualify(default)}"
                conn.execute(text(d))
                if notnull:
                    if default is None:
                        conn.execute(
                            text(f'UPDATE "{table}" SET "{name}" = DEFAULT WHERE "{name}" IS NULL')
                        )
                    conn.execute(text(f'ALTER TABLE "{table}" ALTER COLUMN "{name}" SET NOT NULL'))
                done.append(f"added column {table}.{name}")
            elif have[name] != type_:
                conn.execute(
                    text(
                        f'ALTER TABLE "{table}" ALTER COLUMN "{name}" TYPE {type_} '
                        f'USING "{name}"::{type_}'
                    )
                )
                done.append(f"changed type of {table}.{name} to {type_}")
    # Constraints (primary keys first, then unique and check, then foreign keys).
    order = {"p": 0, "u": 1, "c": 2, "f": 3}
    ref_cons = _pg_rows(
        ref,
        "SELECT c.conname, t.relname, c.contype, pg_get_constraintdef(c.oid) "
        "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = :s "
        "AND c.contype IN ('p','u','c','f')",
        s=schema,
    )
    live_cons = {
        (r[1], r[0]): r[2]
        for r in _pg_rows(
            conn,
            "SELECT c.conname, t.relname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "JOIN pg_class t ON t.oid = c.conrelid "
            "WHERE t.relnamespace = CAST(current_schema() AS regnamespace)",
        )
    }
    for name, table, _kind, definition in sorted(ref_cons, key=lambda r: order[r[2]]):
        if table == "alembic_version":
            continue
        definition = unqualify(definition)
        current = live_cons.get((table, name))
        if current is not None and unqualify(current) == definition:
            continue
        if current is not None:
            conn.execute(text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"'))
        conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'))
        done.append(f"{'replaced' if current else 'added'} constraint {name} on {table}")
    # Indexes (those not behind a constraint), by their definition text.
    index_sql = (
        "SELECT i.indexname, i.tablename, i.indexdef FROM pg_indexes i WHERE i.schemaname = :s "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname "
        "AND c.connamespace = CAST(:s AS regnamespace))"
    )
    want = {r[0]: (r[1], unqualify(r[2])) for r in _pg_rows(ref, index_sql, s=schema)}
    live_schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    have = {
        r[0]: (r[1], r[2].replace(f"{live_schema}.", ""))
        for r in _pg_rows(conn, index_sql, s=live_schema)
    }
    for name, (_table, definition) in want.items():
        current = have.get(name)
        if current is not None and current[1] == definition:
            continue
        if current is not None:
            conn.execute(text(f'DROP INDEX "{name}"'))
        conn.execute(text(definition))
        done.append(f"{'recreated' if current else 'created'} index {name}")
    for name, (table, _d) in have.items():
        if name not in want and table in ref_tables:
            conn.execute(text(f'DROP INDEX "{name}"'))
            done.append(f"dropped index {name} (not in this version)")
    return done


def released(revisions: Iterable[str | None]) -> bool:
    """Whether every revision is one of the released 0001-0014 (what repair knows)."""
    return all(r is not None and re.fullmatch(r"00(0[1-9]|1[0-4])", r) for r in revisions)
