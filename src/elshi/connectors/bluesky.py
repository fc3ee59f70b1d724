"""Bluesky: poll an author feed or a search through the AppView API, or read Jetstream events."""

from __future__ import annotations

import json
import logging
import time
import unicodedata
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from pydantic import BaseModel, Field, field_validator

from elshi import netguard
from elshi.connectors.base import (
    HTTP_ADDRESS,
    SECRET,
    WS_ADDRESS,
    BadRecord,
    Connector,
    FetchContext,
    FileConnector,
    MappingError,
    PostIn,
    RawRecord,
    Records,
    input_file,
    parse_time,
)
from elshi.connectors.common import http_get, json_headers, json_line
from elshi.plugins import hookimpl

log = logging.getLogger(__name__)

PLATFORM = "bluesky"
POST_COLLECTION = "app.bsky.feed.post"
DEFAULT_SERVICE = "https://public.api.bsky.app"
DEFAULT_JETSTREAM = "wss://jetstream2.us-east.bsky.network/subscribe"


class BlueskyError(RuntimeError):
    """A Bluesky service refused or failed a request; the message says which and why."""


# ---------------------------------------------------------------------------- mapping


def split_at_uri(uri: Any) -> tuple[str, str, str]:
    """Split at://<did>/<collection>/<rkey> into its three parts."""
    if not isinstance(uri, str) or not uri.startswith("at://"):
        raise MappingError(f"not an at:// uri: {str(uri)[:80]!r}")
    parts = uri[len("at://") :].split("/")
    if len(parts) != 3 or not all(parts):
        raise MappingError(f"not an at://<did>/<collection>/<rkey> uri: {uri[:80]!r}")
    return parts[0], parts[1], parts[2]


def web_url(actor: str, rkey: str) -> str:
    """Return the bsky.app address of a post by handle (or DID) and record key."""
    return f"https://bsky.app/profile/{actor}/post/{rkey}"


def _embed_info(embed: Any) -> dict[str, Any]:
    """Describe a record's embed: its kinds, image alt texts, link card and quoted post."""
    info: dict[str, Any] = {"kinds": [], "alts": [], "external": None, "quote_of": None}
    if not isinstance(embed, dict):
        return info
    kind = str(embed.get("$type") or "").removeprefix("app.bsky.embed.")
    if kind.startswith("recordWithMedia"):
        inner = _embed_info(embed.get("media"))
        record = embed.get("record")
        quoted = record.get("record") if isinstance(record, dict) else None
        info.update(inner, kinds=["record", *inner["kinds"]])
        if isinstance(quoted, dict):
            info["quote_of"] = quoted.get("uri")
        return info
    info["kinds"] = [kind] if kind else []
    if kind.startswith("images"):
        info["alts"] = [
            str(i["alt"]).strip()
            for i in embed.get("images") or []
            if isinstance(i, dict) and str(i.get("alt") or "").strip()
        ]
    elif kind.startswith("video") and str(embed.get("alt") or "").strip():
        info["alts"] = [str(embed["alt"]).strip()]
    elif kind.startswith("external") and isinstance(embed.get("external"), dict):
        ext = embed["external"]
        info["external"] = {"uri": ext.get("uri"), "title": ext.get("title")}
    elif kind.startswith("record") and isinstance(embed.get("record"), dict):
        info["quote_of"] = embed["record"].get("uri")
    return info


def _fallback_text(info: dict[str, Any], url: str) -> str:
    # A post can be only a picture or a link card; their words stand in for the empty body.
    if info["alts"]:
        return "\n".join(info["alts"])
    ext = info["external"]
    if ext and (ext.get("title") or ext.get("uri")):
        return " ".join(str(x) for x in (ext.get("title"), ext.get("uri")) if x)
    return url


def _lang(langs: Any) -> str | None:
    if isinstance(langs, list) and langs and isinstance(langs[0], str) and langs[0].strip():
        return langs[0].strip().split("-")[0].lower()
    return None


