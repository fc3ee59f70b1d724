"""Load the generated demo corpus, an HQ mission, an embassy, its staff and citizens.

The posts come from the demo connector; the embassy's people, requests, appointments and a
past crisis from `elshi.demo.people`; a small imported list of accounts and the accounts'
types and signals from `elshi.demo.actors`.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session

from elshi.accounts import service as accounts
from elshi.connectors.base import FetchContext
from elshi.db import Database, utcnow
from elshi.listen import service as listen
from elshi.listen.flows import Progress, run_source
from elshi.listen.models import Source
from elshi.missions import service as missions
from elshi.settings import Settings
from elshi.watch.flows import seed_demo_watches

DEMO_EMAIL = "admin@demo.elshi.example"


def _demo_consulate(s: Session, mission_id: int) -> None:
    """Give the demo embassy the default service catalogue and a week of appointment slots."""
    from elshi.consulate import service as consulate
    from elshi.consulate.models import Slot
    from elshi.consulate.schemas import DEFAULT_CATALOGUE

    if consulate.services(db=s, mission_id=mission_id):
        return
    for spec in DEFAULT_CATALOGUE:
        consulate.upsert_service(db=s, mission_id=mission_id, spec=spec.model_dump())
    today = utcnow().date()
    for day in range(1, 8):
        start = datetime.combine(today + timedelta(days=day), time(9, 0), UTC)
        if start.weekday() < 5:
            s.add_all(
                Slot(
                    mission_id=mission_id,
                    starts_at=start + timedelta(minutes=30 * i),
                    minutes=30,
                    capacity=2,
                    booked=0,
                )
                for i in range(8)
            )


def load_demo(
    db: Database, *, settings: Settings, posts: int = 3000, progress: Progress | None = None
) -> dict[str, Any]:
    """Load demo data once; running it again adds nothing new."""
    password = None
    with db.session() as s:
        hq = missions.ensure_hq(db=s)
        embassy = missions.get_mission(db=s, slug="berlin") or missions.create_mission(
            db=s,
            slug="berlin",
            name="Embassy in Berlin",
            kind="embassy",
            country_code="DE",
            parent_id=hq.id,
            timezone="Europe/Berlin",
            emergency_phone="+49 30 555 0100",
        )
        if accounts.get_user(db=s, email=DEMO_EMAIL) is None:
            password = secrets.token_urlsafe(12)
            user = accounts.create_user(
                db=s, email=DEMO_EMAIL, password=password, name="Demo admin"
            )
            accounts.grant_role(db=s, user_id=user.id, mission_id=hq.id, role="admin")
        _demo_consulate(s, embassy.id)
        source = s.query(Source).filter_by(connector="demo").first()
        if source is None:
            source = listen.add_source(
                db=s,
                connector="demo",
                config={"count": posts},
                name="Demo corpus",
                mission_id=embassy.id,
            )
        source_id = source.id
        hq_slug = embassy.slug
        embassy_id = embassy.id
    ctx = FetchContext(settings=settings)
    report = run_source(db, source_id=source_id, ctx=ctx, progress=progress)
    with db.session() as s:
        seed_demo_watches(db=s, mission_id=embassy_id)
    from sqlalchemy import func, select

    from elshi.listen.models import Post

    with db.session() as s:
        total = s.scalar(select(func.count()).select_from(Post)) or 0
        embassy_id = s.scalar(select(Source.mission_id).where(Source.id == source_id))
    people: dict[str, Any] = {}
    if embassy_id is not None:
        demo_statement(db, settings=settings, mission_id=embassy_id)
        from elshi.demo.people import seed_past_crisis, seed_people

        people = seed_people(db, settings=settings, mission_id=embassy_id, password=password)
        seed_past_crisis(db, mission_id=embassy_id)
    from elshi.demo.actors import seed_actors

    assessed = seed_actors(db)
    return {
        "posts": total,
        "stored": report.stored,
        "mission": hq_slug,
        "email": DEMO_EMAIL,
        "password": password,
        "citizens": people.get("citizens", 0),
        "typed": assessed["typed"],
    }


DEMO_TOPIC = "төтенше жағдай"
DEMO_STATEMENT = {
    "kk": "Елшілік хабарлайды: азаматтарға қауіп жоқ, консулдық қызмет әдеттегідей жұмыс істейді. "
    "Ресми ақпаратты тек елшілік арналарынан алыңыз.",
    "ru": "Посольство сообщает: угрозы гражданам нет, консульская служба работает в обычном "
    "режиме. Официальная информация только в каналах посольства.",
    "en": "The Embassy reports: citizens are not in danger and consular services work as usual. "
    "Official information comes only from the Embassy's channels.",
}


def demo_statement(db: Database, *, settings: Settings, mission_id: int) -> int | None:
    """Add one published statement answering a demo rumour, once, for the rebuttal view."""
    from sqlalchemy import func, select

    from elshi.accounts.service import Principal
    from elshi.listen.models import Post
    from elshi.listen.service import SearchQuery, match_conditions
    from elshi.speak import flows as speak_flows
    from elshi.speak import service as speak
    from elshi.speak.channels.base import ChannelContext
    from elshi.speak.models import Publication, Statement

    actor = Principal.system("demo")
    with db.session() as s:
        if s.scalar(select(func.count()).select_from(Statement)):
            return None
        where = match_conditions(db=s, query=SearchQuery(q=DEMO_TOPIC))
        first, last = s.execute(
            select(func.min(Post.published_at), func.max(Post.published_at)).where(*where)
        ).one()
        if first is None or last is None:
            return None
        account = speak.add_account(
            db=s,
            actor=actor,
            settings=settings,
            mission_id=mission_id,
            channel="web",
            name="News page",
            config={},
            secrets={},
        )
        st = speak.create_statement(
            db=s,
            actor=actor,
            mission_id=mission_id,
            title="No danger to citizens",
            lang="kk",
            text=DEMO_STATEMENT["kk"],
            headline="Азаматтарға қауіп жоқ",
            urgent=False,
            topic_query=DEMO_TOPIC,
        )
        for lang in ("ru", "en"):
            speak.save_version(
                db=s, actor=actor, statement_id=st.id, lang=lang, text=DEMO_STATEMENT[lang]
            )
        speak.submit(db=s, actor=actor, statement_id=st.id)
        speak.decide(db=s, actor=actor, statement_id=st.id, approve=True)
        speak.schedule(db=s, actor=actor, statement_id=st.id, account_ids=[account.id])
        statement_id, answered = st.id, first + (last - first) / 2
    ctx = ChannelContext(settings=settings, db=db)
    speak_flows.publish_statement(db, actor=actor, statement_id=statement_id, ctx=ctx)
    with db.session() as s:
        # Demo posts span past weeks: date the answer in their middle so "before" and
        # "after" both have posts.
        for pub in s.scalars(select(Publication).where(Publication.statement_id == statement_id)):
            pub.sent_at = answered
        answered_statement = s.get(Statement, statement_id)
        assert answered_statement is not None
        answered_statement.scheduled_at = answered
    return statement_id
