"""Telegram connectors: web preview pages, Desktop exports, Telethon JSON dumps, API mapping."""

from __future__ import annotations

import json
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from elshi.connectors.base import BadRecord, FetchContext, MappingError, RawRecord
from elshi.connectors.telegram import (
    TelegramApiConnector,
    TelegramExportConnector,
    TelegramJsonConnector,
    TelegramWebConnector,
    TelegramWebError,
    TelethonMissing,
    channel_id_from_peer,
    jsonable,
    map_api_message,
    map_dump_message,
    map_web_message,
    normalize_channel,
    parse_count,
    parse_preview_page,
    post_ref,
)
from elshi.db import Database
from elshi.listen import service
from elshi.listen.flows import import_with, run_source
from elshi.listen.models import Post, Quarantine, Source
from elshi.plugins import connectors
from elshi.settings import Settings
from tests.net_support import allow_loopback

FIXTURES = Path(__file__).parents[1] / "fixtures" / "telegram"
CHANNEL = "QazMFA_demo"


@pytest.fixture
def settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Preview pages are served from 127.0.0.1 here: allow that address, as an operator allows
    an intranet range (elshi refuses private addresses by default)."""
    return allow_loopback(settings, monkeypatch)


def _posts(db: Database, connector: str | None = None) -> dict[str, Post]:
    with db.session() as s:
        q = select(Post)
        if connector:
            q = q.where(Post.connector == connector)
        rows = list(s.scalars(q))
        s.expunge_all()
    return {p.external_id: p for p in rows}


def _quarantine(db: Database) -> dict[str, str]:
    with db.session() as s:
        return {q.location: q.reason for q in s.scalars(select(Quarantine))}


# ---------------------------------------------------------------------------- helpers


def test_connectors_are_registered_as_plugins() -> None:
    found = connectors()
    assert found["telegram-web"] is TelegramWebConnector
    shape = {slug: (cls.target_field, cls.pollable) for slug, cls in found.items()}
    assert shape["telegram-web"] == ("channel", True)
    assert shape["telegram-export"] == ("path", False)
    assert shape["telegram-json"] == ("path", False)
    assert shape["telegram-api"] == ("channel", True)
    assert {
        found[s].platform
        for s in ("telegram-web", "telegram-export", "telegram-json", "telegram-api")
    } == {"telegram"}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("QazMFA_demo", "QazMFA_demo"),
        ("@QazMFA_demo", "QazMFA_demo"),
        ("https://t.me/s/QazMFA_demo", "QazMFA_demo"),
        ("t.me/QazMFA_demo/104", "QazMFA_demo"),
        (" telegram.me/QazMFA_demo ", "QazMFA_demo"),
    ],
)
def test_channel_forms_are_normalised(given: str, expected: str) -> None:
    assert normalize_channel(given) == expected


@pytest.mark.parametrize("bad", ["", "ab", "1channel", "https://example.org/", "name with space"])
def test_bad_channel_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a public channel username"):
        normalize_channel(bad)


def test_counts_links_and_peer_ids() -> None:
    assert [parse_count(x) for x in ("892", "4.85K", "1.2M", "5K", "", "n/a")] == [
        892,
        4850,
        1_200_000,
        5000,
        None,
        None,
    ]
    assert post_ref("https://t.me/QazMFA_demo/101") == "qazmfa_demo/101"
    assert post_ref("https://t.me/c/1987654321/7") == "c/1987654321/7"
    assert post_ref("https://t.me/QazMFA_demo") is None
    assert post_ref("https://example.org/QazMFA_demo/101") is None
    assert channel_id_from_peer(-1001987654321) == 1987654321
    assert channel_id_from_peer(5000002) is None
    assert channel_id_from_peer(-4012345) is None


# ---------------------------------------------------------------------------- web: mapping


def _page_messages(name: str) -> list[tuple[int | None, str]]:
    return parse_preview_page((FIXTURES / name).read_text(encoding="utf-8")).messages


def test_web_page_is_split_into_messages() -> None:
    page = parse_preview_page((FIXTURES / "web_page1.html").read_text(encoding="utf-8"))
    assert page.title == "Қазақстан СІМ | demo"
    assert page.has_history
    assert [mid for mid, _ in page.messages] == [101, 102, None, 104, 105, 106, 107, 110]
    empty = parse_preview_page((FIXTURES / "web_empty.html").read_text(encoding="utf-8"))
    assert empty.has_history and empty.messages == []
    other = parse_preview_page((FIXTURES / "web_not_preview.html").read_text(encoding="utf-8"))
    assert not other.has_history


def test_web_mapping_of_each_message_kind() -> None:
    msgs = dict((mid, html) for mid, html in _page_messages("web_page1.html") if mid)

    kk = map_web_message({"channel": CHANNEL, "html": msgs[101]})
    assert kk is not None
    assert kk.platform == "telegram"
    assert kk.external_id == "qazmfa_demo/101"
    assert kk.url == "https://t.me/QazMFA_demo/101"
    assert kk.text == (
        "Қазақстан Республикасы Сыртқы істер министрлігінің мәлімдемесі\n\n"
        "Астанада Орталық Азия мен Еуропалық Одақ елдері сыртқы істер министрлерінің "
        "кездесуі өтті 🇰🇿\nТолығырақ: gov.kz #СІМ"
    )
    assert kk.published_at == datetime(2026, 3, 2, 6, 15, 4, tzinfo=UTC)
    assert kk.metrics == {"views": 1200}
    assert kk.author_handle == "qazmfa_demo"
    assert kk.author_name == "Қазақстан СІМ | demo"
    assert kk.extra["signature"] == "Айгерім Сәрсенова"
    assert kk.extra["links"] == ["https://www.gov.kz/memleket/entities/mfa"]
    assert kk.reply_to is None and kk.repost_of is None

    ru = map_web_message({"channel": CHANNEL, "html": msgs[102]})
    assert ru is not None
    assert ru.text.splitlines() == [
        "В Астане прошли политические консультации МИД Казахстана и Германии.",
        "Стороны обсудили торгово-экономическое сотрудничество и визовые вопросы.",
    ]
    assert ru.repost_of == "kazinform_demo/5551"
    assert ru.extra["forwarded_from"] == {
        "name": "Казинформ | demo",
        "url": "https://t.me/kazinform_demo/5551",
    }
    assert ru.extra["media"] == ["photo"]
    assert ru.metrics["views"] == 3470

    reply = map_web_message({"channel": CHANNEL, "html": msgs[104]})
    assert reply is not None
    assert reply.reply_to == "qazmfa_demo/101"
    # the quoted message is not part of this message's text
    assert "мәлімдемесі" not in reply.text
    assert reply.text.endswith("Full statement: gov.kz/mfa")
    assert reply.extra["edited"] is True
    assert reply.extra["reactions"] == {"👍": 34, "🔥": 1100}
    assert reply.metrics == {"views": 12900, "reactions": 1134}

    album = map_web_message({"channel": CHANNEL, "html": msgs[107]})
    assert album is not None
    assert album.text == (
        "Қазақстан мен Түркия сыртқы істер министрлерінің кездесуінен фотосуреттер\n"
        "Фото со встречи министров иностранных дел Казахстана и Турции"
    )
    quote = map_web_message({"channel": CHANNEL, "html": msgs[110]})
    assert quote is not None
    assert quote.text == (
        "Елшілік хабарлайды:\nШетелдегі азаматтар консулдық есепке онлайн тұра алады.\n"
        "Подробнее на сайте посольства."
    )
    assert quote.extra["media"] == ["video"]
    # the video's running time is a <time> too; the post date comes from the date link
    assert quote.published_at == datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)


def test_web_media_only_and_service_messages_are_skipped() -> None:
    msgs = dict(_page_messages("web_page1.html"))
    assert map_web_message({"channel": CHANNEL, "html": msgs[105]}) is None
    service_msg = dict(_page_messages("web_page2.html"))[95]
    assert map_web_message({"channel": CHANNEL, "html": service_msg}) is None


def test_web_message_without_id_or_with_broken_date_is_refused() -> None:
    pages = _page_messages("web_page1.html")
    with pytest.raises(MappingError, match="no id"):
        map_web_message({"channel": CHANNEL, "html": pages[2][1]})
    with pytest.raises(MappingError, match="unreadable date/time"):
        map_web_message({"channel": CHANNEL, "html": dict(pages)[106]})
    with pytest.raises(MappingError, match="html"):
        map_web_message({"channel": CHANNEL})


# ---------------------------------------------------------------------------- web: real server

NEW_MESSAGE = (
    '<div class="tgme_widget_message_wrap js-widget_message_wrap">'
    '<div class="tgme_widget_message text_not_supported_wrap js-widget_message"'
    ' data-post="QazMFA_demo/111"><div class="tgme_widget_message_bubble">'
    '<div class="tgme_widget_message_text js-message_text" dir="auto">'
    "Жаңа хабарлама<br/>Новое сообщение</div>"
    '<div class="tgme_widget_message_footer compact js-message_footer">'
    '<div class="tgme_widget_message_info short js-message_info">'
    '<span class="tgme_widget_message_views">12</span><span class="tgme_widget_message_meta">'
    '<a class="tgme_widget_message_date" href="https://t.me/QazMFA_demo/111">'
    '<time datetime="2026-03-02T15:00:00+00:00" class="time">15:00</time></a></span>'
    "</div></div></div></div></div>\n"
)


@dataclass
class _Site:
    url: str
    requests: list[str] = field(default_factory=list)
    extra: str = ""


def _page_one(extra: str) -> str:
    html = (FIXTURES / "web_page1.html").read_text(encoding="utf-8")
    head, sep, tail = html.rpartition("</section>")
    return head + extra + sep + tail


@pytest.fixture
def site() -> Iterator[_Site]:
    """A threaded HTTP server on 127.0.0.1 serving t.me/s-style pages from the fixtures."""
    state = _Site(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            state.requests.append(self.path)
            url = urlsplit(self.path)
            before = parse_qs(url.query).get("before", [None])[0]
            if url.path == f"/s/{CHANNEL}":
                if before is None:
                    self._send(200, _page_one(state.extra))
                elif before == "101":
                    self._send(200, (FIXTURES / "web_page2.html").read_text(encoding="utf-8"))
                else:
                    self._send(200, (FIXTURES / "web_empty.html").read_text(encoding="utf-8"))
            elif url.path == "/s/broken_demo":
                self._send(500, "<html><body>Internal Server Error</body></html>")
            elif url.path == "/s/private_demo":
                self._send(302, "", {"Location": "/private_demo"})
            elif url.path == "/private_demo":
                self._send(200, (FIXTURES / "web_not_preview.html").read_text(encoding="utf-8"))
            else:
                self._send(404, "<html><body>Not Found</body></html>")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _web_source(db: Database, site: _Site, **options: Any) -> int:
    config = {"channel": CHANNEL, "base_url": site.url, "delay_seconds": 0, **options}
    with db.session() as s:
        return service.add_source(db=s, connector="telegram-web", config=config).id


def test_web_polls_back_to_the_cursor(db: Database, site: _Site, fetch_ctx: FetchContext) -> None:
    sid = _web_source(db, site)
    first = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert site.requests == [f"/s/{CHANNEL}", f"/s/{CHANNEL}?before=101", f"/s/{CHANNEL}?before=95"]
    assert (first.read, first.stored, first.skipped, first.quarantined) == (12, 8, 2, 2)
    posts = _posts(db)
    assert sorted(posts) == sorted(
        f"qazmfa_demo/{i}" for i in (97, 99, 100, 101, 102, 104, 107, 110)
    )
    assert posts["qazmfa_demo/99"].text.endswith("мәдени кеш өтеді 🎉")
    assert posts["qazmfa_demo/100"].published_at == datetime(2026, 3, 1, 14, 30, tzinfo=UTC)
    assert posts["qazmfa_demo/104"].reply_to == "qazmfa_demo/101"
    # pages are stored oldest first, so earlier messages get smaller row ids
    assert posts["qazmfa_demo/97"].id < posts["qazmfa_demo/101"].id
    bad = _quarantine(db)
    assert set(bad) == {"page 1 message 3", "page 1 message 6"}
    assert "no id" in bad["page 1 message 3"]
    assert "unreadable date/time" in bad["page 1 message 6"]
    with db.session() as s:
        source = s.get(Source, sid)
        assert source is not None
        assert source.cursor == {"last_id": 110}
        assert source.health == "ok"

    site.requests.clear()
    second = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert site.requests == [f"/s/{CHANNEL}"]
    assert (second.read, second.stored, second.quarantined) == (0, 0, 0)

    site.extra = NEW_MESSAGE
    third = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert (third.read, third.stored) == (1, 1)
    assert _posts(db)["qazmfa_demo/111"].text == "Жаңа хабарлама\nНовое сообщение"
    with db.session() as s:
        source = s.get(Source, sid)
        assert source is not None and source.cursor == {"last_id": 111}


def test_web_first_poll_reads_at_most_max_pages(
    db: Database, site: _Site, fetch_ctx: FetchContext
) -> None:
    sid = _web_source(db, site, max_pages=1)
    report = run_source(db, source_id=sid, ctx=fetch_ctx)
    assert site.requests == [f"/s/{CHANNEL}"]
    assert report.stored == 5
    assert min(int(k.split("/")[1]) for k in _posts(db)) == 101


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ("nosuch_demo", "HTTP 404 (no such public channel?)"),
        ("broken_demo", "HTTP 500 (server error"),
        ("private_demo", "has no public web preview"),
    ],
)
def test_web_unreadable_channel_raises_a_clear_error(
    db: Database, site: _Site, fetch_ctx: FetchContext, channel: str, message: str
) -> None:
    config = {"channel": channel, "base_url": site.url, "delay_seconds": 0}
    with pytest.raises(TelegramWebError) as caught:
        import_with(db, connector=TelegramWebConnector(), config=config, ctx=fetch_ctx)
    assert message in str(caught.value)
    assert _posts(db) == {}


def test_web_failing_source_records_its_error(
    db: Database, site: _Site, fetch_ctx: FetchContext
) -> None:
    with db.session() as s:
        sid = service.add_source(
            db=s,
            connector="telegram-web",
            every_minutes=15,
            config={"channel": "broken_demo", "base_url": site.url, "delay_seconds": 0},
        ).id
    with pytest.raises(TelegramWebError):
        run_source(db, source_id=sid, ctx=fetch_ctx)
    with db.session() as s:
        source = s.get(Source, sid)
        assert source is not None
        assert source.health == "failing"
        assert "HTTP 500" in (source.last_error or "")
        assert source.cursor == {}


# ---------------------------------------------------------------------------- Desktop export


def _records(connector: Any, ctx: FetchContext, **config: Any) -> list[RawRecord | BadRecord]:
    return list(connector.fetch(connector.parse_config(config), {}, ctx))


def test_export_mapping_of_a_single_chat(fetch_ctx: FetchContext) -> None:
    conn = TelegramExportConnector()
    records = _records(conn, fetch_ctx, path=str(FIXTURES / "export_single.json"))
    assert [r.location for r in records] == [f"message {n}" for n in range(1, 7)]
    assert all(isinstance(r, RawRecord) for r in records)
    posts = [conn.to_post(r) for r in records if isinstance(r, RawRecord)]
    assert posts[0] is None  # service message: channel created
    assert posts[5] is None  # a sticker with no text
    kk, ru, en, reply = posts[1:5]
    assert kk is not None and ru is not None and en is not None and reply is not None
    assert kk.external_id == "c/1555666777/2"
    assert kk.url == "https://t.me/c/1555666777/2"
    assert kk.text == "Құрметті отандастар! Елшілік жаңа арнасын ашты.\nБізге жазылыңыздар 🇰🇿"
    # date_unixtime (UTC) wins over "date", the exporting computer's local time (UTC+5 here)
    assert kk.published_at == datetime(2025, 11, 3, 10, 5, tzinfo=UTC)
    assert kk.author_handle == "c/1555666777"
    assert kk.author_name == "Қазақстан Елшілігі | demo"
    assert ru.text == (
        "Консульский учёт\nГраждане Казахстана могут встать на учёт онлайн через "
        "портал электронного правительства.\nЗапись на приём: "
        "https://www.gov.kz/memleket/entities/mfa"
    )
    assert ru.extra["links"] == [
        "https://egov.kz/cms/ru/services/consular",
        "https://www.gov.kz/memleket/entities/mfa",
    ]
    assert ru.extra["signature"] == "Консульский отдел"
    assert en.extra["forwarded_from"] == {"name": "Kazinform | demo"}
    assert en.extra["media"] == ["photo"]
    assert en.extra["reactions"] == {"👍": 12, "❤": 3}
    assert en.metrics == {"reactions": 15}
    assert en.extra["edited"] == "1762344600"
    assert reply.reply_to == "c/1555666777/3"

    named = _records(
        conn, fetch_ctx, path=str(FIXTURES / "export_single.json"), channel="@KazEmbassy_demo"
    )
    assert isinstance(named[1], RawRecord)
    post = conn.to_post(named[1])
    assert post is not None
    assert post.external_id == "kazembassy_demo/2"
    assert post.url == "https://t.me/KazEmbassy_demo/2"


def test_export_of_a_whole_account_reads_every_chat(fetch_ctx: FetchContext) -> None:
    conn = TelegramExportConnector()
    records = _records(
        conn,
        fetch_ctx,
        path=str(FIXTURES / "export_full.json"),
        usernames={"1555666777": "KazEmbassy_demo"},
    )
    assert [r.location for r in records] == [
        "chat 1 message 1",
        "chat 1 message 2",
        "chat 1 message 3",
        "chat 2 message 1",
        "chat 3 message 1",
    ]
    posts = [conn.to_post(r) for r in records if isinstance(r, RawRecord)]
    ids = [p.external_id for p in posts if p is not None]
    assert ids == ["kazembassy_demo/2", "kazembassy_demo/3", "c/5000002/7", "c/1888999000/4410"]
    personal, group = posts[3], posts[4]
    assert personal is not None and group is not None
    assert personal.author_handle == "user5000002" and personal.author_name == "Айгерім"
    assert personal.url is None  # a private chat has no t.me link
    assert group.url == "https://t.me/c/1888999000/4410"
    assert group.text == "Кто-нибудь знает, работает ли консульство в субботу?"


def test_cli_ingest_export_exit_codes_and_quarantine(cli: Any, db: Database) -> None:
    clean = cli("ingest", "telegram-export", str(FIXTURES / "export_single.json"), "--no-progress")
    assert clean.exit_code == 0, clean.output
    assert len(_posts(db, "telegram-export")) == 4

    again = cli("ingest", "telegram-export", str(FIXTURES / "export_single.json"), "--no-progress")
    assert again.exit_code == 0, again.output
    assert len(_posts(db, "telegram-export")) == 4

    broken = cli("ingest", "telegram-export", str(FIXTURES / "export_broken.json"), "--no-progress")
    assert broken.exit_code == 3, broken.output
    assert "quarantine list" in broken.output

    listed = cli("quarantine", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {r["location"]: r for r in json.loads(listed.output)}
    assert set(rows) == {"message 3", "message 4"}
    assert "unreadable date/time 'скоро'" in rows["message 3"]["reason"]
    assert rows["message 4"]["reason"] == "missing required field: id"
    assert all(r["connector"] == "telegram-export" for r in rows.values())
    assert rows["message 3"]["origin"].endswith("export_broken.json")
    table = cli("quarantine", "list")
    assert table.exit_code == 0
    assert "telegram-export" in table.output and "message 4" in table.output


def test_export_ingest_is_idempotent(db: Database, fetch_ctx: FetchContext) -> None:
    config = {"path": str(FIXTURES / "export_full.json")}
    first = import_with(db, connector=TelegramExportConnector(), config=config, ctx=fetch_ctx)
    assert (first.read, first.stored, first.skipped, first.quarantined) == (5, 4, 1, 0)
    second = import_with(db, connector=TelegramExportConnector(), config=config, ctx=fetch_ctx)
    assert (second.stored, second.duplicates) == (0, 4)


def test_truncated_export_keeps_what_came_before(
    db: Database, fetch_ctx: FetchContext, tmp_path: Path
) -> None:
    data = (FIXTURES / "export_single.json").read_bytes()
    cut = data.index(b'"id": 4')
    broken = tmp_path / "result.json"
    broken.write_bytes(data[:cut])
    report = import_with(
        db, connector=TelegramExportConnector(), config={"path": str(broken)}, ctx=fetch_ctx
    )
    assert report.stored == 2  # messages 2 and 3; 1 is a service message
    assert report.quarantined == 1
    reason = _quarantine(db)["message 4"]
    assert reason.startswith("bad JSON, the rest of the file is unreadable")


def test_a_file_that_is_not_an_export_is_refused(cli: Any) -> None:
    r = cli("ingest", "telegram-export", str(FIXTURES / "telethon_dump.json"), "--no-progress")
    assert r.exit_code == 1
    assert "not a Telegram Desktop export: no messages list" in " ".join(r.output.split())
    r = cli("ingest", "telegram-export", str(FIXTURES / "missing.json"), "--no-progress")
    assert r.exit_code == 1
    assert "no such file" in " ".join(r.output.split())


# ---------------------------------------------------------------------------- Telethon JSON dump


def test_every_shared_dump_file_maps_exactly(fetch_ctx: FetchContext, shared_data: Path) -> None:
    files = sorted((shared_data / "telegram-ru-news").glob("*_messages.json"))
    assert len(files) == 4
    conn = TelegramJsonConnector()
    for file in files:
        items = json.loads(file.read_text(encoding="utf-8"))
        records = _records(conn, fetch_ctx, path=str(file))
        assert len(records) == len(items)
        for item, record in zip(items, records, strict=True):
            assert isinstance(record, RawRecord)
            post = conn.to_post(record)
            assert post is not None
            channel_id = -item["sender_id"] - 10**12
            assert post.external_id == f"c/{channel_id}/{item['message_id']}"
            assert post.text == item["text"].strip()
            assert post.published_at == datetime.fromisoformat(item["date"])
            assert post.author_name == item["channel"]
            assert post.extra["category"] == item["category"]


def test_every_shared_dump_file_imports(
    db: Database, fetch_ctx: FetchContext, shared_data: Path
) -> None:
    files = sorted((shared_data / "telegram-ru-news").glob("*_messages.json"))
    assert files
    for file in files:
        items = json.loads(file.read_text(encoding="utf-8"))
        expected = {i["message_id"]: i for i in items if i["text"].strip()}
        report = import_with(
            db, connector=TelegramJsonConnector(), config={"path": str(file)}, ctx=fetch_ctx
        )
        assert report.read == len(items)
        assert report.stored == len(expected)
        assert report.quarantined == 0
        channel_id = -items[0]["sender_id"] - 10**12
        stored = {
            k: p for k, p in _posts(db, "telegram-json").items() if k.startswith(f"c/{channel_id}/")
        }
        assert len(stored) == len(expected)
        for mid, item in expected.items():
            post = stored[f"c/{channel_id}/{mid}"]
            assert post.text == item["text"].strip()
            assert post.published_at == datetime.fromisoformat(item["date"])
            assert post.author_name == item["channel"]
    assert len(_posts(db, "telegram-json")) == sum(
        len(json.loads(f.read_text(encoding="utf-8"))) for f in files
    )


def test_dump_skips_empty_text_and_quarantines_bad_dates(
    db: Database, fetch_ctx: FetchContext
) -> None:
    config = {"path": str(FIXTURES / "telethon_dump.json")}
    report = import_with(db, connector=TelegramJsonConnector(), config=config, ctx=fetch_ctx)
    assert (report.read, report.stored, report.skipped, report.quarantined) == (5, 3, 1, 1)
    assert _quarantine(db) == {"message 2": "unreadable date/time 'вчера'"}
    posts = _posts(db)
    assert sorted(posts) == ["c/1987654321/104", "c/1987654321/120", "c/1987654321/123"]
    assert posts["c/1987654321/120"].text.startswith("Сыртқы істер министрі Женевада")
    assert posts["c/1987654321/120"].url == "https://t.me/c/1987654321/120"
    again = import_with(db, connector=TelegramJsonConnector(), config=config, ctx=fetch_ctx)
    assert (again.stored, again.duplicates) == (0, 3)


def test_dump_records_without_id_or_channel_are_refused() -> None:
    good = {
        "message_id": 7,
        "sender_id": -1001987654321,
        "text": "Сәлем",
        "date": "2026-03-02T09:40:00+00:00",
        "channel": "Demo",
    }
    no_id = {k: v for k, v in good.items() if k != "message_id"}
    with pytest.raises(MappingError, match="missing required field: message_id"):
        map_dump_message({"channel": None, "message": no_id})
    user_sent = dict(good, sender_id=5000002)
    with pytest.raises(MappingError, match="-o channel=NAME"):
        map_dump_message({"channel": None, "message": user_sent})
    post = map_dump_message({"channel": None, "peer_id": -1001987654321, "message": user_sent})
    assert post is not None and post.external_id == "c/1987654321/7"
    with pytest.raises(MappingError, match="not a JSON object"):
        map_dump_message({"channel": None, "message": [1, 2]})


def test_dump_folder_locations_name_the_file(fetch_ctx: FetchContext, tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "telethon_dump.json", tmp_path / "-1001987654321_messages.json")
    (tmp_path / "zz_broken.json").write_text('[{"message_id": 1, "da', encoding="utf-8")
    conn = TelegramJsonConnector()
    records = list(conn.fetch(conn.parse_config({"path": str(tmp_path)}), {}, fetch_ctx))
    assert records[1].location == "-1001987654321_messages.json message 2"
    bad = records[-1]
    assert isinstance(bad, BadRecord)
    assert bad.location == "zz_broken.json message 1"
    assert "bad JSON" in bad.reason


def test_dump_that_is_not_an_array_is_refused(fetch_ctx: FetchContext, tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text('{"message_id": 1, "text": "x"}', encoding="utf-8")
    conn = TelegramJsonConnector()
    with pytest.raises(ValueError, match="not a JSON array of messages"):
        list(conn.fetch(conn.parse_config({"path": str(path)}), {}, fetch_ctx))


def test_the_same_message_from_web_and_dump_is_stored_once(
    db: Database, site: _Site, fetch_ctx: FetchContext
) -> None:
    web = import_with(
        db,
        connector=TelegramWebConnector(),
        config={"channel": CHANNEL, "base_url": site.url, "delay_seconds": 0},
        ctx=fetch_ctx,
    )
    assert web.stored == 8
    dump = import_with(
        db,
        connector=TelegramJsonConnector(),
        config={"path": str(FIXTURES / "telethon_dump.json"), "channel": "qazmfa_demo"},
        ctx=fetch_ctx,
    )
    assert (dump.stored, dump.duplicates) == (2, 1)
    posts = _posts(db)
    assert posts["qazmfa_demo/104"].connector == "telegram-web"
    assert posts["qazmfa_demo/120"].connector == "telegram-json"
    assert posts["qazmfa_demo/120"].url == "https://t.me/qazmfa_demo/120"


# ---------------------------------------------------------------------------- live API (Telethon)


def _telethon_message() -> dict[str, Any]:
    """A dict shaped like Telethon's Message.to_dict(), with its datetimes and bytes."""
    return {
        "_": "Message",
        "id": 5120,
        "peer_id": {"_": "PeerChannel", "channel_id": 1987654321},
        "date": datetime(2026, 3, 4, 8, 0, 5, tzinfo=UTC),
        "message": "Қазақстан СІМ: Астанада халықаралық форум ашылды.\n"
        "МИД: в Астане открылся форум.",
        "out": False,
        "mentioned": False,
        "media_unread": False,
        "silent": False,
        "post": True,
        "from_scheduled": False,
        "legacy": False,
        "edit_hide": False,
        "pinned": False,
        "noforwards": False,
        "from_id": None,
        "fwd_from": {
            "_": "MessageFwdHeader",
            "date": datetime(2026, 3, 4, 7, 0, tzinfo=UTC),
            "imported": False,
            "saved_out": False,
            "from_id": {"_": "PeerChannel", "channel_id": 1222333444},
            "from_name": None,
            "channel_post": 77,
            "post_author": "Kazinform",
        },
        "via_bot_id": None,
        "reply_to": {
            "_": "MessageReplyHeader",
            "reply_to_scheduled": False,
            "forum_topic": False,
            "quote": False,
            "reply_to_msg_id": 5100,
            "reply_to_peer_id": None,
        },
        "media": {
            "_": "MessageMediaPhoto",
            "spoiler": False,
            "photo": {
                "_": "Photo",
                "id": 1,
                "access_hash": 2,
                "file_reference": b"\x01\x02\x03",
                "date": datetime(2026, 3, 4, tzinfo=UTC),
            },
        },
        "reply_markup": None,
        "entities": [
            {"_": "MessageEntityBold", "offset": 0, "length": 13},
            {
                "_": "MessageEntityTextUrl",
                "offset": 14,
                "length": 8,
                "url": "https://www.gov.kz/memleket/entities/mfa",
            },
        ],
        "views": 15321,
        "forwards": 42,
        "replies": {"_": "MessageReplies", "replies": 7, "replies_pts": 1, "comments": True},
        "edit_date": datetime(2026, 3, 4, 8, 5, tzinfo=UTC),
        "post_author": "Пресс-служба",
        "grouped_id": None,
        "reactions": {
            "_": "MessageReactions",
            "results": [
                {
                    "_": "ReactionCount",
                    "reaction": {"_": "ReactionEmoji", "emoticon": "👍"},
                    "count": 120,
                },
                {
                    "_": "ReactionCount",
                    "reaction": {"_": "ReactionCustomEmoji", "document_id": 99},
                    "count": 3,
                },
            ],
        },
        "restriction_reason": [],
        "ttl_period": None,
    }


