"""actors: imported lists of accounts, account assessments and cross-platform actors

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_WHEN = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    name = op.f(f"fk_{table}_{column}_{target}")
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=name, ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "actor_list",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("imported_at", _WHEN, nullable=False),
        sa.Column("imported_by", sa.Integer(), nullable=True),
        _fk("actor_list", "imported_by", "user_account", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_actor_list")),
    )
    op.create_table(
        "actor_list_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("handle", sa.String(length=300), nullable=False),
        sa.Column("actor_type", sa.String(length=32), nullable=False),
        sa.Column("country", sa.String(length=8), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("line", sa.Integer(), nullable=False),
        _fk("actor_list_entry", "list_id", "actor_list", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_actor_list_entry")),
    )
    with op.batch_alter_table("actor_list_entry", schema=None) as batch_op:
        batch_op.create_index("ix_actor_list_entry_account", ["platform", "handle"], unique=False)
    op.create_table(
        "account_assessment",
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("auto_type", sa.String(length=32), nullable=True),
        sa.Column("reason", _JSON, nullable=False),
        sa.Column("applied_type", sa.String(length=32), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("signals", _JSON, nullable=False),
        sa.Column("posts", sa.Integer(), nullable=False),
        sa.Column("computed_at", _WHEN, nullable=False),
        _fk("account_assessment", "author_id", "author", "CASCADE"),
        sa.PrimaryKeyConstraint("author_id", name=op.f("pk_account_assessment")),
    )
    with op.batch_alter_table("account_assessment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_account_assessment_score"), ["score"], unique=False)
    op.create_table(
        "actor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        _fk("actor", "created_by", "user_account", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_actor")),
    )
    op.create_table(
        "actor_account",
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=False),
        sa.Column("linked_at", _WHEN, nullable=False),
        sa.Column("linked_by", sa.Integer(), nullable=True),
        _fk("actor_account", "author_id", "author", "CASCADE"),
        _fk("actor_account", "actor_id", "actor", "CASCADE"),
        _fk("actor_account", "linked_by", "user_account", "SET NULL"),
        sa.PrimaryKeyConstraint("author_id", name=op.f("pk_actor_account")),
    )
    with op.batch_alter_table("actor_account", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_actor_account_actor_id"), ["actor_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("actor_account", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_actor_account_actor_id"))
    op.drop_table("actor_account")
    op.drop_table("actor")
    with op.batch_alter_table("account_assessment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_assessment_score"))
    op.drop_table("account_assessment")
    with op.batch_alter_table("actor_list_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_actor_list_entry_account")
    op.drop_table("actor_list_entry")
    op.drop_table("actor_list")
