"""`elshi demo` and `elshi serve` answer pages while the worker enriches, in a process of its
own: stopping the command stops it (no process is left behind), and if it dies it is started
again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from elshi.db import Database
from elshi.listen.models import Post
from elshi.nlp.jobs import first_unenriched
from elshi.settings import Settings
from tests.consulate.support import free_port
from tests.platform.test_jobs import _worker_env
from tests.platform.test_server_processes import _children
from tests.reliability.test_worker_signals import _wait

PASSWORD = re.compile(r"sign in as (\S+) with password (\S+)")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
GRACE = 3  # seconds a stopped worker gives its running task


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        found += kids
        todo += kids
    return found


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first); [] when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _alive(pid: int) -> bool:
    state = _stat(pid)
    return bool(state) and state[0] not in ("Z", "X")  # a zombie has stopped


def _spawned(pid: int) -> bool:
    """True for a process started by multiprocessing (the worker), not yet stopped."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False
    return "multiprocessing.spawn" in command and _alive(pid)


def _niceness(pid: int) -> int:
    return int(_stat(pid)[16])


class Command:
    """An `elshi` command in a child process, its output read as it comes."""

    def __init__(self, settings: Settings, *args: str) -> None:
        self.port = free_port()
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "elshi.cli", *args, "--port", str(self.port)],
            env=_worker_env(settings, ELSHI_WORKER_GRACE_SECONDS=str(GRACE)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def answering(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"the command exited with {self.proc.returncode}: {self.output}")
        try:
            return httpx.get(self.base + "/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def worker(self) -> int:
        """Return the id of the worker process (the child niced below the server)."""
        found: list[int] = []

        def started() -> bool:
            found[:] = [p for p in _children(self.proc.pid) if _spawned(p)]
            return bool(found)

        _wait("the worker process", started, 60)
        return found[0]


@pytest.fixture
def command(settings: Settings) -> Iterator[Callable[..., Command]]:
    started: list[Command] = []

    def start(*args: str) -> Command:
        started.append(Command(settings, *args))
        return started[-1]

    yield start
    for c in started:
        below = _descendants(c.proc.pid)
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()
        for pid in below:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _enrichment_left(db: Database) -> bool:
    return first_unenriched(db) is not None or first_unenriched(db, apart=True) is not None


def test_demo_answers_pages_while_enriching_and_ctrl_c_stops_its_worker(
    db: Database, command: Callable[..., Command]
) -> None:
    demo = command("demo", "--posts", "1500")
    _wait("the demo's web server", demo.answering, 300)
    worker = demo.worker()
    assert _niceness(worker) > _niceness(demo.proc.pid)  # enrichment yields the CPU to pages
    found = PASSWORD.search(demo.output)
    assert found, demo.output
    with httpx.Client(base_url=demo.base, timeout=60) as client:
        assert client.get("/consulate").status_code == 200
        login = client.get("/login")
        assert login.status_code == 200
        token = CSRF.search(login.text)
        assert token
        signed_in = client.post(
            "/login",
            data={"email": found[1], "password": found[2], "csrf_token": token[1], "next": "/"},
        )
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
        home = client.get("/")
        assert home.status_code == 200 and "/login" not in str(home.url)
    # All of that happened while the demo's posts were still being enriched.
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Post)) == 1500
    assert _enrichment_left(db)

    below = _descendants(demo.proc.pid)
    assert worker in below
    demo.proc.send_signal(signal.SIGINT)  # Ctrl+C
    assert demo.proc.wait(timeout=GRACE + 30) == 0, demo.output
    _wait(
        "the processes the demo started to stop",
        lambda: not [p for p in below if _alive(p)],
        10,
    )


def test_a_killed_server_leaves_no_worker_behind(
    settings: Settings, db: Database, command: Callable[..., Command]
) -> None:
    serve = command("serve")
    _wait("the web server", serve.answering, 120)
    worker = serve.worker()
    serve.proc.kill()  # no chance to stop its worker itself
    serve.proc.wait()
    _wait("the worker to notice and stop", lambda: not _alive(worker), GRACE + 30)


def test_a_worker_process_that_dies_is_started_again(command: Callable[..., Command]) -> None:
    serve = command("serve")
    _wait("the web server", serve.answering, 120)
    first = serve.worker()
    os.kill(first, signal.SIGKILL)
    _wait(
        "a new worker process",
        lambda: any(p != first for p in _children(serve.proc.pid) if _spawned(p)),
        60,
    )
    assert serve.answering()
