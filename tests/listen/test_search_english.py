"""English inflections in search (embassies finds embassy) and matches marked in results."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from elshi.app import create_app
from elshi.connectors.base import RawRecord
from elshi.db import Database
from elshi.listen import service as listen
from elshi.listen.flows import ingest_records
from elshi.listen.text import Term, highlight, highlight_spans, query_terms, stem_english
from elshi.settings import Settings
from tests.listen.test_search_count import Lines
from tests.workspace_helpers import add_staff, sign_in


@pytest.mark.parametrize(
    ("forms", "stem"),
    [
        (["embassy", "embassies", "embassy"], "embass"),
        (["sanction", "sanctions", "sanctioned", "sanctioning"], "sanction"),
        (["visit", "visits", "visited", "visiting"], "visit"),
        (["close", "closed", "closes", "closing"], "clos"),
        (["meeting", "meetings"], "meet"),
        (["country", "countries"], "countr"),
        (["address", "addresses"], "address"),
        (["church", "churches"], "church"),
        (["stopped", "stopping"], "stop"),
    ],
)
def test_english_forms_share_one_prefix(forms: list[str], stem: str) -> None:
    assert {stem_english(f) for f in forms} == {stem}
    for f in forms:
        assert f.startswith(stem)  # a prefix search with it finds every form


@pytest.mark.parametrize("word", ["crisis", "status", "news", "bus", "day", "astana", "tokayev"])
def test_words_that_are_not_inflected_stay(word: str) -> None:
    assert word.startswith(stem_english(word)) and len(stem_english(word)) >= min(len(word), 4)


def test_query_terms_stem_english_and_leave_kazakh_and_russian_to_theirs() -> None:
    assert query_terms("Embassies Қазақстанның Казахстана") == [
        Term("embass", "prefix"),
        Term("қазақстан", "prefix"),
        Term("казахста", "prefix"),
    ]
    assert query_terms("the embassy's staff") == [
        Term("the", "word"),
        Term("embass", "prefix"),
        Term("staff", "prefix"),
    ]


def test_highlight_marks_whole_words_and_escapes() -> None:
    terms = query_terms("embassies <b>")
    text = "The Embassy <b>said</b>: embassies & Embassy's staff; disembassy no"
    assert highlight(text, terms) == (
        "The <mark>Embassy</mark> &lt;<mark>b</mark>&gt;said&lt;/<mark>b</mark>&gt;: "
        "<mark>embassies</mark> &amp; <mark>Embassy</mark>&#39;s staff; disembassy no"
    )
    assert highlight_spans("Қазақстанның елшілігі", query_terms("Қазақстан")) == [(0, 12)]
    assert highlight("哈萨克斯坦大使馆", query_terms("大使馆")) == "哈萨克斯坦<mark>大使馆</mark>"
    assert highlight("<i>", []) == "&lt;i&gt;"


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    texts = [
        "The embassy opens on Monday",
        "Two embassies closed their doors",
        "Sanctions were discussed at the meeting",
        "The minister sanctioned the visit",
        "A recipe for soup",
    ]
    records = [
        RawRecord(payload={"id": i, "text": t}, location=f"line {i}", origin="test")
        for i, t in enumerate(texts, 1)
    ]
    ingest_records(db, Lines(), records, origin="test")
    with db.session() as s:
        add_staff(s, "analyst@example.org", "analyst", "hq")
    with TestClient(create_app(settings, db=db)) as c:
        sign_in(c, "analyst@example.org")
        yield c


def test_search_finds_english_forms(client: TestClient, db: Database) -> None:
    with db.session() as s:
        for q in ("embassies", "embassy", "Embassy's"):
            total, items = listen.search_posts(db=s, query=listen.SearchQuery(q=q))
            assert sorted(p.text for p in items) == [
                "The embassy opens on Monday",
                "Two embassies closed their doors",
            ], q
        total, items = listen.search_posts(db=s, query=listen.SearchQuery(q="sanctions"))
        assert total == 2
        total, _ = listen.search_posts(db=s, query=listen.SearchQuery(q="meetings"))
        assert total == 1


@pytest.mark.parametrize("path", ["/posts", "/explore"])
def test_results_mark_the_matches(client: TestClient, path: str) -> None:
    page = client.get(path, params={"q": "embassies", "lang": "en"}).text
    assert "<mark>embassy</mark> opens" in page and "Two <mark>embassies</mark> closed" in page
    assert "soup" not in page
