"""missions: the emergency number citizens are shown on crisis pages

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-12 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mission") as batch:
        batch.add_column(
            sa.Column("emergency_phone", sa.String(length=40), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("mission") as batch:
        batch.drop_column("emergency_phone")
