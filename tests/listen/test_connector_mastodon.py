"""Mastodon: Status mapping on the documented examples, stream files, polling a loopback server."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlalchemy import select

from elshi.connectors.base import FetchContext, MappingError, RawRecord
from elshi.connectors.mastodon import (
    MastodonConnector,
    MastodonError,
    MastodonStreamConnector,
    html_to_text,
    status_to_post,
    stream_event_to_post,
)
from elshi.db import Database
from elshi.listen import service
from elshi.listen.flows import import_with, run_source
from elshi.listen.models import Post, Quarantine, Source
from elshi.listen.reprocess import reprocess_posts
from elshi.plugins import connectors
from elshi.settings import Settings
from tests.net_support import allow_loopback

FIXTURES = Path(__file__).parents[1] / "fixtures" / "mastodon"
DOCS = "formats/mastodon-documentation"


@pytest.fixture
def settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Mastodon servers are faked on 127.0.0.1 here: allow that address, as an operator allows
    an intranet range (elshi refuses private addresses by default)."""
    return allow_loopback(settings, monkeypatch)


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------- pure mapping


@pytest.mark.shared_data
def test_status_example_from_the_docs(shared_data: Path) -> None:
    status = json.loads((shared_data / DOCS / "Status_example0.json").read_text(encoding="utf-8"))
    post = status_to_post(status, "mastodon.social")
    assert post.platform == "mastodon"
    assert post.external_id == "mastodon.social/103270115826048975"
    assert post.url == "https://mastodon.social/@Gargron/103270115826048975"
    assert post.author_handle == "Gargron@mastodon.social"
    assert post.author_name == "Eugen"
    # Two paragraphs; the link's hidden spans join back into the full address.
    assert post.text == (
        '"I lost my inheritance with one wrong digit on my sort code"\n\n'
        "https://www.theguardian.com/money/2019/dec/07/"
        "i-lost-my-193000-inheritance-with-one-wrong-digit-on-my-sort-code"
    )
    assert post.lang == "en"
    assert post.published_at == datetime(2019, 12, 8, 3, 48, 33, 901000, tzinfo=UTC)
    assert post.metrics == {"replies": 5, "reblogs": 6, "favourites": 11, "quotes": 2}
    assert post.reply_to is None and post.repost_of is None and post.title is None
    assert post.extra["has_media"] is False
    assert post.extra["uri"] == "https://mastodon.social/users/Gargron/statuses/103270115826048975"


@pytest.mark.shared_data
def test_streaming_examples_from_the_docs(shared_data: Path) -> None:
    results = {}
    for path in sorted((shared_data / DOCS).glob("streaming_example*.json")):
        results[path.name] = stream_event_to_post(
            json.loads(path.read_text(encoding="utf-8")), "mastodon.social"
        )
    assert len(results) == 5
    posts = {name: p for name, p in results.items() if p is not None}
    assert list(posts) == ["streaming_example2.json"]  # the one "update" event
    post = posts["streaming_example2.json"]
    assert post.external_id == "mastodon.social/108913983692647032"
    assert post.author_handle == "tobtobxx@fosstodon.org"  # remote account keeps its own host
    assert post.author_name == "TobTobXX"
    assert post.text == (
        "And now I can't exit the inner nvim because I mapped escape to the parent vim instance 😂"
    )
    assert post.reply_to == "mastodon.social/108913981098896721"
    assert post.published_at == datetime(2022, 8, 30, 21, 38, 22, tzinfo=UTC)
    assert post.url == "https://fosstodon.org/@tobtobxx/108913983628474640"


def test_html_to_text_keeps_breaks_and_decodes_entities() -> None:
    html = "<p>One &amp; two<br>three</p><p>  four\n five </p><ul><li>a</li><li>b</li></ul>"
    assert html_to_text(html) == "One & two\nthree\n\nfour five\n\na\n\nb"
    assert html_to_text("") == ""


