"""Benchmark file imports and search: elshi's import path against bare sqlite3.

Run: python bench/ingest.py [--rows 1000000] [--skip-ira] [--keep DIR]

Phases, each in its own child process so that peak memory (RSS high-water) is per phase:
  ira       import every IRA troll-tweet file (../shared/data or ELSHI_SHARED_DATA) with
            `tabular --profile ira` into a fresh SQLite database
  csv       import a generated N-row multilingual (kk/ru/en) CSV with the generic profile
  baseline  the same CSV with the stdlib csv and sqlite3 modules only: executemany INSERT into
            a plain table plus the FTS5 rows, one transaction per batch of the same size
  search    one-word searches with a language filter and a time range (limit 20) over the
            N-row database through elshi.listen.service.search_posts

Targets: elshi/baseline rate ratio >= 0.5, peak memory < 500 MB for the CSV import,
search median and p95 < 100 ms.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Rows per transaction for elshi (ELSHI_INGEST_BATCH_SIZE) and for the baseline alike.
BATCH = int(os.environ.get("ELSHI_INGEST_BATCH_SIZE", "2000"))
#: (word, language): everyday words of each language, of different frequencies.
SEARCH_WORDS = [
    ("Қазақстан", "kk"),
    ("президент", "kk"),
    ("халық", "kk"),
    ("мемлекет", "kk"),
    ("России", "ru"),
    ("президент", "ru"),
    ("переговоры", "ru"),
    ("министр", "ru"),
    ("police", "en"),
    ("Trump", "en"),
    ("America", "en"),
    ("school", "en"),
]
#: Used only when ../shared/data is absent.
FALLBACK = {
    "kk": [
        "Қазақстан өкілдері Берлинде экономикалық ынтымақтастық туралы келіссөз жүргізді.",
        "Шетелдегі азаматтар назарына: консулдық есепке тұру енді онлайн қолжетімді.",
        "Президент халыққа жолдауында мемлекет дамуының жаңа кезеңін атады.",
    ],
    "ru": [
        "Представители Казахстана провели переговоры об экономическом сотрудничестве.",
        "Министр иностранных дел России встретился с коллегой в Астане.",
        "Вниманию граждан за рубежом: консульский учёт теперь доступен онлайн.",
    ],
    "en": [
        "Officials held talks in Astana on economic cooperation and trade.",
        "Police said the school in America was closed after the storm.",
        "Trump said the talks would go on next week.",
    ],
}


def shared_data() -> Path:
    """Return ../shared/data or ELSHI_SHARED_DATA."""
    return Path(os.environ.get("ELSHI_SHARED_DATA", ROOT.parent / "shared" / "data"))


def peak_mb() -> float:
    """Return the RSS high-water mark in MB: this process's plus its largest child's.

    A big import maps in a child process; the two peaks are added (an upper bound of what both
    held at once).
    """
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + child) / 1024


def cpu_seconds() -> float:
    """Return the CPU time (user + system, all threads) this process and its children used."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def sentence_pools() -> dict[str, list[str]]:
    """Return real sentences per language from ../shared/data (else a few fallback ones)."""
    base = shared_data()
    pools: dict[str, list[str]] = {"kk": [], "ru": [], "en": []}
    for conllu in sorted((base / "ud-kazakh-ktb").glob("*.conllu")):
        for line in conllu.read_text(encoding="utf-8").splitlines():
            if line.startswith("# text = "):
                pools["kk"].append(line[9:].strip())
    ner = base / "kaznerd" / "IOB2_valid.txt"
    if ner.is_file():
        words: list[str] = []
        for line in ner.read_text(encoding="utf-8").splitlines():
            if line.strip():
                words.append(line.split(" ")[0])
            elif words:
                pools["kk"].append(" ".join(words).replace(" ,", ",").replace(" .", "."))
                words = []
    for name in ("train_data.csv", "validation_data_labeled.csv"):
        path = base / "rusentne-2023" / name
        if path.is_file():
            with path.open(encoding="utf-8", newline="") as fh:
                pools["ru"].extend(row["sentence"] for row in csv.DictReader(fh, delimiter="\t"))
    for path in sorted((base / "ira-troll-tweets-sample" / "tweets").glob("*.csv.gz")):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            pools["en"].extend(
                r["content"] for r in csv.DictReader(fh) if r["language"] == "English"
            )
    for lang, pool in pools.items():
        if len(pool) < 100:
            pools[lang] = FALLBACK[lang]
    return {lang: sorted(set(pool)) for lang, pool in pools.items()}


