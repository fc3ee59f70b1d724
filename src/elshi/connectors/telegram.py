"""Telegram connectors: public web preview pages, Desktop exports, Telethon JSON dumps, live API.

Every connector here maps a message to platform "telegram" with the external id
"<channel>/<message id>". The channel part is the public username in lower case (Telegram
usernames are case-insensitive) or "c/<numeric channel id>" when no username is known (the
same form as Telegram's own t.me/c/ links), so a message read by any of these connectors is
stored once. Files that carry no username (exports, dumps) take it as the `channel` option.

Messages with no text (a photo, sticker or video without a caption) and service messages
("Channel created", pins) are skipped, not quarantined: they are not broken, and they carry
nothing to read.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, ClassVar
from urllib.parse import urljoin, urlsplit

import httpx
import ijson
import lxml.html
from lxml import etree
from pydantic import BaseModel, Field, field_validator

from elshi.connectors.base import (
    HTTP_ADDRESS,
    SECRET,
    BadRecord,
    Connector,
    FetchContext,
    MappingError,
    PostIn,
    RawRecord,
    input_file,
    parse_time,
)
from elshi.plugins import hookimpl

log = logging.getLogger(__name__)

PLATFORM = "telegram"
PUBLIC_BASE = "https://t.me"
#: Telethon marks a channel's peer id as -(10**12 + channel id).
_CHANNEL_MARK = 10**12
_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
_POST_PATH = re.compile(r"^/(?:s/)?(?P<channel>c/\d+|[A-Za-z][A-Za-z0-9_]{3,31})/(?P<id>\d+)/?$")
_BLOCK_TAGS = frozenset(
    {
        "div",
        "p",
        "blockquote",
        "pre",
        "ul",
        "ol",
        "li",
        "table",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
    }
)
# Presence of these class fragments marks a kind of media in a web preview message.
_WEB_MEDIA = (
    ("photo", "tgme_widget_message_photo"),
    ("video", "tgme_widget_message_video"),
    ("round_video", "tgme_widget_message_roundvideo"),
    ("voice", "tgme_widget_message_voice"),
    ("document", "tgme_widget_message_document"),
    ("sticker", "tgme_widget_message_sticker"),
    ("poll", "tgme_widget_message_poll"),
    ("location", "tgme_widget_message_location"),
    ("unsupported", "message_media_not_supported"),
)
_CHAT_TYPES_WITH_LINKS = frozenset(
    {"public_channel", "private_channel", "public_supergroup", "private_supergroup"}
)


class TelegramWebError(RuntimeError):
    """The web preview could not be read: no such channel, no public preview, server error."""


class TelegramApiError(RuntimeError):
    """The live API connector cannot run: Telethon missing or the session not signed in."""


class TelethonMissing(TelegramApiError):
    """The live API connector needs the optional Telethon package."""


# ---------------------------------------------------------------------------- shared helpers


def normalize_channel(value: str) -> str:
    """Return the bare username from 'name', '@name', 't.me/name' or 'https://t.me/s/name'."""
    text = value.strip()
    if "://" not in text and text.lower().startswith(("t.me/", "telegram.me/")):
        text = "https://" + text
    if "://" in text:
        parts = [p for p in urlsplit(text).path.split("/") if p]
        if parts and parts[0] == "s":
            parts = parts[1:]
        text = parts[0] if parts else ""
    text = text.lstrip("@")
    if not _USERNAME.match(text):
        raise ValueError(f"not a public channel username: {value!r}")
    return text


def channel_key(username: str | None, channel_id: int | None) -> str:
    """Return the channel part of an external id: the username in lower case, else c/<id>."""
    if username:
        return username.lower()
    if channel_id is not None:
        return f"c/{channel_id}"
    raise MappingError(
        "cannot tell which channel the message belongs to: "
        "give its public username with -o channel=NAME"
    )


def channel_id_from_peer(value: Any) -> int | None:
    """Return the channel id in a marked peer id (-100<id>), or None for users and groups."""
    if isinstance(value, bool):
        return None
    try:
        num = int(value)
    except (TypeError, ValueError):
        return None
    return -num - _CHANNEL_MARK if num < -_CHANNEL_MARK else None


def post_ref(href: str | None) -> str | None:
    """Return the external id a t.me post link points at, or None if it is not a post link."""
    if not href:
        return None
    parts = urlsplit(urljoin(PUBLIC_BASE + "/", href))
    if parts.netloc and parts.netloc.lower() not in ("t.me", "telegram.me", "www.t.me"):
        return None
    match = _POST_PATH.match(parts.path)
    return f"{match['channel'].lower()}/{match['id']}" if match else None


def parse_count(text: str | None) -> int | None:
    """Parse a shortened count such as '892', '4.85K' or '1.2M'; None when unreadable."""
    if not text:
        return None
    value = re.sub(r"[\s,]", "", text)
    scale = {"K": 1_000, "M": 1_000_000, "B": 1_000_000_000}.get(value[-1:].upper(), 1)
    if scale != 1:
        value = value[:-1]
    try:
        return round(float(value) * scale)
    except ValueError:
        return None


def _message_id(value: Any, name: str) -> int:
    if isinstance(value, bool) or value is None or value == "":
        raise MappingError(f"missing required field: {name}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise MappingError(f"{name} is not a whole number: {str(value)[:40]!r}")


def _required_time(value: Any, name: str) -> datetime:
    published = parse_time(value)
    if published is None:
        raise MappingError(f"missing required field: {name}")
    return published


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def jsonable(value: Any) -> Any:
    """Return `value` with datetimes as ISO strings and bytes as base64, safe for JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


