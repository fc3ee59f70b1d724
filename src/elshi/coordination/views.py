"""Coordination pages: the groups of coordinated accounts, one group with its network and
co-actions, and its evidence pack; each seen only through the viewer's missions' posts."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from elshi.accounts.service import Principal, audit_by
from elshi.coordination import evidence, printout
from elshi.db import utcnow
from elshi.web.bounds import Id
from elshi.web.deps import DbSession, StaffUser
from elshi.web.i18n import N_
from elshi.web.pages import int_or_none
from elshi.web.templating import render, request_language, settings_of, translate

router = APIRouter(include_in_schema=False)

#: Groups per page of the list, and co-actions shown on a group's page (the pack has all).
PAGE_SIZE = 20
TIMELINE = 200
NETWORK_LABEL = N_("Network of the group's accounts")


def _seen(db: DbSession, principal: Principal, group_id: int) -> evidence.Seen:
    seen = evidence.seen_group(
        db=db, group_id=group_id, mission_ids=principal.missions_where("listen.read")
    )
    if seen is None:
        raise HTTPException(404, "no such group")
    return seen


@router.get("/coordination")
def groups_page(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """The groups of accounts that act together, largest first, as the viewer sees them."""
    page = max(1, min(int_or_none(request.query_params.get("page")) or 1, 10_000))
    items, more = evidence.seen_groups(
        db=db,
        mission_ids=principal.missions_where("listen.read"),
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    return render(
        request,
        "coordination.html",
        {"active": "coordination", "items": items, "page": page, "more": more},
    )


@router.get("/coordination/groups/{group_id}")
def group_page(request: Request, group_id: Id, db: DbSession, principal: StaffUser) -> Response:
    """One group: its accounts, its network, its co-actions in time order, what it pushed."""
    seen = _seen(db, principal, group_id)
    label = translate(request, NETWORK_LABEL)
    return render(
        request,
        "coordination_group.html",
        {
            "active": "coordination",
            "g": seen,
            "handles": {a.id: a.handle for a in seen.accounts},
            "timeline": seen.pairs[-TIMELINE:],
            "picture": evidence.svg(seen, label),
            "edges": sorted(seen.edges.items(), key=lambda e: (-e[1], e[0])),
        },
    )


@router.get("/coordination/groups/{group_id}/evidence.zip")
def evidence_pack(request: Request, group_id: Id, db: DbSession, principal: StaffUser) -> Response:
    """The group's evidence pack: accounts, co-actions and posts as CSV, the network as
    GraphML (Gephi); the download is in the audit log."""
    seen = _seen(db, principal, group_id)
    body = evidence.evidence_zip(seen)
    audit_by(
        principal,
        db,
        "coordination.export",
        "co_group",
        group_id,
        accounts=len(seen.accounts),
        coactions=len(seen.pairs),
        posts=len(seen.posts),
    )
    filename = f"elshi-group-{group_id}-evidence.zip"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(body, media_type="application/zip", headers=headers)


@router.get("/coordination/groups/{group_id}/evidence.pdf")
def evidence_pdf(request: Request, group_id: Id, db: DbSession, principal: StaffUser) -> Response:
    """The group's evidence as a PDF in the viewer's language: its accounts, a timeline and
    its co-actions with both posts and the seconds between them; the download is in the
    audit log, as the ZIP's."""
    from elshi.digest.flows import PdfError, render_pdf

    seen = _seen(db, principal, group_id)
    html = printout.evidence_html(seen, lang=request_language(request), now=utcnow())
    try:
        body = render_pdf(html, settings=settings_of(request))
    except PdfError as exc:
        return render(request, "error.html", {"message": str(exc)}, status=503)
    audit_by(
        principal,
        db,
        "coordination.export",
        "co_group",
        group_id,
        format="pdf",
        accounts=len(seen.accounts),
        coactions=len(seen.pairs),
        posts=len(seen.posts),
    )
    filename = f"elshi-group-{group_id}-evidence.pdf"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(body, media_type="application/pdf", headers=headers)
