# ruff: noqa: E402
"""Queries and changes of the e-consulate, with access by role and mission checked here.

A citizen reaches only their own records: every citizen-facing function takes `citizen_id`
and answers NotFound for anything that is not theirs (the same answer as for an id that
does not exist, so changing an id in a URL reveals nothing). Staff functions take the acting
Principal, check the role in the record's mission, and record every read or change of a
citizen's data where it happens, so no caller can forget the audit.

The parts live in the modules of this package, one per subject (citizens, stays, catalogue,
requests, access, appointments, search, own_data, retention); every name stays reachable here
as `service.X`. The errors and messages below are shared by all parts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import text

from elshi.consulate.models import OPEN_STATUSES
from elshi.web.bounds import parse_date
from elshi.web.i18n import N_

#: Open requests, as the literal predicate of the queue's partial indexes.
OPEN_FILTER = text("service_request.status IN (" + ", ".join(f"'{s}'" for s in OPEN_STATUSES) + ")")

# ---------------------------------------------------------------------------- errors


# Problem, Invalid and NotFound are the package's (elshi.errors); callers may import them here.
from elshi.errors import Invalid, NotFound, Problem


class SlotFull(Invalid):
    """The last place of the slot went to someone else."""


class EmailTaken(Invalid):
    """An account with this e-mail exists (sign-up answers as if it did not; see flows)."""


def _invalid(name: str, message: str, **params: Any) -> Invalid:
    return Invalid(Problem(name, message, params))


# ---------------------------------------------------------------------------- messages

BAD_EMAIL = N_("This is not an e-mail address.")
EMAIL_TAKEN = N_("An account with this e-mail exists. Sign in or reset the password.")
SHORT_PASSWORD = N_("The password must be at least %(n)s characters long.")
WEAK_PASSWORD = N_("The password must not contain your e-mail address or one repeated character.")
REQUIRED = N_("This field is required.")
TOO_LONG = N_("At most %(n)s characters.")
CONTROL_CHARS = N_("Contains characters that are not allowed.")
BAD_DATE = N_("Not a date: use the form 2026-12-31.")
BAD_NUMBER = N_("Not a whole number.")
BAD_CHOICE = N_("Choose one of the options.")
DATES_REVERSED = N_("The departure date is before the arrival date.")
TRIP_OVER = N_("The trip is already over.")
TRIP_TOO_LONG = N_("A stay can be registered for at most 5 years.")
BAD_COUNTRY = N_("Choose the country from the list.")
BAD_MISSION = N_("Choose a mission from the list.")
TOO_MANY_COMPANIONS = N_("At most %(n)s people can travel with you on one registration.")
BAD_STATUS = N_("This cannot be done while the request is %(status)s.")
MISSING_DOCUMENT = N_("Upload the required document: %(name)s.")
REASON_REQUIRED = N_("Give a reason; the applicant will read it.")
NOTE_REQUIRED = N_("Say which documents are needed.")
SLOT_PAST = N_("This time has passed. Choose another one.")
SLOT_FULL = N_("This time has just been fully booked. Choose another one.")
SLOT_MISSION = N_("This time is at another mission than your request.")
ALREADY_BOOKED = N_("You already have an appointment for this request. Move it instead.")
NOT_BOOKED = N_("This appointment is no longer booked.")
EMPTY_MESSAGE = N_("Write a message.")
BAD_CAPACITY = N_("Places must be between 1 and 500.")
BAD_TIME = N_("Not a time: use the form 09:30.")
BAD_COUNT = N_("Between 1 and 96 slots at a time.")
BAD_MINUTES = N_("Between 5 and 480 minutes.")
SKIPPED_TIME = N_("The clocks skip this time that day in %(zone)s. Choose another one.")

BAD_SLUG = N_("Use lower-case Latin letters, digits, - or _, starting with a letter.")
ALL_LANGUAGES = N_("Fill in the Kazakh, Russian and English text.")
BAD_FEE = N_("Enter the fee as an amount, e.g. 60 or 60.50.")
BAD_CURRENCY = N_("Use the three-letter currency code, e.g. EUR.")
USED_TWICE = N_("This name is used twice.")
BAD_FIELD_TYPE = N_("Choose a field type from the list.")
BAD_FIELD_MAX = N_("A whole number from 1 to 5000.")
NEED_OPTIONS = N_("A list needs its choices, separated by commas.")
SLUG_TAKEN = N_("The mission already has a service with this id.")

STATUS_NAMES = {
    "draft": N_("draft"),
    "submitted": N_("submitted"),
    "in_review": N_("in review"),
    "more_documents": N_("more documents needed"),
    "approved": N_("approved"),
    "rejected": N_("rejected"),
}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
MAX_COMPANIONS = 20


def clean_text(name: str, value: Any, *, max_len: int, required: bool = False) -> str:
    """Return a form value stripped and NFC-normalised, or raise Invalid naming the field."""
    text = unicodedata.normalize("NFC", str(value if value is not None else "")).strip()
    if _CONTROL.search(text.replace("\n", "").replace("\r", "").replace("\t", "")):
        raise _invalid(name, CONTROL_CHARS)
    if len(text) > max_len:
        raise _invalid(name, TOO_LONG, n=max_len)
    if required and not text:
        raise _invalid(name, REQUIRED)
    return text


def _gather(checks: Iterable[tuple[str, Any]]) -> tuple[dict[str, Any], list[Problem]]:
    """Run (name, thunk) checks and collect every problem instead of stopping at the first."""
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, check in checks:
        try:
            out[name] = check()
        except Invalid as exc:
            problems.extend(exc.problems)
    return out, problems


def _parse_date(name: str, value: str, *, required: bool = True) -> date | None:
    text = clean_text(name, value, max_len=10, required=required)
    if not text:
        return None
    day = parse_date(text)
    if day is None:
        raise _invalid(name, BAD_DATE)
    return day


# ---------------------------------------------------------------------------- the parts

from elshi.consulate.service.access import (
    REQUEST_PAGE_FIELDS,
    SEARCH_FIELDS,
    QueueRow,
    ask_documents,
    claim,
    decide,
    queue,
    record_access,
    staff_citizen,
    staff_document,
    staff_request,
)
from elshi.consulate.service.appointments import (
    APPOINTMENT_EVENTS,
    CHOOSE_SLOT,
    Booked,
    DayRow,
    add_slots,
    book,
    book_or_move,
    cancel,
    citizen_appointment,
    citizen_appointments,
    day_list,
    free_slots,
    local_day,
    local_instant,
    mark_appointment,
    mission_zone,
    mission_zones,
    move,
    request_appointments,
    slots_between,
)
from elshi.consulate.service.catalogue import (
    BLANK_ROWS,
    FIELD_TYPES,
    catalogue,
    catalogue_values,
    get_service,
    parse_answers,
    parse_catalogue_form,
    save_catalogue_entry,
    service_names,
    service_types,
    services,
    set_service_active,
    upsert_service,
)
from elshi.consulate.service.citizens import (
    check_new_password,
    consular_missions,
    create_citizen,
    create_session,
    end_session,
    find_session,
    get_citizen,
    get_citizen_by_email,
    issue_token,
    session_citizen,
    set_password,
    use_token,
)
from elshi.consulate.service.own_data import (
    EXPORT_FIELDS,
    access_log,
    export_citizen,
)
from elshi.consulate.service.requests import (
    _editable,
    citizen_document,
    citizen_request,
    citizen_requests,
    create_draft,
    documents_of,
    history,
    messages_of,
    post_message,
    ready_to_submit,
    save_answers,
    submit,
)
from elshi.consulate.service.retention import (
    PurgeReport,
    Retention,
    purge,
)
from elshi.consulate.service.search import (
    SearchHit,
    search_district,
)
from elshi.consulate.service.stays import (
    cancel_stay,
    citizen_stay,
    citizen_stays,
    confirm_stay,
    confirmation_due,
    expire_stays,
    parse_stay,
    register_stay,
    stays_to_remind,
)

__all__ = [
    "ALL_LANGUAGES",
    "ALREADY_BOOKED",
    "APPOINTMENT_EVENTS",
    "BAD_CAPACITY",
    "BAD_CHOICE",
    "BAD_COUNT",
    "BAD_COUNTRY",
    "BAD_CURRENCY",
    "BAD_DATE",
    "BAD_EMAIL",
    "BAD_FEE",
    "BAD_FIELD_MAX",
    "BAD_FIELD_TYPE",
    "BAD_MINUTES",
    "BAD_MISSION",
    "BAD_NUMBER",
    "BAD_SLUG",
    "BAD_STATUS",
    "BAD_TIME",
    "BLANK_ROWS",
    "CHOOSE_SLOT",
    "CONTROL_CHARS",
    "DATES_REVERSED",
    "EMAIL_TAKEN",
    "EMPTY_MESSAGE",
    "EXPORT_FIELDS",
    "FIELD_TYPES",
    "MAX_COMPANIONS",
    "MISSING_DOCUMENT",
    "NEED_OPTIONS",
    "NOTE_REQUIRED",
    "NOT_BOOKED",
    "OPEN_FILTER",
    "REASON_REQUIRED",
    "REQUEST_PAGE_FIELDS",
    "REQUIRED",
    "SEARCH_FIELDS",
    "SHORT_PASSWORD",
    "SKIPPED_TIME",
    "SLOT_FULL",
    "SLOT_MISSION",
    "SLOT_PAST",
    "SLUG_TAKEN",
    "STATUS_NAMES",
    "TOO_LONG",
    "TOO_MANY_COMPANIONS",
    "TRIP_OVER",
    "TRIP_TOO_LONG",
    "USED_TWICE",
    "WEAK_PASSWORD",
    "Booked",
    "DayRow",
    "EmailTaken",
    "Invalid",
    "NotFound",
    "Problem",
    "PurgeReport",
    "QueueRow",
    "Retention",
    "SearchHit",
    "SlotFull",
    "_editable",
    "access_log",
    "add_slots",
    "ask_documents",
    "book",
    "book_or_move",
    "cancel",
    "cancel_stay",
    "catalogue",
    "catalogue_values",
    "check_new_password",
    "citizen_appointment",
    "citizen_appointments",
    "citizen_document",
    "citizen_request",
    "citizen_requests",
    "citizen_stay",
    "citizen_stays",
    "claim",
    "clean_text",
    "confirm_stay",
    "confirmation_due",
    "consular_missions",
    "create_citizen",
    "create_draft",
    "create_session",
    "day_list",
    "decide",
    "documents_of",
    "end_session",
    "expire_stays",
    "export_citizen",
    "find_session",
    "free_slots",
    "get_citizen",
    "get_citizen_by_email",
    "get_service",
    "history",
    "issue_token",
    "local_day",
    "local_instant",
    "mark_appointment",
    "messages_of",
    "mission_zone",
    "mission_zones",
    "move",
    "parse_answers",
    "parse_catalogue_form",
    "parse_stay",
    "post_message",
    "purge",
    "queue",
    "ready_to_submit",
    "record_access",
    "register_stay",
    "request_appointments",
    "save_answers",
    "save_catalogue_entry",
    "search_district",
    "service_names",
    "service_types",
    "services",
    "session_citizen",
    "set_password",
    "set_service_active",
    "slots_between",
    "staff_citizen",
    "staff_document",
    "staff_request",
    "stays_to_remind",
    "submit",
    "upsert_service",
    "use_token",
]
