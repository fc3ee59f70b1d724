"""Consular officers' pages: queue, requests, slots, the day's appointments, search."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, timedelta
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from elshi.accounts.service import PermissionDenied, Principal
from elshi.consulate import flows, service
from elshi.consulate.models import ServiceRequest, ServiceType, Slot
from elshi.consulate.views.common import (
    OfficerMission,
    _back,
    _download,
    _forbidden,
    _not_found,
    _officer_form,
    _officer_mission,
    _officer_page,
    _problems,
    staff,
)
from elshi.db import utcnow
from elshi.web.actions import FormAction, StaffForm, text_fields
from elshi.web.bounds import Id, QueryId, parse_date
from elshi.web.deps import DbSession, StaffUser
from elshi.web.templating import (
    render,
    settings_of,
)

QUEUE_PAGE = 50


@dataclass(frozen=True)
class QueueAsked:
    """What the officers' queue page and the queue API are asked for: status, service, age
    in days and page (bounded to 1..10000)."""

    status: str
    service_type: int
    older: int
    page: int

    def known_status(self) -> bool:
        """Return True when no status is asked for, or one that exists."""
        return not self.status or self.status in service.STATUS_NAMES

    def rows(self, db: Session, principal: Principal) -> tuple[int, list[service.QueueRow]]:
        """One page of the queue and the total (raises PermissionDenied for other roles)."""
        return service.queue(
            db=db,
            actor=principal,
            status=self.status or None,
            service_type_id=self.service_type or None,
            older_than_days=max(0, min(self.older, 3650)) or None,
            limit=QUEUE_PAGE,
            offset=(self.page - 1) * QUEUE_PAGE,
        )


def queue_asked(
    status: str = "", service_type: QueryId = 0, older: int = 0, page: int = 1
) -> QueueAsked:
    """Read the queue's query parameters (shared by the page and the API)."""
    return QueueAsked(status, service_type, older, max(1, min(page, 10_000)))


QueueQuery = Annotated[QueueAsked, Depends(queue_asked)]


@staff.get("")
def queue(request: Request, db: DbSession, principal: StaffUser, asked: QueueQuery) -> Response:
    """The queue of requests by service, status and age."""
    if not asked.known_status():
        asked = replace(asked, status="")
    try:
        total, rows = asked.rows(db, principal)
    except PermissionDenied:
        return _forbidden(request)
    kinds = service.service_names(db=db, mission_ids=principal.missions_where("consulate.read"))
    return _officer_page(
        request,
        "queue.html",
        rows=rows,
        total=total,
        page=asked.page,
        filters={
            "status": asked.status,
            "service_type": asked.service_type,
            "older": asked.older,
        },
        kinds=kinds,
        service_titles={k.slug: k.names for k in kinds.values()},
        now=utcnow(),
    )


@staff.get("/requests/{request_id}")
def officer_request(
    request: Request, db: DbSession, principal: StaffUser, request_id: Id
) -> Response:
    """One request with the applicant's answers and documents (the view is recorded)."""
    try:
        req = service.staff_request(db=db, actor=principal, request_id=request_id)
    except service.NotFound:
        return _not_found(request)
    db.commit()
    return _officer_request_page(request, db, principal, req)


