"""Coordination over stored posts: find co-actions (full or incremental), keep their edges,
draw the groups.

An incremental update pairs only the posts stored since the last one (ids above
`coordination_state.last_post_id`) with each other and with the older posts within the
window of one of them; the co-actions it finds are added to those stored. As a co-action
depends only on the two posts, this gives the same co-actions, edges and groups as a full
recomputation (tests/coordination check it). Other windows than the stored ones mean a
full recomputation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np
from sqlalchemy import (
    Connection,
    Table,
    Text,
    and_,
    delete,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy import cast as cast_

from elshi.coordination import engine, pushed, tracking
from elshi.coordination.groups import Group, find_groups, top
from elshi.coordination.keys import KINDS, hashtags, links, normalise_text, post_keys
from elshi.coordination.models import (
    CoAction,
    CoEdge,
    CoGroup,
    CoGroupMember,
    CoordinationState,
    CoParticipation,
)
from elshi.db import Database, utcnow
from elshi.errors import N_, FieldError
from elshi.listen.models import Post

POST = cast(Table, Post.__table__)
ACTION = cast(Table, CoAction.__table__)
EDGE = cast(Table, CoEdge.__table__)
GROUP = cast(Table, CoGroup.__table__)
MEMBER = cast(Table, CoGroupMember.__table__)
STATE = cast(Table, CoordinationState.__table__)
PARTICIPATION = cast(Table, CoParticipation.__table__)

#: The kind of the combined edges: distinct posts co-acting in any of the group kinds.
ALL = "all"
#: Kinds groups are drawn from by default: every kind but the shared domain, which popular
#: sites make too common to mean much alone (its edges are still kept).
GROUP_KINDS = tuple(k for k in KINDS if k != "domain")
#: Kinds whose co-actions are counted into edges and participation but not stored: common
#: keys (a popular hashtag, a site's domain) give millions of them. A page that shows a
#: group's evidence works them out again from the posts of its accounts.
COUNTED_KINDS = frozenset({"domain", "hashtag"})
#: The longest window: a week.
MAX_WINDOW = 7 * 86400
#: Rows read and written per batch.
BATCH = 20_000

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Params:
    """The parameters, as the field (CooRTweet, the QUT toolkit) names them."""

    #: Seconds within which two posts with the same key are a co-action.
    window: float = 60.0
    #: The narrower window inside it for the speed share.
    narrow: float = 10.0
    #: An edge counts from this many co-acting posts (QUT's min_edge_weight).
    min_weight: int = 2
    #: Keep only edges at or above this quantile (0..1) of the weights (CooRTweet's
    #: edge_weight); 0 keeps all.
    percentile: float = 0.0
    #: An account counts once at least this many of its posts co-act (CooRTweet's
    #: min_participation).
    min_participation: int = 2
    kinds: tuple[str, ...] = GROUP_KINDS

    def check(self) -> Params:
        """Return self, or raise FieldError naming the bad parameter."""
        if not 0 < self.window <= MAX_WINDOW:
            raise FieldError(
                "window",
                N_("The window must be above 0 and at most %(max)s seconds."),
                max=MAX_WINDOW,
            )
        if not 0 < self.narrow <= self.window:
            raise FieldError(
                "narrow", N_("The narrow window must be above 0 and no longer than the window.")
            )
        if self.min_weight < 1:
            raise FieldError("min_weight", N_("The minimum edge weight must be at least 1."))
        if not 0 <= self.percentile < 1:
            raise FieldError("percentile", N_("The percentile must be at least 0 and below 1."))
        if self.min_participation < 1:
            raise FieldError(
                "min_participation", N_("The minimum participation must be at least 1.")
            )
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise FieldError(
                "kinds",
                N_("Unknown co-action kinds: %(unknown)s. Known: %(known)s."),
                unknown=", ".join(unknown) or "-",
                known=", ".join(KINDS),
            )
        return self


@dataclass
class Report:
    """What an update did."""

    full: bool
    posts: int = 0
    co_actions: dict[str, int] = field(default_factory=dict)
    edges: int = 0
    groups: int = 0
    last_post_id: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Return the report as plain data."""
        return asdict(self)


# ---------------------------------------------------------------------------- reading posts

