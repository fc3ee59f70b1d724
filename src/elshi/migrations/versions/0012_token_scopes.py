"""API tokens have a scope: read (the default, and what every earlier token becomes) or write

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite runs DDL outside the transaction: if a later revision of the same upgrade failed,
    # this column is already there when the upgrade is run again.
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("api_token")}
    if "scope" in columns:
        return
    # Tokens made before scopes drove every form; they become read-only until reissued.
    with op.batch_alter_table("api_token") as batch:
        batch.add_column(
            sa.Column("scope", sa.String(length=20), nullable=False, server_default="read")
        )


def downgrade() -> None:
    with op.batch_alter_table("api_token") as batch:
        batch.drop_column("scope")
