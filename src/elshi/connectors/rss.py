"""RSS 2.0, RSS 1.0/RDF and Atom feeds, over HTTP(S) with conditional GET or from a local file."""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import re
import time
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import httpx
import lxml.html
from charset_normalizer import from_bytes
from lxml import etree
from pydantic import BaseModel, Field, field_validator

from elshi.connectors.base import (
    HTTP_ADDRESS,
    BadRecord,
    Connector,
    FetchContext,
    MappingError,
    PostIn,
    RawRecord,
    Records,
    parse_time,
)
from elshi.plugins import hookimpl

KIND = "rss-entry"
ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"
MAX_ID_CHARS = 300


class FeedError(RuntimeError):
    """A feed could not be fetched or read as a whole; the message says why."""


class RssConfig(BaseModel):
    """Where the feed is, and how much to remember between polls."""

    url: str = Field(
        description="Feed address: an http(s) URL, or the path of a local feed file for a "
        "one-off `elshi ingest`.",
        json_schema_extra=HTTP_ADDRESS,
    )
    seen_limit: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="How many recently seen entry ids to remember, so unchanged ones are skipped.",
    )
    max_bytes: int = Field(
        default=20_000_000, ge=1_000, description="Refuse feeds larger than this many bytes."
    )

    @field_validator("url")
    @classmethod
    def _http_or_path(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a feed URL or file path is required")
        parts = urlsplit(value)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            if not parts.netloc:
                raise ValueError(f"URL has no host: {value!r}")
            return value
        # One letter is a Windows drive ("C:\\feeds\\a.xml"), not a URL scheme.
        if len(scheme) > 1 and scheme != "file":
            raise ValueError(f"only http(s) URLs or local file paths are supported, not {scheme}:")
        return value


# ---------------------------------------------------------------------------- decoding

_XML_DECL = re.compile(rb"^\s*<\?xml\s[^>]*?\?>")
_DECL_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_TEXT_DECL = re.compile(r"^\s*<\?xml\s[^>]*?\?>")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Labels that real feeds use for a superset encoding (as web browsers read them).
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "iso8859_1": "cp1252",
    "ascii": "cp1252",
    "iso8859_9": "cp1254",
    "tis_620": "cp874",
    "iso8859_11": "cp874",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
}
_MULTI_BYTE_CP = ("cp932", "cp936", "cp949", "cp950")
_LATIN = frozenset(
    (
        "cp1250",
        "cp1252",
        "cp1254",
        "cp1257",
        "cp1258",
        "latin_1",
        "iso8859_1",
        "iso8859_2",
        "iso8859_3",
        "iso8859_4",
        "iso8859_9",
        "iso8859_10",
        "iso8859_13",
        "iso8859_14",
        "iso8859_15",
        "iso8859_16",
        "mac_latin2",
        "mac_roman",
        "mac_iceland",
        "mac_turkish",
        "cp437",
        "cp775",
        "cp850",
        "cp852",
        "cp857",
        "cp858",
        "hp_roman8",
    )
)
_LATIN_ORDER = ("cp1252", "cp1254", "cp1250", "iso8859_2", "iso8859_15", "cp1257", "iso8859_13")
# Icelandic letters: in text read with the wrong code page they mostly stand for Turkish ş and ğ.
_RARE_LETTERS = frozenset("ðþÐÞ")
_GENERIC = ("iso8859_1", "ascii", "cp1252")
_LABELS = {"x-gbk": "gbk", "windows-874": "cp874", "x-mac-cyrillic": "mac_cyrillic"}
_SINGLE_BYTE_PREFIXES = ("cp", "iso8859", "koi8", "mac", "kz1048", "ptcp", "tis")


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    try:
        label = label.strip().strip("\"'").lower()
        return codecs.lookup(_LABELS.get(label, label)).name.replace("-", "_")
    except LookupError:
        return None


def _candidates(label: str | None) -> list[str]:
    name = _codec(label)
    if name is None:
        return []
    wider = _SUPERSETS.get(name)
    return [wider, name] if wider else [name]


