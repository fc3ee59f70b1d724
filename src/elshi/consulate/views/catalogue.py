"""The officers' service catalogue: list, new, change, activate and deactivate."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from elshi.accounts.service import PermissionDenied
from elshi.consulate import service
from elshi.consulate.models import ServiceType
from elshi.consulate.views.common import (
    OfficerMission,
    _back,
    _forbidden,
    _not_found,
    _officer_form,
    _officer_page,
    _problems,
    staff,
)
from elshi.web.actions import FormAction, StaffForm, text_fields
from elshi.web.bounds import Id
from elshi.web.deps import DbSession, StaffUser


def _catalogue_form(
    request: Request,
    db: Session,
    mission_id: int,
    row: ServiceType | None,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    values = values if values is not None else service.catalogue_values(row)
    count = {
        letter: 1
        + max((int(k[1:].split("_")[0]) for k in values if _row_key(k, letter)), default=-1)
        for letter in "fds"
    }
    return _officer_page(
        request,
        "catalogue_form.html",
        status,
        mission_id=mission_id,
        row=row,
        values=values,
        rows=count,
        field_types=service.FIELD_TYPES,
        langs=("kk", "ru", "en"),
        errors=errors or {},
    )


def _row_key(key: str, letter: str) -> bool:
    head = key.split("_")[0]
    return head[:1] == letter and head[1:].isdigit()


@staff.get("/catalogue")
def catalogue_page(
    request: Request, db: DbSession, principal: StaffUser, mission_id: OfficerMission
) -> Response:
    """A mission's service catalogue, for the staff who edit it."""
    try:
        rows = service.catalogue(db=db, actor=principal, mission_id=mission_id)
    except PermissionDenied:
        return _forbidden(request)
    return _officer_page(request, "catalogue.html", rows=rows, mission_id=mission_id)


@staff.get("/catalogue/new")
def catalogue_new(
    request: Request, db: DbSession, principal: StaffUser, mission_id: OfficerMission
) -> Response:
    """The form for a new service."""
    if not principal.can("consulate.act", mission_id):
        return _forbidden(request)
    return _catalogue_form(request, db, mission_id, None)


def _editable_service(db: Session, principal: Any, service_type_id: int) -> ServiceType | None:
    row = db.get(ServiceType, service_type_id)
    if row is None or not principal.can("consulate.read", row.mission_id):
        return None
    return row


@staff.get("/catalogue/{service_type_id}")
def catalogue_edit(
    request: Request, db: DbSession, principal: StaffUser, service_type_id: Id
) -> Response:
    """The form to change a service: its names, fee, form fields, documents and steps."""
    row = _editable_service(db, principal, service_type_id)
    if row is None:
        return _not_found(request)
    if not principal.can("consulate.act", row.mission_id):
        return _forbidden(request)
    return _catalogue_form(request, db, row.mission_id, row)


@staff.post("/catalogue")
def catalogue_save(
    request: Request,
    db: DbSession,
    principal: StaffUser,
    raw: Annotated[dict[str, str], text_fields(1000)],
) -> Response:
    """Create or change a service from the catalogue form."""
    existing = raw.get("service_type_id", "")
    mission_raw = raw.get("mission_id", "")

    row = _editable_service(db, principal, int(existing)) if existing.isdigit() else None
    mission_id = row.mission_id if row else int(mission_raw) if mission_raw.isdigit() else 0

    def change() -> Any:
        if existing and row is None:
            raise service.NotFound(existing)
        return service.save_catalogue_entry(
            db=db,
            actor=principal,
            mission_id=mission_id,
            service_type_id=row.id if row else None,
            raw=raw,
        )

    return _officer_form(
        FormAction(request, db, raw.get("csrf_token")),
        change,
        invalid=lambda exc: _catalogue_form(
            request, db, mission_id, row, values=raw, errors=_problems(request, exc), status=400
        ),
        done=lambda _: _back(f"/consular/catalogue?mission={mission_id}", "catalogue"),
    )


@staff.post("/catalogue/{service_type_id}/{action}")
def catalogue_toggle(act: StaffForm, service_type_id: Id, action: str) -> Response:
    """Stop offering a service (deactivate) or offer it again (activate)."""
    row = _editable_service(act.db, act.principal, service_type_id)

    def change() -> int:
        if row is None or action not in ("activate", "deactivate"):
            raise service.NotFound(action)
        service.set_service_active(
            db=act.db, actor=act.principal, service_type_id=row.id, active=action == "activate"
        )
        return row.mission_id

    return _officer_form(
        act,
        change,
        done=lambda mission_id: _back(f"/consular/catalogue?mission={mission_id}", "catalogue"),
    )
