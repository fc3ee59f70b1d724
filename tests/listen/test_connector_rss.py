"""RSS/Atom connector: mapping of real feeds, encodings, quarantine, and polling over real HTTP."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from elshi.connectors.base import FetchContext, MappingError, PostIn, RawRecord
from elshi.connectors.rss import (
    FeedError,
    RssConnector,
    decode_feed,
    html_to_text,
    norm_lang,
    parse_feed,
    parse_feed_date,
)
from elshi.db import Database
from elshi.listen import flows, service
from elshi.listen.models import IngestRun, Post, Quarantine, Source
from elshi.plugins import connectors
from elshi.settings import Settings
from tests.net_support import allow_loopback

FIXTURES = Path(__file__).parents[1] / "fixtures" / "rss"
SAMPLES = "formats/rss-atom-rss-parser"
SAMPLE_FILES = [
    "content-encoded.rss",
    "encoding-gb2312.xml",
    "encoding.rss",
    "feedburner.atom",
    "guardian.rss",
    "heise.atom",
    "latin2.rss",
    "reddit-atom.rss",
    "rss-1.rss",
    "uolNoticias.rss",
]
TAG = re.compile(r"</?(p|div|br|a|img|span|b|i|table|td|h\d)\b", re.I)
MOJIBAKE = re.compile("Ã[\u0080-\u00bf]|â€|Â\u00a0|\ufffd")


@pytest.fixture
def settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Feeds are served from 127.0.0.1 here: allow that address, as an operator allows
    an intranet range (elshi refuses private addresses by default)."""
    return allow_loopback(settings, monkeypatch)


