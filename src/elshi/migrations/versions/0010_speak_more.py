"""speak: the accounts that engaged with each publication (audience quality)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 14:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import elshi.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "publication_engager",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("publication_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("handle", sa.String(length=300), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("first_seen_at", elshi.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["publication_id"],
            ["publication.id"],
            name=op.f("fk_publication_engager_publication_id_publication"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publication_engager")),
        sa.UniqueConstraint(
            "publication_id", "handle", "kind", name=op.f("uq_publication_engager_publication_id")
        ),
    )
    with op.batch_alter_table("publication_engager", schema=None) as batch_op:
        batch_op.create_index(
            "ix_publication_engager_platform_handle", ["platform", "handle"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("publication_engager", schema=None) as batch_op:
        batch_op.drop_index("ix_publication_engager_platform_handle")
    op.drop_table("publication_engager")
