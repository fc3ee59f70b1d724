"""Shared FastAPI dependencies: the database session and the signed-in user."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session

from elshi.db import Database


def get_database(request: Request) -> Database:
    """Return the app's Database."""
    db: Database = request.app.state.db
    return db


def get_db(request: Request) -> Iterator[Session]:
    """Yield a session that commits when the request succeeds."""
    with get_database(request).session() as s:
        yield s


def require_staff(request: Request) -> None:
    """Allow only signed-in staff (filled in by accounts.views)."""
    return None
