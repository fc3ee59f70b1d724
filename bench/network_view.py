"""The network picture of a coordinated group: how long drawing it takes as groups grow.

    python bench/network_view.py                    # groups of 100 to 3,000 accounts
    python bench/network_view.py --sizes 500 5000   # other sizes

Each group is a random network of N accounts and 5N links (a fixed seed), drawn by
`elshi.coordination.evidence.svg` as the group page draws it: the spring layout (50 steps up
to 300 accounts, fewer above) and the SVG. Figures: seconds per drawing (best of three) and
the SVG's size. Target: a group of 3,000 accounts drawn in under 5 s; the exit code is 0
only if every size of 3,000 or fewer passes.
"""

from __future__ import annotations

import argparse
import sys
import time

import networkx as nx

from elshi.coordination import evidence
from elshi.coordination.evidence import Account, Seen

TARGET_SECONDS = 5.0
TARGET_SIZE = 3000


def group(n: int) -> Seen:
    g = nx.gnm_random_graph(n, 5 * n, seed=n)
    return Seen(
        id=1,
        size=n,
        symmetry=1.0,
        speed_share=0.0,
        platforms=["twitter"],
        languages=["en"],
        kinds={"link": 5 * n},
        first_at=None,
        last_at=None,
        top={},
        accounts=[Account(id=i + 1, handle=f"a{i + 1}", name="", platform="twitter") for i in g],
        pairs=[],
        edges={(u + 1, v + 1): 1 for u, v in g.edges},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 3000])
    args = parser.parse_args()
    ok = True
    print(f"{'accounts':>8} {'links':>7} {'steps':>5} {'best s':>7} {'SVG kB':>7}")
    for n in args.sizes:
        seen = group(n)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            picture = evidence.svg(seen, "group")
            times.append(time.perf_counter() - start)
        best = min(times)
        passed = n > TARGET_SIZE or best < TARGET_SECONDS
        ok = ok and passed
        print(
            f"{n:>8,} {len(seen.edges):>7,} {evidence.layout_steps(n):>5} {best:>7.2f} "
            f"{len(picture) / 1024:>7.0f}{'' if passed else '  FAIL'}"
        )
    verdict = "PASS" if ok else "FAIL"
    print(f"target: {TARGET_SIZE:,} accounts under {TARGET_SECONDS:g} s: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