def _single_byte(name: str) -> bool:
    return name.startswith(_SINGLE_BYTE_PREFIXES) and name not in _MULTI_BYTE_CP


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _detect(data: bytes) -> tuple[str, str] | None:
    matches = list(from_bytes(data))
    if not matches:
        return None
    best = min(matches, key=lambda m: m.percent_chaos)
    if best.encoding not in _LATIN:
        return str(best), best.encoding
    # Detectors cannot tell Latin code pages apart on short text (Portuguese read as cp1250
    # is all letters too), so take windows-1252, the most common, unless its reading puts
    # symbols inside words ("Przyk³adowe"); then the next code page that reads cleanly.
    scored = []
    for rank, name in enumerate(_LATIN_ORDER):
        try:
            text = data.decode(name)
        except UnicodeDecodeError:
            continue
        scored.append((_oddities(text), rank, name, text))
    if not scored:
        return str(best), best.encoding
    _, _, name, text = min(scored)
    return text, name


def _oddities(text: str, limit: int = 200_000) -> int:
    """Count signs of a wrong code page: controls, rare letters, symbols wedged between letters."""
    sample = text[:limit]
    odd = 0
    for i, ch in enumerate(sample):
        if ch < "\x80":
            continue
        kind = unicodedata.category(ch)
        if (
            kind == "Cc"
            or ch in _RARE_LETTERS
            or (
                kind[0] != "L"
                and 0 < i < len(sample) - 1
                and sample[i - 1].isalpha()
                and sample[i + 1].isalpha()
            )
        ):
            odd += 1
    return odd