def _record_post(
    *, uri: str, did: str, rkey: str, record: Any, actor: str, fallback_time: Any
) -> PostIn:
    if not isinstance(record, dict):
        raise MappingError("missing required field: record")
    when = record.get("createdAt") or fallback_time
    if not when:
        raise MappingError("missing required field: createdAt")
    published = parse_time(when)
    url = web_url(actor, rkey)
    info = _embed_info(record.get("embed"))
    text = str(record.get("text") or "")
    if not text.strip():
        text = _fallback_text(info, url)
    reply = record.get("reply")
    parent = reply.get("parent") if isinstance(reply, dict) else None
    root = reply.get("root") if isinstance(reply, dict) else None
    extra: dict[str, Any] = {
        "did": did,
        "langs": record.get("langs") if isinstance(record.get("langs"), list) else [],
        "embeds": info["kinds"],
        "has_media": any(k.startswith(("images", "video")) for k in info["kinds"]),
    }
    if info["external"]:
        extra["link"] = info["external"].get("uri")
    if info["quote_of"]:
        extra["quote_of"] = info["quote_of"]
    if isinstance(root, dict) and root.get("uri"):
        extra["thread_root"] = root["uri"]
    return PostIn(
        platform=PLATFORM,
        external_id=uri,
        text=text,
        url=url,
        lang=_lang(record.get("langs")),
        published_at=published,
        reply_to=parent.get("uri") if isinstance(parent, dict) else None,
        extra=extra,
    )


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def post_view_to_post(item: Any) -> PostIn:
    """Map a PostView (or a feed item wrapping one) from the AppView API to a post."""
    if not isinstance(item, dict):
        raise MappingError(f"post is not a JSON object but {type(item).__name__}")
    view = item["post"] if isinstance(item.get("post"), dict) else item
    uri = view.get("uri")
    if not uri:
        raise MappingError("missing required field: uri")
    did, collection, rkey = split_at_uri(uri)
    if collection != POST_COLLECTION:
        raise MappingError(f"not a post uri ({collection}): {uri[:80]}")
    author = _obj(view.get("author"))
    handle = str(author.get("handle") or "")
    actor = handle if handle and handle != "handle.invalid" else did
    post = _record_post(
        uri=uri,
        did=did,
        rkey=rkey,
        record=view.get("record"),
        actor=actor,
        fallback_time=view.get("indexedAt"),
    )
    post.author_handle = actor
    post.author_name = str(author.get("displayName") or "").strip() or None
    post.metrics = {
        name: view[key]
        for name, key in (
            ("likes", "likeCount"),
            ("reposts", "repostCount"),
            ("replies", "replyCount"),
            ("quotes", "quoteCount"),
        )
        if isinstance(view.get(key), int)
    }
    post.extra["cid"] = view.get("cid")
    reason = item.get("reason") if view is not item else None
    if isinstance(reason, dict) and "Repost" in str(reason.get("$type") or ""):
        by = _obj(reason.get("by"))
        post.extra["reposted_by"] = by.get("handle") or by.get("did")
    return post


def jetstream_event_to_post(event: Any) -> PostIn | None:
    """Map a Jetstream event: a post creation becomes a post, every other event None."""
    if not isinstance(event, dict):
        raise MappingError(f"event is not a JSON object but {type(event).__name__}")
    if event.get("kind") != "commit":
        return None
    commit = event.get("commit")
    if not isinstance(commit, dict):
        raise MappingError("missing required field: commit")
    if commit.get("operation") != "create" or commit.get("collection") != POST_COLLECTION:
        return None
    did, rkey = event.get("did"), commit.get("rkey")
    if not did:
        raise MappingError("missing required field: did")
    if not rkey:
        raise MappingError("missing required field: commit.rkey")
    uri = f"at://{did}/{POST_COLLECTION}/{rkey}"
    post = _record_post(
        uri=uri,
        did=str(did),
        rkey=str(rkey),
        record=commit.get("record"),
        actor=str(did),
        fallback_time=event.get("time_us"),
    )
    post.author_handle = str(did)
    post.extra["cid"] = commit.get("cid")
    return post


# ---------------------------------------------------------------------------- keywords


def normalize(text: str) -> str:
    """Fold case and Unicode forms so that keyword matching ignores both."""
    return unicodedata.normalize("NFKC", text).casefold()


