"""Alert pages: rules of a watch list, the alert list (in-app notices), one alert with why."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel

from elshi.accounts.service import PermissionDenied
from elshi.alerts import flows, service, wording
from elshi.alerts.models import RULE_KINDS, AlertRule
from elshi.watch.service import NotFound, get_watch, narrative_table_exists
from elshi.web.actions import Refusal, StaffAction, StaffForm
from elshi.web.bounds import Id
from elshi.web.deps import DbSession, StaffUser, get_database
from elshi.web.i18n import N_
from elshi.web.pages import FIELD_NAMES, FORM_EXPIRED, error_text, redirect, t
from elshi.web.templating import render, request_language

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api", tags=["alerts"])


class AckOut(BaseModel):
    """An alert after acknowledging it."""

    id: int
    status: str
    acknowledged_by: int | None


KIND_NAMES = {
    "volume_spike": N_("Volume spike against the usual level"),
    "negative_jump": N_("Jump in posts against the topic"),
    "term": N_("A term appears"),
    "source_silent": N_("A source goes silent"),
    "narrative_growth": N_("A narrative grows fast"),
    "coordinated_group": N_("A coordinated group appears or grows"),
}
STATUS_NAMES = {"open": N_("open"), "acknowledged": N_("acknowledged")}
DELIVERY_NAMES = {"pending": N_("waiting"), "sent": N_("sent"), "failed": N_("failed")}
NOT_MANAGER = "you may not manage alerts in this mission"


def _refuse(status: int, detail: str) -> Callable[..., Response]:
    """A refusal answered with an HTTP error (the error page, or JSON for the API)."""

    def page(*_: Any) -> Response:
        raise HTTPException(status, detail)

    return page


def _form(
    act: StaffAction,
    change: Callable[[], Any],
    *,
    to: Callable[[Any], str],
    refused: Sequence[Refusal],
    deliver: Callable[[Any], None] | None = None,
) -> Response:
    """Run one alerts form: an expired form answers 400, then the refusals, else go to `to`."""
    return act.handle(
        change,
        expired=_refuse(400, t(act.request, FORM_EXPIRED)),
        done=lambda result: redirect(act.request, to(result)),
        refused=refused,
        deliver=deliver,
    )


#: Form fields whose setting another kind shares: each kind has its own field, so that the
#: form without scripts (every kind's fields shown) sends one value per setting.
FIELD_OF = {
    ("negative_jump", "window_hours"): "jump_window_hours",
    ("negative_jump", "min_count"): "jump_min_count",
}


def field_of(kind: str, setting: str) -> str:
    """Return the form field that holds one setting of a rule kind."""
    return FIELD_OF.get((kind, setting), setting)


def _plural_data(kind: str, shown: dict[str, Any], lang: str) -> dict[str, Any]:
    """What the form's script needs to keep a kind's sentence in the plural forms of the
    numbers typed: `wording.sentence_variants` and the id of each setting's field."""
    data = wording.sentence_variants(kind, shown, lang)
    if data:
        data["fields"] = [field_of(kind, setting) for setting in data["settings"]]
    return data


def _shown(kind: str, values: dict[str, Any]) -> dict[str, str]:
    """A kind's settings as its form shows them: what was typed, else the default (which is
    also what an empty field stores)."""
    shown = {}
    for setting, default in service.DEFAULTS[kind].items():
        typed = values.get(field_of(kind, setting))
        if typed not in (None, ""):
            shown[setting] = typed
        elif isinstance(default, float):
            shown[setting] = f"{default:g}"
        else:
            shown[setting] = "" if default in (None, []) else str(default)
    return shown