# ---------------------------------------------------------------------------- web preview


def _has_class(name: str) -> str:
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


_MESSAGE_XPATH = f"//div[{_has_class('tgme_widget_message')}]"
_OUTSIDE_QUOTES = (
    f"not(ancestor::*[{_has_class('tgme_widget_message_reply')} "
    f"or {_has_class('tgme_widget_message_link_preview')}])"
)


def html_text(element: Any) -> tuple[str, list[str]]:
    """Return an element's text with line breaks kept, and the links it contains."""
    parts: list[str] = []
    links: list[str] = []

    def newline() -> None:
        if parts and not parts[-1].endswith("\n"):
            parts.append("\n")

    def walk(node: Any, top: bool) -> None:
        if not isinstance(node.tag, str):
            return  # a comment; its tail is added by the parent
        tag = node.tag.lower()
        if tag in ("script", "style"):
            return
        if tag == "br":
            parts.append("\n")
            return
        block = tag in _BLOCK_TAGS and not top
        if block:
            newline()
        href = node.get("href") if tag == "a" else None
        if href and not href.startswith(("?", "#", "javascript:")):
            links.append(urljoin(PUBLIC_BASE + "/", href))
        if node.text:
            parts.append(node.text)
        for child in node:
            walk(child, False)
            if child.tail:
                parts.append(child.tail)
        if block:
            newline()

    walk(element, True)
    return "".join(parts).strip(), _unique(links)


@dataclass
class PreviewPage:
    """One t.me/s/<channel> page split into message fragments (oldest first, as served)."""

    title: str | None
    has_history: bool
    messages: list[tuple[int | None, str]] = field(default_factory=list)


def _post_number(data_post: str | None) -> int | None:
    _, _, num = (data_post or "").rpartition("/")
    return int(num) if num.isdigit() else None


def parse_preview_page(html: str) -> PreviewPage:
    """Split a web preview page into (message id or None, message markup) pairs."""
    if not html.strip():
        return PreviewPage(title=None, has_history=False)
    doc = lxml.html.document_fromstring(html)
    titles = doc.xpath(f"//div[{_has_class('tgme_channel_info_header_title')}]")
    title = titles[0].text_content().strip() or None if titles else None
    history = bool(doc.xpath(f"//section[{_has_class('tgme_channel_history')}]"))
    page = PreviewPage(title=title, has_history=history)
    for el in doc.xpath(_MESSAGE_XPATH):
        page.messages.append(
            (
                _post_number(el.get("data-post")),
                lxml.html.tostring(el, encoding="unicode", with_tail=False),
            )
        )
    page.has_history = page.has_history or bool(page.messages)
    return page


def _first(element: Any, xpath: str) -> Any | None:
    found = element.xpath(xpath)
    return found[0] if found else None


