"""The e-consulate's app shell (manifest, service worker) and the citizen's account."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from elshi.accounts.service import totp_uri, valid_totp_secret
from elshi.accounts.signin import BAD_CODE, BLOCKED, CODE_EXPIRED
from elshi.consulate import flows, service
from elshi.consulate.models import Citizen
from elshi.consulate.views.common import (
    BAD_LINK,
    CITIZEN_COOKIE,
    CITIZEN_SESSION,
    FORM_EXPIRED,
    STATIC,
    UNVERIFIED,
    CitizenForm,
    CitizenUser,
    _back,
    _citizen_form,
    _page,
    _problems,
    _safe_next,
    current_citizen,
    router,
)
from elshi.notify import Message as Email
from elshi.web.actions import FormAction, SentForm, SignInForm
from elshi.web.deps import DbSession
from elshi.web.templating import (
    request_language,
    settings_of,
    translate,
)


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
    act: SentForm,
    email: Annotated[str, Form(max_length=1000)] = "",
    name: Annotated[str, Form(max_length=1000)] = "",
    phone: Annotated[str, Form(max_length=1000)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
) -> Response:
    """Create an account and e-mail the confirmation link."""
    request = act.request
    values = {"email": email, "name": name, "phone": phone}
    return _citizen_form(
        act,
        lambda: flows.sign_up(
            db=act.db,
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
def login(act: SignInForm) -> Response:
    """Check the password (then the authenticator code, when the citizen turned it on)."""
    request = act.request
    target = _safe_next(act.next)

    def again(message: str, status: int) -> Response:
        return _page(request, "login.html", status, next=target, email=act.email, error=message)

    def change() -> tuple[flows.SignIn, Email | None]:
        result = flows.sign_in(
            db=act.db, email=act.email, password=act.password, **CITIZEN_SESSION.attempt(request)
        )
        mail = None
        if result.status == "unverified" and result.user_id:
            citizen = service.get_citizen(db=act.db, citizen_id=result.user_id)
            mail = flows.verification_email(
                db=act.db, settings=settings_of(request), citizen=citizen
            )
        return result, mail

    def done(outcome: tuple[flows.SignIn, Email | None]) -> Response:
        result, mail = outcome
        if mail is not None:
            return again(UNVERIFIED, 403)
        return CITIZEN_SESSION.password_answer(request, target, result, again)

    return _citizen_form(
        act,
        change,
        expired=lambda: again(FORM_EXPIRED, 400),
        done=done,
    )


@router.get("/login/code")
def code_page(request: Request, next: str = "") -> Response:
    """Ask for the authenticator code."""
    return _page(request, "login_code.html", next=_safe_next(next))


@router.post("/login/code")
def login_code(act: SignInForm) -> Response:
    """Check the authenticator code and finish signing in."""
    request = act.request
    target = _safe_next(act.next)
    key = CITIZEN_SESSION.key(request)

    def again(message: str, status: int) -> Response:
        return _page(request, "login_code.html", status, next=target, error=message)

    def start_over(message: str) -> Response:
        return _page(request, "login.html", 400, next=target, email="", error=message)

    return _citizen_form(
        FormAction(request, act.db, act.token if key is not None else None),
        lambda: flows.sign_in_code(
            db=act.db, pending_key=key or "", code=act.code, **CITIZEN_SESSION.attempt(request)
        ),
        expired=lambda: start_over(CODE_EXPIRED),
        done=lambda result: CITIZEN_SESSION.code_answer(
            request,
            target,
            result,
            again,
            lambda other: start_over(BLOCKED if other.status == "blocked" else CODE_EXPIRED),
        ),
    )


@router.post("/logout")
def logout(act: SentForm) -> Response:
    """Sign out."""
    key = CITIZEN_SESSION.key(act.request)

    def done(_: None) -> Response:
        response = RedirectResponse("/consulate/", status_code=303)
        response.delete_cookie(CITIZEN_COOKIE, path="/")
        return response

    return _citizen_form(
        act,
        lambda: service.end_session(db=act.db, key=key) if key else None,
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
    act: SentForm,
    email: Annotated[str, Form(max_length=1000)] = "",
    token: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
) -> Response:
    """Send a reset link, or set the new password."""
    request = act.request

    def expired() -> Response:
        return _page(request, "reset.html", 400, token=token, email=email, error=FORM_EXPIRED)

    if not token:
        return _citizen_form(
            act,
            lambda: flows.request_reset(db=act.db, settings=settings_of(request), email=email),
            expired=expired,
            done=lambda _: _back("/consulate/login", "reset_sent"),
        )

    def change() -> Citizen:
        citizen = flows.reset_password(db=act.db, token=token, password=password)
        if citizen is None:
            raise _BadLink
        return citizen

    def done(_: Citizen) -> Response:
        response = _back("/consulate/login", "password_set")
        response.delete_cookie(CITIZEN_COOKIE, path="/")
        return response

    return _citizen_form(
        act,
        change,
        expired=expired,
        invalid=lambda exc: _page(
            request,
            "reset.html",
            400,
            token=token,
            email="",
            errors=_problems(request, exc),
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
    act: CitizenForm,
    secret: Annotated[str, Form(max_length=64)] = "",
    code: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Turn on two-step sign-in once the code from the app matches."""

    def done(enabled: bool) -> Response:
        if enabled:
            return _back("/consulate/home", "totp_on")
        shown = secret if valid_totp_secret(secret) else flows.start_totp()
        uri = totp_uri(secret=shown, email=act.citizen.email)
        return _page(act.request, "totp.html", 400, secret=shown, uri=uri, error=BAD_CODE)

    return _citizen_form(
        act,
        lambda: flows.enable_totp(db=act.db, citizen_id=act.citizen.id, secret=secret, code=code),
        done=done,
    )
