"""Crisis pages for the public: the citizen's check-in and the walk-in form (/c/...: a few
kilobytes, no script), web push subscription, and the Telegram and SMS webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from elshi import crypto
from elshi.crisis import service
from elshi.crisis.checkins import PublicCrisis, public_crisis
from elshi.crisis.models import WalkIn
from elshi.crisis.writer import CheckinWriter
from elshi.db import Database
from elshi.errors import Invalid, NotFound
from elshi.settings import Settings
from elshi.web import i18n
from elshi.web.bounds import Id
from elshi.web.i18n import N_
from elshi.web.pages import FORM_EXPIRED
from elshi.web.templating import (
    csrf_valid,
    environment,
    request_language,
    settings_of,
    translate,
)

public = APIRouter(include_in_schema=False)

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


def _message(
    request: Request, text: str, status: int, *, phone: str = "", **params: Any
) -> HTMLResponse:
    message = translate(request, text)
    return _page(
        request,
        "message.html",
        status,
        message=message % params if params else message,
        phone=phone,
    )


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


def _answering(request: Request, token: str) -> tuple[int, int] | Response:
    """The (crisis, person) of a signed link someone answers through, or the page refusing the
    answer: too many from this address, or a link that is not valid."""
    settings: Settings = request.app.state.settings
    if not _limiter(request).allow(_address(request), settings.crisis_checkin_per_minute):
        return _too_many(request)
    ids = _token(request, token)
    if ids is None:
        return _message(request, BAD_LINK, 404)
    return ids


async def _form(request: Request) -> dict[str, str] | None:
    body = await request.body()
    if len(body) > MAX_BODY:
        return None
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _checkin_context(request: Request, crisis: PublicCrisis | None, token: str) -> dict[str, Any]:
    message = crisis.message(request_language(request)) if crisis else {}
    return {
        "token": token,
        "title": message.get("subject") or (crisis.mission_name if crisis else ""),
        "text": message.get("text", ""),
        "phone": crisis.emergency_phone if crisis else "",
        "nonce": secrets.token_urlsafe(12),
        "errors": {},
        "values": {},
    }


def _load_crisis(
    request: Request, crisis_id: int, recipient_id: int | None = None
) -> PublicCrisis | None:
    with _db(request).session() as s:
        return public_crisis(db=s, crisis_id=crisis_id, recipient_id=recipient_id)


def _speak_their_language(request: Request, crisis: PublicCrisis | None) -> None:
    """Answer in the person's own language unless they chose one (?lang= or the cookie)."""
    chosen = request.query_params.get("lang"), request.cookies.get(i18n.COOKIE)
    if crisis and crisis.lang in i18n.LANGUAGES and not any(c in i18n.LANGUAGES for c in chosen):
        request.state.lang = crisis.lang


@public.get("/c/{token}")
async def checkin_page(request: Request, token: str) -> Response:
    """The check-in page: three big buttons, a note and an optional location."""
    ids = _token(request, token)
    if ids is None:
        return _message(request, BAD_LINK, 404)
    crisis = await run_in_threadpool(_load_crisis, request, ids[0], ids[1])
    if crisis is None:
        return _message(request, BAD_LINK, 404)
    _speak_their_language(request, crisis)
    if crisis.status != "open":
        return _message(request, CLOSED, 410, phone=crisis.emergency_phone)
    return _page(request, "checkin.html", **_checkin_context(request, crisis, token))


def _invalid_page(
    request: Request, token: str, exc: Invalid, values: dict[str, str], template: str
) -> HTMLResponse:
    errors = {p.where: translate(request, p.message) % p.params for p in exc.problems}
    ctx = _checkin_context(request, None, token) | {"errors": errors, "values": values}
    return _page(request, template, 422, **ctx)


@public.post("/c/{token}")
async def checkin(request: Request, token: str) -> Response:
    """Record an answer: the signed link is checked without a database read, then one INSERT
    (committed in a group with other answers) before the page says thank you."""
    ids = _answering(request, token)
    if isinstance(ids, Response):
        return ids
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
    ids = _answering(request, token)
    if isinstance(ids, Response):
        return ids
    raw = await _form(request) or {}
    try:
        data = service.parse_checkin(raw)
        name = service.clean_text("relative", raw.get("relative", ""), max_len=200, required=True)
    except Invalid as exc:
        return _invalid_page(request, token, exc, raw, "checkin.html")

    def check_and_store() -> int | None:
        with _db(request).session(write=True, urgent=True) as s:
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
        return _message(request, CLOSED, 410, phone=crisis.emergency_phone if crisis else "")
    message = crisis.message(request_language(request))
    return _page(
        request,
        "walkin.html",
        crisis_id=crisis_id,
        title=message.get("subject") or crisis.title,
        text=message.get("text", ""),
        phone=crisis.emergency_phone,
        errors={},
        values={},
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
            title=(crisis.message(request_language(request)).get("subject") or crisis.title)
            if crisis
            else "",
            text="",
            phone=crisis.emergency_phone if crisis else "",
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
            handled = telegram.handle_update(s, settings, update)
            telegram.reply(s, settings, handled)
            return handled

    handled = await run_in_threadpool(apply)
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
