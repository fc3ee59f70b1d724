"""Shared FastAPI dependencies: the database session and the signed-in user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.orm import Session

from elshi import crypto
from elshi.accounts import service as accounts
from elshi.accounts.service import Principal
from elshi.db import Database
from elshi.settings import Settings
from elshi.web.i18n import N_, gettext
from elshi.web.templating import SessionCookie, csrf_valid, request_language

SESSION_COOKIE = "elshi_session"
#: The staff user's session cookie.
STAFF_SESSION = SessionCookie(
    SESSION_COOKIE,
    crypto.SESSION,
    "elshi.session",
    "session_max_age_minutes",
    "/login/code",
    browser=True,
)
STAFF_ONLY = N_("This page is for the staff of a mission only.")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer = HTTPBearer(
    auto_error=False,
    description="API token printed by `elshi users token EMAIL`, sent as "
    "`Authorization: Bearer <token>`. Pages use the signed-in session instead.",
)


class LoginRequired(Exception):
    """An anonymous browser asked for a page; it is sent to /login."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def get_database(request: Request) -> Database:
    """Return the app's Database."""
    db: Database = request.app.state.db
    return db


def get_db(request: Request) -> Iterator[Session]:
    """Yield a session that commits when the request succeeds."""
    with get_database(request).session() as s:
        yield s


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def session_serializer(settings: Settings) -> URLSafeTimedSerializer:
    """Return the signer of session cookies (the session purpose key)."""
    return STAFF_SESSION.signer(settings)


def session_key(request: Request) -> str | None:
    """Return the session key from the signed cookie, or None if absent, forged or too old."""
    return STAFF_SESSION.key(request)


def current_principal(request: Request, db: Session) -> Principal | None:
    """Return who is signed in (API token or session cookie), or None."""
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    principal = None
    auth = request.headers.get("authorization", "")
    scheme, _, credential = auth.partition(" ")
    if scheme.lower() == "bearer":
        if not _is_api(request):
            # A token is for scripts reading the API; pages and their forms need a person.
            raise HTTPException(
                401,
                "API tokens are accepted on /api/ only; sign in to use the pages",
                headers={"WWW-Authenticate": 'Bearer error="invalid_request"'},
            )
        token = accounts.find_api_token(db=db, token=credential.strip())
        if token is None:
            raise HTTPException(
                401,
                "invalid, expired or revoked API token",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        principal = accounts.load_principal(
            db=db, user_id=token.user_id, via="token", token_scope=token.scope
        )
    else:
        key = session_key(request)
        row = accounts.find_session(db=db, key=key) if key else None
        if row is not None and not row.mfa_pending:
            principal = accounts.load_principal(db=db, user_id=row.user_id)
    request.state.principal = principal
    return principal


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def require_staff(
    request: Request,
    db: Annotated[Session, Depends(get_db)],
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> Principal:
    """Allow only signed-in staff: 401 JSON for the API, a redirect to /login for pages."""
    principal = current_principal(request, db)
    if principal is None:
        if _is_api(request):
            raise HTTPException(
                401,
                "sign in, or send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    if not principal.can_somewhere("listen.read"):
        # API clients read the English reason; a person in a browser reads their language.
        if _is_api(request):
            raise HTTPException(403, "staff only")
        raise HTTPException(403, gettext(request_language(request), STAFF_ONLY))
    if (
        principal.via == "token"
        and principal.token_scope != "write"
        and request.method not in SAFE_METHODS
    ):
        raise HTTPException(
            403,
            "this API token is read-only: issue one with --scope write to change data",
            headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="write"'},
        )
    if (
        principal.via == "session"
        and _is_api(request)
        and request.method not in SAFE_METHODS
        and not csrf_valid(request, request.headers.get("x-csrf-token"))
    ):
        raise HTTPException(403, "a signed-in browser must send the page's X-CSRF-Token header")
    # End the transaction: the endpoint runs in another worker thread, and a connection held
    # while waiting for that thread can starve the requests that would free one.
    db.commit()
    return principal


StaffUser = Annotated[Principal, Depends(require_staff)]
DbSession = Annotated[Session, Depends(get_db)]