def map_web_message(payload: dict[str, Any]) -> PostIn | None:
    """Map one message of a web preview page (its markup and the page's channel) to a post."""
    markup = payload.get("html")
    if not isinstance(markup, str) or not markup.strip():
        raise MappingError("missing required field: html")
    try:
        el = lxml.html.fragment_fromstring(markup)
    except (etree.ParserError, ValueError) as exc:
        raise MappingError(f"unreadable message markup: {exc}") from exc
    data_post = el.get("data-post")
    channel, _, num = (data_post or "").rpartition("/")
    if not channel or not num.isdigit():
        raise MappingError(
            f"message has no id (data-post={data_post!r})"
            if data_post
            else "message has no id (no data-post attribute)"
        )
    if "service_message" in (el.get("class") or "").split():
        return None
    mid = int(num)
    stamp = _first(el, f".//a[{_has_class('tgme_widget_message_date')}]//time[@datetime]")
    if stamp is None:
        raise MappingError("missing required field: date (no <time datetime> in the date link)")
    published = _required_time(stamp.get("datetime"), "date")

    bodies = el.xpath(f".//div[{_has_class('js-message_text')}][{_OUTSIDE_QUOTES}]")
    text, links = html_text(bodies[0]) if bodies else ("", [])
    if not text:
        return None
    media = [
        kind
        for kind, cls in _WEB_MEDIA
        if el.xpath(f".//*[contains(@class, '{cls}')][{_OUTSIDE_QUOTES}]")
    ]

    extra: dict[str, Any] = {"channel": channel, "message_id": mid}
    metrics: dict[str, Any] = {}
    views = _first(el, f".//span[{_has_class('tgme_widget_message_views')}]")
    if views is not None and (count := parse_count(views.text_content())) is not None:
        metrics["views"] = count
    reactions: dict[str, int] = {}
    for span in el.xpath(f".//span[{_has_class('tgme_reaction')}]"):
        emoji = "".join(span.xpath(".//b/text()")).strip() or "other"
        count = parse_count(span.text_content().replace(emoji, ""))
        if count is not None:
            reactions[emoji] = reactions.get(emoji, 0) + count
    if reactions:
        extra["reactions"] = reactions
        metrics["reactions"] = sum(reactions.values())
    owner = _first(el, f".//a[{_has_class('tgme_widget_message_owner_name')}]")
    signature = _first(el, f".//*[{_has_class('tgme_widget_message_from_author')}]")
    if signature is not None and signature.text_content().strip():
        extra["signature"] = signature.text_content().strip()
    repost_of = None
    fwd = _first(el, f".//*[{_has_class('tgme_widget_message_forwarded_from_name')}]")
    if fwd is not None:
        extra["forwarded_from"] = {"name": fwd.text_content().strip(), "url": fwd.get("href")}
        repost_of = post_ref(fwd.get("href"))
    reply = _first(el, f".//a[{_has_class('tgme_widget_message_reply')}]")
    meta = _first(el, f".//span[{_has_class('tgme_widget_message_meta')}]")
    if meta is not None and "edited" in meta.text_content():
        extra["edited"] = True
    if media:
        extra["media"] = media
    if links:
        extra["links"] = links
    author_name = owner.text_content().strip() if owner is not None else None
    return PostIn(
        platform=PLATFORM,
        external_id=f"{channel.lower()}/{mid}",
        text=text,
        url=f"{PUBLIC_BASE}/{channel}/{mid}",
        author_handle=channel.lower(),
        author_name=author_name or payload.get("channel_title") or channel,
        published_at=published,
        metrics=metrics,
        reply_to=post_ref(reply.get("href")) if reply is not None else None,
        repost_of=repost_of,
        extra=extra,
    )


class TelegramWebConfig(BaseModel):
    """A public channel read through its web preview pages."""

    channel: str = Field(description="Public channel: username, @username or a t.me link.")
    base_url: str = Field(
        default=PUBLIC_BASE,
        description="Where the web preview is served; change only for a mirror or a test server.",
        json_schema_extra=HTTP_ADDRESS,
    )
    max_pages: int = Field(
        default=5,
        ge=1,
        le=200,
        description="Most preview pages (about 20 messages each) read per poll; the first poll "
        "reads this much history.",
    )
    delay_seconds: float = Field(
        default=1.0, ge=0, le=60, description="Pause between two page requests, to stay polite."
    )

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        return normalize_channel(value)


def _is_new(ids: list[int | None], index: int, last: int) -> bool:
    mid = ids[index]
    if mid is not None:
        return mid > last
    if not last:
        return True
    # A message without an id sits between its neighbours; if the next id is at most one
    # past the cursor, this one was already read on an earlier poll.
    later = next((i for i in ids[index + 1 :] if i is not None), None)
    return later is None or later > last + 1


