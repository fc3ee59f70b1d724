"""The migrations build the schema the models describe (what `alembic revision
--autogenerate` would find to change is nothing), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from elshi.models import Base

#: Full-text search lives outside the models on purpose (see docs/design-notes.md): SQLite's
#: contentless FTS5 table post_fts (and the tables FTS5 keeps for it), PostgreSQL's
#: post.search_vector column with its trigger, and the indexes that serve search.
SEARCH_OBJECTS = {"post_fts", "search_vector", "ix_post_search_vector", "ix_post_text_trgm"}

#: Known differences on SQLite, where the migrations leave the schema as it was because SQLite
#: can only change it by copying the whole table, and SQLite does not enforce these anyway:
#: - 0006 adds the foreign key author.actor_type_by -> user_account on PostgreSQL only;
#: - 0013 widens the sealed columns to TEXT on PostgreSQL only (SQLite ignores VARCHAR
#:   lengths, and JSON columns hold the sealed text unchanged).
#: Each is listed so that a new difference fails, and fixing one means deleting its line.
KNOWN_ON_SQLITE = {
    ("add_fk", "author", "actor_type_by"),
    ("modify_type", "citizen", "phone"),
    ("modify_type", "citizen", "totp_secret"),
    ("modify_type", "crisis_recipient", "phone"),
    ("modify_type", "crisis_walkin", "phone"),
    ("modify_type", "registration", "address"),
    ("modify_type", "registration", "phone"),
    ("modify_type", "registration", "emergency_contact"),
    ("modify_type", "registration", "companions"),
    ("modify_type", "service_request", "answers"),
    ("modify_type", "user_account", "totp_secret"),
}


def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (name and (name in SEARCH_OBJECTS or name.startswith("post_fts")))


def _summary(diff: list[Any]) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for item in diff:
        for op in item if isinstance(item, list) else [item]:
            kind = op[0]
            if kind in ("modify_type", "modify_nullable", "modify_default", "modify_comment"):
                out.add((kind, op[2], op[3]))
            elif kind in ("add_fk", "remove_fk"):
                fk = op[1]
                out.add((kind, fk.parent.name, ",".join(c.name for c in fk.columns)))
            elif kind in ("add_column", "remove_column"):
                out.add((kind, op[2], op[3].name))
            elif kind in ("add_index", "remove_index", "add_constraint", "remove_constraint"):
                out.add((kind, op[1].table.name, str(op[1].name)))
            else:  # add_table, remove_table, ...
                out.add((kind, str(getattr(op[1], "name", op[1]))))
    return out


def test_migrations_match_models(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": _include}
            )
            found = _summary(compare_metadata(context, Base.metadata))
            known = KNOWN_ON_SQLITE if conn.dialect.name == "sqlite" else set()
    finally:
        engine.dispose()
    assert found - known == set(), "the models and the migrations differ"
    assert known - found == set(), "fixed: delete these from KNOWN_ON_SQLITE"
