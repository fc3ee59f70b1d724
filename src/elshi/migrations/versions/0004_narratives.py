"""narratives: stories across languages and the clustering state that assigns new posts

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 11:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import elshi.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "narrative",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", elshi.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_seen", elshi.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("langs", _json(), nullable=False),
        sa.Column("terms", _json(), nullable=False),
        sa.Column("terms_by_lang", _json(), nullable=False),
        sa.Column("hours", _json(), nullable=False),
        sa.Column("merged_into", sa.Integer(), nullable=True),
        sa.Column("backend", sa.String(length=200), nullable=False),
        sa.Column("state", _json(), nullable=False),
        sa.Column("updated_at", elshi.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_narrative")),
    )
    op.create_index("ix_narrative_last_seen", "narrative", ["last_seen"])
    op.create_index("ix_narrative_merged_into", "narrative", ["merged_into"])
    op.create_table(
        "narrative_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("backend", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("posts", sa.Integer(), nullable=False),
        sa.Column("state", _json(), nullable=False),
        sa.Column("last_seconds", sa.Float(), nullable=True),
        sa.Column("updated_at", elshi.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_narrative_state")),
    )


def downgrade() -> None:
    op.drop_table("narrative_state")
    op.drop_index("ix_narrative_merged_into", table_name="narrative")
    op.drop_index("ix_narrative_last_seen", table_name="narrative")
    op.drop_table("narrative")