class TelegramWebConnector(Connector):
    """Read a public Telegram channel through its web preview (t.me/s/<channel>), no account.

    Pages are read newest first and paginated with ?before=<id>; the cursor is the newest
    message id seen, so a poll reads back only to it (at most `max_pages` pages). When more
    than `max_pages` pages of messages arrived since the last poll, the oldest of them are
    not read (a warning is logged). A message with no id or an unreadable date is
    quarantined with the location "page N message M" (page 1 is the newest).
    """

    slug: ClassVar[str] = "telegram-web"
    title: ClassVar[str] = "Telegram public channel (web preview)"
    platform: ClassVar[str] = PLATFORM
    Config: ClassVar[type[BaseModel]] = TelegramWebConfig
    target_field: ClassVar[str] = "channel"
    pollable: ClassVar[bool] = True

    def _get(self, client: httpx.Client, url: str, channel: str, ctx: FetchContext) -> str:
        resp = client.get(url)
        ctx.on_bytes(len(resp.content))
        if resp.status_code != 200:
            hint = {404: " (no such public channel?)", 429: " (rate limited; try again later)"}
            extra = hint.get(resp.status_code) or (
                " (server error; try again later)" if resp.status_code >= 500 else ""
            )
            raise TelegramWebError(f"{url} answered HTTP {resp.status_code}{extra}")
        if "/s/" not in resp.url.path:
            raise TelegramWebError(
                f"channel {channel!r} has no public web preview ({url} led to {resp.url})"
            )
        return resp.text

    def fetch(
        self, config: Any, cursor: dict[str, Any], ctx: FetchContext
    ) -> Iterator[RawRecord | BadRecord]:
        """Read preview pages from the newest back to the cursor; yield messages oldest first."""
        last = int(cursor.get("last_id") or 0)
        client = ctx.client()
        base = config.base_url.rstrip("/")
        pages: list[tuple[int, str, PreviewPage]] = []
        before: int | None = None
        reached = False
        for page_no in range(1, config.max_pages + 1):
            if page_no > 1 and config.delay_seconds:
                time.sleep(config.delay_seconds)
            url = f"{base}/s/{config.channel}" + (f"?before={before}" if before else "")
            page = parse_preview_page(self._get(client, url, config.channel, ctx))
            if not page.has_history:
                raise TelegramWebError(
                    f"{url} is not a channel preview page (no message history): "
                    f"is {config.channel!r} a public channel?"
                )
            pages.append((page_no, url, page))
            found = [i for i, _ in page.messages if i is not None]
            if not found or min(found) <= last + 1 or min(found) <= 1:
                reached = True
                break
            before = min(found)
        if not reached and last:
            log.warning(
                "telegram-web %s: more than %d pages of new messages since id %d; "
                "older ones are not read (raise max_pages or poll more often)",
                config.channel,
                config.max_pages,
                last,
            )
        newest = last
        for page_no, url, page in reversed(pages):
            ids: list[int | None] = [i for i, _ in page.messages]
            for index, (mid, markup) in enumerate(page.messages):
                if not _is_new(ids, index, last):
                    continue
                newest = max(newest, mid or 0)
                yield RawRecord(
                    payload={
                        "channel": config.channel,
                        "channel_title": page.title,
                        "page_url": url,
                        "html": markup,
                    },
                    location=f"page {page_no} message {index + 1}",
                    origin=config.channel,
                    kind=self.slug,
                )
        cursor["last_id"] = newest

    def to_post(self, raw: RawRecord) -> PostIn | None:
        """Map one message's markup."""
        return map_web_message(raw.payload)


# ---------------------------------------------------------------------------- files (streamed)


class _CountingReader:
    """A binary file whose reads are reported to the fetch context."""

    def __init__(self, fh: BinaryIO, on_bytes: Callable[[int], None]) -> None:
        self.fh = fh
        self.on_bytes = on_bytes

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.on_bytes(len(data))
        return data


def _json_error(exc: Exception) -> str:
    message = exc.args[0] if exc.args else exc
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return str(message).strip().splitlines()[0] if str(message).strip() else type(exc).__name__


def _stream(fh: Any, item_prefixes: frozenset[str]) -> Iterator[tuple[str, str, Any]]:
    """Yield ("item", prefix, value) per element of the arrays at `item_prefixes`, and
    ("event", prefix, (event, value)) for every other parser event; memory stays bounded."""
    builder: Any = None
    current = ""
    for prefix, event, value in ijson.parse(fh, use_float=True):
        if builder is not None:
            builder.event(event, value)
            if prefix == current and event in ("end_map", "end_array"):
                yield "item", current, builder.value
                builder = None
            continue
        if prefix in item_prefixes:
            if event in ("start_map", "start_array"):
                builder = ijson.ObjectBuilder()
                builder.event(event, value)
                current = prefix
            else:
                yield "item", prefix, value
            continue
        yield "event", prefix, (event, value)


def _open_checked(path: Path) -> BinaryIO:
    return input_file(path, "JSON file").open("rb")


def export_text(value: Any) -> tuple[str, list[str]]:
    """Join an export's text (a string, or strings and {type, text} entities); collect links."""
    if value is None:
        return "", []
    if isinstance(value, str):
        return value, []
    if not isinstance(value, list):
        raise MappingError(f"text is neither a string nor a list ({type(value).__name__})")
    parts: list[str] = []
    links: list[str] = []
    for n, part in enumerate(value, 1):
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
            if part.get("type") == "text_link" and part.get("href"):
                links.append(str(part["href"]))
            elif part.get("type") == "link":
                links.append(part["text"])
        else:
            raise MappingError(f"text part {n} is neither a string nor an entity with text")
    return "".join(parts), _unique(links)


def _reaction_counts(items: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("count"), int):
            key = str(item.get("emoji") or item.get("document_id") or item.get("type") or "other")
            counts[key] = counts.get(key, 0) + item["count"]
    return counts


