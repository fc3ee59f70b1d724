"""Retention: purge what is kept longer than the settings allow."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from elshi.consulate.models import (
    DECIDED_STATUSES,
    Citizen,
    CitizenToken,
    Document,
    Registration,
    ServiceRequest,
    StaffAccess,
)
from elshi.consulate.service.stays import expire_stays
from elshi.db import utcnow


@dataclass(frozen=True)
class Retention:
    """How long each kind of record is kept, in days."""

    registration: int
    request: int
    document: int
    draft: int
    access_log: int
    unverified: int


@dataclass
class PurgeReport:
    """What a purge removed, and the stored files to delete once it is committed."""

    counts: dict[str, int] = field(default_factory=dict)
    storage_keys: list[str] = field(default_factory=list)


def _doc_keys(db: Session, where: Any) -> tuple[list[int], list[str]]:
    rows = db.execute(select(Document.id, Document.storage_key).where(where)).all()
    return [r[0] for r in rows], [r[1] for r in rows]


def purge(*, db: Session, retention: Retention, now: datetime | None = None) -> PurgeReport:
    """Delete records past their retention period; return counts and files to delete."""
    now = now or utcnow()
    report = PurgeReport()
    report.counts["expired_stays"] = expire_stays(db=db, today=now.date())

    def gone(name: str, stmt: Any) -> None:
        report.counts[name] = int(db.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]

    old_requests = select(ServiceRequest.id).where(
        or_(
            ServiceRequest.decided_at < now - timedelta(days=retention.request),
            (ServiceRequest.status == "draft")
            & (ServiceRequest.updated_at < now - timedelta(days=retention.draft)),
        )
    )
    decided_long_ago = select(ServiceRequest.id).where(
        ServiceRequest.status.in_(DECIDED_STATUSES),
        ServiceRequest.decided_at < now - timedelta(days=retention.document),
    )
    unverified = select(Citizen.id).where(
        Citizen.email_verified_at.is_(None),
        Citizen.created_at < now - timedelta(days=retention.unverified),
    )
    ids, keys = _doc_keys(
        db,
        or_(
            Document.request_id.in_(old_requests),
            Document.request_id.in_(decided_long_ago),
            Document.citizen_id.in_(unverified),
        ),
    )
    report.storage_keys = keys
    if ids:
        gone("documents", delete(Document).where(Document.id.in_(ids)))
    else:
        report.counts["documents"] = 0
    gone("requests", delete(ServiceRequest).where(ServiceRequest.id.in_(old_requests)))
    gone(
        "registrations",
        delete(Registration).where(
            Registration.leave_on < (now - timedelta(days=retention.registration)).date()
        ),
    )
    gone(
        "access_log",
        delete(StaffAccess).where(StaffAccess.at < now - timedelta(days=retention.access_log)),
    )
    gone("unverified_accounts", delete(Citizen).where(Citizen.id.in_(unverified)))
    gone("tokens", delete(CitizenToken).where(CitizenToken.expires_at < now))
    return report
