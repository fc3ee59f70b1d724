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
    finally:
        engine.dispose()
    assert found == set(), "the models and the migrations differ"
