"""coordination: participation counts; the common kinds keep counts, not co-actions

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "co_participation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("posts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["author.id"],
            name=op.f("fk_co_participation_author_id_author"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_co_participation")),
        sa.UniqueConstraint("kind", "author_id", name=op.f("uq_co_participation_kind")),
    )
    # The counts are not known yet: the next update recomputes everything (and no longer
    # keeps the co-actions of the counted kinds).
    op.execute("DELETE FROM coordination_state")


def downgrade() -> None:
    op.drop_table("co_participation")
    op.execute("DELETE FROM coordination_state")