def _utc(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _records(path: Path | str, ctx: FetchContext) -> list[Any]:
    conn = RssConnector()
    return list(conn.fetch(conn.parse_config({"url": str(path)}), {}, ctx))


def _posts(path: Path, ctx: FetchContext) -> list[PostIn]:
    conn = RssConnector()
    return [conn.to_post(r) for r in _records(path, ctx)]


# ---------------------------------------------------------------------------- real feeds


def test_registered_as_a_plugin() -> None:
    cls = connectors()["rss"]
    assert cls is RssConnector
    assert (cls.title, cls.platform, cls.target_field, cls.pollable) == (
        "RSS / Atom feed",
        "rss",
        "url",
        True,
    )


@pytest.mark.shared_data
@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_every_shared_sample_maps(shared_data: Path, fetch_ctx: FetchContext, name: str) -> None:
    path = shared_data / SAMPLES / name
    # Count items in the raw bytes, independently of the parser under test.
    expected = len(re.findall(rb"<(?:item|entry)[\s>]", path.read_bytes()))
    records = _records(path, fetch_ctx)
    assert len(records) == expected > 0
    conn = RssConnector()
    ids = set()
    for n, rec in enumerate(records, start=1):
        assert rec.kind == "rss-entry"
        assert rec.location == f"entry {n}"
        assert json.loads(json.dumps(rec.payload)) == rec.payload
        assert rec.payload["feed"]["title"]
        post = conn.to_post(rec)
        assert post.platform == "rss"
        assert post.title and not MOJIBAKE.search(post.title)
        assert not MOJIBAKE.search(post.text), post.text[:200]
        assert not TAG.search(post.text), post.text[:200]
        assert post.url is not None and post.url.startswith("http")
        assert post.published_at is not None and post.published_at.utcoffset() == timedelta(0)
        assert post.extra["feed_title"] == rec.payload["feed"]["title"]
        ids.add(post.external_id)
        # Mapping is pure: the kept payload maps to the same post again (what reprocess relies on).
        kept = json.loads(json.dumps(rec.payload))
        assert conn.to_post(RawRecord(payload=kept, location="x")) == post
    assert len(ids) == len(records)


EXPECTED: dict[str, dict[str, Any]] = {
    "guardian.rss": {
        "external_id": "https://www.theguardian.com/us-news/2018/jan/31/"
        "donald-trump-state-of-the-union-address-unity-discord",
        "url": "https://www.theguardian.com/us-news/2018/jan/31/"
        "donald-trump-state-of-the-union-address-unity-discord",
        "title": "Trump State of the Union address promised unity but emphasized discord",
        "author_name": "David Smith in Washington",
        "published_at": _utc(2018, 1, 31, 7, 26, 5),
        "lang": "en",
        "text_starts": "The president’s ‘new American moment’ speech stirred Republican applause",
        "text_has": "contempt\n\nDonald Trump has promised a “new American moment”",
    },
    "heise.atom": {
        "external_id": "http://heise.de/-3088438",
        "url": "http://www.heise.de/developer/meldung/Java-Anwendungsserver-Red-Hat-gibt-WildFly"
        "-10-frei-3088438.html?wt_mc=rss.developer.beitrag.atom",
        "title": "Java-Anwendungsserver: Red Hat gibt WildFly 10 frei",
        "author_name": "heise online",  # atom:author of the feed applies to its entries
        "published_at": _utc(2016, 2, 1, 16, 22, 0),
        "lang": None,
        "text_starts": "Die nun verfügbare Version 10 des Enterprise-Java-Servers",
        "text_has": "das dritte größere Release",
    },
    "feedburner.atom": {
        "external_id": "tag:blogger.com,1999:blog-7815614485808579332.post-8394866751819460570",
        "url": "http://googleadsdeveloper.blogspot.com/2016/06/adwords-and-dfp-java-client-library.html",
        "title": "AdWords and DFP Java client library will soon require Java 7+",
        "author_name": "Google Ads Developer Advisor",
        "published_at": _utc(2016, 6, 3, 14, 38, 0),
        "lang": None,
        "text_starts": "After November 2016, all releases of the Google Ads API Java Client",
        "text_has": "Java 7 (1.7) and higher.\n\n",
    },
    "content-encoded.rss": {
        "external_id": "https://medium.com/p/125af37d838f",
        "url": "https://medium.com/invironment/the-creative-forager-125af37d838f"
        "?source=rss----d12c403d4976--food",
        "title": "THE CREATIVE FORAGER",
        "author_name": "Jeremy Puma",
        "published_at": _utc(2018, 4, 9, 18, 55, 38),
        "lang": None,
        "text_starts": "Using Wild Ingredients in the Kitchen\n\nHEY, YOU! YES, YOU WITH THE",
        "text_has": "This is a book about how to use wild plants in the kitchen.",
    },
    "rss-1.rss": {
        "external_id": "http://science.sciencemag.org/cgi/content/short/356/6343/1134-a?rss=1",
        "url": "http://science.sciencemag.org/cgi/content/short/356/6343/1134-a?rss=1",
        "title": "Food for fungi",
        "author_name": "Hines, P. J.",
        "published_at": _utc(2017, 6, 15, 17, 29, 47),  # dc:date 10:29:47-07:00
        "lang": None,
        "text_starts": "",
        "text_has": "",
    },
    "reddit-atom.rss": {
        "external_id": "https://www.reddit.com/r/space/comments/42babr/the_difficulties_in_space/",
        "url": "https://www.reddit.com/r/space/comments/42babr/the_difficulties_in_space/",
        "title": "The Difficulties in Space",
        "author_name": None,
        "published_at": _utc(2016, 1, 23, 15, 40, 37),
        "lang": None,
        "text_starts": "submitted by",
        "text_has": "[959 comments]",
    },
    "encoding-gb2312.xml": {
        "external_id": "http://news.qq.com/a/20180918/009846.htm",
        "url": "http://news.qq.com/a/20180918/009846.htm",
        "title": "习近平为何如此强调崇尚英雄？",
        "author_name": "www.qq.com",
        "published_at": _utc(2018, 9, 18, 14, 38, 10),  # no zone given: read as UTC
        "lang": "zh",
        "text_starts": "编者按：历史是人民书写的，而英雄是人民的优秀代表。",
        "text_has": "崇尚英雄",
    },
    "encoding.rss": {
        "external_id": "https://www.jn.pt/nacional/interior/"
        "sonia-laig-e-a-nova-presidente-da-rarissimas-9021600.html",
        "url": "https://www.jn.pt/nacional/interior/"
        "sonia-laig-e-a-nova-presidente-da-rarissimas-9021600.html",
        "title": "Mãe de utente é a nova presidente da Raríssimas",
        "author_name": None,
        "published_at": _utc(2018, 1, 3, 13, 47, 0),
        "lang": "pt",
        "text_starts": "Sónia Laygue, profissional na área da Recursos Humanos e mãe de uma",
        "text_has": "é a nova presidente da direção da Raríssimas.",
    },
    "uolNoticias.rss": {
        "external_id": "https://noticias.uol.com.br/politica/eleicoes/2018/noticias/2018/09/24/"
        "ibope-bolsonaro-perde-de-haddad-ciro-e-alckmin-em-simulacoes-de-2-turno.htm",
        "url": "https://noticias.uol.com.br/politica/eleicoes/2018/noticias/2018/09/24/"
        "ibope-bolsonaro-perde-de-haddad-ciro-e-alckmin-em-simulacoes-de-2-turno.htm",
        "title": "Ibope: Bolsonaro perde de Haddad, Ciro e Alckmin em simulações de 2º turno",
        "author_name": None,
        "published_at": _utc(2018, 9, 24, 22, 42, 40),  # "Seg, 24 Set 2018 19:42:40 -0300"
        "lang": None,  # <language></language>
        "text_starts": "Líder na pesquisa Ibope de intenção de voto",
        "text_has": "Jair Bolsonaro, não tem o mesmo desempenho nas simulações",
    },
    "latin2.rss": {
        "external_id": "http://www.example.pl/news/1",
        "url": "http://www.example.pl/news/1",
        "title": "ZAŻÓŁĆ GĘSLĄ JAŹŃ",
        "author_name": "Adam Gżegżółka",
        "published_at": _utc(2019, 10, 18, 15, 27, 37),
        "lang": "pl",
        "text_starts": "Szedł sasza suchą szosą",
        "text_has": "suchą",
    },
}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_first_entry_of_each_sample(shared_data: Path, fetch_ctx: FetchContext, name: str) -> None:
    want = EXPECTED[name]
    post = _posts(shared_data / SAMPLES / name, fetch_ctx)[0]
    for key in ("external_id", "url", "title", "author_name", "published_at", "lang"):
        assert getattr(post, key) == want[key], key
    assert post.text.startswith(want["text_starts"])
    assert want["text_has"] in post.text


@pytest.mark.shared_data
def test_feed_level_fields_are_kept(shared_data: Path, fetch_ctx: FetchContext) -> None:
    rec = _records(shared_data / SAMPLES / "uolNoticias.rss", fetch_ctx)[1]
    assert rec.payload["feed"]["title"] == "UOL Noticias"
    assert rec.payload["feed"]["link"] == "http://noticias.uol.com.br/"
    post = RssConnector().to_post(rec)
    assert post.title == (
        "Promotoria abre inquérito para apurar suspeita de improbidade de Skaf no Sebrae-SP"
    )
    assert post.published_at == _utc(2018, 9, 24, 22, 38, 0)
    assert post.extra["feed_link"] == "http://noticias.uol.com.br/"


@pytest.mark.shared_data
def test_gb2312_sample_decodes_as_chinese(shared_data: Path) -> None:
    data = (shared_data / SAMPLES / "encoding-gb2312.xml").read_bytes()
    text, used = decode_feed(data)
    assert used == "gb18030"
    assert "<title>新闻国内</title>" in text
    # A server's generic default charset must not override the document's own declaration.
    text, used = decode_feed(data, http_charset="ISO-8859-1")
    assert used == "gb18030" and "新闻国内" in text


@pytest.mark.shared_data
def test_undeclared_latin1_sample_is_detected(shared_data: Path) -> None:
    text, used = decode_feed((shared_data / SAMPLES / "uolNoticias.rss").read_bytes())
    assert used in ("cp1252", "latin_1")
    assert "<description>Últimas Notícias</description>" in text


# ---------------------------------------------------------------------------- encodings

RU_FEED = (
    '<rss version="2.0"><channel><title>Новости МИД</title><link>https://mfa.example.kz/ru/</link>'
    "<item><guid>https://mfa.example.kz/ru/1</guid>"
    "<title>Министр иностранных дел провёл переговоры в Астане</title>"
    "<description>Стороны обсудили вопросы экономического сотрудничества и торговли."
    "</description></item></channel></rss>"
)
PT_FEED = (
    '<rss version="2.0"><channel><title>Notícias</title><link>https://example.br/</link>'
    "<item><guid>https://example.br/1</guid><title>Eleições: ação e reação no São João</title>"
    "<description>A população não está satisfeita com a situação econômica.</description>"
    "</item></channel></rss>"
)


def _first(data: bytes, http_charset: str | None = None) -> tuple[str, str]:
    parsed = parse_feed(data, http_charset=http_charset)
    entry = parsed.entries[0]
    return entry.title, entry.summary


@pytest.mark.parametrize(
    ("data", "http_charset"),
    [
        pytest.param(RU_FEED.encode("cp1251"), None, id="undeclared-cp1251"),
        pytest.param(RU_FEED.encode("koi8-r"), None, id="undeclared-koi8-r"),
        pytest.param(RU_FEED.encode("cp1251"), "windows-1251", id="http-charset"),
        pytest.param(
            b'<?xml version="1.0" encoding="windows-1251"?>\n' + RU_FEED.encode("cp1251"),
            None,
            id="declared-cp1251",
        ),
        pytest.param(
            b'<?xml version="1.0" encoding="ISO-8859-1"?>' + RU_FEED.encode("utf-8"),
            None,
            id="declared-latin1-but-utf8",
        ),
        pytest.param(RU_FEED.encode("utf-8"), "iso-8859-1", id="http-latin1-but-utf8"),
        pytest.param(RU_FEED.encode("utf-16"), None, id="utf16-bom"),
        pytest.param(b"\xef\xbb\xbf" + RU_FEED.encode("utf-8"), None, id="utf8-bom"),
    ],
)
def test_russian_in_any_encoding(data: bytes, http_charset: str | None) -> None:
    title, summary = _first(data, http_charset)
    assert title == "Министр иностранных дел провёл переговоры в Астане"
    assert summary == "Стороны обсудили вопросы экономического сотрудничества и торговли."


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(PT_FEED.encode("latin-1"), id="undeclared-latin1"),
        pytest.param(
            b'<?xml version="1.0" encoding="utf-8"?>' + PT_FEED.encode("cp1252"),
            id="declared-utf8-lie",
        ),
        pytest.param(
            b"<?xml version='1.0' encoding='iso-8859-1'?>" + PT_FEED.encode("latin-1"),
            id="declared-latin1",
        ),
        pytest.param(
            b'<?xml version="1.0" encoding="no-such-charset"?>' + PT_FEED.encode("latin-1"),
            id="unknown-label",
        ),
    ],
)
def test_portuguese_in_any_encoding(data: bytes) -> None:
    title, summary = _first(data)
    assert title == "Eleições: ação e reação no São João"
    assert summary == "A população não está satisfeita com a situação econômica."


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Dışişleri Bakanı Ankara'da görüştü; iş birliği ağı genişliyor.", "cp1254"),
        ("Minister spraw zagranicznych w Łodzi: współpraca będzie kontynuowana.", "iso8859_2"),
        ("Le ministre des Affaires étrangères à Genève a reçu l'ambassadeur.", "latin-1"),
        ("Außenminister trifft Amtskollegen in München – „sehr gute Gespräche“.", "cp1252"),
    ],
)
def test_undeclared_latin_code_pages(text: str, encoding: str) -> None:
    feed = f'<rss version="2.0"><channel><title>{text}</title></channel></rss>'
    decoded, _ = decode_feed(feed.encode(encoding))
    assert decoded == feed


