"""Speak's JSON API: statements, their publications and their reach (staff only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException
from sqlalchemy.orm import Session

from elshi.accounts.service import Principal
from elshi.speak import service
from elshi.speak.models import Statement
from elshi.speak.schemas import PublicationOut, ReachOut, StatementOut
from elshi.speak.views.common import api
from elshi.web.bounds import Id
from elshi.web.deps import get_db, require_staff


def visible_statement(
    statement_id: Id,
    db: Annotated[Session, Depends(get_db)],
    principal: Annotated[Principal, Depends(require_staff)],
) -> Statement:
    """The statement of the path, if the caller may see it; else 404."""
    try:
        return service.get_statement(db=db, actor=principal, statement_id=statement_id)
    except service.StatementNotFound:
        raise HTTPException(404, f"no statement with id {statement_id}") from None


#: The statement of the path (one the caller may see), as one parameter of the route.
VisibleStatement = Annotated[Statement, Depends(visible_statement)]


@api.get("/statements", response_model=list[StatementOut], summary="List statements")
def api_statements(
    db: Annotated[Session, Depends(get_db)],
    principal: Annotated[Principal, Depends(require_staff)],
    status: str | None = None,
) -> list[StatementOut]:
    """Statements the caller may see, newest first."""
    return [
        StatementOut.model_validate(s)
        for s in service.list_statements(db=db, actor=principal, status=status)
    ]


@api.get(
    "/statements/{statement_id}/publications",
    response_model=list[PublicationOut],
    summary="A statement's publications",
)
def api_publications(
    st: VisibleStatement, db: Annotated[Session, Depends(get_db)]
) -> list[PublicationOut]:
    """Each language version on each channel, with its status and error."""
    return [
        PublicationOut.model_validate(p) for p in service.publications_of(db=db, statement_id=st.id)
    ]


@api.get("/statements/{statement_id}/reach", response_model=ReachOut, summary="Engagement")
def api_reach(st: VisibleStatement, db: Annotated[Session, Depends(get_db)]) -> ReachOut:
    """Engagement totals per language and channel, and who engaged by actor type."""
    r = service.reach(db=db, statement_id=st.id)
    aud = service.audience(db=db, statement_id=st.id)
    return ReachOut(
        total=r.total,
        by_lang=r.by_lang,
        by_channel=r.by_channel,
        audience=aud.total,
        audience_by_channel=aud.by_channel,
    )
