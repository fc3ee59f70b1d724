"""The actor registry: imported lists, the assessment run (types by rule and inauthenticity
signals), and actors linking accounts of several platforms.

Authors belong to no mission: an account is seen through the posts the viewer's missions may
read (`listen.service.visible_posts`, `watch.service.author_in_reach`), and changed where the
viewer holds `authors.manage` over one of those posts. A list types accounts every mission
sees, so importing or removing one needs `authors.manage` at headquarters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from elshi.accounts.service import Principal, audit_by, authorize
from elshi.actors import rules, signals
from elshi.actors.lists import Reading, read_list
from elshi.actors.models import AccountAssessment, Actor, ActorAccount, ActorList, ActorListEntry
from elshi.coordination.models import CoGroup, CoGroupMember
from elshi.db import utcnow
from elshi.errors import N_, Invalid, NotFound, PermissionDenied, Problem
from elshi.listen.models import Author, Post
from elshi.listen.service import visible_posts
from elshi.watch.service import author_in_reach

#: Most bytes of an uploaded list.
MAX_LIST_BYTES = 20_000_000
#: Authors written per transaction of the assessment.
BATCH = 1_000


# ---------------------------------------------------------------------------- lists


@dataclass
class Imported:
    """What an import did: the list stored (None when no line was good) and what was read."""

    list_id: int | None
    reading: Reading
    columns: list[str]


def import_list(
    db: Session,
    *,
    principal: Principal,
    data: bytes,
    filename: str,
    name: str = "",
    defaults: dict[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Imported:
    """Store the good entries of a list (CSV or JSON) and report the bad lines; the types
    reach the accounts at the next assessment (`assess`)."""
    authorize(principal, "authors.manage", mission_id=None)
    if len(data) > MAX_LIST_BYTES:
        raise Invalid(
            Problem(
                "file",
                N_("The file is larger than %(mb)s MB."),
                {"mb": MAX_LIST_BYTES // 1_000_000},
            )
        )
    reading, columns = read_list(data, filename=filename, defaults=defaults, progress=progress)
    if not reading.entries:
        return Imported(None, reading, columns)
    row = ActorList(
        name=(name.strip() or filename or "list")[:200],
        filename=filename[:300],
        entries=len(reading.entries),
        imported_at=utcnow(),
        imported_by=principal.user_id,
    )
    db.add(row)
    db.flush()
    db.execute(
        insert(ActorListEntry),
        [
            {
                "list_id": row.id,
                "platform": e.platform,
                "handle": e.handle,
                "actor_type": e.actor_type,
                "country": e.country,
                "name": e.name,
                "note": e.note,
                "line": e.line,
            }
            for e in reading.entries
        ],
    )
    audit_by(
        principal,
        db,
        "actors.list_imported",
        "actor_list",
        row.id,
        entries=len(reading.entries),
        bad=reading.bad,
    )
    return Imported(row.id, reading, columns)


def lists(db: Session) -> list[ActorList]:
    """Every imported list, newest first (lists are ministry-wide)."""
    return list(
        db.scalars(select(ActorList).order_by(ActorList.imported_at.desc(), ActorList.id.desc()))
    )


def delete_list(db: Session, *, principal: Principal, list_id: int) -> ActorList:
    """Remove a list; the types it gave are taken back at the next assessment."""
    authorize(principal, "authors.manage", mission_id=None)
    row = db.get(ActorList, list_id)
    if row is None:
        raise NotFound(f"no list {list_id}")
    db.execute(delete(ActorListEntry).where(ActorListEntry.list_id == list_id))
    db.delete(row)
    audit_by(principal, db, "actors.list_removed", "actor_list", list_id, name=row.name)
    return row


# ---------------------------------------------------------------------------- assessment


@dataclass
class Report:
    """What an assessment found."""

    accounts: int = 0
    posts: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    #: Accounts whose type a rule wrote, and accounts where a hand-set type was kept.
    typed: int = 0
    kept: int = 0
    #: Accounts with at least one signal fired, and with half the weights or more.
    flagged: int = 0
    high: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _list_hits(db: Session) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every list entry by (platform, handle), the newest list first."""
    hits: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    rows = db.execute(
        select(ActorListEntry, ActorList.name)
        .join(ActorList, ActorList.id == ActorListEntry.list_id)
        .order_by(ActorList.imported_at.desc(), ActorList.id.desc(), ActorListEntry.line)
    )
    for e, list_name in rows:
        hits[(e.platform, e.handle)].append(
            {
                "rule": "list",
                "type": e.actor_type,
                "list_id": e.list_id,
                "list": list_name,
                "line": e.line,
                "country": e.country,
                "note": e.note,
            }
        )
    return hits


