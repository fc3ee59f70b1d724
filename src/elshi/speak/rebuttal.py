"""The rebuttal view: what was said about a topic before and after a statement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from elshi.accounts.service import Principal, authorize
from elshi.db import utcnow
from elshi.speak.models import (
    Publication,
    Statement,
)
from elshi.speak.service import SpeakError, _audit, get_statement
from elshi.web.i18n import N_

# ---------------------------------------------------------------------------- rebuttal


@dataclass
class Period:
    """Volume and negative share of a topic's posts in one window."""

    start: datetime
    end: datetime
    volume: int
    negative: int
    scored: int
    daily: list[tuple[date, int]]

    @property
    def negative_share(self) -> float | None:
        """Return the share of scored posts that are negative, or None when none are scored."""
        return self.negative / self.scored if self.scored else None

    @property
    def per_day(self) -> float:
        """Return the mean posts per day in the window."""
        days = max((self.end - self.start).total_seconds() / 86400, 1 / 24)
        return self.volume / days


@dataclass
class Rebuttal:
    """A topic's posts before and after the statement answering it went out."""

    query: str
    narrative_id: int | None
    answered_at: datetime
    before: Period
    after: Period


def _period(
    db: Session, query: str, start: datetime, end: datetime, mission_ids: frozenset[int] | None
) -> Period:
    from elshi.listen.models import Annotation, Post
    from elshi.listen.service import SearchQuery, match_conditions

    conds = match_conditions(
        db=db, query=SearchQuery(q=query, since=start, until=end, mission_ids=mission_ids)
    )
    where = and_(*conds)
    volume = db.scalar(select(func.count()).select_from(Post).where(where)) or 0
    sentiment = (
        select(Annotation.label, func.count())
        .join(Post, Post.id == Annotation.post_id)
        .where(where, Annotation.enricher == "sentiment")
        .group_by(Annotation.label)
    )
    counts = {label: n for label, n in db.execute(sentiment)}
    day = func.date(Post.published_at)
    daily_rows = db.execute(select(day, func.count()).where(where).group_by(day).order_by(day))
    daily = [(d if isinstance(d, date) else date.fromisoformat(str(d)), n) for d, n in daily_rows]
    return Period(
        start=start,
        end=end,
        volume=volume,
        negative=counts.get("negative", 0),
        scored=sum(counts.values()),
        daily=daily,
    )


def rebuttal(
    *, db: Session, actor: Principal, statement_id: int, days: int = 3, now: datetime | None = None
) -> Rebuttal | None:
    """Return the answered topic's volume and negative share before and after the answer."""
    st = get_statement(db=db, actor=actor, statement_id=statement_id)
    if not st.topic_query:
        return None
    first_sent = db.scalar(
        select(func.min(Publication.sent_at)).where(
            Publication.statement_id == st.id, Publication.status == "sent"
        )
    )
    now = now or utcnow()
    answered = first_sent or st.scheduled_at or now
    window = timedelta(days=max(1, min(days, 90)))
    mission_ids = actor.missions_where("listen.read")
    return Rebuttal(
        query=st.topic_query,
        narrative_id=st.narrative_id,
        answered_at=answered,
        before=_period(db, st.topic_query, answered - window, answered, mission_ids),
        after=_period(db, st.topic_query, answered, min(answered + window, now), mission_ids),
    )


def link_topic(
    *,
    db: Session,
    actor: Principal,
    statement_id: int,
    query: str,
    narrative_id: int | None = None,
) -> Statement:
    """Link a statement to the Listen topic (search) it answers."""
    st = get_statement(db=db, actor=actor, statement_id=statement_id)
    authorize(actor, "speak.draft", mission_id=st.mission_id)
    query = query.strip()
    if len(query) > 500:
        raise SpeakError(N_("Topic search: at most 500 characters."))
    st.topic_query = query or None
    st.narrative_id = narrative_id
    _audit(db, actor, "statement.topic", st, narrative_id=narrative_id)
    return st


__all__ = ["Period", "Rebuttal", "link_topic", "rebuttal"]
