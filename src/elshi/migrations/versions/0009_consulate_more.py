"""consulate: ordered indexes for the officers' open queue, stay reminders, mission time zones

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import elshi.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("status IN ('submitted', 'in_review', 'more_documents')")


def upgrade() -> None:
    op.create_index(
        "ix_service_request_open_mission",
        "service_request",
        ["mission_id", "submitted_at", "id"],
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )
    op.create_index(
        "ix_service_request_open",
        "service_request",
        ["submitted_at", "id"],
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )
    with op.batch_alter_table("registration") as batch:
        batch.add_column(
            sa.Column("reminded_at", elshi.db.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("mission") as batch:
        batch.add_column(
            sa.Column("timezone", sa.String(length=64), nullable=False, server_default="UTC")
        )


def downgrade() -> None:
    with op.batch_alter_table("mission") as batch:
        batch.drop_column("timezone")
    with op.batch_alter_table("registration") as batch:
        batch.drop_column("reminded_at")
    op.drop_index("ix_service_request_open", table_name="service_request")
    op.drop_index("ix_service_request_open_mission", table_name="service_request")
