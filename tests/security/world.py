"""A fixture world for the security matrix: three missions, Berlin owning one object of every
kind with a canary string in its text, and staff of each role who hold it only in Paris.

Built once per module (it takes a few seconds), then copied for each caller: a SQLite file is
copied, a PostgreSQL database is cloned with CREATE DATABASE ... TEMPLATE. `snapshot` reads
every row that belongs to Berlin, so a test can tell whether a request changed one.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, or_, select, text
from sqlalchemy.engine import Connection, make_url

from elshi import crypto
from elshi.accounts import service as accounts
from elshi.accounts.models import User
from elshi.accounts.service import Principal
from elshi.actors.models import AccountAssessment, Actor, ActorAccount, ActorList, ActorListEntry
from elshi.alerts.flows import evaluate_rules
from elshi.alerts.models import Alert, AlertComment, AlertDelivery, AlertRule
from elshi.consulate import documents
from elshi.consulate import service as consulate
from elshi.consulate.models import (
    Appointment,
    Document,
    Message,
    Registration,
    RequestEvent,
    ServiceRequest,
    ServiceType,
    Slot,
)
from elshi.consulate.schemas import DEFAULT_CATALOGUE
from elshi.coordination.models import CoAction, CoGroup, CoGroupMember
from elshi.crisis import service as crisis_service
from elshi.crisis.models import Broadcast, CheckIn, Crisis, PushSubscription, Recipient, WalkIn
from elshi.crisis.models import Delivery as CrisisDelivery
from elshi.db import Base, Database, utcnow
from elshi.listen.models import Annotation, Author, Post, Quarantine, Source
from elshi.listen.text import index_text
from elshi.migrate import migrate
from elshi.missions import service as missions
from elshi.nlp.models import NarrativeRow
from elshi.notify.message import Message as Outgoing
from elshi.notify.models import OutboxMessage
from elshi.settings import Settings, load_settings
from elshi.speak import media
from elshi.speak import service as speak
from elshi.speak.models import Publication, Statement, StatementVersion
from elshi.watch.matching import process_posts
from elshi.watch.models import KnownEvent, SavedSearch, Watch, WatchDaily, WatchMatch

#: In every text field of every Berlin object; a page that shows it leaks Berlin's data.
CANARY = "CANARY-BERLIN-7f3a"
#: Searched case-insensitively (e-mail addresses are stored in lower case).
CANARY_LOWER = CANARY.lower()
PASSWORD = "correct horse battery staple"
STAFF_ROLES = ("admin", "ambassador", "analyst", "press", "approver", "consular")
NARRATIVE_ID = 4242

#: Rows not compared: logs of sign-in attempts, sessions, one-time e-mail tokens (mailed to the
#: owner only) and the audit log (every read writes to it).
SKIP_TABLES = frozenset(
    {"audit_event", "login_attempt", "web_session", "citizen_session", "citizen_token"}
)
#: Columns that sign-in attempts and token use change (counted elsewhere).
VOLATILE = {
    "user_account": {"last_login_at", "failed_logins", "locked_until"},
    "citizen": {"last_login_at", "failed_logins", "locked_until"},
    "api_token": {"last_used_at"},
    "publication": {"local_views"},
}


@dataclass
class World:
    """Ids and secrets of the fixture world; `b` holds Berlin's objects by kind."""

    hq: int
    berlin: int
    paris: int
    b: dict[str, Any] = field(default_factory=dict)
    #: Paris's own objects (their pages must not show Berlin's data either).
    p: dict[str, Any] = field(default_factory=dict)
    paris_staff: dict[str, str] = field(default_factory=dict)
    paris_citizen: str = ""
    paris_citizen_id: int = 0
    hq_admin: str = ""
    hq_admin_id: int = 0
    tokens: dict[str, str] = field(default_factory=dict)
    #: Primary keys of Berlin's rows per table, as built.
    owned: dict[str, set[Any]] = field(default_factory=dict)


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def _user(s: Any, digest: str, email: str, name: str) -> User:
    user = User(email=email, name=name, password_hash=digest)
    s.add(user)
    s.flush()
    return user


