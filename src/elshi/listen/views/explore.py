"""Post explorer with facets, post detail with annotations and why, authors, saved searches."""

from __future__ import annotations

import math
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response

from elshi.accounts.service import PermissionDenied
from elshi.actors import views as actor_views
from elshi.listen import overview
from elshi.listen import service as listen
from elshi.listen.models import Post
from elshi.listen.text import marker
from elshi.nlp import service as narratives
from elshi.watch import service
from elshi.watch.models import ACTOR_TYPES
from elshi.web.actions import StaffForm
from elshi.web.bounds import Id
from elshi.web.deps import DbSession, StaffUser
from elshi.web.forms import PAGE_SIZE, parse_search
from elshi.web.i18n import N_
from elshi.web.pages import (
    entity_name,
    error_text,
    int_or_none,
    query_dict,
    redirect,
    t,
)
from elshi.web.templating import render, request_language

router = APIRouter(include_in_schema=False)

SENTIMENTS = ("negative", "neutral", "positive")
BAD_SENTIMENT = N_("Choose a sentiment from the list.")
ENRICHER_NAMES = {
    "language": N_("Language"),
    "sentiment": N_("Sentiment"),
    "entities": N_("Entities"),
}


@router.get("/explore")
def explore(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Search posts with facet counts; filter by watch list and sentiment too."""
    form = parse_search(request.query_params)
    q = request.query_params
    watch_id = int_or_none(q.get("watch"))
    sentiment = (q.get("sentiment") or "").strip() or None
    watches = service.list_watches(db=db, principal=principal)
    if sentiment and sentiment not in SENTIMENTS:
        form.errors.append(BAD_SENTIMENT)
    total, items, facets, exact = 0, list[Post](), {}, True
    if not form.errors:
        form.query.mission_ids = principal.missions_where("listen.read")
        mine = watch_id if watch_id and any(w.id == watch_id for w in watches) else None
        within = service.posts_within(watch_id=mine, sentiment=sentiment)
        if within is not None:
            form.query.within = within
        page = listen.search_page(db=db, query=form.query, count_all=q.get("count") == "all")
        total, items, exact = page.total, page.items, page.exact
        facets = overview.facet_counts(db=db, ids=listen.matching_ids(db=db, query=form.query))
    sources = {
        s.id: s.name
        for s in overview.visible_sources(
            db=db, mission_ids=principal.missions_where("listen.read")
        )
    }
    params = query_dict(q, service.SAVED_KEYS)
    return render(
        request,
        "explore.html",
        {
            "active": "explore",
            "form": form,
            "total": total,
            "exact": exact,
            "items": items,
            "mark": marker(form.values.get("q") or ""),
            "facets": facets,
            "pages": max(1, math.ceil(total / PAGE_SIZE)),
            "source_names": sources,
            "watches": watches,
            "watch_id": watch_id,
            "sentiment": sentiment,
            "sentiments": SENTIMENTS,
            "saved": service.saved_searches(db=db, principal=principal),
            "params": params,
            "facet_url": lambda key, value: "/explore?" + urlencode({**params, key: value}),
        },
        status=400 if form.errors else 200,
    )


@router.post("/explore/save")
def save_search(
    act: StaffForm,
    name: Annotated[str, Form(max_length=1000)] = "",
    query: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Keep the current search under a name and show its shareable link."""
    from urllib.parse import parse_qsl

    request, db, principal = act.checked()
    params = dict(parse_qsl(query))
    watch_id = int_or_none(params.get("watch"))
    mission_id = None
    if watch_id:
        try:
            mission_id = service.get_watch(db=db, principal=principal, watch_id=watch_id).mission_id
        except service.NotFound:
            params.pop("watch", None)
    if mission_id is None:
        ids = principal.missions_where("listen.read")
        mission_id = min(ids) if ids else None
    try:
        row = service.save_search(
            db=db, principal=principal, name=name, params=params, mission_id=mission_id
        )
    except service.InvalidWatch as exc:
        raise HTTPException(400, error_text(request, exc)) from None
    except PermissionDenied:
        raise HTTPException(403, "not your mission") from None
    return redirect(request, f"/s/{row.token}")


@router.get("/s/{token}")
def open_saved(request: Request, token: str, db: DbSession, principal: StaffUser) -> Response:
    """Open a saved search by its shareable link."""
    try:
        row = service.open_saved(db=db, principal=principal, token=token[:40])
    except service.NotFound:
        raise HTTPException(404, "no such saved search") from None
    return redirect(request, "/explore?" + urlencode(row.params | {"saved": row.token}))


@router.get("/posts/{post_id}")
def post_detail(request: Request, post_id: Id, db: DbSession, principal: StaffUser) -> Response:
    """A post with its annotations and what drove each, its author and its watch lists."""
    post = listen.get_post(
        db=db, post_id=post_id, mission_ids=principal.missions_where("listen.read")
    )
    if post is None:
        raise HTTPException(404, "no such post")
    annotations = {a.enricher: a for a in listen.annotations_of(db=db, post_id=post_id)}
    author, source = overview.author_and_source(db=db, post=post)
    lang = request_language(request)
    stored = service.narrative_table_exists(db)
    narrative = narratives.narrative_of_post(db=db, post_id=post.id) if stored else None
    return render(
        request,
        "post_detail.html",
        {
            "active": "explore",
            "p": post,
            "annotations": annotations,
            "enricher_names": ENRICHER_NAMES,
            "author": author,
            "source": source,
            "matches": service.matches_of_post(db=db, principal=principal, post_id=post_id),
            "entity_name": lambda e: entity_name(e, lang),
            "narratives_stored": stored,
            "narrative": narrative,
            "narrative_title": narratives.title_of(narrative) if narrative else "",
        },
    )


@router.get("/authors/{author_id}")
def author_page(request: Request, author_id: Id, db: DbSession, principal: StaffUser) -> Response:
    """An author's profile: actor type (editable), counts and recent posts."""
    try:
        author = service.view_author(db=db, principal=principal, author_id=author_id)
    except service.NotFound:
        raise HTTPException(404, "no such author") from None
    query = listen.SearchQuery(
        author=author.handle, limit=20, mission_ids=principal.missions_where("listen.read")
    )
    page = listen.search_page(db=db, query=query)
    return render(
        request,
        "author.html",
        {
            "active": "explore",
            "a": author,
            "posts": page.items,
            "total": page.total,
            "exact": page.exact,
            "actor_types": ACTOR_TYPES,
            "can_edit": service.author_in_reach(
                db=db, principal=principal, author_id=author_id, permission="authors.manage"
            ),
            **actor_views.author_context(db, principal, author),
        },
    )


@router.post("/authors/{author_id}/actor-type")
def set_actor_type(
    author_id: Id, act: StaffForm, actor_type: Annotated[str, Form(max_length=32)] = ""
) -> Response:
    """Change an author's actor type."""
    request, db, principal = act.checked()
    try:
        author = service.set_actor_type(
            db=db, principal=principal, author_id=author_id, actor_type=actor_type
        )
    except service.InvalidWatch as exc:
        raise HTTPException(400, error_text(request, exc)) from None
    except service.NotFound:
        raise HTTPException(404, "no such author") from None
    except PermissionDenied:
        raise HTTPException(403, t(request, N_("You may not change authors."))) from None
    return redirect(request, f"/authors/{author.id}")
