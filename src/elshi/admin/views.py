"""Admin pages: missions, users and their roles per mission, sources."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response

from elshi.accounts import flows as account_flows
from elshi.accounts.flows import UserNotFound
from elshi.accounts.models import ROLES, User
from elshi.accounts.service import InvalidUser, PermissionDenied
from elshi.admin import service
from elshi.errors import FieldError
from elshi.listen import service as listen
from elshi.missions import service as missions
from elshi.missions.models import MISSION_KINDS
from elshi.missions.service import InvalidMission
from elshi.notify import outbox
from elshi.notify.message import Message
from elshi.web.actions import StaffAction, StaffForm
from elshi.web.bounds import Id
from elshi.web.deps import DbSession, StaffUser
from elshi.web.i18n import N_
from elshi.web.pages import error_text, int_or_none, redirect, t
from elshi.web.templating import render, settings_of

router = APIRouter(include_in_schema=False)

NOT_SAVED = N_("Not saved:")
BAD_JSON = N_("The settings are not valid JSON.")
BAD_EVERY = N_("Poll every: a whole number of minutes.")
FORBIDDEN = N_("You may not do this in this mission.")
NOT_YOURSELF = N_("You cannot disable your own account.")
PICK_ROLE = N_("Choose a role from the list.")
NO_USER_ID = N_("No user has the id %(id)s.")
OUTBOX_STATUS = {
    "pending": N_("waiting"),
    "sending": N_("sending"),
    "sent": N_("sent"),
    "failed": N_("failed"),
    "logged": N_("kept, not sent"),
}
NOT_FAILED = N_("Only a failed message can be tried again.")
STAFF_ROLES = tuple(r for r in ROLES if r != "citizen")


def _page(
    request: Request, db: Any, principal: Any, error: str | None = None, status: int = 200
) -> Response:
    if not (principal.can_somewhere("users.manage") or principal.can_somewhere("sources.manage")):
        raise HTTPException(403, t(request, FORBIDDEN))
    every = missions.list_missions(db=db)
    return render(
        request,
        "admin.html",
        {
            "active": "admin",
            "missions": every,
            "mission_kinds": MISSION_KINDS,
            "users": service.users_with_grants(db=db, actor=principal),
            "roles": STAFF_ROLES,
            # Only the sources this user manages; their settings (and secrets) are not shown.
            "sources": listen.list_sources(db=db, actor=principal, permission="sources.manage"),
            "connectors": listen.web_connectors(),
            "source_missions": [m for m in every if principal.can("sources.manage", m.id)],
            "error": error,
            "can_users": principal.can_somewhere("users.manage"),
            "can_missions": principal.can("users.manage", None),
            "user_missions": [m for m in every if principal.can("users.manage", m.id)],
            "can_sources": principal.can_somewhere("sources.manage"),
            "sources_everywhere": principal.missions_where("sources.manage") is None,
        },
        status=status,
    )


class _Refused(Exception):
    """A form refused before it changed anything, with the messages to show."""

    def __init__(self, *messages: str) -> None:
        super().__init__(*messages)
        self.messages = messages


def _failed(act: StaffAction, exc: Exception) -> Response:
    request, db, principal = act.request, act.db, act.principal
    db.rollback()
    if isinstance(exc, _Refused):
        return _page(request, db, principal, " ".join(t(request, m) for m in exc.messages), 400)
    if isinstance(exc, PermissionDenied):
        return _page(request, db, principal, t(request, FORBIDDEN), status=403)
    if isinstance(exc, FieldError):
        return _page(
            request, db, principal, f"{t(request, NOT_SAVED)} {error_text(request, exc)}", 400
        )
    return _page(request, db, principal, f"{t(request, NOT_SAVED)} {exc}", status=400)


def _apply(
    act: StaffAction,
    change: Callable[[], object],
    section: str,
    refused: tuple[type[Exception], ...] = (InvalidUser, PermissionDenied, LookupError),
) -> Response:
    """Run one admin form: a refusal shows the page again with why, else back to the section."""
    act.checked()
    kinds: tuple[type[Exception], ...] = (_Refused, *refused)
    try:
        change()
    except kinds as exc:
        return _failed(act, exc)
    return redirect(act.request, f"/admin#{section}")


@router.get("/admin")
def admin(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Missions, users with their roles, sources."""
    return _page(request, db, principal)


@router.post("/admin/missions")
def add_mission(
    act: StaffForm,
    slug: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=300)] = "",
    kind: Annotated[str, Form(max_length=20)] = "embassy",
    country: Annotated[str, Form(max_length=10)] = "",
    emergency_phone: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Add a mission."""
    return _apply(
        act,
        lambda: account_flows.add_mission(
            db=act.db,
            actor=act.principal,
            slug=slug.strip(),
            name=name.strip() or slug,
            kind=kind,
            country_code=country.strip() or None,
            emergency_phone=emergency_phone,
        ),
        "missions",
        (InvalidMission, PermissionDenied, LookupError),
    )


@router.post("/admin/users")
def add_user(
    act: StaffForm,
    email: Annotated[str, Form(max_length=320)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
    role: Annotated[str, Form(max_length=20)] = "analyst",
    mission: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Add a user with one role in one mission."""
    return _apply(
        act,
        lambda: account_flows.add_user(
            db=act.db,
            actor=act.principal,
            email=email,
            password=password,
            name=name,
            role=role,
            mission_slug=mission,
        ),
        "users",
    )


