"""The citizen's own data: who of the staff saw it, and everything stored, as JSON."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from elshi.accounts import service as accounts
from elshi.consulate.models import (
    StaffAccess,
)
from elshi.consulate.service.appointments import citizen_appointments
from elshi.consulate.service.citizens import get_citizen
from elshi.consulate.service.requests import citizen_requests, documents_of, history, messages_of
from elshi.consulate.service.stays import citizen_stays


def access_log(*, db: Session, citizen_id: int, limit: int = 500) -> list[StaffAccess]:
    """Return every recorded staff access to the citizen's data, newest first."""
    return list(
        db.scalars(
            select(StaffAccess)
            .where(StaffAccess.citizen_id == citizen_id)
            .order_by(StaffAccess.at.desc(), StaffAccess.id.desc())
            .limit(limit)
        )
    )


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def _row(obj: Any, columns: Iterable[str]) -> dict[str, Any]:
    return {c: _iso(getattr(obj, c)) for c in columns}


#: Sealed personal data the citizen's own data export holds.
EXPORT_FIELDS = (
    "citizen.phone",
    "registration.address",
    "registration.phone",
    "registration.emergency_contact",
    "registration.companions",
    "service_request.answers",
    "consular_message.body",
)


def export_citizen(*, db: Session, citizen_id: int) -> dict[str, Any]:
    """Return everything stored about a citizen as JSON-ready data (no secrets).

    The export opens the citizen's sealed data, so it is in the audit log (reading one's own
    pages is not: that would only bury the log)."""
    citizen = get_citizen(db=db, citizen_id=citizen_id)
    requests = citizen_requests(db=db, citizen_id=citizen_id)
    accounts.audit(
        db=db,
        action="citizen.export",
        object_type="citizen",
        object_id=citizen_id,
        actor_label="citizen",
        detail={"citizen_id": citizen_id, "fields": list(EXPORT_FIELDS), "why": "export"},
    )
    return {
        "account": _row(
            citizen,
            ("id", "email", "name", "phone", "lang", "email_verified_at", "created_at"),
        )
        | {"totp_enabled": bool(citizen.totp_secret)},
        "registrations": [
            _row(
                r,
                (
                    "id",
                    "mission_id",
                    "country_code",
                    "city",
                    "address",
                    "arrive_on",
                    "leave_on",
                    "phone",
                    "emergency_contact",
                    "companions",
                    "status",
                    "confirmed_at",
                    "created_at",
                ),
            )
            for r in citizen_stays(db=db, citizen_id=citizen_id)
        ],
        "requests": [
            _row(
                r,
                (
                    "id",
                    "reference",
                    "mission_id",
                    "service_type_id",
                    "status",
                    "answers",
                    "reason",
                    "created_at",
                    "submitted_at",
                    "decided_at",
                ),
            )
            | {
                "history": [
                    _row(e, ("at", "actor_kind", "action", "from_status", "to_status", "note"))
                    for e in history(db=db, request_id=r.id)
                ],
                "documents": [
                    _row(
                        d,
                        ("id", "kind", "filename", "content_type", "size", "sha256", "created_at"),
                    )
                    for d in documents_of(db=db, request_id=r.id)
                ],
                "messages": [
                    _row(m, ("sender_kind", "sender_label", "body", "created_at"))
                    for m in messages_of(db=db, request_id=r.id)
                ],
            }
            for r in requests
        ],
        "appointments": [
            _row(a, ("id", "request_id", "status", "created_at")) | {"starts_at": _iso(s.starts_at)}
            for a, s in citizen_appointments(db=db, citizen_id=citizen_id)
        ],
        "staff_access": [
            _row(x, ("at", "staff_label", "mission_id", "action", "object_type", "object_id"))
            for x in access_log(db=db, citizen_id=citizen_id, limit=100_000)
        ],
    }