def _groups(db: Session) -> dict[int, list[tuple[int, int]]]:
    found: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for author_id, group_id, size in db.execute(
        select(CoGroupMember.author_id, CoGroup.id, CoGroup.size).join(
            CoGroup, CoGroup.id == CoGroupMember.group_id
        )
    ):
        found[int(author_id)].append((int(group_id), int(size)))
    return found


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def _post_facts(db: Session) -> dict[int, signals.AccountFacts]:
    """Each author's post times and reposts (a repost: `repost_of` set, or a row of an
    import that says it is a retweet)."""
    facts: dict[int, signals.AccountFacts] = {}
    stmt = (
        select(
            Post.author_id,
            Post.published_at,
            Post.repost_of,
            Post.extra["retweet"].as_string(),
        )
        .where(Post.author_id.is_not(None))
        .execution_options(yield_per=20_000)
    )
    for author_id, when, repost_of, retweet in db.execute(stmt):
        f = facts.get(author_id)
        if f is None:
            f = facts[author_id] = signals.AccountFacts(handle="")
        f.posts += 1
        if repost_of is not None or (retweet is not None and _truthy(retweet)):
            f.reposts += 1
        if when is not None:
            f.times.append(when.timestamp())
    return facts


def _profiles(db: Session, author_ids: list[int]) -> dict[int, rules.Profile]:
    """The profile each author's newest post's payload gives."""
    out: dict[int, rules.Profile] = {}
    for i in range(0, len(author_ids), BATCH):
        chunk = author_ids[i : i + BATCH]
        newest = (
            select(func.max(Post.id))
            .where(Post.author_id.in_(chunk), Post.raw.is_not(None))
            .group_by(Post.author_id)
        )
        for author_id, platform, raw in db.execute(
            select(Post.author_id, Post.platform, Post.raw).where(Post.id.in_(newest))
        ):
            out[int(author_id)] = rules.profile_of(platform, raw)
    return out


def auto_type(
    platform: str,
    handle: str,
    name: str | None,
    hits: list[dict[str, Any]],
    profile: rules.Profile,
) -> tuple[str | None, dict[str, Any]]:
    """The type the rules give an account and why (a list, a platform label, a name)."""
    if hits:
        first = hits[0]
        reason = {k: v for k, v in first.items() if k != "type"}
        others = sorted({h["type"] for h in hits[1:] if h["type"] != first["type"]})
        if others:
            reason["other_types"] = others
        return str(first["type"]), reason
    found = rules.label_type(platform, profile) or rules.name_type(name, handle)
    if found is None:
        return None, {}
    return found


_ASSESSMENT = cast(Table, AccountAssessment.__table__)
_AUTHOR = cast(Table, Author.__table__)


def assess(db: Session, *, progress: Callable[[int], None] | None = None) -> Report:
    """Compute every account's type by rule and its signals, store them, and write the type
    on accounts whose type was not set by hand (nor set before the rules ran)."""
    report = Report()
    hits = _list_hits(db)
    groups = _groups(db)
    facts = _post_facts(db)
    report.posts = sum(f.posts for f in facts.values())
    author_ids = list(db.scalars(select(Author.id).order_by(Author.id)))
    set_type = (
        update(_AUTHOR).where(_AUTHOR.c.id == bindparam("aid")).values(actor_type=bindparam("kind"))
    )
    for i in range(0, len(author_ids), BATCH):
        chunk = author_ids[i : i + BATCH]
        profiles = _profiles(db, chunk)
        applied: dict[int, str | None] = {
            int(aid): kind
            for aid, kind in db.execute(
                select(AccountAssessment.author_id, AccountAssessment.applied_type).where(
                    AccountAssessment.author_id.in_(chunk)
                )
            )
        }
        rows: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        now = utcnow()
        for aid, platform, handle, name, current, by in db.execute(
            select(
                Author.id,
                Author.platform,
                Author.handle,
                Author.name,
                Author.actor_type,
                Author.actor_type_by,
            ).where(Author.id.in_(chunk))
        ):
            profile = profiles.get(aid, rules.Profile())
            f = facts.get(aid) or signals.AccountFacts(handle="")
            f.handle = handle
            # A name equal to the handle is no display name of its own: not known.
            f.name = name if name != handle else None
            f.created_at = profile.created_at
            f.default_avatar = profile.default_avatar
            f.automated = profile.automated
            f.groups = groups.get(aid, [])
            score, found = signals.assess(f)
            kind, reason = auto_type(
                platform, handle, name, hits.get((platform, handle.lower()), []), profile
            )
            by_rules = by is None and (current is None or current == applied.get(aid))
            if by_rules:
                if current != kind:
                    changes.append({"aid": aid, "kind": kind})
                if kind is not None:
                    report.typed += 1
            else:
                report.kept += 1
            if kind is not None:
                rule = str(reason.get("rule"))
                report.by_rule[rule] = report.by_rule.get(rule, 0) + 1
            rows.append(
                {
                    "author_id": aid,
                    "auto_type": kind,
                    "reason": reason,
                    "applied_type": kind if by_rules else None,
                    "score": score,
                    "signals": found,
                    "posts": f.posts,
                    "computed_at": now,
                }
            )
            report.accounts += 1
            if score > 0:
                report.flagged += 1
            if score >= 0.5:
                report.high += 1
        db.execute(delete(AccountAssessment).where(AccountAssessment.author_id.in_(chunk)))
        if rows:
            db.execute(insert(_ASSESSMENT), rows)
        if changes:
            db.execute(set_type, changes)
        db.commit()
        if progress is not None:
            progress(len(chunk))
    return report