def split_keywords(value: Any) -> list[str]:
    """Split comma-separated keywords (or a list) into normalised, non-empty keywords."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return [normalize(str(k)).strip() for k in items if str(k).strip()]


def post_text(event: Any) -> str | None:
    """Return the text of a Jetstream post-creation event, or None for any other event."""
    if not isinstance(event, dict) or event.get("kind") != "commit":
        return None
    commit = event.get("commit")
    if not isinstance(commit, dict):
        return None
    if commit.get("operation") != "create" or commit.get("collection") != POST_COLLECTION:
        return None
    record = commit.get("record")
    text = record.get("text") if isinstance(record, dict) else None
    return text if isinstance(text, str) else ""


def matches(text: str, keywords: list[str]) -> bool:
    """Tell whether the text contains any of the (normalised) keywords."""
    folded = normalize(text)
    return any(k in folded for k in keywords)


# ---------------------------------------------------------------------------- AppView polling


def _service_url(value: str) -> str:
    value = value.strip().rstrip("/")
    if "://" not in value:
        value = f"https://{value}"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value


class BlueskyConfig(BaseModel):
    """Which author feed or search to poll, and on which AppView service."""

    target: str = Field(description='"author:<handle or did>" or "search:<query>".')
    service: str = Field(
        default=DEFAULT_SERVICE, description="AppView base URL.", json_schema_extra=HTTP_ADDRESS
    )
    token: str | None = Field(
        default=None,
        description="Access token (Bearer), for services where search needs one; "
        '"env:NAME" reads it from the environment variable NAME.',
        json_schema_extra=SECRET,
    )
    limit: int = Field(default=50, ge=1, le=100, description="Posts per page (API max 100).")
    max_pages: int = Field(default=5, ge=1, le=100, description="Pages read per run, newest first.")

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        return _service_url(value)

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        kind, sep, rest = value.strip().partition(":")
        if not sep or kind.lower() not in ("author", "search") or not rest.strip(" @"):
            raise ValueError(f"{value!r}: use author:<handle or did> or search:<query>")
        return value.strip()


def _sort_time(item: Any) -> datetime | None:
    if not isinstance(item, dict):
        return None
    reason = item.get("reason")
    view = item["post"] if isinstance(item.get("post"), dict) else item
    stamp = reason.get("indexedAt") if isinstance(reason, dict) else None
    try:
        return parse_time(stamp or view.get("indexedAt"))
    except MappingError:
        return None


class BlueskyConnector(Connector):
    """Poll an author's feed or a post search through the Bluesky AppView API."""

    slug = "bluesky"
    title = "Bluesky author feed or search"
    platform = PLATFORM
    Config = BlueskyConfig
    target_field = "target"

    def fetch(self, config: Any, cursor: dict[str, Any], ctx: FetchContext) -> Records:
        """Read pages newest first until the newest post seen last time, or the page bound."""
        kind, _, value = config.target.partition(":")
        if kind.lower() == "author":
            path, key, params = (
                "/xrpc/app.bsky.feed.getAuthorFeed",
                "feed",
                {"actor": value.strip().lstrip("@")},
            )
            record_kind = "feed_view_post"
        else:
            path, key, params = (
                "/xrpc/app.bsky.feed.searchPosts",
                "posts",
                {"q": value.strip(), "sort": "latest"},
            )
            record_kind = "post_view"
        headers = json_headers(config.token, BlueskyError)
        scope = f"{config.service} {config.target}"
        if cursor.get("scope") != scope:
            cursor.clear()
        watermark = _stamp(cursor.get("newest"))
        host = urlsplit(config.service).netloc
        client = ctx.client()
        page_cursor: str | None = None
        count = 0
        for _ in range(config.max_pages):
            query = {**params, "limit": str(config.limit)}
            if page_cursor:
                query["cursor"] = page_cursor
            body = _xrpc_get(client, config.service + path, query, headers)
            items = body.get(key)
            if not isinstance(items, list):
                raise BlueskyError(f"{path}: the answer has no {key!r} list")
            reached = False
            newest: tuple[datetime, str] | None = None
            for item in items:
                count += 1
                when = _sort_time(item)
                if when is not None:
                    if watermark is not None and when <= watermark:
                        reached = True
                    if newest is None or when > newest[0]:
                        newest = (when, _uri(item))
                yield RawRecord(item, f"item {count}", origin=host, kind=record_kind)
            if newest and (watermark is None or newest[0] > watermark):
                stored = _stamp(cursor.get("newest"))
                if stored is None or newest[0] > stored:
                    cursor.update(newest=newest[0].isoformat(), newest_uri=newest[1])
            page_cursor = body.get("cursor") if isinstance(body.get("cursor"), str) else None
            if reached or not items or not page_cursor:
                break
        else:
            if watermark is not None:
                log.warning(
                    "%s: stopped after %d pages before reaching the newest post seen last time; "
                    "raise max_pages or poll more often",
                    scope,
                    config.max_pages,
                )
        cursor["scope"] = scope

    def to_post(self, raw: RawRecord) -> PostIn | None:
        """Map a PostView or a feed item."""
        return post_view_to_post(raw.payload)


