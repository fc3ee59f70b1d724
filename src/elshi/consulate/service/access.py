"""Staff access to requests: the audit of every read, the queue, claim, ask and decide."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, TextClause, func, select
from sqlalchemy.orm import Session

from elshi.accounts import service as accounts
from elshi.accounts.service import PermissionDenied, Principal
from elshi.consulate.models import (
    Appointment,
    Citizen,
    Document,
    ServiceRequest,
    ServiceType,
    StaffAccess,
)
from elshi.consulate.service import (
    BAD_STATUS,
    NOTE_REQUIRED,
    OPEN_FILTER,
    REASON_REQUIRED,
    STATUS_NAMES,
    NotFound,
    _invalid,
    clean_text,
)
from elshi.consulate.service.requests import _event
from elshi.db import utcnow


def _by(actor: Principal) -> dict[str, Any]:
    """Who a staff member's event on a request is by (kind, id and label)."""
    return {"kind": "staff", "actor_id": actor.user_id, "label": actor.label}


#: What the audit calls each kind of row a staff member opens.
OBJECT_TYPES: dict[type, str] = {
    Citizen: "citizen",
    ServiceRequest: "service_request",
    Document: "document",
    Appointment: "appointment",
}


def record_access(
    *,
    db: Session,
    actor: Principal,
    row: Citizen | ServiceRequest | Document | Appointment,
    mission_id: int | None,
    action: str,
    fields: Sequence[str] = (),
    why: str = "",
) -> None:
    """Write what the citizen sees in 'who viewed my file' and the staff audit log.

    `row` is what the staff member opened: a citizen, or one of a citizen's rows (request,
    document, appointment). `fields` names the sealed personal data opened to show
    (why="page") or to hand out (why="export"): every such decryption is in the audit log
    with who and whose."""
    citizen_id = row.id if isinstance(row, Citizen) else row.citizen_id
    object_type = OBJECT_TYPES[type(row)]
    db.add(
        StaffAccess(
            citizen_id=citizen_id,
            user_id=actor.user_id,
            staff_label=actor.name or actor.label,
            mission_id=mission_id,
            action=action,
            object_type=object_type,
            object_id=row.id,
        )
    )
    accounts.audit_by(
        actor,
        db,
        f"consulate.{action}",
        object_type,
        row.id,
        mission_id=mission_id,
        **{"citizen_id": citizen_id} | ({"fields": list(fields), "why": why} if fields else {}),
    )


def _may(actor: Principal, permission: str, mission_id: int) -> bool:
    return actor.can(permission, mission_id)


#: Sealed personal data an officer's request page (and the API's) shows.
REQUEST_PAGE_FIELDS = ("citizen.phone", "service_request.answers", "consular_message.body")
#: Sealed personal data the district search shows (the number of companions).
SEARCH_FIELDS = ("citizen.phone", "registration.companions")


def staff_request(
    *, db: Session, actor: Principal, request_id: int, action: str = "view"
) -> ServiceRequest:
    """Return a request the officer may see (own mission or HQ); record the access."""
    row = db.get(ServiceRequest, request_id)
    if row is None or row.status == "draft" or not _may(actor, "consulate.read", row.mission_id):
        raise NotFound(f"request {request_id}")
    record_access(
        db=db,
        actor=actor,
        row=row,
        mission_id=row.mission_id,
        action=action,
        fields=REQUEST_PAGE_FIELDS if action == "view" else (),
        why="page",
    )
    return row


def staff_citizen(*, db: Session, actor: Principal, request: ServiceRequest) -> Citizen:
    """Return the applicant of a request the officer has opened."""
    citizen = db.get(Citizen, request.citizen_id)
    assert citizen is not None
    return citizen


def staff_document(*, db: Session, actor: Principal, document_id: int) -> Document:
    """Return a document of a request the officer may see; record the download."""
    row = db.get(Document, document_id)
    if row is None:
        raise NotFound(f"document {document_id}")
    request = db.get(ServiceRequest, row.request_id)
    if (
        request is None
        or request.status == "draft"
        or not _may(actor, "consulate.read", request.mission_id)
    ):
        raise NotFound(f"document {document_id}")
    record_access(
        db=db,
        actor=actor,
        row=row,
        mission_id=request.mission_id,
        action="download",
    )
    return row


