"""TOTP keys of staff and citizens are sealed at rest: their columns widen to hold the cipher text

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("user_account", "citizen")


def _resize(old: int, new: int) -> None:
    # SQLite does not enforce VARCHAR lengths: rebuilding these tables there would gain nothing.
    if op.get_bind().dialect.name == "sqlite":
        return
    for table in TABLES:
        op.alter_column(
            table, "totp_secret", type_=sa.String(length=new), existing_type=sa.String(length=old)
        )


def upgrade() -> None:
    # Existing plain keys stay readable and are sealed when next written.
    _resize(64, 255)


def downgrade() -> None:
    _resize(255, 64)