def _stamp(value: Any) -> datetime | None:
    try:
        return parse_time(value)
    except MappingError:
        return None


def _uri(item: dict[str, Any]) -> str:
    view = item["post"] if isinstance(item.get("post"), dict) else item
    return str(view.get("uri") or "")


_HINTS = {
    400: "bad request; an unknown actor or query gives this",
    401: "this service wants an access token for the request (set token)",
    403: "the service refused the request; search may need an access token (set token)",
    404: "no such method or path on this service",
    429: "rate limited by the service; try again later",
}


def _xrpc_get(
    client: httpx.Client, url: str, params: dict[str, str], headers: dict[str, str]
) -> dict[str, Any]:
    resp = http_get(
        client,
        url,
        params,
        headers,
        error=BlueskyError,
        hints=_HINTS,
        detail_keys=("error", "message"),
    )
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise BlueskyError(f"{urlsplit(url).path}: the service did not answer with a JSON object")
    return body


# ---------------------------------------------------------------------------- Jetstream


class JetstreamConfig(BaseModel):
    """Keywords to keep from the Jetstream firehose, and how long one run may read."""

    keywords: list[str] = Field(
        description="Comma-separated keywords; a post is kept if its text contains any "
        "(case- and Unicode-form-insensitive)."
    )
    url: str = Field(
        default=DEFAULT_JETSTREAM,
        description="Jetstream subscribe URL (ws/wss).",
        json_schema_extra=WS_ADDRESS,
    )
    max_events: int = Field(
        default=10_000, ge=1, description="Stop after reading this many events in one run."
    )
    max_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="Stop after this many seconds in one run."
    )
    rewind_seconds: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="Replay this far before the saved cursor, so no event is lost at the seam "
        "(repeats are dropped as duplicates).",
    )

    @field_validator("keywords", mode="before")
    @classmethod
    def _keywords(cls, value: Any) -> list[str]:
        words = split_keywords(value)
        if not words:
            raise ValueError("give at least one keyword, e.g. Kazakhstan,Қазақстан,Казахстан")
        return words

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise ValueError(f"not a ws:// or wss:// URL: {value!r}")
        return value.strip()


def _event_record(
    line: str | bytes, location: str, origin: str, keywords: list[str]
) -> RawRecord | BadRecord | None:
    event = json_line(line, location, origin)
    if isinstance(event, BadRecord):
        return event
    if keywords:
        body = post_text(event)
        if body is None or not matches(body, keywords):
            return None
    return RawRecord(event, location, origin, "jetstream")


