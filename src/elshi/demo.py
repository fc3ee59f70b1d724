"""Load the generated demo corpus, an HQ mission, an embassy and a demo admin."""

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
    return {
        "posts": total,
        "stored": report.stored,
        "mission": hq_slug,
        "email": DEMO_EMAIL,
        "password": password,
    }
