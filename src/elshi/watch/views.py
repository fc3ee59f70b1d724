"""Workspace pages: watch lists, dashboards with downloadable charts, known events."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response

from elshi.accounts.service import PermissionDenied, Principal, audit_by
from elshi.missions import service as missions
from elshi.watch import service
from elshi.web.actions import StaffForm
from elshi.web.bounds import Id
from elshi.web.charts import Chart, Series
from elshi.web.deps import DbSession, StaffUser
from elshi.web.i18n import N_, language_name
from elshi.web.pages import (
    entity_name,
    error_text,
    int_or_none,
    parse_day,
    redirect,
    t,
)
from elshi.web.templating import render, request_language

router = APIRouter(include_in_schema=False)

BAD_DATE = N_("A date is not valid: use the form 2026-11-01.")
CHART_TITLES = {
    "volume": N_("Posts per day"),
    "sentiment": N_("Sentiment per day"),
    "stance": N_("Stance towards the topic per day"),
    "languages": N_("Posts by language"),
    "platforms": N_("Posts by platform"),
    "sources": N_("Posts by source"),
    "voice": N_("Share of voice: posts mentioning each country"),
    "entities": N_("Most mentioned"),
}
SERIES = {
    "posts": N_("posts"),
    "negative": N_("negative"),
    "neutral": N_("neutral"),
    "positive": N_("positive"),
    "against": N_("against"),
    "favour": N_("in favour"),
    "forecast": N_("forecast"),
    "band": N_("80% forecast range"),
}
#: What the first column of each chart's table (for screen readers) holds.
LABEL_HEADINGS = {
    "languages": N_("Language"),
    "platforms": N_("Platform"),
    "sources": N_("Source"),
    "voice": N_("Country"),
    "entities": N_("Name"),
}


def _watch_or_404(db: Any, principal: Principal, watch_id: int) -> Any:
    try:
        return service.get_watch(db=db, principal=principal, watch_id=watch_id)
    except service.NotFound:
        raise HTTPException(404, "no such watch list") from None


def parse_filters(request: Request, db: Any, watch_id: int) -> tuple[service.Filters, list[str]]:
    """Read range and splits from the query string; bad values become messages."""
    q = request.query_params
    errors: list[str] = []
    days = int_or_none(q.get("days")) or 30
    since, until = parse_day(q.get("since")), parse_day(q.get("until"))
    if (q.get("since") and since is None) or (q.get("until") and until is None):
        errors.append(t(request, BAD_DATE))
    default_since, default_until = service.default_range(
        db=db, watch_id=watch_id, days=min(days, 366)
    )
    until = until or (since + timedelta(days=days - 1) if since else default_until)
    since = since or until - timedelta(days=min(days, 366) - 1)
    try:
        service.validate_range(since, until)
    except service.InvalidWatch as exc:
        errors.append(error_text(request, exc))
        since, until = default_since, default_until
    lang = (q.get("language") or "").strip()[:16] or None
    platform = (q.get("platform") or "").strip()[:32] or None
    return (
        service.Filters(
            since=since,
            until=until,
            lang=lang,
            platform=platform,
            source_id=int_or_none(q.get("source")),
        ),
        errors,
    )


def build_charts(request: Request, d: service.Dashboard, forecast: Any = None) -> dict[str, Chart]:
    """Turn a dashboard into its charts, titled in the interface language."""
    lang = request_language(request)
    labels = [x.isoformat() for x in d.days]

    def title(slug: str) -> str:
        return f"{t(request, CHART_TITLES[slug])} · {d.watch.name}"

    volume = Chart(
        "volume",
        title("volume"),
        list(labels),
        [Series(t(request, SERIES["posts"]), list(map(float, d.volume)))],
        label_heading=t(request, N_("Day")),
    )
    if forecast is not None and forecast.days:
        extra = [x.isoformat() for x in forecast.days]
        volume.labels += extra
        volume.series[0].values += [None] * len(extra)
        volume.series.append(
            Series(
                t(request, SERIES["forecast"]),
                [None] * (len(labels) - 1)
                + [float(d.volume[-1]) if d.volume else 0.0]
                + forecast.volume,
                dashed=True,
            )
        )
        nan: list[float | None] = [None] * len(labels)
        volume.band = (nan + list(forecast.volume_low), nan + list(forecast.volume_high))
        volume.band_name = t(request, SERIES["band"])
    volume.marks = [
        (volume.labels.index(e.day.isoformat()), e.title)
        for e in d.extra.get("events", [])
        if e.day.isoformat() in volume.labels
    ]
    charts = {
        "volume": volume,
        "sentiment": Chart(
            "sentiment",
            title("sentiment"),
            labels,
            [
                Series(t(request, SERIES[k]), list(map(float, d.sentiment[k])))
                for k in ("negative", "neutral", "positive")
            ],
            label_heading=t(request, N_("Day")),
        ),
        "stance": Chart(
            "stance",
            title("stance"),
            labels,
            [
                Series(t(request, SERIES["against"]), list(map(float, d.stance["negative"]))),
                Series(t(request, SERIES["favour"]), list(map(float, d.stance["positive"]))),
            ],
            label_heading=t(request, N_("Day")),
        ),
    }
    bars = {
        "languages": [(language_name(x, lang) if x != "?" else x, n) for x, n in d.by_lang],
        "platforms": d.by_platform,
        "sources": d.by_source[:12],
        "voice": [(entity_name(e, lang), n) for e, n in d.share_of_voice],
        "entities": [(entity_name(e, lang), n) for e, n in d.top_entities],
    }
    for slug, items in bars.items():
        charts[slug] = Chart(
            slug,
            title(slug),
            [str(k) for k, _ in items],
            [Series(t(request, SERIES["posts"]), [float(n) for _, n in items])],
            kind="bar",
            highlight={entity_name(d.watch.focus_entity, lang)} if slug == "voice" else set(),
            label_heading=t(request, LABEL_HEADINGS[slug]),
        )
    return charts


def _dashboard(
    request: Request, db: Any, principal: Principal, watch_id: int
) -> tuple[service.Dashboard, list[str], Any]:
    from elshi.forecast import service as forecasting

    _watch_or_404(db, principal, watch_id)
    filters, errors = parse_filters(request, db, watch_id)
    d = service.dashboard(db=db, principal=principal, watch_id=watch_id, filters=filters)
    fc = (
        forecasting.forecast_watch(db=db, watch=d.watch, until=filters.until)
        if not filters.filtered
        else None
    )
    horizon_end = filters.until + timedelta(days=forecasting.HORIZON if fc else 0)
    d.extra["events"] = service.events_for(
        db=db, watch=d.watch, since=filters.since, until=horizon_end
    )
    return d, errors, fc


@router.get("/watch")
def watch_list(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """The watch lists of the user's missions."""
    rows = service.list_watches(db=db, principal=principal)
    names = {m.id: m.name for m in missions.list_missions(db=db)}
    return render(
        request, "watch_list.html", {"active": "watch", "watches": rows, "mission_names": names}
    )


