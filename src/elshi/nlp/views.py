"""Narratives: the JSON API (stories across languages, emerging ones, their member posts) and
the pages that show them."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from elshi.accounts.service import Principal
from elshi.db import utcnow
from elshi.listen.schemas import PostOut
from elshi.nlp import service
from elshi.nlp.models import NarrativeRow
from elshi.nlp.schemas import NarrativeDetail, NarrativeOut, NarrativePage, TrendOut
from elshi.watch.service import narrative_table_exists
from elshi.web.bounds import Id, Moment
from elshi.web.deps import DbSession, StaffUser, get_db, require_staff
from elshi.web.pages import int_or_none, redirect
from elshi.web.templating import render

router = APIRouter(prefix="/api", tags=["narratives"], dependencies=[Depends(require_staff)])


def _out(row: NarrativeRow, trend: service.Trend | None) -> NarrativeOut:
    out = NarrativeOut.model_validate(row)
    out.emerging = None if trend is None else TrendOut.model_validate(trend)
    return out


@router.get("/narratives", response_model=NarrativePage, summary="List narratives")
def list_narratives(
    db: Annotated[Session, Depends(get_db)],
    principal: Annotated[Principal, Depends(require_staff)],
    emerging: Annotated[
        bool, Query(description="Only narratives that are new or growing in the window.")
    ] = False,
    hours: Annotated[int, Query(ge=1, le=24 * 30, description="Window in hours.")] = 24,
    now: Annotated[
        Moment | None, Query(description="End of the window (ISO 8601); default now.")
    ] = None,
    lang: Annotated[
        str | None, Query(max_length=16, description="Only with this language.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Results to skip.")] = 0,
) -> NarrativePage:
    """Stories across languages with key terms and activity, most recently active first."""
    found = service.list_narratives(
        db=db,
        mission_ids=principal.missions_where("listen.read"),
        emerging=emerging,
        now=now,
        window=timedelta(hours=hours),
        lang=lang,
        limit=limit,
        offset=offset,
    )
    return NarrativePage(limit=limit, offset=offset, items=[_out(r, t) for r, t in found])


@router.get("/narratives/{narrative_id}", response_model=NarrativeDetail, summary="One narrative")
def get_narrative(
    narrative_id: Id,
    db: Annotated[Session, Depends(get_db)],
    principal: Annotated[Principal, Depends(require_staff)],
    hours: Annotated[int, Query(ge=1, le=24 * 30, description="Emerging window in hours.")] = 24,
    now: Annotated[Moment | None, Query(description="End of the window (ISO 8601).")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Member posts per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Member posts to skip.")] = 0,
) -> NarrativeDetail:
    """A narrative (following merges) with languages, key terms, first/last seen and posts."""
    missions = principal.missions_where("listen.read")
    row = service.get_narrative(db=db, narrative_id=narrative_id, mission_ids=missions)
    if row is None:
        raise HTTPException(404, f"no narrative with id {narrative_id}")
    total, posts = service.member_posts(
        db=db, narrative_id=row.id, mission_ids=missions, limit=limit, offset=offset
    )
    trend = service.trend_of(row, now or utcnow(), timedelta(hours=hours))
    return NarrativeDetail(
        **_out(row, trend).model_dump(),
        posts_total=total,
        posts=[PostOut.model_validate(p) for p in posts],
    )


# ---------------------------------------------------------------------------- pages

pages = APIRouter(include_in_schema=False)

#: Narratives per page of the list, and member posts per page of one narrative.
PAGE_SIZE = 20
EXAMPLES = 3


@pages.get("/narratives")
def narratives_page(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """The live narratives the viewer sees a post of, most recently active first; with
    `emerging=1` only new or growing ones, with `language` only those in that language."""
    missions = principal.missions_where("listen.read")
    q = request.query_params
    emerging = q.get("emerging") == "1"
    lang = (q.get("language") or "").strip()[:16] or None
    page = max(1, min(int_or_none(q.get("page")) or 1, 10_000))
    stored = narrative_table_exists(db)
    rows: list[tuple[NarrativeRow, service.Trend | None]] = []
    if stored:
        rows = service.list_narratives(
            db=db,
            mission_ids=missions,
            emerging=emerging,
            lang=lang,
            limit=PAGE_SIZE + 1,
            offset=(page - 1) * PAGE_SIZE,
        )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    seen = service.seen_by(db=db, narrative_ids=[r.id for r, _ in rows], mission_ids=missions)
    items = []
    for row, _whole in rows:
        # Counts, languages, dates and trend are those of the posts the viewer may see.
        if row.id not in seen or (emerging and seen[row.id].trend is None):
            continue
        _total, examples = service.member_posts(
            db=db, narrative_id=row.id, mission_ids=missions, limit=EXAMPLES
        )
        items.append(
            {
                "row": row,
                "title": service.title_of(row),
                "seen": seen[row.id],
                "trend": seen[row.id].trend,
                "examples": examples,
            }
        )
    return render(
        request,
        "narratives.html",
        {
            "active": "narratives",
            "stored": stored,
            "items": items,
            "emerging": emerging,
            "language": lang,
            "page": page,
            "more": more,
        },
    )


@pages.get("/narratives/{narrative_id}")
def narrative_page(
    request: Request, narrative_id: Id, db: DbSession, principal: StaffUser
) -> Response:
    """One narrative: its key terms per language, its posts the viewer may see, and its trend."""
    missions = principal.missions_where("listen.read")
    if not narrative_table_exists(db):
        raise HTTPException(404, "no such narrative")
    row = service.get_narrative(db=db, narrative_id=narrative_id, mission_ids=missions)
    if row is None:
        raise HTTPException(404, "no such narrative")
    if row.id != narrative_id:  # merged into another: show that one under its own address
        return redirect(request, f"/narratives/{row.id}")
    page = max(1, min(int_or_none(request.query_params.get("page")) or 1, 10_000))
    total, posts = service.member_posts(
        db=db,
        narrative_id=row.id,
        mission_ids=missions,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    seen = service.seen_by(db=db, narrative_ids=[row.id], mission_ids=missions)
    mine = seen.get(row.id) or service.Seen(langs={})
    return render(
        request,
        "narrative.html",
        {
            "active": "narratives",
            "row": row,
            "title": service.title_of(row),
            "seen": mine,
            "trend": mine.trend,
            "posts": posts,
            "total": total,
            "page": page,
            "pages": max(1, -(-total // PAGE_SIZE)),
        },
    )