# Time and extra are read as the driver gives them (SQLite: text), not through their
# column types: parsing a million of them is most of the time of reading posts.
_COLUMNS = (
    POST.c.id,
    POST.c.author_id,
    POST.c.platform,
    type_coerce(POST.c.published_at, Text).label("published_at"),
    POST.c.text,
    POST.c.repost_of,
    POST.c.reply_to,
    type_coerce(POST.c.extra, Text).label("extra"),
    POST.c.content_hash,
)
#: What keys read in extra: a stored extra without these words is not decoded.
_EXTRA_WORDS = (
    '"link',
    '"urls"',
    '"retweet"',
    '"image_hash"',
    '"url_id"',
    '"hashtag_id"',
    '"domain_id"',
)


_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


def _ms(when: datetime | str) -> int:
    """Milliseconds since the epoch of a stored time (SQLite keeps naive UTC text)."""
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    if when.tzinfo is None:
        # What when.replace(tzinfo=UTC).timestamp() gives, without making the datetime.
        return int((when - _EPOCH) // _MICROSECOND / 1e6 * 1000)
    return int(when.timestamp() * 1000)


def _extra(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):
        if len(value) < 8 or not any(w in value for w in _EXTRA_WORDS):
            return None
        value = json.loads(value)
    return value if isinstance(value, dict) else None


def _add_posts(
    rb: engine.RowBuilder, rows: Iterable[Any], *, new: bool, progress: Progress | None
) -> tuple[int, int]:
    """Add the keys of stored posts; return (posts added, highest id seen)."""
    with engine.gc_paused():
        return _add_rows(rb, rows, new=new, progress=progress)


def _add_rows(
    rb: engine.RowBuilder, rows: Iterable[Any], *, new: bool, progress: Progress | None
) -> tuple[int, int]:
    n = 0
    top_id = 0
    for r in rows:
        top_id = max(top_id, r.id)
        n += 1
        if r.author_id is None or r.published_at is None:
            continue
        keys = post_keys(
            platform=r.platform,
            text=r.text,
            repost_of=r.repost_of,
            reply_to=r.reply_to,
            extra=_extra(r.extra),
            content_hash=r.content_hash,
        )
        if keys:
            rb.add(r.id, r.author_id, _ms(r.published_at), keys, new)
        if progress is not None and n % 1000 == 0:
            progress(1000)
    if progress is not None and n % 1000:
        progress(n % 1000)
    return n, top_id


def _stream(conn: Connection, where: Any) -> Iterator[Any]:
    """Yield the posts matching `where`, in id order, a batch at a time."""
    last = 0
    while True:
        batch = conn.execute(
            select(*_COLUMNS).where(where, POST.c.id > last).order_by(POST.c.id).limit(BATCH)
        ).all()
        if not batch:
            return
        yield from batch
        last = batch[-1].id


#: Most time spans read for one incremental update: beyond it the closest spans are joined
#: (reading a few more old posts than needed, whose pairs with each other are left out).
MAX_SPANS = 200


def _windows(times_ms: Sequence[int], window_ms: int) -> list[tuple[int, int]]:
    """Merge [t - w, t + w] around each time into at most MAX_SPANS disjoint spans."""
    spans: list[tuple[int, int]] = []
    for t in sorted(times_ms):
        lo, hi = t - window_ms, t + window_ms
        if spans and lo <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], hi))
        else:
            spans.append((lo, hi))
    if len(spans) > MAX_SPANS:
        gaps = sorted(range(1, len(spans)), key=lambda i: spans[i][0] - spans[i - 1][1])
        cuts = sorted(gaps[-(MAX_SPANS - 1) :])
        starts = [0, *cuts]
        ends = [*cuts, len(spans)]
        spans = [(spans[a][0], spans[b - 1][1]) for a, b in zip(starts, ends, strict=True)]
    return spans


