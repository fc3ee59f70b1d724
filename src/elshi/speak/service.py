"""Statements: versions per language, translation, approval, schedule, channel accounts,
publications, reach and the rebuttal view. Every function checks the actor's role and
mission; nothing here calls a platform (that is flows.py)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from elshi.accounts.service import Principal, audit_by, get_readable, scoped
from elshi.errors import InvalidRequest, NotFound
from elshi.missions.models import Mission
from elshi.modules import forward_to
from elshi.speak.models import (
    STATEMENT_LANGUAGES,
    Approval,
    Statement,
    StatementVersion,
)
from elshi.speak.translation import Translator  # noqa: F401 (plugins implement it)

MAX_TEXT = 20_000
MAX_TITLE = 300
MAX_COMMENT = 4_000
URGENT_APPROVALS = 2
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SpeakError(InvalidRequest):
    """A request cannot be done; the message says what and where, for a person.

    The message is a translatable template; `translated(gettext)` renders it in a language.
    """


class StatementNotFound(NotFound):
    """No statement with this id that the actor may see."""


class NotApproved(PermissionError):
    """The statement is not approved as it stands: nothing may reach a public channel."""


# ---------------------------------------------------------------------------- access


def _visible(actor: Principal, mission_id: int) -> bool:
    return actor.can("listen.read", mission_id)


def get_statement(*, db: Session, actor: Principal, statement_id: int) -> Statement:
    """Return a statement the actor may see, or raise StatementNotFound."""
    missing = StatementNotFound(f"no statement with id {statement_id}")
    return get_readable(db, Statement, statement_id, actor, missing)


def list_statements(
    *,
    db: Session,
    actor: Principal,
    status: str | None = None,
    mission_id: int | None = None,
    limit: int = 200,
) -> list[Statement]:
    """Return statements the actor may see, newest first."""
    q = select(Statement).order_by(Statement.updated_at.desc(), Statement.id.desc())
    q = scoped(q, Statement.mission_id, actor, "listen.read")
    if mission_id is not None:
        q = q.where(Statement.mission_id == mission_id)
    if status:
        q = q.where(Statement.status == status)
    return list(db.scalars(q.limit(limit)))


def approval_queue(*, db: Session, actor: Principal) -> list[Statement]:
    """Return submitted statements the actor may decide on (not their own), oldest first."""
    rows = list_statements(db=db, actor=actor, status="submitted")
    return sorted(
        (
            s
            for s in rows
            if actor.can("speak.approve", s.mission_id)
            and actor.user_id not in (s.submitted_by, s.created_by)
        ),
        key=lambda s: s.submitted_at or s.created_at,
    )


def versions_of(*, db: Session, statement_id: int) -> dict[str, StatementVersion]:
    """Return a statement's versions by language, in the order kk, ru, en, zh, ar."""
    rows = {
        v.lang: v
        for v in db.scalars(
            select(StatementVersion).where(StatementVersion.statement_id == statement_id)
        )
    }
    return {lang: rows[lang] for lang in STATEMENT_LANGUAGES if lang in rows}


def approvals_of(*, db: Session, statement_id: int) -> list[Approval]:
    """Return every decision on a statement, oldest first."""
    return list(
        db.scalars(
            select(Approval).where(Approval.statement_id == statement_id).order_by(Approval.id)
        )
    )


def missions_for(*, db: Session, actor: Principal, permission: str) -> list[Mission]:
    """Return the missions where the actor holds a permission, by name (for choosers)."""
    return [
        m for m in db.scalars(select(Mission).order_by(Mission.name)) if actor.can(permission, m.id)
    ]


def mission_of(*, db: Session, statement: Statement) -> Mission | None:
    """Return the mission a statement belongs to."""
    return db.get(Mission, statement.mission_id)


def _audit(db: Session, actor: Principal, action: str, st: Statement, **detail: Any) -> None:
    audit_by(actor, db, action, "statement", st.id, mission_id=st.mission_id, **detail)


# ---------------------------------------------------------------------------- the other parts
# The rest of the service lives in one module per section: writing, approval, channel_accounts,
# scheduling, reach (and audience), rebuttal, subscribers. `service.X` finds each of their
# names here, loaded on first use so that those modules can import this one.

_PARTS = (
    "writing",
    "approval",
    "channel_accounts",
    "scheduling",
    "reach",
    "rebuttal",
    "subscribers",
)

if TYPE_CHECKING:
    from elshi.speak.approval import *  # noqa: F403
    from elshi.speak.channel_accounts import *  # noqa: F403
    from elshi.speak.reach import *  # noqa: F403
    from elshi.speak.rebuttal import *  # noqa: F403
    from elshi.speak.scheduling import *  # noqa: F403
    from elshi.speak.subscribers import *  # noqa: F403
    from elshi.speak.writing import *  # noqa: F403


__getattr__ = forward_to(__package__, __name__, _PARTS)
