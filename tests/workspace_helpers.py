"""Helpers for the workspace tests: posts at chosen times, users with roles, a signed-in client."""

from __future__ import annotations

import re
from datetime import datetime
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
