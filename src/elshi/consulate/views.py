"""E-consulate pages: citizens on a phone (/consulate/...) and consular officers (/consular/...)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from elshi import crypto
from elshi.accounts.service import PermissionDenied, Principal, totp_uri, valid_totp_secret
from elshi.consulate import documents, flows, service
from elshi.consulate.models import Citizen, ServiceRequest, ServiceType, Slot
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
from elshi.crisis.telegram import link_url as telegram_link_url
from elshi.db import utcnow
from elshi.notify.email import Email
from elshi.settings import Settings
from elshi.web.actions import CHECKED, Refusal, handle_form
from elshi.web.bounds import Id, QueryId, parse_date
from elshi.web.deps import DbSession, StaffUser, get_db
from elshi.web.i18n import N_
from elshi.web.templating import (
    login_policy_of,
    redirect_with_session,
    render,
    request_language,
    settings_of,
    translate,
)

router = APIRouter(prefix="/consulate", include_in_schema=False)
staff = APIRouter(prefix="/consular", include_in_schema=False)
api = APIRouter(prefix="/api/consulate", tags=["consulate"])

CITIZEN_COOKIE = "elshi_citizen"
STATIC = Path(__file__).resolve().parents[1] / "web" / "static"
T = TypeVar("T")

FORM_EXPIRED = N_("The form has expired. Please try again.")
BAD_LOGIN = N_(
    "Wrong e-mail or password. After several failed attempts the account is locked for a while."
)
BLOCKED = N_("Too many failed sign-ins from this address. Wait a few minutes and try again.")
UNVERIFIED = N_("Confirm your e-mail first: we sent you a link. A new link is on its way.")
CHECK_MAIL = N_("Check your e-mail: we sent you a link to confirm the address.")
VERIFIED = N_("Your e-mail is confirmed. You can sign in now.")
BAD_LINK = N_("This link is not valid any more. Ask for a new one.")
RESET_SENT = N_("If an account has this e-mail, a link to choose a new password is on its way.")
PASSWORD_SET = N_("Your new password is set. Sign in with it.")
BAD_CODE = N_("Wrong code. Enter the 6-digit code from your authenticator app.")
CODE_EXPIRED = N_("The sign-in took too long. Please start again.")
TOTP_ON = N_("Two-step sign-in is on.")
SAVED = N_("Saved.")
UPLOADED = N_("The document is uploaded.")
SUBMITTED = N_("Your request is submitted. We will e-mail you when its status changes.")
BOOKED = N_("Your appointment is booked.")
MOVED = N_("Your appointment is moved.")
CANCELLED = N_("Your appointment is cancelled.")
SENT = N_("Your message is sent.")
CONFIRMED = N_("Thank you, your stay is confirmed.")
STAY_SAVED = N_("Your stay is registered. Please confirm it is right.")
NOT_FOUND = N_("Not found, or not yours to see.")
UPLOAD_TOO_BIG = N_("The file is larger than %(mb)s MB.")
NOT_ALLOWED = N_("Your role does not allow this.")


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


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return crypto.signer(settings, crypto.CITIZEN_SESSION, salt="elshi.citizen")


def _session_key(request: Request) -> str | None:
    cookie = request.cookies.get(CITIZEN_COOKIE)
    if not cookie:
        return None
    settings = settings_of(request)
    try:
        key = _serializer(settings).loads(cookie, max_age=settings.citizen_session_minutes * 60)
    except BadSignature:
        return None
    return key if isinstance(key, str) else None


def current_citizen(request: Request, db: Session) -> Citizen | None:
    """Return the signed-in citizen, or None."""
    key = _session_key(request)
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


def _safe_next(value: str | None) -> str:
    if not value or not value.startswith("/consulate/") or value.startswith("//") or "\\" in value:
        return "/consulate/home"
    return value


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _t(request: Request, message: str, **params: Any) -> str:
    text = translate(request, message)
    return text % params if params else text


def _problems(request: Request, exc: service.Invalid) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in exc.problems:
        text = _t(request, p.message, **p.params)
        out[p.where] = f"{out[p.where]} {text}" if p.where in out else text
    return out


def _page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("errors", {})
    context.setdefault("notice", request.query_params.get("notice"))
    context.setdefault("citizen", getattr(request.state, "citizen", None))
    context["notices"] = NOTICES
    context["status_names"] = service.STATUS_NAMES
    context["event_names"] = service.APPOINTMENT_EVENTS
    context["names_of"] = lambda names: names.get(request_language(request)) or names.get("en", "")
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
}


def _back(path: str, notice: str) -> RedirectResponse:
    sep = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{sep}notice={notice}", status_code=303)


def _expired(request: Request) -> Response:
    return _page(request, "message.html", 400, message=FORM_EXPIRED)


def _not_found(request: Request) -> Response:
    return _page(request, "message.html", 404, message=NOT_FOUND)


def _staff_expired(request: Request) -> Response:
    return _page(request, "message.html", 400, message=FORM_EXPIRED)


def _staff_not_found(request: Request) -> Response:
    return _page(request, "message.html", 404, message=NOT_FOUND)


def _send(request: Request, emails: list[Email]) -> None:
    flows.deliver(settings_of(request), emails, request.app.state.runtime)


def _lifetime(request: Request) -> timedelta:
    return timedelta(minutes=settings_of(request).citizen_session_minutes)


def _with_session(request: Request, target: str, key: str, lifetime: timedelta) -> Response:
    value = str(_serializer(settings_of(request)).dumps(key))
    return redirect_with_session(
        request, target, cookie=CITIZEN_COOKIE, value=value, lifetime=lifetime
    )


def _message(request: Request, exc: service.Invalid) -> Response:
    return _page(request, "message.html", 400, message=exc.problems[0].message)


def _citizen_form(
    request: Request,
    db: Session,
    token: str | object | None,
    change: Callable[[], T],
    *,
    done: Callable[[T], Response],
    invalid: Callable[[service.Invalid], Response] | None = None,
    deliver: Callable[[T], None] | None = None,
    expired: Callable[[], Response] | None = None,
    refused: Sequence[Refusal] = (),
) -> Response:
    """Run a citizen's form through the one form helper with the e-consulate's pages."""
    return handle_form(
        request,
        db,
        change,
        token=token,
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
    request: Request,
    db: Session,
    token: str | object | None,
    change: Callable[[], T],
    *,
    done: Callable[[T], Response],
    invalid: Callable[[service.Invalid], Response] | None = None,
    deliver: Callable[[T], None] | None = None,
) -> Response:
    """Run an officer's form: refusals by role answer 403, unknown records 404."""

    def refused_page(exc: service.Invalid) -> Response:
        return render(request, "error.html", {"message": exc.problems[0].message}, status=400)

    return handle_form(
        request,
        db,
        change,
        token=token,
        expired=lambda: _staff_expired(request),
        done=done,
        deliver=deliver,
        refused=[
            (service.NotFound, lambda _: _staff_not_found(request)),
            (PermissionDenied, lambda _: _forbidden(request)),
            (service.Invalid, invalid or refused_page),
        ],
    )


# ---------------------------------------------------------------------------- PWA


@router.get("/manifest.webmanifest")
def manifest(request: Request) -> Response:
    """The web app manifest that makes the e-consulate installable on a phone."""
    data = {
        "name": translate(request, "e-Consulate"),
        "short_name": translate(request, "e-Consulate"),
        "start_url": "/consulate/home",
        "scope": "/consulate/",
        "display": "standalone",
        "background_color": "#f5f7fa",
        "theme_color": "#0b6e8a",
        "lang": request_language(request),
        "icons": [
            {"src": "/static/consulate/icon-192.png", "sizes": "192x192", "type": "image/png"},
            {"src": "/static/consulate/icon-512.png", "sizes": "512x512", "type": "image/png"},
            {
                "src": "/static/consulate/icon-512.png",
                "sizes": "512x512",
                "type": "image/png",
                "purpose": "maskable",
            },
        ],
    }
    return Response(json.dumps(data), media_type="application/manifest+json")


@router.get("/sw.js")
def service_worker() -> Response:
    """The service worker (served here so its scope is /consulate/)."""
    body = (STATIC / "consulate" / "sw.js").read_text(encoding="utf-8")
    return Response(body, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


@router.get("/offline")
def offline(request: Request) -> Response:
    """The page the service worker shows when there is no network."""
    return _page(request, "offline.html")


# ---------------------------------------------------------------------------- account


@router.get("")
@router.get("/")
def landing(request: Request, db: DbSession) -> Response:
    """The e-consulate's front page, or the citizen's own page when signed in."""
    if current_citizen(request, db) is not None:
        return RedirectResponse("/consulate/home", status_code=303)
    return _page(request, "landing.html")


@router.get("/signup")
def signup_page(request: Request) -> Response:
    """The sign-up form."""
    return _page(request, "signup.html", values={})


@router.post("/signup")
def signup(
    request: Request,
    db: DbSession,
    email: Annotated[str, Form(max_length=1000)] = "",
    name: Annotated[str, Form(max_length=1000)] = "",
    phone: Annotated[str, Form(max_length=1000)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Create an account and e-mail the confirmation link."""
    values = {"email": email, "name": name, "phone": phone}
    return _citizen_form(
        request,
        db,
        csrf_token,
        lambda: flows.sign_up(
            db=db,
            settings=settings_of(request),
            email=email,
            password=password,
            name=name,
            phone=phone,
            lang=request_language(request),
        ),
        expired=lambda: _page(request, "signup.html", 400, values=values, error=FORM_EXPIRED),
        invalid=lambda exc: _page(
            request, "signup.html", 400, values=values, errors=_problems(request, exc)
        ),
        deliver=lambda result: _send(request, [mail for mail in result[1:] if mail is not None]),
        done=lambda _: _back("/consulate/login", "check_mail"),
    )


@router.get("/verify")
def verify(request: Request, db: DbSession, token: str = "") -> Response:
    """Follow the e-mailed confirmation link."""
    citizen = flows.verify_email(db=db, token=token)
    db.commit()
    if citizen is None:
        return _page(request, "message.html", 400, message=BAD_LINK)
    return _back("/consulate/login", "verified")


@router.get("/login")
def login_page(request: Request, db: DbSession, next: str = "") -> Response:
    """The citizen sign-in form."""
    if current_citizen(request, db) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _page(request, "login.html", next=_safe_next(next), email="")


@router.post("/login")
def login(
    request: Request,
    db: DbSession,
    email: Annotated[str, Form(max_length=1000)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Check the password (then the authenticator code, when the citizen turned it on)."""
    target = _safe_next(next)

    def again(message: str, status: int) -> Response:
        return _page(request, "login.html", status, next=target, email=email, error=message)

    def change() -> tuple[flows.SignIn, Email | None]:
        result = flows.sign_in(
            db=db,
            email=email,
            password=password,
            ip=_ip(request),
            policy=login_policy_of(request),
            lifetime=_lifetime(request),
        )
        mail = None
        if result.status == "unverified" and result.user_id:
            citizen = service.get_citizen(db=db, citizen_id=result.user_id)
            mail = flows.verification_email(db=db, settings=settings_of(request), citizen=citizen)
        return result, mail

    def done(outcome: tuple[flows.SignIn, Email | None]) -> Response:
        result, mail = outcome
        if mail is not None:
            return again(UNVERIFIED, 403)
        if result.status == "ok" and result.session_key:
            return _with_session(request, target, result.session_key, _lifetime(request))
        if result.status == "code" and result.session_key:
            return _with_session(
                request,
                "/consulate/login/code?" + urlencode({"next": target}),
                result.session_key,
                login_policy_of(request).mfa_timeout,
            )
        if result.status == "blocked":
            return again(BLOCKED, 429)
        return again(BAD_LOGIN, 401)

    return _citizen_form(
        request,
        db,
        csrf_token,
        change,
        expired=lambda: again(FORM_EXPIRED, 400),
        deliver=lambda outcome: _send(request, [outcome[1]]) if outcome[1] else None,
        done=done,
    )


@router.get("/login/code")
def code_page(request: Request, next: str = "") -> Response:
    """Ask for the authenticator code."""
    return _page(request, "login_code.html", next=_safe_next(next))


@router.post("/login/code")
def login_code(
    request: Request,
    db: DbSession,
    code: Annotated[str, Form(max_length=100)] = "",
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Check the authenticator code and finish signing in."""
    target = _safe_next(next)
    key = _session_key(request)

    def done(result: flows.SignIn) -> Response:
        if result.status == "ok" and result.session_key:
            return _with_session(request, target, result.session_key, _lifetime(request))
        if result.status == "failed" and result.session_key:
            return _page(request, "login_code.html", 401, next=target, error=BAD_CODE)
        message = BLOCKED if result.status == "blocked" else CODE_EXPIRED
        return _page(request, "login.html", 400, next=target, email="", error=message)

    return _citizen_form(
        request,
        db,
        csrf_token if key is not None else None,
        lambda: flows.sign_in_code(
            db=db,
            pending_key=key or "",
            code=code,
            ip=_ip(request),
            policy=login_policy_of(request),
            lifetime=_lifetime(request),
        ),
        expired=lambda: _page(
            request, "login.html", 400, next=target, email="", error=CODE_EXPIRED
        ),
        done=done,
    )


@router.post("/logout")
def logout(
    request: Request, db: DbSession, csrf_token: Annotated[str, Form(max_length=1000)] = ""
) -> Response:
    """Sign out."""
    key = _session_key(request)

    def done(_: None) -> Response:
        response = RedirectResponse("/consulate/", status_code=303)
        response.delete_cookie(CITIZEN_COOKIE, path="/")
        return response

    return _citizen_form(
        request,
        db,
        csrf_token,
        lambda: service.end_session(db=db, key=key) if key else None,
        done=done,
    )


@router.get("/reset")
def reset_page(request: Request, token: str = "") -> Response:
    """Ask for a reset link, or (with a token) choose a new password."""
    return _page(request, "reset.html", token=token[:200], email="")


class _BadLink(Exception):
    """The reset link is not valid any more."""


@router.post("/reset")
def reset(
    request: Request,
    db: DbSession,
    email: Annotated[str, Form(max_length=1000)] = "",
    token: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Send a reset link, or set the new password."""

    def expired() -> Response:
        return _page(request, "reset.html", 400, token=token, email=email, error=FORM_EXPIRED)

    if not token:
        return _citizen_form(
            request,
            db,
            csrf_token,
            lambda: flows.request_reset(db=db, settings=settings_of(request), email=email),
            expired=expired,
            deliver=lambda mail: _send(request, [mail]) if mail is not None else None,
            done=lambda _: _back("/consulate/login", "reset_sent"),
        )

    def change() -> Citizen:
        citizen = flows.reset_password(db=db, token=token, password=password)
        if citizen is None:
            raise _BadLink
        return citizen

    def done(_: Citizen) -> Response:
        response = _back("/consulate/login", "password_set")
        response.delete_cookie(CITIZEN_COOKIE, path="/")
        return response

    return _citizen_form(
        request,
        db,
        csrf_token,
        change,
        expired=expired,
        invalid=lambda exc: _page(
            request, "reset.html", 400, token=token, email="", errors=_problems(request, exc)
        ),
        refused=[(_BadLink, lambda _: _page(request, "message.html", 400, message=BAD_LINK))],
        done=done,
    )


@router.get("/totp")
def totp_page(request: Request, citizen: CitizenUser) -> Response:
    """Offer two-step sign-in with an authenticator app."""
    secret = flows.start_totp()
    return _page(
        request, "totp.html", secret=secret, uri=totp_uri(secret=secret, email=citizen.email)
    )


@router.post("/totp")
def totp(
    request: Request,
    db: DbSession,
    citizen: CitizenUser,
    secret: Annotated[str, Form(max_length=64)] = "",
    code: Annotated[str, Form(max_length=20)] = "",
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Turn on two-step sign-in once the code from the app matches."""

    def done(enabled: bool) -> Response:
        if enabled:
            return _back("/consulate/home", "totp_on")
        shown = secret if valid_totp_secret(secret) else flows.start_totp()
        uri = totp_uri(secret=shown, email=citizen.email)
        return _page(request, "totp.html", 400, secret=shown, uri=uri, error=BAD_CODE)

    return _citizen_form(
        request,
        db,
        csrf_token,
        lambda: flows.enable_totp(db=db, citizen_id=citizen.id, secret=secret, code=code),
        done=done,
    )


# ---------------------------------------------------------------------------- the citizen's page


@router.get("/home")
def home(request: Request, db: DbSession, citizen: CitizenUser) -> Response:
    """Stays, requests and appointments of the signed-in citizen."""
    today = utcnow().date()
    requests = service.citizen_requests(db=db, citizen_id=citizen.id)
    appointments = service.citizen_appointments(db=db, citizen_id=citizen.id)
    return _page(
        request,
        "home.html",
        stays=service.citizen_stays(db=db, citizen_id=citizen.id),
        requests=requests,
        appointments=appointments,
        zones=service.mission_zones(db=db, ids={s.mission_id for _, s in appointments}),
        services=service.service_types(db=db, ids={r.service_type_id for r in requests}),
        today=today,
        telegram_link=telegram_link_url(settings_of(request), citizen.id),
    )


@router.get("/stays/new")
def stay_page(request: Request, db: DbSession, citizen: CitizenUser) -> Response:
    """The form to register a stay abroad."""
    return _page(
        request,
        "stay.html",
        values={"phone": citizen.phone},
        missions=service.consular_missions(db=db),
        companions=range(3),
    )


@router.post("/stays/new")
async def stay_new(request: Request, db: DbSession, citizen: CitizenUser) -> Response:
    """Register a stay abroad."""
    form = await request.form(max_files=0, max_fields=200)
    raw = {k: str(v) for k, v in form.items()}

    def work() -> Response:
        return _citizen_form(
            request,
            db,
            raw.get("csrf_token"),
            lambda: service.register_stay(db=db, citizen_id=citizen.id, raw=raw),
            invalid=lambda exc: _page(
                request,
                "stay.html",
                400,
                values=raw,
                missions=service.consular_missions(db=db),
                companions=range(3),
                errors=_problems(request, exc),
            ),
            done=lambda _: _back("/consulate/home", "stay"),
        )

    return await run_in_threadpool(work)


@router.post("/stays/{registration_id}/{action}")
def stay_action(
    request: Request,
    db: DbSession,
    citizen: CitizenUser,
    registration_id: Id,
    action: str,
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Confirm or cancel a registered stay."""
    actions = {"confirm": service.confirm_stay, "cancel": service.cancel_stay}

    def change() -> Any:
        if action not in actions:
            raise service.NotFound(action)
        return actions[action](db=db, citizen_id=citizen.id, registration_id=registration_id)

    return _citizen_form(
        request,
        db,
        csrf_token,
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
def apply(
    request: Request,
    db: DbSession,
    citizen: CitizenUser,
    service_type_id: Id,
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Start a draft request for a service."""
    return _citizen_form(
        request,
        db,
        csrf_token,
        lambda: service.create_draft(db=db, citizen_id=citizen.id, service_type_id=service_type_id),
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
        values=values if values is not None else req.answers,
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


@router.get("/requests/{request_id}")
def request_page(request: Request, db: DbSession, citizen: CitizenUser, request_id: Id) -> Response:
    """One of the citizen's requests: form, documents, status, history, messages, appointment."""
    try:
        req = service.citizen_request(db=db, citizen_id=citizen.id, request_id=request_id)
    except service.NotFound:
        return _not_found(request)
    return _request_page(request, db, citizen, req)


@router.post("/requests/{request_id}/answers")
async def save_answers(
    request: Request, db: DbSession, citizen: CitizenUser, request_id: Id
) -> Response:
    """Save the form as a draft, or save and submit."""
    form = await request.form(max_files=0, max_fields=200)
    raw = {k: str(v) for k, v in form.items()}
    submit = raw.get("action") == "submit"

    def then_submit(_: Any) -> Response:
        if not submit:
            return _back(f"/consulate/requests/{request_id}", "saved")
        return _citizen_form(
            request,
            db,
            CHECKED,
            lambda: flows.submit_request(
                db=db, settings=settings_of(request), citizen_id=citizen.id, request_id=request_id
            ),
            invalid=lambda exc: _request_again(request, db, citizen, request_id, exc),
            deliver=lambda mail: _send(request, [mail]),
            done=lambda _: _back(f"/consulate/requests/{request_id}", "submitted"),
        )

    def work() -> Response:
        return _citizen_form(
            request,
            db,
            raw.get("csrf_token"),
            lambda: service.save_answers(
                db=db, citizen_id=citizen.id, request_id=request_id, raw=raw, complete=submit
            ),
            invalid=lambda exc: _request_again(request, db, citizen, request_id, exc, values=raw),
            done=then_submit,
        )

    return await run_in_threadpool(work)


async def _read_upload(file: UploadFile, limit: int) -> bytes:
    """Read at most limit+1 bytes so an oversized file is noticed without reading it all."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await file.read(min(1 << 20, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


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
    data = await _read_upload(file, limit) if isinstance(file, UploadFile) else b""
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
        return _citizen_form(
            request,
            db,
            token,
            change,
            invalid=lambda exc: _request_again(request, db, citizen, request_id, exc),
            done=lambda _: _back(f"/consulate/requests/{request_id}", "uploaded"),
        )

    return await run_in_threadpool(work)


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


@router.get("/documents/{document_id}")
def document(request: Request, db: DbSession, citizen: CitizenUser, document_id: Id) -> Response:
    """Download one of the citizen's own documents (always as an attachment)."""
    try:
        doc = service.citizen_document(db=db, citizen_id=citizen.id, document_id=document_id)
    except service.NotFound:
        return _not_found(request)
    return _download(doc, settings_of(request))


@router.post("/documents/{document_id}/delete")
def delete_document(
    request: Request,
    db: DbSession,
    citizen: CitizenUser,
    document_id: Id,
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Remove a document from a request that can still be changed."""

    def change() -> int:
        doc = service.citizen_document(db=db, citizen_id=citizen.id, document_id=document_id)
        request_id = doc.request_id
        flows.delete_document(
            db=db, settings=settings_of(request), citizen_id=citizen.id, document_id=document_id
        )
        return request_id

    return _citizen_form(
        request,
        db,
        csrf_token,
        change,
        done=lambda request_id: _back(f"/consulate/requests/{request_id}", "saved"),
    )


@router.post("/requests/{request_id}/messages")
def citizen_message(
    request: Request,
    db: DbSession,
    citizen: CitizenUser,
    request_id: Id,
    body: Annotated[str, Form(max_length=10000)] = "",
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Write to the consular section about a request."""
    return _citizen_form(
        request,
        db,
        csrf_token,
        lambda: service.post_message(
            db=db,
            request=service.citizen_request(db=db, citizen_id=citizen.id, request_id=request_id),
            kind="citizen",
            sender_id=citizen.id,
            label=citizen.name,
            body=body,
        ),
        invalid=lambda exc: _request_again(request, db, citizen, request_id, exc),
        done=lambda _: _back(f"/consulate/requests/{request_id}", "sent"),
    )


@router.post("/requests/{request_id}/book")
def book(
    request: Request,
    db: DbSession,
    citizen: CitizenUser,
    request_id: Id,
    slot_id: Annotated[str, Form(max_length=12)] = "",
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Book (or move to) a slot for a request."""
    return _citizen_form(
        request,
        db,
        csrf_token,
        lambda: service.book_or_move(
            db=db, citizen_id=citizen.id, request_id=request_id, slot_id=slot_id
        ),
        refused=[
            (
                service.SlotFull,
                lambda exc: _request_again(request, db, citizen, request_id, exc, status=409),
            )
        ],
        invalid=lambda exc: _request_again(request, db, citizen, request_id, exc),
        done=lambda booked: _back(
            f"/consulate/requests/{request_id}", "moved" if booked.moved else "booked"
        ),
    )


@router.post("/appointments/{appointment_id}/cancel")
def cancel_appointment(
    request: Request,
    db: DbSession,
    citizen: CitizenUser,
    appointment_id: Id,
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Cancel an appointment."""

    def done(appointment: Any) -> Response:
        request_id = appointment.request_id
        return _back(
            f"/consulate/requests/{request_id}" if request_id else "/consulate/home", "cancelled"
        )

    return _citizen_form(
        request,
        db,
        csrf_token,
        lambda: service.cancel(db=db, citizen_id=citizen.id, appointment_id=appointment_id),
        done=done,
    )


@router.get("/access")
def access(request: Request, db: DbSession, citizen: CitizenUser) -> Response:
    """Who of the staff viewed or changed my file, and when."""
    rows = service.access_log(db=db, citizen_id=citizen.id)
    return _page(request, "access.html", rows=rows, actions=ACCESS_ACTIONS)


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


# ---------------------------------------------------------------------------- officers


def _officer_page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("errors", {})
    context.setdefault("notice", request.query_params.get("notice"))
    context["notices"] = NOTICES
    context["status_names"] = service.STATUS_NAMES
    context["active"] = "consular"
    context["names_of"] = lambda names: names.get(request_language(request)) or names.get("en", "")
    return render(request, "consulate/" + template, context, status=status)


def _forbidden(request: Request) -> Response:
    return render(request, "error.html", {"message": NOT_ALLOWED}, status=403)


def _officer_mission(principal: Any, db: Session, mission: int) -> int | None:
    """Return the mission the officer works on: the one asked for if allowed, else their first."""
    allowed = principal.missions_where("consulate.read")
    if mission and (allowed is None or mission in allowed):
        return mission
    if allowed:
        return min(allowed)
    missions = service.consular_missions(db=db)
    return missions[0].id if missions else None


QUEUE_PAGE = 50


def _queue_rows(
    db: Session, principal: Principal, status: str, service_type: int, older: int, page: int
) -> tuple[int, list[service.QueueRow]]:
    """One page of the officers' queue (the page and the API share the bounds)."""
    return service.queue(
        db=db,
        actor=principal,
        status=status or None,
        service_type_id=service_type or None,
        older_than_days=max(0, min(older, 3650)) or None,
        limit=QUEUE_PAGE,
        offset=(page - 1) * QUEUE_PAGE,
    )


@staff.get("")
def queue(
    request: Request,
    db: DbSession,
    principal: StaffUser,
    status: str = "",
    service_type: QueryId = 0,
    older: int = 0,
    page: int = 1,
) -> Response:
    """The queue of requests by service, status and age."""
    if status and status not in service.STATUS_NAMES:
        status = ""
    page = max(1, min(page, 10_000))
    try:
        total, rows = _queue_rows(db, principal, status, service_type, older, page)
    except PermissionDenied:
        return _forbidden(request)
    kinds = service.service_names(db=db, mission_ids=principal.missions_where("consulate.read"))
    return _officer_page(
        request,
        "queue.html",
        rows=rows,
        total=total,
        page=page,
        filters={"status": status, "service_type": service_type, "older": older},
        kinds=kinds,
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
        return _staff_not_found(request)
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
    request: Request,
    db: DbSession,
    principal: StaffUser,
    request_id: Id,
    action: str,
    note: Annotated[str, Form(max_length=10000)] = "",
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Claim, ask for documents, approve, reject, or write to the applicant."""
    settings = settings_of(request)
    actions: dict[str, tuple[Callable[[], Any], str]] = {
        "claim": (
            lambda: flows.claim_request(
                db=db, settings=settings, actor=principal, request_id=request_id
            ),
            "claimed",
        ),
        "ask": (
            lambda: flows.ask_for_documents(
                db=db, settings=settings, actor=principal, request_id=request_id, note=note
            ),
            "asked",
        ),
        "approve": (
            lambda: flows.decide_request(
                db=db,
                settings=settings,
                actor=principal,
                request_id=request_id,
                approve=True,
                reason=note,
            ),
            "decided",
        ),
        "reject": (
            lambda: flows.decide_request(
                db=db,
                settings=settings,
                actor=principal,
                request_id=request_id,
                approve=False,
                reason=note,
            ),
            "decided",
        ),
        "message": (
            lambda: flows.staff_message(
                db=db, settings=settings, actor=principal, request_id=request_id, body=note
            )[1],
            "sent",
        ),
    }

    def change() -> Any:
        if action not in actions:
            raise service.NotFound(action)
        return actions[action][0]()

    def refused(exc: service.Invalid) -> Response:
        req = service.staff_request(db=db, actor=principal, request_id=request_id)
        db.commit()  # the view of the request is recorded
        errors = _problems(request, exc)
        return _officer_request_page(request, db, principal, req, status=400, errors=errors)

    return _officer_form(
        request,
        db,
        csrf_token,
        change,
        invalid=refused,
        deliver=lambda mail: _send(request, [mail]),
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
        return _staff_not_found(request)
    db.commit()
    return _download(doc, settings_of(request))


def _day(value: str) -> date | None:
    """The day asked for (today when none), or None when it is not a date (or out of range)."""
    return parse_date(value[:10]) if value else utcnow().date()


def _bad_day(request: Request) -> Response:
    return render(request, "error.html", {"message": service.BAD_DATE}, status=400)


@staff.get("/slots")
def slots_page(
    request: Request, db: DbSession, principal: StaffUser, mission: QueryId = 0, week: str = ""
) -> Response:
    """The slot calendar of a mission, a week at a time."""
    mission_id = _officer_mission(principal, db, mission)
    if mission_id is None:
        return _staff_not_found(request)
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
async def slots_add(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Open slots on a day."""
    form = await request.form(max_files=0, max_fields=20)
    raw = {k: str(v) for k, v in form.items()}
    asked = raw.get("mission_id", "")
    kind = raw.get("service_type_id", "")

    def work() -> Response:
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
            request,
            db,
            raw.get("csrf_token"),
            change,
            invalid=refused,
            done=lambda _: _back(f"/consular/slots?mission={mission_id}&week={day}", "slots"),
        )

    return await run_in_threadpool(work)


# ---------------------------------------------------------------------------- catalogue


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
    request: Request, db: DbSession, principal: StaffUser, mission: QueryId = 0
) -> Response:
    """A mission's service catalogue, for the staff who edit it."""
    mission_id = _officer_mission(principal, db, mission)
    if mission_id is None:
        return _staff_not_found(request)
    try:
        rows = service.catalogue(db=db, actor=principal, mission_id=mission_id)
    except PermissionDenied:
        return _forbidden(request)
    return _officer_page(request, "catalogue.html", rows=rows, mission_id=mission_id)


@staff.get("/catalogue/new")
def catalogue_new(
    request: Request, db: DbSession, principal: StaffUser, mission: QueryId = 0
) -> Response:
    """The form for a new service."""
    mission_id = _officer_mission(principal, db, mission)
    if mission_id is None:
        return _staff_not_found(request)
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
        return _staff_not_found(request)
    if not principal.can("consulate.act", row.mission_id):
        return _forbidden(request)
    return _catalogue_form(request, db, row.mission_id, row)


@staff.post("/catalogue")
async def catalogue_save(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Create or change a service from the catalogue form."""
    form = await request.form(max_files=0, max_fields=1000)
    raw = {k: str(v) for k, v in form.items()}
    existing = raw.get("service_type_id", "")
    mission_raw = raw.get("mission_id", "")

    def work() -> Response:
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
            request,
            db,
            raw.get("csrf_token"),
            change,
            invalid=lambda exc: _catalogue_form(
                request, db, mission_id, row, values=raw, errors=_problems(request, exc), status=400
            ),
            done=lambda _: _back(f"/consular/catalogue?mission={mission_id}", "catalogue"),
        )

    return await run_in_threadpool(work)


@staff.post("/catalogue/{service_type_id}/{action}")
def catalogue_toggle(
    request: Request,
    db: DbSession,
    principal: StaffUser,
    service_type_id: Id,
    action: str,
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Stop offering a service (deactivate) or offer it again (activate)."""
    row = _editable_service(db, principal, service_type_id)

    def change() -> int:
        if row is None or action not in ("activate", "deactivate"):
            raise service.NotFound(action)
        service.set_service_active(
            db=db, actor=principal, service_type_id=row.id, active=action == "activate"
        )
        return row.mission_id

    return _officer_form(
        request,
        db,
        csrf_token,
        change,
        done=lambda mission_id: _back(f"/consular/catalogue?mission={mission_id}", "catalogue"),
    )


@staff.get("/appointments")
def day_page(
    request: Request, db: DbSession, principal: StaffUser, mission: QueryId = 0, day: str = ""
) -> Response:
    """The appointments of one day (names seen are recorded for each citizen)."""
    mission_id = _officer_mission(principal, db, mission)
    if mission_id is None:
        return _staff_not_found(request)
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
def mark(
    request: Request,
    db: DbSession,
    principal: StaffUser,
    appointment_id: Id,
    status: str,
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Mark an appointment attended or no-show."""

    def done(result: Any) -> Response:
        slot = db.get(Slot, result.slot_id)
        zone = service.mission_zone(db=db, mission_id=slot.mission_id) if slot else UTC
        day = slot.starts_at.astimezone(zone).date().isoformat() if slot else ""
        mission = slot.mission_id if slot else 0
        return _back(f"/consular/appointments?day={day}&mission={mission}", "marked")

    return _officer_form(
        request,
        db,
        csrf_token,
        lambda: service.mark_appointment(
            db=db, actor=principal, appointment_id=appointment_id, status=status
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


# ---------------------------------------------------------------------------- JSON API


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
def api_queue(
    db: DbSession,
    principal: StaffUser,
    status: str = "",
    service_type: QueryId = 0,
    older: int = 0,
    page: int = 1,
) -> QueueOut:
    """Requests of the caller's missions by status (default: open), service and age, 50 a page."""
    if status and status not in service.STATUS_NAMES:
        raise HTTPException(422, f"status: one of {', '.join(service.STATUS_NAMES)}")
    page = max(1, min(page, 10_000))
    try:
        total, rows = _queue_rows(db, principal, status, service_type, older, page)
    except PermissionDenied:
        raise HTTPException(403, "needs role consular, ambassador or admin") from None
    return QueueOut(total=total, page=page, rows=[QueueRowOut.model_validate(r) for r in rows])


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


def install(app: Any) -> None:
    """Mount the e-consulate's pages, its JSON API and its sign-in redirect on the app."""
    app.add_exception_handler(CitizenLoginRequired, to_citizen_login)
    app.include_router(router)
    app.include_router(staff)
    app.include_router(api)
