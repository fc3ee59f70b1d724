"""Crisis pages: the citizen's check-in (/c/...: a few kilobytes, no script) and the officers'
broadcast, approval, welfare dashboard, worklists and evacuation export (/crisis/...)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import select

from elshi import crypto
from elshi.crisis import service
from elshi.crisis.models import CHANNELS, Broadcast, Crisis, Recipient, WalkIn
from elshi.crisis.writer import CheckinWriter
from elshi.db import Database
from elshi.errors import Invalid, NotFound
from elshi.missions.models import Mission
from elshi.settings import Settings
from elshi.web.bounds import Id
from elshi.web.csv_export import to_csv
from elshi.web.deps import DbSession, StaffUser
from elshi.web.i18n import N_
from elshi.web.templating import (
    csrf_valid,
    environment,
    render,
    request_language,
    settings_of,
    translate,
)

public = APIRouter(include_in_schema=False)
router = APIRouter(prefix="/crisis", include_in_schema=False)

BAD_LINK = N_(
    "This check-in link is not valid. Use the link from your message exactly as it came, "
    "or call the consulate."
)
CLOSED = N_(
    "This crisis is over: answers are no longer taken. Call the consulate if you need help."
)
TOO_MANY = N_("Too many answers from your address. Wait a minute and try again.")
THANKS = {
    "safe": N_("Thank you. You are marked safe."),
    "help": N_("Thank you. You are marked as needing help: a duty officer will contact you."),
    "left": N_("Thank you. You are marked as having left the area."),
}
ALREADY = N_("This answer was already recorded.")
RELATIVE_FAILED = N_(
    "The last 4 digits of the phone number do not match the person's registration."
)
FORM_EXPIRED = N_("The form has expired. Please try again.")
NOT_ALLOWED = N_("Your role does not allow this.")
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
MAX_BODY = 4096


# ---------------------------------------------------------------------------- rate limit


class RateLimit:
    """Answers per address per minute, in this process (a fixed one-minute window)."""

    def __init__(self) -> None:
        self.window = 0
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def allow(self, address: str, per_minute: int) -> bool:
        """Count one answer; False when the address is over the limit this minute."""
        if per_minute <= 0:
            return True
        minute = int(time.time() // 60)
        with self.lock:
            if minute != self.window:
                self.window, self.counts = minute, {}
            n = self.counts.get(address, 0) + 1
            self.counts[address] = n
        return n <= per_minute


def _limiter(request: Request) -> RateLimit:
    limiter: RateLimit | None = getattr(request.app.state, "crisis_limit", None)
    if limiter is None:
        limiter = request.app.state.crisis_limit = RateLimit()
    return limiter


def _writer(request: Request) -> CheckinWriter:
    writer: CheckinWriter | None = getattr(request.app.state, "crisis_writer", None)
    if writer is None:
        writer = request.app.state.crisis_writer = CheckinWriter(request.app.state.db)
    return writer


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


# ---------------------------------------------------------------------------- citizen pages


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A light citizen page: no cookies, no script, no CSRF (the link itself is the key)."""
    lang = request_language(request)
    html = environment(lang).get_template("crisis/" + template).render(lang=lang, **context)
    return HTMLResponse(html, status_code=status)


def _message(request: Request, text: str, status: int, **params: Any) -> HTMLResponse:
    message = translate(request, text)
    return _page(request, "message.html", status, message=message % params if params else message)


def _too_many(request: Request) -> HTMLResponse:
    response = _message(request, TOO_MANY, 429)
    response.headers["Retry-After"] = "60"
    return response


def _address(request: Request) -> str:
    return request.client.host if request.client else "?"


def _token(request: Request, token: str) -> tuple[int, int] | None:
    try:
        keys = crypto.verify_keys(settings_of(request), crypto.CHECKIN)
        return service.read_token(keys=keys, token=token)
    except service.BadToken:
        return None


async def _form(request: Request) -> dict[str, str] | None:
    body = await request.body()
    if len(body) > MAX_BODY:
        return None
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _checkin_context(crisis: Crisis | None, token: str) -> dict[str, Any]:
    return {
        "token": token,
        "title": crisis.title if crisis else "",
        "nonce": secrets.token_urlsafe(12),
        "errors": {},
        "values": {},
    }