def test_own_statuses_reblog_reply_cw_media() -> None:
    by_id = {s["id"]: s for s in _fixture("tag_kazakhstan.json")}
    host = "mastodon.example"

    first = status_to_post(by_id["112000000000000101"], host)
    assert first.text == (
        "Елшілік Берлинде Қазақстан мәдениеті күндерін өткізеді.\n"
        "Барлық отандастарды шақырамыз! #kazakhstan\n\nТіркелу: https://example.org/register"
    )
    assert first.author_handle == "kazembassy@mastodon.example"
    assert first.author_name == "Қазақстан елшілігі"
    assert first.lang == "kk"
    assert first.metrics == {"replies": 2, "reblogs": 5, "favourites": 17}
    assert first.extra["tags"] == ["kazakhstan"]

    reply = status_to_post(by_id["112000000000000103"], host)
    assert reply.reply_to == "mastodon.example/112000000000000101"
    assert reply.text == "@kazembassy Тіркелу қай уақытта ашылады?"

    reblog = status_to_post(by_id["112000000000000104"], host)
    assert reblog.external_id == "mastodon.example/112000000000000104"
    assert reblog.repost_of == "mastodon.example/112000000000000102"
    assert reblog.author_handle == "aigerim@mastodon.example"  # who reblogged
    assert reblog.text == (
        "Kazakhstan's Foreign Ministry held consultations with Germany on trade & transit."
    )
    assert reblog.lang == "en"  # the reblogged status' language
    assert reblog.url == "https://mastodon.social/@mfa_kz/112400000000000555"
    assert reblog.extra["reblog_of_account"] == "mfa_kz@mastodon.social"

    cw = status_to_post(by_id["112000000000000105"], host)
    assert cw.title == "Консулдық хабарландыру"
    assert cw.extra["spoiler_text"] == "Консулдық хабарландыру"
    assert cw.extra["sensitive"] is True

    media = status_to_post(by_id["112000000000000106"], host)
    assert media.text == "Астанадағы Бейбітшілік пен келісім сарайы"  # the alt text
    assert media.extra["has_media"] is True
    assert media.extra["media"][0]["type"] == "image"

    remote = status_to_post(by_id["112000000000000107"], host)
    assert remote.author_handle == "mfa_kz@mastodon.social"
    assert remote.text == (
        "Астанада ЕАЭО отырысы өтті.\n\nДелегациялар сауда мен көлік туралы келісті."
    )


def test_malformed_statuses_raise_mapping_errors() -> None:
    good, no_id, bad_date, _ = _fixture("malformed_page.json")
    assert status_to_post(good, "h").external_id == "h/112000000000000201"
    with pytest.raises(MappingError, match="missing required field: id"):
        status_to_post(no_id, "h")
    with pytest.raises(MappingError, match="unreadable date/time"):
        status_to_post(bad_date, "h")
    with pytest.raises(MappingError, match="not a JSON object"):
        status_to_post(["x"], "h")
    with pytest.raises(MappingError, match="payload is not JSON"):
        stream_event_to_post({"event": "update", "payload": "{oops"}, "h")
    with pytest.raises(MappingError, match="instance"):
        MastodonConnector().to_post(RawRecord({"status": good}, "item 1"))


def test_connectors_are_registered() -> None:
    found = connectors()
    assert found["mastodon"] is MastodonConnector
    assert found["mastodon"].pollable and found["mastodon"].target_field == "target"
    assert found["mastodon-stream"] is MastodonStreamConnector
    assert not found["mastodon-stream"].pollable


# ---------------------------------------------------------------------------- stream files


def test_stream_file_import_quarantines_bad_lines(db: Database, fetch_ctx: FetchContext) -> None:
    report = import_with(
        db,
        connector=MastodonStreamConnector(),
        config={"path": str(FIXTURES / "stream_public.jsonl"), "instance": "mastodon.example"},
        ctx=fetch_ctx,
    )
    assert report.read == 8
    assert report.stored == 2
    assert report.duplicates == 1  # the "status.update" edit of a status already stored
    assert report.skipped == 2  # a delete and a filters_changed event
    assert report.quarantined == 3
    with db.session() as s:
        rows = {q.location: q.reason for q in s.scalars(select(Quarantine))}
        posts = {p.external_id: p for p in s.scalars(select(Post))}
    assert rows["line 3"].startswith("bad JSON")
    assert "unreadable date/time" in rows["line 5"]
    assert "payload is not JSON" in rows["line 6"]
    assert set(posts) == {
        "mastodon.example/112000000000000301",
        "mastodon.example/112000000000000302",
    }
    assert posts["mastodon.example/112000000000000301"].text == "Ағынан келген жазба."
    assert posts["mastodon.example/112000000000000302"].author_handle == "mfa_kz@mastodon.social"
    # The kept raw payload carries the server's host, so mapping it again gives the same post.
    assert reprocess_posts(db, connector="mastodon-stream") == {
        "checked": 2,
        "updated": 0,
        "failed": 0,
    }


