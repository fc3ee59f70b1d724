"""Actor pages: the registry (imported lists, accounts by type, accounts with the highest
signal scores, actors), one actor with its accounts, the list upload and the linking forms.

Accounts are seen through the posts the viewer's missions may read; lists are ministry-wide
and uploaded or removed with `authors.manage` at headquarters. The upload takes the file's
bytes only: its name is kept as a label and never opened as a path.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from elshi.accounts.service import PermissionDenied, Principal
from elshi.actors import service
from elshi.actors.lists import ListError
from elshi.coordination import evidence
from elshi.errors import Invalid, NotFound
from elshi.watch.models import ACTOR_TYPES
from elshi.watch.service import author_in_reach
from elshi.web.actions import StaffForm
from elshi.web.bounds import Id
from elshi.web.deps import DbSession, StaffUser
from elshi.web.forms import read_upload
from elshi.web.i18n import N_
from elshi.web.pages import check_form, error_text, redirect, t
from elshi.web.templating import render

router = APIRouter(include_in_schema=False)

#: Accounts with the highest scores shown on the registry page.
TOP = 50
#: Bad lines of an upload shown on the page (all are counted).
SHOWN_ERRORS = 100
NOT_ALLOWED = N_("You may not change authors.")
#: The signals' names, as the pages show them.
SIGNAL_NAMES = {
    "activity": N_("Activity"),
    "regularity": N_("Regular intervals"),
    "anonymity": N_("Anonymity"),
    "amplification": N_("Amplification"),
    "coordination": N_("Coordination"),
    "age": N_("Account age"),
}


def visible_groups(db: DbSession, principal: Principal) -> set[int] | None:
    """The coordination groups the viewer sees (None: every group)."""
    ids = principal.missions_where("listen.read")
    if ids is None:
        return None
    return set(evidence.candidate_ids(db=db, mission_ids=ids))


def _registry(request: Request, db: DbSession, principal: Principal, **extra: Any) -> Response:
    ids = principal.missions_where("listen.read")
    return render(
        request,
        "actors.html",
        {
            "active": "actors",
            "lists": service.lists(db),
            "counts": service.typed_counts(db, mission_ids=ids),
            "flagged": service.flagged_accounts(db, mission_ids=ids, limit=TOP),
            "actors": service.seen_actors(db, mission_ids=ids),
            "can_import": principal.can("authors.manage", None),
            "actor_types": ACTOR_TYPES,
            "signal_names": SIGNAL_NAMES,
            **extra,
        },
    )


@router.get("/actors")
def registry_page(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Who speaks: imported lists, accounts by type, the highest signal scores, actors."""
    return _registry(request, db, principal)