def map_export_message(payload: dict[str, Any]) -> PostIn | None:
    """Map one message of a Telegram Desktop export (with its chat) to a post."""
    msg = payload.get("message")
    if not isinstance(msg, dict):
        raise MappingError("message is not a JSON object")
    if msg.get("type", "message") != "message":
        return None  # service messages ("pinned", "joined") and unsupported ones
    chat = payload.get("chat") or {}
    mid = _message_id(msg.get("id"), "id")
    # date_unixtime is UTC; "date" is the exporting computer's local time, so it is only a
    # fallback (older exports) and is then read as UTC.
    stamp = msg.get("date_unixtime")
    published = _required_time(stamp if stamp not in (None, "") else msg.get("date"), "date")
    text, links = export_text(msg.get("text"))
    text = text.strip()
    media = (
        msg.get("media_type")
        or ("photo" if msg.get("photo") else None)
        or ("file" if msg.get("file") else None)
    )
    if not text:
        return None
    chat_id = chat.get("id")
    if isinstance(chat_id, bool) or not isinstance(chat_id, int):
        raise MappingError("the chat has no numeric id")
    username = payload.get("channel")
    key = channel_key(username, chat_id)
    if username:
        url: str | None = f"{PUBLIC_BASE}/{username}/{mid}"
    elif chat.get("type") in _CHAT_TYPES_WITH_LINKS:
        url = f"{PUBLIC_BASE}/c/{chat_id}/{mid}"
    else:
        url = None
    from_id = msg.get("from_id")
    if from_id is None or str(from_id) == f"channel{chat_id}":
        handle, name = key, msg.get("from") or chat.get("name")
    else:
        handle, name = str(from_id), msg.get("from")
    extra: dict[str, Any] = {
        "message_id": mid,
        "chat": {k: chat.get(k) for k in ("name", "type", "id")},
    }
    reply_to = None
    if msg.get("reply_to_message_id") is not None:
        if msg.get("reply_to_peer_id") is None:
            reply_to = f"{key}/{_message_id(msg['reply_to_message_id'], 'reply_to_message_id')}"
        else:
            extra["reply_to"] = {"peer": msg["reply_to_peer_id"], "id": msg["reply_to_message_id"]}
    if msg.get("forwarded_from"):
        extra["forwarded_from"] = {"name": msg["forwarded_from"]}
    if msg.get("author"):
        extra["signature"] = msg["author"]
    if media:
        extra["media"] = [media]
    if links:
        extra["links"] = links
    if msg.get("edited"):
        extra["edited"] = msg.get("edited_unixtime") or msg["edited"]
    metrics: dict[str, Any] = {}
    reactions = _reaction_counts(msg.get("reactions"))
    if reactions:
        extra["reactions"] = reactions
        metrics["reactions"] = sum(reactions.values())
    return PostIn(
        platform=PLATFORM,
        external_id=f"{key}/{mid}",
        text=text,
        url=url,
        author_handle=handle,
        author_name=name,
        published_at=published,
        metrics=metrics,
        reply_to=reply_to,
        extra=extra,
    )


class TelegramExportConfig(BaseModel):
    """A result.json written by Telegram Desktop's export."""

    path: str = Field(
        description="result.json from Telegram Desktop (Export chat history, or Export "
        "Telegram data, in JSON)."
    )
    channel: str | None = Field(
        default=None,
        description="Public username of the exported channel (single-chat export), so its "
        "messages share ids with telegram-web.",
    )
    usernames: dict[str, str] = Field(
        default_factory=dict,
        description='Chat id to public username for a full export, e.g. {"1394050290": "mfa_kz"}.',
    )

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        return normalize_channel(value) if value else None

    @field_validator("usernames")
    @classmethod
    def _usernames(cls, value: dict[str, str]) -> dict[str, str]:
        return {str(k): normalize_channel(v) for k, v in value.items()}


_EXPORT_CHATS = ("chats.list.item", "left_chats.list.item")
_EXPORT_ITEMS = frozenset({"messages.item", *(f"{c}.messages.item" for c in _EXPORT_CHATS)})
_EXPORT_ARRAYS = frozenset(p.rpartition(".")[0] for p in _EXPORT_ITEMS)


