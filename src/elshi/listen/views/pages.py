"""Listen pages: the overview (the home page), post search and the sources with their health."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from fastapi.responses import Response

from elshi.listen import overview
from elshi.listen import service as listen
from elshi.listen.models import Post
from elshi.listen.text import marker
from elshi.web.deps import DbSession, StaffUser
from elshi.web.forms import PAGE_SIZE, parse_search
from elshi.web.i18n import N_
from elshi.web.templating import render

router = APIRouter(include_in_schema=False)

HEALTH = {
    "ok": N_("working"),
    "failing": N_("failing"),
    "new": N_("not run yet"),
    "paused": N_("paused"),
}


@router.get("/")
def home(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Counts of posts and sources, and the sources' health."""
    data = overview.overview(db=db, mission_ids=principal.missions_where("listen.read"))
    return render(request, "home.html", {"active": "home", "o": data, "health_names": HEALTH})


@router.get("/posts")
def posts(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Search posts with filters and pages."""
    form = parse_search(request.query_params)
    languages, platforms = overview.facets(db=db)
    sources = overview.visible_sources(db=db, mission_ids=principal.missions_where("listen.read"))
    total, items, exact = 0, list[Post](), True
    if not form.errors:
        form.query.mission_ids = principal.missions_where("listen.read")
        found = listen.search_page(
            db=db, query=form.query, count_all=request.query_params.get("count") == "all"
        )
        total, items, exact = found.total, found.items, found.exact
    return render(
        request,
        "posts.html",
        {
            "active": "posts",
            "form": form,
            "total": total,
            "exact": exact,
            "items": items,
            "mark": marker(form.values.get("q") or ""),
            "pages": max(1, math.ceil(total / PAGE_SIZE)),
            "post_languages": languages,
            "platforms": platforms,
            "sources": sources,
        },
        status=400 if form.errors else 200,
    )


@router.get("/sources")
def sources(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Every source the user may see, with its health."""
    rows = overview.visible_sources(db=db, mission_ids=principal.missions_where("listen.read"))
    return render(
        request, "sources.html", {"active": "sources", "sources": rows, "health_names": HEALTH}
    )