def decode_feed(data: bytes, http_charset: str | None = None) -> tuple[str, str]:
    """Decode feed bytes and name the encoding used (BOM, HTTP, XML declaration, detection)."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(name), name
            except UnicodeDecodeError:
                break
    for prefix, name in ((b"<\x00?\x00", "utf-16-le"), (b"\x00<\x00?", "utf-16-be")):
        if data.startswith(prefix):
            try:
                return data.decode(name), name
            except UnicodeDecodeError:
                break
    decl = _XML_DECL.match(data)
    declared = None
    if decl:
        found = _DECL_ENCODING.search(decl.group(0))
        declared = found.group(1).decode("ascii") if found else None
    as_utf8 = _utf8(data)
    non_ascii = not data.isascii()
    tried: list[str] = []
    labels = [http_charset, declared]
    # Servers often send a generic default charset; the document's own declaration knows better.
    if declared and _codec(http_charset) in _GENERIC:
        labels.reverse()
    for name in [c for label in labels for c in _candidates(label)]:
        if name in tried:
            continue
        tried.append(name)
        # Valid multi-byte UTF-8 is almost never legacy text: a single-byte label is a lie here.
        if as_utf8 is not None and non_ascii and _single_byte(name):
            return as_utf8, "utf_8"
        try:
            return data.decode(name), name
        except (UnicodeDecodeError, LookupError):
            continue
    if as_utf8 is not None:
        return as_utf8, "utf_8"
    detected = _detect(data)
    if detected is not None:
        return detected
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin_1"


def _as_utf8_xml(text: str) -> bytes:
    text = text.lstrip("\ufeff")
    decl = _TEXT_DECL.match(text)
    body = text[decl.end() :] if decl else text.lstrip()
    return ('<?xml version="1.0" encoding="utf-8"?>' + body).encode("utf-8")


def parse_feed(
    data: bytes, *, http_charset: str | None = None, base_url: str = "", language: str | None = None
) -> feedparser.FeedParserDict:
    """Decode and parse a feed document of any supported format."""
    text, _ = decode_feed(data, http_charset)
    headers = {"content-type": "application/xml; charset=utf-8"}
    if base_url:
        headers["content-location"] = base_url
    if language:
        headers["content-language"] = language
    return feedparser.parse(io.BytesIO(_as_utf8_xml(text)), response_headers=headers)


# ---------------------------------------------------------------------------- HTML to text

_BLOCKS = frozenset(
    (
        "address",
        "article",
        "aside",
        "blockquote",
        "dd",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "thead",
        "tr",
        "ul",
    )
)
_SKIP = frozenset(("script", "style", "noscript", "template", "head", "title"))
_MARKUP = re.compile(r"</?(?:p|div|br|span|a|img|b|i|em|strong|li|ul|table|td)\b[^<>]*>", re.I)
_WS = re.compile(r"\s+")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")
_BLANKS = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """Turn an HTML fragment into readable text with paragraphs separated by blank lines."""
    if not html or not html.strip():
        return ""
    if "<" not in html and "&" not in html:
        return _tidy(html)
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return _tidy(re.sub(r"<[^>]*>", " ", html))
    parts: list[str] = []
    try:
        _walk(root, parts)
    except RecursionError:
        return _tidy(re.sub(r"<[^>]*>", " ", html))
    text = _tidy("".join(parts))
    # Some feeds escape their HTML twice; what is left then is markup, not prose.
    if len(_MARKUP.findall(text)) >= 2:
        return html_to_text(text)
    return text


def _walk(el: Any, out: list[str], pre: bool = False) -> None:
    # Source line breaks are plain spaces in HTML, except inside <pre>.
    tag = el.tag.lower() if isinstance(el.tag, str) else ""
    if tag and tag not in _SKIP:
        if tag == "br":
            out.append("\n")
        elif tag in _BLOCKS:
            out.append("\n\n")
        elif tag in ("td", "th"):
            out.append(" ")
        inner = pre or tag == "pre"
        if el.text:
            out.append(el.text if inner else _WS.sub(" ", el.text))
        for child in el:
            _walk(child, out, inner)
        if tag in _BLOCKS:
            out.append("\n\n")
    if el.tail:
        out.append(el.tail if pre else _WS.sub(" ", el.tail))


def _tidy(text: str) -> str:
    lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


# ---------------------------------------------------------------------------- dates

# Month names some feeds write in their own language instead of RFC 822 English.
_MONTHS = {
    "jan": "Jan",
    "janv": "Jan",
    "ene": "Jan",
    "gen": "Jan",
    "janeiro": "Jan",
    "enero": "Jan",
    "fev": "Feb",
    "fév": "Feb",
    "févr": "Feb",
    "feb": "Feb",
    "fevereiro": "Feb",
    "febrero": "Feb",
    "mar": "Mar",
    "mär": "Mar",
    "mrz": "Mar",
    "mars": "Mar",
    "março": "Mar",
    "marzo": "Mar",
    "abr": "Apr",
    "avr": "Apr",
    "apr": "Apr",
    "abril": "Apr",
    "mai": "May",
    "may": "May",
    "mag": "May",
    "maio": "May",
    "mayo": "May",
    "jun": "Jun",
    "juin": "Jun",
    "giu": "Jun",
    "junho": "Jun",
    "junio": "Jun",
    "jul": "Jul",
    "juil": "Jul",
    "lug": "Jul",
    "julho": "Jul",
    "julio": "Jul",
    "ago": "Aug",
    "aug": "Aug",
    "août": "Aug",
    "agosto": "Aug",
    "set": "Sep",
    "sep": "Sep",
    "sept": "Sep",
    "setembro": "Sep",
    "septiembre": "Sep",
    "out": "Oct",
    "oct": "Oct",
    "okt": "Oct",
    "ott": "Oct",
    "outubro": "Oct",
    "octubre": "Oct",
    "nov": "Nov",
    "novembro": "Nov",
    "noviembre": "Nov",
    "dez": "Dec",
    "dec": "Dec",
    "déc": "Dec",
    "dic": "Dec",
    "dezembro": "Dec",
    "diciembre": "Dec",
}
_LOCAL_822 = re.compile(
    r"^\s*(?:[^\W\d]+\.?,?\s+)?(\d{1,2})\.?\s+([^\W\d]+)\.?\s+(\d{2,4})\s+"
    r"(\d{1,2}:\d{2}(?::\d{2})?)\s*(.*)$"
)


def parse_feed_date(value: str) -> datetime:
    """Parse a feed date (RFC 822, ISO 8601, or RFC 822 with localised names) into UTC."""
    try:
        parsed = parse_time(value)
    except MappingError:
        parsed = None
    if parsed is not None:
        return parsed
    match = _LOCAL_822.match(value)
    month = _MONTHS.get(match.group(2).lower()) if match else None
    if match is None or month is None:
        raise MappingError(f"unreadable date/time {value[:40]!r}")
    day, _, year, clock, zone = match.groups()
    if len(year) == 2:
        year = "20" + year
    english = f"{int(day):02d} {month} {year} {clock} {zone.strip() or '+0000'}"
    result = parse_time(english)
    if result is None:
        raise MappingError(f"unreadable date/time {value[:40]!r}")
    return result


# ---------------------------------------------------------------------------- entries

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_LANG = re.compile(r"^[A-Za-z]{2,3}$")


def norm_lang(value: Any) -> str | None:
    """Reduce a language tag to its primary subtag: 'en-gb' -> 'en', 'pt_BR' -> 'pt'."""
    if not isinstance(value, str):
        return None
    primary = re.split(r"[-_\s]", value.strip(), maxsplit=1)[0]
    return primary.lower() if _LANG.match(primary) else None


def _text(detail: Any, fallback: Any = "") -> str:
    """Return plain text for a feedparser text construct (dict with type/value) or a string."""
    if isinstance(detail, Mapping):
        value = str(detail.get("value") or "")
        kind = str(detail.get("type") or "text/html")
    else:
        value, kind = str(fallback or ""), "text/html"
    if "html" in kind:
        return html_to_text(value)
    return _tidy(value)


def _utc_iso(parsed: Any) -> str | None:
    if not parsed:
        return None
    try:
        year, month, day, hour, minute, second = parsed[:6]
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC).isoformat()
    except (TypeError, ValueError):
        return None


def _detail(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        return None
    return {key: value.get(key) for key in ("type", "value", "language")}


def entry_payload(entry: Mapping[str, Any], feed: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Keep the fields of a parsed entry that mapping uses, as a JSON-able dict."""
    author = entry.get("author_detail") or {}
    feed_author = feed.get("author_detail") or {}
    summary = _detail(entry.get("summary_detail")) or (
        {"type": "text/html", "value": entry.get("summary"), "language": None}
        if entry.get("summary")
        else None
    )
    return {
        "feed": {
            "title": feed.get("title"),
            "link": feed.get("link"),
            "language": feed.get("language"),
            "author": feed_author.get("name") or feed.get("author"),
            "source": source,
        },
        "entry": {
            "id": entry.get("id"),
            "title": _detail(entry.get("title_detail"))
            or (
                {"type": "text/plain", "value": entry.get("title"), "language": None}
                if entry.get("title")
                else None
            ),
            "link": entry.get("link"),
            "origlink": entry.get("feedburner_origlink"),
            "author": author.get("name") or entry.get("author"),
            "author_email": author.get("email"),
            "published": entry.get("published"),
            "published_utc": _utc_iso(entry.get("published_parsed")),
            "updated": entry.get("updated"),
            "updated_utc": _utc_iso(entry.get("updated_parsed")),
            "summary": summary,
            "content": [_detail(c) for c in entry.get("content") or [] if isinstance(c, Mapping)],
            "tags": [t.get("term") for t in entry.get("tags") or [] if t.get("term")],
        },
    }


