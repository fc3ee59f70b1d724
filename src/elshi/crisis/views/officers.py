"""Crisis pages for officers (/crisis/...): the list and the new-crisis form with its preview,
the welfare dashboard, broadcast approval and sending, worklists and the evacuation export."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from elshi.crisis import mapsvg, service
from elshi.crisis.export import evacuation_csv, evacuation_html, evacuation_rows
from elshi.crisis.models import CHANNELS, Crisis
from elshi.errors import Invalid, NotFound
from elshi.web.actions import Refusal, handle_form, text_fields
from elshi.web.bounds import MAX_ID, Id
from elshi.web.deps import DbSession, StaffUser
from elshi.web.i18n import N_
from elshi.web.pages import FORM_EXPIRED, NOT_ALLOWED
from elshi.web.security import csp_allowing_images
from elshi.web.templating import render, request_language, settings_of, translate

router = APIRouter(prefix="/crisis", include_in_schema=False)

NOTICES = {
    "created": N_("The broadcast is saved. A second officer must approve it."),
    "approved": N_("Approved. It can be sent now."),
    "sent": N_("Sending has started."),
    "cancelled": N_("Cancelled: pending deliveries were stopped."),
    "killed": N_("Kill switch: every pending delivery of this crisis is stopped."),
    "closed": N_("The crisis is closed."),
    "saved": N_("Saved."),
    "merged": N_("Walk-in registrations were matched with accounts."),
}


def _officer(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("errors", {})
    context.setdefault("notice", request.query_params.get("notice"))
    context["notices"] = NOTICES
    context["active"] = "crisis"
    return render(request, "crisis/" + template, context, status=status)


def _errors(request: Request, exc: Invalid) -> dict[str, str]:
    return {p.where: translate(request, p.message) % p.params for p in exc.problems}


def _not_allowed(request: Request) -> Response:
    return render(request, "error.html", {"message": translate(request, NOT_ALLOWED)}, status=404)


def _refused(request: Request) -> list[Refusal]:
    """A change refused: a bad state is a conflict (409); another mission's crisis or broadcast
    is "not found" (404), as its page is."""
    return [
        (
            Invalid,
            lambda exc: render(
                request,
                "error.html",
                {"message": "; ".join(_errors(request, exc).values())},
                status=409,
            ),
        ),
        (NotFound, lambda exc: _not_allowed(request)),
    ]


@router.get("")
def crises(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Crises of the officer's missions and the form for a new one."""
    return _officer(
        request,
        "list.html",
        crises=service.list_crises(db=db, actor=principal),
        missions=service.missions_to_act(db=db, actor=principal),
        values={"audience": "present"},
        preview=None,
        describe=lambda area: service.describe_area(area, lambda m: translate(request, m)),
    )


@router.post("")
def create(
    request: Request,
    db: DbSession,
    principal: StaffUser,
    raw: Annotated[dict[str, str], text_fields(40)],
) -> Response:
    """Preview (how many people, which channels, SMS segments) or create a crisis broadcast."""
    settings = settings_of(request)
    ctx: dict[str, Any] = {
        "crises": service.list_crises(db=db, actor=principal),
        "missions": service.missions_to_act(db=db, actor=principal),
        "values": raw,
        "preview": None,
        "describe": lambda area: service.describe_area(area, lambda m: translate(request, m)),
    }

    def change() -> Any:
        """The new broadcast; None when the officer only asked for the preview."""
        mission_id = int(raw.get("mission_id") or 0)
        area = service.parse_area(raw)
        messages = service.parse_messages(
            raw, max_segments=settings.crisis_sms_max_segments, base_url=settings.base_url
        )
        ctx["preview"] = service.preview(
            db=db,
            actor=principal,
            mission_id=mission_id,
            area=area,
            audience=raw.get("audience", "present"),
            messages=messages,
            base_url=settings.base_url,
        )
        if raw.get("action") != "create":
            return None
        return service.create_crisis(
            db=db,
            actor=principal,
            mission_id=mission_id,
            title=raw.get("title", ""),
            area=area,
            audience=raw.get("audience", "present"),
            messages=messages,
        )

    return handle_form(
        request,
        db,
        change,
        token=raw.get("csrf_token"),
        expired=lambda: _officer(
            request, "list.html", 400, errors={"form": translate(request, FORM_EXPIRED)}, **ctx
        ),
        done=lambda b: (
            _officer(request, "list.html", **ctx)
            if b is None
            else RedirectResponse(f"/crisis/{b.crisis_id}?notice=created", status_code=303)
        ),
        refused=[
            (
                Invalid,
                lambda exc: _officer(
                    request, "list.html", 422, errors=_errors(request, exc), **ctx
                ),
            ),
            (
                ValueError,
                lambda exc: _officer(request, "list.html", 422, errors={"mission_id": "?"}, **ctx),
            ),
        ],
    )


