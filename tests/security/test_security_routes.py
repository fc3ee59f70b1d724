"""Every route says who may call it (elshi.web.policy), and the app keeps to it.

The matrix calls every route of the app with Berlin's object ids, as each staff role held only
in Paris, as a citizen, anonymously and with an API token, and checks the answers against the
policy table: refused where the rule refuses, never Berlin's canary in a page, never a change
to a row of Berlin's. A control run as the headquarters admin shows the same calls do reach
Berlin's data when allowed, so the refusals are not an artefact of wrong ids.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from elshi.app import create_app
from elshi.db import Database
from elshi.settings import Settings
from elshi.web.policy import POLICY, Rule, UndeclaredRoute, check_routes, route_keys
from tests.conftest import BACKEND, PG_ADMIN
from tests.security.world import (
    CANARY_LOWER,
    PASSWORD,
    STAFF_ROLES,
    Template,
    World,
    changes,
    snapshot,
    template,
)

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CALLERS = (*STAFF_ROLES, "citizen", "anonymous", "token")

#: Cases known to fail, each with the finding that will close it; empty now that every finding
#: of the audit is closed. The test fails on an entry that passes, so none can linger.
OPEN_ELSEWHERE: dict[tuple[str, str, str], str] = {}


# ---------------------------------------------------------------------------- the table


def test_every_route_is_declared_and_no_declaration_is_stale(settings: Settings) -> None:
    app = create_app(settings)
    routes = set(route_keys(app.routes))
    assert not routes - set(POLICY), f"routes without a rule: {sorted(routes - set(POLICY))}"
    assert not set(POLICY) - routes, f"rules without a route: {sorted(set(POLICY) - routes)}"


def test_an_undeclared_route_stops_the_app_from_starting(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from elshi.admin import views

    wider = APIRouter(include_in_schema=False)
    wider.include_router(views.router)

    @wider.get("/admin/export-everything")
    def export_everything() -> dict[str, str]:
        return {}

    monkeypatch.setattr(views, "router", wider)
    with pytest.raises(UndeclaredRoute, match="GET /admin/export-everything"):
        create_app(settings)

    bare = FastAPI()
    bare.post("/health")(lambda: None)
    with pytest.raises(UndeclaredRoute, match="POST /health"):
        check_routes(bare.routes)


def test_rules_are_consistent() -> None:
    for (method, path), rule in POLICY.items():
        assert method in ("GET", "POST"), (method, path)
        if rule.scope == "object":
            assert "{" in path, f"{method} {path}: an object route names the object in its path"
        if rule.shares:
            assert rule.who == "public", f"{method} {path}: only a public route shares data"


# ---------------------------------------------------------------------------- calls


@dataclass
class Call:
    """One request of the matrix."""

    method: str
    path: str
    url: str
    data: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Any] | None = None
    json: Any = None
    #: Aims at Paris's own object: no refusal expected, only no Berlin data in the answer.
    own: bool = False
    #: A write that must be refused whoever sends it (it reaches into Berlin's data).
    refuse: bool = False


#: Routes that sign the caller in or out, or change their own sign-in: called last.
LAST = {
    ("POST", "/logout"),
    ("POST", "/login"),
    ("POST", "/login/code"),
    ("POST", "/account/totp"),
    ("POST", "/account/password"),
    ("POST", "/consulate/logout"),
    ("POST", "/consulate/login"),
    ("POST", "/consulate/login/code"),
    ("POST", "/consulate/totp"),
    ("POST", "/consulate/reset"),
}
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415478"
    "9c63f8cfc000000301010018dd8db00000000049454e44ae426082"
)


def _variants(path: str, w: World, caller_email: str) -> list[dict[str, Any]]:
    """Path parameters (Berlin's ids) and form fields aiming at Berlin, one dict per call."""
    b, p = w.b, w.p
    day = b["slot_day"]
    own = [
        ("/watch/{watch_id}", {"watch_id": p["watch"]}),
        ("/watch/{watch_id}/edit", {"watch_id": p["watch"]}),
        ("/watch/{watch_id}/chart/{name}.{fmt}", {"watch_id": p["watch"], "fmt": "csv"}),
        ("/speak/{statement_id}", {"statement_id": p["statement"]}),
        ("/speak/{statement_id}/rebuttal", {"statement_id": p["statement"]}),
        ("/crisis/{crisis_id}", {"crisis_id": p["crisis"]}),
        ("/crisis/{crisis_id}/people/{kind}", {"crisis_id": p["crisis"], "kind": "all"}),
        ("/crisis/{crisis_id}/evacuation.{fmt}", {"crisis_id": p["crisis"], "fmt": "csv"}),
        ("/consular/requests/{request_id}", {"request_id": p["request"]}),
        ("/api/consulate/requests/{request_id}", {"request_id": p["request"]}),
    ]
    by_path: dict[str, list[dict[str, Any]]] = {
        "/c/{token}": [{"token": b["checkin"], "answer": "safe", "nonce": "n1"}],
        "/c/{token}/relative": [
            {"token": b["checkin"], "answer": "safe", "relative": "Aunt", "phone_tail": "4567"}
        ],
        "/s/{token}": [{"token": b["saved"]}],
        "/news-confirm/{token}": [{"token": b["confirm"]}],
        "/news-unsubscribe/{token}": [{"token": b["unsubscribe"]}],
        "/news/{mission_slug}/{lang}/{item}": [
            {"item": str(b["publication"])},
            {"item": "rss.xml"},
            {"item": "feed.json"},
        ],
        "/watch/{watch_id}/chart/{name}.{fmt}": [{"fmt": "csv"}, {"fmt": "svg"}],
        "/crisis/{crisis_id}/people/{kind}": [{"kind": "all"}, {"kind": "help"}],
        "/speak/publications/{publication_id}/{action}": [
            {"action": a} for a in ("retry", "send-again", "mark-sent")
        ],
        "/consulate/stays/{registration_id}/{action}": [
            {"action": "confirm"},
            {"action": "cancel"},
        ],
        "/consular/requests/{request_id}/{action}": [
            {"action": a, "note": "Bring the original."}
            for a in ("claim", "ask", "approve", "reject", "message")
        ],
        "/consular/catalogue/{service_type_id}/{action}": [{"action": "deactivate"}],
        "/consulate/advisories/{country_code}/{action}": [
            {"action": "follow"},
            {"action": "unfollow"},
        ],
        "/consular/advisories": [
            {
                "country_code": "DE",
                "level": "3",
                "text_kk": "Сапарды қайта қарастырыңыз.",
                "text_ru": "Пересмотрите поездку.",
                "text_en": "Reconsider travel.",
            }
        ],
        "/crisis/broadcast/{broadcast_id}/{action}": [
            {"action": a} for a in ("approve", "send", "cancel")
        ],
        "/crisis/{crisis_id}/{action}": [
            {"action": "kill"},
            {"action": "close"},
            {"action": "merge"},
            {"action": "followup", "text_en": "Stay inside.", "target": "all"},
            {"action": "assign", "recipient_id": b["recipient"], "note": "Call", "to_me": "1"},
        ],
        "/admin/users/{user_id}/{action}": [
            {"action": "disable"},
            {"action": "disable", "user_id": w.hq_admin_id, "_refuse": True},
        ],
        "/speak/{statement_id}/versions/{lang}/reviewed": [{"lang": "ru"}],
        "/speak/new": [{"mission_id": w.berlin, "title": "Ours", "lang": "en", "text": "Text"}],
        "/speak/{statement_id}/versions/{lang}": [{"text": "Overwritten", "headline": "New"}],
        "/speak/{statement_id}/versions/{lang}/images": [
            {"alt": "A picture", "_files": {"image": ("x.png", PNG, "image/png")}}
        ],
        "/speak/{statement_id}/translate": [{"source": "en", "target": "kk"}],
        "/speak/{statement_id}/decide": [
            {"decision": "approve", "comment": "Fine"},
            {"decision": "return", "comment": "No"},
        ],
        "/speak/{statement_id}/schedule": [{"when": "now", "account": b["account"]}],
        "/speak/{statement_id}/topic": [{"query": "treaty"}],
        "/news/{mission_slug}/{lang}": [{"email": "reader@example.org"}],
        "/login": [{"email": b["user_email"], "password": "not the password at all"}],
        "/login/code": [{"code": "123456"}],
        "/account/totp": [{"secret": "JBSWY3DPEHPK3PXP", "code": "000000"}],
        "/account/password": [{"current": "not the password", "new": "a new long password"}],
        "/consulate/signup": [
            {"email": "canary-berlin-7f3a@example.org", "name": "X", "password": PASSWORD}
        ],
        "/consulate/login": [
            {"email": "canary-berlin-7f3a@example.org", "password": "not the password"}
        ],
        "/consulate/login/code": [{"code": "123456"}],
        "/consulate/reset": [{"email": "canary-berlin-7f3a@example.org"}],
        "/consulate/totp": [{"secret": "JBSWY3DPEHPK3PXP", "code": "000000"}],
        "/consulate/verify": [{"_query": "token=forged"}],
        "/consulate/stays/new": [
            {
                "mission_id": w.berlin,
                "country_code": "DE",
                "city": "Potsdam",
                "arrive_on": day,
                "leave_on": day,
            }
        ],
        "/consulate/services": [{"_query": f"mission={w.berlin}"}],
        "/consulate/requests/{request_id}/answers": [{"full_name": "Replaced", "action": "save"}],
        "/consulate/requests/{request_id}/documents": [
            {"kind": "passport", "_files": {"file": ("x.png", PNG, "image/png")}}
        ],
        "/consulate/requests/{request_id}/messages": [{"body": "Hello"}],
        "/consulate/requests/{request_id}/book": [{"slot_id": b["free_slot"]}],
        "/c/push/subscribe": [
            {"_json": {"endpoint": "https://push.example/x", "keys": {"p256dh": "x", "auth": "y"}}}
        ],
        "/c/register/{crisis_id}": [{"name": "Walker", "answer": "safe", "city": "Berlin"}],
        "/c/telegram/webhook": [{"_json": {"message": {"text": "/stop", "chat": {"id": 1}}}}],
        "/crisis/sms/inbound": [{"From": "+49301234567", "Body": "SAFE"}],
        "/consular": [{"_query": f"service_type={b['service_type']}&status=submitted"}],
        "/api/consulate/queue": [{"_query": f"service_type={b['service_type']}&status=submitted"}],
        "/consular/search": [{"_query": "q=berlin-7f3a"}],
        "/consular/slots": [
            {"_query": f"mission={w.berlin}&week={day}"},
            {
                "mission_id": w.berlin,
                "day": day,
                "start": "10:00",
                "count": "1",
                "minutes": "15",
                "capacity": "1",
            },
        ],
        "/consular/catalogue": [
            {"_query": f"mission={w.berlin}"},
            {"mission_id": w.berlin, "service_type_id": b["service_type"], "slug": "visa"},
        ],
        "/consular/catalogue/new": [{"_query": f"mission={w.berlin}"}],
        "/consular/appointments": [{"_query": f"mission={w.berlin}&day={day}"}],
        "/crisis": [
            {
                "mission_id": w.berlin,
                "title": "Flood",
                "cities": "Berlin",
                "audience": "present",
                "text_en": "Stay inside.",
                "action": action,
            }
            for action in ("preview", "create")
        ],
        "/watch-save": [
            {"watch_id": b["watch"], "mission_id": w.berlin, "name": "Mine", "terms": "treaty"},
            {"watch_id": b["watch"], "mission_id": w.paris, "name": "Mine", "terms": "treaty"},
            {"mission_id": w.berlin, "name": "New", "terms": "treaty"},
        ],
        "/watch/{watch_id}/events": [{"day": day, "title": "Summit", "kind": "summit"}],
        "/explore": [{"_query": f"q=treaty&watch={b['watch']}"}],
        "/explore/save": [{"name": "Mine", "query": f"q=treaty&watch={b['watch']}"}],
        "/authors/{author_id}/actor-type": [{"actor_type": "journalist"}],
        "/authors/{author_id}/actor": [{"name": "Mine"}, {"actor": str(b["actor"])}],
        "/actors/lists": [{"name": "Mine", "platform": "twitter"}],
        "/watch/{watch_id}/alerts": [
            {"kind": "term", "name": "Mine", "terms": "treaty", "cooldown": "360"}
        ],
        "/rules/{rule_id}/toggle": [{"enabled": "0"}],
        "/alerts/{alert_id}/comment": [{"text": "Seen"}],
        "/api/posts": [{"_query": f"q=treaty&source_id={b['source']}"}],
        "/api/quarantine": [{"_query": f"source_id={b['source']}"}],
        "/posts": [{"_query": f"q=treaty&source={b['source']}"}],
        "/speak-calendar": [{"_query": f"mission={w.berlin}"}],
        "/digest": [{"_query": "mission=berlin"}],
        "/digest.pdf": [{"_query": "mission=berlin"}],
        "/admin/missions": [{"slug": "rome", "name": "Embassy in Rome", "kind": "embassy"}],
        "/admin/users": [
            {
                "email": "newcomer@mfa.example",
                "name": "New",
                "password": PASSWORD,
                "role": "analyst",
                "mission": "berlin",
            }
        ],
        "/admin/grants": [
            {"email": caller_email or b["user_email"], "role": "admin", "mission": "berlin"},
            {"email": b["user_email"], "role": "press", "mission": "berlin"},
            {"email": caller_email or b["user_email"], "role": "admin", "mission": "hq"}
            | {"_refuse": True},
        ],
        "/admin/sources": [
            {
                "connector": "rss",
                "name": "Feed",
                "config": '{"url": "https://example.org/feed"}',
                "mission": str(w.berlin),
            }
        ],
        "/admin/sources/{source_id}/toggle": [{"enabled": "0"}],
    }
    # Paris's own pages, and writes from them that reach for Berlin's objects.
    for route, values in own:
        by_path.setdefault(route, [{}]).append({**values, "_own": True})
    by_path["/watch/{watch_id}/alerts"] = [
        {"_query": ""},
        {"_query": "", "watch_id": p["watch"], "_own": True},
        *by_path["/watch/{watch_id}/alerts"],
        {
            "watch_id": p["watch"],
            "kind": "source_silent",
            "name": "Theirs",
            "source_id": b["source"],
            "token_id": b["api_token"],
            "silent_hours": "24",
            "cooldown": "360",
            "_own": True,
            "_refuse": True,
        },
    ]
    by_path["/watch-save"].append(
        {
            "watch_id": p["watch"],
            "mission_id": w.berlin,
            "name": "Moved",
            "terms": "treaty",
            "_own": True,
            "_refuse": True,
        }
    )
    by_path["/speak/{statement_id}/schedule"].append(
        {"statement_id": p["statement"], "when": "now", "account": b["account"], "_own": True}
    )
    by_path["/digest"].append({"_query": "mission=paris", "_own": True})
    by_path["/explore"].append({"_query": f"q=treaty&watch={p['watch']}", "_own": True})
    return by_path.get(path, [{}])


def _ids(w: World) -> dict[str, Any]:
    b = w.b
    return {
        "post_id": b["post"],
        "narrative_id": b["narrative"],
        "group_id": b["group"],
        "actor_id": b["actor"],
        "list_id": b["actor_list"],
        "statement_id": b["statement"],
        "lang": b["lang"],
        "key": b["image"],
        "publication_id": b["publication"],
        "mission_slug": "berlin",
        "country_code": "DE",
        "registration_id": b["registration"],
        "service_type_id": b["service_type"],
        "request_id": b["request"],
        "document_id": b["document"],
        "appointment_id": b["appointment"],
        "watch_id": b["watch"],
        "name": "volume",
        "fmt": "csv",
        "author_id": b["author"],
        "rule_id": b["rule"],
        "alert_id": b["alert"],
        "delivery_id": b["delivery"],
        "message_id": b["outbox"],
        "crisis_id": b["crisis"],
        "broadcast_id": b["broadcast"],
        "kind": "all",
        "user_id": b["user"],
        "grant_id": b["grant"],
        "source_id": b["source"],
        "token_id": b["api_token"],
        "status": "attended",
    }


PARAM = re.compile(r"\{(\w+)\}")


def calls_for(method: str, path: str, w: World, caller_email: str = "") -> list[Call]:
    """The requests the matrix sends to one route: a GET with each query given (or none), a
    POST with each form given."""
    variants = _variants(path, w, caller_email)
    queries = [v for v in variants if "_query" in v]
    forms = [v for v in variants if "_query" not in v] or [{}]
    out: list[Call] = []
    for variant in queries or forms if method == "GET" else forms:
        values = {**_ids(w), **variant}
        url = path
        for name in PARAM.findall(path):
            url = url.replace("{" + name + "}", str(values[name]))
        if path in STATIC:
            url = STATIC[path]
        own = bool(variant.get("_own"))
        if method == "GET":
            url += f"?{variant['_query']}" if variant.get("_query") else ""
            if any(c.url == url for c in out):
                continue
            out.append(Call(method, path, url, own=own))
            continue
        params = PARAM.findall(path)
        data = {k: v for k, v in variant.items() if not k.startswith("_") and k not in params}
        out.append(
            Call(
                method,
                path,
                url,
                data,
                variant.get("_files"),
                variant.get("_json"),
                own=own,
                refuse=bool(variant.get("_refuse")),
            )
        )
    return out


STATIC = {"/static": "/static/elshi.css", "/static/swagger": "/static/swagger/swagger-ui.css"}


def ordered(w: World, caller_email: str) -> list[Call]:
    """Every call of the matrix: reads first, then writes, then the sign-in routes."""
    routes = sorted(POLICY, key=lambda k: (k[0] != "GET", k in LAST, "logout" in k[1], k[1]))
    return [c for m, p in routes for c in calls_for(m, p, w, caller_email)]


# ---------------------------------------------------------------------------- callers


def _csrf(client: TestClient, path: str) -> str:
    page = client.get(path)
    match = CSRF.search(page.text)
    assert match, f"{path}: {page.status_code} {page.text[:200]}"
    return match[1]


def sign_in(client: TestClient, w: World, caller: str) -> str:
    """Sign the client in as the caller; return the form token of its pages."""
    if caller in STAFF_ROLES:
        r = client.post(
            "/login",
            data={
                "email": w.paris_staff[caller],
                "password": PASSWORD,
                "csrf_token": _csrf(client, "/login"),
                "next": "/",
            },
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text[:300]
        return _csrf(client, "/account")
    if caller == "citizen":
        r = client.post(
            "/consulate/login",
            data={
                "email": w.paris_citizen,
                "password": PASSWORD,
                "csrf_token": _csrf(client, "/consulate/login"),
                "next": "/consulate/home",
            },
            follow_redirects=False,
        )
        assert r.status_code == 303 and "login" not in r.headers["location"], r.text[:300]
        return _csrf(client, "/consulate/home")
    if caller == "token":
        client.headers["Authorization"] = f"Bearer {w.tokens['analyst']}"
        return ""
    return _csrf(client, "/login")


def send(client: TestClient, call: Call, token: str) -> Any:
    if call.method == "GET":
        return client.get(call.url, follow_redirects=False)
    if call.json is not None:
        return client.post(
            call.url, json=call.json, headers={"X-CSRF-Token": token}, follow_redirects=False
        )
    return client.post(
        call.url,
        data={"csrf_token": token, **{k: str(v) for k, v in call.data.items()}},
        files=call.files,
        follow_redirects=False,
    )


LOGIN_PAGES = ("/login", "/consulate/login")


def refused(response: Any) -> bool:
    """401, 403, 404, or a redirect to a sign-in page."""
    if response.status_code in (401, 403, 404):
        return True
    location = response.headers.get("location", "")
    return response.status_code in (302, 303, 307) and location.startswith(LOGIN_PAGES)


def shows_canary(response: Any) -> bool:
    seen = response.content.lower() + response.headers.get("location", "").lower().encode()
    return CANARY_LOWER.encode() in seen


def must_refuse(rule: Rule, call: Call, caller: str) -> bool:
    """Whether the rule refuses this caller on Berlin's objects outright."""
    kind = caller if caller in ("citizen", "anonymous") else "staff"
    if call.refuse:
        return True
    if call.own and kind == "staff":
        return False
    if rule.who == "public":
        return False
    if kind == "anonymous":
        return True
    if rule.who == "citizen":
        return kind != "citizen"
    if kind != "staff":
        return True
    return rule.who == "staff" and rule.scope in ("object", "hq")


def judge(rule: Rule, call: Call, caller: str, response: Any, changed: list[str]) -> str | None:
    """What is wrong with this answer, or None."""
    status = response.status_code
    if status >= 500:
        return f"server error {status}"
    if call.refuse and (400 <= status < 500 or refused(response)):
        pass
    elif must_refuse(rule, call, caller) and not refused(response):
        where = response.headers.get("location", "")
        return f"not refused: {status} {where}".rstrip()
    if rule.shares:
        return None
    if shows_canary(response) and CANARY_LOWER not in f"{call.url} {call.data}".lower():
        return f"{status} shows Berlin's data"
    if changed:
        return f"{status} changed Berlin's data: {', '.join(changed[:4])}"
    return None


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, pg_database: str | None
) -> Iterator[Template]:
    with template(
        tmp_path_factory.mktemp("matrix"),
        backend=BACKEND,
        sqlite_template=sqlite_template,
        pg_admin=PG_ADMIN,
    ) as t:
        yield t


def run_matrix(t: Template, folder: Path, caller: str) -> dict[tuple[str, str, str], str]:
    """Call every route as the caller on a copy of the world; return what went wrong."""
    w = t.world
    failures: dict[tuple[str, str, str], str] = {}
    email = w.paris_staff.get(caller, "")
    with t.copy(folder) as settings:
        database = Database(settings)
        engine = database.engine
        own = w.paris_citizen_id if caller == "citizen" else None
        try:
            app = create_app(settings, db=database)
            with TestClient(app, raise_server_exceptions=False) as client:
                token = sign_in(client, w, caller)
                last: dict[Any, Any] | None = None
                checked_alive = False
                for call in ordered(w, email):
                    if caller == "token" and call.method != "GET":
                        continue  # page forms need the browser's CSRF cookie: all refused
                    if (call.method, call.path) in LAST and not checked_alive:
                        checked_alive = True
                        _still_signed_in(client, caller)
                    if call.method == "POST" and last is None:  # reads may change (and log)
                        with engine.connect() as conn:
                            last = snapshot(conn, w, own_citizen=own)
                    response = send(client, call, token)
                    changed: list[str] = []
                    if call.method == "POST":
                        with engine.connect() as conn:
                            now = snapshot(conn, w, own_citizen=own)
                        changed, last = changes(last or {}, now), now
                    problem = judge(POLICY[call.method, call.path], call, caller, response, changed)
                    if problem:
                        key = (call.method, call.path, caller)
                        failures[key] = failures.get(key, "") + f"{call.url}: {problem}; "
        finally:
            engine.dispose()
            database.dispose()
    return failures


def _still_signed_in(client: TestClient, caller: str) -> None:
    """The writes before the sign-in routes must not have signed the caller out."""
    if caller in STAFF_ROLES or caller == "token":
        assert client.get("/api/me").status_code == 200, "the staff session ended early"
    elif caller == "citizen":
        assert client.get("/api/consulate/me").status_code == 200, "the citizen session ended"


@pytest.mark.parametrize("caller", CALLERS)
def test_paris_callers_never_reach_berlin(world: Template, tmp_path: Path, caller: str) -> None:
    failures = run_matrix(world, tmp_path, caller)
    expected = {k: v for k, v in OPEN_ELSEWHERE.items() if k[2] == caller}
    new = {k: v for k, v in failures.items() if k not in expected}
    stale = sorted(k for k in expected if k not in failures)
    lines = [f"{m} {p} as {c}: {why}" for (m, p, c), why in sorted(new.items())]
    lines += [f"{m} {p} as {c}: listed in OPEN_ELSEWHERE but passes now" for m, p, c in stale]
    assert not lines, f"{len(lines)} problem(s) as {caller}:\n" + "\n".join(lines)


# ---------------------------------------------------------------------------- control

#: Reads where the headquarters admin sees Berlin's data without the canary in the answer
#: (forms, counts, catalogues, pictures, PDF, a compressed ZIP).
NO_CANARY_FOR_CONTROL = {
    ("GET", "/"),
    ("GET", "/coordination/groups/{group_id}/evidence.zip"),
    ("GET", "/coordination/groups/{group_id}/evidence.pdf"),
    ("GET", "/api/statements/{statement_id}/reach"),
    ("GET", "/consular/advisories"),
    ("GET", "/consular/catalogue"),
    ("GET", "/consular/catalogue/new"),
    ("GET", "/consular/catalogue/{service_type_id}"),
    ("GET", "/consular/slots"),
    ("GET", "/digest.pdf"),
    ("GET", "/speak/media/{key}"),
    ("GET", "/speak/new"),
    ("GET", "/watch-new"),
    ("GET", "/watch/{watch_id}/chart/{name}.{fmt}"),
}


def test_the_same_calls_reach_berlin_for_headquarters(world: Template, tmp_path: Path) -> None:
    w = world.world
    missing, errors = set(), []
    with world.copy(tmp_path) as settings:
        database = Database(settings)
        try:
            with TestClient(create_app(settings, db=database)) as client:
                client.post(
                    "/login",
                    data={
                        "email": w.hq_admin,
                        "password": PASSWORD,
                        "csrf_token": _csrf(client, "/login"),
                    },
                    follow_redirects=False,
                )
                for call in ordered(w, w.hq_admin):
                    rule = POLICY[call.method, call.path]
                    if call.method != "GET" or rule.who != "staff" or call.own:
                        continue
                    response = client.get(call.url, follow_redirects=False)
                    if response.status_code >= 400:
                        errors.append(f"{call.url}: {response.status_code}")
                    elif not shows_canary(response):
                        missing.add((call.method, call.path))
        finally:
            database.dispose()
    assert not errors, "the headquarters admin is refused: " + ", ".join(errors)
    assert missing == NO_CANARY_FOR_CONTROL, "canary expected but not seen, or the reverse:\n" + (
        "\n".join(f"{m} {p}" for m, p in sorted(missing ^ NO_CANARY_FOR_CONTROL))
    )


#: Citizen pages that show none of the citizen's own text here: a mission's catalogue, the
#: empty log of staff access, the form for a new stay.
CITIZEN_PAGES_WITHOUT_OWN_DATA = {
    "/consulate/services",
    "/consulate/access",
    "/consulate/stays/new",
}


def test_the_same_calls_reach_berlins_citizen_for_their_own_pages(
    world: Template, tmp_path: Path
) -> None:
    """Berlin's citizen sees their own request, document and data on the pages the matrix
    calls with their ids: a Paris citizen's refusal there is not an artefact of wrong ids."""
    w = world.world
    seen, missing = 0, []
    with world.copy(tmp_path) as settings:
        database = Database(settings)
        try:
            with TestClient(create_app(settings, db=database)) as client:
                r = client.post(
                    "/consulate/login",
                    data={
                        "email": "canary-berlin-7f3a@example.org",
                        "password": PASSWORD,
                        "csrf_token": _csrf(client, "/consulate/login"),
                    },
                    follow_redirects=False,
                )
                assert r.status_code == 303, r.text[:200]
                for call in ordered(w, ""):
                    rule = POLICY[call.method, call.path]
                    if call.method != "GET" or rule.who != "citizen":
                        continue
                    response = client.get(call.url, follow_redirects=False)
                    assert response.status_code == 200, (call.url, response.status_code)
                    seen += 1
                    if call.path not in CITIZEN_PAGES_WITHOUT_OWN_DATA and not shows_canary(
                        response
                    ):
                        missing.append(call.url)
        finally:
            database.dispose()
    assert seen >= 8 and not missing, missing


# ---------------------------------------------------------------------------- what it found


def test_a_short_authenticator_key_is_refused_not_a_server_error(
    world: Template, tmp_path: Path
) -> None:
    """The key comes back from the form: one under 112 bits made pyotp raise (a 500)."""
    with world.copy(tmp_path) as settings:
        database = Database(settings)
        try:
            app = create_app(settings, db=database)
            with TestClient(app, raise_server_exceptions=False) as staff_client:
                token = sign_in(staff_client, world.world, "analyst")
                r = staff_client.post(
                    "/account/totp",
                    data={"csrf_token": token, "secret": "JBSWY3DPEHPK3PXP", "code": "123456"},
                )
                assert r.status_code == 400, r.status_code
            with TestClient(app, raise_server_exceptions=False) as citizen_client:
                token = sign_in(citizen_client, world.world, "citizen")
                r = citizen_client.post(
                    "/consulate/totp",
                    data={"csrf_token": token, "secret": "JBSWY3DPEHPK3PXP", "code": "123456"},
                )
                assert r.status_code == 400, r.status_code
        finally:
            database.dispose()


def test_crisis_actions_on_another_missions_crisis_answer_404(
    world: Template, tmp_path: Path
) -> None:
    """A crisis or broadcast of a mission the officer does not serve is 'not found', as its
    page is, not a 409 conflict that tells it exists."""
    b = world.world.b
    with world.copy(tmp_path) as settings:
        database = Database(settings)
        try:
            with TestClient(create_app(settings, db=database)) as client:
                token = sign_in(client, world.world, "consular")
                for url in (
                    f"/crisis/{b['crisis']}/close",
                    f"/crisis/broadcast/{b['broadcast']}/approve",
                ):
                    r = client.post(url, data={"csrf_token": token}, follow_redirects=False)
                    assert r.status_code == 404, (url, r.status_code)
                r = client.post(
                    "/crisis/999999/close", data={"csrf_token": token}, follow_redirects=False
                )
                assert r.status_code == 404
        finally:
            database.dispose()


def test_paris_pages_show_no_berlin_narrative_or_source(world: Template, tmp_path: Path) -> None:
    """A Paris watch's dashboard, its alert-rule form, Paris's digest and its alerts listed the
    biggest narratives and the sources of every mission; a source-silent rule could name
    Berlin's source and report its name and last error."""
    w = world.world
    with world.copy(tmp_path) as settings:
        database = Database(settings)
        try:
            with TestClient(create_app(settings, db=database)) as client:
                token = sign_in(client, w, "analyst")
                for url in (
                    f"/watch/{w.p['watch']}",
                    f"/watch/{w.p['watch']}/alerts",
                    "/digest?mission=paris",
                    "/alerts",
                ):
                    page = client.get(url)
                    assert page.status_code == 200, url
                    assert CANARY_LOWER not in page.text.lower(), url
                r = client.post(
                    f"/watch/{w.p['watch']}/alerts",
                    data={
                        "csrf_token": token,
                        "kind": "source_silent",
                        "name": "Theirs",
                        "source_id": str(w.b["source"]),
                        "silent_hours": "24",
                        "cooldown": "360",
                    },
                    follow_redirects=False,
                )
                assert r.status_code == 400, r.status_code
        finally:
            database.dispose()