class TelegramExportConnector(Connector):
    """Import a Telegram Desktop export (result.json): one chat, or a full account export.

    The file is streamed, so a large export is never loaded whole. Text may be a string or a
    list of strings and entities; links are kept as their text. The time is date_unixtime
    (UTC), else "date". Service messages are skipped. Locations are "message N" (the N-th
    entry of the chat's messages), or "chat K message N" in a full export.
    """

    slug: ClassVar[str] = "telegram-export"
    title: ClassVar[str] = "Telegram Desktop export (result.json)"
    platform: ClassVar[str] = PLATFORM
    Config: ClassVar[type[BaseModel]] = TelegramExportConfig
    target_field: ClassVar[str] = "path"
    pollable: ClassVar[bool] = False

    def fetch(
        self, config: Any, cursor: dict[str, Any], ctx: FetchContext
    ) -> Iterator[RawRecord | BadRecord]:
        """Stream the export's messages with their chat's name, type and id."""
        path = Path(config.path).expanduser()
        chat: dict[str, Any] = {}
        chats = count = 0
        full = found = False
        with _open_checked(path) as fh:
            try:
                reader = _CountingReader(fh, ctx.on_bytes)
                for what, prefix, value in _stream(reader, _EXPORT_ITEMS):
                    if what == "item":
                        count += 1
                        username = config.usernames.get(str(chat.get("id"))) or (
                            None if full else config.channel
                        )
                        yield RawRecord(
                            payload={"chat": dict(chat), "channel": username, "message": value},
                            location=(
                                f"chat {chats} message {count}" if full else f"message {count}"
                            ),
                            origin=str(path),
                            kind=self.slug,
                        )
                        continue
                    event, val = value
                    if prefix in _EXPORT_ARRAYS and event == "start_array":
                        found = True
                    elif prefix in _EXPORT_CHATS and event == "start_map":
                        full, chat, count = True, {}, 0
                        chats += 1
                    else:
                        base, _, key = prefix.rpartition(".")
                        if (
                            key in ("name", "type", "id")
                            and event in ("string", "number")
                            and (base in _EXPORT_CHATS or (not base and not full))
                        ):
                            chat[key] = val
            except (ijson.JSONError, UnicodeDecodeError) as exc:
                where = f"chat {chats} message {count + 1}" if full else f"message {count + 1}"
                yield BadRecord(
                    location=where,
                    reason=f"bad JSON, the rest of the file is unreadable: {_json_error(exc)}",
                    origin=str(path),
                )
                return
        if not found:
            raise ValueError(
                "not a Telegram Desktop export: no messages list "
                "(expected {name, type, id, messages} or {chats: {list: [...]}})"
            )

    def to_post(self, raw: RawRecord) -> PostIn | None:
        """Map one exported message."""
        return map_export_message(raw.payload)


# ---------------------------------------------------------------------------- Telethon JSON dump


def map_dump_message(payload: dict[str, Any]) -> PostIn | None:
    """Map one {message_id, sender_id, text, date, channel, category} record to a post."""
    msg = payload.get("message")
    if not isinstance(msg, dict):
        raise MappingError("message is not a JSON object")
    mid = _message_id(msg.get("message_id"), "message_id")
    text = msg.get("text")
    if text is not None and not isinstance(text, str):
        raise MappingError(f"text is not a string ({type(text).__name__})")
    published = _required_time(msg.get("date"), "date")
    text = (text or "").strip()
    if not text:
        return None
    channel_id = channel_id_from_peer(msg.get("sender_id"))
    if channel_id is None:
        channel_id = channel_id_from_peer(payload.get("peer_id"))
    username = payload.get("channel")
    key = channel_key(username, channel_id)
    extra: dict[str, Any] = {"message_id": mid}
    for name in ("category", "sender_id"):
        if msg.get(name) is not None:
            extra[name] = msg[name]
    return PostIn(
        platform=PLATFORM,
        external_id=f"{key}/{mid}",
        text=text,
        url=f"{PUBLIC_BASE}/{username}/{mid}" if username else f"{PUBLIC_BASE}/{key}/{mid}",
        author_handle=key,
        author_name=msg.get("channel") or None,
        published_at=published,
        extra=extra,
    )


class TelegramJsonConfig(BaseModel):
    """A JSON dump of channel messages as written by a Telethon script."""

    path: str = Field(
        description="A JSON file, or a folder of *.json files, each an array of "
        "{message_id, sender_id, text, date, channel, category}."
    )
    channel: str | None = Field(
        default=None,
        description="Public username of the channel, so its messages share ids with "
        "telegram-web; without it the numeric channel id is used.",
    )

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        return normalize_channel(value) if value else None


_DUMP_FILE = re.compile(r"^(?P<peer>-?\d+)_messages\.json$")


