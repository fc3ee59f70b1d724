"""What the daily digest says: per watch list the day against the week, the day's alerts,
notable authors and posts, narratives where they are stored, and what to watch tomorrow."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from elshi.accounts.models import RoleGrant, User
from elshi.alerts.models import Alert
from elshi.db import utcnow
from elshi.errors import NotFound
from elshi.forecast.service import Forecast, forecast_watch
from elshi.listen.models import Author, Post
from elshi.missions.models import Mission
from elshi.watch.models import KnownEvent, Watch, WatchDaily, WatchMatch
from elshi.watch.service import mission_view, top_narratives

#: Roles that receive the digest by e-mail.
READERS = ("admin", "ambassador", "analyst", "press")


class MissionNotFound(NotFound):
    """No mission with that slug."""


@dataclass
class WatchDay:
    """One watch list on the digest's day, against the seven days before."""

    watch: Watch
    posts: int
    week_mean: float
    against_share: float | None
    week_against_share: float | None
    top_posts: list[Post]
    forecast: Forecast | None

    @property
    def change(self) -> float | None:
        """Return the day's posts relative to the week's mean (0.5 = 50% more)."""
        return (self.posts / self.week_mean - 1) if self.week_mean else None


@dataclass
class Digest:
    """Everything one digest shows."""

    mission: Mission
    day: date
    lang: str
    watches: list[WatchDay]
    alerts: list[Alert]
    authors: list[tuple[Author, int]]
    narratives: list[dict[str, Any]] | None
    tomorrow_events: list[KnownEvent]
    made_at: datetime = field(default_factory=utcnow)

    @property
    def total(self) -> int:
        """Return the posts of all watch lists on the day (a post in two lists counts twice)."""
        return sum(w.posts for w in self.watches)


def get_mission(*, db: Session, slug: str) -> Mission:
    """Return a mission by slug or raise MissionNotFound."""
    mission = db.scalar(select(Mission).where(Mission.slug == slug))
    if mission is None:
        raise MissionNotFound(f"no mission {slug!r}")
    return mission


def latest_day(*, db: Session, mission_id: int) -> date:
    """Return yesterday, or the last day with posts when the mission's watch lists are quieter."""
    yesterday = utcnow().date() - timedelta(days=1)
    last = db.scalar(
        select(func.max(WatchDaily.day))
        .join(Watch, Watch.id == WatchDaily.watch_id)
        .where(Watch.mission_id == mission_id)
    )
    return yesterday if last is None or last >= yesterday else last


def _sums(db: Session, watch_id: int, since: date, until: date) -> tuple[int, int]:
    n, against = db.execute(
        select(func.sum(WatchDaily.n), func.sum(WatchDaily.against)).where(
            WatchDaily.watch_id == watch_id, WatchDaily.day >= since, WatchDaily.day <= until
        )
    ).one()
    return int(n or 0), int(against or 0)


def build(*, db: Session, mission: Mission, day: date, lang: str) -> Digest:
    """Collect the digest of one mission for one day."""
    start = datetime.combine(day, time.min, UTC)
    end = start + timedelta(days=1)
    rows = []
    watch_ids = []
    for w in db.scalars(select(Watch).where(Watch.mission_id == mission.id).order_by(Watch.name)):
        watch_ids.append(w.id)
        n, against = _sums(db, w.id, day, day)
        wn, wagainst = _sums(db, w.id, day - timedelta(days=7), day - timedelta(days=1))
        post_ids = list(
            db.scalars(
                select(WatchMatch.post_id)
                .where(WatchMatch.watch_id == w.id, WatchMatch.day == day)
                .order_by(WatchMatch.engagement.desc(), WatchMatch.post_id.desc())
                .limit(3)
            )
        )
        by_id = {p.id: p for p in db.scalars(select(Post).where(Post.id.in_(post_ids)))}
        rows.append(
            WatchDay(
                watch=w,
                posts=n,
                week_mean=wn / 7,
                against_share=against / n if n else None,
                week_against_share=wagainst / wn if wn else None,
                top_posts=[by_id[i] for i in post_ids if i in by_id],
                forecast=forecast_watch(db=db, watch=w, until=day),
            )
        )
    alerts = list(
        db.scalars(
            select(Alert)
            .where(Alert.mission_id == mission.id, Alert.fired_at >= start, Alert.fired_at < end)
            .order_by(Alert.fired_at)
        )
    )
    count = func.count(func.distinct(WatchMatch.post_id))
    author_rows = (
        db.execute(
            select(WatchMatch.author_id, count)
            .where(
                WatchMatch.watch_id.in_(watch_ids), WatchMatch.day == day, WatchMatch.author_id != 0
            )
            .group_by(WatchMatch.author_id)
            .order_by(count.desc())
            .limit(5)
        ).all()
        if watch_ids
        else []
    )
    authors = {
        a.id: a
        for a in db.scalars(select(Author).where(Author.id.in_([r[0] for r in author_rows])))
    }
    tomorrow = day + timedelta(days=1)
    events = list(
        db.scalars(
            select(KnownEvent)
            .where(KnownEvent.mission_id == mission.id, KnownEvent.day == tomorrow)
            .order_by(KnownEvent.id)
        )
    )
    return Digest(
        mission=mission,
        day=day,
        lang=lang,
        watches=rows,
        alerts=alerts,
        authors=[(authors[a], int(n)) for a, n in author_rows if a in authors],
        narratives=top_narratives(db=db, mission_ids=mission_view(db=db, mission_id=mission.id)),
        tomorrow_events=events,
    )


def readers(*, db: Session, mission_id: int) -> list[str]:
    """Return the e-mail addresses of the mission's active staff who read digests."""
    return sorted(
        set(
            db.scalars(
                select(User.email)
                .join(RoleGrant, RoleGrant.user_id == User.id)
                .where(
                    RoleGrant.mission_id == mission_id,
                    RoleGrant.role.in_(READERS),
                    User.is_active.is_(True),
                )
            )
        )
    )


def missions_with_watches(*, db: Session) -> list[Mission]:
    """Return the missions that have watch lists (they get a digest)."""
    ids = select(Watch.mission_id).distinct()
    return list(db.scalars(select(Mission).where(Mission.id.in_(ids)).order_by(Mission.id)))