# ---------------------------------------------------------------------------- own fixtures


def test_html_to_text_keeps_paragraphs() -> None:
    html = (
        "<div><p>Первый  абзац\n с переносом.</p><p>Второй<br/>с разрывом строки.</p>"
        "<script>alert(1)</script><ul><li>один</li><li>два</li></ul>Хвост &amp; конец</div>"
    )
    assert html_to_text(html) == (
        "Первый абзац с переносом.\n\nВторой\nс разрывом строки.\n\nодин\n\nдва\n\nХвост & конец"
    )
    assert html_to_text("") == ""
    assert html_to_text("plain   text") == "plain text"


def test_dates_and_languages() -> None:
    assert parse_feed_date("Seg, 24 Set 2018 19:42:40 -0300") == _utc(2018, 9, 24, 22, 42, 40)
    assert parse_feed_date("Mi, 05 Mär 2025 10:00:00 +0100") == _utc(2025, 3, 5, 9, 0, 0)
    assert parse_feed_date("2024-03-05T10:15:00+05:00") == _utc(2024, 3, 5, 5, 15, 0)
    with pytest.raises(MappingError, match="unreadable date"):
        parse_feed_date("na próxima semana")
    assert [norm_lang(x) for x in ("en-gb", "pt-BR", "zh_CN", "kk", "", None, "x-klingon")] == [
        "en",
        "pt",
        "zh",
        "kk",
        None,
        None,
        None,
    ]


