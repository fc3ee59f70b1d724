"""Coordination: elshi beside the QUT coordination-network-toolkit, and the stored update.

    python bench/coordination.py                  # 1,000,000 generated posts (minutes)
    python bench/coordination.py --posts 100000   # a quick run while developing
    python bench/coordination.py --skip-peer      # elshi alone (the peer is not installed)
    python bench/coordination.py --peer-site VENV/lib/python3.11/site-packages
                                                  # the peer installed in another environment

Each phase runs in its own child process, so its peak memory (getrusage high-water mark)
is its own:

1. **IRA sample, side by side**: the 51,598 tweets of ../shared/data/ira-troll-tweets-sample
   (or ELSHI_SHARED_DATA) mapped by the `ira` import profile. elshi finds co-retweet,
   co-link and co-tweet edges (60 s window, minimum edge weight 2) from the posts' text;
   the peer (`pip install coordination-network-toolkit`, the "bench" extra) gets the same
   messages, with elshi's repost key as repost_id and elshi's normalised links as urls,
   and computes its networks (2 processes). The directed edge sets, weights included,
   must be identical; both times are printed.
2. **Generated, side by side**: N posts (--posts) of 20,000+ accounts over 30 days:
   reposts of Zipf-popular originals, links from a pool (with tracking parameters and
   upper-case hosts), hashtags, mostly unique texts with some shared talking points, and
   groups of accounts that burst the same repost, link or text within seconds. Same
   comparison; elshi's time covers reading every post's keys and pairing.
3. **Stored update**: the same N posts written into a fresh SQLite database, then
   `elshi.coordination.service.update` pairs them all as new posts (the incremental path
   a queued update takes), stores the co-actions (counts only for the common kinds,
   domain and hashtag) and edges and draws the groups; then 1% more posts and the
   incremental update again.

Targets: identical edge sets; elshi at least 5x faster than the peer on the generated
posts; the update of N new posts under 60 s; peak memory of each elshi phase under 1 GB.
The exit code is 0 only if every target passes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WINDOW = 60
MIN_WEIGHT = 2
#: elshi kind -> the peer's network table.
COMPARED = {"repost": "co_retweet_network", "link": "co_link_network", "text": "co_tweet_network"}
START = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
DAYS = 30


def shared_data() -> Path:
    """Return ../shared/data or ELSHI_SHARED_DATA."""
    return Path(os.environ.get("ELSHI_SHARED_DATA", ROOT.parent / "shared" / "data"))


def peak_mb() -> float:
    """Peak resident memory of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Msg:
    """One post as both tools read it."""

    id: int
    account: int
    platform: str
    text: str
    time: float
    repost_of: str | None = None
    extra: dict[str, Any] | None = None
    reply_to: str | None = None
    handle: str = ""


# ---------------------------------------------------------------------------- inputs


def ira_messages() -> list[Msg]:
    """The IRA sample mapped by the `ira` profile, as an import maps it."""
    from elshi.connectors.base import FetchContext, RawRecord
    from elshi.connectors.tabular import TabularConfig, TabularConnector
    from elshi.settings import Settings

    folder = shared_data() / "ira-troll-tweets-sample" / "tweets"
    conn = TabularConnector()
    ctx = FetchContext(settings=Settings())
    accounts: dict[str, int] = {}
    out: list[Msg] = []
    for rec in conn.fetch(TabularConfig(path=str(folder), profile="ira"), {}, ctx):
        if not isinstance(rec, RawRecord):
            continue
        p = conn.to_post(rec)
        if p is None or p.published_at is None or not p.author_handle:
            continue
        out.append(
            Msg(
                id=len(out) + 1,
                account=accounts.setdefault(p.author_handle, len(accounts) + 1),
                platform=p.platform,
                text=p.text,
                time=p.published_at.timestamp(),
                repost_of=p.repost_of,
                extra=p.extra,
                handle=p.author_handle,
            )
        )
    return out


