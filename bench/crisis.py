"""Benchmark crisis mode on PostgreSQL: queuing recipients, and the check-in endpoint.

Run: python bench/crisis.py [--people 100000] [--web-workers 2] [--clients 3] [--seconds 10]

Phases (a throwaway PostgreSQL database, ELSHI_BENCH_POSTGRES_URL or the test server):
  queue    N registered citizens (written first, not timed); then the crisis is created,
           approved and sent: the people in the area are copied and their deliveries queued
           with set-based INSERT ... SELECT. Seconds for the send. Target: 100,000 in < 10 s.
  checkin  `elshi web --workers W` serves the check-in POST; the load comes from `wrk` (C, 2
           threads, 64 connections, a Lua script that posts each answer with a signed link
           of another person and a fresh form nonce) when it is installed
           (`apt-get install wrk`), else from C Python processes (raw asyncio HTTP/1.1
           keep-alive). Requests/s; then the answers in the database are counted: every
           accepted (200) answer must be stored (lost = accepted - stored).
  surge    open loop: a base rate (half the measured maximum) for 10 s, 5x that rate for
           5 s, then the base rate again; prints per-second completions and p95 latency and
           how long after the surge p95 latency is back within 2x the base.
           Target: >= 1,000 check-ins/s, 0 lost, recovery within 60 s.

Prints figures only; asserts nothing. The machine is shared: figures are indicative.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get(
    "ELSHI_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SECRET = "bench-secret-" + "x" * 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_database() -> str:
    """Create and migrate a throwaway PostgreSQL database; return its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from elshi.migrate import migrate

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"elshi_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    eng = create_engine(url)
    migrate(eng)
    eng.dispose()
    return url


def drop_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def bench_queue(url: str, people: int) -> tuple[int, list[int]]:
    """Populate, then time create + approve + send; return the crisis id and recipient ids."""
    from sqlalchemy import select
    from tests.crisis.support import MESSAGES, populate, team

    from elshi.crisis import service
    from elshi.crisis.models import Recipient
    from elshi.db import Database
    from elshi.settings import load_settings

    settings = load_settings(database_url=url, secret_key=SECRET)
    db = Database(settings)
    start = time.perf_counter()
    t = team(db)
    for i in range(0, people, 20_000):
        populate(db, t.mission_id, min(20_000, people - i), prefix=f"b{i}x")
    print(f"queue    wrote {people:,} citizens in {time.perf_counter() - start:.1f} s (not timed)")
    start = time.perf_counter()
    with db.session() as s:
        area = service.parse_area({"countries": "TR", "cities": "Istanbul"})
        b = service.create_crisis(
            db=s,
            actor=t.officer,
            mission_id=t.mission_id,
            title="Bench",
            area=area,
            audience="present",
            messages=MESSAGES,
        )
        bid, cid = b.id, b.crisis_id
    created = time.perf_counter() - start
    with db.session() as s:
        service.approve(db=s, actor=t.officer2, broadcast_id=bid)
    start = time.perf_counter()
    with db.session() as s:
        counts = service.send(db=s, actor=t.officer2, broadcast_id=bid)
    took = time.perf_counter() - start
    total = sum(counts.values())
    print(
        f"queue    create (with area count) {created:.2f} s; send {took:.2f} s: {people:,} "
        f"recipients and {total:,} deliveries queued ({counts}); "
        f"{people / took:,.0f} recipients/s  [target: 100,000 in < 10 s]"
    )
    with db.session() as s:
        ids = list(s.scalars(select(Recipient.id).where(Recipient.crisis_id == cid)))
    db.dispose()
    return cid, ids


# ---------------------------------------------------------------------------- load generator