def _acting_request(db: Session, actor: Principal, request_id: int) -> ServiceRequest:
    row = staff_request(db=db, actor=actor, request_id=request_id, action="change")
    if not _may(actor, "consulate.act", row.mission_id):
        raise PermissionDenied("consulate.act: needs role consular or admin")
    return row


@dataclass
class QueueRow:
    """One line of the officer's queue (no personal data: reference, service, status, age)."""

    id: int
    reference: str
    service: str
    status: str
    submitted_at: datetime | None
    updated_at: datetime
    assigned_to: int | None
    mission_id: int


def queue(
    *,
    db: Session,
    actor: Principal,
    status: str | None = None,
    service_type_id: int | None = None,
    older_than_days: int | None = None,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
) -> tuple[int, list[QueueRow]]:
    """Return submitted requests of the officer's missions, oldest first, with a total."""
    if not actor.can_somewhere("consulate.read"):
        raise PermissionDenied("consulate.read: needs role consular, ambassador or admin")
    scope: list[ColumnElement[bool] | TextClause] = [ServiceRequest.status != "draft"]
    missions = actor.missions_where("consulate.read")
    if missions is not None:
        scope.append(ServiceRequest.mission_id.in_(missions))
    # The open filter is the literal predicate of the partial indexes that keep the default
    # queue in order: a bound parameter would hide the match from the planner.
    scope.append(ServiceRequest.status == status if status else OPEN_FILTER)
    if service_type_id:
        scope.append(ServiceRequest.service_type_id == service_type_id)
    if older_than_days:
        cutoff = (now or utcnow()) - timedelta(days=older_than_days)
        scope.append(ServiceRequest.submitted_at <= cutoff)
    total = db.scalar(select(func.count()).select_from(ServiceRequest).where(*scope)) or 0
    rows = db.execute(
        select(
            ServiceRequest.id,
            ServiceRequest.reference,
            ServiceType.slug,
            ServiceRequest.status,
            ServiceRequest.submitted_at,
            ServiceRequest.updated_at,
            ServiceRequest.assigned_to,
            ServiceRequest.mission_id,
        )
        .join(ServiceType, ServiceType.id == ServiceRequest.service_type_id)
        .where(*scope)
        .order_by(ServiceRequest.submitted_at, ServiceRequest.id)
        .limit(limit)
        .offset(offset)
    )
    return total, [QueueRow(*r) for r in rows]


def claim(*, db: Session, actor: Principal, request_id: int) -> ServiceRequest:
    """Take a submitted request into review."""
    row = _acting_request(db, actor, request_id)
    if row.status != "submitted":
        raise _invalid("status", BAD_STATUS, status=STATUS_NAMES[row.status])
    row.assigned_to = actor.user_id
    _event(db, row, **_by(actor), action="claimed", to_status="in_review")
    db.flush()
    return row


def ask_documents(*, db: Session, actor: Principal, request_id: int, note: Any) -> ServiceRequest:
    """Send a request back to the applicant asking for more documents."""
    row = _acting_request(db, actor, request_id)
    text = clean_text("note", note, max_len=2000)
    if not text:
        raise _invalid("note", NOTE_REQUIRED)
    if row.status not in ("submitted", "in_review"):
        raise _invalid("status", BAD_STATUS, status=STATUS_NAMES[row.status])
    row.assigned_to = row.assigned_to or actor.user_id
    _event(
        db,
        row,
        **_by(actor),
        action="asked_documents",
        to_status="more_documents",
        note=text,
    )
    db.flush()
    return row


def decide(
    *, db: Session, actor: Principal, request_id: int, approve: bool, reason: Any
) -> ServiceRequest:
    """Approve or reject a request under review; a rejection needs a reason."""
    row = _acting_request(db, actor, request_id)
    text = clean_text("reason", reason, max_len=2000)
    if not approve and not text:
        raise _invalid("reason", REASON_REQUIRED)
    if row.status not in ("submitted", "in_review"):
        raise _invalid("status", BAD_STATUS, status=STATUS_NAMES[row.status])
    now = utcnow()
    row.reason = text
    row.decided_at = now
    row.assigned_to = row.assigned_to or actor.user_id
    _event(
        db,
        row,
        **_by(actor),
        action="approved" if approve else "rejected",
        to_status="approved" if approve else "rejected",
        note=text,
        now=now,
    )
    db.flush()
    return row
