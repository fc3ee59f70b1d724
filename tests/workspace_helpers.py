"""Helpers for the workspace tests: posts at chosen times, users with roles, a signed-in client."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from elshi.accounts import service as accounts
from elshi.listen.models import Annotation, Author, Post, Source
from elshi.missions import service as missions

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery staple"


def add_post(
    s: Session,
    text: str,
    when: datetime,
    *,
    lang: str = "en",
    platform: str = "rss",
    source_id: int | None = None,
    author: Author | None = None,
    sentiment: str | None = None,
    entities: list[str] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Post:
    """Store one post (and its sentiment and entity annotations when given)."""
    post = Post(
        platform=platform,
        external_id=f"t-{when.timestamp()}-{hash(text) & 0xFFFFFF}-{id(text)}",
        connector="test",
        text=text,
        lang=lang,
        published_at=when,
        collected_at=when,
        source_id=source_id,
        author_id=author.id if author else None,
        author_handle=author.handle if author else None,
        metrics=metrics or {},
        extra={},
    )
    s.add(post)
    s.flush()
    if sentiment:
        s.add(
            Annotation(
                post_id=post.id,
                enricher="sentiment",
                version="1",
                label=sentiment,
                score=0.9,
                value={"evidence": [["bad", -0.5]]},
            )
        )
    if entities is not None:
        s.add(
            Annotation(
                post_id=post.id,
                enricher="entities",
                version="1",
                label=entities[0] if entities else None,
                value={"ids": entities, "mentions": []},
            )
        )
    return post


def add_source(s: Session, name: str, mission_id: int | None) -> Source:
    """Store a source of a mission."""
    src = Source(
        connector="rss",
        name=name,
        config={"url": "https://example.org/feed"},
        cursor={},
        mission_id=mission_id,
    )
    s.add(src)
    s.flush()
    return src


def add_staff(s: Session, email: str, role: str, mission_slug: str) -> None:
    """Create a user with one role in one mission (the mission is created if missing)."""
    hq = missions.ensure_hq(db=s)
    mission = missions.get_mission(db=s, slug=mission_slug) or missions.create_mission(
        db=s, slug=mission_slug, name=mission_slug.title(), parent_id=hq.id
    )
    user = accounts.create_user(db=s, email=email, password=PASSWORD)
    accounts.grant_role(db=s, user_id=user.id, mission_id=mission.id, role=role)


def three_missions(s: Session) -> dict[str, int]:
    """Create missions alpha, bravo and charlie with an analyst each (slug@example.org);
    return their ids by slug."""
    hq = missions.ensure_hq(db=s)
    ids = {}
    for slug in ("alpha", "bravo", "charlie"):
        m = missions.get_mission(db=s, slug=slug) or missions.create_mission(
            db=s, slug=slug, name=slug.title(), parent_id=hq.id
        )
        ids[slug] = m.id
        add_staff(s, f"{slug}@example.org", "analyst", slug)
    return ids


def csrf(client: TestClient, path: str = "/login") -> str:
    """Return the CSRF token of a page's form."""
    page = client.get(path)
    match = CSRF.search(page.text)
    assert match, page.text[:300]
    return match[1]


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> None:
    """Sign a test client in."""
    r = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf(client), "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:300]


class Inbox:
    """Messages a real SMTP server on loopback received."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from email import message_from_bytes, policy

        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    """Run aiosmtpd on 127.0.0.1 at a free port; yield the port and the inbox."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Receiver:
    """An HTTP server on loopback that records POSTs and answers with queued status codes."""

    url: str
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    body: bytes = b"{}"


@contextmanager
def http_receiver(statuses: list[int] | None = None, body: bytes = b"{}") -> Iterator[Receiver]:
    """Serve POSTs on 127.0.0.1; each answer takes the next status (200 when none are left)."""
    port = free_port()
    rec = Receiver(url=f"http://127.0.0.1:{port}", statuses=list(statuses or []), body=body)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            rec.requests.append((self.path, dict(self.headers.items()), self.rfile.read(length)))
            status = rec.statuses.pop(0) if rec.statuses else 200
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(rec.body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
