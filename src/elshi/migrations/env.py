"""Alembic environment: the connection comes from elshi.migrate()."""

from __future__ import annotations

from alembic import context

from elshi.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run migrations on the connection elshi passed in."""
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # One transaction per revision: a failure leaves the stamp at the last revision
        # that finished, with its schema (see elshi.migrate for SQLite).
        transaction_per_migration=True,
        # Only set when elshi.schema builds a reference schema on PostgreSQL.
        version_table_schema=config.attributes.get("version_table_schema"),
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