def _load_crisis(request: Request, crisis_id: int) -> Crisis | None:
    with _db(request).session() as s:
        return s.get(Crisis, crisis_id)


@public.get("/c/{token}")
async def checkin_page(request: Request, token: str) -> Response:
    """The check-in page: three big buttons, a note and an optional location."""
    ids = _token(request, token)
    if ids is None:
        return _message(request, BAD_LINK, 404)
    crisis = await run_in_threadpool(_load_crisis, request, ids[0])
    if crisis is None:
        return _message(request, BAD_LINK, 404)
    if crisis.status != "open":
        return _message(request, CLOSED, 410)
    return _page(request, "checkin.html", **_checkin_context(crisis, token))


def _invalid_page(
    request: Request, token: str, exc: Invalid, values: dict[str, str], template: str
) -> HTMLResponse:
    errors = {p.where: translate(request, p.message) % p.params for p in exc.problems}
    ctx = _checkin_context(None, token) | {"errors": errors, "values": values}
    return _page(request, template, 422, **ctx)


@public.post("/c/{token}")
async def checkin(request: Request, token: str) -> Response:
    """Record an answer: the signed link is checked without a database read, then one INSERT
    (committed in a group with other answers) before the page says thank you."""
    settings: Settings = request.app.state.settings
    if not _limiter(request).allow(_address(request), settings.crisis_checkin_per_minute):
        return _too_many(request)
    ids = _token(request, token)
    if ids is None:
        return _message(request, BAD_LINK, 404)
    raw = await _form(request)
    if raw is None:
        return _message(request, FORM_EXPIRED, 413)
    try:
        data = service.parse_checkin(raw)
    except Invalid as exc:
        return _invalid_page(request, token, exc, raw, "checkin.html")
    values = service.checkin_values(crisis_id=ids[0], recipient_id=ids[1], **data)
    stored = await _writer(request).write(values)
    if not stored:
        state = await run_in_threadpool(_state, request, ids[0])
        if state != "open":
            return _message(request, CLOSED if state else BAD_LINK, 410 if state else 404)
        return _message(request, ALREADY, 200)
    return _message(request, THANKS[data["answer"]], 200)


def _state(request: Request, crisis_id: int) -> str | None:
    with _db(request).session() as s:
        return service.crisis_state(db=s, crisis_id=crisis_id)


@public.post("/c/{token}/relative")
async def relative_checkin(request: Request, token: str) -> Response:
    """A relative answers for the person after proving they know the registered phone."""
    settings: Settings = request.app.state.settings
    if not _limiter(request).allow(_address(request), settings.crisis_checkin_per_minute):
        return _too_many(request)
    ids = _token(request, token)
    if ids is None:
        return _message(request, BAD_LINK, 404)
    raw = await _form(request) or {}
    try:
        data = service.parse_checkin(raw)
        name = service.clean_text("relative", raw.get("relative", ""), max_len=200, required=True)
    except Invalid as exc:
        return _invalid_page(request, token, exc, raw, "checkin.html")

    def check_and_store() -> int | None:
        with _db(request).session() as s:
            if not service.verify_relative(
                db=s, recipient_id=ids[1], phone_tail=raw.get("phone_tail", "")
            ):
                return None
            return service.record_checkin(
                s, crisis_id=ids[0], recipient_id=ids[1], via="relative", relative=name, **data
            )

    stored = await run_in_threadpool(check_and_store)
    if stored is None:
        return _message(request, RELATIVE_FAILED, 403)
    if not stored:
        state = await run_in_threadpool(_state, request, ids[0])
        return _message(
            request, ALREADY if state == "open" else CLOSED, 200 if state == "open" else 410
        )
    return _message(request, THANKS[data["answer"]], 200)


@public.get("/c/register/{crisis_id}")
async def walkin_page(request: Request, crisis_id: Id) -> Response:
    """A short form for anyone abroad in the area without an account."""
    crisis = await run_in_threadpool(_load_crisis, request, crisis_id)
    if crisis is None or crisis.status != "open":
        return _message(request, CLOSED, 410)
    return _page(
        request, "walkin.html", crisis_id=crisis_id, title=crisis.title, errors={}, values={}
    )


