"""Coordination quality: the groups elshi finds on real data at CooRTweet's parameters.

    python bench/coordination_quality.py              # both data sets (a few minutes)
    python bench/coordination_quality.py --only ira   # or --only german
    python bench/coordination_quality.py --keep DIR   # keep the databases

Each data set is imported into a fresh SQLite database through elshi's own import (the
tabular connector and its profiles), and `elshi.coordination.service.update` finds the
co-actions, edges and groups, as `elshi coordination run --full` would, with the parameters
of CooRTweet's documentation: a 600 s window, minimum participation 2 and the 0.99 edge
weight quantile (and no minimum edge weight, which CooRTweet does not have: 1). Groups are
drawn from every kind but the shared domain, elshi's default.

1. **german_elections.csv** (CooRTweet's anonymised German 2021 election posts of Facebook
   and X/Twitter accounts: ids of URLs, hashtags, domains and images, no text). Its long
   format repeats a post for each object it shares; the rows are first folded to one
   record per post (the ids as lists) and imported with the `coortweet` profile.
2. **IRA sample with control accounts**: the 51,598 tweets of 30 Internet Research Agency
   accounts (`ira` profile), and as controls the posts of the other shared sets that fall
   in the sample's period (CrowdTangle shares and Media Cloud stories, X/Twitter API
   examples). Reported: how many linked account pairs join two accounts of the same
   Linvill-Warren category (authors.csv), against the share random pairs of the same
   accounts would give, and how many control accounts the groups pull in.

No target: the figures are printed (bench/README.md keeps them).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
#: CooRTweet's documented parameters (min_weight 1: CooRTweet has no minimum edge weight).
PARAMS = {"window": 600, "narrow": 60, "min_weight": 1, "min_participation": 2, "percentile": 0.99}
#: Control sets: (path in the shared data, import profile).
CONTROLS = (
    ("formats/crowdtangle-pycoornet/ct_shares_coornet_format.csv", "crowdtangle"),
    ("formats/crowdtangle-pycoornet/mediacloud_telesurenglish2017-1000.csv", "mediacloud"),
    ("formats/crowdtangle-pycoornet/ct_shares_links_endpoint.json", "crowdtangle"),
    ("formats/twitter-v2-twarc-csv/test-data", "twitter-v2"),
)


def shared_data() -> Path:
    """Return ../shared/data or ELSHI_SHARED_DATA."""
    return Path(os.environ.get("ELSHI_SHARED_DATA", ROOT.parent / "shared" / "data"))


def fresh_db(work: Path, name: str) -> Any:
    """Return a migrated Database in a file of its own."""
    from elshi.db import Database
    from elshi.migrate import migrate
    from elshi.settings import load_settings

    path = work / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    home = work / name
    home.mkdir(parents=True, exist_ok=True)
    db = Database(load_settings(home=home, database_url=f"sqlite:///{path}"))
    migrate(db.engine)
    return db


def ingest(db: Any, path: Path, profile: str) -> Any:
    """Import a file or folder with the tabular connector, as `elshi import` does."""
    from elshi.connectors.base import FetchContext
    from elshi.connectors.tabular import TabularConnector
    from elshi.listen.flows import import_with

    ctx = FetchContext(settings=db.settings)
    try:
        return import_with(
            db,
            connector=TabularConnector(),
            config={"path": str(path), "profile": profile},
            ctx=ctx,
        )
    finally:
        ctx.close()


def params() -> Any:
    from elshi.coordination import service

    return service.Params(**PARAMS).check()  # type: ignore[arg-type]


def detect(db: Any) -> tuple[Any, float]:
    """Run a full update at PARAMS; return its report and seconds."""
    from elshi.coordination import service

    t0 = time.perf_counter()
    report = service.update(db, params=params(), full=True)
    return report, time.perf_counter() - t0


def network_figures(db: Any, percentile: float | None = None) -> dict[str, Any]:
    """Return the thresholded network's directed edges, linked pairs and groups."""
    from elshi.coordination import service
    from elshi.coordination.groups import find_groups

    p = params() if percentile is None else replace(params(), percentile=percentile)
    with db.engine.connect() as conn:
        e = service.network(conn, p)
    pairs = {
        (min(s, t), max(s, t)) for s, t in zip(e.source.tolist(), e.target.tolist(), strict=True)
    }
    groups = find_groups(e)
    return {"edges": len(e), "pairs": pairs, "groups": [g.members for g in groups]}


def handles(db: Any) -> dict[int, str]:
    """Return {author id: handle}."""
    with db.engine.connect() as conn:
        return {int(i): str(h) for i, h in conn.execute(text("SELECT id, handle FROM author"))}