def _at(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


# ---------------------------------------------------------------------------- updating


def state(conn: Connection) -> dict[str, Any] | None:
    """Return the stored state row as a dict, or None before the first update."""
    row = conn.execute(select(STATE).where(STATE.c.id == 1)).mappings().first()
    return dict(row) if row else None


def stored_params(db: Database, **changes: Any) -> Params:
    """Return the parameters of the last update (defaults before the first), with
    `changes` (those not None) applied."""
    with db.engine.connect() as conn:
        st = state(conn)
    base = dict((st or {}).get("params") or {})
    known = {f for f in Params.__dataclass_fields__}
    values = {k: v for k, v in base.items() if k in known}
    values.update({k: v for k, v in changes.items() if v is not None})
    if "kinds" in values:
        values["kinds"] = tuple(values["kinds"])
    return Params(**values).check()


def update(
    db: Database,
    *,
    params: Params | None = None,
    full: bool = False,
    progress: Progress | None = None,
) -> Report:
    """Bring the co-actions, edges and groups up to date with the stored posts.

    Incremental unless `full`, nothing was stored before, or the stored windows or group
    kinds differ from `params`'. `progress(n)` is told of every n posts read."""
    params = (params or Params()).check()
    with db.engine.connect() as conn:
        st = state(conn)
        newest = int(conn.execute(select(func.max(POST.c.id))).scalar() or 0)
    full = (
        full
        or st is None
        or st["window_seconds"] != params.window
        or st["narrow_seconds"] != params.narrow
        or tuple(st["params"].get("kinds") or ()) != params.kinds
    )
    last = 0 if full or st is None else int(st["last_post_id"])
    report = Report(full=full, last_post_id=max(last, newest))
    rb = engine.RowBuilder()
    with db.engine.connect() as conn:
        fresh = and_(POST.c.id > last, POST.c.id <= newest)
        n, _ = _add_posts(rb, _stream(conn, fresh), new=True, progress=progress)
        report.posts = n
        if not full and n:
            _add_older(conn, rb, last=last, window=params.window)
    try:
        _write(db, rb, st, params, report)
    except _Moved:
        # Another update added to the counts since this one read the state: adding these
        # too would count its pairs twice. Start again from where it left them.
        return update(db, params=params, full=full, progress=progress)
    report.groups = regroup(db, params=params)
    return report


class _Moved(Exception):
    """The stored state changed while an incremental update was reading."""


def _write(
    db: Database,
    rb: engine.RowBuilder,
    st: dict[str, Any] | None,
    params: Params,
    report: Report,
) -> None:
    full = report.full
    with db.writing() as conn:
        # Locked (PostgreSQL; SQLite's write transaction holds every writer off already).
        locked = conn.execute(select(STATE).where(STATE.c.id == 1).with_for_update())
        now_st = locked.mappings().first()
        if not full and (
            now_st is None
            or st is None
            or now_st["last_post_id"] != st["last_post_id"]
            or now_st["updated_at"] != st["updated_at"]
        ):
            raise _Moved
        if full:
            for table in (ACTION, EDGE, PARTICIPATION):
                conn.execute(delete(table))
        # Kind by kind, each kind's rows and co-actions let go once stored: only the group
        # kinds' co-actions are kept, merged, for the combined edges.
        found_all, old_all = engine.Union(), engine.Union()
        for kind in rb.kinds():
            old = engine.co_actions(rb.old_rows(kind), window=params.window, narrow=params.narrow)
            found = engine.co_actions(rb.take(kind), window=params.window, narrow=params.narrow)
            report.co_actions[kind] = _apply(conn, kind, found, old, full=full)
            if kind in params.kinds:
                found_all.add(found)
                old_all.add(old)
            del found, old
        _apply(conn, ALL, found_all.result(), old_all.result(), full=full)
        del found_all, old_all
        values = {
            "window_seconds": params.window,
            "narrow_seconds": params.narrow,
            "last_post_id": report.last_post_id,
            "posts": report.posts + (0 if full or st is None else int(st["posts"])),
            "params": _param_dict(params),
            "updated_at": utcnow(),
        }
        if now_st is None:
            conn.execute(STATE.insert().values(id=1, **values))
        else:
            conn.execute(STATE.update().where(STATE.c.id == 1).values(**values))
        report.edges = int(
            conn.execute(select(func.count()).select_from(EDGE).where(EDGE.c.kind == ALL)).scalar()
            or 0
        )


def _apply(
    conn: Connection, kind: str, found: engine.CoActions, old: engine.CoActions, *, full: bool
) -> int:
    """Add to the stored state what the co-actions found with a new post change: the
    co-actions themselves (not for COUNTED_KINDS), the edges' weights and the accounts'
    participation. `old` are the co-actions the old posts read alone give: a pair found
    again is not counted twice. Return how many co-actions are new."""
    added, faster = engine.changes(found, old)
    if kind not in COUNTED_KINDS and kind != ALL:
        _store_actions(conn, kind, added, upsert=not full)
        _store_actions(conn, kind, faster, upsert=True)
    e = engine.edge_changes(added, faster)
    _executemany(
        conn,
        "INSERT INTO co_edge (kind, author_id, partner_id, weight, fast_weight) "
        "VALUES (?, ?, ?, ?, ?)"
        + (
            ""
            if full
            else " ON CONFLICT (kind, author_id, partner_id) DO UPDATE SET "
            "weight = co_edge.weight + excluded.weight, "
            "fast_weight = co_edge.fast_weight + excluded.fast_weight"
        ),
        (kind, e.source, e.target, e.weight, e.fast),
    )
    accounts, posts = engine.participation(found, old)
    _executemany(
        conn,
        "INSERT INTO co_participation (kind, author_id, posts) VALUES (?, ?, ?)"
        + (
            ""
            if full
            else " ON CONFLICT (kind, author_id) DO UPDATE SET "
            "posts = co_participation.posts + excluded.posts"
        ),
        (kind, accounts, posts),
    )
    return len(added)


def _param_dict(params: Params) -> dict[str, Any]:
    d = asdict(params)
    d["kinds"] = list(params.kinds)
    return d


def _add_older(conn: Connection, rb: engine.RowBuilder, *, last: int, window: float) -> None:
    """Add the posts up to id `last` within twice the window of a new post: the old posts a
    new one pairs with, and every post those pair with (to tell their pairs with the new
    posts, which are new co-actions, from those they had already)."""
    times: list[int] = []
    for kind in rb.kinds():
        times.extend(rb.rows(kind).time_ms.tolist())
    for lo, hi in _windows(sorted(set(times)), 2 * round(window * 1000)):
        where = and_(
            POST.c.id <= last,
            POST.c.published_at >= _at(lo),
            POST.c.published_at <= _at(hi),
        )
        _add_posts(rb, _stream(conn, where), new=False, progress=None)


def _executemany(conn: Connection, sql: str, columns: Sequence[Any]) -> None:
    """Run `sql` (qmark placeholders) once per row of the columns (arrays or constants),
    BATCH rows at a time through the driver: a million rows through the ORM layer would
    take most of an update, and turned into Python lists at once, most of its memory."""
    if conn.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    n = max((len(c) for c in columns if isinstance(c, np.ndarray)), default=0)
    for a in range(0, n, BATCH * 5):
        b = min(n, a + BATCH * 5)
        cols = [c[a:b].tolist() if isinstance(c, np.ndarray) else [c] * (b - a) for c in columns]
        conn.exec_driver_sql(sql, list(zip(*cols, strict=True)))


def _store_actions(
    conn: Connection, kind: str, acts: engine.CoActions, *, upsert: bool = True
) -> None:
    """Add co-actions; one that is stored already becomes fast if the new one is."""
    _executemany(
        conn,
        "INSERT INTO co_action (kind, post_id, author_id, partner_id, fast) VALUES (?, ?, ?, ?, ?)"
        + (
            " ON CONFLICT (kind, post_id, partner_id) "
            "DO UPDATE SET fast = (co_action.fast OR excluded.fast)"
            if upsert
            else ""
        ),
        (kind, acts.post, acts.account, acts.partner, acts.fast),
    )


# ---------------------------------------------------------------------------- groups


def network(conn: Connection, params: Params, kind: str = ALL) -> engine.Edges:
    """Return the edges of one kind (default: combined) that pass the thresholds: minimum
    weight, minimum participation of both accounts, then the weight percentile."""
    rows = conn.execute(
        select(EDGE.c.author_id, EDGE.c.partner_id, EDGE.c.weight, EDGE.c.fast_weight).where(
            EDGE.c.kind == kind, EDGE.c.weight >= params.min_weight
        )
    ).all()
    active = set(
        conn.scalars(
            select(PARTICIPATION.c.author_id).where(
                PARTICIPATION.c.kind == kind,
                PARTICIPATION.c.posts >= params.min_participation,
            )
        )
    )
    rows = [r for r in rows if r[0] in active and r[1] in active]
    e = engine.Edges(
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.int64),
        np.array([r[3] for r in rows], dtype=np.int64),
    )
    return engine.above_percentile(e, params.percentile)