async def _post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes
) -> int:
    writer.write(
        (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
    )
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


def _jobs(tokens: list[str], tag: str) -> Iterator[tuple[str, bytes]]:
    """Answers without end: the links in turn, each post with a fresh form nonce."""
    for i in itertools.count():
        yield f"/c/{tokens[i % len(tokens)]}", f"answer=safe&n={tag}{i:010d}".encode()


async def _closed_loop(
    port: int, jobs: Iterator[tuple[str, bytes]], conns: int, seconds: float
) -> dict[str, Any]:
    deadline = time.perf_counter() + seconds
    ok = other = 0
    latencies: list[float] = []

    async def conn() -> None:
        nonlocal ok, other
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                path, body = next(jobs)
                t0 = time.perf_counter()
                status = await _post(reader, writer, path, body)
                latencies.append(time.perf_counter() - t0)
                if status == 200:
                    ok += 1
                else:
                    other += 1
        finally:
            writer.close()

    await asyncio.gather(*(conn() for _ in range(conns)), return_exceptions=True)
    return {"ok": ok, "other": other, "lat": latencies}


async def _open_loop(
    port: int, jobs: Iterator[tuple[str, bytes]], conns: int, schedule: list[tuple[float, float]]
) -> dict[str, Any]:
    """Send at the scheduled rates [(seconds, per second), ...]; a request waits for a free
    connection when all are busy (the backlog shows as latency from its scheduled time)."""
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(conns):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    done: list[tuple[float, float, int]] = []  # (finished at, latency, status)
    start = time.perf_counter()
    tasks = []

    async def one(at: float, path: str, body: bytes) -> None:
        reader, writer = await pool.get()
        try:
            status = await _post(reader, writer, path, body)
        except (OSError, asyncio.IncompleteReadError):
            status = 0
        now = time.perf_counter()
        done.append((now - start, now - at, status))
        pool.put_nowait((reader, writer))

    t = 0.0
    for seconds, rate in schedule:
        end = t + seconds
        step = 1.0 / rate
        while t < end:
            at = start + t
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            path, body = next(jobs)
            tasks.append(asyncio.create_task(one(at, path, body)))
            t += step
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait()[1].close()
    return {"done": done}


def _client(args: tuple[str, int, list[str], str, int, float, Any]) -> dict[str, Any]:
    mode, port, tokens, tag, conns, seconds, schedule = args
    jobs = _jobs(tokens, tag)
    if mode == "closed":
        return asyncio.run(_closed_loop(port, jobs, conns, seconds))
    return asyncio.run(_open_loop(port, jobs, conns, schedule))


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[int(len(values) * 0.95) - 1 if len(values) > 1 else 0]


def _count_answers(url: str) -> int:
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    with eng.connect() as conn:
        n = int(conn.execute(text("SELECT count(*) FROM crisis_checkin")).scalar() or 0)
    eng.dispose()
    return n


WRK_SCRIPT = r"""
local tokens = {}
for line in io.lines(os.getenv("CRISIS_TOKENS")) do tokens[#tokens + 1] = line end
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  threads[#threads + 1] = thread
end
function init(args)
  n = 0
  ok = 0
  other = 0
end
function request()
  n = n + 1
  local tok = tokens[((n * 7919) + id * 104729) % #tokens + 1]
  local body = string.format("answer=safe&n=w%02dx%010d", id, n)
  return wrk.format("POST", "/c/" .. tok,
    {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local total_ok, total_other = 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_other = total_other + t:get("other")
  end
  io.write(string.format("WRK ok=%d other=%d p95ms=%.1f errors=%d\n", total_ok, total_other,
    latency:percentile(95) / 1000, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
"""


def _wrk(port: int, tokens: list[str], seconds: float) -> dict[str, Any] | None:
    """Run wrk against the check-in endpoint; None when wrk is not installed."""
    import shutil
    import tempfile

    if not shutil.which("wrk"):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        script, names = Path(tmp) / "checkin.lua", Path(tmp) / "tokens.txt"
        script.write_text(WRK_SCRIPT, encoding="utf-8")
        names.write_text("\n".join(tokens) + "\n", encoding="utf-8")
        start = time.perf_counter()
        done = subprocess.run(
            [
                "wrk",
                "-t",
                "2",
                "-c",
                "64",
                "-d",
                f"{int(seconds)}s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}/",
            ],
            env=os.environ | {"CRISIS_TOKENS": str(names)},
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
        took = time.perf_counter() - start
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK ")), "")
    fields = dict(f.split("=") for f in line.split()[1:])
    if not fields:
        print(f"checkin  wrk failed: {done.stdout[-300:]} {done.stderr[-300:]}")
        return None
    return {
        "ok": int(fields["ok"]),
        "other": int(fields["other"]),
        "p95": float(fields["p95ms"]) / 1000,
        "errors": int(fields["errors"]),
        "took": took,
    }


def bench_checkin(
    url: str, cid: int, ids: list[int], *, web_workers: int, clients: int, seconds: float
) -> None:
    """Closed-loop maximum, count stored answers, then the surge."""
    from elshi.crisis import service

    tokens = [service.checkin_token(secret=SECRET, crisis_id=cid, recipient_id=rid) for rid in ids]
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELSHI_")}
    env.update(
        ELSHI_DATABASE_URL=url,
        ELSHI_SECRET_KEY=SECRET,
        ELSHI_HOME=str(Path("/tmp") / f"elshi-bench-{port}"),
        ELSHI_CRISIS_CHECKIN_PER_MINUTE="0",
        ELSHI_PORT=str(port),
        ELSHI_DATABASE_POOL_SIZE="10",
    )
    web = subprocess.Popen(
        [sys.executable, "-m", "elshi.cli", "web", "--workers", str(web_workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        time.sleep(1.5)  # every worker process up
        per = len(tokens) // clients
        with mp.Pool(clients) as pool:
            # warm-up: one request per worker connection path
            pool.map(
                _client,
                [
                    ("closed", port, tokens[i * per : i * per + 50], f"w{i}", 4, 2.0, None)
                    for i in range(clients)
                ],
            )
            before = _count_answers(url)
            measured = _wrk(port, tokens, seconds)
            if measured is not None:
                time.sleep(2)  # answers wrk sent before it stopped are still being committed
                stored = _count_answers(url) - before
                wrk_rate = measured["ok"] / seconds
                print(
                    f"checkin  {web_workers} web processes, wrk 2 threads x 64 connections: "
                    f"{measured['ok']:,} answered 200 in {seconds:.0f} s = {wrk_rate:,.0f} req/s "
                    f"(p95 {measured['p95'] * 1000:.0f} ms); other statuses "
                    f"{measured['other']:,}, socket errors {measured['errors']:,}; "
                    f"stored {stored:,} (in flight when wrk stopped: "
                    f"{max(0, stored - measured['ok']):,}); "
                    f"lost {max(0, measured['ok'] - stored):,}  "
                    "[target: >= 1,000 req/s, 0 lost]"
                )
            before = _count_answers(url)
            start = time.perf_counter()
            results = pool.map(
                _client,
                [
                    ("closed", port, tokens[i * per : (i + 1) * per], f"c{i}", 32, seconds, None)
                    for i in range(clients)
                ],
            )
            took = time.perf_counter() - start
        ok = sum(r["ok"] for r in results)
        other = sum(r["other"] for r in results)
        lat = [x for r in results for x in r["lat"]]
        stored = _count_answers(url) - before
        rate = ok / took
        best = max(rate, measured["ok"] / seconds if measured else 0.0)
        print(
            f"checkin  {web_workers} web processes, {clients} Python client processes x 32 "
            f"connections: {ok:,} answered 200 in {took:.1f} s = {rate:,.0f} req/s "
            f"(p95 {_p95(lat) * 1000:.0f} ms); other statuses {other:,}; stored {stored:,}; "
            f"lost {max(0, ok - stored):,}  [target: >= 1,000 req/s, 0 lost]"
        )
        base = max(50.0, best / 2)
        schedule = [(10.0, base / clients), (5.0, 5 * base / clients), (45.0, base / clients)]
        before = _count_answers(url)
        with mp.Pool(clients) as pool:
            results = pool.map(
                _client,
                [
                    ("open", port, tokens[i * per : (i + 1) * per], f"s{i}", 64, 0.0, schedule)
                    for i in range(clients)
                ],
            )
        done = sorted(x for r in results for x in r["done"])
        ok = sum(1 for _, _, st in done if st == 200)
        stored = _count_answers(url) - before
        base_lat = _p95([lat for at, lat, _ in done if 2 <= at < 10]) or 0.001
        print(
            f"surge    base {base:,.0f}/s for 10 s, {5 * base:,.0f}/s for 5 s, base again; "
            f"base p95 {base_lat * 1000:.0f} ms; {ok:,} answered 200, stored {stored:,}, "
            f"lost {ok - stored:,}"
        )
        recovered = None
        for second in range(15, 61):
            window = [lat for at, lat, _ in done if second <= at < second + 1]
            n = len(window)
            p95 = _p95(window)
            if second < 40 or second % 5 == 0:
                print(f"surge    t={second:2d} s  {n:5d} done  p95 {p95 * 1000:7.0f} ms")
            if recovered is None and n and p95 <= 2 * base_lat:
                recovered = second - 15
        print(
            "surge    back to base latency "
            + (f"{recovered} s after the surge" if recovered is not None else "not within 45 s")
            + "  [target: within 60 s]"
        )
    finally:
        web.terminate()
        try:
            web.wait(timeout=20)
        except subprocess.TimeoutExpired:
            web.kill()


def main() -> None:
    """Run every phase."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    url = make_database()
    try:
        cid, ids = bench_queue(url, args.people)
        bench_checkin(
            url, cid, ids, web_workers=args.web_workers, clients=args.clients, seconds=args.seconds
        )
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
