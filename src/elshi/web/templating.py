"""Server-rendered pages: one Jinja2 environment per language, cookies and CSRF tokens."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from babel.dates import format_datetime
from babel.numbers import format_decimal
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, FileSystemLoader, select_autoescape

from elshi import crypto
from elshi.accounts.service import LoginPolicy
from elshi.accounts.signin import BAD_CODE, BAD_LOGIN, BLOCKED
from elshi.settings import Settings
from elshi.watch.models import ACTOR_NAMES
from elshi.web import i18n, wording

TEMPLATES = Path(__file__).parent / "templates"
CSRF_COOKIE = "elshi_csrf"
CSRF_FIELD = "csrf_token"


def settings_of(request: Request) -> Settings:
    """Return the app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def login_policy_of(request: Request) -> LoginPolicy:
    """Return the sign-in limits staff and citizen sign-in share."""
    policy: LoginPolicy = request.app.state.login_policy
    return policy


def request_language(request: Request) -> str:
    """Return the interface language for this request (and remember it on the request)."""
    lang: str | None = getattr(request.state, "lang", None)
    if lang is None:
        lang = i18n.pick_language(
            query=request.query_params.get("lang"),
            cookie=request.cookies.get(i18n.COOKIE),
            accept=request.headers.get("accept-language"),
            default=settings_of(request).default_language,
        )
        request.state.lang = lang
    return lang


def set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int | None = None
) -> None:
    """Set an HttpOnly, SameSite=Lax cookie, Secure when the request came over https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


# ---------------------------------------------------------------------------- CSRF


def _csrf_serializer(request: Request) -> URLSafeTimedSerializer:
    return crypto.signer(settings_of(request), crypto.CSRF, salt="elshi.csrf")


def _csrf_seed(request: Request) -> str:
    seed: str | None = getattr(request.state, "csrf_seed", None)
    if seed is None:
        seed = request.cookies.get(CSRF_COOKIE) or ""
        if len(seed) < 32:
            seed = secrets.token_urlsafe(32)
            request.state.csrf_new = True
        request.state.csrf_seed = seed
    return seed


def csrf_token(request: Request) -> str:
    """Return a form token: the signed value of this browser's CSRF cookie."""
    return str(_csrf_serializer(request).dumps(_csrf_seed(request)))


