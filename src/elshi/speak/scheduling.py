"""Scheduling publications of a statement, and the calendar."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from elshi.accounts.service import Principal, authorize, scoped
from elshi.db import utcnow
from elshi.speak.approval import assert_publishable
from elshi.speak.channel_accounts import account_languages, length_checks, list_accounts
from elshi.speak.models import (
    Publication,
    Statement,
)
from elshi.speak.service import SpeakError, _audit, get_statement, versions_of
from elshi.web.i18n import N_

# ---------------------------------------------------------------------------- scheduling


def local_to_utc(local: datetime, tz: str) -> datetime:
    """Turn a wall-clock time in the audience's time zone into UTC."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise SpeakError(
            N_("Time zone %(tz)s is not known: use a name like Asia/Almaty."), tz=tz
        ) from None
    return local.replace(tzinfo=zone).astimezone(UTC)


def schedule(
    *,
    db: Session,
    actor: Principal,
    statement_id: int,
    account_ids: list[int],
    at: datetime | None = None,
    tz: str = "UTC",
) -> list[Publication]:
    """Plan an approved statement on channel accounts: at `at` (wall clock in `tz`) or now.

    One publication per version per account, each with its idempotency key, is written now.
    A version too long for an account is recorded as failed with the reason, and the others
    go ahead.
    """
    st = get_statement(db=db, actor=actor, statement_id=statement_id)
    authorize(actor, "speak.draft", mission_id=st.mission_id)
    assert_publishable(db=db, statement=st)
    if not account_ids:
        raise SpeakError(N_("Channels: choose at least one."))
    due = utcnow() if at is None else local_to_utc(at, tz)
    accounts = [a for a in list_accounts(db=db, actor=actor) if a.id in set(account_ids)]
    missing = set(account_ids) - {a.id for a in accounts}
    if missing:
        raise SpeakError(
            N_("Channels: no account %(ids)s."), ids=", ".join(map(str, sorted(missing)))
        )
    wrong = [a.name for a in accounts if a.mission_id != st.mission_id or not a.enabled]
    if wrong:
        raise SpeakError(
            N_("Channels not usable for this mission: %(names)s."), names=", ".join(wrong)
        )
    checks = length_checks(db=db, statement_id=st.id, accounts=accounts)
    versions = versions_of(db=db, statement_id=st.id)
    existing = {
        (p.version_id, p.account_id): p
        for p in db.scalars(select(Publication).where(Publication.statement_id == st.id))
    }
    out = []
    for a in accounts:
        for lang, v in versions.items():
            if lang not in account_languages(a):
                continue
            pub = existing.get((v.id, a.id))
            if pub is not None:
                if pub.status == "pending":
                    pub.due_at = due
                out.append(pub)
                continue
            pub = Publication(
                statement_id=st.id,
                version_id=v.id,
                account_id=a.id,
                channel=a.channel,
                lang=lang,
                text=v.text_for(a.channel),
                idempotency_key=uuid.uuid4().hex,
                due_at=due,
            )
            check = checks.get((lang, a.id))
            if check is not None and not check.ok:
                pub.status = "failed"
                pub.error_kind = "too_long"
                pub.error = f"{check.length} of {check.limit} characters"
                pub.error_detail = {"length": check.length, "limit": check.limit}
            db.add(pub)
            out.append(pub)
    st.scheduled_at = due
    st.schedule_tz = tz if at is not None else st.schedule_tz
    st.updated_at = utcnow()
    db.flush()
    _audit(db, actor, "statement.schedule", st, at=due.isoformat(), accounts=sorted(account_ids))
    return out


def publications_of(*, db: Session, statement_id: int) -> list[Publication]:
    """Return a statement's publications."""
    return list(
        db.scalars(
            select(Publication)
            .where(Publication.statement_id == statement_id)
            .order_by(Publication.account_id, Publication.lang)
        )
    )


def due_now(*, db: Session, statement_id: int) -> list[int]:
    """Return the ids of a statement's publications that wait and are due already."""
    now = datetime.now(UTC)
    return [
        p.id
        for p in publications_of(db=db, statement_id=statement_id)
        if p.status == "pending" and p.due_at <= now
    ]


def list_publications(
    *,
    db: Session,
    actor: Principal,
    status: str | None = None,
    limit: int = 100,
) -> list[Publication]:
    """Return recent publications the actor may see."""
    q = select(Publication).join(Statement, Statement.id == Publication.statement_id)
    q = scoped(q, Statement.mission_id, actor, "listen.read")
    if status:
        q = q.where(Publication.status == status)
    return list(db.scalars(q.order_by(Publication.id.desc()).limit(limit)))


def get_publication(*, db: Session, actor: Principal, publication_id: int) -> Publication:
    """Return a publication the actor may see."""
    pub = db.get(Publication, publication_id)
    if pub is None:
        raise LookupError(f"no publication with id {publication_id}")
    get_statement(db=db, actor=actor, statement_id=pub.statement_id)
    return pub


def calendar(
    *, db: Session, actor: Principal, mission_id: int | None, month: date
) -> dict[date, list[Statement]]:
    """Return the statements planned or published in a month, by day (UTC)."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    q = select(Statement).where(Statement.scheduled_at >= start, Statement.scheduled_at < end)
    q = scoped(q, Statement.mission_id, actor, "listen.read")
    if mission_id is not None:
        q = q.where(Statement.mission_id == mission_id)
    days: dict[date, list[Statement]] = {}
    for st in db.scalars(q.order_by(Statement.scheduled_at)):
        assert st.scheduled_at is not None
        days.setdefault(st.scheduled_at.date(), []).append(st)
    return days


__all__ = [
    "calendar",
    "due_now",
    "get_publication",
    "list_publications",
    "local_to_utc",
    "publications_of",
    "schedule",
]