def sizes(groups: list[list[int]]) -> str:
    """Return the group sizes, largest first, the first ten."""
    out = ", ".join(str(len(g)) for g in groups[:10])
    return out + (", ..." if len(groups) > 10 else "")


# ---------------------------------------------------------------------------- german


def fold_german(src: Path, dst: Path) -> tuple[int, int]:
    """Write one NDJSON record per post of CooRTweet's long format (the ids as lists);
    return (rows, posts)."""
    posts: dict[str, dict[str, Any]] = {}
    rows = 0
    with src.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            rows += 1
            post = posts.setdefault(
                row["post_id"],
                {
                    "post_id": row["post_id"],
                    "account_id": row["account_id"],
                    "timestamp": row["timestamp"],
                },
            )
            for col in ("url_id", "hashtag_id", "domain_id", "phash_id"):
                if row[col]:
                    values = post.setdefault(col, [])
                    if row[col] not in values:
                        values.append(row[col])
    with dst.open("w", encoding="utf-8") as out:
        for post in posts.values():
            out.write(json.dumps(post) + "\n")
    return rows, len(posts)


def run_german(work: Path) -> None:
    src = shared_data() / "coortweet" / "german_elections.csv"
    if not src.is_file():
        print(f"german_elections.csv: skipped, {src} not found (set ELSHI_SHARED_DATA)")
        return
    folded = work / "german_elections.ndjson"
    rows, n_posts = fold_german(src, folded)
    db = fresh_db(work, "german")
    t0 = time.perf_counter()
    imported = ingest(db, folded, "coortweet")
    import_s = time.perf_counter() - t0
    report, seconds = detect(db)
    who = handles(db)
    net = network_figures(db)
    groups = net["groups"]
    grouped = [a for g in groups for a in g]
    platform = {a: who[a].split("_", 1)[0] for a in who}
    mixed = sum(1 for g in groups if len({platform[a] for a in g}) > 1)
    print(
        f"german_elections.csv: {rows:,} rows folded to {n_posts:,} posts; "
        f"{imported.stored:,} stored in {import_s:.1f} s; {len(who):,} accounts "
        f"({sum(1 for p in platform.values() if p == 'fb'):,} Facebook, "
        f"{sum(1 for p in platform.values() if p == 'tw'):,} X/Twitter)"
    )
    print(f"  update {seconds:.1f} s; co-actions by kind: {kinds(report.co_actions)}")
    print(
        f"  at 600 s, min participation 2, quantile 0.99: {net['edges']:,} directed edges "
        f"({len(net['pairs']):,} account pairs), {len(groups):,} groups of {len(grouped):,} "
        f"accounts (sizes {sizes(groups)}); {mixed} groups span Facebook and X/Twitter; "
        f"grouped: {Counter(platform[a] for a in grouped).get('fb', 0):,} Facebook, "
        f"{Counter(platform[a] for a in grouped).get('tw', 0):,} X/Twitter accounts"
    )
    everything = network_figures(db, percentile=0)
    print(
        f"  without the quantile: {everything['edges']:,} directed edges, "
        f"{len(everything['groups']):,} groups of "
        f"{sum(len(g) for g in everything['groups']):,} accounts"
    )
    by_kind = kind_groups(db, ("link", "hashtag", "image"))
    print(
        "  one kind at a time (quantile 0.99): "
        + "; ".join(f"{k} {n:,} groups of {m:,} accounts" for k, (n, m) in by_kind.items())
    )


def kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def kind_groups(db: Any, names: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """Groups of the network of one kind at a time: {kind: (groups, accounts)}."""
    from elshi.coordination import service
    from elshi.coordination.groups import find_groups

    out = {}
    with db.engine.connect() as conn:
        for kind in names:
            groups = find_groups(service.network(conn, params(), kind))
            out[kind] = (len(groups), sum(len(g.members) for g in groups))
    return out


# ---------------------------------------------------------------------------- IRA


def ira_categories(folder: Path) -> dict[str, str]:
    with (folder / "authors.csv").open(encoding="utf-8", newline="") as fh:
        return {r["author_id"]: r["account_category"] for r in csv.DictReader(fh)}


def drop_outside(db: Any, keep: set[int], lo: str, hi: str) -> int:
    """Delete the posts of accounts not in `keep` published outside [lo, hi]; return how
    many. Nothing else has been derived from them yet (a fresh database, import only)."""
    ids = ",".join(str(i) for i in sorted(keep)) or "0"
    outside = (
        f"(author_id IS NULL OR author_id NOT IN ({ids})) "
        "AND (published_at IS NULL OR published_at < :lo OR published_at > :hi)"
    )
    with db.writing() as conn:
        conn.execute(
            text(
                "UPDATE post SET dup_of_id = NULL WHERE dup_of_id IN "
                f"(SELECT id FROM post WHERE {outside})"
            ),
            {"lo": lo, "hi": hi},
        )
        gone = conn.execute(text(f"DELETE FROM post WHERE {outside}"), {"lo": lo, "hi": hi})
        return int(gone.rowcount or 0)


def run_ira(work: Path) -> None:
    data = shared_data()
    folder = data / "ira-troll-tweets-sample"
    if not (folder / "tweets").is_dir():
        print(f"IRA sample: skipped, {folder} not found (set ELSHI_SHARED_DATA)")
        return
    category = ira_categories(folder)
    db = fresh_db(work, "ira")
    t0 = time.perf_counter()
    stored = ingest(db, folder / "tweets", "ira").stored
    who = handles(db)
    trolls = {a for a, h in who.items() if h in category}
    with db.engine.connect() as conn:
        lo, hi = conn.execute(
            text(
                "SELECT min(published_at), max(published_at) FROM post WHERE author_id IN "
                f"({','.join(map(str, sorted(trolls)))})"
            )
        ).one()
    control_read = 0
    for rel, profile in CONTROLS:
        path = data / rel
        if path.exists():
            control_read += ingest(db, path, profile).stored
    dropped = drop_outside(db, trolls, str(lo), str(hi))
    import_s = time.perf_counter() - t0
    who = handles(db)
    controls = set(who) - trolls
    with db.engine.connect() as conn:
        posting = {
            int(a)
            for (a,) in conn.execute(
                text("SELECT DISTINCT author_id FROM post WHERE author_id IS NOT NULL")
            )
        }
        control_posts = int(
            conn.execute(
                text(
                    "SELECT count(*) FROM post WHERE author_id NOT IN "
                    f"({','.join(map(str, sorted(trolls)))})"
                )
            ).scalar()
            or 0
        )
    controls &= posting
    print(
        f"IRA sample: {stored:,} tweets of {len(trolls)} accounts, {lo[:10]} to {hi[:10]}; "
        f"controls: {control_posts:,} posts of {len(controls):,} accounts in that period "
        f"(of {control_read:,} stored, {dropped:,} outside it left out); import {import_s:.1f} s"
    )
    report, seconds = detect(db)
    print(f"  update {seconds:.1f} s; co-actions by kind: {kinds(report.co_actions)}")
    cat = {a: category.get(who[a], "control") for a in who}
    for label, percentile in (("quantile 0.99", None), ("without the quantile", 0.0)):
        net = network_figures(db, percentile)
        pairs = net["pairs"]
        troll_pairs = [(a, b) for a, b in pairs if a in trolls and b in trolls]
        same = sum(1 for a, b in troll_pairs if cat[a] == cat[b])
        linked = {a for p in troll_pairs for a in p}
        by_cat = Counter(cat[a] for a in linked)
        n = len(linked)
        chance = (
            sum(c * (c - 1) for c in by_cat.values()) / (n * (n - 1)) if n > 1 else float("nan")
        )
        groups = net["groups"]
        grouped_controls = {a for g in groups for a in g if a in controls}
        with_trolls = {a for g in groups if any(m in trolls for m in g) for a in g if a in controls}
        control_only = sum(1 for g in groups if not any(m in trolls for m in g))
        kinds_of_pairs = Counter(
            "same category" if cat[a] == cat[b] else " / ".join(sorted((cat[a], cat[b])))
            for a, b in sorted(troll_pairs)
        )
        print(
            f"  {label}: {net['edges']:,} directed edges, {len(pairs):,} account pairs "
            f"({len(troll_pairs):,} between IRA accounts, of which {same:,} join one "
            f"Linvill-Warren category: {share(same, len(troll_pairs))}; random pairs of the "
            f"same {n} accounts would give {chance:.0%}); {len(groups):,} groups "
            f"(sizes {sizes(groups)}), categories in each: "
            + "; ".join(
                "/".join(f"{c} {k}" for c, k in sorted(Counter(cat[a] for a in g).items()))
                for g in groups[:6]
            )
        )
        print(
            f"    controls: {len(grouped_controls):,} of {len(controls):,} control accounts in "
            f"groups, {len(with_trolls):,} in a group with an IRA account; {control_only} "
            f"groups of controls only; pairs by category: {dict(kinds_of_pairs.most_common(6))}"
        )


def share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", choices=("german", "ira"), help="Run one data set.")
    p.add_argument("--keep", type=Path, help="Keep the databases in this folder.")
    args = p.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="elshi-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"elshi coordination quality: window {PARAMS['window']} s, min participation "
        f"{PARAMS['min_participation']}, edge weight quantile {PARAMS['percentile']}, min edge "
        f"weight {PARAMS['min_weight']}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    if args.only in (None, "german"):
        run_german(work)
    if args.only in (None, "ira"):
        run_ira(work)
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