def csrf_valid(request: Request, token: str | None) -> bool:
    """Check a submitted form token against the CSRF cookie (signed double-submit)."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not token or not cookie:
        return False
    max_age = settings_of(request).session_max_age_minutes * 60
    try:
        value = _csrf_serializer(request).loads(token, max_age=max_age)
    except BadSignature:
        return False
    return isinstance(value, str) and hmac.compare_digest(value, cookie)


def finish(request: Request, response: Response) -> Response:
    """Attach the cookies this request created (CSRF seed, chosen language)."""
    if getattr(request.state, "csrf_new", False):
        set_cookie(request, response, CSRF_COOKIE, request.state.csrf_seed)
    chosen = request.query_params.get("lang")
    if chosen in i18n.LANGUAGES and chosen != request.cookies.get(i18n.COOKIE):
        set_cookie(request, response, i18n.COOKIE, chosen, max_age=365 * 24 * 3600)
    return response


def redirect_with_session(
    request: Request, target: str, *, cookie: str, value: str, lifetime: timedelta
) -> Response:
    """Redirect after sign-in: set the signed session cookie and drop the old CSRF seed.

    A new session gets a new CSRF seed on its next page.
    """
    response = RedirectResponse(target, status_code=303)
    set_cookie(request, response, cookie, value, max_age=int(lifetime.total_seconds()))
    response.delete_cookie(CSRF_COOKIE, path="/")
    finish(request, response)
    return response


def session_started(
    request: Request,
    result: Any,
    target: str,
    *,
    code_page: str,
    lifetime: timedelta,
    start: Callable[[Request, str, str, timedelta], Response],
) -> Response | None:
    """Answer a sign-in step that started a session: `start` it and go on to `target`, or, for
    one waiting for the authenticator code, to `code_page`; None when no session started."""
    if result.status == "ok" and result.session_key:
        return start(request, target, result.session_key, lifetime)
    if result.status == "code" and result.session_key:
        return start(
            request,
            code_page + "?" + urlencode({"next": target}),
            result.session_key,
            login_policy_of(request).mfa_timeout,
        )
    return None


def client_ip(request: Request) -> str:
    """Return the address the request came from ("unknown" when the server cannot tell)."""
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True)
class SessionCookie:
    """How one kind of account (staff, citizens) keeps its web session: a signed cookie, the
    setting that says how long it lasts, and the page of the authenticator-code step."""

    name: str
    purpose: str
    salt: str
    minutes_setting: str
    code_page: str
    #: Whether the sign-in steps record the browser (its User-Agent).
    browser: bool = False

    def signer(self, settings: Settings) -> URLSafeTimedSerializer:
        """Return the signer of this cookie (its purpose key)."""
        return crypto.signer(settings, self.purpose, salt=self.salt)

    def lifetime(self, request: Request) -> timedelta:
        """Return how long a full session lasts."""
        return timedelta(minutes=getattr(settings_of(request), self.minutes_setting))

    def key(self, request: Request) -> str | None:
        """Return the session key in the cookie, or None if absent, forged or too old."""
        cookie = request.cookies.get(self.name)
        if not cookie:
            return None
        max_age = int(self.lifetime(request).total_seconds())
        try:
            key = self.signer(settings_of(request)).loads(cookie, max_age=max_age)
        except BadSignature:
            return None
        return key if isinstance(key, str) else None

    def start(self, request: Request, target: str, key: str, lifetime: timedelta) -> Response:
        """Set the cookie for the session `key` and go on to `target`."""
        value = str(self.signer(settings_of(request)).dumps(key))
        return redirect_with_session(
            request, target, cookie=self.name, value=value, lifetime=lifetime
        )

    def attempt(self, request: Request) -> dict[str, Any]:
        """What the sign-in steps need of the request: address, browser, rules, session length."""
        facts: dict[str, Any] = {
            "ip": client_ip(request),
            "policy": login_policy_of(request),
            "lifetime": self.lifetime(request),
        }
        if self.browser:
            facts["user_agent"] = request.headers.get("user-agent")
        return facts

    def started(self, request: Request, target: str, result: Any) -> Response | None:
        """Answer a sign-in step that started a session (see `session_started`)."""
        return session_started(
            request,
            result,
            target,
            code_page=self.code_page,
            lifetime=self.lifetime(request),
            start=self.start,
        )

    def password_answer(
        self, request: Request, target: str, result: Any, again: Callable[[str, int], Response]
    ) -> Response:
        """Answer the password step: the session (or the code step) when one started, else
        `again(message, status)`, the form again: blocked (429) or no such e-mail and password."""
        if started := self.started(request, target, result):
            return started
        if result.status == "blocked":
            return again(BLOCKED, 429)
        return again(BAD_LOGIN, 401)

    def code_answer(
        self,
        request: Request,
        target: str,
        result: Any,
        again: Callable[[str, int], Response],
        otherwise: Callable[[Any], Response],
    ) -> Response:
        """Answer the code step: the session when it started, `again(message, status)` (the
        code form) when the code was wrong but the sign-in still waits, else `otherwise`."""
        if started := self.started(request, target, result):
            return started
        if result.status == "failed" and result.session_key:
            return again(BAD_CODE, 401)
        return otherwise(result)


# ---------------------------------------------------------------------------- rendering


@cache
def environment(lang: str) -> Environment:
    """Return the Jinja2 environment with this language's translations installed."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.filters["number"] = lambda n: format_decimal(n or 0, locale=lang)
    env.filters["when"] = lambda dt: _when(dt, lang)
    env.filters["local"] = lambda dt, zone: _local(dt, zone, lang, "yyyy-MM-dd HH:mm")
    env.filters["clock"] = lambda dt, zone: _local(dt, zone, lang, "HH:mm")
    env.globals["language_name"] = lambda code: i18n.language_name(code, lang)
    env.globals["actor_name"] = lambda code: i18n.gettext(lang, ACTOR_NAMES.get(code) or code)
    env.globals["term"] = lambda group, code: wording.term(
        lambda m: i18n.gettext(lang, m), group, code
    )
    env.globals["platform_name"] = lambda code: wording.term(
        lambda m: i18n.gettext(lang, m), "platform", code
    )
    return env


def _when(value: datetime | None, lang: str) -> str:
    if value is None:
        return "—"
    return format_datetime(value, "yyyy-MM-dd HH:mm", locale=lang) + " UTC"


def _local(value: datetime | None, zone: tzinfo, lang: str, pattern: str) -> str:
    """A moment in a mission's local time; the zone is named unless it is the time only."""
    if value is None:
        return "—"
    text = format_datetime(value.astimezone(zone), pattern, locale=lang)
    return text if pattern == "HH:mm" else f"{text} ({getattr(zone, 'key', zone)})"


def url_with(request: Request, **params: Any) -> str:
    """Return this page's path and query with some parameters replaced (None removes one)."""
    query = dict(request.query_params)
    for key, value in params.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = str(value)
    return request.url.path + ("?" + urlencode(query) if query else "")


def _open_alerts(request: Request) -> int:
    """Return the signed-in user's count of open alerts (the in-app notice), 0 for none."""
    principal = getattr(request.state, "principal", None)
    counter = getattr(request.app.state, "open_alerts", None)
    if principal is None or counter is None:
        return 0
    return int(counter(request.app.state.db, principal))


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HTMLResponse:
    """Render a page in the request's language with the CSRF token and language links."""
    lang = request_language(request)
    page = (
        environment(lang)
        .get_template(template)
        .render(
            request=request,
            lang=lang,
            languages=[(code, i18n.LANGUAGE_NAMES[code]) for code in i18n.LANGUAGES],
            lang_url=lambda code: url_with(request, lang=code),
            url_with=lambda **kw: url_with(request, **kw),
            csrf_field=CSRF_FIELD,
            csrf_token=csrf_token(request),
            principal=getattr(request.state, "principal", None),
            open_alerts=_open_alerts(request),
            **(context or {}),
        )
    )
    response = HTMLResponse(page, status_code=status)
    finish(request, response)
    return response


def translate(request: Request, message: str) -> str:
    """Translate a message into the request's language."""
    return i18n.gettext(request_language(request), message)