def test_fixture_with_bad_entries_maps_good_ones(fetch_ctx: FetchContext) -> None:
    conn = RssConnector()
    records = _records(FIXTURES / "bad-entries.rss", fetch_ctx)
    assert [r.location for r in records] == [f"entry {n}" for n in range(1, 6)]
    first = conn.to_post(records[0])
    assert first.external_id == "https://embassy.example.org/p/101"
    assert first.url == "https://embassy.example.org/noticias/consulado-itinerante"
    assert first.author_name == "Assessoria de Imprensa"
    assert first.lang == "pt"  # <language>pt-BR</language>
    assert first.published_at == _utc(2024, 3, 5, 12, 30, 0)
    assert first.text == "O atendimento começa às 9h.\n\nLeve o passaporte e a certidão."
    with pytest.raises(MappingError, match="no id, no link and no title"):
        conn.to_post(records[1])
    with pytest.raises(MappingError, match="unreadable date"):
        conn.to_post(records[2])
    bare = conn.to_post(records[3])
    # A bare guid is scoped by the feed's link so it cannot collide with another feed's "4521".
    assert bare.external_id == "https://embassy.example.org/#4521"
    assert bare.url is None
    assert bare.published_at == _utc(2024, 3, 6, 17, 0, 0)
    assert bare.text == "Agora é possível fazer o registo online.\nSem filas."
    hashed = conn.to_post(records[4])
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", hashed.external_id)
    assert hashed.title == "Nota sem ligação"
    # The hash depends on title and date only, so a re-read gives the same id.
    again = conn.to_post(_records(FIXTURES / "bad-entries.rss", fetch_ctx)[4])
    assert again.external_id == hashed.external_id


