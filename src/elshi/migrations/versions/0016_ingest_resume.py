"""listen: near-duplicate decisions survive a killed import; runs know their process

A post stored by a bulk load waits for its near-duplicate decision (near_dup_pending), so a
killed import's posts are decided by the next import. A run records its host, process and
heartbeat, so one left 'running' by a dead process is shown as interrupted.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("post", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("near_dup_pending", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index(
            "ix_post_near_dup_pending",
            ["id"],
            unique=False,
            sqlite_where=sa.text("near_dup_pending = 1"),
            postgresql_where=sa.text("near_dup_pending"),
        )
    with op.batch_alter_table("ingest_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_ingest_run_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ingest_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingest_run_status"))
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("pid")
        batch_op.drop_column("host")
    with op.batch_alter_table("post", schema=None) as batch_op:
        batch_op.drop_index("ix_post_near_dup_pending")
        batch_op.drop_column("near_dup_pending")
