"""Narratives JSON API: stories across languages, emerging ones, and their member posts."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy.orm import Session

from elshi.accounts.service import Principal
from elshi.db import utcnow
from elshi.listen.schemas import PostOut
from elshi.nlp import service
from elshi.nlp.models import NarrativeRow
from elshi.nlp.schemas import NarrativeDetail, NarrativeOut, NarrativePage, TrendOut
from elshi.web.bounds import Id, Moment
from elshi.web.deps import get_db, require_staff

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
