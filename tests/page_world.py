"""The world of the page tests: the demo, plus what a first hour adds (an open crisis whose
message went out, an alert, a saved search, newsletter links), and clients signed in by role."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from elshi.accounts import service as accounts
from elshi.app import create_app
from elshi.consulate.models import Citizen, RequestEvent, ServiceRequest, ServiceType
from elshi.crisis import service as crisis_service
from elshi.crisis.models import Crisis, Recipient
from elshi.db import Database
from elshi.demo import load_demo
from elshi.demo.people import PEOPLE, STAFF
from elshi.listen.models import Author, Post
from elshi.missions import service as missions
from elshi.settings import Settings, load_settings
from elshi.speak.models import Publication, Statement
from elshi.watch.models import Watch
from elshi.web import i18n
from elshi.web.policy import POLICY
from tests.conftest import _clear_env
from tests.workspace_helpers import csrf, sign_in

LANGS = i18n.LANGUAGES


@dataclass
class World:
    """The demo's database with its ids, and signed-in clients by role."""

    db: Database
    settings: Settings
    password: str
    ids: dict[str, Any] = field(default_factory=dict)
    #: citizen e-mail -> their request id
    citizen_requests: dict[str, int] = field(default_factory=dict)


def _open_crisis(db: Database, settings: Settings, mission_id: int) -> tuple[int, str, str]:
    """Open a crisis in Berlin and send its message; return its id and a ru and a kk token."""
    from elshi import crypto

    with db.session() as s:
        users = [accounts.get_user(db=s, email=e) for e, _, _ in STAFF[:2]]
        first, second = (accounts.load_principal(db=s, user_id=u.id) for u in users if u)
        assert first is not None and second is not None
        messages = {
            "kk": {
                "subject": "Берлин: су тасқыны",
                "text": "Шпрее өзені арнасынан шықты. Жағдайыңызды хабарлаңыз.",
                "sms": "Берлинде су тасқыны. Жауап беріңіз:",
            },
            "ru": {
                "subject": "Берлин: наводнение",
                "text": "Река Шпрее вышла из берегов. Сообщите, как вы.",
                "sms": "Наводнение в Берлине. Ответьте:",
            },
            "en": {
                "subject": "Berlin: flood",
                "text": "The Spree has burst its banks. Tell us how you are.",
                "sms": "Flood in Berlin. Answer here:",
            },
        }
        b = crisis_service.create_crisis(
            db=s,
            actor=first,
            mission_id=mission_id,
            title="Spree flood (staff title)",
            area={"cities": ["Berlin"]},
            audience="present",
            messages=messages,
        )
        broadcast_id, crisis_id = b.id, b.crisis_id
    with db.session() as s:
        crisis_service.approve(db=s, actor=second, broadcast_id=broadcast_id)
    with db.session() as s:
        crisis_service.send(db=s, actor=first, broadcast_id=broadcast_id)
    key = crypto.purpose_key(settings, crypto.CHECKIN)
    tokens = {}
    with db.session() as s:
        for r in s.scalars(select(Recipient).where(Recipient.crisis_id == crisis_id)):
            tokens[r.lang] = crisis_service.checkin_token(
                key=key, crisis_id=crisis_id, recipient_id=r.id
            )
    return crisis_id, tokens["ru"], tokens["kk"]


def _alert(db: Database) -> int:
    """Raise a term alert on a demo watch list from its matched posts."""
    from elshi.accounts.service import Principal
    from elshi.alerts import flows
    from elshi.alerts import service as alerts

    with db.session() as s:
        watch = s.scalars(select(Watch).order_by(Watch.id)).first()
        assert watch is not None
        rule = alerts.create_rule(
            db=s,
            principal=Principal.system(),
            watch_id=watch.id,
            kind="term",
            name="Any term",
            params={"terms": ["Китай", "Қытай", "China", "консульский", "граница", "border"]},
        )
        # The demo's posts came before its watch lists: check them all as if they were new.
        finding = alerts.check_terms(s, rule, list(s.scalars(select(Post.id))))
        assert finding is not None, "the demo posts mention none of the terms"
        alert = flows._raise(s, rule, watch, finding)
        alert_id = alert.id if alert else None
    assert alert_id is not None, "the demo posts raised no alert"
    return int(alert_id)


def _group(s: Any, db: Database) -> int:
    """A second account echoes the first demo post 20 seconds later; return the group the
    coordination update draws of the two (the demo does not run it here)."""
    from datetime import timedelta

    from elshi.coordination import service as coordination

    first = s.scalars(select(Post).where(Post.author_id.is_not(None)).order_by(Post.id)).first()
    echo = Author(platform=first.platform, handle="echo_of_first", name="Echo")
    s.add(echo)
    s.flush()
    s.add(
        Post(
            source_id=first.source_id,
            platform=first.platform,
            external_id="echo-of-first",
            connector="test",
            author_id=echo.id,
            author_handle=echo.handle,
            text=first.text,
            lang=first.lang,
            published_at=first.published_at + timedelta(seconds=20),
            collected_at=first.collected_at,
            metrics={},
            extra={},
        )
    )
    s.commit()
    params = coordination.Params(window=60, min_weight=1, min_participation=1)
    coordination.update(db, params=params, full=True)
    with db.engine.connect() as conn:
        found = coordination.groups(conn)
    group = next(g for g in found if first.author_id in g["members"])
    return int(group["id"])


