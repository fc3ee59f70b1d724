"""The e-consulate's JSON API for citizens (own data) and officers (queue, requests)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from elshi.accounts.service import PermissionDenied
from elshi.consulate import service
from elshi.consulate.models import Citizen, ServiceRequest, Slot
from elshi.consulate.schemas import (
    AppointmentOut,
    DocumentOut,
    EventOut,
    MeOut,
    MessageOut,
    QueueOut,
    QueueRowOut,
    RequestOut,
    RequestSummaryOut,
    StaffRequestOut,
    StayOut,
)
from elshi.consulate.views.common import api, current_citizen
from elshi.consulate.views.officers import QueueQuery
from elshi.web.bounds import Id
from elshi.web.deps import DbSession, StaffUser, get_db


def require_citizen_api(request: Request, db: Annotated[Session, Depends(get_db)]) -> Citizen:
    """Allow only a signed-in citizen (the e-consulate's session cookie); else 401."""
    citizen = current_citizen(request, db)
    if citizen is None:
        raise HTTPException(401, "sign in to the e-consulate first (/consulate/login)")
    db.commit()
    return citizen


CitizenApi = Annotated[Citizen, Depends(require_citizen_api)]


def _appointments_out(db: Session, pairs: list[tuple[Any, Slot]]) -> list[AppointmentOut]:
    zones = service.mission_zones(db=db, ids={slot.mission_id for _, slot in pairs})
    return [
        AppointmentOut(
            id=a.id,
            request_id=a.request_id,
            mission_id=slot.mission_id,
            status=a.status,
            starts_at=slot.starts_at,
            local_start=slot.starts_at.astimezone(zones[slot.mission_id]),
            timezone=zones[slot.mission_id].key,
            minutes=slot.minutes,
        )
        for a, slot in pairs
    ]


def _summaries(db: Session, rows: list[ServiceRequest]) -> list[RequestSummaryOut]:
    kinds = service.service_types(db=db, ids={r.service_type_id for r in rows})
    own = [name for name in RequestSummaryOut.model_fields if name != "service"]
    return [
        RequestSummaryOut(
            service=kinds[r.service_type_id].slug, **{name: getattr(r, name) for name in own}
        )
        for r in rows
    ]


def _detail(db: Session, req: ServiceRequest, pairs: list[tuple[Any, Slot]]) -> dict[str, Any]:
    return {
        **_summaries(db, [req])[0].model_dump(),
        "answers": req.answers,
        "reason": req.reason,
        "documents": [
            DocumentOut.model_validate(d) for d in service.documents_of(db=db, request_id=req.id)
        ],
        "history": [EventOut.model_validate(e) for e in service.history(db=db, request_id=req.id)],
        "messages": [
            MessageOut.model_validate(m) for m in service.messages_of(db=db, request_id=req.id)
        ],
        "appointments": _appointments_out(db, [(a, s) for a, s in pairs if a.request_id == req.id]),
    }


@api.get("/me", response_model=MeOut, summary="The signed-in citizen's own data")
def api_me(db: DbSession, citizen: CitizenApi) -> MeOut:
    """Stays, requests and appointments of the citizen signed in to the e-consulate."""
    return MeOut(
        name=citizen.name,
        email=citizen.email,
        lang=citizen.lang,
        stays=[
            StayOut.model_validate(r) for r in service.citizen_stays(db=db, citizen_id=citizen.id)
        ],
        requests=_summaries(db, service.citizen_requests(db=db, citizen_id=citizen.id)),
        appointments=_appointments_out(
            db, service.citizen_appointments(db=db, citizen_id=citizen.id)
        ),
    )


@api.get("/me/requests/{request_id}", response_model=RequestOut, summary="One of my requests")
def api_my_request(request_id: Id, db: DbSession, citizen: CitizenApi) -> RequestOut:
    """One of the citizen's own requests in full; another's id answers 404, like a missing one."""
    try:
        req = service.citizen_request(db=db, citizen_id=citizen.id, request_id=request_id)
    except service.NotFound:
        raise HTTPException(404, f"no request {request_id} of yours") from None
    pairs = service.citizen_appointments(db=db, citizen_id=citizen.id)
    return RequestOut(**_detail(db, req, pairs))


@api.get("/queue", response_model=QueueOut, summary="The officers' queue")
def api_queue(db: DbSession, principal: StaffUser, asked: QueueQuery) -> QueueOut:
    """Requests of the caller's missions by status (default: open), service and age, 50 a page."""
    if not asked.known_status():
        raise HTTPException(422, f"status: one of {', '.join(service.STATUS_NAMES)}")
    try:
        total, rows = asked.rows(db, principal)
    except PermissionDenied:
        raise HTTPException(403, "needs role consular, ambassador or admin") from None
    return QueueOut(
        total=total, page=asked.page, rows=[QueueRowOut.model_validate(r) for r in rows]
    )


@api.get("/requests/{request_id}", response_model=StaffRequestOut, summary="A request (officers)")
def api_staff_request(request_id: Id, db: DbSession, principal: StaffUser) -> StaffRequestOut:
    """A request of the caller's missions with its applicant; the read is recorded for them."""
    try:
        req = service.staff_request(db=db, actor=principal, request_id=request_id)
    except service.NotFound:
        raise HTTPException(404, f"no request {request_id} in your missions") from None
    applicant = service.staff_citizen(db=db, actor=principal, request=req)
    pairs = service.request_appointments(db=db, request_id=req.id)
    out = StaffRequestOut(
        **_detail(db, req, pairs), applicant_name=applicant.name, applicant_email=applicant.email
    )
    db.commit()
    return out
