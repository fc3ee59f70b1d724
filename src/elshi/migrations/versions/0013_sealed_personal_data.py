"""Citizens' personal data sealed at rest, with blind indexes to find phones and passports

Phones, addresses, emergency contacts, companions, form answers, messages, check-in notes and
officers' notes are sealed per field (their columns become text); phone and passport numbers
get a blind index column. Existing rows are sealed here, and TOTP keys and channel credentials
move from the old key derivation to the purpose keys. This needs the secret key, which elshi's
own migrate (every start-up, `elshi migrate`) gives; on a database with no such rows it is not
needed.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from elshi.keys import INDEXED, SEALED, Credentials, pending, reseal

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, column, type before): columns that become TEXT to hold the cipher text.
WIDENED = (
    ("citizen", "phone", sa.String(length=40)),
    ("registration", "address", sa.String(length=500)),
    ("registration", "phone", sa.String(length=40)),
    ("registration", "emergency_contact", sa.String(length=300)),
    ("crisis_recipient", "phone", sa.String(length=40)),
    ("crisis_walkin", "phone", sa.String(length=40)),
)
#: JSON columns that become TEXT (sealed JSON).
JSON_COLUMNS = (("registration", "companions"), ("service_request", "answers"))
#: The sealed columns and blind indexes as of this revision.
SEALED_HERE = dict(SEALED)
INDEXED_HERE = dict(INDEXED)

NEEDS_KEY = (
    "migration 0013 seals personal data and needs the secret key: run it with `elshi migrate` "
    "(with ELSHI_SECRET_KEY or ELSHI_SECRET_KEY_FILE set)"
)


def _keys() -> tuple[Any, Credentials | None]:
    """The connection's keyring and credential keys; refuse to go on without them when there
    is something to seal."""
    bind = op.get_bind()
    keyring = getattr(bind.dialect, "elshi_keyring", None)
    credentials = getattr(bind.dialect, "elshi_credentials", None)
    if keyring is None:
        t = sa.table("channel_account", sa.column("secret"))
        stored = bind.execute(sa.select(sa.func.count()).where(t.c.secret.is_not(None))).scalar()
        if stored or pending(bind, sealed=SEALED_HERE):
            raise RuntimeError(NEEDS_KEY)
    return keyring, credentials


def upgrade() -> None:
    bind = op.get_bind()
    # Before any change: SQLite runs DDL outside the transaction, so a refusal must come first.
    keyring, credentials = _keys()
    if bind.dialect.name == "postgresql":
        for name, col, old in WIDENED:
            op.alter_column(name, col, type_=sa.Text(), existing_type=old)
        for name, col in JSON_COLUMNS:
            op.alter_column(name, col, type_=sa.Text(), postgresql_using=f"{col}::text")
    for name, indexes in INDEXED_HERE.items():
        for i in indexes:
            op.add_column(name, sa.Column(i.column, sa.String(length=64), nullable=True))
            op.create_index(op.f(f"ix_{name}_{i.column}"), name, [i.column], unique=False)
    if keyring is not None:
        reseal(
            bind,
            opener=keyring,
            target=keyring,
            legacy=True,
            credentials=credentials,
            sealed=SEALED_HERE,
            indexed=INDEXED_HERE,
        )


def downgrade() -> None:
    bind = op.get_bind()
    keyring, credentials = _keys()
    if keyring is not None:
        back = None
        if credentials is not None and credentials.legacy is not None:
            back = Credentials(opener=credentials.opener, target=credentials.legacy)
        # Personal data and TOTP keys go back to plain text (read as such before 0013).
        reseal(
            bind,
            opener=keyring,
            target=None,
            legacy=True,
            credentials=back,
            sealed=SEALED_HERE,
            indexed={},
        )
    for name, indexes in INDEXED_HERE.items():
        for i in indexes:
            op.drop_index(op.f(f"ix_{name}_{i.column}"), table_name=name)
            with op.batch_alter_table(name) as batch:
                batch.drop_column(i.column)
    if bind.dialect.name == "postgresql":
        for name, col, old in WIDENED:
            op.alter_column(name, col, type_=old, existing_type=sa.Text())
        for name, col in JSON_COLUMNS:
            op.alter_column(name, col, type_=postgresql.JSONB(), postgresql_using=f"{col}::jsonb")
