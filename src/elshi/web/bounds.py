"""Bounds on numbers and dates that come in with a request, checked at the edge.

An id larger than the database's 64-bit integers, or a date the calendar arithmetic cannot
move from (9999-12-31 plus a day), is refused with a 4xx that says what is wrong, never a 500:

- `Id` for record ids in paths, `QueryId` for optional ids in query strings (0: none),
  `MAX_ID` for the bound of other id fields;
- `Moment` for dates and times in query strings, `parse_date` for dates typed as text, both
  within `FIRST_DAY`..`LAST_DAY`;
- `install(app)` adds the handlers that turn what slips past these (a number too large for the
  database in a form field) into a 400.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Annotated

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator
from sqlalchemy.exc import DataError

from elshi.web.i18n import N_

log = logging.getLogger(__name__)

#: The largest id the database holds (a signed 64-bit integer, SQLite's and PostgreSQL's BIGINT).
MAX_ID = 2**63 - 1
#: Dates and times from requests must fall within these days.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2199, 12, 31)

OUT_OF_RANGE = N_("A number or date in the request is out of range.")


def in_range(day: date) -> bool:
    """Return True when a date (or the day of a datetime) lies within FIRST_DAY..LAST_DAY."""
    if isinstance(day, datetime):
        day = day.date()
    return FIRST_DAY <= day <= LAST_DAY


def _moment(value: datetime) -> datetime:
    if not in_range(value):
        raise ValueError(f"must lie between {FIRST_DAY} and {LAST_DAY}")
    return value


#: A record id in a path: a whole number from 1 to MAX_ID.
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
#: An optional record id in a query string: 0 (none) to MAX_ID.
QueryId = Annotated[int, Query(ge=0, le=MAX_ID)]
#: A date and time (ISO 8601) within FIRST_DAY..LAST_DAY.
Moment = Annotated[datetime, AfterValidator(_moment)]


def parse_date(value: str | None) -> date | None:
    """Return the date of a YYYY-MM-DD text within FIRST_DAY..LAST_DAY, or None."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        return None
    return day if in_range(day) else None


def _out_of_range(request: Request, exc: Exception) -> Response:
    log.warning("%s %s: out of range: %s", request.method, request.url.path, exc)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": "a number or date in the request is out of range"}, 400)
    from elshi.web.templating import render

    return render(request, "error.html", {"message": OUT_OF_RANGE}, status=400)


def install(app: FastAPI) -> None:
    """Answer 400 to a number or date too large for Python's dates or for the database.

    SQLite's driver raises OverflowError for an integer beyond 64 bits, PostgreSQL's a
    DataError (numeric value out of range); date arithmetic past year 9999 raises OverflowError.
    """
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(DataError, _out_of_range)
