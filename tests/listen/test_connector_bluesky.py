"""Bluesky: PostView and Jetstream mapping, loopback AppView polling and a loopback Jetstream."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

from elshi.connectors.base import FetchContext, MappingError
from elshi.connectors.bluesky import (
    BlueskyConnector,
    BlueskyError,
    JetstreamConnector,
    JetstreamFileConnector,
    jetstream_event_to_post,
    matches,
    post_view_to_post,
    split_keywords,
)
from elshi.db import Database
from elshi.listen import service
from elshi.listen.flows import import_with, run_source
from elshi.listen.models import Post, Quarantine, Source
from elshi.plugins import connectors
from elshi.settings import Settings
from tests.net_support import allow_loopback

FIXTURES = Path(__file__).parents[1] / "fixtures" / "bluesky"
JETSTREAM = "formats/bluesky-jetstream/expected_v1.jsonl"
POST = "app.bsky.feed.post"


@pytest.fixture
def settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The AppView and Jetstream are faked on 127.0.0.1 here: allow that address, as an
    operator allows an intranet range (elshi refuses private addresses by default)."""
    return allow_loopback(settings, monkeypatch)


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _is_post_create(event: dict[str, Any]) -> bool:
    commit = event.get("commit") or {}
    return (
        event["kind"] == "commit"
        and commit.get("operation") == "create"
        and commit.get("collection") == POST
    )


def _uri(event: dict[str, Any]) -> str:
    return f"at://{event['did']}/{POST}/{event['commit']['rkey']}"


# ---------------------------------------------------------------------------- Jetstream mapping


@pytest.mark.shared_data
def test_every_recorded_jetstream_event(shared_data: Path) -> None:
    lines = (shared_data / JETSTREAM).read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) == 152
    posts, skipped_kinds = {}, set()
    for n, event in enumerate(events, start=1):
        post = jetstream_event_to_post(event)
        if not _is_post_create(event):
            assert post is None, f"line {n} should be skipped"
            commit = event.get("commit") or {}
            skipped_kinds.add(
                f"{event['kind']}:{commit.get('operation', '')}:{commit.get('collection', '')}"
            )
            continue
        assert post is not None, f"line {n} is a post"
        record = event["commit"]["record"]
        assert post.platform == "bluesky"
        assert post.external_id == _uri(event)
        assert post.url == f"https://bsky.app/profile/{event['did']}/post/{event['commit']['rkey']}"
        assert post.author_handle == event["did"]
        assert post.published_at == _iso(record["createdAt"])
        if record["text"]:
            assert post.text == record["text"]
        langs = record.get("langs")
        assert post.lang == (langs[0].split("-")[0].lower() if langs else None)
        parent = (record.get("reply") or {}).get("parent")
        assert post.reply_to == (parent["uri"] if parent else None)
        posts[n] = post
    assert len(posts) == sum(_is_post_create(e) for e in events) == 17
    # likes, reposts, follows, blocks, profile status updates, deletes, identity, account
    assert {k.split(":")[0] for k in skipped_kinds} == {"commit", "identity", "account"}
    assert "commit:create:app.bsky.feed.like" in skipped_kinds
    assert "commit:create:app.bsky.feed.repost" in skipped_kinds
    assert "commit:create:app.bsky.graph.follow" in skipped_kinds
    assert "commit:delete:app.bsky.feed.post" in skipped_kinds

    japanese = posts[4]
    assert japanese.lang == "ja"
    assert japanese.text.startswith("待って天幕のジャードゥーガル観ようと思ってたのに")
    assert (
        japanese.external_id
        == "at://did:plc:amnbije7mr5g3pgxuun7q44o/app.bsky.feed.post/3mptbyqhi7s2f"
    )
    reply = posts[26]
    assert (
        reply.reply_to == "at://did:plc:i5y2f3gtpjxs3qg6fwgb6jb4/app.bsky.feed.post/3mpt7u2vlgs2c"
    )
    assert reply.extra["thread_root"] == reply.reply_to
    # An empty text with a link card: the card's title and address stand in for the body.
    card = posts[131]
    assert card.text.startswith(
        "Ariana Grande Crying: Acheimagra Stan Twitter https://static.klipy.com/"
    )
    assert card.extra["embeds"] == ["external"]
    assert posts[94].published_at == datetime(2026, 7, 4, 14, 38, 2, tzinfo=UTC)
    assert posts[94].lang == "en"  # from "en-US"
    assert posts[134].lang is None  # no langs in the record
    assert posts[144].extra["has_media"] is True and posts[144].extra["embeds"] == ["images"]
    assert posts[2].extra["link"] == "https://www.youtube.com/watch?v=V5lDo-jw8mA"


