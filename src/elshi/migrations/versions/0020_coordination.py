"""coordination: co-actions, their edges, groups of accounts and the update's state

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _author_fk(table: str, column: str) -> sa.ForeignKeyConstraint:
    name = op.f(f"fk_{table}_{column}_author")
    return sa.ForeignKeyConstraint([column], ["author.id"], name=name, ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "coordination_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("window_seconds", sa.Float(), nullable=False),
        sa.Column("narrow_seconds", sa.Float(), nullable=False),
        sa.Column("last_post_id", sa.BigInteger(), nullable=False),
        sa.Column("posts", sa.BigInteger(), nullable=False),
        sa.Column("params", _JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coordination_state")),
    )
    op.create_table(
        "co_action",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("fast", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"], ["post.id"], name=op.f("fk_co_action_post_id_post"), ondelete="CASCADE"
        ),
        _author_fk("co_action", "partner_id"),
        _author_fk("co_action", "author_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_co_action")),
        sa.UniqueConstraint("kind", "post_id", "partner_id", name=op.f("uq_co_action_kind")),
    )
    with op.batch_alter_table("co_action", schema=None) as batch_op:
        batch_op.create_index(
            "ix_co_action_pair", ["kind", "author_id", "partner_id"], unique=False
        )
    op.create_table(
        "co_edge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("fast_weight", sa.Integer(), nullable=False),
        _author_fk("co_edge", "author_id"),
        _author_fk("co_edge", "partner_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_co_edge")),
        sa.UniqueConstraint("kind", "author_id", "partner_id", name=op.f("uq_co_edge_kind")),
    )
    op.create_table(
        "co_group",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("edges", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("symmetry", sa.Float(), nullable=False),
        sa.Column("speed_share", sa.Float(), nullable=False),
        sa.Column("platforms", _JSON, nullable=False),
        sa.Column("languages", _JSON, nullable=False),
        sa.Column("kinds", _JSON, nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("top", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_co_group")),
    )
    op.create_table(
        "co_group_member",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("degree", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["co_group.id"],
            name=op.f("fk_co_group_member_group_id_co_group"),
            ondelete="CASCADE",
        ),
        _author_fk("co_group_member", "author_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_co_group_member")),
        sa.UniqueConstraint("group_id", "author_id", name=op.f("uq_co_group_member_group_id")),
    )
    with op.batch_alter_table("co_group_member", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_co_group_member_author_id"), ["author_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("co_group_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_co_group_member_author_id"))
    op.drop_table("co_group_member")
    op.drop_table("co_group")
    op.drop_table("co_edge")
    with op.batch_alter_table("co_action", schema=None) as batch_op:
        batch_op.drop_index("ix_co_action_pair")
    op.drop_table("co_action")
    op.drop_table("coordination_state")