@router.get("/watch/{watch_id}")
def dashboard(request: Request, watch_id: Id, db: DbSession, principal: StaffUser) -> Response:
    """A watch list's dashboard for a range of days, with filters and charts."""
    d, errors, fc = _dashboard(request, db, principal, watch_id)
    charts = build_charts(request, d, fc)
    splits = service.split_values(db=db, watch_id=watch_id)
    source_names = {s.id: s.name for s in service_sources(db)}
    return render(
        request,
        "dashboard.html",
        {
            "active": "watch",
            "d": d,
            "charts": charts,
            "errors": errors,
            "splits": splits,
            "source_names": source_names,
            "forecast": fc,
            "entity_name": lambda e: entity_name(e, request_language(request)),
            "can_manage": principal.can("watch.manage", d.watch.mission_id),
        },
        status=400 if errors else 200,
    )


def service_sources(db: Any) -> list[Any]:
    """Return every source (for names in filters)."""
    from elshi.listen.service import list_sources

    return list_sources(db=db)


@router.get("/watch/{watch_id}/chart/{name}.{fmt}")
def chart(
    request: Request, watch_id: Id, name: str, fmt: str, db: DbSession, principal: StaffUser
) -> Response:
    """One dashboard chart as SVG, PNG or CSV (the same filters as the page)."""
    if fmt not in ("svg", "png", "csv") or name not in CHART_TITLES:
        raise HTTPException(404, "no such chart")
    d, _errors, fc = _dashboard(request, db, principal, watch_id)
    c = build_charts(request, d, fc)[name]
    filename = f"elshi-{watch_id}-{name}-{d.filters.since}-{d.filters.until}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt == "svg":
        return Response(c.svg(standalone=True), media_type="image/svg+xml", headers=headers)
    if fmt == "png":
        return Response(c.png(), media_type="image/png", headers=headers)
    return Response(c.csv(), media_type="text/csv; charset=utf-8", headers=headers)