class TelegramJsonConnector(Connector):
    """Import Telethon-style JSON dumps: arrays of {message_id, sender_id, text, date, channel}.

    Files are streamed. The channel comes from the `channel` option (a public username) or
    else from the marked sender_id (-100<channel id>) or a "<peer id>_messages.json" file
    name. Messages with empty text are skipped (counted as skipped, not quarantined): they
    are media without a caption, not broken records. A record without a message_id or with
    an unreadable date is quarantined at "message N" (or "<file> message N" for a folder).
    """

    slug: ClassVar[str] = "telegram-json"
    title: ClassVar[str] = "Telegram JSON dump (Telethon)"
    platform: ClassVar[str] = PLATFORM
    Config: ClassVar[type[BaseModel]] = TelegramJsonConfig
    target_field: ClassVar[str] = "path"
    pollable: ClassVar[bool] = False

    def fetch(
        self, config: Any, cursor: dict[str, Any], ctx: FetchContext
    ) -> Iterator[RawRecord | BadRecord]:
        """Stream each file's array of messages."""
        path = Path(config.path).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.glob("*.json") if p.is_file())
            if not files:
                raise FileNotFoundError(f"no *.json files in {path}")
        else:
            files = [path]
        for file in files:
            prefix = f"{file.name} " if path.is_dir() else ""
            yield from self._file(file, config, ctx, prefix=prefix)

    def _file(
        self, file: Path, config: Any, ctx: FetchContext, prefix: str
    ) -> Iterator[RawRecord | BadRecord]:
        match = _DUMP_FILE.match(file.name)
        peer = -int(match["peer"].lstrip("-")) if match else None
        count = 0
        started = False
        with _open_checked(file) as fh:
            try:
                reader = _CountingReader(fh, ctx.on_bytes)
                for what, where, value in _stream(reader, frozenset({"item"})):
                    if what == "event":
                        if not started and not (where == "" and value[0] == "start_array"):
                            raise ValueError(f"{file} is not a JSON array of messages")
                        started = True
                        continue
                    count += 1
                    yield RawRecord(
                        payload={"channel": config.channel, "peer_id": peer, "message": value},
                        location=f"{prefix}message {count}",
                        origin=str(file),
                        kind=self.slug,
                    )
            except (ijson.JSONError, UnicodeDecodeError) as exc:
                yield BadRecord(
                    location=f"{prefix}message {count + 1}",
                    reason=f"bad JSON, the rest of the file is unreadable: {_json_error(exc)}",
                    origin=str(file),
                )

    def to_post(self, raw: RawRecord) -> PostIn | None:
        """Map one dumped message."""
        return map_dump_message(raw.payload)


# ---------------------------------------------------------------------------- live API (Telethon)


def _type_name(obj: Any, prefix: str) -> str | None:
    name = obj.get("_") if isinstance(obj, dict) else None
    if not isinstance(name, str):
        return None
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name.removeprefix(prefix)).lower() or None


def map_api_message(payload: dict[str, Any]) -> PostIn | None:
    """Map a Telethon Message.to_dict() (made JSON-safe) with its channel to a post."""
    msg = payload.get("message")
    if not isinstance(msg, dict):
        raise MappingError("message is not a JSON object")
    if msg.get("_") not in (None, "Message"):
        return None  # MessageService, MessageEmpty
    mid = _message_id(msg.get("id"), "id")
    published = _required_time(msg.get("date"), "date")
    text = msg.get("message")
    if text is not None and not isinstance(text, str):
        raise MappingError(f"message text is not a string ({type(text).__name__})")
    text = (text or "").strip()
    if not text:
        return None
    peer: dict[str, Any] = msg["peer_id"] if isinstance(msg.get("peer_id"), dict) else {}
    channel_id = payload.get("channel_id") or peer.get("channel_id")
    username = payload.get("channel")
    key = channel_key(username, channel_id)
    extra: dict[str, Any] = {"message_id": mid}
    metrics: dict[str, Any] = {}
    for name in ("views", "forwards"):
        if isinstance(msg.get(name), int):
            metrics[name] = msg[name]
    replies = msg.get("replies")
    if isinstance(replies, dict) and isinstance(replies.get("replies"), int):
        metrics["replies"] = replies["replies"]
    summary = msg.get("reactions")
    results = summary.get("results") if isinstance(summary, dict) else None
    reactions: dict[str, int] = {}
    for item in results if isinstance(results, list) else []:
        reaction = item.get("reaction") or {}
        label = str(reaction.get("emoticon") or reaction.get("document_id") or "other")
        reactions[label] = reactions.get(label, 0) + int(item.get("count") or 0)
    if reactions:
        extra["reactions"] = reactions
        metrics["reactions"] = sum(reactions.values())
    reply_to = None
    header = msg.get("reply_to")
    if isinstance(header, dict) and header.get("reply_to_msg_id") is not None:
        if header.get("reply_to_peer_id") is None:
            reply_to = f"{key}/{_message_id(header['reply_to_msg_id'], 'reply_to_msg_id')}"
        else:
            extra["reply_to"] = {
                "peer": header["reply_to_peer_id"],
                "id": header["reply_to_msg_id"],
            }
    repost_of = None
    fwd = msg.get("fwd_from")
    if isinstance(fwd, dict):
        source: dict[str, Any] = fwd["from_id"] if isinstance(fwd.get("from_id"), dict) else {}
        extra["forwarded_from"] = {
            "name": fwd.get("from_name") or fwd.get("post_author"),
            "channel_id": source.get("channel_id"),
            "user_id": source.get("user_id"),
        }
        if source.get("channel_id") and fwd.get("channel_post"):
            repost_of = f"c/{source['channel_id']}/{fwd['channel_post']}"
    media = _type_name(msg.get("media"), "MessageMedia")
    if media:
        extra["media"] = [media]
    links = [e["url"] for e in msg.get("entities") or [] if isinstance(e, dict) and e.get("url")]
    if links:
        extra["links"] = _unique(links)
    if msg.get("post_author"):
        extra["signature"] = msg["post_author"]
    if msg.get("edit_date"):
        extra["edited"] = msg["edit_date"]
    return PostIn(
        platform=PLATFORM,
        external_id=f"{key}/{mid}",
        text=text,
        url=f"{PUBLIC_BASE}/{username}/{mid}" if username else f"{PUBLIC_BASE}/{key}/{mid}",
        author_handle=key,
        author_name=payload.get("channel_title") or username,
        published_at=published,
        metrics=metrics,
        reply_to=reply_to,
        repost_of=repost_of,
        extra=extra,
    )


