"""Groups of accounts: community detection (Louvain, modularity) on the co-action network.

Louvain as networkx has it (BSD licence, pure Python): the Leiden implementations
(igraph, leidenalg) are GPL, which elshi's MIT licence keeps out of its dependencies. The
graphs grouped are the thresholded networks, thousands of accounts at most, where it is
quick."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import networkx as nx

from elshi.coordination.engine import Edges

#: Louvain is randomised: a fixed seed draws the same groups from the same network.
SEED = 20261207


@dataclass
class Group:
    """Accounts found together, with their edges inside the group."""

    members: list[int]
    degree: dict[int, int] = field(default_factory=dict)
    edges: int = 0
    weight: int = 0
    fast: int = 0
    symmetry: float = 0.0

    @property
    def speed_share(self) -> float:
        """Share of the group's co-actions that were within the narrow window."""
        return self.fast / self.weight if self.weight else 0.0


def find_groups(e: Edges, *, min_size: int = 2, resolution: float = 1.0) -> list[Group]:
    """Return the groups of the directed edges, largest first (members sorted).

    The graph is undirected, an edge weighing the sum of its two directions; groups are
    Louvain communities maximising modularity, with a fixed seed."""
    if len(e) == 0:
        return []
    undirected: dict[tuple[int, int], int] = defaultdict(int)
    for s, t, w in zip(e.source.tolist(), e.target.tolist(), e.weight.tolist(), strict=True):
        undirected[(s, t) if s < t else (t, s)] += w
    graph = nx.Graph()
    graph.add_weighted_edges_from((s, t, w) for (s, t), w in sorted(undirected.items()))
    parts = nx.community.louvain_communities(
        graph, weight="weight", resolution=resolution, seed=SEED
    )
    groups = [Group(members=sorted(part)) for part in parts if len(part) >= min_size]
    _summarise(groups, e)
    groups.sort(key=lambda g: (-len(g.members), -g.weight, g.members[0]))
    return groups


def _summarise(groups: list[Group], e: Edges) -> None:
    """Fill each group's edges, weight, fast weight, degrees and symmetry (one pass): the
    symmetry is the mean over the group's pairs of min/max of the two directions' weights
    (0 for a pair linked one way only)."""
    group_of = {a: i for i, g in enumerate(groups) for a in g.members}
    weights: dict[tuple[int, int], int] = {}
    for s, t, w, f in zip(
        e.source.tolist(), e.target.tolist(), e.weight.tolist(), e.fast.tolist(), strict=True
    ):
        gi = group_of.get(s)
        if gi is None or group_of.get(t) != gi:
            continue
        g = groups[gi]
        g.edges += 1
        g.weight += w
        g.fast += f
        g.degree[s] = g.degree.get(s, 0) + w
        g.degree[t] = g.degree.get(t, 0) + w
        weights[(s, t)] = w
    ratios: list[list[float]] = [[] for _ in groups]
    for (s, t), w in weights.items():
        back = weights.get((t, s), 0)
        if s < t or not back:
            ratios[group_of[s]].append(min(w, back) / max(w, back))
    for g, r in zip(groups, ratios, strict=True):
        g.symmetry = sum(r) / len(r) if r else 0.0


def top(values: Iterable[str], n: int = 5) -> list[list[str | int]]:
    """Return the n most common values with their counts, ties in first-seen order."""
    return [[v, c] for v, c in Counter(v for v in values if v).most_common(n)]