def _officer_request_page(
    request: Request,
    db: Session,
    principal: Any,
    req: ServiceRequest,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> Response:
    return _officer_page(
        request,
        "officer_request.html",
        status,
        req=req,
        kind=db.get(ServiceType, req.service_type_id),
        applicant=service.staff_citizen(db=db, actor=principal, request=req),
        docs=service.documents_of(db=db, request_id=req.id),
        events=service.history(db=db, request_id=req.id),
        messages=service.messages_of(db=db, request_id=req.id),
        can_act=principal.can("consulate.act", req.mission_id),
        errors=errors or {},
    )


@staff.post("/requests/{request_id}/{action}")
def officer_action(
    act: StaffForm, request_id: Id, action: str, note: Annotated[str, Form(max_length=10000)] = ""
) -> Response:
    """Claim, ask for documents, approve, reject, or write to the applicant."""
    request = act.request
    settings = settings_of(request)
    who: dict[str, Any] = {
        "db": act.db,
        "settings": settings,
        "actor": act.principal,
        "request_id": request_id,
    }
    actions: dict[str, tuple[Callable[[], Any], str]] = {
        "claim": (lambda: flows.claim_request(**who), "claimed"),
        "ask": (lambda: flows.ask_for_documents(**who, note=note), "asked"),
        "approve": (lambda: flows.decide_request(**who, approve=True, reason=note), "decided"),
        "reject": (lambda: flows.decide_request(**who, approve=False, reason=note), "decided"),
        "message": (lambda: flows.staff_message(**who, body=note)[1], "sent"),
    }

    def change() -> Any:
        if action not in actions:
            raise service.NotFound(action)
        return actions[action][0]()

    def refused(exc: service.Invalid) -> Response:
        req = service.staff_request(db=act.db, actor=act.principal, request_id=request_id)
        act.db.commit()  # the view of the request is recorded
        errors = _problems(request, exc)
        return _officer_request_page(request, act.db, act.principal, req, status=400, errors=errors)

    return _officer_form(
        act,
        change,
        invalid=refused,
        done=lambda _: _back(f"/consular/requests/{request_id}", actions[action][1]),
    )


@staff.get("/documents/{document_id}")
def officer_document(
    request: Request, db: DbSession, principal: StaffUser, document_id: Id
) -> Response:
    """Download an applicant's document (recorded)."""
    try:
        doc = service.staff_document(db=db, actor=principal, document_id=document_id)
    except service.NotFound:
        return _not_found(request)
    db.commit()
    return _download(doc, settings_of(request))


def _day(value: str) -> date | None:
    """The day asked for (today when none), or None when it is not a date (or out of range)."""
    return parse_date(value[:10]) if value else utcnow().date()


def _bad_day(request: Request) -> Response:
    return render(request, "error.html", {"message": service.BAD_DATE}, status=400)


@staff.get("/slots")
def slots_page(
    request: Request,
    db: DbSession,
    principal: StaffUser,
    mission_id: OfficerMission,
    week: str = "",
) -> Response:
    """The slot calendar of a mission, a week at a time."""
    start = _day(week)
    if start is None:
        return _bad_day(request)
    zone = service.mission_zone(db=db, mission_id=mission_id)
    try:
        rows = service.slots_between(
            db=db,
            actor=principal,
            mission_id=mission_id,
            start=service.local_day(start, zone)[0],
            end=service.local_day(start + timedelta(days=6), zone)[1],
        )
    except PermissionDenied:
        return _forbidden(request)
    days: dict[date, list[Slot]] = {}
    for row in rows:
        days.setdefault(row.starts_at.astimezone(zone).date(), []).append(row)
    return _officer_page(
        request,
        "slots.html",
        days=days,
        zone=zone,
        start=start,
        prev=start - timedelta(days=7),
        next=start + timedelta(days=7),
        mission_id=mission_id,
        kinds=service.services(db=db, mission_id=mission_id),
        values={
            "day": start.isoformat(),
            "start": "09:00",
            "count": "8",
            "minutes": "15",
            "capacity": "1",
        },
    )


@staff.post("/slots")
def slots_add(
    request: Request,
    db: DbSession,
    principal: StaffUser,
    raw: Annotated[dict[str, str], text_fields(20)],
) -> Response:
    """Open slots on a day."""
    asked = raw.get("mission_id", "")
    kind = raw.get("service_type_id", "")

    mission_id = _officer_mission(principal, db, int(asked or 0) if asked.isdigit() else 0)

    def change() -> Any:
        if mission_id is None:
            raise service.NotFound("mission")
        return service.add_slots(
            db=db,
            actor=principal,
            mission_id=mission_id,
            day=raw.get("day"),
            start=raw.get("start"),
            count=raw.get("count"),
            minutes=raw.get("minutes"),
            capacity=raw.get("capacity"),
            service_type_id=int(kind) if kind.isdigit() else None,
        )

    def refused(exc: service.Invalid) -> Response:
        start = _day(raw.get("day", "")) or utcnow().date()
        return _officer_page(
            request,
            "slots.html",
            400,
            days={},
            zone=service.mission_zone(db=db, mission_id=mission_id or 0),
            start=start,
            prev=start - timedelta(days=7),
            next=start + timedelta(days=7),
            mission_id=mission_id,
            kinds=service.services(db=db, mission_id=mission_id or 0),
            values=raw,
            errors=_problems(request, exc),
        )

    day = raw.get("day", "")
    return _officer_form(
        FormAction(request, db, raw.get("csrf_token")),
        change,
        invalid=refused,
        done=lambda _: _back(f"/consular/slots?mission={mission_id}&week={day}", "slots"),
    )


@staff.get("/appointments")
def day_page(
    request: Request, db: DbSession, principal: StaffUser, mission_id: OfficerMission, day: str = ""
) -> Response:
    """The appointments of one day (names seen are recorded for each citizen)."""
    chosen = _day(day)
    if chosen is None:
        return _bad_day(request)
    try:
        rows = service.day_list(db=db, actor=principal, mission_id=mission_id, day=chosen)
    except PermissionDenied:
        return _forbidden(request)
    db.commit()
    return _officer_page(
        request,
        "day.html",
        rows=rows,
        zone=service.mission_zone(db=db, mission_id=mission_id),
        day=chosen,
        prev=chosen - timedelta(days=1),
        next=chosen + timedelta(days=1),
        mission_id=mission_id,
    )


@staff.post("/appointments/{appointment_id}/{status}")
def mark(act: StaffForm, appointment_id: Id, status: str) -> Response:
    """Mark an appointment attended or no-show."""

    def done(result: Any) -> Response:
        slot = act.db.get(Slot, result.slot_id)
        zone = service.mission_zone(db=act.db, mission_id=slot.mission_id) if slot else UTC
        day = slot.starts_at.astimezone(zone).date().isoformat() if slot else ""
        mission = slot.mission_id if slot else 0
        return _back(f"/consular/appointments?day={day}&mission={mission}", "marked")

    return _officer_form(
        act,
        lambda: service.mark_appointment(
            db=act.db, actor=act.principal, appointment_id=appointment_id, status=status
        ),
        done=done,
    )


@staff.get("/search")
def search(request: Request, db: DbSession, principal: StaffUser, q: str = "") -> Response:
    """Find citizens and their registrations in the officer's consular district."""
    hits: list[service.SearchHit] = []
    errors: dict[str, str] = {}
    if q.strip():
        try:
            hits = service.search_district(db=db, actor=principal, q=q)
        except service.Invalid as exc:
            errors = _problems(request, exc)
        except PermissionDenied:
            return _forbidden(request)
        db.commit()
    return _officer_page(
        request, "search.html", 400 if errors else 200, q=q, hits=hits, errors=errors
    )