def _short(value: str) -> str:
    if len(value) <= MAX_ID_CHARS:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def entry_id(payload: Mapping[str, Any]) -> str | None:
    """Return an entry's external id: its id/guid, else its link, else a hash of title and date."""
    entry, feed = payload["entry"], payload.get("feed") or {}
    guid = (entry.get("id") or "").strip()
    if guid:
        # A bare guid ("1234") is only unique within its feed, so scope it by the feed's address.
        if not _SCHEME.match(guid):
            scope = feed.get("link") or feed.get("source")
            guid = f"{scope}#{guid}" if scope else guid
        return _short(guid)
    link = _link(payload)
    if link:
        return _short(link)
    title = ((entry.get("title") or {}).get("value") or "").strip()
    if not title:
        return None
    when = entry.get("published") or entry.get("updated") or ""
    digest = hashlib.sha256(f"{title}\n{when}".encode()).hexdigest()
    return f"sha256:{digest}"


def _link(payload: Mapping[str, Any]) -> str | None:
    entry, feed = payload["entry"], payload.get("feed") or {}
    link = (entry.get("origlink") or entry.get("link") or "").strip()
    if not link:
        return None
    base = feed.get("link") or ""
    if not _SCHEME.match(link) and _SCHEME.match(base):
        link = urljoin(base, link)
    return link


