"""E-mail subscribers, the mission's public news items, and publications due to send."""

from __future__ import annotations

import hashlib
import secrets as pysecrets
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from elshi.accounts.service import audit
from elshi.crypto import UNSUBSCRIBE, untimed_signer
from elshi.db import utcnow
from elshi.missions.models import Mission
from elshi.settings import Settings
from elshi.speak.models import (
    Publication,
    Statement,
    StatementVersion,
    Subscriber,
)
from elshi.speak.service import _EMAIL, SpeakError
from elshi.speak.writing import _check_lang
from elshi.web.i18n import N_

# ---------------------------------------------------------------------------- subscribers


def _unsubscribe_signer(settings: Settings) -> URLSafeSerializer:
    return untimed_signer(settings, UNSUBSCRIBE, salt="elshi.unsubscribe")


def unsubscribe_url(settings: Settings, subscriber_id: int) -> str:
    """Return the signed link that ends one subscription."""
    token = _unsubscribe_signer(settings).dumps(subscriber_id)
    return f"{settings.base_url}/news-unsubscribe/{token}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def subscribe(
    *, db: Session, mission_id: int, email: str, lang: str
) -> tuple[Subscriber, str | None]:
    """Record a subscription request; return it and the confirmation token (None if confirmed)."""
    email = email.strip().lower()
    if len(email) > 320 or not _EMAIL.match(email):
        raise SpeakError(N_("This is not an e-mail address."))
    _check_lang(lang)
    sub = db.scalar(
        select(Subscriber).where(Subscriber.mission_id == mission_id, Subscriber.email == email)
    )
    token = pysecrets.token_urlsafe(24)
    if sub is None:
        sub = Subscriber(mission_id=mission_id, email=email, lang=lang, token_hash=_digest(token))
        db.add(sub)
    elif sub.confirmed_at is not None and sub.unsubscribed_at is None:
        sub.lang = lang
        return sub, None
    else:
        sub.token_hash, sub.lang, sub.unsubscribed_at = _digest(token), lang, None
        sub.confirmed_at = None
    db.flush()
    audit(
        db=db,
        action="subscriber.request",
        object_type="subscriber",
        object_id=sub.id,
        mission_id=mission_id,
    )
    return sub, token


def _audit(db: Session, sub: Subscriber, action: str) -> None:
    audit(
        db=db, action=action, object_type="subscriber", object_id=sub.id, mission_id=sub.mission_id
    )


def confirm_subscription(*, db: Session, token: str) -> Subscriber | None:
    """Confirm a subscription by the token from its e-mail (double opt-in)."""
    sub = db.scalar(select(Subscriber).where(Subscriber.token_hash == _digest(token)))
    if sub is None:
        return None
    if sub.confirmed_at is None:
        sub.confirmed_at = utcnow()
        _audit(db, sub, "subscriber.confirm")
    return sub


def unsubscribe(*, db: Session, settings: Settings, token: str) -> Subscriber | None:
    """End a subscription from its signed link."""
    try:
        sub_id = _unsubscribe_signer(settings).loads(token)
    except BadSignature:
        return None
    sub = db.get(Subscriber, sub_id) if isinstance(sub_id, int) else None
    if sub is not None and sub.unsubscribed_at is None:
        sub.unsubscribed_at = utcnow()
        _audit(db, sub, "subscriber.unsubscribe")
    return sub


def news_items(
    *, db: Session, mission_slug: str, lang: str, limit: int = 50
) -> tuple[Mission | None, list[tuple[Publication, StatementVersion]]]:
    """Return a mission's published web items in a language, newest first."""
    mission = db.scalar(select(Mission).where(Mission.slug == mission_slug))
    if mission is None:
        return None, []
    rows = db.execute(
        select(Publication, StatementVersion)
        .join(StatementVersion, StatementVersion.id == Publication.version_id)
        .join(Statement, Statement.id == Publication.statement_id)
        .where(
            Statement.mission_id == mission.id,
            Publication.channel == "web",
            Publication.status == "sent",
            Publication.lang == lang,
        )
        .order_by(Publication.sent_at.desc(), Publication.id.desc())
        .limit(limit)
    ).all()
    return mission, [(p, v) for p, v in rows]


def count_news_view(*, db: Session, publication_id: int) -> None:
    """Count one reading of a news item on the public page."""
    db.execute(
        update(Publication)
        .where(Publication.id == publication_id)
        .values(local_views=Publication.local_views + 1)
    )


def due_publications(
    *, db: Session, now: datetime, lease: timedelta
) -> tuple[list[int], list[int]]:
    """Return ids of publications due to send, and of ones claimed too long ago (stuck)."""
    due = list(
        db.scalars(
            select(Publication.id).where(
                Publication.status == "pending",
                Publication.due_at <= now,
                or_(Publication.retry_at.is_(None), Publication.retry_at <= now),
            )
        )
    )
    stuck = list(
        db.scalars(
            select(Publication.id).where(
                Publication.status == "sending", Publication.claimed_at < now - lease
            )
        )
    )
    return due, stuck


__all__ = [
    "_unsubscribe_signer",
    "confirm_subscription",
    "count_news_view",
    "due_publications",
    "news_items",
    "subscribe",
    "unsubscribe",
    "unsubscribe_url",
]