def regroup(db: Database, *, params: Params | None = None) -> int:
    """Draw the groups again from the stored edges; return how many there are."""
    params = (params or Params()).check()
    with db.engine.connect() as conn:
        found = find_groups(network(conn, params))
        facts = _facts(conn, found, params)
    now = utcnow()
    with db.writing() as conn:
        ids, high = tracking.carry_ids(conn, [g.members for g in found])
        conn.execute(delete(MEMBER))
        conn.execute(delete(GROUP))
        for g, f, kept in zip(found, facts, ids, strict=True):
            gid = conn.execute(
                GROUP.insert()
                .values(
                    id=kept,
                    size=len(g.members),
                    edges=g.edges,
                    weight=g.weight,
                    symmetry=round(g.symmetry, 4),
                    speed_share=round(g.speed_share, 4),
                    created_at=now,
                    **f,
                )
                .returning(GROUP.c.id)
            ).scalar_one()
            conn.execute(
                MEMBER.insert(),
                [
                    {"group_id": gid, "author_id": a, "degree": g.degree.get(a, 0)}
                    for a in g.members
                ],
            )
        tracking.keep_high(conn, high)
    return len(found)


#: Posts read per group to say what it pushed.
TOP_POSTS = 500
#: Ids per IN list.
_IDS = 900


