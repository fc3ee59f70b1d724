"""Shared by the e-consulate's pages: routers, messages, the citizen's session, page helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from elshi import crypto
from elshi.accounts.service import PermissionDenied
from elshi.consulate import countries, documents, service
from elshi.consulate.models import Citizen
from elshi.settings import Settings
from elshi.web.actions import FormAction, Refusal
from elshi.web.bounds import QueryId
from elshi.web.deps import DbSession, StaffUser, get_db
from elshi.web.i18n import N_
from elshi.web.pages import FORM_EXPIRED, NOT_ALLOWED
from elshi.web.templating import (
    SessionCookie,
    render,
    request_language,
    translate,
)

router = APIRouter(prefix="/consulate", include_in_schema=False)
staff = APIRouter(prefix="/consular", include_in_schema=False)
api = APIRouter(prefix="/api/consulate", tags=["consulate"])

CITIZEN_COOKIE = "elshi_citizen"
#: The citizen's session cookie.
CITIZEN_SESSION = SessionCookie(
    CITIZEN_COOKIE,
    crypto.CITIZEN_SESSION,
    "elshi.citizen",
    "citizen_session_minutes",
    "/consulate/login/code",
)
_serializer = CITIZEN_SESSION.signer
STATIC = Path(__file__).resolve().parents[2] / "web" / "static"
T = TypeVar("T")

UNVERIFIED = N_("Confirm your e-mail first: we sent you a link. A new link is on its way.")
CHECK_MAIL = N_("Check your e-mail: we sent you a link to confirm the address.")
VERIFIED = N_("Your e-mail is confirmed. You can sign in now.")
BAD_LINK = N_("This link is not valid any more. Ask for a new one.")
RESET_SENT = N_("If an account has this e-mail, a link to choose a new password is on its way.")
PASSWORD_SET = N_("Your new password is set. Sign in with it.")
TOTP_ON = N_("Two-step sign-in is on.")
SAVED = N_("Saved.")
UPLOADED = N_("The document is uploaded.")
SUBMITTED = N_("Your request is submitted. We will e-mail you when its status changes.")
BOOKED = N_("Your appointment is booked.")
MOVED = N_("Your appointment is moved.")
CANCELLED = N_("Your appointment is cancelled.")
SENT = N_("Your message is sent.")
CONFIRMED = N_("Thank you, your stay is confirmed.")
STAY_SAVED = N_("Your stay is registered. The consulate can reach you there in an emergency.")
NOT_FOUND = N_("Not found, or not yours to see.")
UPLOAD_TOO_BIG = N_("The file is larger than %(mb)s MB.")


# ---------------------------------------------------------------------------- helpers


class CitizenLoginRequired(Exception):
    """An anonymous browser asked for a citizen page; it is sent to /consulate/login."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def to_citizen_login(request: Request, exc: CitizenLoginRequired) -> RedirectResponse:
    """Send the browser to the citizen sign-in page, then back."""
    return RedirectResponse(
        "/consulate/login?" + urlencode({"next": exc.next_url}), status_code=303
    )


def current_citizen(request: Request, db: Session) -> Citizen | None:
    """Return the signed-in citizen, or None."""
    key = CITIZEN_SESSION.key(request)
    return service.session_citizen(db=db, key=key) if key else None


def require_citizen(request: Request, db: Annotated[Session, Depends(get_db)]) -> Citizen:
    """Allow only a signed-in citizen; others go to the sign-in page."""
    citizen = current_citizen(request, db)
    if citizen is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise CitizenLoginRequired(target)
    request.state.citizen = citizen
    # End the transaction: the page runs in another worker thread, and a connection held
    # while waiting for that thread can starve the requests that would free one.
    db.commit()
    return citizen


CitizenUser = Annotated[Citizen, Depends(require_citizen)]


@dataclass(frozen=True)
class CitizenAction(FormAction):
    """A form the signed-in citizen sent, and who they are."""

    citizen: Citizen


