"""Co-actions, vectorised: pair the posts that share a key within a time window.

Posts are rows (post, account, time, key). Sorted by (key, time), each row's partners are
the rows after it with the same key up to `window` later, found by one binary search per
row; the pairs are then expanded with numpy in chunks. Nothing is O(n^2) in Python.

Definitions, as the QUT coordination-network-toolkit has them (so edge sets agree):

- a co-action links post p of account u to account v when v has a post with the same key
  whose time is within `window` seconds of p's (inclusive), v != u;
- the directed edge weight w(u -> v) is the number of distinct posts of u that co-act
  with v (so w(u -> v) and w(v -> u) may differ: their ratio is the edge symmetry);
- an edge counts when its weight is at least the minimum edge weight.

A co-action is "fast" when such a partner post is within the narrower `narrow` window too
(CooRTweet's speed share); an edge's fast weight counts its fast co-actions.
"""

from __future__ import annotations

import gc
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

#: Pairs expanded at once: bounds the memory of a key shared by many accounts at once.
CHUNK_PAIRS = 1_000_000
_I64_ROOM = 1 << 62


@dataclass(frozen=True)
class Rows:
    """One row per (post, key): the post's id, its account, its time (ms) and the key's code.

    `new` marks the rows of posts not yet paired (an incremental update keeps only pairs
    with at least one new row); None means every row is new."""

    post: I64
    account: I64
    time_ms: I64
    key: I64
    new: Bools | None = None

    def __len__(self) -> int:
        return int(self.post.shape[0])


@dataclass(frozen=True)
class CoActions:
    """Distinct (post, partner account) co-actions, with the post's account and a fast flag."""

    post: I64
    account: I64
    partner: I64
    fast: Bools

    def __len__(self) -> int:
        return int(self.post.shape[0])

    @classmethod
    def empty(cls) -> CoActions:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.copy(), z.copy(), np.zeros(0, dtype=bool))


@dataclass(frozen=True)
class Edges:
    """Directed weighted edges account -> partner."""

    source: I64
    target: I64
    weight: I64
    fast: I64

    def __len__(self) -> int:
        return int(self.source.shape[0])

    def as_dict(self) -> dict[tuple[int, int], int]:
        """Return {(source, target): weight}."""
        return {
            (int(s), int(t)): int(w)
            for s, t, w in zip(self.source, self.target, self.weight, strict=True)
        }