def _published(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("published", "updated"):
        raw = entry.get(key)
        if not raw:
            continue
        iso = entry.get(f"{key}_utc")
        if iso:
            return datetime.fromisoformat(iso).astimezone(UTC)
        return parse_feed_date(str(raw))
    return None


def map_entry(payload: Mapping[str, Any]) -> PostIn:
    """Map a kept entry payload to a post; raise MappingError when it cannot be one."""
    entry, feed = payload["entry"], payload.get("feed") or {}
    ext = entry_id(payload)
    if ext is None:
        raise MappingError("entry has no id, no link and no title")
    title = _text(entry.get("title")) or None
    contents = [c for c in entry.get("content") or [] if c and c.get("value")]
    body = max(contents, key=lambda c: len(c["value"])) if contents else entry.get("summary")
    text = _text(body)
    published = _published(entry)
    details = (*contents, entry.get("summary"), entry.get("title"))
    langs = [(c or {}).get("language") for c in details]
    lang = next((x for x in map(norm_lang, langs) if x), None) or norm_lang(feed.get("language"))
    author = (entry.get("author") or feed.get("author") or "").strip() or None
    handle = author or (entry.get("author_email") or "").strip() or None
    extra: dict[str, Any] = {"feed_title": feed.get("title"), "feed_link": feed.get("link")}
    if entry.get("tags"):
        extra["tags"] = list(entry["tags"])
    return PostIn(
        platform="rss",
        external_id=ext,
        text=text,
        url=_link(payload),
        author_handle=handle,
        author_name=author,
        title=title,
        lang=lang,
        published_at=published,
        extra=extra,
    )


# ---------------------------------------------------------------------------- connector


def _seen_key(payload: Mapping[str, Any]) -> str:
    ext = entry_id(payload)
    if ext is not None:
        return ext
    blob = json.dumps(payload["entry"], sort_keys=True, ensure_ascii=False, default=str)
    return "raw:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    found = re.search(r"charset\s*=\s*[\"']?([^\s;\"']+)", content_type, re.I)
    return found.group(1) if found else None


class RssConnector(Connector):
    """Read RSS and Atom feeds; poll with conditional GET and skip entries already seen."""

    slug = "rss"
    title = "RSS / Atom feed"
    platform = "rss"
    Config = RssConfig

    @classmethod
    def input_path(cls, config: dict[str, Any]) -> Path | None:
        """Return the feed file a saved feed is read from (None for an http(s) feed)."""
        url = config.get("url")
        if not isinstance(url, str) or not url.strip():
            return None
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            return None
        return Path(parts.path if scheme == "file" else url.strip()).expanduser()

    def fetch(self, config: Any, cursor: dict[str, Any], ctx: FetchContext) -> Records:
        """Fetch the feed (unless unchanged), then yield the entries not seen recently."""
        url: str = config.url
        if urlsplit(url).scheme.lower() in ("http", "https"):
            got = self._download(url, config.max_bytes, cursor, ctx)
            if got is None:
                return
            data, headers, final_url = got
        else:
            data = self._read_file(url, config.max_bytes, ctx)
            headers, final_url = {}, ""
        parsed = parse_feed(
            data,
            http_charset=_charset(headers.get("content-type")),
            base_url=final_url,
            language=headers.get("content-language"),
        )
        self._check_feed(parsed, url, headers.get("content-type"), data)
        seen = list(cursor.get("seen") or [])
        known = set(seen)
        current: list[str] = []
        for n, entry in enumerate(parsed.entries, start=1):
            try:
                payload = entry_payload(entry, parsed.feed, url)
            except (TypeError, ValueError, AttributeError) as exc:
                yield BadRecord(f"entry {n}", f"unreadable entry: {exc}", origin=url)
                continue
            key = _seen_key(payload)
            if key not in current:
                current.append(key)
            if key in known:
                continue
            yield RawRecord(payload=payload, location=f"entry {n}", origin=url, kind=KIND)
        keep = max(config.seen_limit, len(current))
        cursor["seen"] = (current + [k for k in seen if k not in set(current)])[:keep]
        if final_url:
            cursor["url"] = url
            for name, key in (("etag", "etag"), ("last-modified", "last_modified")):
                if headers.get(name):
                    cursor[key] = headers[name]
                else:
                    cursor.pop(key, None)

    def _download(
        self, url: str, max_bytes: int, cursor: dict[str, Any], ctx: FetchContext
    ) -> tuple[bytes, dict[str, str], str] | None:
        request_headers = {"Accept": ACCEPT}
        if cursor.get("url") == url:
            if cursor.get("etag"):
                request_headers["If-None-Match"] = cursor["etag"]
            if cursor.get("last_modified"):
                request_headers["If-Modified-Since"] = cursor["last_modified"]
        started = time.monotonic()
        try:
            with ctx.client().stream("GET", url, headers=request_headers) as response:
                if response.status_code == 304:
                    return None
                if response.status_code >= 400:
                    status = f"{response.status_code} {response.reason_phrase}".strip()
                    raise FeedError(f"HTTP {status} from {url}")
                if response.status_code != 200:
                    raise FeedError(f"unexpected HTTP {response.status_code} from {url}")
                length = response.headers.get("content-length")
                ctx.on_total(int(length) if length and length.isdigit() else None)
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise FeedError(f"feed at {url} is larger than {max_bytes:,} bytes")
                    ctx.on_bytes(len(chunk))
                    chunks.append(chunk)
                data = b"".join(chunks)
                headers = {k.lower(): v for k, v in response.headers.items()}
                return data, headers, str(response.url)
        except httpx.TimeoutException as exc:
            waited = time.monotonic() - started
            raise FeedError(
                f"timed out after {waited:.1f}s fetching {url} ({exc.__class__.__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise FeedError(f"cannot fetch {url}: {exc or exc.__class__.__name__}") from exc

    def _read_file(self, target: str, max_bytes: int, ctx: FetchContext) -> bytes:
        parts = urlsplit(target)
        path = Path(parts.path if parts.scheme.lower() == "file" else target).expanduser()
        if not path.is_file():
            raise FeedError(f"no such feed file: {path}")
        size = path.stat().st_size
        if size > max_bytes:
            raise FeedError(f"feed file {path} is larger than {max_bytes:,} bytes")
        ctx.on_total(size)
        data = path.read_bytes()
        ctx.on_bytes(len(data))
        return data

    @staticmethod
    def _check_feed(parsed: Any, url: str, content_type: str | None, data: bytes) -> None:
        if parsed.entries:
            return
        head = data[:512].lstrip().lower()
        if "html" in (content_type or "") or head.startswith((b"<!doctype html", b"<html")):
            raise FeedError(f"not an RSS or Atom feed: {url} is an HTML page")
        if parsed.bozo:
            problem = parsed.get("bozo_exception") or "unknown error"
            raise FeedError(f"unreadable feed {url}: {problem}")
        if not parsed.version:
            raise FeedError(f"not an RSS or Atom feed: {url}")

    def to_post(self, raw: RawRecord) -> PostIn:
        """Map one kept feed entry."""
        return map_entry(raw.payload)


@hookimpl
def elshi_connectors() -> list[type[Connector]]:
    """Register the RSS/Atom connector."""
    return [RssConnector]
