"""coordination: the highest group id ever given, so a group's id is never reused

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("coordination_state") as batch:
        batch.add_column(
            sa.Column("last_group_id", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("coordination_state") as batch:
        batch.drop_column("last_group_id")