def _actor(s: Any) -> int:
    """Assess the demo's accounts and link the first two into one actor; return its id."""
    from elshi.actors import service as actors
    from elshi.actors.models import Actor, ActorAccount

    actors.assess(s)
    actor = Actor(name="Demo actor")
    s.add(actor)
    s.flush()
    for author_id in s.scalars(select(Author.id).order_by(Author.id).limit(2)):
        s.add(ActorAccount(author_id=author_id, actor_id=actor.id))
    s.commit()
    return int(actor.id)


def demo_world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[World]:
    """Load the demo once (a SQLite copy: the page tests read, they do not migrate)."""
    home = tmp_path_factory.mktemp("every-page") / "home"
    home.mkdir()
    shutil.copy(sqlite_template, home / "elshi.db")
    with pytest.MonkeyPatch.context() as mp:
        _clear_env(mp)
        mp.setenv("ELSHI_HOME", str(home))
        mp.setenv("ELSHI_DATABASE_URL", f"sqlite:///{home / 'elshi.db'}")
        mp.setenv("ELSHI_DEMO", "1")
        settings = load_settings()
        db = Database(settings)
        info = load_demo(db, settings=settings, posts=40)
        w = World(db=db, settings=settings, password=info["password"])
        with db.session() as s:
            embassy = missions.get_mission(db=s, slug="berlin")
            assert embassy is not None
            mission_id = embassy.id
        crisis_id, ru_token, kk_token = _open_crisis(db, settings, mission_id)
        alert_id = _alert(db)
        from elshi.speak.subscribers import subscribe
        from elshi.watch import service as watches

        with db.session() as s:
            admin = accounts.get_user(db=s, email=info["email"])
            assert admin is not None
            principal = accounts.load_principal(db=s, user_id=admin.id)
            assert principal is not None
            saved = watches.save_search(
                db=s, principal=principal, name="Китай", params={"q": "Китай"}, mission_id=None
            )
            confirm = {
                lang: subscribe(
                    db=s, mission_id=mission_id, email=f"reader-{lang}@example.org", lang=lang
                )[1]
                for lang in LANGS
            }
            for c in s.scalars(select(Citizen)):
                rid = s.scalar(select(ServiceRequest.id).where(ServiceRequest.citizen_id == c.id))
                if rid is not None:
                    w.citizen_requests[c.email] = rid
            past = s.scalar(select(Crisis.id).where(Crisis.status == "closed"))
            # One stored narrative over the first posts (the demo does not run enrichment here).
            from elshi.listen.models import Annotation
            from elshi.nlp.models import NarrativeRow

            s.add(NarrativeRow(id=1, count=3, terms=["elshi", "Астана"], langs={"kk": 3}))
            for post_id in s.scalars(select(Post.id).order_by(Post.id).limit(3)):
                s.add(Annotation(post_id=post_id, enricher="narratives", version="1", label="1"))
            group_id = _group(s, db)
            actor_id = _actor(s)
            w.ids = {
                "actor_id": actor_id,
                "narrative_id": 1,
                "group_id": group_id,
                "mission_slug": "berlin",
                "country_code": "DE",
                "post_id": s.scalar(select(Post.id).order_by(Post.id)),
                "author_id": s.scalar(select(Author.id).order_by(Author.id)),
                "watch_id": s.scalar(select(Watch.id).order_by(Watch.id)),
                "alert_id": alert_id,
                "statement_id": s.scalar(select(Statement.id)),
                "items": dict(s.execute(select(Publication.lang, Publication.id)).all()),
                "service_type_id": s.scalar(select(ServiceType.id).order_by(ServiceType.id)),
                "crisis_ids": [crisis_id, past],
                "checkin": {"ru": ru_token, "kk": kk_token},
                "saved": saved.token,
                "confirm": confirm,
                "request_ids": list(
                    s.scalars(select(ServiceRequest.id).where(ServiceRequest.status != "draft"))
                ),
                "open_crisis": crisis_id,
                "slugs": set(s.scalars(select(ServiceType.slug))),
                "documents": {
                    d["slug"] for st in s.scalars(select(ServiceType)) for d in st.documents
                },
                "events": set(s.scalars(select(RequestEvent.action))),
            }
        yield w
        db.dispose()


