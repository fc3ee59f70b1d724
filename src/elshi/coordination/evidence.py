"""What a viewer sees of a group: its co-actions as pairs of posts, its accounts, its network
drawn as SVG, and the evidence pack (CSV and GraphML in a ZIP).

A group is drawn across every mission's posts; a viewer sees it only through the posts their
missions may read (`listen.service.visible_posts`, as every listen page): a co-action is shown
when both its posts are visible, an account when one of its shown co-actions is, and a group
with no shown co-action is not shown at all. Its figures (symmetry, speed share, platforms,
what it pushed) are those of the shown co-actions, unless the viewer sees every one of them.

A co-action names a post and the partner account (those of the counted kinds, not stored,
are worked out again here from the posts of the group's accounts); its partner post is found
again here: the partner's post with the same key within the window, the closest in time.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from elshi.coordination import pushed, service
from elshi.coordination.groups import SEED
from elshi.coordination.keys import post_keys
from elshi.listen.models import Author, Post
from elshi.listen.service import visible_posts
from elshi.web.csv_export import to_csv

#: Co-actions read per group for a page or a pack: beyond it the latest are kept.
MAX_ACTIONS = 50_000


class Act(NamedTuple):
    """A co-action as a page reads it (a stored row, or one worked out again)."""

    kind: str
    post_id: int
    author_id: int
    partner_id: int
    fast: bool


@dataclass(frozen=True)
class Pair:
    """Two posts of two accounts that share a key within the window (a earlier than b)."""

    kind: str
    key: str
    a: int
    post_a: int
    at_a: datetime
    b: int
    post_b: int
    at_b: datetime

    @property
    def gap(self) -> float:
        """Seconds between the two posts."""
        return abs((self.at_b - self.at_a).total_seconds())


@dataclass
class Account:
    """An account of the group as the viewer sees it."""

    id: int
    handle: str
    name: str
    platform: str
    posts: int = 0
    degree: int = 0


@dataclass
class Seen:
    """A group as one viewer sees it."""

    id: int
    size: int
    symmetry: float
    speed_share: float
    platforms: list[str]
    languages: list[str]
    kinds: dict[str, int]
    first_at: datetime | None
    last_at: datetime | None
    top: dict[str, Any]
    accounts: list[Account]
    pairs: list[Pair]
    #: Undirected edges {(a, b) with a < b: co-acting posts of either}.
    edges: dict[tuple[int, int], int]
    posts: dict[int, Post] = field(default_factory=dict)
    #: The viewer sees every co-action of the group.
    whole: bool = True


def _params(db: Session) -> tuple[float, float, tuple[str, ...]]:
    st = service.state(db.connection()) or {}
    kinds = tuple((st.get("params") or {}).get("kinds") or service.GROUP_KINDS)
    return float(st.get("window_seconds") or 60.0), float(st.get("narrow_seconds") or 10.0), kinds


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for a in range(0, len(ids), service._IDS):
        yield list(ids[a : a + service._IDS])


def candidate_ids(*, db: Session, mission_ids: frozenset[int] | None) -> list[int]:
    """Return the ids of the groups with a co-action post the missions may see, largest
    first (None: every group)."""
    g, m = service.GROUP, service.MEMBER
    q = select(g.c.id).order_by(g.c.size.desc(), g.c.id)
    if mission_ids is not None:
        # A group's co-actions are among its accounts' posts (those of the counted kinds
        # are not stored): a group none of whose accounts' posts is seen is left out here,
        # the others when none of their co-actions is.
        seen = (
            select(m.c.group_id)
            .join(service.POST, service.POST.c.author_id == m.c.author_id)
            .where(visible_posts(mission_ids))
        )
        q = q.where(g.c.id.in_(seen))
    return list(db.scalars(q))


def seen_group(*, db: Session, group_id: int, mission_ids: frozenset[int] | None) -> Seen | None:
    """Return the group as these missions see it, or None (no such group, or nothing seen)."""
    stored = db.execute(select(service.GROUP).where(service.GROUP.c.id == group_id)).mappings()
    row = stored.first()
    if row is None:
        return None
    window, narrow, kinds = _params(db)
    members = sorted(
        db.scalars(select(service.MEMBER.c.author_id).where(service.MEMBER.c.group_id == group_id))
    )
    act = service.ACTION
    actions: list[Any] = []
    kept = [k for k in kinds if k not in service.COUNTED_KINDS]
    for ids in _chunks(members):
        actions.extend(
            db.execute(
                select(act.c.kind, act.c.post_id, act.c.author_id, act.c.partner_id, act.c.fast)
                .where(
                    act.c.kind.in_(kept),
                    act.c.author_id.in_(ids),
                    act.c.partner_id.in_(members),
                )
                .order_by(act.c.post_id.desc())
                .limit(MAX_ACTIONS)
            ).all()
        )
    counted = [k for k in kinds if k in service.COUNTED_KINDS]
    again = service.worked_out(db.connection(), [members], counted, window=window, narrow=narrow)
    for kind, acts in again.items():
        latest = np.argsort(-acts.post, kind="stable")[:MAX_ACTIONS]
        actions.extend(
            Act(
                kind,
                int(acts.post[i]),
                int(acts.account[i]),
                int(acts.partner[i]),
                bool(acts.fast[i]),
            )
            for i in latest.tolist()
        )
    post_ids = sorted({r.post_id for r in actions})
    posts: dict[int, Post] = {}
    for ids in _chunks(post_ids):
        q = select(Post).where(Post.id.in_(ids))
        if mission_ids is not None:
            q = q.where(visible_posts(mission_ids))
        posts.update((p.id, p) for p in db.scalars(q))
    pairs, shown = _pairs(actions, posts, window)
    if not pairs:
        return None
    seen = _summarise(db, row, pairs, shown, posts, narrow)
    seen.whole = len(shown) == len(actions)
    if seen.whole:
        seen.symmetry, seen.speed_share = row["symmetry"], row["speed_share"]
    return seen


def _keys(p: Post) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for kind, key in post_keys(
        platform=p.platform,
        text=p.text,
        repost_of=p.repost_of,
        reply_to=p.reply_to,
        extra=p.extra if isinstance(p.extra, dict) else None,
        content_hash=p.content_hash,
    ):
        out.setdefault(kind, set()).add(key)
    return out


def _pairs(
    actions: Sequence[Any], posts: dict[int, Post], window: float
) -> tuple[list[Pair], list[Any]]:
    """Match each co-action whose post is seen with the partner's closest seen post of the
    same key; return the distinct pairs, in time order, and the co-actions matched."""
    keys = {pid: _keys(p) for pid, p in posts.items()}
    index: dict[tuple[str, str, int], list[Post]] = {}
    for pid, post in posts.items():
        for kind, ks in keys[pid].items():
            for k in ks:
                index.setdefault((kind, k, int(post.author_id or 0)), []).append(post)
    found: dict[tuple[str, int, int], Pair] = {}
    shown = []
    for r in actions:
        p = posts.get(r.post_id)
        if p is None or p.published_at is None:
            continue
        best: tuple[float, int, str, Post] | None = None
        for k in keys[p.id].get(r.kind, ()):
            for q in index.get((r.kind, k, r.partner_id), ()):
                if q.published_at is None:
                    continue
                gap = abs((q.published_at - p.published_at).total_seconds())
                if gap <= window and (best is None or (gap, q.id) < best[:2]):
                    best = (gap, q.id, k, q)
        if best is None:
            continue
        shown.append(r)
        q = best[3]
        first, second = sorted((p, q), key=lambda x: (x.published_at, x.id))
        ident = (r.kind, first.id, second.id)
        if ident not in found:
            found[ident] = Pair(
                r.kind,
                best[2],
                int(first.author_id or 0),
                first.id,
                first.published_at,  # type: ignore[arg-type]
                int(second.author_id or 0),
                second.id,
                second.published_at,  # type: ignore[arg-type]
            )
    pairs = sorted(found.values(), key=lambda x: (x.at_a, x.post_a, x.kind, x.post_b))
    return pairs, shown


def _summarise(
    db: Session,
    row: Any,
    pairs: list[Pair],
    shown: list[Any],
    posts: dict[int, Post],
    narrow: float,
) -> Seen:
    used = {pid for x in pairs for pid in (x.post_a, x.post_b)}
    by_kind: dict[str, set[int]] = {}
    for x in pairs:
        by_kind.setdefault(x.kind, set()).update((x.post_a, x.post_b))
    directed: dict[tuple[int, int], set[int]] = {}
    fast: dict[tuple[int, int], set[int]] = {}
    for r in shown:
        directed.setdefault((r.author_id, r.partner_id), set()).add(r.post_id)
        if r.fast:
            fast.setdefault((r.author_id, r.partner_id), set()).add(r.post_id)
    ratios = []
    edges: dict[tuple[int, int], int] = {}
    for (s, t), ps in directed.items():
        back = len(directed.get((t, s), ()))
        if s < t or not back:
            ratios.append(min(len(ps), back) / max(len(ps), back))
        pair = (s, t) if s < t else (t, s)
        edges[pair] = edges.get(pair, 0) + len(ps)
    weight = sum(len(v) for v in directed.values())
    seen_posts = [posts[i] for i in sorted(used)]
    rows = [(p.id, p.platform, p.lang, p.published_at) for p in seen_posts]
    recent = sorted(seen_posts, key=lambda p: (p.published_at, p.id))[-service.TOP_POSTS :]
    facts = service._summary_of(
        rows,
        [(p.text or "", p.extra if isinstance(p.extra, dict) else None) for p in recent],
        by_kind,
    )
    facts["top"]["narratives"] = pushed.narratives(db.connection(), used)
    ids = sorted({a for x in pairs for a in (x.a, x.b)})
    accounts = {
        a.id: Account(a.id, a.handle or "", a.name or "", a.platform or "")
        for a in db.scalars(select(Author).where(Author.id.in_(ids)))
    }
    for p in seen_posts:
        if p.author_id in accounts:
            accounts[p.author_id].posts += 1
    for (s, t), w in edges.items():
        for a in (s, t):
            if a in accounts:
                accounts[a].degree += w
    return Seen(
        id=row["id"],
        size=len(accounts),
        symmetry=round(sum(ratios) / len(ratios), 4) if ratios else 0.0,
        speed_share=round(sum(len(v) for v in fast.values()) / weight, 4) if weight else 0.0,
        platforms=facts["platforms"],
        languages=facts["languages"],
        kinds=facts["kinds"],
        first_at=facts["first_at"],
        last_at=facts["last_at"],
        top=facts["top"],
        accounts=sorted(accounts.values(), key=lambda a: (-a.degree, a.handle, a.id)),
        pairs=pairs,
        edges=edges,
        posts={i: posts[i] for i in sorted(used)},
    )


def _stored(row: Any) -> Seen:
    """A group as stored (what a viewer of every mission sees), without its pairs."""
    return Seen(
        id=row["id"],
        size=row["size"],
        symmetry=row["symmetry"],
        speed_share=row["speed_share"],
        platforms=list(row["platforms"] or []),
        languages=list(row["languages"] or []),
        kinds=dict(row["kinds"] or {}),
        first_at=row["first_at"],
        last_at=row["last_at"],
        top=dict(row["top"] or {}),
        accounts=[],
        pairs=[],
        edges={},
    )


def seen_groups(
    *, db: Session, mission_ids: frozenset[int] | None, limit: int, offset: int = 0
) -> tuple[list[Seen], bool]:
    """Return one page of the groups these missions see, largest first, and whether more
    follow. A viewer of every mission sees the stored groups as they are."""
    if mission_ids is None:
        g = service.GROUP
        rows = db.execute(
            select(g).order_by(g.c.size.desc(), g.c.id).limit(limit + 1).offset(offset)
        ).mappings()
        stored = [_stored(r) for r in rows]
        return stored[:limit], len(stored) > limit
    out: list[Seen] = []
    skipped = 0
    for gid in candidate_ids(db=db, mission_ids=mission_ids):
        seen = seen_group(db=db, group_id=gid, mission_ids=mission_ids)
        if seen is None:
            continue
        if skipped < offset:
            skipped += 1
            continue
        if len(out) == limit:
            return out, True
        out.append(seen)
    return out, False


# ---------------------------------------------------------------------------- the pack


def graph(seen: Seen) -> nx.Graph:
    """Return the group's network: accounts (handle, platform) and weighted edges."""
    g = nx.Graph()
    for a in seen.accounts:
        g.add_node(str(a.id), label=a.handle, name=a.name, platform=a.platform, posts=a.posts)
    for (s, t), w in sorted(seen.edges.items()):
        if g.has_node(str(s)) and g.has_node(str(t)):
            g.add_edge(str(s), str(t), weight=w)
    return g