def test_atom_languages_authors_and_relative_links(fetch_ctx: FetchContext) -> None:
    kk, ru = _posts(FIXTURES / "mission.atom", fetch_ctx)
    assert kk.lang == "kk" and ru.lang == "ru"  # feed xml:lang, then the entry's own
    assert kk.url == "https://mfa.example.kz/kk/news/1201"  # resolved against the feed link
    assert kk.author_name == "Баспасөз қызметі"  # inherited from the feed's atom:author
    assert kk.published_at == _utc(2024, 3, 5, 5, 15, 0)
    assert kk.text == (
        "Екі ел арасындағы сауда көлемі өсті.\n\nТараптар ынтымақтастықты жалғастыруға келісті."
    )
    assert ru.title == "Посольство предупреждает граждан"
    assert ru.author_name == "Посольство в Германии"
    assert ru.published_at == _utc(2024, 3, 6, 8, 0, 0)  # only <updated>
    assert ru.text == "Просим граждан воздержаться от поездок.\nСледите за новостями."


@pytest.mark.parametrize(
    ("name", "message"),
    [("broken.rss", "unreadable feed"), ("not-a-feed.html", "not an RSS or Atom feed")],
)
def test_wholly_broken_feed_raises(fetch_ctx: FetchContext, name: str, message: str) -> None:
    with pytest.raises(FeedError, match=message):
        _records(FIXTURES / name, fetch_ctx)