@public.post("/c/register/{crisis_id}")
async def walkin(request: Request, crisis_id: Id) -> Response:
    """Store a walk-in registration (merged with an account later by an officer)."""
    settings: Settings = request.app.state.settings
    if not _limiter(request).allow(_address(request), settings.crisis_checkin_per_minute):
        return _too_many(request)
    raw = await _form(request) or {}

    def store() -> WalkIn:
        with _db(request).session() as s:
            return service.add_walkin(db=s, crisis_id=crisis_id, raw=raw)

    try:
        await run_in_threadpool(store)
    except NotFound:
        return _message(request, CLOSED, 410)
    except Invalid as exc:
        errors = {p.where: translate(request, p.message) % p.params for p in exc.problems}
        crisis = await run_in_threadpool(_load_crisis, request, crisis_id)
        return _page(
            request,
            "walkin.html",
            422,
            crisis_id=crisis_id,
            title=crisis.title if crisis else "",
            errors=errors,
            values=raw,
        )
    return _message(request, THANKS.get(raw.get("answer", "safe"), THANKS["safe"]), 200)


@public.get("/c/push/key")
def push_key(request: Request) -> JSONResponse:
    """The VAPID public key a browser subscribes to web push with."""
    from elshi.notify.push import public_key

    return JSONResponse({"publicKey": public_key(settings_of(request))})


@public.post("/c/push/subscribe")
async def push_subscribe(request: Request) -> JSONResponse:
    """Store the signed-in citizen's push subscription (JSON; X-CSRF-Token header)."""
    from elshi.consulate.views import current_citizen

    if not csrf_valid(request, request.headers.get("x-csrf-token")):
        return JSONResponse({"error": "send the page's X-CSRF-Token header"}, status_code=403)
    try:
        raw = await request.json()
    except ValueError:
        return JSONResponse({"error": "the body must be JSON"}, status_code=400)
    if not isinstance(raw, dict):
        return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)

    def store() -> int | None:
        with _db(request).session() as s:
            citizen = current_citizen(request, s)
            if citizen is None:
                return None
            return service.save_push_subscription(
                db=s, settings=settings_of(request), citizen_id=citizen.id, raw=raw
            )

    try:
        row = await run_in_threadpool(store)
    except Invalid as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    if row is None:
        return JSONResponse({"error": "sign in first"}, status_code=401)
    return JSONResponse({"id": row}, status_code=201)


@public.post("/c/telegram/webhook")
async def telegram_webhook(request: Request) -> JSONResponse:
    """Bot API updates: /start <token> links a citizen's chat for crisis alerts, /stop unlinks."""
    from elshi.crisis import telegram

    settings = settings_of(request)
    sent = request.headers.get("x-telegram-bot-api-secret-token", "")
    if not settings.telegram_webhook_secret or not hmac.compare_digest(
        sent.encode(), settings.telegram_webhook_secret.encode()
    ):
        return JSONResponse({"error": "wrong or missing secret token"}, status_code=403)
    try:
        update = await request.json()
    except ValueError:
        return JSONResponse({"error": "the body must be a JSON update"}, status_code=400)

    def apply() -> telegram.Handled:
        with _db(request).session() as s:
            return telegram.handle_update(s, settings, update)

    handled = await run_in_threadpool(apply)
    await run_in_threadpool(telegram.reply, settings, handled)
    return JSONResponse({"ok": True, "outcome": handled.outcome})


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """The X-Twilio-Signature of a webhook: HMAC-SHA1 of the URL and the sorted parameters."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


@public.post("/crisis/sms/inbound")
async def sms_inbound(request: Request) -> Response:
    """An SMS reply (SAFE, HELP note, LEFT) from the gateway's webhook, signed with its token."""
    settings: Settings = request.app.state.settings
    raw = await _form(request) or {}
    url = settings.base_url + request.url.path
    given = request.headers.get("x-twilio-signature", "")
    if not settings.crisis_sms_token or not hmac.compare_digest(
        twilio_signature(settings.crisis_sms_token, url, raw), given
    ):
        return Response("signature does not match", status_code=403, media_type="text/plain")

    def store() -> str | None:
        with _db(request).session() as s:
            return service.sms_reply(
                db=s,
                phone=raw.get("From", ""),
                body=raw.get("Body", ""),
                nonce=(raw.get("MessageSid") or secrets.token_hex(8))[:32],
            )

    answer = await run_in_threadpool(store)
    text = "OK" if answer else "Reply SAFE, HELP or LEFT"
    xml = f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{text}</Message></Response>'
    return Response(xml, media_type="application/xml")