def build(db: Database, settings: Settings) -> World:
    """Write the world into an empty, migrated database; return its ids."""
    now = utcnow()
    today = now.date()
    digest = accounts.hash_password(PASSWORD)
    with db.session() as s:
        hq = missions.ensure_hq(db=s)
        berlin = missions.create_mission(
            db=s, slug="berlin", name="Embassy in Berlin", country_code="DE", parent_id=hq.id
        )
        paris = missions.create_mission(
            db=s, slug="paris", name="Embassy in Paris", country_code="FR", parent_id=hq.id
        )
        w = World(hq=hq.id, berlin=berlin.id, paris=paris.id)
        b = w.b

        # -------------------------------------------------------------- staff and tokens
        admin = _user(s, digest, "hq-admin@mfa.example", "HQ admin")
        accounts.grant_role(db=s, user_id=admin.id, mission_id=hq.id, role="admin")
        w.hq_admin = admin.email
        w.hq_admin_id = admin.id
        w.tokens["hq_admin"] = accounts.create_api_token(db=s, user_id=admin.id, name="hq")[1]
        for role in STAFF_ROLES:
            user = _user(s, digest, f"paris-{role}@mfa.example", f"Paris {role}")
            accounts.grant_role(db=s, user_id=user.id, mission_id=paris.id, role=role)
            w.paris_staff[role] = user.email
            w.tokens[role] = accounts.create_api_token(db=s, user_id=user.id, name=role)[1]
        officer = _user(s, digest, "canary-berlin-7f3a-staff@mfa.example", f"{CANARY} officer")
        grant = accounts.grant_role(db=s, user_id=officer.id, mission_id=berlin.id, role="admin")
        accounts.grant_role(db=s, user_id=officer.id, mission_id=berlin.id, role="consular")
        token_row, _ = accounts.create_api_token(db=s, user_id=officer.id, name=f"{CANARY} token")
        b.update(user=officer.id, user_email=officer.email, grant=grant.id, api_token=token_row.id)

        # -------------------------------------------------------------- listen
        shared = Source(connector="rss", name="Ministry-wide feed", config={}, cursor={})
        source = Source(
            mission_id=berlin.id,
            connector="rss",
            name=f"{CANARY} feed",
            config={"url": "https://canary-berlin-7f3a.example/feed"},
            cursor={},
            every_minutes=60,
            last_error=f"{CANARY} timed out",
        )
        author = Author(platform="rss", handle="canary-berlin-7f3a", name=f"{CANARY} author")
        s.add_all([shared, source, author])
        s.flush()
        post = Post(
            source_id=source.id,
            platform="rss",
            external_id="canary-berlin-1",
            connector="rss",
            url="https://canary-berlin-7f3a.example/1",
            author_id=author.id,
            author_handle=author.handle,
            author_name=author.name,
            title=f"{CANARY} title",
            text=f"{CANARY} says Kazakhstan and Germany signed a treaty",
            lang="en",
            published_at=now - timedelta(hours=6),
            collected_at=now - timedelta(hours=6),
            metrics={},
            extra={},
            raw={"text": CANARY},
        )
        s.add(post)
        s.add(
            Post(
                source_id=shared.id,
                platform="rss",
                external_id="shared-1",
                connector="rss",
                text="A ministry-wide post about a Kazakhstan treaty",
                lang="en",
                published_at=now - timedelta(hours=5),
                collected_at=now,
                metrics={},
                extra={},
            )
        )
        s.flush()
        if s.get_bind().dialect.name == "sqlite":  # PostgreSQL's trigger indexes the text
            for p in s.scalars(select(Post)):
                s.connection().exec_driver_sql(
                    "INSERT INTO post_fts(rowid, title, body, author) VALUES (?, ?, ?, ?)",
                    (
                        p.id,
                        index_text(p.title),
                        index_text(p.text),
                        " ".join(filter(None, (p.author_handle, p.author_name))),
                    ),
                )
        s.add_all(
            [
                Annotation(
                    post_id=post.id,
                    enricher="sentiment",
                    version="1",
                    label="negative",
                    score=0.9,
                    value={"evidence": [[CANARY_LOWER, -0.5]]},
                ),
                Annotation(
                    post_id=post.id,
                    enricher="entities",
                    version="1",
                    label="country:DE",
                    value={"ids": ["country:DE", "country:KZ"], "mentions": []},
                ),
                Annotation(
                    post_id=post.id,
                    enricher="narratives",
                    version="1",
                    label=str(NARRATIVE_ID),
                    score=0.8,
                    value={},
                ),
                Quarantine(
                    source_id=source.id,
                    connector="rss",
                    origin="https://canary-berlin-7f3a.example/feed",
                    location="item 3",
                    reason=f"{CANARY} has no date",
                    raw=f"<item>{CANARY}</item>",
                ),
                NarrativeRow(
                    id=NARRATIVE_ID,
                    count=1,
                    first_seen=post.published_at,
                    last_seen=post.published_at,
                    langs={"en": 1},
                    terms=[CANARY_LOWER],
                    terms_by_lang={"en": [CANARY_LOWER]},
                    hours={str(int(now.timestamp()) // 3600): 1},
                    backend="test",
                    state={},
                ),
            ]
        )
        b.update(source=source.id, post=post.id, author=author.id, narrative=NARRATIVE_ID)

        # -------------------------------------------------------------- coordination
        # A second account posts the canary's text 20 seconds later: a group of two.
        echo = Author(platform="rss", handle="canary-echo-7f3a", name=f"{CANARY} echo")
        s.add(echo)
        s.flush()
        echoed = Post(
            source_id=source.id,
            platform="rss",
            external_id="canary-berlin-2",
            connector="rss",
            author_id=echo.id,
            author_handle=echo.handle,
            text=post.text,
            lang="en",
            published_at=post.published_at + timedelta(seconds=20),
            collected_at=now,
            metrics={},
            extra={},
        )
        s.add(echoed)
        s.flush()
        group = CoGroup(
            size=2,
            edges=2,
            weight=2,
            symmetry=1.0,
            speed_share=0.0,
            platforms=["rss"],
            languages=["en"],
            kinds={"text": 2},
            first_at=post.published_at,
            last_at=echoed.published_at,
            top={"texts": [[post.text, 2]], "links": [], "hashtags": []},
        )
        s.add(group)
        s.flush()
        s.add_all(
            [
                CoAction(kind="text", post_id=post.id, author_id=author.id, partner_id=echo.id),
                CoAction(kind="text", post_id=echoed.id, author_id=echo.id, partner_id=author.id),
                CoGroupMember(group_id=group.id, author_id=author.id, degree=2),
                CoGroupMember(group_id=group.id, author_id=echo.id, degree=2),
            ]
        )
        b.update(group=group.id)

        # -------------------------------------------------------------- actors
        # Berlin's two accounts as one actor, an assessment of one, and a ministry-wide list.
        actor = Actor(name=f"{CANARY} actor")
        s.add(actor)
        s.flush()
        s.add_all(
            [
                ActorAccount(author_id=author.id, actor_id=actor.id),
                ActorAccount(author_id=echo.id, actor_id=actor.id),
                AccountAssessment(
                    author_id=echo.id,
                    auto_type=None,
                    reason={},
                    score=0.2,
                    signals=[
                        {
                            "key": "coordination",
                            "fired": True,
                            "known": True,
                            "weight": 0.2,
                            "evidence": {"groups": [{"id": group.id, "size": 2}]},
                        }
                    ],
                    posts=1,
                ),
            ]
        )
        actor_list = ActorList(name="Ministry list", filename="list.csv", entries=1)
        s.add(actor_list)
        s.flush()
        s.add(
            ActorListEntry(
                list_id=actor_list.id, platform="rss", handle="someone", actor_type="journalist"
            )
        )
        b.update(actor=actor.id, actor_list=actor_list.id)

        # -------------------------------------------------------------- workspace, alerts
        watch = Watch(
            mission_id=berlin.id,
            name=f"{CANARY} watch",
            description=f"{CANARY} description",
            terms=[{"name": CANARY_LOWER, "aliases": []}],
            context_terms=[],
            processed_to=post.id,
        )
        s.add(watch)
        s.flush()
        day = post.published_at.date()
        s.add_all(
            [
                WatchMatch(
                    watch_id=watch.id,
                    post_id=post.id,
                    published_at=post.published_at,
                    day=day,
                    lang="en",
                    platform="rss",
                    source_id=source.id,
                    author_id=author.id,
                    sentiment="negative",
                    why={"terms": [CANARY_LOWER]},
                    entities=["country:DE"],
                ),
                WatchDaily(
                    watch_id=watch.id,
                    day=day,
                    lang="en",
                    platform="rss",
                    source_id=source.id,
                    n=1,
                    neg=1,
                ),
                KnownEvent(
                    mission_id=berlin.id, watch_id=watch.id, day=today, title=f"{CANARY} visit"
                ),
                SavedSearch(
                    token="canarysearch7f3a",
                    mission_id=berlin.id,
                    user_id=officer.id,
                    name=f"{CANARY} search",
                    params={"q": CANARY_LOWER},
                ),
            ]
        )
        rule = AlertRule(
            watch_id=watch.id,
            kind="term",
            name=f"{CANARY} rule",
            params={"terms": [CANARY_LOWER]},
            targets={"emails": ["canary-berlin-7f3a-alerts@example.org"]},
        )
        s.add(rule)
        s.flush()
        alert = Alert(
            rule_id=rule.id,
            watch_id=watch.id,
            mission_id=berlin.id,
            kind="term",
            key="canary",
            summary=f"{CANARY} appeared",
            why={"terms": [CANARY_LOWER]},
            post_ids=[post.id],
        )
        s.add(alert)
        s.flush()
        delivery = AlertDelivery(
            alert_id=alert.id,
            channel="email",
            target="canary-berlin-7f3a-alerts@example.org",
            status="failed",
            attempts=3,
            last_error=f"{CANARY} mail server down",
        )
        s.add_all(
            [
                delivery,
                AlertComment(
                    alert_id=alert.id, user_id=officer.id, author=officer.email, text=CANARY
                ),
            ]
        )
        s.flush()
        b.update(
            watch=watch.id,
            rule=rule.id,
            alert=alert.id,
            delivery=delivery.id,
            saved="canarysearch7f3a",
        )

        # -------------------------------------------------------------- outgoing messages
        to = "canary-berlin-7f3a-outbox@example.org"
        message = OutboxMessage(
            key="outbox-canary-berlin-7f3a",
            channel="email",
            recipient=to,
            payload=Outgoing(
                medium="email", to=to, subject=f"{CANARY} subject", text=f"{CANARY} text"
            ).as_dict(),
            mission_id=berlin.id,
            status="failed",
            attempts=8,
            last_error=f"{CANARY} mailbox full",
        )
        s.add(message)
        s.flush()
        b["outbox"] = message.id

        # -------------------------------------------------------------- speak
        account = speak.add_account(
            db=s,
            actor=Principal.system(),
            settings=settings,
            mission_id=berlin.id,
            channel="web",
            name=f"{CANARY} news page",
            config={},
            secrets={},
        )
        checked = media.check_image(
            data=_png(),
            filename="canary.png",
            alt=f"{CANARY} picture",
            max_bytes=5_000_000,
        )
        key = media.store(settings, checked)
        statement = Statement(
            mission_id=berlin.id,
            title=f"{CANARY} statement",
            status="submitted",
            created_by=officer.id,
            submitted_by=officer.id,
            submitted_at=now,
            scheduled_at=now,
            topic_query=CANARY_LOWER,
        )
        s.add(statement)
        s.flush()
        english = StatementVersion(
            statement_id=statement.id,
            lang="en",
            headline=f"{CANARY} headline",
            text=f"{CANARY} statement text",
            media=[media.entry(key, checked, f"{CANARY} picture")],
            updated_by=officer.id,
        )
        russian = StatementVersion(
            statement_id=statement.id,
            lang="ru",
            headline=f"{CANARY} заголовок",
            text=f"{CANARY} текст",
            source_lang="en",
            updated_by=officer.id,
        )
        s.add_all([english, russian])
        s.flush()
        publication = Publication(
            statement_id=statement.id,
            version_id=english.id,
            account_id=account.id,
            channel="web",
            lang="en",
            text=f"{CANARY} statement text",
            idempotency_key=uuid.uuid4().hex,
            status="failed",
            error_kind="rejected",
            error=f"{CANARY} refused",
        )
        s.add(publication)
        sub, confirm = speak.subscribe(
            db=s, mission_id=berlin.id, email="canary-berlin-7f3a-news@example.org", lang="en"
        )
        s.flush()
        b.update(
            statement=statement.id,
            lang="en",
            image=key,
            publication=publication.id,
            account=account.id,
            confirm=confirm,
            unsubscribe=speak.unsubscribe_url(settings, sub.id).rsplit("/", 1)[1],
        )

        # -------------------------------------------------------------- e-consulate
        citizen = consulate.create_citizen(
            db=s,
            email="canary-berlin-7f3a@example.org",
            password=PASSWORD,
            name=f"{CANARY} citizen",
            phone="+49301234567",
        )
        citizen.email_verified_at = now
        kinds = {
            spec.slug: consulate.upsert_service(
                db=s, mission_id=berlin.id, spec=spec.model_dump()
            ).id
            for spec in DEFAULT_CATALOGUE
        }
        for spec in DEFAULT_CATALOGUE:
            consulate.upsert_service(db=s, mission_id=paris.id, spec=spec.model_dump())
        stay = Registration(
            citizen_id=citizen.id,
            mission_id=berlin.id,
            country_code="DE",
            city="Berlin",
            region="Berlin",
            address=f"{CANARY} Strasse 1",
            arrive_on=today - timedelta(days=2),
            leave_on=today + timedelta(days=30),
            phone="+49301234567",
            emergency_contact=f"{CANARY} contact",
            companions=[{"name": f"{CANARY} child"}],
        )
        request = ServiceRequest(
            reference=CANARY,  # 18 characters: the queue shows references
            citizen_id=citizen.id,
            mission_id=berlin.id,
            service_type_id=kinds["visa"],
            status="submitted",
            answers={"full_name": f"{CANARY} applicant", "notes": CANARY},
            submitted_at=now,
        )
        s.add_all([stay, request])
        s.flush()
        data = f"%PDF-1.4\n% {CANARY}\n".encode()
        doc = Document(
            request_id=request.id,
            citizen_id=citizen.id,
            kind="passport",
            filename="canary-berlin-7f3a.pdf",
            content_type="application/pdf",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            storage_key=documents.store(settings.uploads_path, data),
        )
        booked = Slot(
            mission_id=berlin.id,
            starts_at=now.replace(microsecond=0) + timedelta(days=2),
            minutes=15,
            capacity=1,
            booked=1,
        )
        free = Slot(
            mission_id=berlin.id,
            starts_at=now.replace(microsecond=0) + timedelta(days=3),
            minutes=15,
            capacity=2,
            booked=0,
        )
        s.add_all(
            [
                doc,
                booked,
                free,
                Message(
                    request_id=request.id,
                    sender_kind="citizen",
                    sender_id=citizen.id,
                    sender_label=citizen.name,
                    body=f"{CANARY} message",
                ),
                RequestEvent(
                    request_id=request.id,
                    actor_kind="citizen",
                    actor_id=citizen.id,
                    actor_label=citizen.name,
                    action="submit",
                    from_status="draft",
                    to_status="submitted",
                    note=CANARY,
                ),
            ]
        )
        s.flush()
        appointment = Appointment(
            slot_id=booked.id, citizen_id=citizen.id, request_id=request.id, status="booked"
        )
        s.add(appointment)
        s.flush()
        b.update(
            citizen=citizen.id,
            registration=stay.id,
            service_type=kinds["visa"],
            request=request.id,
            document=doc.id,
            appointment=appointment.id,
            slot=booked.id,
            free_slot=free.id,
            slot_day=booked.starts_at.date().isoformat(),
        )

        # -------------------------------------------------------------- crisis
        crisis = Crisis(
            mission_id=berlin.id,
            title=f"{CANARY} crisis",
            area={"cities": ["Berlin"]},
            audience="present",
            created_by=officer.id,
        )
        s.add(crisis)
        s.flush()
        broadcast = Broadcast(
            crisis_id=crisis.id,
            messages={"en": {"subject": CANARY, "text": f"{CANARY} stay inside", "sms": "x"}},
            created_by=officer.id,
        )
        recipient = Recipient(
            crisis_id=crisis.id,
            citizen_id=citizen.id,
            registration_id=stay.id,
            name=citizen.name,
            email=citizen.email,
            phone=citizen.phone,
            city="Berlin",
            officer_note=f"{CANARY} note",
        )
        s.add_all([broadcast, recipient])
        s.flush()
        s.add_all(
            [
                CrisisDelivery(
                    broadcast_id=broadcast.id, recipient_id=recipient.id, channel="email"
                ),
                CheckIn(
                    crisis_id=crisis.id,
                    recipient_id=recipient.id,
                    answer="help",
                    note=f"{CANARY} needs insulin",
                    latitude=52.52,
                    longitude=13.40,
                    nonce="canary",
                ),
                WalkIn(
                    crisis_id=crisis.id,
                    name=f"{CANARY} walk-in",
                    email="canary-berlin-7f3a-walkin@example.org",
                    city="Berlin",
                    note=CANARY,
                ),
                PushSubscription(
                    citizen_id=citizen.id,
                    endpoint="https://push.example/canary-berlin-7f3a",
                    p256dh="x",
                    auth="y",
                ),
            ]
        )
        b.update(
            crisis=crisis.id,
            broadcast=broadcast.id,
            recipient=recipient.id,
            checkin=crisis_service.checkin_token(
                key=crypto.purpose_key(settings, crypto.CHECKIN),
                crisis_id=crisis.id,
                recipient_id=recipient.id,
            ),
        )

        # -------------------------------------------------------------- Paris's own citizen
        paris_citizen = consulate.create_citizen(
            db=s, email="paris-citizen@example.org", password=PASSWORD, name="Paris Citizen"
        )
        paris_citizen.email_verified_at = now
        s.add(
            Registration(
                citizen_id=paris_citizen.id,
                mission_id=paris.id,
                country_code="FR",
                city="Paris",
                arrive_on=today,
                leave_on=today + timedelta(days=10),
            )
        )
        w.paris_citizen = paris_citizen.email
        s.flush()
        w.paris_citizen_id = paris_citizen.id

        # -------------------------------------------------------------- Paris's own objects
        # Their pages list sources, narratives, posts: none of Berlin's may appear there.
        press = s.scalar(select(User.id).where(User.email == w.paris_staff["press"]))
        pwatch = Watch(
            mission_id=paris.id,
            name="Paris watch",
            terms=[{"name": "treaty", "aliases": []}],
            context_terms=[],
            processed_to=0,
        )
        pstatement = Statement(
            mission_id=paris.id,
            title="Paris statement",
            created_by=press,
            topic_query="treaty",
            narrative_id=NARRATIVE_ID,
            scheduled_at=now,
        )
        pcrisis = Crisis(
            mission_id=paris.id, title="Paris flood", area={"cities": ["Paris"]}, created_by=press
        )
        prequest = ServiceRequest(
            reference="PAR-0001",
            citizen_id=paris_citizen.id,
            mission_id=paris.id,
            service_type_id=s.scalar(
                select(ServiceType.id).where(
                    ServiceType.mission_id == paris.id, ServiceType.slug == "visa"
                )
            ),
            status="submitted",
            answers={"full_name": "Paris Applicant"},
            submitted_at=now,
        )
        s.add_all([pwatch, pstatement, pcrisis, prequest])
        s.flush()
        s.add_all(
            [
                StatementVersion(statement_id=pstatement.id, lang="en", text="Paris text"),
                Recipient(
                    crisis_id=pcrisis.id,
                    citizen_id=paris_citizen.id,
                    name=paris_citizen.name,
                    email=paris_citizen.email,
                    city="Paris",
                ),
                AlertRule(
                    watch_id=pwatch.id,
                    kind="narrative_growth",
                    name="Paris narratives",
                    params={"growth": 1.0, "min_posts": 1, "last_sizes": {str(NARRATIVE_ID): 1}},
                    targets={},
                ),
                # Past its start (no group seen): any group of two would alert.
                AlertRule(
                    watch_id=pwatch.id,
                    kind="coordinated_group",
                    name="Paris groups",
                    params={
                        "min_size": 2,
                        "growth_percent": 1.0,
                        "growth_accounts": 1,
                        "groups": {},
                    },
                    targets={},
                ),
            ]
        )
        w.p.update(watch=pwatch.id, statement=pstatement.id, crisis=pcrisis.id, request=prequest.id)
    process_posts(db)
    with db.session() as s:  # Paris's rules look at the narratives and groups it may see
        evaluate_rules(s, kinds=("narrative_growth", "coordinated_group"))
    with db.engine.connect() as conn:
        w.owned = _owned(conn, berlin=w.berlin)
    return w


# ---------------------------------------------------------------------------- Berlin's rows


def _tables() -> list[Any]:
    return [t for t in Base.metadata.sorted_tables if t.name not in SKIP_TABLES]


def _pk(table: Any) -> Any:
    cols = list(table.primary_key.columns)
    assert len(cols) == 1, table.name
    return cols[0]


def _has_canary(row: Any) -> bool:
    return any(CANARY_LOWER in str(v).lower() for v in row if v is not None)


def _owned(conn: Connection, *, berlin: int) -> dict[str, set[Any]]:
    """Return the primary keys of Berlin's rows: rows of Berlin's mission, rows carrying the
    canary, and (repeatedly) rows that refer to one of those."""
    rows = {t.name: list(conn.execute(select(t)).mappings()) for t in _tables()}
    owned: dict[str, set[Any]] = {}
    for t in _tables():
        pk = _pk(t).name
        owned[t.name] = {
            r[pk]
            for r in rows[t.name]
            if t.name != "mission"
            and (("mission_id" in r and r["mission_id"] == berlin) or _has_canary(r.values()))
        }
    changed = True
    while changed:
        changed = False
        for t in _tables():
            pk = _pk(t).name
            for fk in t.foreign_keys:
                parent = fk.column.table.name
                if parent in ("mission",) or parent not in owned:
                    continue
                for r in rows[t.name]:
                    if r[fk.parent.name] in owned[parent] and r[pk] not in owned[t.name]:
                        owned[t.name].add(r[pk])
                        changed = True
    return {name: keys for name, keys in owned.items() if keys}


def snapshot(
    conn: Connection, world: World, *, own_citizen: int | None = None
) -> dict[tuple[str, Any], tuple[Any, ...]]:
    """Return Berlin's rows now: those built for Berlin, and new rows of Berlin's mission or
    referring to one built for Berlin (a caller's own new rows as a citizen are left out)."""
    out: dict[tuple[str, Any], tuple[Any, ...]] = {}
    for t in _tables():
        pk = _pk(t)
        conds = []
        if world.owned.get(t.name):
            conds.append(pk.in_(world.owned[t.name]))
        if "mission_id" in t.c and t.name != "mission":
            conds.append(t.c.mission_id == world.berlin)
        for fk in t.foreign_keys:
            parent = fk.column.table.name
            if parent != "mission" and world.owned.get(parent):
                conds.append(fk.parent.in_(world.owned[parent]))
        if not conds:
            continue
        skip = VOLATILE.get(t.name, set())
        for r in conn.execute(select(t).where(or_(*conds))).mappings():
            key = r[pk.name]
            if (
                own_citizen is not None
                and r.get("citizen_id") == own_citizen
                and key not in world.owned.get(t.name, ())
            ):
                continue
            out[(t.name, key)] = tuple(str(v) for k, v in r.items() if k not in skip)
    return out


def changes(
    before: dict[tuple[str, Any], tuple[Any, ...]], after: dict[tuple[str, Any], tuple[Any, ...]]
) -> list[str]:
    """Describe what differs between two snapshots: 'table#id added/removed/changed'."""
    out = []
    for key in sorted(set(before) | set(after), key=str):
        if key not in before:
            out.append(f"{key[0]}#{key[1]} added")
        elif key not in after:
            out.append(f"{key[0]}#{key[1]} removed")
        elif before[key] != after[key]:
            out.append(f"{key[0]}#{key[1]} changed")
    return out


# ---------------------------------------------------------------------------- databases


def clear_env(mp: pytest.MonkeyPatch) -> None:
    """Drop ELSHI_* settings of the environment (the test ones stay)."""
    for key in list(os.environ):
        kept = key.startswith("ELSHI_TEST") or key == "ELSHI_SHARED_DATA"
        if key.startswith("ELSHI_") and not kept:
            mp.delenv(key, raising=False)


def settings_for(home: Path, url: str) -> Settings:
    """Settings with this home and database, read the way the app reads them."""
    with pytest.MonkeyPatch.context() as mp:
        clear_env(mp)
        mp.setenv("ELSHI_HOME", str(home))
        mp.setenv("ELSHI_DATABASE_URL", url)
        mp.setenv("ELSHI_DEMO", "1")
        mp.setenv("ELSHI_SMTP_HOST", "127.0.0.1")
        mp.setenv("ELSHI_SMTP_PORT", "9")  # discard: nothing listens, mail fails at once
        return load_settings()


@dataclass
class Template:
    """The built world, ready to be copied for each caller."""

    world: World
    home: Path
    url: str
    backend: str
    admin_url: str = ""
    made: list[str] = field(default_factory=list)

    @contextmanager
    def copy(self, folder: Path) -> Iterator[Settings]:
        """Yield settings of a fresh copy of the world (database and files) in `folder`."""
        home = folder / "home"
        shutil.copytree(self.home, home)
        if self.backend == "sqlite":
            yield settings_for(home, f"sqlite:///{home / 'world.db'}")
            return
        name = f"elshi_w_{uuid.uuid4().hex[:10]}"
        template = make_url(self.url).database
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        url = make_url(self.url).set(database=name).render_as_string(hide_password=False)
        try:
            yield settings_for(home, url)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


@contextmanager
def template(
    folder: Path, *, backend: str, sqlite_template: Path, pg_admin: str
) -> Iterator[Template]:
    """Build the world once in `folder` (SQLite) or in a database of its own (PostgreSQL)."""
    home = folder / "world"
    home.mkdir(parents=True)
    if backend == "sqlite":
        shutil.copy(sqlite_template, home / "world.db")
        url = f"sqlite:///{home / 'world.db'}"
        admin_url = ""
    else:
        admin_url = pg_admin
        name = f"elshi_world_{uuid.uuid4().hex[:10]}"
        admin = create_engine(pg_admin, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = make_url(pg_admin).set(database=name).render_as_string(hide_password=False)
        engine = create_engine(url)
        migrate(engine)
        engine.dispose()
    settings = settings_for(home, url)
    db = Database(settings)
    try:
        world = build(db, settings)
    finally:
        db.dispose()
    try:
        yield Template(world=world, home=home, url=url, backend=backend, admin_url=admin_url)
    finally:
        if backend != "sqlite":
            admin = create_engine(pg_admin, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(
                    text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
                )
            admin.dispose()
