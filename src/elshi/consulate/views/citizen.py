"""The citizen's own pages: stays, requests, documents, messages, appointments, data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from elshi.consulate import advisories, countries, documents, flows, service
from elshi.consulate.models import Citizen, ServiceRequest, ServiceType
from elshi.consulate.views.common import (
    ACCESS_ACTIONS,
    UPLOAD_TOO_BIG,
    CitizenAction,
    CitizenForm,
    CitizenUser,
    _back,
    _citizen_form,
    _download,
    _not_found,
    _page,
    _problems,
    _t,
    router,
)
from elshi.crisis.telegram import link_url as telegram_link_url
from elshi.db import utcnow
from elshi.missions.models import Mission
from elshi.web.actions import CHECKED, FormAction, Refusal, text_fields
from elshi.web.bounds import Id, QueryId
from elshi.web.deps import DbSession
from elshi.web.forms import read_upload
from elshi.web.templating import request_language, settings_of


@router.get("/home")
def home(request: Request, db: DbSession, citizen: CitizenUser) -> Response:
    """Stays, requests and appointments of the signed-in citizen."""
    now = utcnow()
    today = now.date()
    requests = service.citizen_requests(db=db, citizen_id=citizen.id)
    appointments = service.citizen_appointments(db=db, citizen_id=citizen.id)
    stays = service.citizen_stays(db=db, citizen_id=citizen.id)
    period = settings_of(request).stay_reminder_unconfirmed_days
    return _page(
        request,
        "home.html",
        stays=stays,
        confirm_due={
            s.id for s in stays if service.confirmation_due(s, now=now, unconfirmed_days=period)
        },
        requests=requests,
        appointments=appointments,
        zones=service.mission_zones(db=db, ids={s.mission_id for _, s in appointments}),
        services=service.service_types(db=db, ids={r.service_type_id for r in requests}),
        today=today,
        telegram_link=telegram_link_url(settings_of(request), citizen.id),
        followed=advisories.follows(db, citizen.id),
    )


#: What the stay form sends, kept in the check-your-answers page to go back or register.
STAY_FIELDS = (
    "mission_id",
    "country_code",
    "city",
    "address",
    "arrive_on",
    "leave_on",
    "phone",
    "emergency_contact",
    *(f"companion_{i}_{part}" for i in range(3) for part in ("name", "relation")),
)


def _stay_form(
    request: Request,
    db: Session,
    values: dict[str, Any],
    status: int = 200,
    *,
    errors: dict[str, str] | None = None,
    focus: str | None = None,
) -> Response:
    missions = service.consular_missions(db=db)
    return _page(
        request,
        "stay.html",
        status,
        values=values,
        mission_options=[(m.id, m.name) for m in missions],
        companions=range(3),
        errors=errors or {},
        focus=focus,
    )


@router.get("/stays/new")
def stay_page(request: Request, db: DbSession, citizen: CitizenUser) -> Response:
    """The form to register a stay abroad."""
    return _stay_form(request, db, {"phone": citizen.phone})


@router.post("/stays/new")
def stay_new(
    request: Request,
    db: DbSession,
    citizen: CitizenUser,
    raw: Annotated[dict[str, str], text_fields(200)],
) -> Response:
    """Check a stay form and show the answers to check (step "check"), go back to the form at
    one answer ("change"), or register the stay (step "register")."""
    values = {k: raw[k] for k in STAY_FIELDS if k in raw}
    if code := countries.resolve(values.get("country_code")):
        values["country_code"] = code  # a name from the enhanced picker: its list shows codes
    step = raw.get("step", "register")
    act = FormAction(request, db, raw.get("csrf_token"))

    def invalid(exc: service.Invalid) -> Response:
        return _stay_form(request, db, values, 400, errors=_problems(request, exc))

    def checked(stay: dict[str, Any]) -> Response:
        mission = db.get(Mission, stay["mission_id"])
        return _page(
            request,
            "stay_check.html",
            stay=stay,
            hidden=values,
            mission_name=mission.name if mission else "",
        )

    if raw.get("change"):
        change = raw["change"]
        return _stay_form(request, db, values, focus=change if change in STAY_FIELDS else None)
    if step == "check":
        return _citizen_form(
            act,
            lambda: service.parse_stay(db=db, raw=values, today=utcnow().date()),
            invalid=invalid,
            done=checked,
        )
    return _citizen_form(
        act,
        lambda: service.register_stay(db=db, citizen_id=citizen.id, raw=values),
        invalid=invalid,
        done=lambda _: _back("/consulate/home", "stay"),
    )


@router.post("/stays/{registration_id}/{action}")
def stay_action(act: CitizenForm, registration_id: Id, action: str) -> Response:
    """Confirm or cancel a registered stay."""
    actions = {"confirm": service.confirm_stay, "cancel": service.cancel_stay}

    def change() -> Any:
        if action not in actions:
            raise service.NotFound(action)
        return actions[action](
            db=act.db, citizen_id=act.citizen.id, registration_id=registration_id
        )

    return _citizen_form(
        act,
        change,
        done=lambda _: _back("/consulate/home", "confirmed" if action == "confirm" else "saved"),
    )


@router.get("/services")
def services_page(
    request: Request, db: DbSession, citizen: CitizenUser, mission: QueryId = 0
) -> Response:
    """The service catalogue of a mission."""
    missions = service.consular_missions(db=db)
    chosen = next((m for m in missions if m.id == mission), missions[0] if missions else None)
    return _page(
        request,
        "services.html",
        missions=missions,
        chosen=chosen,
        catalogue=service.services(db=db, mission_id=chosen.id) if chosen else [],
    )


@router.post("/services/{service_type_id}/apply")
def apply(act: CitizenForm, service_type_id: Id) -> Response:
    """Start a draft request for a service."""
    return _citizen_form(
        act,
        lambda: service.create_draft(
            db=act.db, citizen_id=act.citizen.id, service_type_id=service_type_id
        ),
        done=lambda row: RedirectResponse(f"/consulate/requests/{row.id}", status_code=303),
    )


def _request_again(
    request: Request,
    db: Session,
    citizen: Citizen,
    request_id: int,
    exc: service.Invalid,
    *,
    status: int = 400,
    values: dict[str, Any] | None = None,
) -> Response:
    """The request's page again, with what was wrong (the change was rolled back)."""
    req = service.citizen_request(db=db, citizen_id=citizen.id, request_id=request_id)
    errors = _problems(request, exc)
    # A missing document is named in the reader's language, not the catalogue's English.
    lang = request_language(request)
    kind = db.get(ServiceType, req.service_type_id)
    for doc in kind.documents if kind else []:
        if doc["slug"] in errors:
            names = doc.get("names") or {}
            named = names.get(lang) or names.get("en") or doc["slug"]
            errors[doc["slug"]] = _t(request, service.MISSING_DOCUMENT, name=named)
    return _request_page(request, db, citizen, req, status=status, errors=errors, values=values)