def use_rules(db: Session, *, principal: Principal, author_id: int) -> Author:
    """Give an account back to the rules: forget its hand-set type, take the rules' one."""
    author = _author_to_change(db, principal, author_id)
    row = db.get(AccountAssessment, author_id)
    kind = row.auto_type if row is not None else None
    author.actor_type = kind
    author.actor_type_by = None
    author.actor_type_at = utcnow()
    if row is not None:
        row.applied_type = kind
    audit_by(principal, db, "author.actor_type", "author", author.id, actor_type="rules")
    return author


# ---------------------------------------------------------------------------- what a viewer sees


def seen_authors(mission_ids: frozenset[int] | None) -> Any:
    """The condition for authors with a post these missions may read (None: every author)."""
    if mission_ids is None:
        return Author.id.is_not(None)
    return Author.id.in_(
        select(Post.author_id).where(visible_posts(mission_ids), Post.author_id.is_not(None))
    )


def flagged_accounts(
    db: Session, *, mission_ids: frozenset[int] | None, limit: int = 50
) -> list[tuple[Author, AccountAssessment]]:
    """The accounts with the highest signal scores that these missions see."""
    rows = db.execute(
        select(Author, AccountAssessment)
        .join(AccountAssessment, AccountAssessment.author_id == Author.id)
        .where(AccountAssessment.score > 0, seen_authors(mission_ids))
        .order_by(AccountAssessment.score.desc(), Author.id)
        .limit(limit)
    )
    return [(a, s) for a, s in rows]


def typed_counts(db: Session, *, mission_ids: frozenset[int] | None) -> dict[str, tuple[int, int]]:
    """How many accounts these missions see have each type: (all, set by hand)."""
    out: dict[str, tuple[int, int]] = {}
    by_hand = Author.actor_type_by.is_not(None)
    for kind, hand, n in db.execute(
        select(Author.actor_type, by_hand, func.count())
        .where(Author.actor_type.is_not(None), seen_authors(mission_ids))
        .group_by(Author.actor_type, by_hand)
    ):
        total, manual = out.get(str(kind), (0, 0))
        out[str(kind)] = (total + int(n), manual + (int(n) if hand else 0))
    return out


@dataclass
class SeenActor:
    """An actor as one viewer sees it: the accounts they may see, and how many others."""

    actor: Actor
    accounts: list[tuple[Author, AccountAssessment | None]]
    hidden: int


def _seen_actor(db: Session, actor: Actor, mission_ids: frozenset[int] | None) -> SeenActor:
    rows = db.execute(
        select(Author, AccountAssessment)
        .join(ActorAccount, ActorAccount.author_id == Author.id)
        .outerjoin(AccountAssessment, AccountAssessment.author_id == Author.id)
        .where(ActorAccount.actor_id == actor.id)
        .order_by(Author.platform, Author.handle)
    ).all()
    seen_ids = set(
        db.scalars(
            select(Author.id).where(
                Author.id.in_([a.id for a, _ in rows]), seen_authors(mission_ids)
            )
        )
    )
    shown: list[tuple[Author, AccountAssessment | None]] = [
        (a, s) for a, s in rows if a.id in seen_ids
    ]
    return SeenActor(actor, shown, len(rows) - len(shown))


