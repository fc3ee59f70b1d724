"""travel advisories: publications per country and region, and citizens following a country

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "travel_advisory",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("region", sa.String(length=200), server_default="", nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("texts", _JSON, nullable=False),
        sa.Column("previous_level", sa.Integer(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.Integer(), nullable=True),
        sa.Column("published_by_label", sa.String(length=200), nullable=False),
        sa.Column("notified", sa.Integer(), nullable=False),
        sa.CheckConstraint("level BETWEEN 1 AND 4", name=op.f("ck_travel_advisory_advisory_level")),
        sa.ForeignKeyConstraint(
            ["published_by"],
            ["user_account.id"],
            name=op.f("fk_travel_advisory_published_by_user_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_travel_advisory")),
    )
    op.create_index(
        "ix_travel_advisory_country",
        "travel_advisory",
        ["country_code", "published_at"],
        unique=False,
    )
    op.create_table(
        "advisory_subscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
            name=op.f("fk_advisory_subscription_citizen_id_citizen"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_advisory_subscription")),
        sa.UniqueConstraint(
            "citizen_id", "country_code", name=op.f("uq_advisory_subscription_citizen_id")
        ),
    )
    op.create_index(
        op.f("ix_advisory_subscription_citizen_id"),
        "advisory_subscription",
        ["citizen_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_advisory_subscription_country_code"),
        "advisory_subscription",
        ["country_code"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_advisory_subscription_country_code"), table_name="advisory_subscription")
    op.drop_index(op.f("ix_advisory_subscription_citizen_id"), table_name="advisory_subscription")
    op.drop_table("advisory_subscription")
    op.drop_index("ix_travel_advisory_country", table_name="travel_advisory")
    op.drop_table("travel_advisory")
