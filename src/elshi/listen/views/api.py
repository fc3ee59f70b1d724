"""Listen JSON API: search posts, list sources and quarantine."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy.orm import Session

from elshi.accounts.service import Principal
from elshi.listen import service
from elshi.listen.schemas import (
    AnnotationOut,
    NarrativeRef,
    PostDetail,
    PostOut,
    PostPage,
    QuarantineOut,
    SourceOut,
)
from elshi.nlp import service as nlp_service
from elshi.nlp.schemas import Explanation
from elshi.web.bounds import MAX_ID, Id, Moment
from elshi.web.deps import get_db, require_staff

router = APIRouter(prefix="/api", tags=["listen"], dependencies=[Depends(require_staff)])


@router.get("/posts", response_model=PostPage, summary="Search posts")
def search_posts(
    db: Annotated[Session, Depends(get_db)],
    principal: Annotated[Principal, Depends(require_staff)],
    q: Annotated[
        str | None, Query(description="Words to find; inflected kk/ru forms match.")
    ] = None,
    since: Annotated[Moment | None, Query(description="Published at or after (ISO 8601).")] = None,
    until: Annotated[Moment | None, Query(description="Published before (ISO 8601).")] = None,
    source_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only this source.")
    ] = None,
    platform: Annotated[str | None, Query(max_length=32, description="e.g. rss, telegram.")] = None,
    lang: Annotated[str | None, Query(max_length=16, description="Language code.")] = None,
    author: Annotated[str | None, Query(max_length=300, description="Author handle.")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIMIT, description="Page size.")] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Results to skip.")] = 0,
) -> PostPage:
    """Full-text search over stored posts with filters, newest first."""
    page = service.search_page(
        db=db,
        query=service.SearchQuery(
            q=q,
            since=since,
            until=until,
            source_id=source_id,
            platform=platform,
            lang=lang,
            author=author,
            limit=limit,
            offset=offset,
            mission_ids=principal.missions_where("listen.read"),
        ),
    )
    return PostPage(
        total=page.total,
        total_exact=page.exact,
        limit=limit,
        offset=offset,
        items=[PostOut.model_validate(p) for p in page.items],
    )


@router.get("/posts/{post_id}", response_model=PostDetail, summary="One post with its annotations")
def get_post(
    post_id: Id,
    db: Annotated[Session, Depends(get_db)],
    principal: Annotated[Principal, Depends(require_staff)],
) -> PostDetail:
    """A post with language, sentiment and entity annotations and what drove each."""
    post = service.get_post(
        db=db, post_id=post_id, mission_ids=principal.missions_where("listen.read")
    )
    if post is None:
        raise HTTPException(404, f"no post with id {post_id}")
    annotations = service.annotations_of(db=db, post_id=post_id)
    narrative = nlp_service.narrative_of_post(db=db, post_id=post_id)
    similarity = next((a.score for a in annotations if a.enricher == nlp_service.SLUG), None)
    return PostDetail.model_validate(
        {
            **PostOut.model_validate(post).model_dump(),
            "annotations": [AnnotationOut.model_validate(a) for a in annotations],
            "narrative": None
            if narrative is None
            else NarrativeRef(
                id=narrative.id,
                count=narrative.count,
                terms=narrative.terms,
                similarity=similarity,
            ),
        }
    )


@router.get(
    "/posts/{post_id}/explain", response_model=Explanation, summary="Why a post got its results"
)
def explain_post(
    post_id: Id,
    db: Annotated[Session, Depends(get_db)],
    principal: Annotated[Principal, Depends(require_staff)],
) -> Explanation:
    """Which words drove sentiment and stance, which gazetteer entry or CRF features matched
    each entity, which features decided the language, and the key terms shared with the
    post's narrative."""
    post = service.get_post(
        db=db, post_id=post_id, mission_ids=principal.missions_where("listen.read")
    )
    if post is None:
        raise HTTPException(404, f"no post with id {post_id}")
    return Explanation.model_validate(nlp_service.explain_post(db=db, post=post))


@router.get("/sources", response_model=list[SourceOut], summary="List sources")
def list_sources(
    db: Annotated[Session, Depends(get_db)],
    principal: Annotated[Principal, Depends(require_staff)],
) -> list[SourceOut]:
    """The sources of the caller's missions and those of no mission, with schedule and health.
    Secret settings (access tokens) are never returned: they read "[redacted]"."""
    return [SourceOut.model_validate(s) for s in service.list_sources(db=db, actor=principal)]


@router.get("/quarantine", response_model=list[QuarantineOut], summary="List quarantine")
def list_quarantine(
    db: Annotated[Session, Depends(get_db)],
    principal: Annotated[Principal, Depends(require_staff)],
    source_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only this source.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[QuarantineOut]:
    """Records of the caller's missions' sources that could not be stored, with where they
    came from and why. Records of sources of no mission are shown at headquarters only."""
    if source_id is not None and (
        service.visible_source(db=db, actor=principal, source_id=source_id) is None
    ):
        raise HTTPException(404, f"no source with id {source_id}")
    return [
        QuarantineOut.model_validate(q)
        for q in service.list_quarantine(
            db=db, actor=principal, source_id=source_id, limit=limit, offset=offset
        )
    ]