def test_config_accepts_urls_and_paths_only(tmp_path: Path) -> None:
    conn = RssConnector()
    assert conn.parse_config({"url": "https://example.org/feed"}).url == "https://example.org/feed"
    assert conn.parse_config({"url": str(tmp_path / "f.xml")}).url == str(tmp_path / "f.xml")
    for bad in ("ftp://example.org/feed.xml", "https://", "  "):
        with pytest.raises(ValidationError):
            conn.parse_config({"url": bad})


def test_missing_file_is_a_clear_error(tmp_path: Path, fetch_ctx: FetchContext) -> None:
    with pytest.raises(FeedError, match="no such feed file"):
        _records(tmp_path / "absent.xml", fetch_ctx)


def test_cli_ingest_file_quarantines_bad_entries(cli: Any, db: Database) -> None:
    r = cli("ingest", "rss", str(FIXTURES / "bad-entries.rss"), "--no-progress")
    assert r.exit_code == 3, r.output
    r = cli("quarantine", "list", "--json")
    rows = json.loads(r.stdout)
    assert sorted(q["location"] for q in rows) == ["entry 2", "entry 3"]
    reasons = {q["location"]: q["reason"] for q in rows}
    assert "no id, no link and no title" in reasons["entry 2"]
    assert "unreadable date" in reasons["entry 3"]
    table = cli("quarantine", "list").stdout
    assert "entry 2" in table and "entry 3" in table
    with db.session() as s:
        titles = sorted(p.title for p in s.scalars(select(Post)))
        assert titles == [
            "Embaixada abre consulado itinerante em Campinas",
            "Nota sem ligação",
            "Registo consular por via electrónica",
        ]
        post = s.scalars(
            select(Post).where(Post.external_id == "https://embassy.example.org/p/101")
        ).one()
        assert post.raw_kind == "rss-entry"
        assert post.raw["entry"]["id"] == "https://embassy.example.org/p/101"
        assert post.raw["feed"]["title"] == "Embaixada — Notícias"
    # The kept raw entries map again to the same posts.
    r = cli("reprocess", "--connector", "rss", "--no-progress")
    assert r.exit_code == 0, r.output
    assert "checked 3, updated 0, failed 0" in r.stdout


def test_cli_ingest_broken_feed_fails_clearly(cli: Any) -> None:
    r = cli("ingest", "rss", str(FIXTURES / "broken.rss"), "--no-progress")
    assert r.exit_code == 1
    assert "unreadable feed" in r.stderr


# ---------------------------------------------------------------------------- HTTP polling


@dataclass
class Route:
    """What the test server answers on one path."""

    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None
    status: int = 200
    delay: float = 0.0


@dataclass
class FeedServer:
    """A small HTTP server on 127.0.0.1 that honours conditional GET and can be told to fail."""

    base: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        """Return the full URL of a path on this server."""
        return self.base + path

    def statuses(self) -> list[int]:
        """Return the status of each answered request (kept by the handler)."""
        return [int(h.get("x-answered", 0)) for _, h in self.seen]