def _text(rng: random.Random, pool: list[str]) -> str:
    want = rng.randint(100, 200)
    text = rng.choice(pool)
    while len(text) < want:
        text += " " + rng.choice(pool)
    return text[:200].rstrip()


def generate(path: Path, rows: int, seed: int = 11) -> None:
    """Write a kk/ru/en CSV in the generic profile's layout from real sentences."""
    rng = random.Random(seed)
    pools = sentence_pools()
    authors = [f"user{n:05d}" for n in range(20_000)]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    span = int(timedelta(days=730).total_seconds())
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text", "author", "author_name", "published_at", "url", "lang"])
        for n in range(rows):
            lang = rng.choice(("kk", "kk", "ru", "ru", "en"))
            author = rng.choice(authors)
            when = start + timedelta(seconds=rng.randrange(span))
            w.writerow(
                [
                    f"g{n}",
                    _text(rng, pools[lang]),
                    author,
                    author.title(),
                    when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    f"https://example.org/p/{n}",
                    lang,
                ]
            )


def _settings(db_path: Path) -> Any:
    os.environ["ELSHI_HOME"] = str(db_path.parent)
    os.environ["ELSHI_DATABASE_URL"] = f"sqlite:///{db_path}"
    os.environ.setdefault("ELSHI_DEMO", "1")
    from elshi.settings import load_settings

    return load_settings()


def phase_import(target: str, profile: str, db_path: Path) -> dict[str, Any]:
    """Import a file or folder with the tabular connector, as `elshi ingest` does."""
    from elshi.connectors.base import FetchContext
    from elshi.db import Database
    from elshi.listen.flows import import_with
    from elshi.migrate import migrate
    from elshi.plugins import get_connector

    settings = _settings(db_path)
    db = Database(settings)
    migrate(db.engine)
    ctx = FetchContext(settings=settings)
    t0, c0 = time.perf_counter(), cpu_seconds()
    report = import_with(
        db, connector=get_connector("tabular"), config={"path": target, "profile": profile}, ctx=ctx
    )
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    return {
        "read": report.read,
        "stored": report.stored,
        "duplicates": report.duplicates,
        "quarantined": report.quarantined,
        "seconds": seconds,
        "cpu": cpu,
        "rate": report.read / seconds,
        "peak_mb": peak_mb(),
    }