def _rules_page(
    request: Request,
    db: Any,
    principal: Any,
    watch_id: int,
    error: service.InvalidRule | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    try:
        watch = get_watch(db=db, principal=principal, watch_id=watch_id)
    except NotFound:
        raise HTTPException(404, "no such watch list") from None
    lang = request_language(request)
    kinds = [k for k in RULE_KINDS if k != "narrative_growth" or narrative_table_exists(db)]
    sources = service.rule_sources(db=db, mission_id=watch.mission_id)
    names = {s.id: s.name for s in sources}
    v = values or {}
    chosen = v.get("kind") if v.get("kind") in kinds else kinds[0]
    return render(
        request,
        "rules.html",
        {
            "active": "alerts",
            "watch": watch,
            "rules": service.rules_of(db=db, watch_id=watch.id),
            "kinds": kinds,
            "chosen": chosen,
            "kind_names": KIND_NAMES,
            "field_names": FIELD_NAMES,
            "field_of": field_of,
            "words": lambda r: wording.rule_words(
                r.kind, r.params, lang, watch=watch.name, sources=names
            ),
            "shown": {k: _shown(k, v) for k in kinds},
            "sentence": lambda k, shown: wording.rule_sentence(k, shown, lang),
            "variants": lambda k, shown: _plural_data(k, shown, lang),
            "sources": sources,
            "error": error_text(request, error) if error else None,
            "error_field": field_of(v.get("kind", ""), error.field) if error else None,
            "v": v,
            "can_manage": principal.can("alerts.manage", watch.mission_id),
        },
        status=status,
    )


@router.get("/watch/{watch_id}/alerts")
def rules(request: Request, watch_id: Id, db: DbSession, principal: StaffUser) -> Response:
    """A watch list's alert rules and the form to add one."""
    return _rules_page(request, db, principal, watch_id)


@router.post("/watch/{watch_id}/alerts")
def add_rule(
    watch_id: Id,
    act: StaffForm,
    kind: Annotated[str, Form(max_length=32)] = "",
    name: Annotated[str, Form(max_length=1000)] = "",
    window_hours: Annotated[str, Form(max_length=20)] = "",
    jump_window_hours: Annotated[str, Form(max_length=20)] = "",
    threshold: Annotated[str, Form(max_length=20)] = "",
    min_count: Annotated[str, Form(max_length=20)] = "",
    jump_min_count: Annotated[str, Form(max_length=20)] = "",
    baseline_days: Annotated[str, Form(max_length=20)] = "",
    min_delta: Annotated[str, Form(max_length=20)] = "",
    terms: Annotated[str, Form(max_length=10_000)] = "",
    source_id: Annotated[str, Form(max_length=20)] = "",
    silent_hours: Annotated[str, Form(max_length=20)] = "",
    growth: Annotated[str, Form(max_length=20)] = "",
    min_posts: Annotated[str, Form(max_length=20)] = "",
    min_size: Annotated[str, Form(max_length=20)] = "",
    growth_percent: Annotated[str, Form(max_length=20)] = "",
    growth_accounts: Annotated[str, Form(max_length=20)] = "",
    emails: Annotated[str, Form(max_length=5000)] = "",
    webhook: Annotated[str, Form(max_length=1000)] = "",
    telegram: Annotated[str, Form(max_length=200)] = "",
    cooldown: Annotated[str, Form(max_length=20)] = "360",
) -> Response:
    """Add an alert rule: only the chosen kind's settings are read (a form without scripts
    sends every kind's fields)."""
    shown = {k: v for k, v in locals().items() if isinstance(v, str)}
    jump = kind == "negative_jump"
    params = {
        "window_hours": (jump and jump_window_hours) or window_hours,
        "threshold": threshold,
        "min_count": (jump and jump_min_count) or min_count,
        "baseline_days": baseline_days,
        "min_delta": min_delta,
        "terms": terms,
        "source_id": source_id,
        "silent_hours": silent_hours,
        "growth": growth,
        "min_posts": min_posts,
        "min_size": min_size,
        "growth_percent": growth_percent,
        "growth_accounts": growth_accounts,
    }

    def change() -> Any:
        if not cooldown.strip().isdigit():
            raise service.InvalidRule("cooldown", N_("from 0 to 43200 minutes"))
        return service.create_rule(
            db=act.db,
            principal=act.principal,
            watch_id=watch_id,
            kind=kind,
            name=name,
            params=params,
            targets={"emails": emails, "webhook": webhook, "telegram": telegram},
            cooldown_minutes=int(cooldown),
        )

    def again(exc: service.InvalidRule) -> Response:
        return _rules_page(act.request, act.db, act.principal, watch_id, exc, shown, status=400)

    return _form(
        act,
        change,
        to=lambda _: f"/watch/{watch_id}/alerts",
        refused=[
            (service.InvalidRule, again),
            (NotFound, _refuse(404, "no such watch list")),
            (PermissionDenied, _refuse(403, NOT_MANAGER)),
        ],
    )


@router.post("/rules/{rule_id}/toggle")
def toggle_rule(
    rule_id: Id, act: StaffForm, enabled: Annotated[str, Form(max_length=5)] = ""
) -> Response:
    """Pause or resume a rule."""
    return _form(
        act,
        lambda: service.set_rule_enabled(
            db=act.db, principal=act.principal, rule_id=rule_id, enabled=enabled == "1"
        ),
        to=lambda rule: f"/watch/{rule.watch_id}/alerts",
        refused=[
            (NotFound, _refuse(404, "no such rule")),
            (PermissionDenied, _refuse(403, NOT_MANAGER)),
        ],
    )


@router.get("/alerts")
def alerts(request: Request, db: DbSession, principal: StaffUser, status: str = "") -> Response:
    """Alerts of the user's missions, newest first, and deliveries that failed."""
    return render(
        request,
        "alerts.html",
        {
            "active": "alerts",
            "alerts": service.list_alerts(
                db=db, principal=principal, status=status if status in STATUS_NAMES else None
            ),
            "status": status,
            "kind_names": KIND_NAMES,
            "status_names": STATUS_NAMES,
            "delivery_names": DELIVERY_NAMES,
            "summary": lambda a: wording.summary(a, request_language(request)),
            "why_rows": lambda a: wording.why_rows(a, request_language(request)),
            "failed": service.failed_deliveries(db=db, principal=principal),
        },
    )


@router.get("/alerts/{alert_id}")
def alert_detail(request: Request, alert_id: Id, db: DbSession, principal: StaffUser) -> Response:
    """One alert: why it fired, its posts, comments and deliveries."""
    try:
        alert = service.get_alert(db=db, principal=principal, alert_id=alert_id)
    except NotFound:
        raise HTTPException(404, "no such alert") from None
    posts = service.posts_of(db=db, alert=alert)
    rule = db.get(AlertRule, alert.rule_id)
    names = {s.id: s.name for s in service.rule_sources(db=db, mission_id=alert.mission_id)}
    lang = request_language(request)
    return render(
        request,
        "alert.html",
        {
            "active": "alerts",
            "a": alert,
            "posts": posts,
            "kind_names": KIND_NAMES,
            "status_names": STATUS_NAMES,
            "delivery_names": DELIVERY_NAMES,
            "summary": lambda a: wording.summary(a, request_language(request)),
            "why_rows": lambda a: wording.why_rows(a, request_language(request)),
            "rule_words": wording.rule_words(
                rule.kind, rule.params, lang, watch=alert.why.get("watch", ""), sources=names
            )
            if rule is not None
            else [],
            "comments": service.comments_of(db=db, alert_id=alert.id),
            "deliveries": service.deliveries_of(db=db, alert_id=alert.id),
        },
    )


@router.post("/alerts/{alert_id}/ack")
def acknowledge(alert_id: Id, act: StaffForm) -> Response:
    """Acknowledge an alert."""
    return _form(
        act,
        lambda: service.acknowledge(db=act.db, principal=act.principal, alert_id=alert_id),
        to=lambda alert: f"/alerts/{alert.id}",
        refused=[(NotFound, _refuse(404, "no such alert"))],
    )


@api.post("/alerts/{alert_id}/ack", response_model=AckOut, summary="Acknowledge an alert")
def api_acknowledge(alert_id: int, db: DbSession, principal: StaffUser) -> AckOut:
    """Mark an alert of the caller's missions as handled (needs a write token or a session)."""
    try:
        alert = service.acknowledge(db=db, principal=principal, alert_id=alert_id)
    except NotFound:
        raise HTTPException(404, "no such alert") from None
    return AckOut(id=alert.id, status=alert.status, acknowledged_by=alert.acknowledged_by)


@router.post("/alerts/{alert_id}/comment")
def add_comment(
    alert_id: Id, act: StaffForm, text: Annotated[str, Form(max_length=10_000)] = ""
) -> Response:
    """Comment on an alert."""
    return _form(
        act,
        lambda: service.comment(db=act.db, principal=act.principal, alert_id=alert_id, text=text),
        to=lambda _: f"/alerts/{alert_id}#comments",
        refused=[
            (NotFound, _refuse(404, "no such alert")),
            (service.InvalidRule, lambda exc: _refuse(400, error_text(act.request, exc))()),
        ],
    )


@router.post("/alerts/{alert_id}/deliveries/{delivery_id}/retry")
def retry(alert_id: Id, delivery_id: Id, act: StaffForm) -> Response:
    """Send a failed delivery again now."""
    return _form(
        act,
        lambda: service.get_alert(db=act.db, principal=act.principal, alert_id=alert_id),
        to=lambda _: f"/alerts/{alert_id}#deliveries",
        refused=[(NotFound, _refuse(404, "no such alert"))],
        deliver=lambda _: flows.retry_now(
            get_database(act.request),
            settings=act.request.app.state.settings,
            delivery_id=delivery_id,
            alert_id=alert_id,
        ),
    )