def citizen_action(
    request: Request,
    db: DbSession,
    citizen: CitizenUser,
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> CitizenAction:
    """Gather what a citizen's form handler needs (the token is checked by the handler)."""
    return CitizenAction(request, db, csrf_token, citizen)


#: The signed-in citizen's submitted form, as one parameter of the route.
CitizenForm = Annotated[CitizenAction, Depends(citizen_action)]


def _safe_next(value: str | None) -> str:
    if not value or not value.startswith("/consulate/") or value.startswith("//") or "\\" in value:
        return "/consulate/home"
    return value


def _t(request: Request, message: str, **params: Any) -> str:
    text = translate(request, message)
    return text % params if params else text


def _problems(request: Request, exc: service.Invalid) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in exc.problems:
        text = _t(request, p.message, **p.params)
        out[p.where] = f"{out[p.where]} {text}" if p.where in out else text
    return out


def _wording(request: Request, context: dict[str, Any]) -> None:
    """Names in the reader's language: of a catalogue entry, and of a request's document kind."""
    lang = request_language(request)

    def names_of(names: dict[str, str]) -> str:
        return names.get(lang) or names.get("en", "")

    def doc_name(kind: Any, slug: str) -> str:
        for spec in getattr(kind, "documents", None) or []:
            if spec.get("slug") == slug:
                return names_of(spec.get("names") or {}) or slug
        return slug

    context["names_of"] = names_of
    context["doc_name"] = doc_name
    context["country_choices"] = lambda: countries.choices(lang)
    context["country_name"] = lambda code: countries.name(code, lang)


def _page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("errors", {})
    context.setdefault("focus", None)
    context.setdefault("notice", request.query_params.get("notice"))
    context.setdefault("citizen", getattr(request.state, "citizen", None))
    context["notices"] = NOTICES
    context["status_names"] = service.STATUS_NAMES
    context["event_names"] = service.APPOINTMENT_EVENTS
    _wording(request, context)
    return render(request, "consulate/" + template, context, status=status)


#: What a staff access means, in the citizen's words.
ACCESS_ACTIONS = {
    "view": N_("opened your request"),
    "download": N_("downloaded one of your documents"),
    "change": N_("worked on your request"),
    "message": N_("wrote to you"),
    "search": N_("found you in a search"),
    "list": N_("saw you on the day's appointment list"),
}

#: Short keys in ?notice= so a redirect can say what happened without echoing user text.
NOTICES = {
    "saved": SAVED,
    "uploaded": UPLOADED,
    "submitted": SUBMITTED,
    "booked": BOOKED,
    "moved": MOVED,
    "cancelled": CANCELLED,
    "sent": SENT,
    "confirmed": CONFIRMED,
    "stay": STAY_SAVED,
    "check_mail": CHECK_MAIL,
    "verified": VERIFIED,
    "reset_sent": RESET_SENT,
    "password_set": PASSWORD_SET,
    "totp_on": TOTP_ON,
    "slots": N_("The slots are added."),
    "claimed": N_("The request is yours to review."),
    "asked": N_("The applicant is asked for more documents."),
    "decided": N_("The decision is recorded and the applicant informed."),
    "marked": N_("The appointment is marked."),
    "catalogue": N_("The catalogue is saved."),
    "follow": N_("You follow this country's travel advisories now."),
    "unfollow": N_("You no longer follow this country's travel advisories."),
    "published": N_("The advisory is published."),
}


def _back(path: str, notice: str) -> RedirectResponse:
    sep = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{sep}notice={notice}", status_code=303)


def _expired(request: Request) -> Response:
    return _page(request, "message.html", 400, message=FORM_EXPIRED)


def _not_found(request: Request) -> Response:
    return _page(request, "message.html", 404, message=NOT_FOUND)


def _message(request: Request, exc: service.Invalid) -> Response:
    return _page(request, "message.html", 400, message=exc.problems[0].message)


def _citizen_form(
    act: FormAction,
    change: Callable[[], T],
    *,
    done: Callable[[T], Response],
    invalid: Callable[[service.Invalid], Response] | None = None,
    deliver: Callable[[T], None] | None = None,
    expired: Callable[[], Response] | None = None,
    refused: Sequence[Refusal] = (),
) -> Response:
    """Run a citizen's form through the one form helper with the e-consulate's pages."""
    request = act.request
    return act.handle(
        change,
        expired=expired or (lambda: _expired(request)),
        done=done,
        deliver=deliver,
        refused=[
            *refused,
            (service.NotFound, lambda _: _not_found(request)),
            (service.Invalid, invalid or (lambda exc: _message(request, exc))),
        ],
    )


def _officer_form(
    act: FormAction,
    change: Callable[[], T],
    *,
    done: Callable[[T], Response],
    invalid: Callable[[service.Invalid], Response] | None = None,
    deliver: Callable[[T], None] | None = None,
) -> Response:
    """Run an officer's form: refusals by role answer 403, unknown records 404."""
    request = act.request

    def refused_page(exc: service.Invalid) -> Response:
        return render(request, "error.html", {"message": exc.problems[0].message}, status=400)

    return act.handle(
        change,
        expired=lambda: _expired(request),
        done=done,
        deliver=deliver,
        refused=[
            (service.NotFound, lambda _: _not_found(request)),
            (PermissionDenied, lambda _: _forbidden(request)),
            (service.Invalid, invalid or refused_page),
        ],
    )


def _officer_mission(principal: Any, db: Session, mission: int) -> int | None:
    """Return the mission the officer works on: the one asked for if allowed, else their first."""
    if mission and principal.can("consulate.read", mission):
        return mission
    allowed = principal.missions_where("consulate.read")
    if allowed:
        return min(allowed)
    missions = service.consular_missions(db=db)
    return missions[0].id if missions else None


class NoMission(Exception):
    """An officer's page shows one mission, and there is none to show (answered 404)."""


def officer_mission(db: DbSession, principal: StaffUser, mission: QueryId = 0) -> int:
    """The mission of an officer's page: `?mission=` if theirs, else their first; else 404."""
    found = _officer_mission(principal, db, mission)
    if found is None:
        raise NoMission
    return found


def no_mission(request: Request, exc: NoMission) -> Response:
    """Answer an officer's page that has no mission to show."""
    return _not_found(request)


#: The mission an officer's page shows, as one parameter of the route.
OfficerMission = Annotated[int, Depends(officer_mission)]


def _officer_page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("errors", {})
    context.setdefault("notice", request.query_params.get("notice"))
    context["notices"] = NOTICES
    context["status_names"] = service.STATUS_NAMES
    context["active"] = "consular"
    _wording(request, context)
    return render(request, "consulate/" + template, context, status=status)


def _forbidden(request: Request) -> Response:
    return render(request, "error.html", {"message": NOT_ALLOWED}, status=403)


def _download(doc: Any, settings: Settings) -> Response:
    path = documents.file_path(settings.uploads_path, doc.storage_key)
    return FileResponse(
        path,
        media_type=doc.content_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(doc.filename)}",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )
