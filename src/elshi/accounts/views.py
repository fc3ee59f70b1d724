"""Staff sign-in pages (password, then TOTP when enrolled), sign-out and /api/me."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from elshi.accounts import flows
from elshi.accounts.models import ApiToken, User
from elshi.accounts.schemas import GrantOut, MeOut
from elshi.accounts.service import (
    TOKEN_SCOPES,
    Principal,
    list_api_tokens,
    new_totp_secret,
    totp_uri,
    valid_totp_secret,
)
from elshi.accounts.signin import BAD_CODE, BAD_LOGIN, BLOCKED, CODE_EXPIRED
from elshi.missions.models import Mission
from elshi.web.actions import SentForm, SignInForm, StaffAction, StaffForm
from elshi.web.deps import (
    SESSION_COOKIE,
    STAFF_SESSION,
    DbSession,
    StaffUser,
    current_principal,
    session_key,
)
from elshi.web.i18n import N_
from elshi.web.pages import FORM_EXPIRED
from elshi.web.templating import (
    client_ip,
    render,
)

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api", tags=["accounts"])

MISSING = N_("Enter your e-mail and password.")
PASSWORD_ERRORS = {
    "current": N_("The current password is wrong."),
    "short": N_("The new password must have at least 12 characters."),
    "same": N_("The new password must differ from the current one."),
}
ACCOUNT_NOTICES = {
    "totp_on": N_("Two-step sign-in is on. Next time, elshi asks for a code from your app."),
    "password_changed": N_("Your password is changed."),
    "token_revoked": N_("The API token is revoked: it no longer works."),
}
BAD_TOKEN_FORM = N_("Choose read or write, and a whole number of days (1 to 3650) or none.")


def safe_next(value: str | None) -> str:
    """Return a local path to go to after sign-in (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if value.startswith(("/login", "/logout")):
        return "/"
    return value


def _login_page(
    request: Request,
    *,
    next_url: str,
    email: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    return render(
        request, "login.html", {"next": next_url, "email": email, "error": error}, status=status
    )


@router.get("/login")
def login_page(request: Request, db: DbSession, next: str = "/") -> Response:
    """Show the sign-in form (or go on if already signed in)."""
    if current_principal(request, db) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next_url=safe_next(next))


@router.post("/login")
def login(act: SignInForm) -> Response:
    """Check the e-mail and password; then the TOTP step if the user enrolled one."""
    request = act.request
    target = safe_next(act.next)
    email = act.email.strip()

    def again(error: str, status: int) -> Response:
        return _login_page(request, next_url=target, email=email, error=error, status=status)

    if not act.valid():
        return again(FORM_EXPIRED, 400)
    if not email or not act.password:
        return again(MISSING, 400)
    result = flows.sign_in(
        db=act.db, email=email, password=act.password, **STAFF_SESSION.attempt(request)
    )
    act.db.commit()
    return STAFF_SESSION.password_answer(request, target, result, again)


@router.get("/login/code")
def code_page(request: Request, next: str = "/") -> Response:
    """Ask for the authenticator code of a pending sign-in."""
    if session_key(request) is None:
        return RedirectResponse("/login", status_code=303)
    return render(request, "login_code.html", {"next": safe_next(next), "error": None})


@router.post("/login/code")
def login_code(act: SignInForm) -> Response:
    """Check the authenticator code and finish signing in."""
    request = act.request
    target = safe_next(act.next)
    key = session_key(request)

    def again(error: str, status: int) -> Response:
        return render(request, "login_code.html", {"next": target, "error": error}, status=status)

    def otherwise(result: flows.SignIn) -> Response:
        if result.status == "blocked":
            return again(BLOCKED, 429)
        if result.status == "expired":
            return _login_page(request, next_url=target, error=CODE_EXPIRED, status=400)
        return _login_page(request, next_url=target, error=BAD_LOGIN, status=401)

    if key is None:
        return _login_page(request, next_url=target, error=CODE_EXPIRED, status=400)
    if not act.valid():
        return again(FORM_EXPIRED, 400)
    result = flows.sign_in_code(
        db=act.db, pending_key=key, code=act.code, **STAFF_SESSION.attempt(request)
    )
    act.db.commit()
    return STAFF_SESSION.code_answer(request, target, result, again, otherwise)


@router.post("/logout")
def logout(act: SentForm) -> Response:
    """End the session and go back to the sign-in page."""
    if not act.valid():
        return render(act.request, "error.html", {"message": FORM_EXPIRED}, status=400)
    key = session_key(act.request)
    if key:
        flows.sign_out(db=act.db, session_key=key, ip=client_ip(act.request))
        act.db.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ---------------------------------------------------------------------------- own account


def _account_page(
    request: Request,
    db: DbSession,
    principal: Principal,
    *,
    error: str | None = None,
    status: int = 200,
    notice: str | None = None,
    new_token: str | None = None,
) -> Response:
    user = db.get(User, principal.user_id) if principal.user_id is not None else None
    missions = {m: name for m, name in db.execute(select(Mission.id, Mission.name))}
    grants = [(missions.get(m, str(m)), role) for m, role in principal.grants]
    context = {
        "active": "account",
        "user": user,
        "grants": sorted(grants),
        "error": error,
        "notice": ACCOUNT_NOTICES.get(notice or ""),
        "tokens": list_api_tokens(db=db, user_id=user.id) if user else [],
        "scopes": TOKEN_SCOPES,
        "new_token": new_token,
    }
    return render(request, "account.html", context, status=status)


def _account_refused(act: StaffAction, error: str) -> Response:
    """The account page again (400) with why the form was refused."""
    return _account_page(act.request, act.db, act.principal, error=error, status=400)


@router.get("/account")
def account(request: Request, db: DbSession, principal: StaffUser, done: str = "") -> Response:
    """The signed-in user's own account: roles, two-step sign-in and password."""
    return _account_page(request, db, principal, notice=done)


def _totp_page(
    request: Request, principal: Principal, secret: str, error: str | None = None, status: int = 200
) -> Response:
    secret = secret if valid_totp_secret(secret) else new_totp_secret()
    uri = totp_uri(secret=secret, email=principal.email)
    context = {"active": "account", "secret": secret, "uri": uri, "error": error}
    return render(request, "account_totp.html", context, status=status)


@router.get("/account/totp")
def totp_page(request: Request, principal: StaffUser) -> Response:
    """Offer a new authenticator key; it is kept only once a code from the app matches."""
    return _totp_page(request, principal, new_totp_secret())


@router.post("/account/totp")
def totp(
    act: StaffForm,
    secret: Annotated[str, Form(max_length=64)] = "",
    code: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Turn on two-step sign-in when the code from the app matches the offered key."""
    if not act.valid():
        return _totp_page(act.request, act.principal, secret, FORM_EXPIRED, 400)
    if not flows.enable_own_totp(db=act.db, actor=act.principal, secret=secret, code=code):
        act.db.rollback()
        return _totp_page(act.request, act.principal, secret or new_totp_secret(), BAD_CODE, 400)
    act.db.commit()
    return RedirectResponse("/account?done=totp_on", status_code=303)


@router.post("/account/password")
def change_password(
    act: StaffForm,
    current: Annotated[str, Form(max_length=4096)] = "",
    new: Annotated[str, Form(max_length=4096)] = "",
) -> Response:
    """Change the signed-in user's password after checking the current one."""
    if not act.valid():
        return _account_refused(act, FORM_EXPIRED)
    problem = flows.change_own_password(
        db=act.db,
        actor=act.principal,
        current=current,
        new=new,
        session_key=session_key(act.request),
    )
    if problem is not None:
        act.db.rollback()
        return _account_refused(act, PASSWORD_ERRORS[problem])
    act.db.commit()
    return RedirectResponse("/account?done=password_changed", status_code=303)


@router.post("/account/tokens")
def create_token(
    act: StaffForm,
    name: Annotated[str, Form(max_length=100)] = "",
    scope: Annotated[str, Form(max_length=20)] = "read",
    days: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Make an API token for the signed-in user; it is shown once, on the page this returns."""
    if not act.valid():
        return _account_refused(act, FORM_EXPIRED)
    lifetime = int(days) if days.strip().isdigit() else None
    if scope not in TOKEN_SCOPES or (days.strip() and not (lifetime and lifetime <= 3650)):
        return _account_refused(act, BAD_TOKEN_FORM)
    plain = flows.issue_token(
        db=act.db,
        actor=act.principal,
        email=act.principal.email,
        name=name.strip(),
        days=lifetime,
        scope=scope,
    )
    act.db.commit()
    return _account_page(act.request, act.db, act.principal, new_token=plain)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(act: StaffForm, token_id: Annotated[int, Path(ge=1, le=2**62)]) -> Response:
    """Revoke one of the signed-in user's own API tokens."""
    if not act.valid():
        return _account_refused(act, FORM_EXPIRED)
    row = act.db.get(ApiToken, token_id)
    if row is None or row.user_id != act.principal.user_id:
        raise HTTPException(404, "no such token")
    flows.revoke_token(db=act.db, actor=act.principal, token_id=token_id)
    act.db.commit()
    return RedirectResponse("/account?done=token_revoked", status_code=303)


@api.get("/me", response_model=MeOut, summary="Who am I")
def me(principal: StaffUser) -> MeOut:
    """The signed-in user (session or API token) with their roles."""
    return MeOut(
        id=principal.user_id,
        email=principal.email,
        name=principal.name,
        via=principal.via,
        staff=principal.is_staff,
        all_missions=principal.missions_where("listen.read") is None,
        grants=[GrantOut(mission_id=m, role=r) for m, r in principal.grants],
    )