@pytest.mark.shared_data
def test_cli_imports_a_docs_streaming_example(cli: Any, shared_data: Path, db: Database) -> None:
    path = shared_data / DOCS / "streaming_example2.json"
    r = cli(
        "ingest", "mastodon-stream", str(path), "-o", "instance=mastodon.social", "--no-progress"
    )
    assert r.exit_code == 0, r.output
    with db.session() as s:
        post = s.scalars(select(Post)).one()
    assert post.external_id == "mastodon.social/108913983692647032"
    assert post.connector == "mastodon-stream"
    r = cli(
        "ingest",
        "mastodon-stream",
        str(shared_data / DOCS / "Status_example0.json"),
        "-o",
        "instance=mastodon.social",
        "--no-progress",
    )
    assert r.exit_code == 0, r.output
    with db.session() as s:
        handles = sorted(p.author_handle for p in s.scalars(select(Post)))
    assert handles == ["Gargron@mastodon.social", "tobtobxx@fosstodon.org"]


# ---------------------------------------------------------------------------- loopback server


def _key(sid: Any) -> tuple[int, str]:
    text = str(sid or "")
    return (len(text), text)


@dataclass
class FakeMastodon:
    """A tiny Mastodon API: timelines with real paging semantics, lookups and forced errors."""

    timelines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)
    base: str = ""

    def page(
        self, path: str, items: list[dict[str, Any]], q: dict[str, str]
    ) -> tuple[list[Any], str]:
        items = sorted(items, key=lambda s: _key(s.get("id")), reverse=True)
        limit = int(q.get("limit", 20))
        if "max_id" in q:
            items = [s for s in items if _key(s.get("id")) < _key(q["max_id"])]
        if "since_id" in q:
            items = [s for s in items if _key(s.get("id")) > _key(q["since_id"])]
        if "min_id" in q:
            newer = [s for s in items if _key(s.get("id")) > _key(q["min_id"])]
            page = newer[-limit:]  # the statuses immediately newer than min_id
        else:
            page = items[:limit]
        link = ""
        if page:
            extra = "&local=true" if q.get("local") else ""
            link = (
                f'<{self.base}{path}?max_id={page[-1].get("id")}{extra}>; rel="next", '
                f'<{self.base}{path}?min_id={page[0].get("id")}{extra}>; rel="prev"'
            )
        return page, link


def _handler(api: FakeMastodon) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: Any, link: str = "") -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if link:
                self.send_header("Link", link)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            q = {k: v[0] for k, v in parse_qs(parts.query).items()}
            api.requests.append((path, q, dict(self.headers)))
            if path in api.errors:
                code = api.errors[path]
                self._send(
                    code,
                    {
                        "error": "This API requires an authenticated user"
                        if code == 401
                        else "Something went wrong"
                    },
                )
                return
            if path.startswith("/api/v1/timelines/tag/"):
                key = "tag:" + path.rsplit("/", 1)[1].lower()
            elif path == "/api/v1/timelines/public":
                key = "public:local" if q.get("local") == "true" else "public"
            elif path == "/api/v1/accounts/lookup":
                if q.get("acct") in api.accounts:
                    self._send(200, {"id": api.accounts[q["acct"]], "acct": q["acct"]})
                else:
                    self._send(404, {"error": "Record not found"})
                return
            elif path.startswith("/api/v1/accounts/") and path.endswith("/statuses"):
                key = "account:" + path.split("/")[4]
                if key not in api.timelines:
                    self._send(404, {"error": "Record not found"})
                    return
            else:
                self._send(404, {"error": "Not found"})
                return
            page, link = api.page(parts.path, api.timelines.get(key, []), q)
            self._send(200, page, link)

    return Handler


@pytest.fixture
def mastodon_server() -> Iterator[FakeMastodon]:
    api = FakeMastodon()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield api
    server.shutdown()
    server.server_close()


def _source(db: Database, config: dict[str, Any], connector: str = "mastodon") -> int:
    with db.session() as s:
        return service.add_source(db=s, connector=connector, config=config, every_minutes=15).id


