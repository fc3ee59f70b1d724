"""Search result counts: exact, or "more than N" said as such when counting stops at the cap."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from elshi.app import create_app
from elshi.connectors.base import Connector, PostIn, RawRecord
from elshi.db import Database
from elshi.listen import service as listen
from elshi.listen.flows import ingest_records
from elshi.settings import Settings
from tests.workspace_helpers import add_staff, sign_in

BASE = datetime(2026, 3, 1, tzinfo=UTC)


class _Config(BaseModel):
    pass


class Lines(Connector):
    """Posts from dicts (id, text), one a minute."""

    slug: ClassVar[str] = "lines"
    title: ClassVar[str] = "Lines"
    platform: ClassVar[str] = "web"
    Config: ClassVar[type[BaseModel]] = _Config

    def fetch(self, config: Any, cursor: Any, ctx: Any) -> Iterator[RawRecord]:
        raise NotImplementedError

    def to_post(self, raw: RawRecord) -> PostIn:
        d = raw.payload
        return PostIn(
            platform="web",
            external_id=str(d["id"]),
            text=d["text"],
            lang="en",
            published_at=BASE + timedelta(minutes=int(d["id"])),
        )


def _word(i: int) -> str:
    """A made-up word per number, so that no two posts look like near-duplicates."""
    letters = "bcdfghjklmnpqrstvwxz"
    out = ""
    for _ in range(4):
        i, k = divmod(i, len(letters))
        out += letters[k] + "aeiou"[k % 5]
    return out


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    records = [
        RawRecord(
            payload={"id": i, "text": f"Consulate {_word(i)} {_word(i * 7 + 3)} notice {i}"},
            location=f"line {i}",
            origin="test",
        )
        for i in range(1, 1_046)
    ]
    records += [
        RawRecord(
            payload={"id": 5000 + i, "text": f"Rare {_word(i + 900)} visa {_word(i + 77)}"},
            location=f"rare {i}",
            origin="test",
        )
        for i in range(33)
    ]
    report = ingest_records(db, Lines(), records, origin="test")
    assert report.stored == 1_045 + 33, report
    with db.session() as s:
        add_staff(s, "analyst@example.org", "analyst", "hq")
    with TestClient(create_app(settings, db=db)) as c:
        sign_in(c, "analyst@example.org")
        yield c


def _summary(text: str) -> str:
    found = re.search(r'<p class="summary" id="summary">(.*?)</p>', text, re.S)
    assert found, text[:500]
    return re.sub(r"\s+", " ", found[1]).strip()


@pytest.mark.parametrize("path", ["/posts", "/explore"])
def test_exact_counts_are_shown_with_their_pages(client: TestClient, path: str) -> None:
    page = client.get(path, params={"q": "visa", "lang": "en"})
    assert page.status_code == 200
    assert _summary(page.text) == "Found: 33 · page 1 of 2"


@pytest.mark.parametrize("path", ["/posts", "/explore"])
def test_a_capped_count_says_more_than_and_never_a_last_page(client: TestClient, path: str) -> None:
    page = client.get(path, params={"q": "consulate", "lang": "en"})
    summary = _summary(page.text)
    assert summary.startswith(f"Found: more than {listen.COUNT_CAP:,} · page 1 · ")
    assert "of" not in summary.split("·")[1]  # never "page 1 of 50"
    assert 'href="/' in summary and "count=all" in summary
    nav = page.text.split('<nav class="pages"', 1)[1].split("</nav>", 1)[0]
    assert 'rel="next"' in nav and " / " not in nav

    counted = client.get(path, params={"q": "consulate", "count": "all"})
    assert _summary(counted.text) == "Found: 1,045 · page 1 of 53"

    last = client.get(path, params={"q": "consulate", "page": "53"})
    assert _summary(last.text) == "Found: 1,045 · page 53 of 53"
    assert 'rel="next"' not in last.text.split('<nav class="pages"', 1)[1]


def test_the_api_says_whether_its_total_is_exact(client: TestClient) -> None:
    capped = client.get("/api/posts", params={"q": "consulate"}).json()
    assert capped["total"] == listen.COUNT_CAP and capped["total_exact"] is False
    exact = client.get("/api/posts", params={"q": "visa"}).json()
    assert exact["total"] == 33 and exact["total_exact"] is True


def test_counts_read_in_kazakh_and_russian(client: TestClient) -> None:
    from elshi.web import i18n

    for lang in ("kk", "ru"):
        page = client.get("/posts", params={"q": "consulate", "lang": lang})
        more = i18n.gettext(lang, "Found: more than %(total)s")
        assert more != "Found: more than %(total)s"
        assert _summary(page.text).startswith(more.split("%(total)s")[0].strip())