def co_actions(
    rows: Rows,
    *,
    window: float,
    narrow: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> CoActions:
    """Return the distinct co-actions among `rows` within `window` seconds.

    With `rows.new` set, only pairs where at least one row is new are considered."""
    if len(rows) == 0:
        return CoActions.empty()
    w = round(window * 1000)
    nw = w if narrow is None else min(w, round(narrow * 1000))
    keep = _shared_keys(rows.key, rows.account)
    post, acct, tms, key = rows.post[keep], rows.account[keep], rows.time_ms[keep], rows.key[keep]
    new = rows.new[keep] if rows.new is not None else None
    if post.shape[0] == 0:
        return CoActions.empty()
    order = np.lexsort((tms, key))
    post, acct, tms, key = post[order], acct[order], tms[order], key[order]
    if new is not None:
        new = new[order]
    hi = _window_ends(key, tms, w)
    n = post.shape[0]
    counts = hi - np.arange(n, dtype=np.int64) - 1
    # Compact codes: (post index, partner index) fits one int64.
    post_ids, post_ix = np.unique(post, return_inverse=True)
    acct_ids, acct_ix = np.unique(acct, return_inverse=True)
    n_acct = np.int64(acct_ids.shape[0])
    codes: list[I64] = []
    fasts: list[Bools] = []
    ends = np.cumsum(counts)
    start = 0
    while start < n:
        base = int(ends[start - 1]) if start else 0
        stop = int(np.searchsorted(ends, base + CHUNK_PAIRS, side="right"))
        stop = max(stop, start + 1)
        c = counts[start:stop]
        total = int(c.sum())
        if total:
            i = np.repeat(np.arange(start, stop, dtype=np.int64), c)
            firsts = np.cumsum(c) - c
            j = i + 1 + (np.arange(total, dtype=np.int64) - np.repeat(firsts, c))
            mask = acct_ix[i] != acct_ix[j]
            if new is not None:
                mask &= new[i] | new[j]
            i, j = i[mask], j[mask]
            fast = (tms[j] - tms[i]) <= nw
            codes.append(post_ix[i] * n_acct + acct_ix[j])
            codes.append(post_ix[j] * n_acct + acct_ix[i])
            fasts.extend((fast, fast))
            codes[-2:], fasts[-2:] = _unique_codes(
                np.concatenate(codes[-2:]), np.concatenate(fasts[-2:])
            )
        if progress is not None:
            progress(stop - start)
        start = stop
    if not codes:
        return CoActions.empty()
    code, fast = _unique_codes(np.concatenate(codes), np.concatenate(fasts))
    p_ix, partner_ix = np.divmod(code[0], n_acct)
    account_of_post = np.empty(post_ids.shape[0], dtype=np.int64)
    account_of_post[post_ix] = acct_ix
    return CoActions(
        post=post_ids[p_ix],
        account=acct_ids[account_of_post[p_ix]],
        partner=acct_ids[partner_ix],
        fast=fast[0],
    )


def _unique_codes(code: I64, fast: Bools) -> tuple[list[I64], list[Bools]]:
    """Return the distinct codes and, for each, whether any of its pairs was fast."""
    if code.shape[0] == 0:
        return [code], [fast]
    order = np.argsort(code, kind="stable")
    code, fast = code[order], fast[order]
    first = np.concatenate(([True], code[1:] != code[:-1]))
    starts = np.flatnonzero(first)
    any_fast = np.maximum.reduceat(fast.astype(np.int8), starts).astype(bool)
    return [code[starts]], [any_fast]


def _shared_keys(key: I64, account: I64) -> Bools:
    """Mark rows whose key at least two accounts have (only those can pair)."""
    if key.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((account, key))
    k, a = key[order], account[order]
    new_key = np.concatenate(([True], k[1:] != k[:-1]))
    new_pair = new_key | np.concatenate(([True], a[1:] != a[:-1]))
    group = np.cumsum(new_key) - 1
    accounts_per_key = np.bincount(group, weights=new_pair).astype(np.int64)
    keep = np.empty(key.shape[0], dtype=bool)
    keep[order] = accounts_per_key[group] >= 2
    return keep


def _window_ends(key: I64, tms: I64, w: int) -> I64:
    """For rows sorted by (key, time), return for each row one past the last row with the
    same key and a time at most `w` ms later."""
    n = key.shape[0]
    new_key = np.concatenate(([True], key[1:] != key[:-1]))
    group = np.cumsum(new_key) - 1
    starts = np.flatnonzero(new_key)
    rel = tms - tms[starts][group]
    span = int(rel.max()) + w + 1
    per_batch = max(1, _I64_ROOM // span)
    hi = np.empty(n, dtype=np.int64)
    n_groups = int(group[-1]) + 1
    for g0 in range(0, n_groups, per_batch):
        g1 = min(n_groups, g0 + per_batch)
        a = int(starts[g0])
        b = int(starts[g1]) if g1 < n_groups else n
        comp = (group[a:b] - g0) * np.int64(span) + rel[a:b]
        hi[a:b] = a + np.searchsorted(comp, comp + w, side="right")
    return hi


def merge(old: CoActions, new: CoActions) -> CoActions:
    """Return the union of two sets of co-actions (a co-action is fast if either says so)."""
    if len(old) == 0:
        return new
    if len(new) == 0:
        return old
    post = np.concatenate((old.post, new.post))
    partner = np.concatenate((old.partner, new.partner))
    account = np.concatenate((old.account, new.account))
    fast = np.concatenate((old.fast, new.fast))
    order = np.lexsort((~fast, partner, post))
    post, partner, account, fast = post[order], partner[order], account[order], fast[order]
    first = np.concatenate(([True], (post[1:] != post[:-1]) | (partner[1:] != partner[:-1])))
    return CoActions(post[first], account[first], partner[first], fast[first])


class Union:
    """The union of several kinds' co-actions, kept as (post, partner) codes: a fraction of
    the memory of merging the CoActions themselves, made distinct once at the end."""

    #: Codes are post * SPAN + partner: account ids stay below it.
    SPAN = np.int64(1 << 31)

    def __init__(self) -> None:
        self._codes: list[I64] = []
        self._fast: list[Bools] = []
        self._posts: list[I64] = []
        self._accounts: list[I64] = []

    def add(self, acts: CoActions) -> None:
        """Add one kind's co-actions."""
        if len(acts) == 0:
            return
        self._codes.append(acts.post * self.SPAN + acts.partner)
        self._fast.append(acts.fast)
        self._posts.append(acts.post)
        self._accounts.append(acts.account)

    def result(self) -> CoActions:
        """Return the distinct co-actions added (fast if any kind's was)."""
        if not self._codes:
            return CoActions.empty()
        [code], [fast] = _unique_codes(np.concatenate(self._codes), np.concatenate(self._fast))
        self._codes, self._fast = [], []
        posts, first = np.unique(np.concatenate(self._posts), return_index=True)
        accounts = np.concatenate(self._accounts)[first]
        self._posts, self._accounts = [], []
        post, partner = np.divmod(code, self.SPAN)
        return CoActions(post, accounts[np.searchsorted(posts, post)], partner, fast)


def _subset(acts: CoActions, keep: Bools) -> CoActions:
    return CoActions(acts.post[keep], acts.account[keep], acts.partner[keep], acts.fast[keep])


def changes(found: CoActions, old: CoActions) -> tuple[CoActions, CoActions]:
    """Compare the co-actions an update found (pairs with a new post) with those the old
    posts alone give; return (added: not among the old ones, faster: among them but not
    fast there, fast now)."""
    if len(old) == 0 or len(found) == 0:
        return found, CoActions.empty()
    old_code = old.post * Union.SPAN + old.partner
    order = np.argsort(old_code, kind="stable")
    old_code, old_fast = old_code[order], old.fast[order]
    code = found.post * Union.SPAN + found.partner
    at = np.minimum(np.searchsorted(old_code, code), old_code.shape[0] - 1)
    known = old_code[at] == code
    return _subset(found, ~known), _subset(found, known & found.fast & ~old_fast[at])


def edge_changes(added: CoActions, faster: CoActions) -> Edges:
    """Return what `changes` adds to the edges: weight from the added co-actions, fast
    weight from those of them that are fast and from the co-actions become fast."""
    both = CoActions(
        np.concatenate((added.post, faster.post)),
        np.concatenate((added.account, faster.account)),
        np.concatenate((added.partner, faster.partner)),
        np.concatenate((added.fast, np.ones(len(faster), dtype=bool))),
    )
    counted = np.concatenate(
        (np.ones(len(added), dtype=np.int64), np.zeros(len(faster), dtype=np.int64))
    )
    return _count(both, counted, 0)


def participation(found: CoActions, old: CoActions | None = None) -> tuple[I64, I64]:
    """Return (accounts, posts): for each account, how many of its posts co-act, counting
    only those that did not with the old posts alone (`old`)."""
    posts, first = np.unique(found.post, return_index=True)
    accounts = found.account[first]
    if old is not None and len(old):
        fresh = ~np.isin(posts, old.post)
        accounts = accounts[fresh]
    ids, counts = np.unique(accounts, return_counts=True)
    return ids.astype(np.int64), counts.astype(np.int64)


def edges(acts: CoActions, *, min_weight: int = 1) -> Edges:
    """Return the directed edges of the co-actions with at least `min_weight`."""
    return _count(acts, None, min_weight)


def _count(acts: CoActions, counted: I64 | None, min_weight: int = 1) -> Edges:
    """Sum per (account, partner) `counted` (None: 1 a co-action) and the fast flags."""
    if len(acts) == 0:
        z = np.zeros(0, dtype=np.int64)
        return Edges(z, z.copy(), z.copy(), z.copy())
    code = acts.account * Union.SPAN + acts.partner
    order = np.argsort(code, kind="stable")
    code = code[order]
    starts = np.flatnonzero(np.concatenate(([True], code[1:] != code[:-1])))
    if counted is None:
        weight = np.diff(np.append(starts, code.shape[0])).astype(np.int64)
    else:
        weight = np.add.reduceat(counted[order], starts).astype(np.int64)
    fast = np.add.reduceat(acts.fast[order].astype(np.int64), starts)
    keep = weight >= min_weight
    src, dst = np.divmod(code[starts][keep], Union.SPAN)
    return Edges(src, dst, weight[keep], fast[keep])


def above_percentile(e: Edges, percentile: float) -> Edges:
    """Keep the edges whose weight is at least the given quantile (0..1) of all weights."""
    if percentile <= 0 or len(e) == 0:
        return e
    cut = float(np.quantile(e.weight, percentile))
    keep = e.weight >= cut
    return Edges(e.source[keep], e.target[keep], e.weight[keep], e.fast[keep])


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while posts are read into a RowBuilder: the loop
    makes only short-lived objects (freed by their reference counts) and keeps its rows in
    arrays, while each collection would walk every live object again."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class RowBuilder:
    """Collects (post, account, time, keys) and gives the rows of each co-action kind.

    Columns are kept in compact arrays (8 bytes a value): a post's id, account and time
    once, and for each kind the post's place and the key. A key is kept as its 64-bit hash,
    not its text, so a million posts take tens of megabytes. Hashes are compared only
    within one process (incremental updates hash the old posts again), so Python's own
    string hash serves; two different keys share one with a chance of about 1e-19 a pair."""

    def __init__(self) -> None:
        self._post = array("q")
        self._account = array("q")
        self._time = array("q")
        self._new = array("b")
        self._kinds: dict[str, tuple[array[int], array[int]]] = {}

    def add(
        self, post: int, account: int, time_ms: int, keys: list[tuple[str, str]], new: bool = True
    ) -> None:
        """Add one post's keys ((kind, key) pairs)."""
        if not keys:
            return
        at = len(self._post)
        self._post.append(post)
        self._account.append(account)
        self._time.append(time_ms)
        self._new.append(new)
        kinds = self._kinds
        for kind, key in keys:
            cols = kinds.get(kind)
            if cols is None:
                cols = kinds[kind] = (array("q"), array("q"))
            cols[0].append(at)
            cols[1].append(hash(key))

    def kinds(self) -> list[str]:
        """Return the kinds that have rows."""
        return list(self._kinds)

    def take(self, kind: str) -> Rows:
        """Return the rows of one kind and forget them here."""
        rows = self.rows(kind)
        self._kinds.pop(kind, None)
        return rows

    def old_rows(self, kind: str) -> Rows:
        """Return the rows of one kind that are not new (empty when all are)."""
        rows = self.rows(kind)
        if rows.new is None:
            z = np.zeros(0, dtype=np.int64)
            return Rows(z, z.copy(), z.copy(), z.copy())
        old = ~rows.new
        return Rows(rows.post[old], rows.account[old], rows.time_ms[old], rows.key[old])

    def rows(self, kind: str) -> Rows:
        """Return the rows of one kind (empty when none)."""
        cols = self._kinds.get(kind)
        if cols is None:
            z = np.zeros(0, dtype=np.int64)
            return Rows(z, z.copy(), z.copy(), z.copy())
        at = np.frombuffer(cols[0], dtype=np.int64)
        key = np.frombuffer(cols[1], dtype=np.int64).copy()
        post, account, time_ms = (
            np.frombuffer(c, dtype=np.int64)[at] for c in (self._post, self._account, self._time)
        )
        new = np.frombuffer(self._new, dtype=np.int8)[at].astype(bool)
        return Rows(post, account, time_ms, key, None if bool(new.all()) else new)