def test_malformed_jetstream_events_raise() -> None:
    lines = (FIXTURES / "jetstream_mixed.jsonl").read_text(encoding="utf-8").splitlines()
    good = json.loads(lines[0])
    no_record = copy.deepcopy(good)
    del no_record["commit"]["record"]
    with pytest.raises(MappingError, match="missing required field: record"):
        jetstream_event_to_post(no_record)
    no_did = copy.deepcopy(good)
    del no_did["did"]
    with pytest.raises(MappingError, match="missing required field: did"):
        jetstream_event_to_post(no_did)
    bad_date = copy.deepcopy(good)
    bad_date["commit"]["record"]["createdAt"] = "not a date"
    with pytest.raises(MappingError, match="unreadable date/time"):
        jetstream_event_to_post(bad_date)
    with pytest.raises(MappingError, match="missing required field: commit"):
        jetstream_event_to_post({"kind": "commit", "did": "did:plc:x"})
    with pytest.raises(MappingError, match="not a JSON object"):
        jetstream_event_to_post([1, 2])


def test_keywords_are_case_and_unicode_insensitive() -> None:
    words = split_keywords(" Қазақстан , ＭＡＧＡ,,straße ")
    assert words == ["қазақстан", "maga", "strasse"]
    assert matches("ҚАЗАҚСТАН РЕСПУБЛИКАСЫ", words)
    assert matches("Make MAGA-pliant", words)
    assert matches("An der STRASSE", words)
    assert not matches("Казахстан", words)  # Russian spelling is another keyword


@pytest.mark.shared_data
def test_jetstream_file_import_of_the_recorded_events(
    cli: Any, shared_data: Path, db: Database
) -> None:
    r = cli("ingest", "bluesky-jetstream-file", str(shared_data / JETSTREAM), "--no-progress")
    assert r.exit_code == 0, r.output
    with db.session() as s:
        posts = list(s.scalars(select(Post)))
        assert s.scalars(select(Quarantine)).first() is None
    assert len(posts) == 17
    assert {p.connector for p in posts} == {"bluesky-jetstream-file"}
    assert all(p.external_id.startswith("at://did:plc:") for p in posts)


def test_jetstream_file_bad_lines_and_keyword_filter(db: Database, fetch_ctx: FetchContext) -> None:
    path = str(FIXTURES / "jetstream_mixed.jsonl")
    report = import_with(
        db, connector=JetstreamFileConnector(), config={"path": path}, ctx=fetch_ctx
    )
    assert (report.read, report.stored, report.skipped, report.quarantined) == (6, 2, 1, 3)
    with db.session() as s:
        rows = {q.location: q.reason for q in s.scalars(select(Quarantine))}
        texts = sorted(p.text for p in s.scalars(select(Post)))
    assert rows["line 2"].startswith("bad JSON")
    assert "unreadable date/time" in rows["line 3"]
    assert rows["line 4"] == "missing required field: commit.rkey"
    assert texts == ["Казахстан и Германия подписали соглашение", "ҚАЗАҚСТАН туралы жаңалық"]

    report = import_with(
        db,
        connector=JetstreamFileConnector(),
        config={"path": path, "keywords": "германия"},
        ctx=fetch_ctx,
    )
    # Only the matching post is read (a duplicate now) plus the unreadable line.
    assert (report.read, report.duplicates, report.quarantined) == (2, 1, 1)