# ---------------------------------------------------------------------------- manage


def _form_page(
    request: Request,
    db: Any,
    principal: Principal,
    values: dict[str, Any],
    error: str | None = None,
    status: int = 200,
) -> Response:
    allowed = [m for m in missions.list_missions(db=db) if principal.can("watch.manage", m.id)]
    if not allowed:
        raise HTTPException(403, "you may not manage watch lists")
    return render(
        request,
        "watch_form.html",
        {"active": "watch", "v": values, "error": error, "missions": allowed},
        status=status,
    )


@router.get("/watch-new")
def watch_new(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Form for a new watch list."""
    return _form_page(request, db, principal, {"focus_entity": "country:KZ"})


@router.get("/watch/{watch_id}/edit")
def watch_edit(request: Request, watch_id: Id, db: DbSession, principal: StaffUser) -> Response:
    """Form to change a watch list."""
    w = _watch_or_404(db, principal, watch_id)
    values = {
        "id": w.id,
        "mission_id": w.mission_id,
        "name": w.name,
        "description": w.description,
        "terms": service.format_terms(w.terms),
        "context_terms": service.format_terms(w.context_terms),
        "focus_entity": w.focus_entity,
    }
    return _form_page(request, db, principal, values)


@router.post("/watch-save")
def watch_save(
    act: StaffForm,
    watch_id: Annotated[str, Form(max_length=12)] = "",
    mission_id: Annotated[str, Form(max_length=12)] = "",
    name: Annotated[str, Form(max_length=1000)] = "",
    description: Annotated[str, Form(max_length=5000)] = "",
    terms: Annotated[str, Form(max_length=50_000)] = "",
    context_terms: Annotated[str, Form(max_length=50_000)] = "",
    focus_entity: Annotated[str, Form(max_length=100)] = "country:KZ",
) -> Response:
    """Create or change a watch list."""
    request, db, principal = act.checked()
    wid, mid = int_or_none(watch_id), int_or_none(mission_id)
    values: dict[str, Any] = {
        "id": wid,
        "mission_id": mid,
        "name": name,
        "description": description,
        "terms": terms,
        "context_terms": context_terms,
        "focus_entity": focus_entity,
    }
    try:
        with db.begin_nested():
            w = service.save_watch(
                db=db,
                principal=principal,
                mission_id=mid or 0,
                name=name,
                terms=terms,
                context_terms=context_terms,
                description=description,
                focus_entity=focus_entity,
                watch_id=wid,
            )
    except service.InvalidWatch as exc:
        return _form_page(request, db, principal, values, error_text(request, exc), status=400)
    except (PermissionDenied, service.NotFound):
        raise HTTPException(403, "you may not manage watch lists in this mission") from None
    audit_by(principal, db, "watch.saved", "watch", w.id, mission_id=w.mission_id)
    _queue_update(request)
    return redirect(request, f"/watch/{w.id}")


def _queue_update(request: Request) -> None:
    """Ask the queue to match the changed watch list against history (when a queue runs)."""
    runtime = request.app.state.runtime
    if runtime is not None:
        runtime.tasks["update_watches"]()


# ---------------------------------------------------------------------------- known events


@router.post("/watch/{watch_id}/events")
def add_event(
    watch_id: Id,
    act: StaffForm,
    day: Annotated[str, Form(max_length=20)] = "",
    title: Annotated[str, Form(max_length=1000)] = "",
    kind: Annotated[str, Form(max_length=20)] = "other",
) -> Response:
    """Enter a known date (visit, summit, vote) for the forecast."""
    request, db, principal = act.checked()
    w = _watch_or_404(db, principal, watch_id)
    when = parse_day(day)
    if when is None:
        raise HTTPException(400, t(request, BAD_DATE))
    try:
        service.add_event(
            db=db,
            principal=principal,
            mission_id=w.mission_id,
            watch_id=w.id,
            day=when,
            title=title,
            kind=kind,
        )
    except service.InvalidWatch as exc:
        raise HTTPException(400, error_text(request, exc)) from None
    except PermissionDenied:
        raise HTTPException(403, "you may not enter events in this mission") from None
    return redirect(request, f"/watch/{w.id}#forecast")


def today() -> date:
    """Return today's date in UTC."""
    from elshi.db import utcnow

    return utcnow().date()
