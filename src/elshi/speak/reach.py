"""What a published statement reached: metrics per channel, and the audience that engaged."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from elshi.speak.models import (
    ChannelAccount,
    MetricSnapshot,
    Publication,
)
from elshi.speak.scheduling import publications_of

# ---------------------------------------------------------------------------- reach


@dataclass
class ReachRow:
    """Latest engagement of one publication."""

    publication: Publication
    account_name: str
    views: int | None = None
    reactions: int | None = None
    reposts: int | None = None
    replies: int | None = None
    at: datetime | None = None


@dataclass
class Reach:
    """Engagement of a statement per publication, and totals per language and channel."""

    rows: list[ReachRow] = field(default_factory=list)
    by_lang: dict[str, dict[str, int]] = field(default_factory=dict)
    by_channel: dict[str, dict[str, int]] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)


_METRICS = ("views", "reactions", "reposts", "replies")


def reach(*, db: Session, statement_id: int) -> Reach:
    """Return the latest engagement snapshot of each publication, with totals."""
    pubs = publications_of(db=db, statement_id=statement_id)
    names = {
        a.id: a.name
        for a in db.scalars(
            select(ChannelAccount).where(ChannelAccount.id.in_({p.account_id for p in pubs}))
        )
    }
    latest: dict[int, MetricSnapshot] = {}
    if pubs:
        newest = (
            select(MetricSnapshot.publication_id, func.max(MetricSnapshot.id).label("mid"))
            .where(MetricSnapshot.publication_id.in_([p.id for p in pubs]))
            .group_by(MetricSnapshot.publication_id)
            .subquery()
        )
        for found in db.scalars(
            select(MetricSnapshot).join(newest, MetricSnapshot.id == newest.c.mid)
        ):
            latest[found.publication_id] = found
    out = Reach(total=dict.fromkeys(_METRICS, 0))
    for p in pubs:
        snap = latest.get(p.id)
        row = ReachRow(p, names.get(p.account_id, "?"))
        if snap is not None:
            row.views, row.reactions, row.reposts, row.replies = (
                snap.views,
                snap.reactions,
                snap.reposts,
                snap.replies,
            )
            row.at = snap.at
            for key in _METRICS:
                value = getattr(snap, key) or 0
                out.by_lang.setdefault(p.lang, dict.fromkeys(_METRICS, 0))[key] += value
                out.by_channel.setdefault(p.channel, dict.fromkeys(_METRICS, 0))[key] += value
                out.total[key] += value
        out.rows.append(row)
    return out


# ---------------------------------------------------------------------------- audience

#: The Listen platforms whose authors an engaging account of a channel may be.
AUTHOR_PLATFORMS = {"mastodon": ("mastodon",), "bluesky": ("bluesky",), "x": ("x", "twitter")}


def _norm_handle(handle: str) -> str:
    return handle.strip().removeprefix("@").lower()


def record_engagers(*, db: Session, publication_id: int, platform: str, engagers: list[Any]) -> int:
    """Keep the accounts that engaged with a publication (each account and kind once);
    return how many were new."""
    from elshi.speak.models import Engager

    seen = {
        (h, k)
        for h, k in db.execute(
            select(Engager.handle, Engager.kind).where(Engager.publication_id == publication_id)
        )
    }
    added = 0
    for e in engagers:
        handle = _norm_handle(e.handle)[:300]
        if not handle or e.kind not in ("reply", "repost", "like") or (handle, e.kind) in seen:
            continue
        seen.add((handle, e.kind))
        db.add(
            Engager(
                publication_id=publication_id,
                platform=platform,
                handle=handle,
                name=(e.name or "")[:300],
                kind=e.kind,
            )
        )
        added += 1
    db.flush()
    return added


@dataclass
class Audience:
    """Who engaged with a statement's publications, by Listen actor type.

    Counts are of distinct accounts; "unknown" holds accounts that are not Listen authors or
    have no actor type yet, kept apart from the typed ones.
    """

    types: tuple[str, ...]
    total: dict[str, int]
    by_channel: dict[str, dict[str, int]]
    by_kind: dict[str, dict[str, int]]
    #: Typed accounts other than citizens (name, handle, platform, type, author id).
    named: list[tuple[str, str, str, str, int]]

    @property
    def accounts(self) -> int:
        """Return how many distinct accounts engaged."""
        return sum(self.total.values())

    @property
    def known_share(self) -> float | None:
        """Return the share of engaging accounts whose actor type is known."""
        n = self.accounts
        return (n - self.total.get("unknown", 0)) / n if n else None


def audience(*, db: Session, statement_id: int) -> Audience:
    """Return who engaged with a statement, matched to Listen authors and their actor types."""
    from elshi.listen.models import Author
    from elshi.speak.models import Engager
    from elshi.watch.models import ACTOR_TYPES

    rows = db.execute(
        select(Engager.platform, Engager.handle, Engager.name, Engager.kind)
        .join(Publication, Publication.id == Engager.publication_id)
        .where(Publication.statement_id == statement_id)
    ).all()
    wanted: dict[str, set[str]] = {}
    for platform, handle, _, _ in rows:
        for author_platform in AUTHOR_PLATFORMS.get(platform, (platform,)):
            wanted.setdefault(author_platform, set()).add(handle)
    typed: dict[tuple[str, str], Author] = {}
    for author_platform, handles in wanted.items():
        listed = sorted(handles)
        for i in range(0, len(listed), 500):
            for found in db.scalars(
                select(Author).where(
                    Author.platform == author_platform,
                    func.lower(Author.handle).in_(listed[i : i + 500]),
                )
            ):
                typed[(author_platform, _norm_handle(found.handle))] = found
    types = (*(t for t in ACTOR_TYPES if t != "unknown"), "unknown")
    out = Audience(
        types=types,
        total=dict.fromkeys(types, 0),
        by_channel={},
        by_kind={k: dict.fromkeys(types, 0) for k in ("reply", "repost", "like")},
        named=[],
    )
    counted: set[tuple[str, str]] = set()
    per_channel: set[tuple[str, str]] = set()
    per_kind: set[tuple[str, str, str]] = set()
    for platform, handle, name, kind in rows:
        author = next(
            (
                typed[(p, handle)]
                for p in AUTHOR_PLATFORMS.get(platform, (platform,))
                if (p, handle) in typed
            ),
            None,
        )
        actor = author.actor_type if author is not None and author.actor_type in types else None
        actor = actor or "unknown"
        key = (platform, handle)
        if key not in counted:
            counted.add(key)
            out.total[actor] += 1
            if author is not None and actor not in ("unknown", "citizen"):
                out.named.append(
                    (author.name or name or handle, handle, platform, actor, author.id)
                )
        if key not in per_channel:
            per_channel.add(key)
            out.by_channel.setdefault(platform, dict.fromkeys(types, 0))[actor] += 1
        if (platform, handle, kind) not in per_kind:
            per_kind.add((platform, handle, kind))
            out.by_kind[kind][actor] += 1
    out.named.sort(key=lambda n: (types.index(n[3]), n[0].lower()))
    return out


__all__ = [
    "AUTHOR_PLATFORMS",
    "Audience",
    "Reach",
    "ReachRow",
    "audience",
    "reach",
    "record_engagers",
]
