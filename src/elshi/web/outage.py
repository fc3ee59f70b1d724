"""A database outage answers 503 Service Unavailable with Retry-After, never a bare 500.

When the database cannot be reached (PostgreSQL stopped or restarting, the network to it cut,
the pool exhausted, SQLite's file gone or locked longer than the busy timeout), every request
that needs it gets:

- `/api/...` and `/health` (and clients asking for JSON only): `{"detail": ...}` in English;
- every other page: a small page in the visitor's language (the `?lang=` parameter, the
  language cookie or the browser's Accept-Language) that needs nothing from the database:
  no session, no signed-in user, no counts;

both with `Retry-After: 30`. Nothing is kept in a broken state: PostgreSQL connections are
checked before use (`pool_pre_ping`) and a new SQLite connection opens the file again, so the
next request after the database is back is served as usual, without a restart.

Errors of the database that are not about reaching it (a missing table, a broken constraint)
are not hidden here: they stay server errors.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import exc as sa

from elshi.db import exception_chain
from elshi.web.i18n import N_

log = logging.getLogger(__name__)

#: Seconds a client is asked to wait before trying again.
RETRY_AFTER = 30
#: What API clients and monitoring read (English, like the rest of the API's errors).
DETAIL = "the database is unavailable; try again shortly"

TITLE = N_("Temporarily unavailable")
WHAT = N_(
    "The service cannot reach its database right now. This usually passes within a few minutes."
)
NOT_SAVED = N_(
    "If you were sending a form or an answer, it was not saved: please send it again in a minute."
)
URGENT = N_("If you need help urgently, call the consulate or the local emergency services.")
AGAIN = N_("Try again")

#: SQLite result codes (the primary code, the low byte) that mean "cannot reach the data now":
#: busy or locked past the busy timeout, the file cannot be opened, read or written (disk
#: gone, read-only or full), the WAL lock protocol failed.
_SQLITE_OUTAGE = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_PROTOCOL,
    }
)
_SQLITE_MESSAGES = (
    "unable to open database",
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "database or disk is full",
    "attempt to write a readonly database",
)


def _psycopg_errors() -> tuple[type[BaseException], ...]:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency; SQLite-only installs vary
        return ()
    return (psycopg.OperationalError, psycopg.InterfaceError)


_PSYCOPG = _psycopg_errors()


def _sqlite_outage(e: sqlite3.Error) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _SQLITE_OUTAGE
    message = str(e).lower()
    return any(m in message for m in _SQLITE_MESSAGES)


def is_outage(exc: BaseException) -> bool:
    """True when exc (or an error it wraps) means the database cannot be reached now."""
    for e in exception_chain(exc):
        if isinstance(e, sa.DisconnectionError | sa.TimeoutError):
            return True  # the pool found a dead connection, or had none free in time
        if isinstance(e, sa.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, sqlite3.OperationalError) and _sqlite_outage(e):
            return True
        if _PSYCOPG and isinstance(e, _PSYCOPG):
            return True  # connection refused or lost, server shutting down or starting up
    return False


def _reason(exc: BaseException) -> str:
    """One line on what failed, without the SQL statement or its parameters (personal data)."""
    inner: BaseException = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0] if text else ''}"


def _wants_json(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or path == "/health":
        return True
    accept = request.headers.get("accept", "")
    return "json" in accept and "html" not in accept


def unavailable(request: Request) -> Response:
    """The 503 answer: JSON for the API and /health, else a page in the visitor's language.

    The page reads nothing from the database (no session, no signed-in user, no counts)."""
    headers = {"Retry-After": str(RETRY_AFTER)}
    if _wants_json(request):
        return JSONResponse({"detail": DETAIL}, status_code=503, headers=headers)
    from elshi.web.templating import environment, request_language

    lang = request_language(request)
    retry = None
    if request.method in ("GET", "HEAD"):
        retry = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    html = (
        environment(lang)
        .get_template("unavailable.html")
        .render(
            lang=lang,
            retry=retry,
            title=TITLE,
            what=WHAT,
            not_saved=NOT_SAVED,
            urgent=URGENT,
            again=AGAIN,
        )
    )
    return HTMLResponse(html, status_code=503, headers=headers)


async def _handle(request: Request, exc: Exception) -> Response:
    if not is_outage(exc):
        raise exc  # not about reaching the database: a server error, as before
    log.error(
        "%s %s: database unavailable (%s); answered 503",
        request.method,
        request.url.path,
        _reason(exc),
    )
    return unavailable(request)


def install(app: FastAPI) -> None:
    """Answer 503 with Retry-After when a request fails because the database is unreachable."""
    kinds: list[Any] = [
        sa.OperationalError,
        sa.InterfaceError,
        sa.DisconnectionError,
        sa.TimeoutError,
        sqlite3.OperationalError,  # raised as-is by code using the driver directly
        *_PSYCOPG,
    ]
    for kind in kinds:
        app.add_exception_handler(kind, _handle)
