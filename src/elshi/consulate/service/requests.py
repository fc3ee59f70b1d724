"""A citizen's service requests: drafts, answers, submission, history and messages."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from elshi.consulate.models import (
    Document,
    Message,
    RequestEvent,
    ServiceRequest,
    ServiceType,
)
from elshi.consulate.service import (
    BAD_STATUS,
    EMPTY_MESSAGE,
    MISSING_DOCUMENT,
    STATUS_NAMES,
    Invalid,
    Problem,
    _invalid,
    clean_text,
)
from elshi.consulate.service.catalogue import get_service, parse_answers
from elshi.consulate.service.citizens import _own
from elshi.db import utcnow


def _event(
    db: Session,
    request: ServiceRequest,
    *,
    kind: str,
    actor_id: int | None,
    label: str,
    action: str,
    to_status: str | None = None,
    note: str = "",
    now: datetime | None = None,
) -> RequestEvent:
    event = RequestEvent(
        request_id=request.id,
        at=now or utcnow(),
        actor_kind=kind,
        actor_id=actor_id,
        actor_label=label,
        action=action,
        from_status=request.status if to_status else None,
        to_status=to_status,
        note=note,
    )
    db.add(event)
    if to_status:
        request.status = to_status
    request.updated_at = event.at
    return event


def _reference() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "C-" + "".join(secrets.choice(alphabet) for _ in range(10))


def create_draft(*, db: Session, citizen_id: int, service_type_id: int) -> ServiceRequest:
    """Start a draft request for a service."""
    service = get_service(db=db, service_type_id=service_type_id)
    request = ServiceRequest(
        reference=_reference(),
        citizen_id=citizen_id,
        mission_id=service.mission_id,
        service_type_id=service.id,
        status="draft",
        answers={},
    )
    db.add(request)
    db.flush()
    _event(db, request, kind="citizen", actor_id=citizen_id, label="", action="created")
    db.flush()
    return request


def citizen_request(*, db: Session, citizen_id: int, request_id: int) -> ServiceRequest:
    """Return one of the citizen's own requests, or raise NotFound."""
    return _own(db, ServiceRequest, request_id, citizen_id)


def citizen_requests(*, db: Session, citizen_id: int) -> list[ServiceRequest]:
    """Return the citizen's requests, newest first."""
    return list(
        db.scalars(
            select(ServiceRequest)
            .where(ServiceRequest.citizen_id == citizen_id)
            .order_by(ServiceRequest.id.desc())
        )
    )


def _editable(request: ServiceRequest) -> None:
    if request.status not in ("draft", "more_documents"):
        raise _invalid("status", BAD_STATUS, status=STATUS_NAMES[request.status])


def save_answers(
    *,
    db: Session,
    citizen_id: int,
    request_id: int,
    raw: Mapping[str, Any],
    complete: bool = False,
) -> ServiceRequest:
    """Save form answers of a draft (missing ones allowed unless `complete`, before submitting)."""
    request = citizen_request(db=db, citizen_id=citizen_id, request_id=request_id)
    _editable(request)
    service = db.get(ServiceType, request.service_type_id)
    assert service is not None
    request.answers = parse_answers(service, raw, complete=complete)
    request.updated_at = utcnow()
    db.flush()
    return request


def documents_of(*, db: Session, request_id: int) -> list[Document]:
    """Return a request's documents, oldest first."""
    return list(
        db.scalars(select(Document).where(Document.request_id == request_id).order_by(Document.id))
    )


def ready_to_submit(*, db: Session, citizen_id: int, request_id: int) -> ServiceRequest:
    """Return one of the citizen's requests that can be submitted as it is (its answers
    complete, its required documents there), or raise Invalid saying what is missing."""
    request = citizen_request(db=db, citizen_id=citizen_id, request_id=request_id)
    _editable(request)
    service = db.get(ServiceType, request.service_type_id)
    assert service is not None
    problems: list[Problem] = []
    try:
        parse_answers(service, request.answers, complete=True)
    except Invalid as exc:
        problems.extend(exc.problems)
    have = {d.kind for d in documents_of(db=db, request_id=request.id)}
    for doc in service.documents:
        if doc.get("required") and doc["slug"] not in have:
            problems.append(
                Problem(
                    doc["slug"], MISSING_DOCUMENT, {"name": doc["names"].get("en", doc["slug"])}
                )
            )
    if problems:
        raise Invalid(*problems)
    return request


def submit(
    *, db: Session, citizen_id: int, request_id: int, now: datetime | None = None
) -> ServiceRequest:
    """Submit a draft (or a request waiting for documents) after checking it is complete."""
    request = ready_to_submit(db=db, citizen_id=citizen_id, request_id=request_id)
    now = now or utcnow()
    resumed = request.status == "more_documents"
    target = "in_review" if resumed and request.assigned_to else "submitted"
    if request.submitted_at is None:
        request.submitted_at = now
    _event(
        db,
        request,
        kind="citizen",
        actor_id=citizen_id,
        label="",
        action="resubmitted" if resumed else "submitted",
        to_status=target,
        now=now,
    )
    db.flush()
    return request


def history(*, db: Session, request_id: int) -> list[RequestEvent]:
    """Return a request's events, oldest first."""
    return list(
        db.scalars(
            select(RequestEvent)
            .where(RequestEvent.request_id == request_id)
            .order_by(RequestEvent.at, RequestEvent.id)
        )
    )


def messages_of(*, db: Session, request_id: int) -> list[Message]:
    """Return a request's messages, oldest first."""
    return list(
        db.scalars(select(Message).where(Message.request_id == request_id).order_by(Message.id))
    )


def post_message(
    *, db: Session, request: ServiceRequest, kind: str, sender_id: int | None, label: str, body: Any
) -> Message:
    """Add a message to a request (the caller has checked access)."""
    text = clean_text("body", body, max_len=5000)
    if not text:
        raise _invalid("body", EMPTY_MESSAGE)
    row = Message(
        request_id=request.id, sender_kind=kind, sender_id=sender_id, sender_label=label, body=text
    )
    db.add(row)
    db.flush()
    return row


def citizen_document(*, db: Session, citizen_id: int, document_id: int) -> Document:
    """Return one of the citizen's own documents, or raise NotFound."""
    return _own(db, Document, document_id, citizen_id)
