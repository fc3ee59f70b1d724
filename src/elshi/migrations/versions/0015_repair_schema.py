"""schema: repair databases built by earlier versions; SQLite gets the last two differences

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 10:00:00

Earlier versions edited revisions 0001-0014 after they had run, so a database they built can
carry a stamp its tables do not match. elshi.migrate repairs such a database before the
revisions after its stamp run (elshi.schema: the live schema against the schema the released
revisions build on a scratch database; what is missing is added, nothing is dropped but
indexes), because those revisions would fail on the missing tables first.

This revision then brings SQLite to what PostgreSQL has had since 0006 and 0013: the foreign
key author.actor_type_by -> user_account, and the declared types of the sealed columns
(TEXT; VARCHAR(255) for TOTP keys). SQLite changes them by rebuilding each table, rows and
indexes kept; elshi.migrate runs it with foreign keys off, as SQLite asks. Each change is
checked against the live table first, so running it again changes nothing.
"""

from collections.abc import Sequence

from alembic import op

from elshi.schema import sqlite_alter_table

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEALED_TYPES = {
    "citizen": {"phone": "TEXT", "totp_secret": "VARCHAR(255)"},
    "crisis_recipient": {"phone": "TEXT"},
    "crisis_walkin": {"phone": "TEXT"},
    "registration": {
        "address": "TEXT",
        "phone": "TEXT",
        "emergency_contact": "TEXT",
        "companions": "TEXT",
    },
    "service_request": {"answers": "TEXT"},
    "user_account": {"totp_secret": "VARCHAR(255)"},
}
AUTHOR_FK = (
    "CONSTRAINT fk_author_actor_type_by_user_account FOREIGN KEY(actor_type_by) "
    "REFERENCES user_account (id) ON DELETE SET NULL"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for table, types in SEALED_TYPES.items():
        sqlite_alter_table(bind, table, types=types)
    sqlite_alter_table(bind, "author", types={}, clauses=[AUTHOR_FK])


def downgrade() -> None:
    """Nothing to undo: the repaired schema is the one every earlier revision meant."""