def test_api_mapping_of_a_telethon_message() -> None:
    payload = jsonable(
        {
            "channel": "QazMFA_demo",
            "channel_id": 1987654321,
            "channel_title": "Қазақстан СІМ | demo",
            "message": _telethon_message(),
        }
    )
    json.dumps(payload)  # what the I/O part stores must be JSON
    assert payload["message"]["media"]["photo"]["file_reference"] == "AQID"
    post = map_api_message(payload)
    assert post is not None
    assert post.external_id == "qazmfa_demo/5120"
    assert post.url == "https://t.me/QazMFA_demo/5120"
    assert post.text.splitlines() == [
        "Қазақстан СІМ: Астанада халықаралық форум ашылды.",
        "МИД: в Астане открылся форум.",
    ]
    assert post.published_at == datetime(2026, 3, 4, 8, 0, 5, tzinfo=UTC)
    assert post.metrics == {"views": 15321, "forwards": 42, "replies": 7, "reactions": 123}
    assert post.reply_to == "qazmfa_demo/5100"
    assert post.repost_of == "c/1222333444/77"
    assert post.extra["media"] == ["photo"]
    assert post.extra["links"] == ["https://www.gov.kz/memleket/entities/mfa"]
    assert post.extra["signature"] == "Пресс-служба"
    assert post.author_name == "Қазақстан СІМ | demo"

    without_name = map_api_message({"channel": None, "message": _telethon_message()})
    assert without_name is not None
    assert without_name.external_id == "c/1987654321/5120"


def test_api_mapping_skips_service_and_empty_messages() -> None:
    service_msg = {
        "_": "MessageService",
        "id": 1,
        "date": "2026-03-01T00:00:00+00:00",
        "peer_id": {"_": "PeerChannel", "channel_id": 1},
        "action": {"_": "X"},
    }
    assert map_api_message({"channel": "QazMFA_demo", "message": service_msg}) is None
    photo_only = dict(_telethon_message(), message="")
    assert map_api_message({"channel": "QazMFA_demo", "message": photo_only}) is None
    with pytest.raises(MappingError, match="date"):
        map_api_message({"channel": "QazMFA_demo", "message": dict(_telethon_message(), date=None)})


def test_api_connector_without_telethon_says_how_to_install(
    fetch_ctx: FetchContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "telethon", None)
    monkeypatch.setitem(sys.modules, "telethon.sync", None)
    conn = TelegramApiConnector()
    cfg = conn.parse_config({"channel": "@QazMFA_demo", "api_id": 12345, "api_hash": "0" * 32})
    with pytest.raises(TelethonMissing, match=r"pip install elshi\[telethon\]"):
        list(conn.fetch(cfg, {}, fetch_ctx))