def _cursor(db: Database, sid: int) -> dict[str, Any]:
    with db.session() as s:
        src = s.get(Source, sid)
        assert src is not None
        return dict(src.cursor)


def _new_status(template: dict[str, Any], sid: str, text: str) -> dict[str, Any]:
    status = copy.deepcopy(template)
    status.update(id=sid, content=f"<p>{text}</p>", created_at="2026-05-10T09:00:00.000Z")
    return status


def test_poll_tag_pages_cursor_and_catch_up(
    db: Database, fetch_ctx: FetchContext, mastodon_server: FakeMastodon
) -> None:
    statuses = _fixture("tag_kazakhstan.json")
    mastodon_server.timelines["tag:kazakhstan"] = statuses
    sid = _source(db, {"instance": mastodon_server.base, "target": "tag:#Kazakhstan", "limit": 3})

    first = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert (first.read, first.stored, first.quarantined) == (7, 7, 0)
    pages = [q for p, q, _ in mastodon_server.requests]
    assert [p for p, _, _ in mastodon_server.requests] == ["/api/v1/timelines/tag/Kazakhstan"] * 3
    assert pages[0] == {"limit": "3"}
    assert pages[1] == {"limit": "3", "max_id": "112000000000000105"}  # from the Link header
    assert pages[2] == {"limit": "3", "max_id": "112000000000000102"}
    assert _cursor(db, sid)["min_id"] == "112000000000000107"
    host = urlsplit(mastodon_server.base).netloc
    with db.session() as s:
        query = select(Post).where(Post.external_id == f"{host}/112000000000000104")
        reblog = s.scalars(query).one()
        assert reblog.repost_of == f"{host}/112000000000000102"
        assert reblog.author_handle == f"aigerim@{host}"

    mastodon_server.requests.clear()
    second = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert (second.read, second.stored) == (0, 0)
    assert [q for _, q, _ in mastodon_server.requests] == [
        {"limit": "3", "min_id": "112000000000000107"}
    ]

    template = statuses[0]
    for n in range(108, 112):
        statuses.append(_new_status(template, f"112000000000000{n}", f"Жаңа жазба {n}"))
    mastodon_server.requests.clear()
    third = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert third.stored == 4 and third.duplicates == 0
    assert [q for _, q, _ in mastodon_server.requests] == [
        {"limit": "3", "min_id": "112000000000000107"},
        {"limit": "3", "min_id": "112000000000000110"},
    ]
    assert _cursor(db, sid)["min_id"] == "112000000000000111"
    with db.session() as s:
        src = s.get(Source, sid)
        assert src is not None and src.health == "ok" and src.failures == 0


def test_pages_per_run_are_bounded(
    db: Database, fetch_ctx: FetchContext, mastodon_server: FakeMastodon
) -> None:
    mastodon_server.timelines["tag:kazakhstan"] = _fixture("tag_kazakhstan.json")
    sid = _source(
        db,
        {"instance": mastodon_server.base, "target": "tag:kazakhstan", "limit": 2, "max_pages": 2},
    )
    report = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert report.stored == 4
    assert len(mastodon_server.requests) == 2
    assert _cursor(db, sid)["min_id"] == "112000000000000107"


def test_account_lookup_public_local_and_token(
    db: Database, fetch_ctx: FetchContext, mastodon_server: FakeMastodon
) -> None:
    statuses = _fixture("tag_kazakhstan.json")
    own = [s for s in statuses if s["account"]["acct"] == "kazembassy"]
    mastodon_server.accounts["kazembassy"] = "110000000000000001"
    mastodon_server.timelines["account:110000000000000001"] = own
    mastodon_server.timelines["public:local"] = own[:2]
    sid = _source(
        db, {"instance": mastodon_server.base, "target": "account:@kazembassy", "token": "s3cret"}
    )
    report = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert report.stored == len(own) == 3
    (lookup_path, lookup_q, lookup_h), (path, _, headers) = mastodon_server.requests
    assert (lookup_path, lookup_q) == ("/api/v1/accounts/lookup", {"acct": "kazembassy"})
    assert path == "/api/v1/accounts/110000000000000001/statuses"
    assert headers["Authorization"] == lookup_h["Authorization"] == "Bearer s3cret"

    mastodon_server.requests.clear()
    sid = _source(db, {"instance": mastodon_server.base, "target": "public:local"})
    report = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert report.stored == 0 and report.duplicates == 2  # both were stored from the account
    path, q, headers = mastodon_server.requests[0]
    assert path == "/api/v1/timelines/public" and q["local"] == "true"
    assert "Authorization" not in headers


