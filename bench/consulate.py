"""Load the e-consulate on PostgreSQL: 1,000,000 stored requests, 100 concurrent users.

Run: python bench/consulate.py [--requests 1000000] [--users 100] [--seconds 120]
                               [--think 7] [--stress-seconds 60] [--workers 2]
                               [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]

1. Creates a throwaway PostgreSQL database, migrates it and fills it in SQL: 10 missions with
   the default catalogue, 200,000 citizens and N service requests spread over them.
2. Starts `elshi web --workers W` in a child process on a loopback port (W processes, as one
   machine of the PostgreSQL scale-out runs it) and signs the load's users in by writing their
   sessions directly (the argon2 sign-in is not what is measured).
3. Realistic load (the headline figure): U users (citizens, and one in ten an officer) each
   go over the pages for S seconds, thinking between two pages. Think times are drawn from a
   negative exponential distribution with a mean of --think seconds (7 s) and cut at ten times
   the mean: the think-time rule of the TPC-W web benchmark (TPC Benchmark W, clause 5.3.1.1),
   a standard model of people browsing a web application. Pages: reads (my page, a request,
   the catalogue; the officer's queue and a request), writes (save a draft, post a message)
   and uploads (a PDF or a PNG document).
4. Stress load: the same users and pages in a closed loop with no think time for
   --stress-seconds: every user sends its next request as soon as the last one answers, so
   the latencies show queueing at the server's full throughput, not what a person waits.
5. 500 citizens with a submitted request press "Book" for the same slot of 100 places at once.

Both loads print throughput (requests/s) beside the percentiles, measured at the client, and
the server's own time of each request (its Server-Timing header: time spent inside elshi,
without the queueing in front of it or the load generator's delays), and the CPU time the
web processes spent per request (from /proc: on a shared machine this holds still when the
latencies do not). A 5-second closed-loop warm-up, not measured, comes first.
Targets (the OpenCRVS ones), for the realistic load: read p95 < 150 ms, write and upload
p95 < 300 ms, < 0.1% errors, and exactly 100 appointments out of 500 bookings. The figures
are printed, not asserted. The load generator runs on the same machine as the server and the
database and takes CPU from them.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from itsdangerous import URLSafeTimedSerializer
from PIL import Image
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-" + secrets.token_urlsafe(24)
MISSIONS = 10
CITIZENS = 200_000
RACE, PLACES = 500, 100
STATUSES = ("submitted", "in_review", "more_documents", "approved", "rejected")


def _pdf() -> bytes:
    filler = os.urandom(40_000).hex().encode()
    return b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\n% " + filler + b"\ntrailer<<>>\n%%EOF\n"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (600, 800), (30, 90, 160)).save(out, "PNG")
    return out.getvalue()


# ---------------------------------------------------------------------------- data


def create_database(admin_url: str) -> tuple[str, str]:
    """Create an empty database; return (its URL, its name)."""
    name = f"elshi_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), name


def drop_database(admin_url: str, name: str) -> None:
    """Drop the bench database."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def fill(engine: Engine, n_requests: int) -> dict[str, Any]:
    """Create missions, catalogues, citizens and requests; return ids the load needs."""
    from elshi.accounts import service as accounts
    from elshi.consulate import service
    from elshi.consulate.schemas import DEFAULT_CATALOGUE
    from elshi.db import Database
    from elshi.missions import service as missions
    from elshi.settings import Settings

    db = Database(Settings(database_url=str(engine.url.render_as_string(False)), demo=True))
    with db.session() as s:
        hq = missions.ensure_hq(db=s)
        mission_ids = []
        for i in range(MISSIONS):
            m = missions.create_mission(db=s, slug=f"m{i}", name=f"Embassy {i}", parent_id=hq.id)
            mission_ids.append(m.id)
            for spec in DEFAULT_CATALOGUE:
                service.upsert_service(db=s, mission_id=m.id, spec=spec.model_dump())
        officer = accounts.create_user(
            db=s, email="officer@bench.example", password="bench password 1", name="Officer"
        )
        accounts.grant_role(db=s, user_id=officer.id, mission_id=mission_ids[0], role="consular")
        officer_id = officer.id
    db.dispose()
    digest = hashlib.sha256(b"unused").hexdigest()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO citizen (email, name, phone, lang, password_hash, email_verified_at,"
                " is_active, failed_logins, created_at)"
                " SELECT 'c' || g || '@bench.example', 'Citizen ' || g, '+7 701 ' || g, 'en',"
                " :h, now(), true, 0, now() FROM generate_series(1, :n) g"
            ),
            {"h": "$argon2id$" + digest, "n": CITIZENS},
        )
        first = conn.scalar(text("SELECT min(id) FROM citizen"))
        visa = {
            m: conn.scalar(
                text("SELECT id FROM service_type WHERE mission_id = :m AND slug = 'visa'"),
                {"m": m},
            )
            for m in mission_ids
        }
        case = " ".join(f"WHEN {i} THEN {visa[m]}" for i, m in enumerate(mission_ids))
        mcase = " ".join(f"WHEN {i} THEN {m}" for i, m in enumerate(mission_ids))
        statuses = "ARRAY[" + ",".join(f"'{x}'" for x in STATUSES) + "]"
        conn.execute(
            text(
                "INSERT INTO service_request (reference, citizen_id, mission_id, service_type_id,"
                " status, answers, reason, created_at, submitted_at, updated_at, decided_at)"
                " SELECT 'B-' || g, :first + (g % :nc),"
                f" CASE g % {MISSIONS} {mcase} END, CASE g % {MISSIONS} {case} END,"
                f" ({statuses})[1 + (g / 7) % 5],"
                ' \'{"full_name": "Citizen", "passport_number": "N123"}\', \'\','
                " now() - make_interval(mins => g % 100000),"
                " now() - make_interval(mins => g % 100000), now(), NULL"
                " FROM generate_series(1, :n) g"
            ),
            {"first": first, "nc": CITIZENS, "n": n_requests},
        )
        conn.execute(
            text(
                "INSERT INTO request_event (request_id, at, actor_kind, actor_label, action,"
                " to_status, note) SELECT id, submitted_at, 'citizen', '', 'submitted',"
                " 'submitted', '' FROM service_request"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return {
        "missions": mission_ids,
        "visa": visa,
        "first_citizen": first,
        "officer_id": officer_id,
    }


def sessions(engine: Engine, info: dict[str, Any], users: int) -> list[dict[str, Any]]:
    """Sign the load's users in: a citizen session (or a staff one) and a draft each."""
    citizen_signer = URLSafeTimedSerializer(SECRET, salt="elshi.citizen")
    staff_signer = URLSafeTimedSerializer(SECRET, salt="elshi.session")
    csrf_signer = URLSafeTimedSerializer(SECRET, salt="elshi.csrf")
    mission = info["missions"][0]
    out = []
    with engine.begin() as conn:
        for i in range(users):
            key = secrets.token_urlsafe(32)
            seed = secrets.token_urlsafe(32)
            user: dict[str, Any] = {"csrf": str(csrf_signer.dumps(seed)), "seed": seed}
            if i % 10 == 9:
                conn.execute(
                    text(
                        "INSERT INTO web_session (key_hash, user_id, created_at, expires_at,"
                        " mfa_pending) VALUES (:h, :u, now(), now() + interval '1 day', false)"
                    ),
                    {"h": hashlib.sha256(key.encode()).hexdigest(), "u": info["officer_id"]},
                )
                user |= {"kind": "officer", "cookie": ("elshi_session", staff_signer.dumps(key))}
                user["requests"] = list(
                    conn.scalars(
                        text(
                            "SELECT id FROM service_request WHERE mission_id = :m"
                            " AND status = 'submitted' ORDER BY random() LIMIT 50"
                        ),
                        {"m": mission},
                    )
                )
            else:
                citizen = info["first_citizen"] + i
                conn.execute(
                    text(
                        "INSERT INTO citizen_session (key_hash, citizen_id, created_at,"
                        " expires_at, mfa_pending) VALUES (:h, :c, now(),"
                        " now() + interval '1 day', false)"
                    ),
                    {"h": hashlib.sha256(key.encode()).hexdigest(), "c": citizen},
                )
                draft = conn.scalar(
                    text(
                        "INSERT INTO service_request (reference, citizen_id, mission_id,"
                        " service_type_id, status, answers, reason, created_at, updated_at)"
                        " VALUES (:r, :c, :m, :s, 'draft', '{}'::jsonb, '', now(), now())"
                        " RETURNING id"
                    ),
                    {"r": f"D-{i}", "c": citizen, "m": mission, "s": info["visa"][mission]},
                )
                own = list(
                    conn.scalars(
                        text("SELECT id FROM service_request WHERE citizen_id = :c"),
                        {"c": citizen},
                    )
                )
                user |= {
                    "kind": "citizen",
                    "cookie": ("elshi_citizen", citizen_signer.dumps(key)),
                    "draft": draft,
                    "requests": own,
                }
            out.append(user)
    return out


def race_setup(engine: Engine, info: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """One slot of 100 places and 500 citizens, each with a submitted request, signed in."""
    mission = info["missions"][1]
    signer = URLSafeTimedSerializer(SECRET, salt="elshi.citizen")
    csrf_signer = URLSafeTimedSerializer(SECRET, salt="elshi.csrf")
    people = []
    with engine.begin() as conn:
        slot = conn.scalar(
            text(
                "INSERT INTO slot (mission_id, starts_at, minutes, capacity, booked)"
                " VALUES (:m, now() + interval '2 days', 15, :c, 0) RETURNING id"
            ),
            {"m": mission, "c": PLACES},
        )
        for i in range(RACE):
            citizen = info["first_citizen"] + 100_000 + i
            request_id = conn.scalar(
                text(
                    "INSERT INTO service_request (reference, citizen_id, mission_id,"
                    " service_type_id, status, answers, reason, created_at, submitted_at,"
                    " updated_at) VALUES (:r, :c, :m, :s, 'submitted', '{}'::jsonb, '', now(),"
                    " now(), now()) RETURNING id"
                ),
                {"r": f"R-{i}", "c": citizen, "m": mission, "s": info["visa"][mission]},
            )
            key, seed = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            conn.execute(
                text(
                    "INSERT INTO citizen_session (key_hash, citizen_id, created_at, expires_at,"
                    " mfa_pending) VALUES (:h, :c, now(), now() + interval '1 day', false)"
                ),
                {"h": hashlib.sha256(key.encode()).hexdigest(), "c": citizen},
            )
            people.append(
                {
                    "request": request_id,
                    "cookie": ("elshi_citizen", signer.dumps(key)),
                    "seed": seed,
                    "csrf": str(csrf_signer.dumps(seed)),
                }
            )
    return int(slot), people


# ---------------------------------------------------------------------------- load


class Stats:
    """Latencies (ms) by kind of request, and errors."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.server_ms: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.samples: list[str] = []

    def add(
        self, kind: str, started: float, ok: bool, what: str, server: float | None = None
    ) -> None:
        self.ms[kind].append((time.perf_counter() - started) * 1000)
        if server is not None:
            self.server_ms[kind].append(server)
        if not ok:
            self.errors[kind] += 1
            if len(self.samples) < 5:
                self.samples.append(what)


def _client(base: str, user: dict[str, Any]) -> httpx.AsyncClient:
    name, value = user["cookie"]
    return httpx.AsyncClient(
        base_url=base,
        cookies={name: value, "elshi_csrf": user["seed"], "elshi_lang": "en"},
        timeout=30,
        follow_redirects=False,
    )


async def _one(
    client: httpx.AsyncClient, stats: Stats, kind: str, method: str, url: str, **kw: Any
) -> None:
    started = time.perf_counter()
    server = None
    try:
        r = await client.request(method, url, **kw)
        ok = r.status_code < 400
        what = f"{method} {url} -> {r.status_code}"
        timing = r.headers.get("server-timing", "")
        if "dur=" in timing:
            server = float(timing.split("dur=")[1].split(",")[0])
    except httpx.HTTPError as exc:
        ok, what = False, f"{method} {url} -> {type(exc).__name__}"
    stats.add(kind, started, ok, what, server)


async def _think(rng: random.Random, mean: float, until: float) -> bool:
    """Pause like a person reading the page (TPC-W think time); False once the run is over."""
    if mean > 0:
        pause = min(rng.expovariate(1 / mean), 10 * mean)
        await asyncio.sleep(max(0.0, min(pause, until - time.monotonic())))
    return time.monotonic() < until


async def citizen_loop(
    base: str,
    user: dict[str, Any],
    stats: Stats,
    until: float,
    files: list[tuple[str, bytes, str]],
    think: float,
) -> None:
    rng = random.Random()
    async with _client(base, user) as c:
        while await _think(rng, think, until):
            roll = rng.random()
            if roll < 0.35:
                await _one(c, stats, "read", "GET", "/consulate/home")
            elif roll < 0.6:
                rid = rng.choice(user["requests"])
                await _one(c, stats, "read", "GET", f"/consulate/requests/{rid}")
            elif roll < 0.7:
                await _one(c, stats, "read", "GET", "/consulate/services")
            elif roll < 0.82:
                data = {
                    "csrf_token": user["csrf"],
                    "action": "save",
                    "full_name": f"Citizen {rng.randint(1, 10**6)}",
                    "passport_number": "N1234567",
                }
                await _one(
                    c,
                    stats,
                    "write",
                    "POST",
                    f"/consulate/requests/{user['draft']}/answers",
                    data=data,
                )
            elif roll < 0.9:
                rid = rng.choice(user["requests"])
                data = {"csrf_token": user["csrf"], "body": "When is my appointment?"}
                await _one(
                    c, stats, "write", "POST", f"/consulate/requests/{rid}/messages", data=data
                )
            else:
                name, blob, kind = rng.choice(files)
                await _one(
                    c,
                    stats,
                    "upload",
                    "POST",
                    f"/consulate/requests/{user['draft']}/documents",
                    data={"csrf_token": user["csrf"], "kind": kind},
                    files={"file": (name, blob, "application/octet-stream")},
                )


async def officer_loop(
    base: str, user: dict[str, Any], stats: Stats, until: float, think: float
) -> None:
    rng = random.Random()
    async with _client(base, user) as c:
        while await _think(rng, think, until):
            if rng.random() < 0.5:
                await _one(c, stats, "read", "GET", "/consular")
            else:
                rid = rng.choice(user["requests"])
                await _one(c, stats, "read", "GET", f"/consular/requests/{rid}")


async def load(base: str, users: list[dict[str, Any]], seconds: float, think: float) -> Stats:
    stats = Stats()
    files = [("passport.pdf", _pdf(), "passport"), ("photo.png", _png(), "photo")]
    until = time.monotonic() + seconds
    await asyncio.gather(
        *(
            officer_loop(base, u, stats, until, think)
            if u["kind"] == "officer"
            else citizen_loop(base, u, stats, until, files, think)
            for u in users
        )
    )
    return stats


async def race(base: str, slot: int, people: list[dict[str, Any]]) -> dict[str, int]:
    outcome: dict[str, int] = defaultdict(int)
    gate = asyncio.Event()

    async def one(p: dict[str, Any]) -> None:
        async with _client(base, p) as c:
            await gate.wait()
            try:
                r = await c.post(
                    f"/consulate/requests/{p['request']}/book",
                    data={"csrf_token": p["csrf"], "slot_id": str(slot)},
                )
                outcome[
                    {303: "booked", 409: "full"}.get(r.status_code, f"http {r.status_code}")
                ] += 1
            except httpx.HTTPError as exc:
                outcome[type(exc).__name__] += 1

    tasks = [asyncio.create_task(one(p)) for p in people]
    await asyncio.sleep(0.5)
    gate.set()
    await asyncio.gather(*tasks)
    return dict(outcome)


# ---------------------------------------------------------------------------- main


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _serve(url: str, port: int, home: Path, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ELSHI_DATABASE_URL": url,
        "ELSHI_SECRET_KEY": SECRET,
        "ELSHI_HOME": str(home),
        "ELSHI_UPLOAD_MAX_PER_REQUEST": "500",
        "ELSHI_PORT": str(port),
        "ELSHI_SERVER_TIMING": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "elshi.cli", "web", "--workers", str(workers)], env=env, cwd=ROOT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("elshi web did not start")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and its children (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = {pid}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"\nPPid:\t{pid}\n" in (entry / "status").read_text():
                    pids.add(int(entry.name))
            except OSError:
                continue
    total = 0.0
    for p in pids:
        try:
            fields = (Path("/proc") / str(p) / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def report(
    title: str,
    stats: Stats,
    seconds: float,
    targets: dict[str, float] | None,
    cpu: float | None = None,
) -> None:
    """Print throughput, errors, the server's CPU per request and percentiles of one load."""
    total = sum(len(v) for v in stats.ms.values())
    errors = sum(stats.errors.values())
    print(
        f"\n{title}: {total:,} requests in {seconds:.0f} s, "
        f"throughput {total / seconds:.1f} requests/s, "
        f"errors {errors} ({100 * errors / max(total, 1):.3f}%)"
    )
    if cpu is not None:
        print(
            f"elshi's CPU time per request: {1000 * cpu / max(total, 1):.1f} ms "
            f"(all web processes; PostgreSQL's own CPU not included)"
        )
    print(
        f"{'kind':8} {'n':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  {'target p95':18}"
        f" {'server p50':>10} {'server p95':>10}"
    )
    for kind in ("read", "write", "upload"):
        v = stats.ms.get(kind, [])
        server = stats.server_ms.get(kind, [])
        p95 = _pct(v, 0.95)
        verdict = (
            f"< {targets[kind]:.0f} {'ok' if p95 < targets[kind] else 'MISSED'}"
            if targets
            else "(stress: none)"
        )
        print(
            f"{kind:8} {len(v):>7,} {statistics.median(v) if v else 0:>8.1f} "
            f"{p95:>8.1f} {_pct(v, 0.99):>8.1f}  {verdict:18}"
            f" {statistics.median(server) if server else 0:>10.1f} {_pct(server, 0.95):>10.1f}"
        )
    for sample in stats.samples:
        print("  error:", sample)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument(
        "--seconds", type=float, default=120, help="length of the realistic load (think times)"
    )
    parser.add_argument(
        "--think", type=float, default=7.0, help="mean think time between pages, seconds"
    )
    parser.add_argument(
        "--stress-seconds",
        type=float,
        default=60,
        help="length of the closed-loop stress load without think time (0 skips it)",
    )
    parser.add_argument("--workers", type=int, default=2, help="`elshi web` processes")
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "ELSHI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()

    from elshi.migrate import migrate

    url, name = create_database(args.pg)
    engine = create_engine(url)
    proc = None
    try:
        t0 = time.perf_counter()
        migrate(engine)
        info = fill(engine, args.requests)
        stored = engine.connect().execute(text("SELECT count(*) FROM service_request")).scalar()
        print(
            f"stored {stored:,} requests, {CITIZENS:,} citizens in {time.perf_counter() - t0:.0f} s"
        )
        users = sessions(engine, info, args.users)
        slot, people = race_setup(engine, info)
        with tempfile.TemporaryDirectory() as home:
            port = 18000 + random.randint(0, 999)
            proc = _serve(url, port, Path(home), args.workers)
            base = f"http://127.0.0.1:{port}"
            print(f"elshi web --workers {args.workers}; {args.users} users")
            # Warm up (every process opens its connections and compiles its templates), unmeasured.
            asyncio.run(load(base, users, 5, 0))
            cpu = cpu_seconds(proc.pid)
            stats = asyncio.run(load(base, users, args.seconds, args.think))
            report(
                f"realistic: {args.users} users thinking {args.think:g} s on average",
                stats,
                args.seconds,
                {"read": 150, "write": 300, "upload": 300},
                cpu_seconds(proc.pid) - cpu,
            )
            if args.stress_seconds > 0:
                cpu = cpu_seconds(proc.pid)
                stats = asyncio.run(load(base, users, args.stress_seconds, 0))
                report(
                    f"stress: {args.users} users in a closed loop, no think time",
                    stats,
                    args.stress_seconds,
                    None,
                    cpu_seconds(proc.pid) - cpu,
                )
            outcome = asyncio.run(race(base, slot, people))
        with engine.connect() as conn:
            booked = conn.scalar(text("SELECT booked FROM slot WHERE id = :s"), {"s": slot})
            rows = conn.scalar(
                text("SELECT count(*) FROM appointment WHERE slot_id = :s"), {"s": slot}
            )
        print(
            f"\n{RACE} concurrent bookings of {PLACES} places: {dict(outcome)}; "
            f"slot.booked = {booked}, appointments stored = {rows} "
            f"({'ok' if rows == PLACES == booked else 'WRONG'})"
        )
        return 0
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        engine.dispose()
        drop_database(args.pg, name)


if __name__ == "__main__":
    sys.exit(main())