def _time(at: datetime | None) -> str:
    return at.isoformat() if at is not None else ""


def evidence_zip(seen: Seen) -> bytes:
    """Return the evidence pack: accounts.csv, coactions.csv, posts.csv and graph.graphml."""
    handle = {a.id: a.handle for a in seen.accounts}
    accounts = to_csv(
        ("account id", "handle", "name", "platform", "co-acting posts", "weighted degree"),
        ((a.id, a.handle, a.name, a.platform, a.posts, a.degree) for a in seen.accounts),
        bom=True,
    )
    coactions = to_csv(
        (
            "kind",
            "key",
            "account a",
            "post a",
            "time a",
            "account b",
            "post b",
            "time b",
            "gap seconds",
        ),
        (
            (
                x.kind,
                x.key,
                handle.get(x.a, x.a),
                x.post_a,
                _time(x.at_a),
                handle.get(x.b, x.b),
                x.post_b,
                _time(x.at_b),
                x.gap,
            )
            for x in seen.pairs
        ),
        bom=True,
    )
    posts = to_csv(
        ("post id", "account", "platform", "language", "published", "url", "text"),
        (
            (
                p.id,
                handle.get(int(p.author_id or 0), p.author_handle or ""),
                p.platform,
                p.lang or "",
                _time(p.published_at),
                p.url or "",
                p.text or "",
            )
            for p in seen.posts.values()
        ),
        bom=True,
    )
    gml = io.BytesIO()
    nx.write_graphml(graph(seen), gml)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("accounts.csv", accounts)
        z.writestr("coactions.csv", coactions)
        z.writestr("posts.csv", posts)
        z.writestr("graph.graphml", gml.getvalue())
    return out.getvalue()