# ---------------------------------------------------------------------------- officer pages


def _officer(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("errors", {})
    context.setdefault("notice", request.query_params.get("notice"))
    context["notices"] = NOTICES
    context["active"] = "crisis"
    return render(request, "crisis/" + template, context, status=status)


def _errors(request: Request, exc: Invalid) -> dict[str, str]:
    return {p.where: translate(request, p.message) % p.params for p in exc.problems}


def _missions(db: Any, principal: Any) -> list[Mission]:
    allowed = principal.missions_where("consulate.read")
    rows = db.scalars(select(Mission).order_by(Mission.name)).all()
    return [
        m
        for m in rows
        if (allowed is None or m.id in allowed) and principal.can("consulate.act", m.id)
    ]


@router.get("")
def crises(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Crises of the officer's missions and the form for a new one."""
    return _officer(
        request,
        "list.html",
        crises=service.list_crises(db=db, actor=principal),
        missions=_missions(db, principal),
        values={"audience": "present"},
        preview=None,
        describe=service.describe_area,
    )


@router.post("")
async def create(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Preview (how many people, which channels, SMS segments) or create a crisis broadcast."""
    form = await request.form(max_files=0, max_fields=40)
    raw = {k: str(v) for k, v in form.items()}
    settings = settings_of(request)
    ctx: dict[str, Any] = {
        "crises": service.list_crises(db=db, actor=principal),
        "missions": _missions(db, principal),
        "values": raw,
        "preview": None,
        "describe": service.describe_area,
    }
    if not csrf_valid(request, raw.get("csrf_token")):
        return _officer(
            request, "list.html", 400, errors={"form": translate(request, FORM_EXPIRED)}, **ctx
        )
    try:
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
            return _officer(request, "list.html", **ctx)
        b = service.create_crisis(
            db=db,
            actor=principal,
            mission_id=mission_id,
            title=raw.get("title", ""),
            area=area,
            audience=raw.get("audience", "present"),
            messages=messages,
        )
    except Invalid as exc:
        return _officer(request, "list.html", 422, errors=_errors(request, exc), **ctx)
    except ValueError:
        return _officer(request, "list.html", 422, errors={"mission_id": "?"}, **ctx)
    db.commit()
    return RedirectResponse(f"/crisis/{b.crisis_id}?notice=created", status_code=303)


def map_svg(
    area: dict[str, Any], help_points: list[tuple[float, float]], others: list[tuple[float, float]]
) -> Markup:
    """Draw the area and the need-help reports as SVG (equirectangular; no tiles)."""
    pts: list[tuple[float, float]] = list(help_points) + list(others)
    shape: list[tuple[float, float]] = []
    if area.get("polygon"):
        shape = [(p[0], p[1]) for p in area["polygon"]]
    elif area.get("circle"):
        c = area["circle"]
        dlat = c["km"] / 111.0
        dlon = c["km"] / max(1e-6, 111.0 * math.cos(math.radians(c["lat"])))
        shape = [
            (
                c["lat"] + dlat * math.sin(a / 24 * 2 * math.pi),
                c["lon"] + dlon * math.cos(a / 24 * 2 * math.pi),
            )
            for a in range(24)
        ]
    every = pts + shape
    width, height, pad = 600, 360, 20
    if not every:
        return Markup(
            f'<svg class="crisis-map" viewBox="0 0 {width} {height}" role="img" aria-label="map">'
            f'<rect width="{width}" height="{height}" fill="#f4f6f8"/></svg>'
        )
    lats = [p[0] for p in every]
    lons = [p[1] for p in every]
    mid = math.cos(math.radians((min(lats) + max(lats)) / 2))
    span_x = max(1e-6, (max(lons) - min(lons)) * mid)
    span_y = max(1e-6, max(lats) - min(lats))
    scale = min((width - 2 * pad) / span_x, (height - 2 * pad) / span_y)

    def xy(lat: float, lon: float) -> tuple[float, float]:
        return pad + (lon - min(lons)) * mid * scale, height - pad - (lat - min(lats)) * scale

    parts = [
        f'<svg class="crisis-map" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="need-help reports"><rect width="{width}" height="{height}" fill="#f4f6f8"/>'
    ]
    if shape:
        d = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(*p) for p in shape))
        parts.append(f'<polygon points="{d}" fill="#dde8f3" stroke="#4a6f95"/>')
    for lat, lon in others[:2000]:
        x, y = xy(lat, lon)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.5" fill="#9aa5b1"/>')
    for lat, lon in help_points:
        x, y = xy(lat, lon)
        parts.append(
            f'<circle class="help" cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#c62828">'
            f"<title>{lat:.4f}, {lon:.4f}</title></circle>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


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
    helpers = service.help_points(db=db, crisis_id=crisis.id)
    broadcasts = db.scalars(
        select(Broadcast).where(Broadcast.crisis_id == crisis.id).order_by(Broadcast.id)
    ).all()
    walkins = db.scalars(
        select(WalkIn).where(WalkIn.crisis_id == crisis.id).order_by(WalkIn.id).limit(200)
    ).all()
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
    return _officer(
        request,
        "dashboard.html",
        crisis=crisis,
        w=w,
        expected=expected,
        area=service.describe_area(crisis.area),
        map=map_svg(crisis.area, helpers, []),
        broadcasts=broadcasts,
        segments=segs,
        walkins=walkins,
        can_act=principal.can("consulate.act", crisis.mission_id),
        me=principal.user_id,
    )


def _enqueue(request: Request, broadcast_id: int) -> None:
    if request.app.state.runtime is None:
        return
    from elshi import jobs

    for channel in CHANNELS:
        jobs.enqueue("crisis_deliver", broadcast_id, channel)


@router.post("/broadcast/{broadcast_id}/{action}")
async def broadcast_action(
    request: Request, db: DbSession, principal: StaffUser, broadcast_id: Id, action: str
) -> Response:
    """Approve (a second officer), send, or cancel a broadcast."""
    form = await request.form(max_files=0, max_fields=5)
    b = db.get(Broadcast, broadcast_id)
    if b is None or action not in ("approve", "send", "cancel"):
        return render(
            request, "error.html", {"message": translate(request, NOT_ALLOWED)}, status=404
        )
    target = f"/crisis/{b.crisis_id}"
    if not csrf_valid(request, str(form.get("csrf_token") or "")):
        return RedirectResponse(target, status_code=303)
    try:
        if action == "approve":
            service.approve(db=db, actor=principal, broadcast_id=broadcast_id)
            notice = "approved"
        elif action == "send":
            service.send(db=db, actor=principal, broadcast_id=broadcast_id)
            db.commit()
            _enqueue(request, broadcast_id)
            notice = "sent"
        else:
            service.cancel(db=db, actor=principal, broadcast_id=broadcast_id)
            notice = "cancelled"
    except (Invalid, NotFound) as exc:
        db.rollback()
        message = (
            "; ".join(_errors(request, exc).values())
            if isinstance(exc, Invalid)
            else translate(request, NOT_ALLOWED)
        )
        # Another mission's crisis is "not found", as its page is; a bad state is a conflict.
        status = 409 if isinstance(exc, Invalid) else 404
        return render(request, "error.html", {"message": message}, status=status)
    db.commit()  # before the browser follows the redirect
    return RedirectResponse(f"{target}?notice={notice}", status_code=303)


@router.post("/{crisis_id}/{action}")
async def crisis_action(
    request: Request, db: DbSession, principal: StaffUser, crisis_id: Id, action: str
) -> Response:
    """Kill switch, close, follow-up broadcast, merge walk-ins, worklist assignment."""
    form = await request.form(max_files=0, max_fields=20)
    raw = {k: str(v) for k, v in form.items()}
    target = f"/crisis/{crisis_id}"
    if not csrf_valid(request, raw.get("csrf_token")):
        return RedirectResponse(target, status_code=303)
    settings = settings_of(request)
    try:
        if action == "kill":
            service.kill(db=db, actor=principal, crisis_id=crisis_id)
            notice = "killed"
        elif action == "close":
            service.close(db=db, actor=principal, crisis_id=crisis_id)
            notice = "closed"
        elif action == "followup":
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
            notice = "created"
        elif action == "merge":
            service.merge_walkins(db=db, actor=principal, crisis_id=crisis_id)
            notice = "merged"
        elif action == "assign":
            service.assign(
                db=db,
                actor=principal,
                crisis_id=crisis_id,
                recipient_id=int(raw.get("recipient_id") or 0),
                note=raw.get("note"),
                to_me=raw.get("to_me") == "1",
            )
            kind = raw.get("kind", "help")
            db.commit()
            return RedirectResponse(f"{target}/people/{kind}?notice=saved", status_code=303)
        else:
            return render(
                request, "error.html", {"message": translate(request, NOT_ALLOWED)}, status=404
            )
    except (Invalid, NotFound) as exc:
        db.rollback()
        message = (
            "; ".join(_errors(request, exc).values())
            if isinstance(exc, Invalid)
            else translate(request, NOT_ALLOWED)
        )
        # Another mission's crisis is "not found", as its page is; a bad state is a conflict.
        status = 409 if isinstance(exc, Invalid) else 404
        return render(request, "error.html", {"message": message}, status=status)
    db.commit()  # before the browser follows the redirect
    return RedirectResponse(f"{target}?notice={notice}", status_code=303)


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
    rows = service.people(db=db, crisis_id=crisis.id, kind=kind, limit=500)
    detail = {"list": kind} | service.disclosure(rows, "page")
    service._audit(db, principal, "crisis.worklist", "crisis", crisis.id, detail)
    return _officer(
        request,
        "people.html",
        crisis=crisis,
        kind=kind,
        list_names=LIST_NAMES,
        rows=rows,
        can_act=principal.can("consulate.act", crisis.mission_id),
    )


EXPORT_COLUMNS = (
    "name",
    "email",
    "phone",
    "city",
    "answer",
    "presence",
    "note",
    "latitude",
    "longitude",
    "via",
    "officer_note",
)


def _presence(p: service.Person) -> str:
    if p.answer in ("safe", "help"):
        return "confirmed"
    return "estimated" if p.recipient.dates_cover else "registered"


def _export_rows(
    db: Any, crisis_id: int, people: list[service.Person] | None = None
) -> list[dict[str, Any]]:
    return [
        {
            "name": p.recipient.name,
            "email": p.recipient.email,
            "phone": p.recipient.phone,
            "city": p.recipient.city,
            "answer": p.answer or "",
            "presence": _presence(p),
            "note": p.note,
            "latitude": "" if p.latitude is None else f"{p.latitude:.5f}",
            "longitude": "" if p.longitude is None else f"{p.longitude:.5f}",
            "via": p.via,
            "officer_note": p.recipient.officer_note,
        }
        for p in (
            people
            if people is not None
            else service.people(db=db, crisis_id=crisis_id, kind="evacuation")
        )
    ]


@router.get("/{crisis_id}/evacuation.{fmt}")
def export(
    request: Request, db: DbSession, principal: StaffUser, crisis_id: Id, fmt: str
) -> Response:
    """The evacuation list (everyone not known to have left) as CSV or PDF; access is logged."""
    crisis = _crisis_or_404(request, db, principal, crisis_id, act=True)
    if isinstance(crisis, Response):
        return crisis
    people = service.people(db=db, crisis_id=crisis.id, kind="evacuation")
    rows = _export_rows(db, crisis.id, people)
    detail = {"format": fmt} | service.disclosure(people, "export")
    service._audit(db, principal, "crisis.export", "crisis", crisis.id, detail)
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


def evacuation_csv(rows: list[dict[str, Any]]) -> str:
    """Return the evacuation list as CSV (UTF-8 with a BOM so spreadsheets read Cyrillic)."""
    return to_csv(
        EXPORT_COLUMNS, ([row.get(k, "") for k in EXPORT_COLUMNS] for row in rows), bom=True
    )


def evacuation_html(crisis: Crisis, rows: list[dict[str, Any]], *, lang: str) -> str:
    """Return the printable evacuation list (also used by `elshi crisis export`)."""
    return (
        environment(lang)
        .get_template("crisis/evacuation.html")
        .render(lang=lang, crisis=crisis, rows=rows, area=service.describe_area(crisis.area))
    )


__all__ = ["Recipient", "public", "router"]
