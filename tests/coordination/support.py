"""Coordination test helpers: real posts from the shared data, and a plain reference
implementation of co-actions to check the vectorised engine against."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from elshi.connectors.base import FetchContext, RawRecord
from elshi.connectors.tabular import TabularConfig, TabularConnector
from elshi.coordination import engine
from elshi.coordination.keys import keys_of
from elshi.listen.text import content_hash
from elshi.settings import Settings

#: IRA accounts that repost, tag and write alike within a minute of each other.
IRA_AUTHORS = ("CalebPaar", "hipppo_", "AnastasiaR777", "Lola_Ayers_", "Solano_Ki", "Robin_Mc_Call")


@dataclass(frozen=True)
class Facts:
    """What co-actions need of a post."""

    id: int
    account: int
    time_ms: int
    keys: tuple[tuple[str, str], ...]


def mapped_posts(path: Path, profile: str) -> list[Facts]:
    """Map a shared-data file (or folder) with the tabular connector, as an import does,
    and return the facts of every post with an author and a time."""
    conn = TabularConnector()
    ctx = FetchContext(settings=Settings())
    accounts: dict[str, int] = {}
    out: list[Facts] = []
    try:
        for rec in conn.fetch(TabularConfig(path=str(path), profile=profile), {}, ctx):
            if not isinstance(rec, RawRecord):
                continue
            p = conn.to_post(rec)
            if p is None or p.published_at is None or not p.author_handle:
                continue
            keys = keys_of(p, content_hash(p.text, p.title))
            out.append(
                Facts(
                    id=len(out) + 1,
                    account=accounts.setdefault(p.author_handle, len(accounts) + 1),
                    time_ms=int(p.published_at.timestamp() * 1000),
                    keys=tuple(keys),
                )
            )
    finally:
        ctx.close()
    return out


def rows_of(posts: Iterable[Facts], kind: str) -> engine.Rows:
    """Return the engine's rows of one kind."""
    rb = engine.RowBuilder()
    for p in posts:
        rb.add(p.id, p.account, p.time_ms, [k for k in p.keys if k[0] == kind])
    return rb.rows(kind)


def reference_edges(
    posts: Iterable[Facts], kind: str, *, window: float, min_weight: int = 1
) -> dict[tuple[int, int], int]:
    """Directed edges computed the plain way: every pair of posts with one key, compared
    in nested loops; w(u -> v) = distinct posts of u with a post of v within the window."""
    by_key: dict[str, list[Facts]] = defaultdict(list)
    for p in posts:
        for k, key in p.keys:
            if k == kind:
                by_key[key].append(p)
    matched: dict[tuple[int, int], set[int]] = defaultdict(set)
    limit = round(window * 1000)
    for group in by_key.values():
        for a in group:
            for b in group:
                if a.account != b.account and abs(a.time_ms - b.time_ms) <= limit:
                    matched[(a.account, b.account)].add(a.id)
    return {pair: len(ids) for pair, ids in matched.items() if len(ids) >= min_weight}
