"""Databases built by earlier versions upgrade to this version's schema.

tests/fixtures/old_schemas/ holds the schema every commit that changed the migrations left in
a new database (built with that commit's own code: see build.py there), with the revision it
was stamped at. Some of those stamps claim tables the database lacks (revisions were edited
and re-parented after they had run). Each is loaded, given some rows, upgraded with
`elshi migrate`, and must then match the models, keep its rows and take a new mission (which
failed with "no such column: mission.timezone" before the repair).

SQLite loads the SQLite fixtures; with ELSHI_TEST_DB=postgres, PostgreSQL loads its own
(pg_dump of the states main has been at).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url
from typer.testing import CliRunner

from elshi.cli import app
from elshi.migrate import head_revision
from elshi.models import Base
from tests.conftest import BACKEND, PG_ADMIN, _clear_env, service_missing
from tests.platform.test_migrations_match_models import _include, _summary

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "old_schemas"
KIND = "postgresql" if BACKEND == "postgres" else "sqlite"
STATES = sorted(p.name for p in (FIXTURES / KIND).glob("*.sql"))


def test_every_state_of_main_has_a_fixture() -> None:
    """The fixtures cover every schema main has had (the builder marks them `main`)."""
    sqlite = sorted((FIXTURES / "sqlite").glob("*.sql"))
    assert len(sqlite) >= 20
    on_main = [p for p in sqlite if "\n-- main " in "\n" + p.read_text(encoding="utf-8")]
    assert len(on_main) >= 14
    # The state of the report: 0011 after 0007, stamped 0011, no crisis tables.
    text_17 = (FIXTURES / "sqlite" / "17_a52f6305a2.sql").read_text(encoding="utf-8")
    assert "VALUES ('0011')" in text_17 and "CREATE TABLE crisis" not in text_17
    assert {p.name for p in (FIXTURES / "postgresql").glob("*.sql")} >= {
        p.name for p in on_main if p.name != "09_42cb08c3ae.sql"
    }


@pytest.fixture
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of the test's backend with the old schema loaded; its URL."""
    sql = (FIXTURES / KIND / request.param).read_text(encoding="utf-8")
    if KIND == "sqlite":
        import sqlite3

        path = tmp_path / "home" / "elshi.db"
        path.parent.mkdir(parents=True)
        con = sqlite3.connect(path)
        con.executescript(sql)
        con.close()
        yield f"sqlite:///{path}"
        return
    import psycopg

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"elshi_old_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    url = make_url(PG_ADMIN).set(database=name)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.encode())  # several statements, no parameters
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _value(column: dict[str, Any]) -> Any:
    kind = str(column["type"]).upper()
    if "INT" in kind:
        return 1 if column["name"] == "id" else 0
    if "BOOL" in kind:
        return False
    if "JSON" in kind:
        return "{}"
    if "DATE" in kind or "TIME" in kind:
        return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return f"old {column['name']}"


def _insert(engine: Engine, table: str, **given: Any) -> None:
    """A row in `table` with `given` values and a neutral value in every other required
    column (the old schema decides which columns there are)."""
    row: dict[str, Any] = {}
    for column in inspect(engine).get_columns(table):
        name = column["name"]
        if name in given:
            row[name] = given[name]
        elif not column["nullable"] and column.get("default") is None:
            row[name] = _value(column)
    names = ", ".join(row)
    with engine.begin() as conn:
        conn.execute(
            text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + n for n in row)})"),
            row,
        )


def _differences(engine: Engine) -> set[tuple[str, ...]]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": _include}
        )
        return _summary(compare_metadata(context, Base.metadata))


@pytest.mark.parametrize("old_database", STATES, indirect=True)
def test_old_database_upgrades_to_the_models(
    old_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(old_database)
    tables = set(inspect(engine).get_table_names())
    _insert(engine, "source", id=41, connector="rss", name="kept source")
    if "mission" in tables:
        _insert(engine, "mission", id=7, slug="old-embassy", name="Old embassy", kind="embassy")
    engine.dispose()

    _clear_env(monkeypatch)
    monkeypatch.setenv("ELSHI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ELSHI_DATABASE_URL", old_database)
    monkeypatch.setenv("ELSHI_DEMO", "1")
    runner = CliRunner()
    result = runner.invoke(app, ["migrate"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"database at revision {head_revision()}" in result.output

    engine = create_engine(old_database)
    try:
        assert _differences(engine) == set()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM source WHERE id = 41")).scalar_one() == (
                "kept source"
            )
            if "mission" in tables:
                assert conn.execute(
                    text("SELECT name FROM mission WHERE slug = 'old-embassy'")
                ).scalar_one() == ("Old embassy")
    finally:
        engine.dispose()

    result = runner.invoke(
        app,
        [
            "missions",
            "add",
            "new-embassy",
            "--name",
            "Embassy in Berlin",
            "--timezone",
            "Europe/Berlin",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    # Running it again finds nothing to do.
    result = runner.invoke(app, ["migrate"], catch_exceptions=False)
    assert result.exit_code == 0 and f"revision {head_revision()}" in result.output


def test_failed_revision_leaves_a_consistent_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each revision runs in its own transaction on SQLite too: a revision that fails part
    way leaves the stamp at the one before, with none of its changes."""
    if KIND != "sqlite":
        pytest.skip("the SQLite transaction handling is what this checks")
    import sqlite3

    from elshi.migrate import current_revision, migrate

    path = tmp_path / "elshi.db"
    con = sqlite3.connect(path)
    con.executescript((FIXTURES / "sqlite" / "27_4ce7447ebf.sql").read_text(encoding="utf-8"))
    # A row whose author points nowhere would be fine; a table in 0015's way is not: the
    # rebuild of `author` cannot create its scratch table over a view of that name.
    con.execute("CREATE VIEW _repair_author AS SELECT 1 AS x")
    con.commit()
    con.close()
    engine = create_engine(f"sqlite:///{path}")
    try:
        with pytest.raises(Exception, match="_repair_author"):
            migrate(engine)
        assert current_revision(engine) == "0014"
        with engine.connect() as conn:
            sql = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'citizen'")
            ).scalar_one()
        assert "phone VARCHAR(40)" in sql, "0015's first changes were rolled back"
    finally:
        engine.dispose()
    assert os.path.exists(path)
