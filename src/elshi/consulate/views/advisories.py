"""Travel advisories: the public page and Atom feed per country, following a country, and the
headquarters' publication form."""

from __future__ import annotations

from typing import Annotated

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from elshi.consulate import advisories, countries, service
from elshi.consulate.views.common import (
    CitizenForm,
    _back,
    _citizen_form,
    _forbidden,
    _not_found,
    _officer_form,
    _officer_page,
    _page,
    _problems,
    current_citizen,
    router,
    staff,
)
from elshi.web.actions import FormAction, text_fields
from elshi.web.deps import DbSession, StaffUser
from elshi.web.templating import request_language, settings_of

FOLLOW_ACTIONS = ("follow", "unfollow")


def _code(country_code: str) -> str | None:
    code = country_code.upper()
    return code if code in countries.codes() else None


@router.get("/advisories")
def advisory_index(request: Request, db: DbSession, country: str = "") -> Response:
    """Every country with an advisory in force, and a picker to open any country's page."""
    if country:
        code = countries.resolve(country[:100])
        if code is not None:
            return RedirectResponse(advisories.page_path(code), status_code=303)
    citizen = current_citizen(request, db)
    lang = request_language(request)
    rows = sorted(
        advisories.countries_in_force(db),
        key=lambda r: (-r.level, countries.name(r.country_code, lang)),
    )
    return _page(
        request,
        "advisories.html",
        citizen=citizen,
        rows=rows,
        level_names=advisories.LEVEL_NAMES,
        followed=advisories.follows(db, citizen.id) if citizen else [],
    )


@router.get("/advisories/{country_code}")
def advisory_page(request: Request, db: DbSession, country_code: str) -> Response:
    """A country's advisories in force, their history and the Atom feed (no sign-in)."""
    code = _code(country_code)
    if code is None:
        return _not_found(request)
    citizen = current_citizen(request, db)
    return _page(
        request,
        "advisory.html",
        citizen=citizen,
        code=code,
        in_force=advisories.in_force(db, code),
        history=advisories.history(db, code),
        level_names=advisories.LEVEL_NAMES,
        follows=citizen is not None and code in advisories.follows(db, citizen.id),
    )


@router.get("/advisories/{country_code}/feed.atom")
def advisory_feed(request: Request, db: DbSession, country_code: str) -> Response:
    """The Atom feed of a country's advisories, in the reader's language."""
    code = _code(country_code)
    if code is None:
        return _not_found(request)
    body = advisories.atom(
        db, settings=settings_of(request), country_code=code, lang=request_language(request)
    )
    return Response(body, media_type="application/atom+xml; charset=utf-8")


@router.post("/advisories/{country_code}/{action}")
def advisory_follow(act: CitizenForm, country_code: str, action: str) -> Response:
    """Follow a country's advisories, or stop following them."""
    code = _code(country_code)
    if code is None or action not in FOLLOW_ACTIONS:
        return _not_found(act.request)
    change = advisories.follow if action == "follow" else advisories.unfollow
    return _citizen_form(
        act,
        lambda: change(act.db, act.citizen.id, code),
        done=lambda _: _back(advisories.page_path(code), action),
    )


# ---------------------------------------------------------------------------- headquarters


def _hq_page(
    request: Request,
    db: DbSession,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    return _officer_page(
        request,
        "advisories_publish.html",
        status,
        rows=advisories.countries_in_force(db),
        level_names=advisories.LEVEL_NAMES,
        levels=advisories.LEVELS,
        langs=countries.LANGS,
        values=values or {},
        errors=errors or {},
    )


@staff.get("/advisories")
def advisory_publish_page(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Headquarters: publish a travel advisory; the advisories in force."""
    if not principal.can(advisories.PERMISSION, None):
        return _forbidden(request)
    return _hq_page(request, db)


@staff.post("/advisories")
def advisory_publish(
    request: Request,
    db: DbSession,
    principal: StaffUser,
    raw: Annotated[dict[str, str], text_fields(20)],
) -> Response:
    """Publish a travel advisory; citizens are told when its level changed."""
    settings = settings_of(request)

    def invalid(exc: service.Invalid) -> Response:
        return _hq_page(request, db, 400, values=raw, errors=_problems(request, exc))

    if not principal.can(advisories.PERMISSION, None):
        return _forbidden(request)
    return _officer_form(
        FormAction(request, db, raw.get("csrf_token")),
        lambda: advisories.publish(db=db, settings=settings, actor=principal, raw=raw),
        invalid=invalid,
        done=lambda published: _back(
            advisories.page_path(published.advisory.country_code), "published"
        ),
    )