@router.post("/actors/lists")
async def upload_list(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Upload a list of accounts (CSV or JSON) with their types; show what was stored and
    each bad line with where it is and what is wrong."""
    limit = service.MAX_LIST_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise HTTPException(
            413, t(request, N_("The file is larger than %(mb)s MB."), mb=limit // 1_000_000)
        )
    form = await request.form(max_files=1, max_fields=10, max_part_size=64 * 1024)
    file = form.get("file")
    data = await read_upload(file, limit) if isinstance(file, UploadFile) else b""
    filename = (file.filename or "") if isinstance(file, UploadFile) else ""
    fields = {
        k: str(form.get(k) or "")[:300]
        for k in ("name", "platform", "actor_type", "country", "csrf_token")
    }
    await form.close()

    def work() -> Response:
        check_form(request, fields["csrf_token"])
        if not principal.can("authors.manage", None):
            raise HTTPException(403, t(request, N_("Lists are imported at headquarters.")))
        if not filename or not data:
            return _registry(
                request, db, principal, upload_error=t(request, N_("Choose a file to upload."))
            )
        try:
            done = service.import_list(
                db,
                principal=principal,
                data=data,
                filename=filename.replace("\\", "/").rsplit("/", 1)[-1],
                name=fields["name"],
                defaults={k: fields[k] for k in ("platform", "actor_type", "country")},
            )
        except ListError as exc:
            db.rollback()
            return _registry(request, db, principal, upload_error=str(exc))
        except Invalid as exc:
            db.rollback()
            return _registry(request, db, principal, upload_error=error_text(request, exc))
        db.commit()
        _queue_assessment(request)
        return _registry(
            request,
            db,
            principal,
            imported=done,
            errors=done.reading.errors[:SHOWN_ERRORS],
        )

    return await run_in_threadpool(work)


def _queue_assessment(request: Request) -> None:
    """Ask the worker to assess the accounts now (the hourly run does it otherwise)."""
    if getattr(request.app.state, "runtime", None) is None:
        return
    from elshi import jobs

    try:
        jobs.enqueue("assess_actors")
    except Exception:  # the queue is down: the hourly run assesses them
        return


@router.post("/actors/lists/{list_id}/delete")
def delete_list(list_id: Id, act: StaffForm) -> Response:
    """Remove an imported list (its types go at the next assessment)."""
    request, db, principal = act.checked()
    try:
        service.delete_list(db, principal=principal, list_id=list_id)
    except PermissionDenied:
        raise HTTPException(403, t(request, N_("Lists are imported at headquarters."))) from None
    except NotFound:
        raise HTTPException(404, "no such list") from None
    db.commit()
    _queue_assessment(request)
    return redirect(request, "/actors")


@router.get("/actors/{actor_id}")
def actor_page(request: Request, actor_id: Id, db: DbSession, principal: StaffUser) -> Response:
    """One actor: its accounts on every platform that the viewer sees, with their types and
    signals."""
    try:
        seen = service.seen_actor(
            db, actor_id=actor_id, mission_ids=principal.missions_where("listen.read")
        )
    except NotFound:
        raise HTTPException(404, "no such actor") from None
    return render(
        request,
        "actor.html",
        {
            "active": "actors",
            "seen": seen,
            "signal_names": SIGNAL_NAMES,
            "visible_groups": visible_groups(db, principal),
            "can_edit": {
                a.id: author_in_reach(
                    db=db, principal=principal, author_id=a.id, permission="authors.manage"
                )
                for a, _ in seen.accounts
            },
        },
    )


@router.post("/authors/{author_id}/actor")
def link_author(
    author_id: Id,
    act: StaffForm,
    actor: Annotated[str, Form(max_length=12)] = "",
    name: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """Link an account to an actor (one the viewer sees, or a new one by name)."""
    request, db, principal = act.checked()
    actor_id = int(actor) if actor.strip().isdigit() else None
    try:
        found = service.link(
            db, principal=principal, author_id=author_id, actor_id=actor_id, name=name
        )
    except Invalid as exc:
        raise HTTPException(400, error_text(request, exc)) from None
    except NotFound:
        raise HTTPException(404, "no such author or actor") from None
    except PermissionDenied:
        raise HTTPException(403, t(request, NOT_ALLOWED)) from None
    db.commit()
    return redirect(request, f"/actors/{found.id}")


@router.post("/actors/{actor_id}/accounts/{author_id}/remove")
def unlink_author(actor_id: Id, author_id: Id, act: StaffForm) -> Response:
    """Take an account out of an actor."""
    request, db, principal = act.checked()
    try:
        service.unlink(db, principal=principal, actor_id=actor_id, author_id=author_id)
    except NotFound:
        raise HTTPException(404, "no such account of this actor") from None
    except PermissionDenied:
        raise HTTPException(403, t(request, NOT_ALLOWED)) from None
    db.commit()
    return redirect(request, f"/authors/{author_id}")


def author_context(db: DbSession, principal: Principal, author: Any) -> dict[str, Any]:
    """What the author's page shows of the registry: type reason, signals, actor."""
    panel = service.panel(db, principal=principal, author=author)
    fired_groups = panel.assessment is not None and any(
        s["key"] == "coordination" and s["fired"] for s in panel.assessment.signals
    )
    return {
        "panel": panel,
        "signal_names": SIGNAL_NAMES,
        "visible_groups": visible_groups(db, principal) if fired_groups else None,
    }
