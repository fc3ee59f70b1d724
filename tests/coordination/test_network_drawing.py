"""The group's network picture: every account placed and linked, also for a large group."""

from __future__ import annotations

import re

import networkx as nx

from elshi.coordination import evidence
from elshi.coordination.evidence import Account, Seen


def _seen(n: int, edges: int) -> Seen:
    g = nx.gnm_random_graph(n, edges, seed=7)
    return Seen(
        id=1,
        size=n,
        symmetry=1.0,
        speed_share=0.0,
        platforms=["twitter"],
        languages=["en"],
        kinds={"link": edges},
        first_at=None,
        last_at=None,
        top={},
        accounts=[Account(id=i + 1, handle=f"acct{i + 1}", name="", platform="twitter") for i in g],
        pairs=[],
        edges={(u + 1, v + 1): 1 + (u + v) % 3 for u, v in g.edges},
    )


def test_large_groups_take_fewer_layout_steps() -> None:
    assert evidence.layout_steps(10) == evidence.layout_steps(evidence.FULL_LAYOUT) == 50
    steps = [evidence.layout_steps(n) for n in (301, 600, 1200, 3000, 100_000)]
    assert steps == sorted(steps, reverse=True)
    assert steps[-1] == evidence.MIN_STEPS


def test_a_large_group_is_drawn_with_every_account_and_link() -> None:
    n, m = 2 * evidence.FULL_LAYOUT, 1500
    seen = _seen(n, m)
    picture = str(evidence.svg(seen, "group 1"))
    assert picture.count('<line x1="') == m
    labels = re.findall(r'aria-label="@(acct\d+)"', picture)
    assert sorted(labels) == sorted(a.handle for a in seen.accounts)
    # Every account sits inside the drawing.
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', picture)]
    assert len(xs) == n and all(0 <= x <= evidence.SIDE for x in xs)
