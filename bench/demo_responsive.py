"""Benchmark: is the web server of `elshi demo` responsive while the demo loads and enriches?

Run: python bench/demo_responsive.py [--posts 3000] [--pause 0.1] [--timeout 900] [--keep DIR]

Starts `elshi demo --port P` (a free port) in a fresh home folder, exactly as a new user
does, and as soon as the web server answers, requests the pages of a first visit one after
another in a loop (a short pause between two), each timed from sending to the last byte:

  /consulate      the e-consulate's landing page (signed out)
  /login          the sign-in form (signed out)
  POST /login     signing in as the demo admin with the password the command printed
  /               the home page (signed in)
  /watch/ID       the first watch list's dashboard (signed in)
  /explore        the explore page (signed in)

until enrichment has finished (every demo post has been through language, sentiment,
entities and narratives, read in the database as the catch-up tasks do). Then it stops the
command with SIGINT (Ctrl+C) and checks that it and every process it started are gone.

Prints: seconds until the web server answered, seconds enrichment took after that, then
p50/p95/max latency per page and overall over the requests sent while enrichment ran.
Target: overall p95 < 500 ms. Exit code 0 only if the target passes, enrichment finished
and the command stopped cleanly.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import httpx  # noqa: E402

TARGET_MS = 500.0
DEMO = [sys.executable, "-m", "elshi.cli", "demo"]
PASSWORD_LINE = re.compile(r"sign in as (\S+) with password (\S+)")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Return the ids of every living process below `pid` (children, their children...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            m = re.search(r"\nPPid:\t(\d+)\n", status)
            if m:
                parents[int(entry.name)] = int(m.group(1))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        todo += kids
    return found


def alive(pid: int) -> bool:
    """Return True while the process runs (a zombie has stopped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def enrichment_left(home: Path) -> int | None:
    """Return how many demo posts enrichment has still to reach (None before any post)."""
    from sqlalchemy import func, or_, select

    from elshi.db import Database
    from elshi.listen.models import Post
    from elshi.nlp.pipeline import not_enriched
    from elshi.settings import load_settings

    settings = load_settings(home=home)
    db = Database(settings)
    try:
        conditions = [
            c for c in (not_enriched(apart=False), not_enriched(apart=True)) if c is not None
        ]
        with db.session() as s:
            if not s.scalar(select(func.count()).select_from(Post)):
                return None
            if not conditions:
                return 0
            return int(s.scalar(select(func.count()).select_from(Post).where(or_(*conditions))))
    finally:
        db.dispose()


class Visitor:
    """One person's first visit, page after page; every request's latency is kept."""

    def __init__(self, base: str, email: str, password: str) -> None:
        self.base = base
        self.email = email
        self.password = password
        self.times: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.slow: list[tuple[float, str, float]] = []
        self.watch: str | None = None

    def _timed(self, name: str, client: httpx.Client, method: str, path: str, **kw: object) -> str:
        start = time.perf_counter()
        try:
            r = client.request(method, self.base + path, **kw)  # type: ignore[arg-type]
            text = r.text
        except httpx.HTTPError as exc:
            self.errors.append(f"{name}: {exc!r}")
            return ""
        finally:
            ms = (time.perf_counter() - start) * 1000
            self.times.setdefault(name, []).append(ms)
            if ms >= TARGET_MS:
                self.slow.append((start, name, ms))
        if r.status_code not in (200, 303):
            self.errors.append(f"{name}: HTTP {r.status_code}")
        return text

    def round(self, pause: float, stop: threading.Event) -> None:
        with httpx.Client(timeout=300, follow_redirects=False) as c:
            for name, path in (("consulate", "/consulate"), ("login page", "/login")):
                page = self._timed(name, c, "GET", path)
                if stop.wait(pause):
                    return
            m = CSRF.search(page)
            form = {"email": self.email, "password": self.password, "next": "/"}
            form["csrf_token"] = m.group(1) if m else ""
            self._timed("sign in", c, "POST", "/login", data=form)
            if stop.wait(pause):
                return
            home = self._timed("home", c, "GET", "/")
            if self.watch is None:
                m = re.search(r'href="(/watch/\d+)"', home) or re.search(
                    r'href="(/watch/\d+)"', c.get(self.base + "/watch").text
                )
                self.watch = m.group(1) if m else "/watch"
            for name, path in (("dashboard", self.watch), ("explore", "/explore")):
                if stop.wait(pause):
                    return
                self._timed(name, c, "GET", path)
            stop.wait(pause)


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (
        f"{name:<12} {len(values):>5} {statistics.median(ordered):>9.0f} {p95:>9.0f} "
        f"{ordered[-1]:>9.0f}"
    )


def p95_of(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--posts", type=int, default=3000, help="demo posts (elshi demo --posts)")
    ap.add_argument("--pause", type=float, default=0.1, help="seconds between two pages")
    ap.add_argument("--timeout", type=float, default=900, help="give up after this many s")
    ap.add_argument("--keep", type=Path, help="home folder to use and keep (must be empty)")
    args = ap.parse_args()

    home = args.keep or Path(tempfile.mkdtemp(prefix="elshi-demo-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELSHI_")}
    env.update(ELSHI_HOME=str(home), PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*DEMO, "--port", str(port), "--posts", str(args.posts)],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    found: dict[str, str] = {}

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if m := PASSWORD_LINE.search(line):
                found.update(email=m.group(1), password=m.group(2))

    threading.Thread(target=read, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    ok = True
    try:
        up = None
        while time.perf_counter() - started < args.timeout and proc.poll() is None:
            try:
                httpx.get(base + "/health", timeout=5)
                up = time.perf_counter() - started
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        if up is None or "password" not in found:
            print("".join(output))
            print("FAIL: the demo's web server never answered")
            return 1
        visitor = Visitor(base, found["email"], found["password"])
        stop = threading.Event()
        left: list[int | None] = [None]

        def watch_enrichment() -> None:
            while not stop.is_set():
                left[0] = enrichment_left(home)
                if left[0] == 0:
                    stop.set()
                    return
                stop.wait(1.0)

        watcher = threading.Thread(target=watch_enrichment, daemon=True)
        watcher.start()
        while not stop.is_set() and time.perf_counter() - started < args.timeout:
            visitor.round(args.pause, stop)
        stop.set()
        watcher.join()
        enriched = time.perf_counter() - started
        done = left[0] == 0

        print(f"demo posts: {args.posts}; load average at the end: {os.getloadavg()[0]:.1f}")
        print(f"web server answered after {up:.1f} s (loading the demo came first)")
        if done:
            print(f"enrichment finished {enriched - up:.1f} s after that ({enriched:.1f} s in all)")
        else:
            print(f"enrichment NOT finished after {enriched:.1f} s ({left[0]} posts left)")
            ok = False
        print(f"{'page':<12} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}")
        every = [t for values in visitor.times.values() for t in values]
        for name, values in visitor.times.items():
            print(summary(name, values))
        print(summary("all", every))
        if visitor.slow:
            worst = sorted(visitor.slow, key=lambda slow: -slow[2])[:10]
            print(
                f"{len(visitor.slow)} requests over {TARGET_MS:.0f} ms; the slowest "
                "(s after the server answered: page ms):"
            )
            print("  " + ", ".join(f"{at - started - up:.1f}: {n} {ms:.0f}" for at, n, ms in worst))
        if visitor.errors:
            print(f"{len(visitor.errors)} errors, first: {visitor.errors[:3]}")
            ok = False
        p95 = p95_of(every)
        verdict = "PASS" if p95 < TARGET_MS else "FAIL"
        print(f"p95 {p95:.0f} ms (target < {TARGET_MS:.0f} ms): {verdict}")
        ok = ok and p95 < TARGET_MS
    finally:
        below = descendants(proc.pid)
        if proc.poll() is None:
            t = time.monotonic()
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
                print(f"stopped by SIGINT in {time.monotonic() - t:.1f} s")
            except subprocess.TimeoutExpired:
                print("FAIL: still running 60 s after SIGINT; killed")
                proc.kill()
                proc.wait()
                ok = False
        deadline = time.monotonic() + 10  # a child may take a moment after the command
        while (orphans := [p for p in below if alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        if orphans:
            print(f"FAIL: processes left running after the command stopped: {orphans}")
            for p in orphans:
                os.kill(p, signal.SIGKILL)
            ok = False
        if args.keep is None:
            shutil.rmtree(home, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