# ---------------------------------------------------------------------------- PostView mapping


def test_post_views_of_an_author_feed() -> None:
    feed = _fixture("author_feed.json")
    posts = {p.external_id.rsplit("/", 1)[1]: p for p in map(post_view_to_post, feed)}

    first = posts["3lm2a1aaaaa2a"]
    assert (
        first.external_id
        == "at://did:plc:kzembassy7x2fq4vnl3m5rse/app.bsky.feed.post/3lm2a1aaaaa2a"
    )
    assert first.url == "https://bsky.app/profile/kazembassy.bsky.social/post/3lm2a1aaaaa2a"
    assert first.author_handle == "kazembassy.bsky.social"
    assert first.author_name == "Kazakhstan Embassy"
    assert first.text.startswith("Берлинде Қазақстан мәдениеті күндері басталды!")
    assert first.lang == "kk"
    assert first.published_at == datetime(2026, 5, 10, 8, 0, tzinfo=UTC)
    assert first.metrics == {"likes": 48, "reposts": 12, "replies": 3, "quotes": 1}

    reply = posts["3lm2a3ccccc2c"]
    assert reply.reply_to == first.external_id
    assert reply.lang == "en"

    picture = posts["3lm2a4ddddd2d"]
    assert picture.text == "Астанадағы Бейбітшілік пен келісім сарайы"  # alt text of the image
    assert picture.extra["has_media"] is True and picture.lang is None

    quote = posts["3lm2a5eeeee2e"]
    assert (
        quote.extra["quote_of"]
        == "at://did:plc:mfakz3ur6yq2w4e5t6p7a8b9/app.bsky.feed.post/3lm29zzzzzz2b"
    )

    reposted = posts["3lm29zzzzzz2b"]
    assert reposted.author_handle == "mfa.gov.kz.example"  # the original author
    assert reposted.extra["reposted_by"] == "kazembassy.bsky.social"
    assert reposted.lang == "ru"

    link = posts["3lm2a6fffff2f"]
    assert link.extra["link"] == "https://example.org/consular/registration"


def test_malformed_post_views_raise() -> None:
    good, no_uri, bad_date, _ = _fixture("search_malformed.json")
    assert post_view_to_post(good).text == "Good one."
    with pytest.raises(MappingError, match="missing required field: uri"):
        post_view_to_post(no_uri)
    with pytest.raises(MappingError, match="unreadable date/time"):
        post_view_to_post(bad_date)
    with pytest.raises(MappingError, match="not an at://"):
        post_view_to_post(dict(good, uri="https://bsky.app/x"))
    invalid = copy.deepcopy(good)
    invalid["author"]["handle"] = "handle.invalid"
    assert post_view_to_post(invalid).url == (
        "https://bsky.app/profile/did:plc:ctzn4hj5k6l7m8n9p2q3r4s5/post/3lm2c1jjjjj2j"
    )


def test_connectors_are_registered() -> None:
    found = connectors()
    assert found["bluesky"] is BlueskyConnector and found["bluesky"].target_field == "target"
    assert found["bluesky-jetstream"] is JetstreamConnector
    assert found["bluesky-jetstream"].pollable
    assert found["bluesky-jetstream"].target_field == "keywords"
    assert found["bluesky-jetstream-file"] is JetstreamFileConnector
    assert not found["bluesky-jetstream-file"].pollable


# ---------------------------------------------------------------------------- loopback AppView


def _sort_at(item: dict[str, Any]) -> str:
    reason = item.get("reason") or {}
    view = item.get("post", item)
    return str(reason.get("indexedAt") or view.get("indexedAt") or "")