def phase_baseline(target: str, db_path: Path) -> dict[str, Any]:
    """Insert the same rows with bare sqlite3: a plain table plus FTS5, same batch size.

    The plain table has the post table's columns and receives what elshi stores for each row
    (the values as read, the raw row as JSON), but has no secondary index, no dedupe, no
    parsing, mapping or near-duplicate hashing: the floor any importer on SQLite pays.
    """
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(
        "CREATE TABLE post (id INTEGER PRIMARY KEY, source_id INTEGER, platform TEXT, "
        "external_id TEXT, connector TEXT, url TEXT, author_id INTEGER, author_handle TEXT, "
        "author_name TEXT, title TEXT, text TEXT, lang TEXT, published_at TEXT, "
        "collected_at TEXT, metrics TEXT, reply_to TEXT, repost_of TEXT, content_hash TEXT, "
        "dup_of_id INTEGER, extra TEXT, raw TEXT, raw_kind TEXT)"
    )
    con.execute(
        "CREATE VIRTUAL TABLE post_fts USING fts5(title, body, author, content='', "
        "tokenize='unicode61 remove_diacritics 2')"
    )
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    t0, c0 = time.perf_counter(), cpu_seconds()
    n = 0
    next_id = 1
    with open(target, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        while True:
            batch = [row for _, row in zip(range(BATCH), reader, strict=False)]
            if not batch:
                break
            rows = [
                (
                    next_id + i,
                    None,
                    "generic",
                    r[0],
                    "tabular",
                    r[5],
                    None,
                    r[2],
                    r[3],
                    None,
                    r[1],
                    r[6],
                    r[4],
                    now,
                    "{}",
                    None,
                    None,
                    None,
                    None,
                    "{}",
                    dumps(dict(zip(header, r, strict=True))),
                    "generic",
                )
                for i, r in enumerate(batch)
            ]
            with con:
                con.executemany(f"INSERT INTO post VALUES ({', '.join('?' * 22)})", rows)
                con.executemany(
                    "INSERT INTO post_fts(rowid, title, body, author) VALUES (?, ?, ?, ?)",
                    [(r[0], "", r[10], f"{r[7]} {r[8]}") for r in rows],
                )
            next_id += len(rows)
            n += len(rows)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    con.close()
    return {
        "read": n,
        "stored": n,
        "seconds": seconds,
        "cpu": cpu,
        "rate": n / seconds,
        "peak_mb": peak_mb(),
    }


def phase_search(db_path: Path, repeats: int) -> dict[str, Any]:
    """Time one-word searches with a language filter and a one-year range, limit 20."""
    from elshi.db import Database
    from elshi.listen.service import SearchQuery, search_posts

    settings = _settings(db_path)
    db = Database(settings)
    since = datetime(2024, 6, 1, tzinfo=UTC)
    until = datetime(2025, 6, 1, tzinfo=UTC)
    timings: list[float] = []
    words: dict[str, list[Any]] = {}
    for _ in range(repeats):
        for word, lang in SEARCH_WORDS:
            query = SearchQuery(q=word, lang=lang, since=since, until=until, limit=20)
            with db.session() as s:
                t0 = time.perf_counter()
                total, page = search_posts(db=s, query=query)
                ms = (time.perf_counter() - t0) * 1000
            timings.append(ms)
            words.setdefault(f"{word}/{lang}", [total, []])[1].append(ms)
            assert len(page) == min(20, total)
    timings.sort()
    return {
        "median_ms": statistics.median(timings),
        "p95_ms": timings[max(0, int(len(timings) * 0.95) - 1)],
        "max_ms": timings[-1],
        "queries": len(timings),
        "peak_mb": peak_mb(),
        "words": {k: [t, statistics.median(ms)] for k, (t, ms) in words.items()},
    }


def child(args: argparse.Namespace) -> None:
    """Run one phase and print its figures as JSON."""
    if args.phase == "import":
        out = phase_import(args.target, args.profile, Path(args.db))
    elif args.phase == "baseline":
        out = phase_baseline(args.target, Path(args.db))
    else:
        out = phase_search(Path(args.db), args.repeats)
    print(json.dumps(out))


def run_phase(*extra: str) -> dict[str, Any]:
    """Run a phase in a child process and return its figures."""
    cmd = [sys.executable, __file__, "--phase", *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"phase failed: {' '.join(extra)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def verdict(ok: bool) -> str:
    """Return PASS or FAIL."""
    return "PASS" if ok else "FAIL"


def main() -> None:
    """Run every phase and print the figures against the targets."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000, help="Rows in the generated CSV.")
    p.add_argument("--skip-ira", action="store_true", help="Skip the IRA sample import.")
    p.add_argument("--keep", type=Path, help="Keep the files in this folder.")
    p.add_argument("--repeats", type=int, default=3, help="Rounds of the search words.")
    p.add_argument(
        "--batch",
        type=int,
        default=BATCH,
        help="Rows per transaction, for elshi and the baseline alike.",
    )
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--target", help=argparse.SUPPRESS)
    p.add_argument("--profile", default="generic", help=argparse.SUPPRESS)
    p.add_argument("--db", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phase:
        child(args)
        return

    os.environ["ELSHI_INGEST_BATCH_SIZE"] = str(args.batch)  # inherited by the phases
    work = args.keep or Path(tempfile.mkdtemp(prefix="elshi-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"elshi ingest bench: {args.rows:,} generated rows, batch {args.batch:,}, work dir {work}"
    )
    results: list[tuple[str, bool]] = []

    if not args.skip_ira:
        ira = shared_data() / "ira-troll-tweets-sample" / "tweets"
        if ira.is_dir():
            for suffix in ("", "-wal", "-shm"):
                (work / ("ira.db" + suffix)).unlink(missing_ok=True)
            r = run_phase(
                "import", "--target", str(ira), "--profile", "ira", "--db", str(work / "ira.db")
            )
            print(
                f"IRA sample: read {r['read']:,} stored {r['stored']:,} duplicates "
                f"{r['duplicates']:,} quarantined {r['quarantined']:,} in {r['seconds']:.1f} s "
                f"({r['cpu']:.1f} s CPU): {r['rate']:,.0f} posts/s, "
                f"peak {r['peak_mb']:.0f} MB"
            )
        else:
            print(f"IRA sample: skipped, {ira} not found (set ELSHI_SHARED_DATA)")

    data = work / f"generated-{args.rows}.csv"
    if not data.exists():
        t0 = time.perf_counter()
        generate(data, args.rows)
        print(
            f"generated {data.name} ({data.stat().st_size / 1e6:.0f} MB) in "
            f"{time.perf_counter() - t0:.0f} s"
        )
    for name in ("csv.db", "baseline.db"):
        for suffix in ("", "-wal", "-shm"):
            (work / (name + suffix)).unlink(missing_ok=True)
    base = run_phase("baseline", "--target", str(data), "--db", str(work / "baseline.db"))
    print(
        f"bare sqlite3 baseline: {base['stored']:,} rows in {base['seconds']:.1f} s "
        f"({base['cpu']:.1f} s CPU): {base['rate']:,.0f} rows/s, peak {base['peak_mb']:.0f} MB"
    )
    imp = run_phase(
        "import", "--target", str(data), "--profile", "generic", "--db", str(work / "csv.db")
    )
    print(
        f"elshi import: read {imp['read']:,} stored {imp['stored']:,} in {imp['seconds']:.1f} s "
        f"({imp['cpu']:.1f} s CPU): {imp['rate']:,.0f} posts/s, peak {imp['peak_mb']:.0f} MB"
    )
    ratio = imp["rate"] / base["rate"]
    print(f"CPU seconds, baseline over elshi (all processes): {base['cpu'] / imp['cpu']:.2f}")
    results.append((f"import/baseline rate ratio {ratio:.2f} (target >= 0.5)", ratio >= 0.5))
    results.append(
        (
            f"peak memory of the CSV import {imp['peak_mb']:.0f} MB (target < 500 MB)",
            imp["peak_mb"] < 500,
        )
    )
    results.append(
        (f"all {args.rows:,} rows stored ({imp['stored']:,})", imp["stored"] == args.rows)
    )

    s = run_phase("search", "--db", str(work / "csv.db"), "--repeats", str(args.repeats))
    print(
        f"search over {imp['stored']:,} posts, {s['queries']} queries (one word + lang + "
        f"one-year range, limit 20): median {s['median_ms']:.1f} ms, p95 {s['p95_ms']:.1f} ms, "
        f"max {s['max_ms']:.1f} ms"
    )
    for key, (total, ms) in s["words"].items():
        print(f"  {key:>16}: {total:>7,} matches, median {ms:6.1f} ms")
    results.append(
        (f"search median {s['median_ms']:.1f} ms (target < 100 ms)", s["median_ms"] < 100)
    )
    results.append((f"search p95 {s['p95_ms']:.1f} ms (target < 100 ms)", s["p95_ms"] < 100))
    for text, ok in results:
        print(f"{verdict(ok)}  {text}")
    if not args.keep:
        for f in work.iterdir():
            f.unlink()
        work.rmdir()
    raise SystemExit(0 if all(ok for _, ok in results) else 1)


if __name__ == "__main__":
    main()