def _facts(conn: Connection, found: Sequence[Group], params: Params) -> list[dict[str, Any]]:
    """For each group: platforms, languages, first and last activity, posts per kind and top
    content of the posts by which its accounts co-acted with each other (read in one pass)."""
    group_of = {a: i for i, g in enumerate(found) for a in g.members}
    accounts = sorted(group_of)
    by_kind: list[dict[str, set[int]]] = [{} for _ in found]
    stored = [k for k in params.kinds if k not in COUNTED_KINDS]
    for a in range(0, len(accounts), _IDS):
        rows = conn.execute(
            select(ACTION.c.kind, ACTION.c.post_id, ACTION.c.author_id, ACTION.c.partner_id).where(
                ACTION.c.kind.in_(stored), ACTION.c.author_id.in_(accounts[a : a + _IDS])
            )
        )
        for kind, post_id, author, partner in rows:
            gi = group_of[author]
            if group_of.get(partner) == gi:
                by_kind[gi].setdefault(kind, set()).add(post_id)
    counted = [k for k in params.kinds if k in COUNTED_KINDS]
    again = worked_out(
        conn, [g.members for g in found], counted, window=params.window, narrow=params.narrow
    )
    for kind, acts in again.items():
        for post_id, author in zip(acts.post.tolist(), acts.account.tolist(), strict=True):
            by_kind[group_of[author]].setdefault(kind, set()).add(post_id)
    group_of_post = {
        p: gi for gi, kinds_ in enumerate(by_kind) for ps in kinds_.values() for p in ps
    }
    ids = sorted(group_of_post)
    # First what every post says in a few columns, then the text of the latest ones only.
    posts: list[list[Any]] = [[] for _ in found]
    for a in range(0, len(ids), _IDS):
        for row in conn.execute(
            select(
                POST.c.id, POST.c.platform, POST.c.lang, type_coerce(POST.c.published_at, Text)
            ).where(POST.c.id.in_(ids[a : a + _IDS]))
        ):
            posts[group_of_post[row[0]]].append(row)
    recent = [sorted(p, key=lambda r: (_ms(r[3]) if r[3] else 0, r[0]))[-TOP_POSTS:] for p in posts]
    wanted = sorted(r[0] for rs in recent for r in rs)
    content: dict[int, tuple[str, dict[str, Any] | None]] = {}
    for a in range(0, len(wanted), _IDS):
        for pid, text, extra in conn.execute(
            select(POST.c.id, POST.c.text, type_coerce(POST.c.extra, Text)).where(
                POST.c.id.in_(wanted[a : a + _IDS])
            )
        ):
            content[pid] = (text or "", _extra(extra))
    facts = [
        _summary_of(p, [content[r[0]] for r in rs], k)
        for p, rs, k in zip(posts, recent, by_kind, strict=True)
    ]
    for f, p in zip(facts, posts, strict=True):
        f["top"]["narratives"] = pushed.narratives(conn, (r[0] for r in p))
    return facts