# ---------------------------------------------------------------------------- the picture

#: Side of the drawing, in SVG units, and the room left around it for labels.
SIDE = 640
MARGIN = 60


#: Accounts up to which the drawing takes the layout's full 50 steps. A larger group takes
#: fewer, down to MIN_STEPS, so that a page of a few thousand accounts is drawn in seconds.
FULL_LAYOUT = 300
MIN_STEPS = 8


def layout_steps(n: int) -> int:
    """The spring layout's steps for a network of n accounts."""
    return 50 if n <= FULL_LAYOUT else max(MIN_STEPS, 50 * FULL_LAYOUT // n)


def layout(g: nx.Graph) -> dict[Any, Any]:
    """Place the accounts: a spring layout with a fixed seed, fewer steps for large groups."""
    if not len(g):
        return {}
    return dict(nx.spring_layout(g, seed=SEED, weight="weight", iterations=layout_steps(len(g))))


def svg(seen: Seen, label: str) -> Markup:
    """Return the group's network as an inline SVG: a spring layout with a fixed seed, edge
    width by weight, each account a labelled link to its author page."""
    g = graph(seen)
    pos = layout(g)
    xs = [float(p[0]) for p in pos.values()] or [0.0]
    ys = [float(p[1]) for p in pos.values()] or [0.0]
    low_x, low_y = min(xs), min(ys)
    span = max(max(xs) - low_x, max(ys) - low_y) or 1.0
    inner = SIDE - 2 * MARGIN
    # Each account's place in SVG units, worked out once (a large group has many links).
    where = {
        n: (
            round(MARGIN + (float(x) - low_x) / span * inner, 1),
            round(MARGIN + (float(y) - low_y) / span * inner, 1),
        )
        for n, (x, y) in pos.items()
    }

    def at(n: str) -> tuple[float, float]:
        return where[n]

    top = max((d["weight"] for _, _, d in g.edges(data=True)), default=1)
    parts = [
        f'<svg class="network" viewBox="0 0 {SIDE} {SIDE}" role="group" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        '<g class="edges">',
    ]
    for s, t, d in sorted(g.edges(data=True)):
        (x1, y1), (x2, y2) = at(s), at(t)
        width = round(1 + 5 * d["weight"] / top, 1)
        parts.append(
            f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke-width="{width}">'
            f"<title>{escape(g.nodes[s]['label'])} – {escape(g.nodes[t]['label'])}: "
            f"{d['weight']}</title></line>"
        )
    parts.append('</g><g class="nodes">')
    for n in sorted(g.nodes):
        x, y = at(n)
        name = escape(g.nodes[n]["label"])
        parts.append(
            f'<a href="/authors/{int(n)}" aria-label="@{name}">'
            f'<circle cx="{x}" cy="{y}" r="9"></circle>'
            f'<text x="{x}" y="{round(y - 14, 1)}" text-anchor="middle">@{name}</text></a>'
        )
    parts.append("</g></svg>")
    return Markup("".join(parts))