#: Most actors a page lists (by name).
MAX_ACTORS = 500


def seen_actors(
    db: Session, *, mission_ids: frozenset[int] | None, limit: int = MAX_ACTORS
) -> list[SeenActor]:
    """The actors with at least one account these missions see, by name (at most `limit`)."""
    ids = (
        select(ActorAccount.actor_id)
        .join(Author, Author.id == ActorAccount.author_id)
        .where(seen_authors(mission_ids))
    )
    actors = db.scalars(
        select(Actor).where(Actor.id.in_(ids)).order_by(Actor.name, Actor.id).limit(limit)
    )
    return [_seen_actor(db, a, mission_ids) for a in actors]


def seen_actor(db: Session, *, actor_id: int, mission_ids: frozenset[int] | None) -> SeenActor:
    """One actor as these missions see it; NotFound when they see none of its accounts."""
    actor = db.get(Actor, actor_id)
    if actor is None:
        raise NotFound(f"no actor {actor_id}")
    seen = _seen_actor(db, actor, mission_ids)
    if not seen.accounts:
        raise NotFound(f"no actor {actor_id}")
    return seen


@dataclass
class Panel:
    """What the author's page shows of the registry."""

    assessment: AccountAssessment | None
    actor: SeenActor | None
    choices: list[SeenActor]
    lists: dict[int, str]


def panel(db: Session, *, principal: Principal, author: Author) -> Panel:
    """The author's assessment, its actor and the actors it could join (as the viewer sees)."""
    ids = principal.missions_where("listen.read")
    link = db.get(ActorAccount, author.id)
    actor = None
    if link is not None:
        row = db.get(Actor, link.actor_id)
        actor = _seen_actor(db, row, ids) if row is not None else None
    choices = [
        a for a in seen_actors(db, mission_ids=ids) if actor is None or a.actor.id != actor.actor.id
    ]
    return Panel(
        db.get(AccountAssessment, author.id),
        actor,
        choices,
        {r.id: r.name for r in lists(db)},
    )


# ---------------------------------------------------------------------------- linking by hand


def _author_to_change(db: Session, principal: Principal, author_id: int) -> Author:
    author = db.get(Author, author_id)
    if author is None or not author_in_reach(
        db=db, principal=principal, author_id=author_id, permission="listen.read"
    ):
        raise NotFound(f"no author {author_id}")
    if not author_in_reach(
        db=db, principal=principal, author_id=author_id, permission="authors.manage"
    ):
        raise PermissionDenied("authors.manage")
    return author


def link(
    db: Session, *, principal: Principal, author_id: int, actor_id: int | None, name: str = ""
) -> Actor:
    """Link an account to an actor the viewer sees, or to a new actor of this name."""
    author = _author_to_change(db, principal, author_id)
    if actor_id:
        actor = seen_actor(
            db, actor_id=actor_id, mission_ids=principal.missions_where("listen.read")
        ).actor
    else:
        name = " ".join(name.split())
        if not name:
            raise Invalid(Problem("name", N_("Give the actor a name or choose one.")))
        if len(name) > 300:
            raise Invalid(Problem("name", N_("At most %(n)s characters."), {"n": 300}))
        actor = Actor(name=name, created_at=utcnow(), created_by=principal.user_id)
        db.add(actor)
        db.flush()
    row = db.get(ActorAccount, author.id)
    if row is None:
        row = ActorAccount(author_id=author.id, actor_id=actor.id)
        db.add(row)
    row.actor_id = actor.id
    row.linked_at = utcnow()
    row.linked_by = principal.user_id
    audit_by(principal, db, "actor.linked", "author", author.id, actor_id=actor.id)
    return actor


def unlink(db: Session, *, principal: Principal, actor_id: int, author_id: int) -> None:
    """Take an account out of an actor (an actor left with no account is removed)."""
    _author_to_change(db, principal, author_id)
    row = db.get(ActorAccount, author_id)
    if row is None or row.actor_id != actor_id:
        raise NotFound(f"no account {author_id} in actor {actor_id}")
    db.delete(row)
    db.flush()
    left = db.scalar(select(func.count()).where(ActorAccount.actor_id == actor_id))
    if not left:
        actor = db.get(Actor, actor_id)
        if actor is not None:
            db.delete(actor)
    audit_by(principal, db, "actor.unlinked", "author", author_id, actor_id=actor_id)