@router.post("/admin/users/{user_id}/{action}")
def toggle_user(user_id: Id, action: Literal["disable", "enable"], act: StaffForm) -> Response:
    """Disable a user (signed out everywhere at once) or enable them again."""

    def change() -> None:
        user = act.db.get(User, user_id)
        if user is None:
            raise UserNotFound("user", NO_USER_ID, id=user_id)
        if user.id == act.principal.user_id:
            raise _Refused(NOT_YOURSELF)
        account_flows.set_active(
            db=act.db, actor=act.principal, email=user.email, active=action == "enable"
        )

    return _apply(act, change, "users")


@router.post("/admin/grants")
def grant(
    act: StaffForm,
    email: Annotated[str, Form(max_length=320)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
    mission: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Give a user a role in a mission."""

    def change() -> None:
        if role not in STAFF_ROLES:
            raise InvalidUser("role", PICK_ROLE)
        account_flows.grant(
            db=act.db, actor=act.principal, email=email, role=role, mission_slug=mission
        )

    return _apply(act, change, "users")


@router.post("/admin/grants/{grant_id}/revoke")
def revoke(grant_id: Id, act: StaffForm) -> Response:
    """Take a role away."""
    return _apply(
        act,
        lambda: service.revoke_role(db=act.db, actor=act.principal, grant_id=grant_id),
        "users",
        (PermissionDenied,),
    )


@router.post("/admin/sources")
def add_source(
    act: StaffForm,
    connector: Annotated[str, Form(max_length=64)] = "",
    name: Annotated[str, Form(max_length=300)] = "",
    config: Annotated[str, Form(max_length=20_000)] = "{}",
    every: Annotated[str, Form(max_length=10)] = "",
    mission: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """Add a source fetched from an http(s) address, in a mission the user manages sources of.

    Files are imported by the operator on the command line (`elshi ingest`), never from here.
    """

    def change() -> None:
        mission_id = int_or_none(mission)
        if mission.strip() and mission_id is None:
            raise listen.InvalidSource(f"no mission {mission!r}")
        if not act.principal.can("sources.manage", mission_id):  # no mission: headquarters only
            raise PermissionDenied("sources.manage")
        try:
            parsed = json.loads(config or "{}")
            if not isinstance(parsed, dict):
                raise ValueError
        except ValueError:
            raise _Refused(NOT_SAVED, BAD_JSON) from None
        if every and int_or_none(every) is None:
            raise _Refused(NOT_SAVED, BAD_EVERY)
        with act.db.begin_nested():
            listen.add_web_source(
                db=act.db,
                actor=act.principal,
                settings=settings_of(act.request),
                connector=connector,
                config=parsed,
                name=name.strip() or None,
                every_minutes=int_or_none(every),
                mission_id=mission_id,
            )

    return _apply(act, change, "sources", (listen.InvalidSource, PermissionDenied))


@router.post("/admin/sources/{source_id}/toggle")
def toggle_source(
    source_id: Id, act: StaffForm, enabled: Annotated[str, Form(max_length=5)] = ""
) -> Response:
    """Pause or resume a source."""
    return _apply(
        act,
        lambda: service.set_source_enabled(
            db=act.db, actor=act.principal, source_id=source_id, enabled=enabled == "1"
        ),
        "sources",
        (PermissionDenied,),
    )


# ---------------------------------------------------------------------------- outgoing messages


def _shown(row: Any, principal: Any, *, full_text: bool) -> dict[str, Any]:
    """What the outbox page shows of one message."""
    message: Message | None
    try:
        message = Message.from_dict(row.payload)
    except (TypeError, ValueError, KeyError):
        message = None
    return {
        "row": row,
        "recipient": outbox.shown_recipient(row, principal),
        "subject": message.subject if message else "",
        # The text (and its links) of an e-mail that was kept instead of sent, so that someone
        # can act on it; in demo mode of every e-mail.
        "text": message.text if message and full_text else "",
        "links": outbox.links(message.text) if message and full_text else [],
    }


@router.get("/admin/outbox")
def outbox_page(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Outgoing messages: what was sent, what waits, what failed (and why), what was kept."""
    try:
        rows = outbox.visible(db, actor=principal)
    except PermissionDenied:
        raise HTTPException(403, t(request, FORBIDDEN)) from None
    settings = settings_of(request)
    return render(
        request,
        "admin_outbox.html",
        {
            "active": "admin",
            "messages": [
                _shown(r, principal, full_text=r.status == "logged" or settings.demo) for r in rows
            ],
            "status_names": OUTBOX_STATUS,
            "smtp_set": bool(settings.smtp_host),
            "error": None,
        },
    )


@router.post("/admin/outbox/{message_id}/retry")
def outbox_retry(message_id: Id, act: StaffForm) -> Response:
    """Try a failed message again now."""
    request, db, principal = act.checked()
    try:
        outbox.retry(db, actor=principal, message_id=message_id)
    except LookupError:
        raise HTTPException(404) from None
    except outbox.NotRetried:
        raise HTTPException(409, t(request, NOT_FAILED)) from None
    return redirect(request, "/admin/outbox")