def _request_page(
    request: Request,
    db: Session,
    citizen: Citizen,
    req: ServiceRequest,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> Response:
    kind = db.get(ServiceType, req.service_type_id)
    appointments = [
        (a, s)
        for a, s in service.citizen_appointments(db=db, citizen_id=citizen.id)
        if a.request_id == req.id
    ]
    booked = next(((a, s) for a, s in appointments if a.status == "booked"), None)
    return _page(
        request,
        "request.html",
        status,
        req=req,
        kind=kind,
        values=values if values is not None else _prefilled(kind, req.answers, citizen),
        anchors=_anchors(kind),
        docs=service.documents_of(db=db, request_id=req.id),
        events=service.history(db=db, request_id=req.id),
        messages=service.messages_of(db=db, request_id=req.id),
        booked=booked,
        zone=service.mission_zone(db=db, mission_id=req.mission_id),
        slots=service.free_slots(db=db, mission_id=req.mission_id, service_type_id=kind.id)
        if kind and kind.needs_appointment and req.status not in ("approved", "rejected")
        else [],
        editable=req.status in ("draft", "more_documents"),
        max_mb=settings_of(request).upload_max_mb,
        errors=errors or {},
    )


#: Fields of a service's form that ask for the applicant's own name (filled from the account).
NAME_FIELDS = ("full_name", "name", "applicant_name")


def _prefilled(
    kind: ServiceType | None, answers: dict[str, Any], citizen: Citizen
) -> dict[str, Any]:
    """A request's answers, with the citizen's name where the form asks it and it is empty."""
    values = dict(answers or {})
    for spec in kind.fields if kind else []:
        if spec.get("name") in NAME_FIELDS and not values.get(spec["name"]):
            values[spec["name"]] = citizen.name
    return values


def _anchors(kind: ServiceType | None) -> dict[str, str]:
    """Where the error summary sends the citizen for problems that are not a form field."""
    slugs = [d["slug"] for d in (kind.documents if kind else [])]
    return {slug: "document-kind" for slug in slugs} | {"kind": "document-kind", "status": "status"}


def _request_form(
    act: CitizenAction,
    request_id: int,
    change: Callable[[], Any],
    notice: str | Callable[[Any], str],
    *,
    deliver: Callable[[Any], None] | None = None,
    refused: Sequence[Refusal] = (),
) -> Response:
    """Run a form of one request: what was wrong shows on its page, else back to it with a
    notice (`notice` may say which from the change's result)."""
    return _citizen_form(
        act,
        change,
        refused=refused,
        invalid=lambda exc: _request_again(act.request, act.db, act.citizen, request_id, exc),
        deliver=deliver,
        done=lambda result: _back(
            f"/consulate/requests/{request_id}", notice(result) if callable(notice) else notice
        ),
    )


@router.get("/requests/{request_id}")
def request_page(request: Request, db: DbSession, citizen: CitizenUser, request_id: Id) -> Response:
    """One of the citizen's requests: form, documents, status, history, messages, appointment."""
    try:
        req = service.citizen_request(db=db, citizen_id=citizen.id, request_id=request_id)
    except service.NotFound:
        return _not_found(request)
    return _request_page(request, db, citizen, req)


@router.post("/requests/{request_id}/answers")
def save_answers(
    request: Request,
    db: DbSession,
    citizen: CitizenUser,
    request_id: Id,
    raw: Annotated[dict[str, str], text_fields(200)],
) -> Response:
    """Save the form as a draft, or save it and go to check the answers before submitting
    ("submit" still saves and submits at once, for pages a browser kept from before)."""
    action = raw.get("action")
    complete = action in ("check", "submit")

    def then(_: Any) -> Response:
        if action == "check":
            return RedirectResponse(f"/consulate/requests/{request_id}/check", status_code=303)
        if action != "submit":
            return _back(f"/consulate/requests/{request_id}", "saved")
        return _submit(CitizenAction(request, db, CHECKED, citizen), request_id)

    def change() -> Any:
        saved = service.save_answers(
            db=db, citizen_id=citizen.id, request_id=request_id, raw=raw, complete=complete
        )
        if action == "check":
            service.ready_to_submit(db=db, citizen_id=citizen.id, request_id=request_id)
        return saved

    return _citizen_form(
        FormAction(request, db, raw.get("csrf_token")),
        change,
        invalid=lambda exc: _request_again(request, db, citizen, request_id, exc, values=raw),
        done=then,
    )


def _submit(act: CitizenAction, request_id: int) -> Response:
    return _request_form(
        act,
        request_id,
        lambda: flows.submit_request(
            db=act.db,
            settings=settings_of(act.request),
            citizen_id=act.citizen.id,
            request_id=request_id,
        ),
        "submitted",
    )


@router.get("/requests/{request_id}/check")
def check_request(
    request: Request, db: DbSession, citizen: CitizenUser, request_id: Id
) -> Response:
    """The answers and documents of a request to check, each with a link to change it, and
    the button that submits it (once submitted, the answers only)."""
    try:
        req = service.citizen_request(db=db, citizen_id=citizen.id, request_id=request_id)
    except service.NotFound:
        return _not_found(request)
    return _page(
        request,
        "request_check.html",
        req=req,
        editable=req.status in ("draft", "more_documents"),
        kind=db.get(ServiceType, req.service_type_id),
        docs=service.documents_of(db=db, request_id=req.id),
    )


@router.post("/requests/{request_id}/submit")
def submit_request(act: CitizenForm, request_id: Id) -> Response:
    """Submit a request whose answers the citizen has checked."""
    return _submit(act, request_id)


@router.post("/requests/{request_id}/documents")
async def upload(request: Request, db: DbSession, citizen: CitizenUser, request_id: Id) -> Response:
    """Upload one document to a request (checked, scanned and stored, or refused whole)."""
    settings = settings_of(request)
    limit = int(settings.upload_max_mb * 1_000_000)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + 64 * 1024:
        # Refuse before reading the body: a 50 MB upload never reaches the disk.
        message = _t(request, UPLOAD_TOO_BIG, mb=f"{settings.upload_max_mb:g}")
        return _page(request, "message.html", 413, message=message)
    form = await request.form(max_files=1, max_fields=10, max_part_size=64 * 1024)
    file = form.get("file")
    data = await read_upload(file, limit) if isinstance(file, UploadFile) else b""
    name = (file.filename or "") if isinstance(file, UploadFile) else ""
    kind = str(form.get("kind") or "")
    token = str(form.get("csrf_token") or "")
    await form.close()

    def change() -> Any:
        service.citizen_request(db=db, citizen_id=citizen.id, request_id=request_id)
        if not isinstance(file, UploadFile) or not name:
            raise service.Invalid(service.Problem("file", documents.NO_FILE))
        return flows.upload_document(
            db=db,
            settings=settings,
            citizen_id=citizen.id,
            request_id=request_id,
            kind=kind,
            filename=name,
            data=data,
        )

    def work() -> Response:
        return _request_form(
            CitizenAction(request, db, token, citizen), request_id, change, "uploaded"
        )

    return await run_in_threadpool(work)


@router.get("/documents/{document_id}")
def document(request: Request, db: DbSession, citizen: CitizenUser, document_id: Id) -> Response:
    """Download one of the citizen's own documents (always as an attachment)."""
    try:
        doc = service.citizen_document(db=db, citizen_id=citizen.id, document_id=document_id)
    except service.NotFound:
        return _not_found(request)
    return _download(doc, settings_of(request))


@router.post("/documents/{document_id}/delete")
def delete_document(act: CitizenForm, document_id: Id) -> Response:
    """Remove a document from a request that can still be changed."""

    def change() -> int:
        doc = service.citizen_document(
            db=act.db, citizen_id=act.citizen.id, document_id=document_id
        )
        request_id = doc.request_id
        flows.delete_document(
            db=act.db,
            settings=settings_of(act.request),
            citizen_id=act.citizen.id,
            document_id=document_id,
        )
        return request_id

    return _citizen_form(
        act,
        change,
        done=lambda request_id: _back(f"/consulate/requests/{request_id}", "saved"),
    )


@router.post("/requests/{request_id}/messages")
def citizen_message(
    act: CitizenForm, request_id: Id, body: Annotated[str, Form(max_length=10000)] = ""
) -> Response:
    """Write to the consular section about a request."""
    return _request_form(
        act,
        request_id,
        lambda: service.post_message(
            db=act.db,
            request=service.citizen_request(
                db=act.db, citizen_id=act.citizen.id, request_id=request_id
            ),
            kind="citizen",
            sender_id=act.citizen.id,
            label=act.citizen.name,
            body=body,
        ),
        "sent",
    )


@router.post("/requests/{request_id}/book")
def book(
    act: CitizenForm, request_id: Id, slot_id: Annotated[str, Form(max_length=12)] = ""
) -> Response:
    """Book (or move to) a slot for a request."""
    return _request_form(
        act,
        request_id,
        lambda: service.book_or_move(
            db=act.db, citizen_id=act.citizen.id, request_id=request_id, slot_id=slot_id
        ),
        lambda booked: "moved" if booked.moved else "booked",
        refused=[
            (
                service.SlotFull,
                lambda exc: _request_again(
                    act.request, act.db, act.citizen, request_id, exc, status=409
                ),
            )
        ],
    )


@router.post("/appointments/{appointment_id}/cancel")
def cancel_appointment(act: CitizenForm, appointment_id: Id) -> Response:
    """Cancel an appointment."""

    def done(appointment: Any) -> Response:
        request_id = appointment.request_id
        return _back(
            f"/consulate/requests/{request_id}" if request_id else "/consulate/home", "cancelled"
        )

    return _citizen_form(
        act,
        lambda: service.cancel(db=act.db, citizen_id=act.citizen.id, appointment_id=appointment_id),
        done=done,
    )


@router.get("/access")
def access(request: Request, db: DbSession, citizen: CitizenUser) -> Response:
    """Who of the staff viewed or changed my file, and when."""
    rows = service.access_log(db=db, citizen_id=citizen.id)
    zones = service.mission_zones(db=db, ids={r.mission_id for r in rows if r.mission_id})
    return _page(
        request,
        "access.html",
        rows=rows,
        actions=ACCESS_ACTIONS,
        zones=zones,
        utc=ZoneInfo("UTC"),
    )


@router.get("/export")
def export(request: Request, db: DbSession, citizen: CitizenUser) -> Response:
    """Everything stored about me, as a JSON file."""
    data = service.export_citizen(db=db, citizen_id=citizen.id)
    return JSONResponse(
        data,
        headers={
            "Content-Disposition": 'attachment; filename="my-consulate-data.json"',
            "Cache-Control": "no-store",
        },
    )
