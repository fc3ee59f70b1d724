"""Telegram: the public web preview pages (t.me/s/<channel>) and their connector."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx
import lxml.html
from lxml import etree
from pydantic import BaseModel, Field, field_validator

from elshi.connectors.base import (
    HTTP_ADDRESS,
    Connector,
    FetchContext,
    MappingError,
    PostIn,
    RawRecord,
    Records,
)
from elshi.connectors.telegram_base import (
    PLATFORM,
    PUBLIC_BASE,
    _required_time,
    _unique,
    normalize_channel,
    parse_count,
    post_ref,
)

log = logging.getLogger(__name__)

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


class TelegramWebError(RuntimeError):
    """The web preview could not be read: no such channel, no public preview, server error."""


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

    slug = "telegram-web"
    title = "Telegram public channel (web preview)"
    platform = PLATFORM
    Config = TelegramWebConfig
    target_field = "channel"

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

    def fetch(self, config: Any, cursor: dict[str, Any], ctx: FetchContext) -> Records:
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
