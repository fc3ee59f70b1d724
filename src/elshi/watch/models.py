"""Watch lists, the posts they match, daily and hourly rollups, saved searches, known events."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from elshi.db import Base, JSONType, Timestamps, UTCDateTime, utcnow
from elshi.errors import N_

#: Who an author is, as an analyst sets it on the author's page or a rule gives it
#: (elshi.actors: imported lists, platform labels, name heuristics).
ACTOR_NAMES = {
    "state_media": N_("state media"),
    "diplomat": N_("official or diplomat"),
    "journalist": N_("journalist"),
    "politician": N_("politician"),
    "citizen": N_("citizen"),
    "inauthentic": N_("suspected inauthentic"),
    "unknown": N_("unknown"),
}
ACTOR_TYPES = tuple(ACTOR_NAMES)


class Watch(Timestamps, Base):
    """A named topic of one mission: terms with aliases in several languages and scripts."""

    __tablename__ = "watch"

    id: Mapped[int] = mapped_column(primary_key=True)
    mission_id: Mapped[int] = mapped_column(ForeignKey("mission.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    #: [{"name": "China", "aliases": ["Қытай", "Китай", "中国"], "entity": "country:CN"}, ...]
    terms: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    #: When not empty, a post must also mention one of these (same shape as terms).
    context_terms: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    #: The country whose share of voice the dashboard shows ("country:KZ").
    focus_entity: Mapped[str] = mapped_column(String(64), default="country:KZ")
    #: Posts with ids up to this one have been matched against the current terms.
    processed_to: Mapped[int] = mapped_column(BigInteger, default=0)


class WatchMatch(Base):
    """One post matched by one watch list, with the facts the dashboard counts."""

    __tablename__ = "watch_match"
    __table_args__ = (
        UniqueConstraint("watch_id", "post_id"),
        # Covers the dashboard's top authors and top posts: read from the index alone.
        Index(
            "ix_watch_match_watch_published",
            "watch_id",
            "published_at",
            "lang",
            "platform",
            "source_id",
            "author_id",
            "engagement",
            "post_id",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    watch_id: Mapped[int] = mapped_column(ForeignKey("watch.id", ondelete="CASCADE"))
    post_id: Mapped[int] = mapped_column(ForeignKey("post.id", ondelete="CASCADE"), index=True)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())
    day: Mapped[date] = mapped_column(Date)
    lang: Mapped[str] = mapped_column(String(16), default="")
    platform: Mapped[str] = mapped_column(String(32), default="")
    source_id: Mapped[int] = mapped_column(Integer, default=0)
    author_id: Mapped[int] = mapped_column(Integer, default=0)
    sentiment: Mapped[str] = mapped_column(String(16), default="")
    stance: Mapped[str] = mapped_column(String(16), default="")
    engagement: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Which terms matched and where: the explanation shown with the post.
    why: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    entities: Mapped[list[str]] = mapped_column(JSONType, default=list)


class DailyColumns:
    """The key of a daily roll-up of one watch list: day, language, platform and source."""

    id: Mapped[int] = mapped_column(primary_key=True)
    watch_id: Mapped[int] = mapped_column(ForeignKey("watch.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    lang: Mapped[str] = mapped_column(String(16), default="")
    platform: Mapped[str] = mapped_column(String(32), default="")
    source_id: Mapped[int] = mapped_column(Integer, default=0)


class WatchDaily(DailyColumns, Base):
    """Per watch list, day, language, platform and source: counts by sentiment and stance."""

    __tablename__ = "watch_daily"
    __table_args__ = (UniqueConstraint("watch_id", "day", "lang", "platform", "source_id"),)

    n: Mapped[int] = mapped_column(Integer, default=0)
    neg: Mapped[int] = mapped_column(Integer, default=0)
    neu: Mapped[int] = mapped_column(Integer, default=0)
    pos: Mapped[int] = mapped_column(Integer, default=0)
    against: Mapped[int] = mapped_column(Integer, default=0)
    favor: Mapped[int] = mapped_column(Integer, default=0)
    engagement: Mapped[int] = mapped_column(BigInteger, default=0)


class WatchHourly(Base):
    """Per watch list and hour: posts and posts against the topic (alert baselines)."""

    __tablename__ = "watch_hourly"
    __table_args__ = (UniqueConstraint("watch_id", "hour"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    watch_id: Mapped[int] = mapped_column(ForeignKey("watch.id", ondelete="CASCADE"))
    hour: Mapped[datetime] = mapped_column(UTCDateTime())
    n: Mapped[int] = mapped_column(Integer, default=0)
    against: Mapped[int] = mapped_column(Integer, default=0)


class WatchEntityDaily(DailyColumns, Base):
    """Per watch list, day, language, platform, source and entity: matched posts mentioning it."""

    __tablename__ = "watch_entity_daily"
    __table_args__ = (
        UniqueConstraint("watch_id", "day", "lang", "platform", "source_id", "entity"),
    )

    entity: Mapped[str] = mapped_column(String(200))
    n: Mapped[int] = mapped_column(Integer, default=0)


class CountryDaily(Base):
    """Per day and source: posts mentioning each country (share of voice)."""

    __tablename__ = "country_daily"
    __table_args__ = (UniqueConstraint("day", "source_id", "entity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    source_id: Mapped[int] = mapped_column(Integer, default=0)
    entity: Mapped[str] = mapped_column(String(64))
    n: Mapped[int] = mapped_column(Integer, default=0)


class RollupCursor(Base):
    """How far a rollup that covers every post has read (by post id)."""

    __tablename__ = "rollup_cursor"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    post_id: Mapped[int] = mapped_column(BigInteger, default=0)


class SavedSearch(Base):
    """A search someone kept, opened by anyone in the mission through its link."""

    __tablename__ = "saved_search"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    mission_id: Mapped[int | None] = mapped_column(ForeignKey("mission.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class KnownEvent(Base):
    """A date that moves the conversation (a visit, a summit, a vote), used by the forecast."""

    __tablename__ = "known_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    mission_id: Mapped[int] = mapped_column(ForeignKey("mission.id", ondelete="CASCADE"))
    watch_id: Mapped[int | None] = mapped_column(ForeignKey("watch.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date, index=True)
    kind: Mapped[str] = mapped_column(String(16), default="other")
    title: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