@dataclass
class FakeAppView:
    """getAuthorFeed and searchPosts with timestamp cursors, newest first."""

    feeds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    searches: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    search_token: str | None = None
    fail_with: int | None = None
    requests: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)
    base: str = ""

    def page(self, items: list[dict[str, Any]], q: dict[str, str]) -> dict[str, Any]:
        items = sorted(items, key=_sort_at, reverse=True)
        if "cursor" in q:
            items = [i for i in items if _sort_at(i) < q["cursor"]]
        page = items[: int(q.get("limit", 50))]
        body: dict[str, Any] = {}
        if page:
            body["cursor"] = _sort_at(page[-1])
        return body | {"items": page}


def _appview_handler(api: FakeAppView) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(parts.query).items()}
            api.requests.append((parts.path, q, dict(self.headers)))
            if api.fail_with:
                self._send(
                    api.fail_with,
                    {"error": "InternalServerError", "message": "Internal Server Error"},
                )
            elif parts.path == "/xrpc/app.bsky.feed.getAuthorFeed":
                if q.get("actor") not in api.feeds:
                    self._send(400, {"error": "InvalidRequest", "message": "Profile not found"})
                    return
                body = api.page(api.feeds[q["actor"]], q)
                body["feed"] = body.pop("items")
                self._send(200, body)
            elif parts.path == "/xrpc/app.bsky.feed.searchPosts":
                wanted = f"Bearer {api.search_token}"
                if api.search_token and self.headers.get("Authorization") != wanted:
                    self._send(
                        403, {"error": "Forbidden", "message": "search needs a signed-in user"}
                    )
                    return
                body = api.page(api.searches.get(q.get("q", ""), []), q)
                body["posts"] = body.pop("items")
                self._send(200, body)
            else:
                self._send(404, {"error": "MethodNotImplemented", "message": "not here"})

    return Handler


@pytest.fixture
def appview() -> Iterator[FakeAppView]:
    api = FakeAppView()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _appview_handler(api))
    api.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield api
    server.shutdown()
    server.server_close()


def _source(db: Database, connector: str, config: dict[str, Any]) -> int:
    with db.session() as s:
        return service.add_source(db=s, connector=connector, config=config, every_minutes=15).id


def _source_row(db: Database, sid: int) -> Source:
    with db.session() as s:
        src = s.get(Source, sid)
        assert src is not None
        s.expunge(src)
        return src


def _new_item(template: dict[str, Any], rkey: str, minute: int) -> dict[str, Any]:
    view = copy.deepcopy(template["post"])
    did = view["author"]["did"]
    view["uri"] = f"at://{did}/{POST}/{rkey}"
    view["record"]["text"] = f"Жаңа хабар {rkey}"
    view["record"]["createdAt"] = f"2026-05-10T09:{minute:02d}:00.000Z"
    view["indexedAt"] = f"2026-05-10T09:{minute:02d}:00.100Z"
    return {"post": view}


def test_author_feed_pages_cursor_and_catch_up(
    db: Database, fetch_ctx: FetchContext, appview: FakeAppView
) -> None:
    feed = _fixture("author_feed.json")
    appview.feeds["kazembassy.bsky.social"] = feed
    sid = _source(
        db,
        "bluesky",
        {"target": "author:@kazembassy.bsky.social", "service": appview.base, "limit": 2},
    )
    first = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert (first.read, first.stored, first.quarantined) == (6, 6, 0)
    queries = [q for _, q, _ in appview.requests]
    assert queries[0] == {"actor": "kazembassy.bsky.social", "limit": "2"}
    assert queries[1]["cursor"] == "2026-05-10T08:40:00.300Z"  # the API's cursor, passed on
    assert len(queries) == 4  # three full pages, then an empty one
    cursor = _source_row(db, sid).cursor
    assert cursor["newest"] == "2026-05-10T08:50:00.800000+00:00"
    assert cursor["newest_uri"].endswith("/3lm2a6fffff2f")

    appview.requests.clear()
    second = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert second.stored == 0 and second.duplicates == 2
    assert len(appview.requests) == 1  # the first page already reaches the newest post seen

    for rkey, minute in (("3lm2n1aaaaa2a", 1), ("3lm2n2bbbbb2b", 2), ("3lm2n3ccccc2c", 3)):
        feed.append(_new_item(feed[-1], rkey, minute))
    appview.requests.clear()
    third = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert third.stored == 3 and third.duplicates == 1
    assert len(appview.requests) == 2
    assert _source_row(db, sid).cursor["newest_uri"].endswith("/3lm2n3ccccc2c")