class JetstreamConnector(Connector):
    """Read Bluesky posts live from a Jetstream server, keeping those with given keywords."""

    slug = "bluesky-jetstream"
    title = "Bluesky firehose via Jetstream (keyword filter)"
    platform = PLATFORM
    Config = JetstreamConfig
    target_field = "keywords"

    def fetch(self, config: Any, cursor: dict[str, Any], ctx: FetchContext) -> Records:
        """Replay from the saved time_us cursor until max_events or max_seconds."""
        from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        params = [("wantedCollections", POST_COLLECTION)]
        saved = cursor.get("time_us")
        if isinstance(saved, int) and saved > 0:
            params.append(("cursor", str(max(0, saved - int(config.rewind_seconds * 1_000_000)))))
        url = config.url + ("&" if "?" in config.url else "?") + urlencode(params)
        origin = urlsplit(config.url).netloc
        deadline = time.monotonic() + config.max_seconds
        timeout = min(ctx.settings.http_timeout, config.max_seconds + 5)
        try:
            # The address is checked and connected to here, so the stream reaches a public
            # address only (and a redirect, which needs a new connection, is not followed).
            target = netguard.check_url(
                config.url, settings=ctx.settings, schemes=netguard.WEBSOCKET
            )
            sock = netguard.connect_socket(target, timeout)
        except (OSError, httpx.HTTPError) as exc:
            raise BlueskyError(f"cannot connect to {origin}: {exc}") from exc
        try:
            ws = connect(
                url,
                sock=sock,
                server_hostname=target.host if target.scheme == "wss" else None,
                open_timeout=timeout,
                close_timeout=1,
                user_agent_header=ctx.settings.user_agent,
            )
        except InvalidStatus as exc:
            sock.close()
            raise BlueskyError(
                f"{origin} refused the subscription: HTTP {exc.response.status_code}"
            ) from exc
        except (OSError, TimeoutError, WebSocketException) as exc:
            sock.close()
            raise BlueskyError(f"cannot connect to {origin}: {exc}") from exc
        n = 0
        with ws:
            while n < config.max_events:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    message = ws.recv(timeout=remaining)
                except TimeoutError:
                    break
                except ConnectionClosed as exc:
                    # After some events a dropped stream just ends the run; the cursor resumes it.
                    if n == 0 and (exc.rcvd is None or exc.rcvd.code != 1000):
                        raise BlueskyError(f"{origin} closed the stream: {exc}") from exc
                    break
                n += 1
                rec = _event_record(message, f"event {n}", "", config.keywords)
                if isinstance(rec, RawRecord):
                    stamp = rec.payload.get("time_us") if isinstance(rec.payload, dict) else None
                else:
                    stamp = _peek_time(message)
                if isinstance(stamp, int) and stamp > int(cursor.get("time_us") or 0):
                    cursor["time_us"] = stamp
                if rec is not None:
                    yield rec

    def to_post(self, raw: RawRecord) -> PostIn | None:
        """Map a Jetstream event."""
        return jetstream_event_to_post(raw.payload)


def _peek_time(message: str | bytes) -> int | None:
    try:
        event = json.loads(message)
    except (ValueError, RecursionError):
        return None
    stamp = event.get("time_us") if isinstance(event, dict) else None
    return stamp if isinstance(stamp, int) else None


class JetstreamFileConfig(BaseModel):
    """A saved Jetstream capture (one JSON event per line)."""

    path: str = Field(description="JSONL file of Jetstream events.")
    keywords: list[str] = Field(
        default_factory=list,
        description="Optional comma-separated keywords; when given, only matching posts are read.",
    )

    @field_validator("keywords", mode="before")
    @classmethod
    def _keywords(cls, value: Any) -> list[str]:
        return split_keywords(value)


class JetstreamFileConnector(FileConnector):
    """Import a saved Jetstream capture (JSONL)."""

    slug = "bluesky-jetstream-file"
    title = "Bluesky Jetstream capture (JSONL file)"
    platform = PLATFORM
    Config = JetstreamFileConfig

    def fetch(self, config: Any, cursor: dict[str, Any], ctx: FetchContext) -> Records:
        """Read one event per line; a line that is not JSON becomes a bad record."""
        path = input_file(config.path, "JSONL file")
        ctx.on_total(path.stat().st_size)
        with path.open("rb") as fh:
            for n, line in enumerate(fh, start=1):
                ctx.on_bytes(len(line))
                if not line.strip():
                    continue
                rec = _event_record(line, f"line {n}", config.path, config.keywords)
                if rec is not None:
                    yield rec

    def to_post(self, raw: RawRecord) -> PostIn | None:
        """Map a Jetstream event."""
        return jetstream_event_to_post(raw.payload)


@hookimpl
def elshi_connectors() -> list[type[Connector]]:
    """Register the Bluesky connectors."""
    return [BlueskyConnector, JetstreamConnector, JetstreamFileConnector]