def _handler(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            # Record before answering: the client may go on as soon as the answer is sent.
            server.seen.append((self.path, headers))
            route = server.routes.get(self.path)
            if route is None:
                headers["x-answered"] = "404"
                self.send_error(404)
                return
            if route.delay:
                time.sleep(route.delay)
            fresh = (route.etag and headers.get("if-none-match") == route.etag) or (
                not route.etag
                and route.last_modified
                and headers.get("if-modified-since") == route.last_modified
            )
            status = route.status if route.status != 200 else 304 if fresh else 200
            headers["x-answered"] = str(status)
            self.send_response(status)
            if status == 304:
                self.end_headers()
                return
            body = route.body if status == 200 else b"server is unhappy"
            self.send_header("Content-Type", route.content_type if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            if route.etag:
                self.send_header("ETag", route.etag)
            if route.last_modified:
                self.send_header("Last-Modified", route.last_modified)
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """Serve feeds from 127.0.0.1 on a free port for one test."""
    state = FeedServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def _feed(n: int, start: int = 1) -> bytes:
    items = "".join(
        f"<item><title>Brief {i}: консульский приём</title>"
        f"<link>https://embassy.example.org/briefs/{i}</link>"
        f"<guid>https://embassy.example.org/briefs/{i}</guid>"
        f"<pubDate>Tue, 0{1 + i % 9} Oct 2024 10:00:00 +0500</pubDate>"
        f"<description>&lt;p&gt;Текст брифинга номер {i}.&lt;/p&gt;</description></item>"
        for i in range(start, start + n)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Briefs</title>'
        f"<link>https://embassy.example.org/</link><language>ru-RU</language>{items}</channel></rss>"
    ).encode()


def _count(db: Database, model: Any) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _add(db: Database, url: str) -> int:
    with db.session() as s:
        return service.add_source(db=s, connector="rss", config={"url": url}, every_minutes=15).id


def _sources(cli: Any) -> list[dict[str, Any]]:
    return list(json.loads(cli("sources", "list", "--json").stdout))


def test_cli_poll_with_etag_is_idempotent(cli: Any, db: Database, feed_server: FeedServer) -> None:
    feed_server.routes["/feed.xml"] = Route(body=_feed(3), etag='"v1"')
    url = feed_server.url("/feed.xml")
    r = cli("sources", "add", "rss", url, "--every", "15m")
    assert r.exit_code == 0, r.output
    r = cli("sources", "run", "--no-progress")
    assert r.exit_code == 0, r.output
    assert _count(db, Post) == 3
    [src] = _sources(cli)
    assert src["health"] and src["failures"] == 0 and src["last_error"] is None
    assert src["last_success_at"] is not None
    listed = cli("sources", "list").stdout
    assert "rss" in listed and src["health"] in listed
    with db.session() as s:
        cursor = s.scalars(select(Source)).one().cursor
        assert cursor["etag"] == '"v1"'
        assert len(cursor["seen"]) == 3
        post = s.scalars(select(Post).where(Post.external_id.like("%/briefs/2"))).one()
        assert post.lang == "ru" and post.text == "Текст брифинга номер 2."

    r = cli("sources", "run", "--no-progress")
    assert r.exit_code == 0, r.output
    assert _count(db, Post) == 3
    assert feed_server.seen[-1][1].get("if-none-match") == '"v1"'
    assert feed_server.statuses() == [200, 304]
    with db.session() as s:
        runs = s.execute(select(IngestRun.read, IngestRun.stored)).all()
        assert sorted(runs) == [(0, 0), (3, 3)]


def test_last_modified_and_seen_ids(
    db: Database, feed_server: FeedServer, fetch_ctx: FetchContext
) -> None:
    stamp = "Tue, 01 Oct 2024 10:00:00 GMT"
    feed_server.routes["/lm.xml"] = Route(body=_feed(2), last_modified=stamp)
    feed_server.routes["/plain.xml"] = Route(body=_feed(2))
    lm, plain = _add(db, feed_server.url("/lm.xml")), _add(db, feed_server.url("/plain.xml"))
    assert flows.run_source(db, source_id=lm, ctx=fetch_ctx).stored == 2
    second = flows.run_source(db, source_id=lm, ctx=fetch_ctx)
    assert (second.read, second.stored) == (0, 0)
    assert feed_server.seen[-1][1].get("if-modified-since") == stamp
    assert feed_server.statuses()[-1] == 304

    # Without validators the server answers 200 every time; seen ids keep unchanged entries out.
    first = flows.run_source(db, source_id=plain, ctx=fetch_ctx)
    assert (first.read, first.stored, first.duplicates) == (2, 0, 2)  # same guids as /lm.xml
    again = flows.run_source(db, source_id=plain, ctx=fetch_ctx)
    assert (again.read, again.stored) == (0, 0)
    feed_server.routes["/plain.xml"] = Route(body=_feed(3, start=2))
    newer = flows.run_source(db, source_id=plain, ctx=fetch_ctx)
    assert (newer.read, newer.stored) == (2, 2)
    assert "if-none-match" not in feed_server.seen[-1][1]
    assert _count(db, Post) == 4


def test_seen_ids_are_bounded(feed_server: FeedServer, fetch_ctx: FetchContext) -> None:
    feed_server.routes["/a.xml"] = Route(body=_feed(4))
    conn = RssConnector()
    cursor: dict[str, Any] = {"seen": [f"https://old.example/{i}" for i in range(10)]}
    cfg = conn.parse_config({"url": feed_server.url("/a.xml"), "seen_limit": 6})
    assert len(list(conn.fetch(cfg, cursor, fetch_ctx))) == 4
    assert len(cursor["seen"]) == 6
    assert cursor["seen"][:4] == [f"https://embassy.example.org/briefs/{i}" for i in range(1, 5)]
    assert cursor["seen"][4:] == ["https://old.example/0", "https://old.example/1"]


def test_failing_feed_records_health(cli: Any, db: Database, feed_server: FeedServer) -> None:
    feed_server.routes["/down.xml"] = Route(status=503)
    url = feed_server.url("/down.xml")
    assert cli("sources", "add", "rss", url, "--every", "15m").exit_code == 0
    before = datetime.now(UTC)
    r = cli("sources", "run", "--no-progress")
    assert r.exit_code == 1
    assert "HTTP 503" in r.stderr
    [src] = _sources(cli)
    assert src["failures"] == 1
    assert src["last_error"].startswith("HTTP 503 Service Unavailable from http://127.0.0.1:")
    next_run = datetime.fromisoformat(src["next_run_at"]).replace(tzinfo=UTC)
    assert next_run > before + timedelta(minutes=15)
    assert "HTTP 503" in cli("sources", "list").stdout
    assert cli("sources", "run", "--no-progress").exit_code == 1
    assert _sources(cli)[0]["failures"] == 2

    # Recovery clears the failure count.
    feed_server.routes["/down.xml"] = Route(body=_feed(1))
    assert cli("sources", "run", "--no-progress").exit_code == 0
    src = _sources(cli)[0]
    assert src["failures"] == 0 and src["last_success_at"] is not None


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (Route(status=404), "HTTP 404 Not Found"),
        (Route(status=500), "HTTP 500 Internal Server Error"),
        (
            Route(body=(FIXTURES / "not-a-feed.html").read_bytes(), content_type="text/html"),
            "not an RSS or Atom feed",
        ),
        (Route(body=(FIXTURES / "broken.rss").read_bytes()), "unreadable feed"),
        (Route(body=_feed(1), delay=1.5), "timed out"),
    ],
    ids=["404", "500", "html", "broken", "timeout"],
)
def test_http_errors_raise_and_mark_the_source(
    db: Database, settings: Settings, feed_server: FeedServer, route: Route, message: str
) -> None:
    feed_server.routes["/f.xml"] = route
    sid = _add(db, feed_server.url("/f.xml"))
    ctx = FetchContext(settings=settings.model_copy(update={"http_timeout": 0.5}))
    try:
        with pytest.raises(FeedError, match=message):
            flows.run_source(db, source_id=sid, ctx=ctx)
    finally:
        ctx.close()
    with db.session() as s:
        src = s.get(Source, sid)
        assert src is not None
        assert src.failures == 1
        assert src.last_error is not None and message in src.last_error
        assert src.next_run_at is not None
        assert src.next_run_at > datetime.now(UTC) + timedelta(minutes=15)
    assert _count(db, Post) == 0 and _count(db, Quarantine) == 0


@pytest.mark.shared_data
def test_http_charset_and_gb2312_over_http(
    shared_data: Path, feed_server: FeedServer, fetch_ctx: FetchContext
) -> None:
    feed_server.routes["/qq.xml"] = Route(
        body=(shared_data / SAMPLES / "encoding-gb2312.xml").read_bytes(),
        content_type="text/xml; charset=ISO-8859-1",
    )
    feed_server.routes["/ru.xml"] = Route(
        body=RU_FEED.encode("koi8-r"), content_type="application/rss+xml; charset=koi8-r"
    )
    conn = RssConnector()
    qq = conn.to_post(_records(feed_server.url("/qq.xml"), fetch_ctx)[0])
    assert qq.title == "习近平为何如此强调崇尚英雄？"
    ru = conn.to_post(_records(feed_server.url("/ru.xml"), fetch_ctx)[0])
    assert ru.title == "Министр иностранных дел провёл переговоры в Астане"