def test_pages_per_run_are_bounded(
    db: Database, fetch_ctx: FetchContext, appview: FakeAppView
) -> None:
    appview.feeds["kazembassy.bsky.social"] = _fixture("author_feed.json")
    sid = _source(
        db,
        "bluesky",
        {
            "target": "author:kazembassy.bsky.social",
            "service": appview.base,
            "limit": 2,
            "max_pages": 1,
        },
    )
    report = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert report.stored == 2 and len(appview.requests) == 1


def test_search_needs_a_token_and_health_records_it(
    db: Database, fetch_ctx: FetchContext, appview: FakeAppView, monkeypatch: pytest.MonkeyPatch
) -> None:
    appview.searches["Kazakhstan"] = _fixture("search_kazakhstan.json")
    appview.search_token = "app-token"
    sid = _source(db, "bluesky", {"target": "search:Kazakhstan", "service": appview.base})
    with pytest.raises(BlueskyError, match="HTTP 403") as info:
        run_source(db, source_id=sid, ctx=fetch_ctx)
    assert "search needs a signed-in user" in str(info.value)
    assert "set token" in str(info.value)
    src = _source_row(db, sid)
    assert src.health == "failing" and src.last_error is not None and "HTTP 403" in src.last_error

    with db.session() as s:
        row = s.get(Source, sid)
        assert row is not None
        row.config = dict(row.config, token="env:BSKY_TEST_TOKEN")  # the secret stays outside
    monkeypatch.setenv("BSKY_TEST_TOKEN", "app-token")
    report = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert report.stored == 3
    path, q, headers = appview.requests[-1]
    assert path == "/xrpc/app.bsky.feed.searchPosts"
    assert (q["q"], q["sort"]) == ("Kazakhstan", "latest")
    assert headers["Authorization"] == "Bearer app-token"
    assert _source_row(db, sid).health == "ok"
    with db.session() as s:
        langs = sorted(p.lang or "" for p in s.scalars(select(Post)))
    assert langs == ["en", "kk", "ru"]


def test_unknown_actor_and_server_errors(
    db: Database, fetch_ctx: FetchContext, appview: FakeAppView
) -> None:
    sid = _source(db, "bluesky", {"target": "author:nobody.example", "service": appview.base})
    with pytest.raises(BlueskyError, match=r"HTTP 400 .*Profile not found"):
        run_source(db, source_id=sid, ctx=fetch_ctx)
    appview.fail_with = 502
    with pytest.raises(BlueskyError, match=r"HTTP 502 .*try again later"):
        run_source(db, source_id=sid, ctx=fetch_ctx)
    assert _source_row(db, sid).failures == 2


def test_malformed_posts_from_the_service_are_quarantined(
    db: Database, fetch_ctx: FetchContext, appview: FakeAppView
) -> None:
    appview.searches["broken"] = _fixture("search_malformed.json")
    sid = _source(db, "bluesky", {"target": "search:broken", "service": appview.base})
    report = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert (report.read, report.stored, report.quarantined) == (4, 2, 2)
    with db.session() as s:
        rows = {q.location: q.reason for q in s.scalars(select(Quarantine))}
    assert rows == {
        "item 2": "missing required field: uri",
        "item 3": rows["item 3"],
    }
    assert "unreadable date/time" in rows["item 3"]


