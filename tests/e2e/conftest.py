"""Browser-test fixtures: Debian chromium through Playwright, and elshi served on loopback."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import service_missing

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def screens(tmp_path: Path) -> Path:
    """Return where screenshots go: ELSHI_TEST_SCREENSHOTS keeps them for a person to look at."""
    folder = Path(os.environ.get("ELSHI_TEST_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_app(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 from a thread; yield its base URL."""
    import uvicorn

    port = port or free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Launch the system chromium (never a downloaded one)."""
    if not CHROMIUM.exists():
        service_missing("chromium", FileNotFoundError(str(CHROMIUM)))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


#: What axe-core checks (WCAG 2.0/2.1 A and AA) and the impacts that fail a test.
AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}
SERIOUS = ("serious", "critical")


def serious_violations(axe: Any, page: Any) -> list[str]:
    """Run axe-core (the script bundled in axe-playwright-python) on the open page; return its
    serious or critical violations as "rule (first targets)"."""
    result = axe.run(page, options=AXE_OPTIONS).response
    out = []
    for v in result["violations"]:
        if v.get("impact") in SERIOUS:
            targets = "; ".join(", ".join(map(str, node["target"])) for node in v["nodes"][:3])
            out.append(f"{v['id']} ({targets})")
    return out