def worked_out(
    conn: Connection,
    groups: Sequence[Sequence[int]],
    kinds: Sequence[str],
    *,
    window: float,
    narrow: float,
) -> dict[str, engine.CoActions]:
    """Work out again, from the posts of the groups' accounts, the co-actions of kinds that
    are not stored (COUNTED_KINDS) between two accounts of one group: the same co-actions
    the update counted, as a co-action depends only on its two posts."""
    wanted = frozenset(kinds)
    if not wanted <= COUNTED_KINDS:
        raise ValueError(f"only counted kinds are worked out again, not {sorted(wanted)}")
    if not wanted or not groups:
        return {}
    group_of = {a: i for i, g in enumerate(groups) for a in g}
    authors = sorted(group_of)
    rb = engine.RowBuilder()
    # Only posts that may carry a hashtag or a link: a repost shares only its original.
    extra = cast_(POST.c.extra, Text)
    may_share = and_(
        POST.c.repost_of.is_(None),
        or_(
            POST.c.text.contains("#"),
            POST.c.text.contains("://"),
            extra.contains('"link'),
            extra.contains('"urls"'),
        ),
    )
    for a in range(0, len(authors), _IDS):
        chunk = authors[a : a + _IDS]
        for r in conn.execute(select(*_COLUMNS).where(POST.c.author_id.in_(chunk), may_share)):
            if r.published_at is None:
                continue
            keys = post_keys(
                platform=r.platform,
                text=r.text,
                repost_of=r.repost_of,
                reply_to=r.reply_to,
                extra=_extra(r.extra),
                content_hash=r.content_hash,
                kinds=wanted,
            )
            if keys:
                # The group is part of the key: only accounts of one group pair.
                gi = group_of[r.author_id]
                rb.add(r.id, r.author_id, _ms(r.published_at), [(k, f"{gi} {v}") for k, v in keys])
    return {
        kind: engine.co_actions(rb.take(kind), window=window, narrow=narrow) for kind in rb.kinds()
    }


def _summary_of(
    posts: list[Any], recent: list[tuple[str, dict[str, Any] | None]], by_kind: dict[str, set[int]]
) -> dict[str, Any]:
    times = [_ms(p[3]) for p in posts if p[3] is not None]
    return {
        "platforms": sorted({p[1] for p in posts}),
        "languages": sorted({p[2] for p in posts if p[2]}),
        "kinds": {k: len(v) for k, v in sorted(by_kind.items())},
        "first_at": _at(min(times)) if times else None,
        "last_at": _at(max(times)) if times else None,
        "top": {
            "texts": top(normalise_text(text)[:280] for text, _ in recent),
            "links": top(k for text, extra in recent for k in links(text, extra)),
            "hashtags": top(h for text, _ in recent for h in dict.fromkeys(hashtags(text))),
        },
    }


def groups(conn: Connection) -> list[dict[str, Any]]:
    """Return the stored groups, largest first, each with its member author ids."""
    members: dict[int, list[int]] = {}
    for gid, aid in conn.execute(
        select(MEMBER.c.group_id, MEMBER.c.author_id).order_by(MEMBER.c.author_id)
    ):
        members.setdefault(gid, []).append(aid)
    out = []
    for row in conn.execute(select(GROUP).order_by(GROUP.c.size.desc(), GROUP.c.id)).mappings():
        out.append(dict(row) | {"members": members.get(row["id"], [])})
    return out


def edge_set(conn: Connection, kind: str, *, min_weight: int = 1) -> dict[tuple[int, int], int]:
    """Return {(author, partner): weight} of one kind's stored edges (tests, reports)."""
    return {
        (a, p): w
        for a, p, w in conn.execute(
            select(EDGE.c.author_id, EDGE.c.partner_id, EDGE.c.weight).where(
                EDGE.c.kind == kind, EDGE.c.weight >= min_weight
            )
        )
    }


def newest_post_id(conn: Connection) -> int:
    """Return the highest stored post id (0 when there is none)."""
    return int(conn.execute(select(func.max(POST.c.id))).scalar() or 0)