def test_bad_bluesky_configs_are_refused(db: Database) -> None:
    with db.session() as s:
        with pytest.raises(service.InvalidSource, match="author:<handle or did>"):
            service.add_source(db=s, connector="bluesky", config={"target": "likes:foo"})
        with pytest.raises(service.InvalidSource, match="at least one keyword"):
            service.add_source(db=s, connector="bluesky-jetstream", config={"keywords": " , "})
        with pytest.raises(service.InvalidSource, match="ws:// or wss://"):
            service.add_source(
                db=s,
                connector="bluesky-jetstream",
                config={"keywords": "x", "url": "http://127.0.0.1/subscribe"},
            )


# ---------------------------------------------------------------------------- loopback Jetstream


@dataclass
class FakeJetstream:
    """Replays recorded events in time order, honouring wantedCollections and cursor."""

    lines: list[str]
    extra: list[str] = field(default_factory=list)
    hold_open: bool = False
    refuse: bool = False
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    url: str = ""

    def selected(self, query: dict[str, list[str]]) -> list[str]:
        wanted = set(query.get("wantedCollections", []))
        since = int(query["cursor"][0]) if "cursor" in query else None
        out = []
        for line in sorted(self.lines, key=lambda x: json.loads(x)["time_us"]):
            event = json.loads(line)
            if event["kind"] == "commit" and wanted and event["commit"]["collection"] not in wanted:
                continue
            if since is not None and event["time_us"] < since:
                continue
            out.append(line)
        return out

    def handle(self, conn: ServerConnection) -> None:
        assert conn.request is not None
        query = parse_qs(urlsplit(conn.request.path).query)
        self.queries.append(query)
        for line in self.selected(query) + self.extra:
            try:
                conn.send(line)
            except ConnectionClosed:
                return
            try:
                self.sent.append(int(json.loads(line)["time_us"]))
            except ValueError:
                self.sent.append(0)
        while self.hold_open:
            try:
                conn.recv(timeout=0.1)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if self.refuse:
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "overloaded\n")
        return None


@pytest.fixture
def jetstream(shared_data: Path) -> Iterator[FakeJetstream]:
    lines = (shared_data / JETSTREAM).read_text(encoding="utf-8").splitlines()
    fake = FakeJetstream(lines=lines)
    server = serve(fake.handle, "127.0.0.1", 0, process_request=fake.process_request)
    fake.url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}/subscribe"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    thread.join(timeout=5)


KEYWORDS = "ELECTION,аВаТаРоМ,ＭＡＧＡ"  # English, Cyrillic and full-width letters


def _events_at(shared_data: Path, *numbers: int) -> list[dict[str, Any]]:
    lines = (shared_data / JETSTREAM).read_text(encoding="utf-8").splitlines()
    return [json.loads(lines[n - 1]) for n in numbers]


@pytest.mark.shared_data
def test_firehose_filters_keywords_saves_cursor_and_resumes(
    db: Database, fetch_ctx: FetchContext, jetstream: FakeJetstream, shared_data: Path
) -> None:
    sid = _source(
        db, "bluesky-jetstream", {"keywords": KEYWORDS, "url": jetstream.url, "max_seconds": 10}
    )
    first = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert jetstream.queries[0] == {"wantedCollections": [POST]}
    # The file's posts about elections (41, 56), MAGA (124) and the "Аватаром" one (144).
    expected = {_uri(e) for e in _events_at(shared_data, 41, 56, 124, 144)}
    with db.session() as s:
        stored = {p.external_id: p for p in s.scalars(select(Post))}
    assert set(stored) == expected
    assert (first.read, first.stored, first.quarantined) == (4, 4, 0)
    assert stored[_uri(_events_at(shared_data, 144)[0])].lang == "ru"
    saved = _source_row(db, sid).cursor["time_us"]
    assert saved == max(jetstream.sent)  # the newest event read, not only the newest kept
    assert len(jetstream.sent) == 17 + 1 + 2  # posts, a post deletion, identity, account

    second = run_source(db, source_id=sid, ctx=fetch_ctx)
    # The default 5-second rewind replays the whole (0.3 s long) window: all duplicates.
    assert jetstream.queries[1]["cursor"] == [str(saved - 5_000_000)]
    assert second.stored == 0 and second.duplicates == 4

    with db.session() as s:
        row = s.get(Source, sid)
        assert row is not None
        row.config = dict(row.config, rewind_seconds=0)
    jetstream.sent.clear()
    third = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert jetstream.queries[2]["cursor"] == [str(saved)]
    assert jetstream.sent == [saved]  # only the newest event is at or after the cursor
    assert third.stored == 0
    assert _source_row(db, sid).cursor["time_us"] == saved