def client_for(world: World, who: str, lang: str, email: str = "") -> TestClient:
    """A client signed in as `who` (admin, consul, citizen, anonymous), speaking `lang`."""
    client = TestClient(create_app(world.settings, db=world.db))
    client.cookies.set(i18n.COOKIE, lang)
    if who == "admin":
        sign_in(client, "admin@demo.elshi.example", world.password)
    elif who == "consul":
        sign_in(client, STAFF[0][0], world.password)
    elif who == "citizen":
        token = csrf(client, "/consulate/login")
        r = client.post(
            "/consulate/login",
            data={"email": email, "password": world.password, "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text[:300]
    return client


#: GET routes that are not pages (data, files, feeds, redirects to a download), and why.
NOT_PAGES: dict[str, str] = {
    "/health": "JSON",
    "/healthz": "JSON",
    "/readyz": "JSON",
    "/metrics": "Prometheus text",
    "/api/openapi.json": "JSON",
    "/api/docs": "the API's own reference page (Swagger UI), English by design",
    "/static": "files",
    "/static/swagger": "files",
    "/watch/{watch_id}/chart/{name}.{fmt}": "an image or CSV",
    "/digest.pdf": "a PDF",
    "/consulate/advisories/{country_code}/feed.atom": "an Atom feed (tested on its own)",
    "/coordination/groups/{group_id}/evidence.zip": "a ZIP of CSV and GraphML",
    "/coordination/groups/{group_id}/evidence.pdf": "a PDF",
    "/speak/media/{key}": "an image",
    "/news-media/{key}": "an image",
    "/consulate/manifest.webmanifest": "JSON",
    "/consulate/sw.js": "a script",
    "/consulate/documents/{document_id}": "the citizen's own file",
    "/consulate/export": "the citizen's data as JSON",
    "/consular/documents/{document_id}": "a citizen's file",
    "/crisis/{crisis_id}/evacuation.{fmt}": "a CSV or PDF",
    "/c/push/key": "JSON",
}


def page_routes() -> list[tuple[str, str]]:
    """Return (path, who) for every GET page of the policy table."""
    out = []
    for (method, path), rule in sorted(POLICY.items()):
        if method != "GET" or path.startswith("/api/") or path in NOT_PAGES:
            continue
        out.append((path, rule.who))
    return out


def pages(world: World, path: str, who: str, lang: str) -> list[tuple[str, str, str]]:
    """Return (role, citizen e-mail, URL) to render for a route in a language."""
    ids = world.ids
    if who in ("staff", "self"):
        mission_page = path.startswith(("/consular", "/crisis"))
        hq_only = POLICY[("GET", path)].scope == "hq"  # a mission's consul is refused there
        roles = ["admin", "consul"] if mission_page and not hq_only else ["admin"]
        targets = [(r, "") for r in roles]
    elif who == "citizen":
        targets = [("citizen", p.email) for p in PEOPLE if p.lang == lang] or [
            ("citizen", PEOPLE[0].email)
        ]
    else:
        targets = [("anonymous", "")]
    urls: list[str] = []
    if path == "/c/{token}":
        urls = [f"/c/{ids['checkin'].get(lang, ids['checkin']['ru'])}"]
    elif path == "/s/{token}":
        urls = [f"/s/{ids['saved']}"]
    elif path == "/news-confirm/{token}":
        urls = [f"/news-confirm/{ids['confirm'][lang]}", "/news-confirm/not-a-token"]
    elif path == "/news-unsubscribe/{token}":
        urls = ["/news-unsubscribe/not-a-token"]
    elif path == "/consulate/verify":
        urls = ["/consulate/verify?token=not-a-token"]
    elif path == "/c/register/{crisis_id}":
        urls = [f"/c/register/{ids['open_crisis']}"]
    elif path == "/news/{mission_slug}/{lang}/{item}":
        urls = [f"/news/berlin/{lang}/{ids['items'][lang]}"]
    elif "{crisis_id}" in path:
        urls = [
            path.replace("{crisis_id}", str(c)).replace("{kind}", kind)
            for c in ids["crisis_ids"]
            for kind in ("help", "not_reached", "all")
            if "{kind}" in path or kind == "help"
        ]
    elif "{request_id}" in path:
        if who == "citizen":
            out = []
            for _, email in targets:
                rid = world.citizen_requests[email]
                out.append(("citizen", email, path.replace("{request_id}", str(rid))))
            return out
        urls = [path.replace("{request_id}", str(r)) for r in ids["request_ids"]]
    else:
        url = path.replace("{lang}", lang)
        for name, value in ids.items():
            url = url.replace("{" + name + "}", str(value))
        urls = [url]
    assert all("{" not in u for u in urls), urls
    return [(role, email, url) for role, email in targets for url in urls]


#: Pages that answer with an error on purpose (a spent or made-up link).
EXPECTED_STATUS = {
    "/news-confirm/not-a-token": 404,
    "/news-unsubscribe/not-a-token": 404,
    "/consulate/verify?token=not-a-token": 400,
}