_WORDS = (
    "election",
    "minister",
    "embassy",
    "visa",
    "border",
    "trade",
    "oil",
    "grain",
    "rail",
    "port",
    "treaty",
    "summit",
    "reform",
    "protest",
    "court",
    "bank",
    "tariff",
    "energy",
    "water",
    "drought",
    "festival",
    "concert",
    "museum",
    "university",
    "student",
    "consul",
    "citizen",
    "passport",
    "airport",
    "flight",
    "delay",
    "strike",
    "pipeline",
    "sanction",
    "aid",
    "loan",
    "bridge",
    "road",
    "tunnel",
    "hospital",
    "vaccine",
    "clinic",
    "school",
    "teacher",
    "farmer",
    "harvest",
    "price",
    "market",
    "currency",
    "inflation",
    "rumour",
    "fake",
    "truth",
    "leak",
)


def generated(n: int, seed: int = 7, start: float = START, days: float = DAYS) -> list[Msg]:
    """N posts of background activity and coordinated bursts over `days` from `start`
    (deterministic)."""
    rng = random.Random(seed)
    n_accounts = max(1000, n // 50)
    originals = max(100, n // 20)
    pool_links = max(100, n // 10)
    hashtags = [f"#tag{i}" for i in range(5000)]
    talking = [" ".join(rng.choice(_WORDS) for _ in range(12)) for _ in range(max(10, n // 100))]
    out: list[Msg] = []

    def link(i: int) -> str:
        host = "News.Example.KZ" if i % 3 == 0 else "news.example.kz"
        tail = f"?utm_source=tw&id={i}" if i % 2 else f"?id={i}"
        return f"https://{host}/a/{i}{tail}"

    def add(account: int, t: float, what: str, value: int) -> None:
        if what == "repost":
            out.append(
                Msg(len(out) + 1, account, "twitter", f"RT talk {value}", t, repost_of=str(value))
            )
            return
        words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 15))]
        text = talking[value] if what == "text" else " ".join(words) + f" {len(out)}"
        if what == "link" or rng.random() < 0.2:
            text += " " + link(value if what == "link" else rng.randrange(pool_links))
        if rng.random() < 0.3:
            text += " " + " ".join(
                hashtags[min(int(rng.paretovariate(1.2)), 4999)] for _ in range(rng.randint(1, 3))
            )
        out.append(Msg(len(out) + 1, account, "twitter", text, t))

    groups = [[rng.randrange(n_accounts) for _ in range(10)] for _ in range(max(1, n // 10_000))]
    while len(out) < n:
        if rng.random() < 0.02:  # a coordinated burst: one group, one content, seconds apart
            members = rng.choice(groups)
            t0 = start + rng.random() * days * 86400
            what = rng.choice(("repost", "link", "text"))
            value = rng.randrange(
                {"repost": originals, "link": pool_links, "text": len(talking)}[what]
            )
            for a in members:
                if len(out) < n:
                    add(a, float(int(t0 + rng.random() * 30)), what, value)
            continue
        t = float(int(start + rng.random() * days * 86400))
        account = rng.randrange(n_accounts)
        r = rng.random()
        if r < 0.3:
            add(account, t, "repost", min(int(rng.paretovariate(1.1)), originals - 1))
        elif r < 0.4:
            add(account, t, "text", rng.randrange(len(talking)))
        else:
            add(account, t, "plain", 0)
    return out


def messages(source: str, n: int) -> list[Msg]:
    """The input of a phase: the IRA sample or N generated posts."""
    return ira_messages() if source == "ira" else generated(n)


# ---------------------------------------------------------------------------- the two tools


def elshi_edges(msgs: list[Msg]) -> tuple[dict[str, dict[tuple[int, int], int]], float]:
    """elshi's edges of the compared kinds, from the posts' text; and the seconds taken."""
    from elshi.coordination import engine
    from elshi.coordination.keys import keys_of

    t0 = time.perf_counter()
    rb = engine.RowBuilder()
    kinds = frozenset(COMPARED)
    with engine.gc_paused():
        for m in msgs:
            rb.add(m.id, m.account, round(m.time * 1000), keys_of(m, kinds=kinds))
    out = {}
    for kind in COMPARED:
        acts = engine.co_actions(rb.rows(kind), window=WINDOW)
        out[kind] = engine.edges(acts, min_weight=MIN_WEIGHT).as_dict()
    return out, time.perf_counter() - t0


def peer_rows(msgs: list[Msg]) -> Iterator[tuple[Any, ...]]:
    """The peer's input: elshi's repost key as repost_id and normalised links as urls."""
    from elshi.coordination.keys import links, repost_key

    for m in msgs:
        repost = repost_key(m.platform, m.text, m.repost_of, m.extra)
        urls = [] if repost else links(m.text, m.extra)
        yield (str(m.id), str(m.account), str(m.account), repost or "", "", m.text, m.time, urls)


def peer_edges(
    msgs: list[Msg], work: Path
) -> tuple[dict[str, dict[tuple[int, int], int]], float, float]:
    """The peer's edges; its seconds to load the messages, and to compute the networks."""
    import contextlib
    import io

    from coordination_network_toolkit import compute_networks as cn
    from coordination_network_toolkit import preprocess

    path = work / "peer.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    quiet = contextlib.redirect_stdout(io.StringIO())
    rows = list(peer_rows(msgs))
    t0 = time.perf_counter()
    with quiet:
        preprocess.preprocess_data(str(path), rows)
    loaded = time.perf_counter() - t0
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        cn.compute_co_retweet_parallel(str(path), WINDOW, n_threads=2, min_edge_weight=MIN_WEIGHT)
        cn.compute_co_link_network(str(path), WINDOW, n_threads=2, min_edge_weight=MIN_WEIGHT)
        cn.compute_co_tweet_network(str(path), WINDOW, min_edge_weight=MIN_WEIGHT, n_threads=2)
    computed = time.perf_counter() - t0
    con = sqlite3.connect(path)
    out = {
        kind: {
            (int(a), int(b)): int(w)
            for a, b, w in con.execute(
                f"select user_1, user_2, weight from {table} where user_1 != user_2"
            )
        }
        for kind, table in COMPARED.items()
    }
    con.close()
    return out, loaded, computed


# ---------------------------------------------------------------------------- phases


def phase_compare(source: str, n: int, work: Path, with_peer: bool) -> dict[str, Any]:
    msgs = messages(source, n)
    mine, seconds = elshi_edges(msgs)
    out: dict[str, Any] = {
        "posts": len(msgs),
        "elshi_seconds": seconds,
        "edges": {k: len(v) for k, v in mine.items()},
        "peak_mb": peak_mb(),
    }
    if with_peer:
        theirs, loaded, computed = peer_edges(msgs, work)
        out |= {
            "peer_load_seconds": loaded,
            "peer_compute_seconds": computed,
            "peer_edges": {k: len(v) for k, v in theirs.items()},
            "identical": {k: mine[k] == theirs[k] for k in COMPARED},
        }
    return out


def write_posts(db_path: Path, msgs: list[Msg], first: int) -> None:
    """Store posts (and their authors) with plain INSERTs, as an import leaves them."""
    from elshi.listen.text import content_hash

    con = sqlite3.connect(db_path)
    con.execute("pragma synchronous=normal")
    con.executemany(
        "insert or ignore into author (id, platform, handle, extra) values (?, 'twitter', ?, '{}')",
        sorted({(m.account + 1, f"acct{m.account}") for m in msgs}),
    )
    now = datetime.now(UTC).isoformat()
    con.executemany(
        "insert into post (id, platform, external_id, connector, author_id, text, "
        "published_at, collected_at, metrics, repost_of, content_hash, near_dup_pending, extra) "
        "values (?, 'twitter', ?, 'bench', ?, ?, ?, ?, '{}', ?, ?, 0, '{}')",
        (
            (
                first + m.id,
                f"g{first + m.id}",
                m.account + 1,
                m.text,
                datetime.fromtimestamp(m.time, UTC)
                .replace(tzinfo=None)
                .isoformat(sep=" ", timespec="microseconds"),
                now,
                m.repost_of,
                content_hash(m.text),
            )
            for m in msgs
        ),
    )
    con.commit()
    con.close()


def write_generated(
    db_path: Path, n: int, seed: int, start: float, days: float, first: int
) -> None:
    """Generate N posts and store them (in a process of its own)."""
    write_posts(db_path, generated(n, seed=seed, start=start, days=days), first)


def phase_update(n: int, work: Path) -> dict[str, Any]:
    db_path = work / "update.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    os.environ["ELSHI_HOME"] = str(work)
    os.environ["ELSHI_DATABASE_URL"] = f"sqlite:///{db_path}"
    from elshi.coordination import service
    from elshi.db import Database
    from elshi.migrate import migrate
    from elshi.settings import load_settings

    db = Database(load_settings())
    migrate(db.engine)
    # The posts are made and written by another process: their million Python objects are
    # the bench's memory, not the update's.
    spawn = get_context("spawn")
    with spawn.Pool(1) as pool:
        pool.apply(write_generated, (db_path, n, 7, START, DAYS, 0))
    params = service.Params(window=WINDOW, narrow=10, min_weight=MIN_WEIGHT)
    t0 = time.perf_counter()
    first = service.update(db, params=params)
    seconds = time.perf_counter() - t0
    # The next batch arrives as a poll brings it: the following hour's posts.
    with spawn.Pool(1) as pool:
        pool.apply(write_generated, (db_path, max(1, n // 100), 8, START + DAYS * 86400, 1 / 24, n))
    t0 = time.perf_counter()
    more = service.update(db, params=params)
    return {
        "posts": first.posts,
        "seconds": seconds,
        "co_actions": sum(first.co_actions.values()),
        "edges": first.edges,
        "groups": first.groups,
        "more_posts": more.posts,
        "more_seconds": time.perf_counter() - t0,
        "more_full": more.full,
        "peak_mb": peak_mb(),
    }


QUALITY = {"window": 600, "min_weight": 2, "min_participation": 2, "percentile": 0.99}


def combined_groups(
    by_kind: dict[str, Any], accounts_of: dict[int, str] | None = None
) -> dict[str, Any]:
    """Groups of the combined network at CooRTweet's documented parameters."""
    import numpy as np

    from elshi.coordination import engine
    from elshi.coordination.groups import find_groups

    acts = engine.CoActions.empty()
    for rows in by_kind.values():
        acts = engine.merge(acts, engine.co_actions(rows, window=QUALITY["window"]))
    e = engine.edges(acts, min_weight=QUALITY["min_weight"])
    posts_per_account: dict[int, set[int]] = {}
    for a, post in zip(acts.account.tolist(), acts.post.tolist(), strict=True):
        posts_per_account.setdefault(a, set()).add(post)
    active = {a for a, ps in posts_per_account.items() if len(ps) >= QUALITY["min_participation"]}
    keep = np.isin(e.source, list(active)) & np.isin(e.target, list(active))
    e = engine.above_percentile(
        engine.Edges(e.source[keep], e.target[keep], e.weight[keep], e.fast[keep]),
        QUALITY["percentile"],
    )
    groups = find_groups(e)
    out: dict[str, Any] = {
        "co_actions": len(acts),
        "edges": len(e),
        "groups": len(groups),
        "sizes": [len(g.members) for g in groups[:10]],
        "grouped": sum(len(g.members) for g in groups),
    }
    if accounts_of is not None:
        out["same_category"] = sum(
            1
            for s_, t_ in zip(e.source.tolist(), e.target.tolist(), strict=True)
            if accounts_of.get(s_) == accounts_of.get(t_)
        )
    return out


def phase_quality() -> dict[str, Any]:
    """Groups on german_elections.csv (co-URL, co-hashtag, co-domain, co-image) and on the
    IRA sample (every kind), with the share of IRA edges within one troll category."""
    import csv

    from elshi.coordination import engine
    from elshi.coordination.keys import keys_of

    data = shared_data()
    out: dict[str, Any] = {}
    german = data / "coortweet" / "german_elections.csv"
    if german.is_file():
        rb = engine.RowBuilder()
        accounts: dict[str, int] = {}
        posts: dict[str, int] = {}
        columns = {
            "url_id": "link",
            "hashtag_id": "hashtag",
            "domain_id": "domain",
            "phash_id": "image",
        }
        with german.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                keys = [(kind, row[col]) for col, kind in columns.items() if row[col]]
                rb.add(
                    posts.setdefault(row["post_id"], len(posts) + 1),
                    accounts.setdefault(row["account_id"], len(accounts) + 1),
                    round(float(row["timestamp"]) * 1000),
                    keys,
                )
        out["german"] = {"rows": len(posts), "accounts": len(accounts)} | combined_groups(
            {k: rb.rows(k) for k in rb.kinds()}
        )
    ira = data / "ira-troll-tweets-sample"
    if ira.is_dir():
        with (ira / "authors.csv").open(encoding="utf-8", newline="") as fh:
            category = {r["author_id"]: r["account_category"] for r in csv.DictReader(fh)}
        msgs = ira_messages()
        rb = engine.RowBuilder()
        for m in msgs:
            rb.add(m.id, m.account, round(m.time * 1000), keys_of(m))
        handles = {m.account: category.get(m.handle, "") for m in msgs}
        kinds = [k for k in rb.kinds() if k != "domain"]
        out["ira"] = {"posts": len(msgs)} | combined_groups({k: rb.rows(k) for k in kinds}, handles)
    return out


def child(args: argparse.Namespace) -> None:
    work = Path(args.work)
    if args.phase == "quality":
        print(json.dumps(phase_quality()))
        return
    if args.phase == "update":
        out = phase_update(args.posts, work)
    else:
        out = phase_compare(args.phase, args.posts, work, not args.skip_peer)
    print(json.dumps(out))


def run_phase(*extra: str) -> dict[str, Any]:
    """Run a phase in a child process and return its figures."""
    done = subprocess.run(
        [sys.executable, __file__, *extra], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"phase failed: {' '.join(extra)}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def verdict(ok: bool) -> str:
    """Return PASS or FAIL."""
    return "PASS" if ok else "FAIL"


def report_compare(label: str, r: dict[str, Any], results: list[tuple[str, bool]]) -> None:
    edges = ", ".join(f"{k} {v:,}" for k, v in r["edges"].items())
    print(
        f"{label}: {r['posts']:,} posts; elshi {r['elshi_seconds']:.2f} s, edges {edges}; "
        f"peak {r['peak_mb']:.0f} MB"
    )
    results.append(
        (
            f"{label}: elshi peak memory {r['peak_mb']:.0f} MB (target < 1024 MB)",
            r["peak_mb"] < 1024,
        )
    )
    if "identical" not in r:
        return
    peer = r["peer_load_seconds"] + r["peer_compute_seconds"]
    print(
        f"{label}: peer {peer:.2f} s (loading {r['peer_load_seconds']:.2f} s, networks "
        f"{r['peer_compute_seconds']:.2f} s), edges "
        + ", ".join(f"{k} {v:,}" for k, v in r["peer_edges"].items())
    )
    for kind, same in r["identical"].items():
        results.append((f"{label}: {kind} edge sets identical to the peer's", same))
    ratio = peer / r["elshi_seconds"]
    print(f"{label}: elshi is {ratio:.1f}x faster than the peer")
    if label == "generated":
        results.append((f"generated: elshi {ratio:.1f}x faster (target >= 5x)", ratio >= 5))


def main() -> None:
    """Run every phase and print the figures against the targets."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--posts", type=int, default=1_000_000, help="Generated posts.")
    p.add_argument("--skip-peer", action="store_true", help="Run elshi alone.")
    p.add_argument("--skip-ira", action="store_true", help="Skip the IRA sample.")
    p.add_argument("--keep", type=Path, help="Keep the databases in this folder.")
    p.add_argument(
        "--peer-site",
        type=Path,
        help="The site-packages folder of another environment that has the peer installed "
        "(appended to the import path, after this environment's packages).",
    )
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.peer_site:
        sys.path.append(str(args.peer_site))
    if args.phase:
        child(args)
        return
    if not args.skip_peer:
        try:
            import coordination_network_toolkit  # noqa: F401
        except ImportError:
            raise SystemExit(
                "the peer is not installed: pip install 'elshi[bench]' (or --skip-peer)"
            ) from None
    work = args.keep or Path(tempfile.mkdtemp(prefix="elshi-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"elshi coordination bench: {args.posts:,} generated posts, window {WINDOW} s, "
        f"min edge weight {MIN_WEIGHT}, work dir {work}"
    )
    results: list[tuple[str, bool]] = []
    common = ["--work", str(work), "--posts", str(args.posts)]
    if args.skip_peer:
        common.append("--skip-peer")
    if args.peer_site:
        common += ["--peer-site", str(args.peer_site)]
    ira = shared_data() / "ira-troll-tweets-sample" / "tweets"
    if args.skip_ira:
        pass
    elif ira.is_dir():
        report_compare("IRA sample", run_phase("--phase", "ira", *common), results)
    else:
        print(f"IRA sample: skipped, {ira} not found (set ELSHI_SHARED_DATA)")
    report_compare("generated", run_phase("--phase", "generated", *common), results)
    q = run_phase("--phase", "quality", *common)
    for name, label in (("german", "german_elections.csv"), ("ira", "IRA sample")):
        if name not in q:
            continue
        g = q[name]
        print(
            f"quality, {label} (window {QUALITY['window']} s, min participation "
            f"{QUALITY['min_participation']}, edge weight quantile {QUALITY['percentile']}): "
            f"{g['co_actions']:,} co-actions, {g['edges']:,} edges, {g['groups']:,} groups of "
            f"{g['grouped']:,} accounts (largest {g['sizes']})"
            + (
                f"; {g['same_category']:,} of the edges join accounts of one troll category"
                if "same_category" in g
                else ""
            )
        )
    u = run_phase("--phase", "update", *common)
    print(
        f"stored update: {u['posts']:,} new posts in {u['seconds']:.1f} s: "
        f"{u['co_actions']:,} co-actions, {u['edges']:,} combined edges, {u['groups']:,} groups; "
        f"then {u['more_posts']:,} more in {u['more_seconds']:.1f} s "
        f"({'full' if u['more_full'] else 'incremental'}); peak {u['peak_mb']:.0f} MB"
    )
    results.append(
        (
            f"update of {u['posts']:,} new posts {u['seconds']:.1f} s (target < 60 s)",
            u["seconds"] < 60,
        )
    )
    results.append(
        (f"update peak memory {u['peak_mb']:.0f} MB (target < 1024 MB)", u["peak_mb"] < 1024)
    )
    results.append(("the second update is incremental", not u["more_full"]))
    print()
    for label, ok in results:
        print(f"{verdict(ok)}  {label}")
    raise SystemExit(0 if all(ok for _, ok in results) else 1)


if __name__ == "__main__":
    main()