def test_firehose_run_is_bounded_by_events(
    db: Database, fetch_ctx: FetchContext, jetstream: FakeJetstream
) -> None:
    sid = _source(
        db,
        "bluesky-jetstream",
        {"keywords": KEYWORDS, "url": jetstream.url, "max_events": 5, "rewind_seconds": 0},
    )
    run_source(db, source_id=sid, ctx=fetch_ctx)
    order = [json.loads(x)["time_us"] for x in jetstream.selected({"wantedCollections": [POST]})]
    assert _source_row(db, sid).cursor["time_us"] == order[4]
    for _ in range(10):  # each bounded run resumes where the last one stopped
        run_source(db, source_id=sid, ctx=fetch_ctx)
        if _source_row(db, sid).cursor["time_us"] == order[-1]:
            break
    with db.session() as s:
        assert len(list(s.scalars(select(Post)))) == 4


def test_firehose_run_is_bounded_by_time(
    db: Database, fetch_ctx: FetchContext, jetstream: FakeJetstream
) -> None:
    jetstream.hold_open = True  # a live stream never ends by itself
    sid = _source(
        db, "bluesky-jetstream", {"keywords": KEYWORDS, "url": jetstream.url, "max_seconds": 0.5}
    )
    started = time.monotonic()
    report = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert 0.5 <= time.monotonic() - started < 4
    assert report.stored == 4


def test_firehose_bad_events_are_quarantined(
    db: Database, fetch_ctx: FetchContext, jetstream: FakeJetstream, shared_data: Path
) -> None:
    bad_date = _events_at(shared_data, 124)[0]
    bad_date["commit"]["rkey"] = "3mptbadbadb2x"
    bad_date["commit"]["record"]["createdAt"] = "2026-07-04 at tea time"
    bad_date["time_us"] += 1
    jetstream.extra = ['{"did": "did:plc:x", "time_us": 17831758', json.dumps(bad_date)]
    sid = _source(db, "bluesky-jetstream", {"keywords": "maga", "url": jetstream.url})
    report = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert (report.stored, report.quarantined) == (1, 2)
    n = len(jetstream.sent)
    with db.session() as s:
        rows = {q.location: q.reason for q in s.scalars(select(Quarantine))}
    assert rows[f"event {n - 1}"].startswith("bad JSON")
    assert "unreadable date/time" in rows[f"event {n}"]
    assert _source_row(db, sid).cursor["time_us"] == max(jetstream.sent)


def test_firehose_refusal_and_unreachable_server(
    db: Database, fetch_ctx: FetchContext, jetstream: FakeJetstream
) -> None:
    jetstream.refuse = True
    sid = _source(db, "bluesky-jetstream", {"keywords": "x", "url": jetstream.url})
    with pytest.raises(BlueskyError, match="refused the subscription: HTTP 503"):
        run_source(db, source_id=sid, ctx=fetch_ctx)
    src = _source_row(db, sid)
    assert src.health == "failing" and "HTTP 503" in (src.last_error or "")
    sid = _source(db, "bluesky-jetstream", {"keywords": "x", "url": "ws://127.0.0.1:9/subscribe"})
    with pytest.raises(BlueskyError, match=r"cannot connect to 127\.0\.0\.1:9"):
        run_source(db, source_id=sid, ctx=fetch_ctx)
