"""Helpers shared by the workspace pages: form checks, redirects, error messages, names."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import lru_cache
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse

from elshi.errors import Invalid
from elshi.web.bounds import parse_date
from elshi.web.i18n import N_, gettext
from elshi.web.templating import csrf_valid, finish, request_language

FORM_EXPIRED = N_("The form has expired. Please try again.")
NOT_ALLOWED = N_("Your role does not allow this.")

#: Names of form fields, shown before a message about the field.
FIELD_NAMES = {
    "name": N_("Name"),
    "terms": N_("Terms"),
    "context_terms": N_("Context terms"),
    "focus": N_("Country for share of voice"),
    "mission": N_("Mission"),
    "actor_type": N_("Actor type"),
    "title": N_("Title"),
    "kind": N_("Kind"),
    "range": N_("Dates"),
    "window_hours": N_("Window (hours)"),
    "threshold": N_("Threshold"),
    "min_count": N_("Fewest posts"),
    "baseline_days": N_("Baseline (days)"),
    "min_delta": N_("Smallest jump"),
    "source_id": N_("Source"),
    "silent_hours": N_("Silent for (hours)"),
    "growth": N_("Growth"),
    "min_posts": N_("Fewest posts"),
    "min_size": N_("Fewest accounts"),
    "growth_percent": N_("Growth in percent"),
    "growth_accounts": N_("New accounts"),
    "emails": N_("E-mail addresses"),
    "webhook": N_("Webhook URL"),
    "telegram": N_("Telegram chat"),
    "cooldown": N_("Quiet time (minutes)"),
    "comment": N_("Comment"),
    "email": N_("E-mail"),
    "password": N_("Password"),
    "role": N_("Role"),
    "slug": N_("Short name"),
    "country": N_("Country code"),
    "config": N_("Settings (JSON)"),
    "connector": N_("Connector"),
    "day": N_("Date"),
    "days": N_("Days"),
}


def t(request: Request, message: str, **params: Any) -> str:
    """Translate a message into the request's language and fill in its parameters."""
    text = gettext(request_language(request), message)
    return text % params if params else text


def error_text(request: Request, exc: Invalid) -> str:
    """Return 'Field: message' for each problem of the error, in the request's language."""
    parts = []
    for problem in exc.problems:
        text = t(request, problem.message, **problem.params)
        if problem.where:
            field = FIELD_NAMES.get(problem.where)
            text = f"{t(request, field) if field else problem.where}: {text}"
        parts.append(text)
    return " ".join(parts)


def check_form(request: Request, token: str) -> None:
    """Refuse a form without a valid CSRF token (400 with a message)."""
    if not csrf_valid(request, token):
        raise HTTPException(400, t(request, FORM_EXPIRED))


def redirect(request: Request, url: str) -> RedirectResponse:
    """Go to a page after a form (303), keeping cookies this request set."""
    response = RedirectResponse(url, status_code=303)
    finish(request, response)
    return response


def parse_day(value: str | None) -> date | None:
    """Return a date from YYYY-MM-DD (within the bounds of web.bounds), or None."""
    return parse_date(value)


def int_or_none(value: str | None) -> int | None:
    """Return a positive integer from a form or query value, or None."""
    if value and value.strip().isdigit() and len(value.strip()) < 10:
        return int(value.strip())
    return None


@lru_cache(maxsize=4096)
def entity_name(entity_id: str, lang: str) -> str:
    """Return an entity's name in the interface language (the id itself when unknown)."""
    from elshi.nlp.entities import describe

    info = describe(entity_id)
    if info is None:
        return entity_id.split(":")[-1]
    return (
        info.names.get(lang) or info.names.get("en") or next(iter(info.names.values()), entity_id)
    )


def query_dict(params: Mapping[str, str], keys: tuple[str, ...]) -> dict[str, str]:
    """Return the non-empty values of some query parameters."""
    return {k: params[k].strip() for k in keys if params.get(k, "").strip()}