def _crisis_or_404(
    request: Request, db: Any, principal: Any, crisis_id: int, act: bool = False
) -> Crisis | Response:
    try:
        return service.get_crisis(db=db, actor=principal, crisis_id=crisis_id, act=act)
    except NotFound:
        return render(
            request, "error.html", {"message": translate(request, NOT_ALLOWED)}, status=404
        )


@router.get("/{crisis_id}")
def dashboard(request: Request, db: DbSession, principal: StaffUser, crisis_id: Id) -> Response:
    """The welfare dashboard: counts, presence confirmed vs estimated, map, broadcasts."""
    crisis = _crisis_or_404(request, db, principal, crisis_id)
    if isinstance(crisis, Response):
        return crisis
    w = service.welfare(db=db, crisis_id=crisis.id)
    expected = None
    if w.people == 0 and crisis.status == "open":
        expected = service.preview(
            db=db,
            actor=principal,
            mission_id=crisis.mission_id,
            area=crisis.area,
            audience=crisis.audience,
        )
    reports = service.worklist(db=db, actor=principal, crisis_id=crisis.id, kind="help")
    broadcasts = service.broadcasts_of(db=db, crisis_id=crisis.id)
    walkins = service.walkins_of(db=db, crisis_id=crisis.id, limit=200)
    segs = {
        b.id: {
            lang: service.sms_segments(
                service.sms_body(
                    m,
                    link=service.checkin_url(
                        base_url=settings_of(request).base_url,
                        key=b"x",
                        crisis_id=crisis.id,
                        recipient_id=9_999_999,
                    ),
                )
            )
            for lang, m in b.messages.items()
        }
        for b in broadcasts
    }
    page = _officer(
        request,
        "dashboard.html",
        crisis=crisis,
        w=w,
        expected=expected,
        area=service.describe_area(crisis.area, lambda m: translate(request, m)),
        map=_help_map(request, crisis, reports),
        reports=reports,
        tiles_attribution=settings_of(request).crisis_map_tiles_attribution,
        broadcasts=broadcasts,
        segments=segs,
        walkins=walkins,
        can_act=principal.can("consulate.act", crisis.mission_id),
        me=principal.user_id,
    )
    tiles = settings_of(request).crisis_map_tiles_url
    if tiles:
        page.headers["Content-Security-Policy"] = csp_allowing_images(mapsvg.tiles_origin(tiles))
    return page


def report_label(request: Request, person: service.Person) -> str:
    """The accessible name of a need-help report: the person's name and note."""
    if not person.note:
        return person.recipient.name
    return translate(request, N_("%(name)s: %(note)s")) % {
        "name": person.recipient.name,
        "note": person.note,
    }


def _help_map(request: Request, crisis: Crisis, reports: list[service.Person]) -> Markup:
    """The need-help reports with a position, on the map of the crisis area."""
    markers = [
        mapsvg.Marker(
            p.latitude,
            p.longitude,
            report_label(request, p),
            f"/crisis/{crisis.id}/people/help#person-{p.recipient.id}",
        )
        for p in reports
        if p.latitude is not None and p.longitude is not None
    ]
    return mapsvg.draw(
        crisis.area,
        markers,
        label=translate(request, N_("Map of the crisis area and the need-help reports")),
        tiles_url=settings_of(request).crisis_map_tiles_url,
    )


def _enqueue(request: Request, broadcast_id: int) -> None:
    if request.app.state.runtime is None:
        return
    from elshi import jobs

    for channel in CHANNELS:
        jobs.enqueue("crisis_deliver", broadcast_id, channel)


BROADCAST_ACTIONS: dict[str, tuple[Callable[..., object], str]] = {
    "approve": (service.approve, "approved"),
    "send": (service.send, "sent"),
    "cancel": (service.cancel, "cancelled"),
}


@router.post("/broadcast/{broadcast_id}/{action}")
async def broadcast_action(
    request: Request, db: DbSession, principal: StaffUser, broadcast_id: Id, action: str
) -> Response:
    """Approve (a second officer), send, or cancel a broadcast."""
    form = await request.form(max_files=0, max_fields=5)
    b = service.find_broadcast(db=db, broadcast_id=broadcast_id)
    if b is None or action not in BROADCAST_ACTIONS:
        return _not_allowed(request)
    target = f"/crisis/{b.crisis_id}"
    run, notice = BROADCAST_ACTIONS[action]
    return handle_form(
        request,
        db,
        lambda: run(db=db, actor=principal, broadcast_id=broadcast_id),
        token=str(form.get("csrf_token") or ""),
        expired=lambda: RedirectResponse(target, status_code=303),
        done=lambda _: RedirectResponse(f"{target}?notice={notice}", status_code=303),
        refused=_refused(request),
        deliver=(lambda _: _enqueue(request, broadcast_id)) if action == "send" else None,
    )