class TelegramApiConfig(BaseModel):
    """A channel read live with the user's own Telegram account through Telethon."""

    channel: str = Field(description="Channel: username, @username or a t.me link.")
    api_id: int = Field(description="api_id of your application, from my.telegram.org.")
    api_hash: str = Field(
        description="api_hash of your application, from my.telegram.org.",
        json_schema_extra=SECRET,
    )
    session: str = Field(
        default="telegram",
        description="Telethon session file (relative paths are under ELSHI_HOME); sign in "
        "once with Telethon to create it.",
    )
    limit: int = Field(default=200, ge=1, le=10_000, description="Most messages read per poll.")

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        return normalize_channel(value)


def _telethon_client(config: Any, home: Path) -> Any:
    try:
        from telethon.sync import TelegramClient
    except ImportError as exc:
        raise TelethonMissing(
            "the telegram-api connector needs Telethon: pip install elshi[telethon]"
        ) from exc
    session = Path(config.session).expanduser()
    return TelegramClient(
        str(session if session.is_absolute() else home / session), config.api_id, config.api_hash
    )


class TelegramApiConnector(Connector):
    """Read a channel live through the Telegram API (MTProto) with Telethon and your account.

    Needs `pip install elshi[telethon]`, an api_id/api_hash from my.telegram.org and a
    signed-in session file. The first poll reads the newest `limit` messages; later polls
    read forward from the newest id seen, oldest first, so nothing is skipped.
    """

    slug: ClassVar[str] = "telegram-api"
    title: ClassVar[str] = "Telegram channel (live API, Telethon)"
    platform: ClassVar[str] = PLATFORM
    Config: ClassVar[type[BaseModel]] = TelegramApiConfig
    target_field: ClassVar[str] = "channel"
    pollable: ClassVar[bool] = True

    def fetch(
        self, config: Any, cursor: dict[str, Any], ctx: FetchContext
    ) -> Iterator[RawRecord | BadRecord]:
        """Read messages newer than the cursor with Telethon."""
        client = _telethon_client(config, ctx.settings.home)
        last = int(cursor.get("last_id") or 0)
        newest = last
        client.connect()
        try:
            if not client.is_user_authorized():
                raise TelegramApiError(
                    f"Telegram session {config.session!r} is not signed in; sign in once with "
                    "Telethon (TelegramClient(session, api_id, api_hash).start())"
                )
            entity = client.get_entity(config.channel)
            base = {
                "channel": getattr(entity, "username", None) or config.channel,
                "channel_id": entity.id,
                "channel_title": getattr(entity, "title", None),
            }
            options = {"min_id": last, "reverse": True} if last else {}
            for message in client.iter_messages(entity, limit=config.limit, **options):
                newest = max(newest, message.id)
                yield RawRecord(
                    payload={**base, "message": jsonable(message.to_dict())},
                    location=f"message {message.id}",
                    origin=config.channel,
                    kind=self.slug,
                )
        finally:
            client.disconnect()
        cursor["last_id"] = newest

    def to_post(self, raw: RawRecord) -> PostIn | None:
        """Map one Telethon message."""
        return map_api_message(raw.payload)


@hookimpl
def elshi_connectors() -> list[type[Connector]]:
    """Register the Telegram connectors."""
    return [
        TelegramWebConnector,
        TelegramExportConnector,
        TelegramJsonConnector,
        TelegramApiConnector,
    ]
