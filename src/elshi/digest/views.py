"""The digest page (HTML), its PDF, and the choice of mission, day and language."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from elshi.digest import flows, service
from elshi.missions import service as missions
from elshi.watch.service import may_see_mission
from elshi.web.deps import DbSession, StaffUser
from elshi.web.i18n import LANGUAGES
from elshi.web.pages import parse_day, t
from elshi.web.templating import render, request_language

router = APIRouter(include_in_schema=False)


def _digest(request: Request, db: Any, principal: Any) -> tuple[service.Digest, list[Any]]:
    q = request.query_params
    visible = [m for m in missions.list_missions(db=db) if may_see_mission(principal, m.id)]
    slug = q.get("mission") or next((m.slug for m in visible if m.kind != "hq"), None)
    mission = next((m for m in visible if m.slug == slug), None)
    if mission is None:
        raise HTTPException(404, "no such mission")
    day = (
        parse_day(q.get("day"))
        if q.get("day")
        else service.latest_day(db=db, mission_id=mission.id)
    )
    if day is None:
        raise HTTPException(400, t(request, "A date is not valid: use the form 2026-11-01."))
    lang = q.get("in") if q.get("in") in LANGUAGES else request_language(request)
    return service.build(db=db, mission=mission, day=day, lang=str(lang)), visible


@router.get("/digest")
def digest_page(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """The daily digest of a mission, with links to its PDF."""
    d, visible = _digest(request, db, principal)
    return render(
        request,
        "digest.html",
        {
            "active": "digest",
            "d": d,
            "missions": visible,
            "body": flows.render_html(d, standalone=False),
        },
    )


@router.get("/digest.pdf")
def digest_pdf(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """The daily digest as PDF."""
    d, _ = _digest(request, db, principal)
    try:
        pdf = flows.render_pdf(flows.render_html(d), settings=request.app.state.settings)
    except flows.PdfError as exc:
        raise HTTPException(503, str(exc)) from None
    name = f"elshi-digest-{d.mission.slug}-{d.day}-{d.lang}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