@router.post("/{crisis_id}/{action}")
def crisis_action(
    request: Request,
    db: DbSession,
    principal: StaffUser,
    crisis_id: Id,
    action: str,
    raw: Annotated[dict[str, str], text_fields(20)],
) -> Response:
    """Kill switch, close, follow-up broadcast, merge walk-ins, worklist assignment."""
    target = f"/crisis/{crisis_id}"
    settings = settings_of(request)

    def change() -> str:
        """Make the change; return the page to go to next."""
        if action == "kill":
            service.kill(db=db, actor=principal, crisis_id=crisis_id)
            return f"{target}?notice=killed"
        if action == "close":
            service.close(db=db, actor=principal, crisis_id=crisis_id)
            return f"{target}?notice=closed"
        if action == "followup":
            messages = service.parse_messages(
                raw, max_segments=settings.crisis_sms_max_segments, base_url=settings.base_url
            )
            service.follow_up(
                db=db,
                actor=principal,
                crisis_id=crisis_id,
                messages=messages,
                target=raw.get("target", "unanswered"),
            )
            return f"{target}?notice=created"
        if action == "merge":
            service.merge_walkins(db=db, actor=principal, crisis_id=crisis_id)
            return f"{target}?notice=merged"
        if action == "assign":
            # A form field, not a path: bound it here as the path ids are bound at the edge.
            given = (raw.get("recipient_id") or "").strip()
            if not given.isdigit() or not 1 <= int(given) <= MAX_ID:
                raise NotFound(f"crisis {crisis_id}: no person {given[:30]!r}")
            service.assign(
                db=db,
                actor=principal,
                crisis_id=crisis_id,
                recipient_id=int(given),
                note=raw.get("note"),
                to_me=raw.get("to_me") == "1",
            )
            kind = raw.get("kind", "help")
            return f"{target}/people/{kind if kind in LIST_NAMES else 'help'}?notice=saved"
        raise NotFound(f"crisis action {action}")

    return handle_form(
        request,
        db,
        change,
        token=raw.get("csrf_token"),
        expired=lambda: RedirectResponse(target, status_code=303),
        done=lambda url: RedirectResponse(url, status_code=303),
        refused=_refused(request),
    )


LIST_NAMES = {
    "help": N_("Need help"),
    "not_reached": N_("Not reached"),
    "not_answered": N_("Not answered"),
    "call": N_("Call list"),
    "safe": N_("Safe"),
    "left": N_("Left the area"),
    "all": N_("Everyone"),
}


@router.get("/{crisis_id}/people/{kind}")
def worklist(
    request: Request, db: DbSession, principal: StaffUser, crisis_id: Id, kind: str
) -> Response:
    """A worklist for duty officers: who, how to reach them, their answer; assign and note."""
    crisis = _crisis_or_404(request, db, principal, crisis_id)
    if isinstance(crisis, Response):
        return crisis
    if kind not in LIST_NAMES:
        kind = "help"
    rows = service.worklist(db=db, actor=principal, crisis_id=crisis.id, kind=kind, limit=500)
    return _officer(
        request,
        "people.html",
        crisis=crisis,
        kind=kind,
        list_names=LIST_NAMES,
        rows=rows,
        can_act=principal.can("consulate.act", crisis.mission_id),
    )


@router.get("/{crisis_id}/evacuation.{fmt}")
def export(
    request: Request, db: DbSession, principal: StaffUser, crisis_id: Id, fmt: str
) -> Response:
    """The evacuation list (everyone not known to have left) as CSV or PDF; access is logged."""
    crisis = _crisis_or_404(request, db, principal, crisis_id, act=True)
    if isinstance(crisis, Response):
        return crisis
    people = service.evacuation_list(db=db, actor=principal, crisis_id=crisis.id, fmt=fmt)
    rows = evacuation_rows(db, people)
    name = f"evacuation-{crisis.id}"
    if fmt == "csv":
        return Response(
            evacuation_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if fmt == "pdf":
        from elshi.digest.flows import PdfError, render_pdf

        html = evacuation_html(crisis, rows, lang=request_language(request))
        try:
            pdf = render_pdf(html, settings=settings_of(request))
        except PdfError as exc:
            return render(request, "error.html", {"message": str(exc)}, status=503)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
        )
    return render(request, "error.html", {"message": "csv or pdf"}, status=404)
