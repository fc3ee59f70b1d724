"""Scale-out: several web processes, and Server-Timing when asked for."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from elshi.db import Database
from elshi.settings import Settings
from tests.consulate.support import World, free_port, world


@pytest.fixture
def w(db: Database) -> World:
    return world(db)


# ---------------------------------------------------------------------------- scale-out


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                out.append(int(entry.name))
    return out


def test_web_runs_several_processes_with_server_timing(settings: Settings) -> None:
    port = free_port()
    env = {**os.environ, "ELSHI_SERVER_TIMING": "1", "ELSHI_SECRET_KEY": "x" * 40}
    proc = subprocess.Popen(
        [sys.executable, "-m", "elshi.cli", "web", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        response = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert response is not None, proc.stdout.read() if proc.stdout else ""
        assert response.status_code == 200
        timing = response.headers["server-timing"]
        assert timing.startswith("app;dur=") and float(timing.split("=")[1]) >= 0
        python_children = [
            c for c in _children(proc.pid) if "python" in Path(f"/proc/{c}/cmdline").read_text()
        ]
        assert len(python_children) >= 2  # two serving processes (and uvicorn's supervisor)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_server_timing_is_off_by_default(settings: Settings, db: Database) -> None:
    from fastapi.testclient import TestClient

    from elshi.app import create_app

    with TestClient(create_app(settings, db=db)) as client:
        assert "server-timing" not in client.get("/health").headers