def test_token_can_come_from_the_environment(
    db: Database,
    fetch_ctx: FetchContext,
    mastodon_server: FakeMastodon,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mastodon_server.timelines["public"] = _fixture("tag_kazakhstan.json")[:1]
    sid = _source(
        db,
        {"instance": mastodon_server.base, "target": "public", "token": "env:MASTODON_TEST_TOKEN"},
    )
    with pytest.raises(MastodonError, match="MASTODON_TEST_TOKEN is not set"):
        run_source(db, source_id=sid, ctx=fetch_ctx)
    assert not mastodon_server.requests
    monkeypatch.setenv("MASTODON_TEST_TOKEN", "from-env")
    assert run_source(db, source_id=sid, ctx=fetch_ctx).stored == 1
    assert mastodon_server.requests[0][2]["Authorization"] == "Bearer from-env"


@pytest.mark.parametrize(
    ("target", "code", "expected"),
    [
        ("tag:private", 401, "HTTP 401"),
        ("tag:gone", 404, "HTTP 404"),
        ("tag:broken", 503, "HTTP 503"),
        ("account:nobody", None, "HTTP 404"),
    ],
)
def test_http_errors_are_recorded_in_source_health(
    db: Database,
    fetch_ctx: FetchContext,
    mastodon_server: FakeMastodon,
    target: str,
    code: int | None,
    expected: str,
) -> None:
    if code is not None:
        mastodon_server.errors[f"/api/v1/timelines/tag/{target.split(':')[1]}"] = code
    sid = _source(db, {"instance": mastodon_server.base, "target": target})
    with pytest.raises(MastodonError, match=expected) as info:
        run_source(db, source_id=sid, ctx=fetch_ctx)
    message = str(info.value)
    if code == 401:
        assert "access token" in message and "authenticated user" in message
    if code == 503:
        assert "try again later" in message
    with db.session() as s:
        src = s.get(Source, sid)
        assert src is not None
        assert src.failures == 1 and src.health == "failing"
        assert src.last_error is not None and expected in src.last_error
        assert src.cursor == {}


def test_unreachable_server_is_a_clear_error(db: Database, fetch_ctx: FetchContext) -> None:
    sid = _source(db, {"instance": "http://127.0.0.1:9", "target": "public"})
    with pytest.raises(MastodonError, match=r"cannot reach 127\.0\.0\.1:9"):
        run_source(db, source_id=sid, ctx=fetch_ctx)


def test_malformed_statuses_from_the_server_are_quarantined(
    db: Database, fetch_ctx: FetchContext, mastodon_server: FakeMastodon
) -> None:
    mastodon_server.timelines["tag:malformed"] = _fixture("malformed_page.json")
    sid = _source(db, {"instance": mastodon_server.base, "target": "tag:malformed"})
    report = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert (report.read, report.stored, report.quarantined) == (4, 2, 2)
    with db.session() as s:
        rows = {q.location: q.reason for q in s.scalars(select(Quarantine))}
        assert all(q.source_id == sid for q in s.scalars(select(Quarantine)))
    # The server answers newest first: 204, 203 (bad date), 201, then the one without an id.
    assert "unreadable date/time" in rows["item 2"]
    assert rows["item 4"] == "missing required field: id"
    assert _cursor(db, sid)["min_id"] == "112000000000000204"


def test_bad_targets_are_refused(db: Database, cli: Any) -> None:
    with db.session() as s, pytest.raises(service.InvalidSource, match="tag:<hashtag>"):
        service.add_source(
            db=s,
            connector="mastodon",
            config={"instance": "mastodon.social", "target": "hashtag:x"},
        )
    r = cli("sources", "add", "mastodon", "public:everything", "-o", "instance=mastodon.social")
    assert r.exit_code == 2
    r = cli(
        "sources",
        "add",
        "mastodon",
        "tag:kazakhstan",
        "-o",
        "instance=mastodon.social",
        "--every",
        "15m",
    )
    assert r.exit_code == 0, r.output
    with db.session() as s:
        src = s.scalars(select(Source)).one()
    assert src.config == {"instance": "mastodon.social", "target": "tag:kazakhstan"}
