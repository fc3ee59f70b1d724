"""Who may call each route: one table, checked when the app starts and by the tests.

Every route of the web app is declared here by (METHOD, path) with a Rule. `create_app` refuses
to start when a route is missing, so a new page or API endpoint cannot land without saying who
may call it; tests/security/test_security_routes.py calls every route as every role of another
mission and checks the answer against this table.

The rule itself is enforced in the service layer (accounts.service: `missions_where`, `can`,
`scoped`, `authorize`); this table says which permission a route needs and how it is scoped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from elshi.accounts.service import PERMISSIONS

Who = Literal["public", "citizen", "staff", "self"]
Scope = Literal["", "object", "list", "mission", "hq"]

#: What each scope means, for the reference page.
SCOPES: dict[str, str] = {
    "object": "acts on one object named in the path: allowed only where the permission is held "
    "in that object's mission (another mission's object is refused like a missing one)",
    "list": "lists data of the missions where the permission is held (`missions_where`)",
    "mission": "acts in a mission chosen in the form or the query: allowed only where the "
    "permission is held in that mission",
    "hq": "data of no mission (missions, ministry-wide settings): needs the permission at "
    "headquarters",
}

#: Who may call a route, for the reference page.
WHO: dict[str, str] = {
    "public": "anyone, signed in or not",
    "citizen": "a signed-in citizen account, on its own data only",
    "staff": "signed-in staff holding the permission (by session or API token)",
    "self": "any signed-in staff, on their own account only",
}


@dataclass(frozen=True)
class Rule:
    """Who may call one route, and for staff which permission in which scope."""

    who: Who
    permissions: tuple[str, ...] = ()
    scope: Scope = ""
    #: Why a public route is open, or a note on a staff route.
    why: str = ""
    #: A public route that shows or takes data of one mission by design (published news, an
    #: open crisis's walk-in form, a signed link): the matrix test does not look for that
    #: mission's data in its answers.
    shares: bool = False

    def __post_init__(self) -> None:
        unknown = [p for p in self.permissions if p not in PERMISSIONS]
        if unknown:
            raise ValueError(f"unknown permission {unknown}")
        if (self.who == "staff") != bool(self.permissions) or (self.who == "staff") != bool(
            self.scope
        ):
            raise ValueError("a staff rule names its permission and scope; other rules do not")

    @property
    def permission(self) -> str:
        """Return the permission(s) as text: 'a' or 'a or b'."""
        return " or ".join(self.permissions)


def public(why: str, *, shares: bool = False) -> Rule:
    """Anyone may call the route; `why` says why it is open."""
    return Rule("public", why=why, shares=shares)


def citizen(why: str = "") -> Rule:
    """A signed-in citizen, on their own data only."""
    return Rule("citizen", why=why)


def staff(permission: str | tuple[str, ...], scope: Scope, why: str = "") -> Rule:
    """Staff holding `permission` (any of several), scoped as `scope` says."""
    perms = (permission,) if isinstance(permission, str) else permission
    return Rule("staff", perms, scope, why)


def own_account(why: str = "") -> Rule:
    """Any signed-in staff member, on their own account only."""
    return Rule("self", why=why)


READ = "listen.read"
SIGN_IN = "signing in, out and the sign-in steps"
CONSULATE_PAGE = "a page or file of the e-consulate's front (no personal data)"
LINK = "opened by a secret link (the link is the key)"

POLICY: dict[tuple[str, str], Rule] = {
    # ---------------------------------------------------------------- operations, docs, files
    ("GET", "/health"): public("liveness and database check; no data"),
    ("GET", "/healthz"): public("liveness: the process answers; no data"),
    ("GET", "/readyz"): public("readiness: database, queue and disk are fine; no data"),
    ("GET", "/metrics"): public(
        "Prometheus metrics, counts only: answered only with the bearer token "
        "ELSHI_METRICS_TOKEN or, when none is set, from this machine not through a proxy"
    ),
    ("GET", "/api/openapi.json"): public("the API's description; no data"),
    ("GET", "/api/docs"): public("the API docs page; no data"),
    ("GET", "/static"): public("style sheets, scripts and icons of the package"),
    ("GET", "/static/swagger"): public("the API docs page's files"),
    # ---------------------------------------------------------------- staff sign-in, own account
    ("GET", "/login"): public(SIGN_IN),
    ("POST", "/login"): public(SIGN_IN),
    ("GET", "/login/code"): public(SIGN_IN),
    ("POST", "/login/code"): public(SIGN_IN),
    ("POST", "/logout"): public(SIGN_IN),
    ("GET", "/account"): own_account(),
    ("GET", "/account/totp"): own_account(),
    ("POST", "/account/totp"): own_account(),
    ("POST", "/account/password"): own_account("the current password is asked first"),
    ("POST", "/account/tokens"): own_account("a token for the user themself, shown once"),
    ("POST", "/account/tokens/{token_id}/revoke"): own_account("only the user's own tokens"),
    ("GET", "/api/me"): own_account(),
    # ---------------------------------------------------------------- listen
    ("GET", "/"): staff(READ, "list"),
    ("GET", "/posts"): staff(READ, "list"),
    ("GET", "/sources"): staff(READ, "list"),
    ("GET", "/api/posts"): staff(READ, "list"),
    ("GET", "/api/posts/{post_id}"): staff(READ, "object"),
    ("GET", "/api/posts/{post_id}/explain"): staff(READ, "object"),
    ("GET", "/api/sources"): staff(READ, "list"),
    ("GET", "/api/quarantine"): staff(READ, "list"),
    ("GET", "/api/narratives"): staff(READ, "list", "a narrative is seen through its posts"),
    ("GET", "/api/narratives/{narrative_id}"): staff(
        READ, "object", "a narrative is seen through its posts"
    ),
    # ---------------------------------------------------------------- workspace
    ("GET", "/narratives"): staff(READ, "list", "a narrative is seen through its posts"),
    ("GET", "/narratives/{narrative_id}"): staff(
        READ, "object", "a narrative is seen through its posts"
    ),
    ("GET", "/coordination"): staff(READ, "list", "a group is seen through its posts"),
    ("GET", "/coordination/groups/{group_id}"): staff(
        READ, "object", "a group is seen through its posts"
    ),
    ("GET", "/coordination/groups/{group_id}/evidence.zip"): staff(
        READ, "object", "a group is seen through its posts; the download is audited"
    ),
    ("GET", "/coordination/groups/{group_id}/evidence.pdf"): staff(
        READ, "object", "a group is seen through its posts; the download is audited"
    ),
    ("GET", "/actors"): staff(
        READ, "list", "lists are ministry-wide; accounts are seen through their posts"
    ),
    ("POST", "/actors/lists"): staff(
        "authors.manage", "hq", "a list types accounts every mission sees; an upload, no path"
    ),
    ("POST", "/actors/lists/{list_id}/delete"): staff(
        "authors.manage", "hq", "a list types accounts every mission sees"
    ),
    ("GET", "/actors/{actor_id}"): staff(
        READ, "object", "an actor is seen through its accounts' posts the caller may see"
    ),
    ("POST", "/actors/{actor_id}/accounts/{author_id}/remove"): staff(
        "authors.manage", "object", "an author is changed through the posts the caller may see"
    ),
    ("POST", "/authors/{author_id}/actor"): staff(
        "authors.manage", "object", "an author is changed through the posts the caller may see"
    ),
    ("GET", "/explore"): staff(READ, "list"),
    ("POST", "/explore/save"): staff(READ, "mission"),
    ("GET", "/s/{token}"): staff(READ, "object"),
    ("GET", "/posts/{post_id}"): staff(READ, "object"),
    ("GET", "/authors/{author_id}"): staff(
        READ, "object", "an author is seen through the posts the caller may see"
    ),
    ("POST", "/authors/{author_id}/actor-type"): staff(
        "authors.manage", "object", "an author is changed through the posts the caller may see"
    ),
    ("GET", "/watch"): staff(READ, "list"),
    ("GET", "/watch/{watch_id}"): staff(READ, "object"),
    ("GET", "/watch/{watch_id}/chart/{name}.{fmt}"): staff(READ, "object"),
    ("GET", "/watch-new"): staff("watch.manage", "list"),
    ("GET", "/watch/{watch_id}/edit"): staff("watch.manage", "object"),
    ("POST", "/watch-save"): staff("watch.manage", "mission", "and in the list's own mission"),
    ("POST", "/watch/{watch_id}/events"): staff("watch.manage", "object"),
    ("GET", "/digest"): staff(READ, "mission"),
    ("GET", "/digest.pdf"): staff(READ, "mission"),
    # ---------------------------------------------------------------- alerts
    ("GET", "/watch/{watch_id}/alerts"): staff(READ, "object"),
    ("POST", "/watch/{watch_id}/alerts"): staff("alerts.manage", "object"),
    ("POST", "/rules/{rule_id}/toggle"): staff("alerts.manage", "object"),
    ("GET", "/alerts"): staff(READ, "list"),
    ("GET", "/alerts/{alert_id}"): staff(READ, "object"),
    ("POST", "/alerts/{alert_id}/ack"): staff(READ, "object"),
    ("POST", "/api/alerts/{alert_id}/ack"): staff(READ, "object", "a write token or a session"),
    ("POST", "/alerts/{alert_id}/comment"): staff(READ, "object"),
    ("POST", "/alerts/{alert_id}/deliveries/{delivery_id}/retry"): staff(READ, "object"),
    # ---------------------------------------------------------------- speak
    ("GET", "/speak"): staff(READ, "list"),
    ("GET", "/speak/new"): staff("speak.draft", "list"),
    ("POST", "/speak/new"): staff("speak.draft", "mission"),
    ("GET", "/speak/{statement_id}"): staff(READ, "object"),
    ("POST", "/speak/{statement_id}/versions/{lang}"): staff("speak.draft", "object"),
    ("POST", "/speak/{statement_id}/versions/{lang}/images"): staff("speak.draft", "object"),
    ("POST", "/speak/{statement_id}/versions/{lang}/images/{key}/remove"): staff(
        "speak.draft", "object"
    ),
    ("GET", "/speak/media/{key}"): staff(READ, "object"),
    ("POST", "/speak/{statement_id}/translate"): staff("speak.draft", "object"),
    ("POST", "/speak/{statement_id}/versions/{lang}/reviewed"): staff("speak.draft", "object"),
    ("POST", "/speak/{statement_id}/submit"): staff("speak.draft", "object"),
    ("POST", "/speak/{statement_id}/decide"): staff(
        "speak.approve", "object", "never by whoever wrote or submitted it"
    ),
    ("POST", "/speak/{statement_id}/schedule"): staff("speak.draft", "object"),
    ("POST", "/speak/{statement_id}/topic"): staff("speak.draft", "object"),
    ("POST", "/speak/publications/{publication_id}/{action}"): staff("speak.draft", "object"),
    ("GET", "/speak-queue"): staff("speak.approve", "list"),
    ("GET", "/speak-calendar"): staff(READ, "list"),
    ("GET", "/speak/{statement_id}/reach"): staff(READ, "object"),
    ("GET", "/speak/{statement_id}/rebuttal"): staff(READ, "object"),
    ("GET", "/api/statements"): staff(READ, "list"),
    ("GET", "/api/statements/{statement_id}/publications"): staff(READ, "object"),
    ("GET", "/api/statements/{statement_id}/reach"): staff(READ, "object"),
    # ---------------------------------------------------------------- public news
    ("GET", "/news/{mission_slug}/{lang}"): public("a mission's published statements", shares=True),
    ("GET", "/news/{mission_slug}/{lang}/{item}"): public(
        "a published statement, or the feeds", shares=True
    ),
    ("POST", "/news/{mission_slug}/{lang}"): public(
        "newsletter sign-up, confirmed by e-mail", shares=True
    ),
    ("GET", "/news-media/{key}"): public("images of statements that have gone out", shares=True),
    ("GET", "/news-confirm/{token}"): public(LINK, shares=True),
    ("GET", "/news-unsubscribe/{token}"): public(LINK, shares=True),
    # ---------------------------------------------------------------- e-consulate: citizens
    ("GET", "/consulate"): public(CONSULATE_PAGE),
    ("GET", "/consulate/"): public(CONSULATE_PAGE),
    ("GET", "/consulate/manifest.webmanifest"): public(CONSULATE_PAGE),
    ("GET", "/consulate/sw.js"): public(CONSULATE_PAGE),
    ("GET", "/consulate/offline"): public(CONSULATE_PAGE),
    ("GET", "/consulate/signup"): public(SIGN_IN),
    ("POST", "/consulate/signup"): public(SIGN_IN),
    ("GET", "/consulate/verify"): public(LINK),
    ("GET", "/consulate/login"): public(SIGN_IN),
    ("POST", "/consulate/login"): public(SIGN_IN),
    ("GET", "/consulate/login/code"): public(SIGN_IN),
    ("POST", "/consulate/login/code"): public(SIGN_IN),
    ("POST", "/consulate/logout"): public(SIGN_IN),
    ("GET", "/consulate/reset"): public(SIGN_IN),
    ("POST", "/consulate/reset"): public(SIGN_IN),
    ("GET", "/consulate/totp"): citizen(),
    ("POST", "/consulate/totp"): citizen(),
    ("GET", "/consulate/home"): citizen(),
    ("GET", "/consulate/stays/new"): citizen(),
    ("POST", "/consulate/stays/new"): citizen(),
    ("POST", "/consulate/stays/{registration_id}/{action}"): citizen(),
    ("GET", "/consulate/services"): citizen("any mission's catalogue"),
    ("POST", "/consulate/services/{service_type_id}/apply"): citizen("at any mission"),
    ("GET", "/consulate/requests/{request_id}"): citizen(),
    ("POST", "/consulate/requests/{request_id}/answers"): citizen(),
    ("GET", "/consulate/requests/{request_id}/check"): citizen(),
    ("POST", "/consulate/requests/{request_id}/submit"): citizen(),
    ("POST", "/consulate/requests/{request_id}/documents"): citizen(),
    ("POST", "/consulate/requests/{request_id}/messages"): citizen(),
    ("POST", "/consulate/requests/{request_id}/book"): citizen("a slot of the request's mission"),
    ("GET", "/consulate/documents/{document_id}"): citizen(),
    ("POST", "/consulate/documents/{document_id}/delete"): citizen(),
    ("POST", "/consulate/appointments/{appointment_id}/cancel"): citizen(),
    ("GET", "/consulate/access"): citizen(),
    ("GET", "/consulate/export"): citizen(),
    ("GET", "/consulate/advisories"): public("published travel advisories"),
    ("GET", "/consulate/advisories/{country_code}"): public(
        "a country's published travel advisories"
    ),
    ("GET", "/consulate/advisories/{country_code}/feed.atom"): public(
        "a country's published travel advisories"
    ),
    ("POST", "/consulate/advisories/{country_code}/{action}"): citizen(),
    ("GET", "/api/consulate/me"): citizen(),
    ("GET", "/api/consulate/me/requests/{request_id}"): citizen(),
    ("POST", "/c/push/subscribe"): citizen("with the page's X-CSRF-Token header"),
    # ---------------------------------------------------------------- e-consulate: officers
    ("GET", "/consular"): staff("consulate.read", "list"),
    ("GET", "/api/consulate/queue"): staff("consulate.read", "list"),
    ("GET", "/consular/search"): staff("consulate.read", "list"),
    ("GET", "/consular/requests/{request_id}"): staff("consulate.read", "object"),
    ("GET", "/api/consulate/requests/{request_id}"): staff("consulate.read", "object"),
    ("POST", "/consular/requests/{request_id}/{action}"): staff("consulate.act", "object"),
    ("GET", "/consular/documents/{document_id}"): staff("consulate.read", "object"),
    ("GET", "/consular/slots"): staff("consulate.read", "mission"),
    ("POST", "/consular/slots"): staff("consulate.act", "mission"),
    ("GET", "/consular/catalogue"): staff("consulate.read", "mission"),
    ("GET", "/consular/catalogue/new"): staff("consulate.act", "mission"),
    ("POST", "/consular/catalogue"): staff("consulate.act", "mission"),
    ("GET", "/consular/catalogue/{service_type_id}"): staff("consulate.act", "object"),
    ("POST", "/consular/catalogue/{service_type_id}/{action}"): staff("consulate.act", "object"),
    ("GET", "/consular/appointments"): staff("consulate.read", "mission"),
    ("GET", "/consular/advisories"): staff("consulate.act", "hq", "travel advisories"),
    ("POST", "/consular/advisories"): staff("consulate.act", "hq", "travel advisories"),
    ("POST", "/consular/appointments/{appointment_id}/{status}"): staff("consulate.act", "object"),
    # ---------------------------------------------------------------- crisis: people abroad
    ("GET", "/c/{token}"): public(LINK, shares=True),
    ("POST", "/c/{token}"): public(LINK, shares=True),
    ("POST", "/c/{token}/relative"): public(
        LINK + "; a relative also gives the last digits of the phone", shares=True
    ),
    ("GET", "/c/register/{crisis_id}"): public(
        "the walk-in form of an open crisis, shared openly", shares=True
    ),
    ("POST", "/c/register/{crisis_id}"): public(
        "the walk-in form of an open crisis, shared openly", shares=True
    ),
    ("GET", "/c/push/key"): public("the server's public web-push key"),
    ("POST", "/c/telegram/webhook"): public("checked by Telegram's secret header", shares=True),
    ("POST", "/crisis/sms/inbound"): public("checked by the SMS gateway's signature", shares=True),
    # ---------------------------------------------------------------- crisis: officers
    ("GET", "/crisis"): staff("consulate.read", "list"),
    ("POST", "/crisis"): staff("consulate.act", "mission", "the preview too"),
    ("GET", "/crisis/{crisis_id}"): staff("consulate.read", "object"),
    ("POST", "/crisis/broadcast/{broadcast_id}/{action}"): staff(
        "consulate.act", "object", "approved by a second officer"
    ),
    ("POST", "/crisis/{crisis_id}/{action}"): staff("consulate.act", "object"),
    ("GET", "/crisis/{crisis_id}/people/{kind}"): staff("consulate.read", "object"),
    ("GET", "/crisis/{crisis_id}/evacuation.{fmt}"): staff("consulate.act", "object"),
    # ---------------------------------------------------------------- administration
    ("GET", "/admin"): staff(
        ("users.manage", "sources.manage"), "list", "users and sources of the caller's missions"
    ),
    ("POST", "/admin/missions"): staff("users.manage", "hq"),
    ("POST", "/admin/users"): staff("users.manage", "mission"),
    ("POST", "/admin/users/{user_id}/{action}"): staff(
        "users.manage", "object", "in every mission the user holds a role in"
    ),
    ("POST", "/admin/grants"): staff("users.manage", "mission"),
    ("POST", "/admin/grants/{grant_id}/revoke"): staff("users.manage", "object"),
    ("POST", "/admin/sources"): staff("sources.manage", "mission", "no mission: at headquarters"),
    ("POST", "/admin/sources/{source_id}/toggle"): staff("sources.manage", "object"),
    ("GET", "/admin/outbox"): staff(
        "users.manage", "list", "outgoing messages of the caller's missions (at headquarters: all)"
    ),
    ("POST", "/admin/outbox/{message_id}/retry"): staff("users.manage", "object"),
}


def route_keys(routes: Iterable[Any]) -> Iterator[tuple[str, str]]:
    """Yield (METHOD, path) of every route and mount (HEAD is implied by GET; a mount is GET)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before included routers were wrapped lazily
        contexts: Iterable[Any] = routes
    else:
        contexts = iter_route_contexts(list(routes))
    for rc in contexts:
        path = getattr(rc, "path", None)
        if path is None:
            continue
        methods = getattr(rc, "methods", None) or {"GET"}
        for method in sorted(methods):
            if method != "HEAD":
                yield method, path


class UndeclaredRoute(RuntimeError):
    """A route of the app is missing from the policy table."""


def check_routes(routes: Iterable[Any]) -> None:
    """Raise UndeclaredRoute naming every route that POLICY does not declare."""
    missing = sorted(set(route_keys(routes)) - set(POLICY))
    if missing:
        names = ", ".join(f"{m} {p}" for m, p in missing)
        raise UndeclaredRoute(
            f"routes without a rule in elshi.web.policy.POLICY: {names}. "
            "Declare who may call each one."
        )
