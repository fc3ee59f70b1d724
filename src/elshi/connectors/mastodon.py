"""Mastodon: poll a server's hashtag, account or public timeline; import saved streaming events."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from pydantic import BaseModel, Field, field_validator

from elshi.connectors.base import (
    HTTP_ADDRESS,
    SECRET,
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

PLATFORM = "mastodon"
#: Streaming event names whose payload is a Status ("status.update" is an edit).
STATUS_EVENTS = frozenset({"update", "status.update"})


class MastodonError(RuntimeError):
    """A Mastodon server refused or failed a request; the message says which and why."""


# ---------------------------------------------------------------------------- HTML to text

_BLOCKS = frozenset(
    {"p", "div", "blockquote", "pre", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6"}
)
_SPACES = re.compile(r"[ \t\r\f\v\n]+")


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(_SPACES.sub(" ", data))


def html_to_text(html: str) -> str:
    """Turn Mastodon status HTML into plain text, keeping paragraph and line breaks."""
    if not html:
        return ""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    lines = [line.strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# ---------------------------------------------------------------------------- mapping


def instance_host(value: str) -> str:
    """Return the host (with port, if any) of a server given as a URL or a bare host name."""
    value = value.strip()
    host = urlsplit(value if "//" in value else f"//{value}").netloc
    return host.lower()


def _media_fallback(status: dict[str, Any]) -> str:
    # A status can be only pictures; alt texts (or the media links) stand in for the body.
    media = [m for m in status.get("media_attachments") or [] if isinstance(m, dict)]
    described = [str(m["description"]).strip() for m in media if m.get("description")]
    if described:
        return "\n".join(described)
    links = [str(m.get("url") or m.get("remote_url") or "") for m in media]
    return " ".join(x for x in links if x) or str(status.get("url") or "")


def status_to_post(status: Any, host: str) -> PostIn:
    """Map one Mastodon Status (as read from `host`) to a post."""
    if not isinstance(status, dict):
        raise MappingError(f"status is not a JSON object but {type(status).__name__}")
    sid = status.get("id")
    if sid is None or not str(sid).strip():
        raise MappingError("missing required field: id")
    if not status.get("created_at"):
        raise MappingError("missing required field: created_at")
    published = parse_time(status["created_at"])
    account = status.get("account")
    if not isinstance(account, dict) or not account.get("acct"):
        raise MappingError("missing required field: account.acct")
    acct = str(account["acct"])
    handle = acct if "@" in acct else f"{acct}@{host}"

    reblog = status.get("reblog")
    shown = reblog if isinstance(reblog, dict) else status
    text = html_to_text(str(shown.get("content") or ""))
    spoiler = str(shown.get("spoiler_text") or "").strip()
    if not text and not spoiler:
        text = _media_fallback(shown)
    media = [
        {
            "type": m.get("type"),
            "url": m.get("url") or m.get("remote_url"),
            "description": m.get("description"),
        }
        for m in shown.get("media_attachments") or []
        if isinstance(m, dict)
    ]
    extra: dict[str, Any] = {
        "instance": host,
        "id": str(sid),
        "uri": status.get("uri"),
        "visibility": status.get("visibility"),
        "sensitive": bool(shown.get("sensitive")),
        "has_media": bool(media),
        "tags": [t.get("name") for t in shown.get("tags") or [] if isinstance(t, dict)],
    }
    if spoiler:
        extra["spoiler_text"] = spoiler
    if media:
        extra["media"] = media
    metrics = {
        name: status[f"{name}_count"]
        for name in ("replies", "reblogs", "favourites", "quotes")
        if isinstance(status.get(f"{name}_count"), int)
    }
    repost_of = None
    if isinstance(reblog, dict):
        if reblog.get("id") is None:
            raise MappingError("missing required field: reblog.id")
        repost_of = f"{host}/{reblog['id']}"
        original = reblog["account"] if isinstance(reblog.get("account"), dict) else {}
        extra["reblog_of_account"] = original.get("acct")
        extra["reblog_uri"] = reblog.get("uri")
    reply_id = shown.get("in_reply_to_id")
    return PostIn(
        platform=PLATFORM,
        external_id=f"{host}/{sid}",
        text=text,
        title=spoiler or None,
        url=status.get("url") or shown.get("url") or status.get("uri"),
        author_handle=handle,
        author_name=str(account.get("display_name") or "") or None,
        lang=shown.get("language") or None,
        published_at=published,
        metrics=metrics,
        reply_to=f"{host}/{reply_id}" if reply_id else None,
        repost_of=repost_of,
        extra=extra,
    )


def stream_event_to_post(event: Any, host: str) -> PostIn | None:
    """Map a streaming API event; only "update" events carry a status, the rest give None."""
    if not isinstance(event, dict):
        raise MappingError(f"event is not a JSON object but {type(event).__name__}")
    if event.get("event") not in STATUS_EVENTS:
        return None
    payload = event.get("payload")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise MappingError(f"event payload is not JSON: {exc.msg} at char {exc.pos}") from exc
    return status_to_post(payload, host)


# ---------------------------------------------------------------------------- REST polling


_TARGET = re.compile(r"^(tag|account):(.+)$|^public(:local)?$", re.IGNORECASE)


class MastodonConfig(BaseModel):
    """Which timeline of which Mastodon server to poll."""

    instance: str = Field(
        description="The server's base URL, e.g. https://mastodon.social.",
        json_schema_extra=HTTP_ADDRESS,
    )
    target: str = Field(
        description='"tag:<hashtag>", "account:<acct or id>", "public" or "public:local".'
    )
    token: str | None = Field(
        default=None,
        description="Access token, for servers that close timelines to guests; "
        '"env:NAME" reads it from the environment variable NAME.',
        json_schema_extra=SECRET,
    )
    limit: int = Field(default=40, ge=1, le=40, description="Statuses per page (server max 40).")
    max_pages: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Pages read per run: the newest pages on a first run, then a backlog of new "
        "statuses is caught up over later runs.",
    )

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value:
            raise ValueError("give the server's URL, e.g. https://mastodon.social")
        if "://" not in value:
            value = f"https://{value}"
        if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        value = value.strip()
        match = _TARGET.match(value)
        if not match or (match.group(2) is not None and not match.group(2).strip(" #@")):
            raise ValueError(
                f"{value!r}: use tag:<hashtag>, account:<acct or id>, public or public:local"
            )
        return value


def _id_key(value: str) -> tuple[int, str]:
    # Mastodon ids are numeric strings of growing length; compare by length, then text.
    return (len(value), value)


def _link_param(resp: httpx.Response, rel: str, name: str) -> str | None:
    link = resp.links.get(rel)
    if not link or not link.get("url"):
        return None
    values = parse_qs(urlsplit(link["url"]).query).get(name)
    return values[0] if values else None


class MastodonConnector(Connector):
    """Poll a hashtag, account or public timeline through the Mastodon REST API."""

    slug = "mastodon"
    title = "Mastodon timeline (hashtag, account, public)"
    platform = PLATFORM
    Config = MastodonConfig
    target_field = "target"

    def fetch(self, config: Any, cursor: dict[str, Any], ctx: FetchContext) -> Records:
        """Read new statuses since the cursor's min_id, newest page first on a first run."""
        client = ctx.client()
        host = instance_host(config.instance)
        headers = json_headers(config.token, MastodonError)
        scope = f"{config.instance} {config.target}"
        if cursor.get("scope") != scope:
            cursor.clear()
        path, base_params = self._endpoint(config, client, headers)
        since = cursor.get("min_id")
        newest: str | None = since
        count = 0
        page_params: dict[str, str] = {"min_id": since} if since else {}
        for _ in range(config.max_pages):
            resp = _get(
                client,
                config.instance + path,
                {**base_params, **page_params, "limit": str(config.limit)},
                headers,
            )
            statuses = _json_list(resp, path)
            if not statuses:
                break
            ids = [str(s["id"]) for s in statuses if isinstance(s, dict) and s.get("id")]
            for status in statuses:
                count += 1
                yield RawRecord(
                    payload={"instance": host, "status": status},
                    location=f"item {count}",
                    origin=host,
                    kind="status",
                )
            if ids:
                top = max(ids, key=_id_key)
                if newest is None or _id_key(top) > _id_key(newest):
                    newest = top
                    cursor.update(scope=scope, min_id=newest)
            if len(statuses) < config.limit or not ids:
                break
            if since:
                # Catching up: walk towards newer statuses from the newest seen.
                newer = _link_param(resp, "prev", "min_id") or max(ids, key=_id_key)
                page_params = {"min_id": newer}
            else:
                # First run: walk back from the newest page into older statuses.
                older = _link_param(resp, "next", "max_id") or min(ids, key=_id_key)
                page_params = {"max_id": older}
        cursor["scope"] = scope

    def _endpoint(
        self, config: Any, client: httpx.Client, headers: dict[str, str]
    ) -> tuple[str, dict[str, str]]:
        kind, _, value = config.target.partition(":")
        kind = kind.lower()
        if kind == "tag":
            return f"/api/v1/timelines/tag/{quote(value.strip().lstrip('#'), safe='')}", {}
        if kind == "account":
            acct = value.strip().lstrip("@")
            if not acct.isdigit():
                resp = _get(
                    client, config.instance + "/api/v1/accounts/lookup", {"acct": acct}, headers
                )
                account = _json(resp, "/api/v1/accounts/lookup")
                if not isinstance(account, dict) or not account.get("id"):
                    raise MastodonError(f"{acct}: the server's account lookup returned no id")
                acct = str(account["id"])
            return f"/api/v1/accounts/{quote(acct, safe='')}/statuses", {}
        if value.lower() == "local":
            return "/api/v1/timelines/public", {"local": "true"}
        return "/api/v1/timelines/public", {}

    def to_post(self, raw: RawRecord) -> PostIn | None:
        """Map a Status read from the API."""
        payload = raw.payload
        if not isinstance(payload, dict) or "status" not in payload:
            raise MappingError("record is not a {instance, status} object")
        if not payload.get("instance"):
            raise MappingError("missing required field: instance")
        return status_to_post(payload["status"], str(payload["instance"]))


_HINTS = {
    401: "the server wants an access token for this timeline (set token)",
    403: "the access token lacks the read:statuses scope or the server forbids this timeline",
    404: "no such hashtag, account or API path on this server",
    410: "the account or resource is gone",
    422: "the server refused the request parameters",
    429: "rate limited by the server; try again later",
}


def _get(
    client: httpx.Client, url: str, params: dict[str, str], headers: dict[str, str]
) -> httpx.Response:
    return http_get(client, url, params, headers, error=MastodonError, hints=_HINTS)


def _json(resp: httpx.Response, path: str) -> Any:
    try:
        return resp.json()
    except ValueError as exc:
        raise MastodonError(f"{path}: the server did not answer with JSON") from exc


def _json_list(resp: httpx.Response, path: str) -> list[Any]:
    body = _json(resp, path)
    if not isinstance(body, list):
        raise MastodonError(f"{path}: expected a list of statuses, got {type(body).__name__}")
    return body


# ---------------------------------------------------------------------------- file import


class MastodonStreamConfig(BaseModel):
    """A saved capture of Mastodon streaming events or statuses, and the server it came from."""

    path: str = Field(description="JSON file (one event/status or a list) or JSONL (one per line).")
    instance: str = Field(
        description="The server the capture was read from; status ids are local to it."
    )

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        if not instance_host(value):
            raise ValueError("give the server's host or URL, e.g. mastodon.social")
        return value


def _stream_records(path: Path, host: str, ctx: FetchContext, origin: str) -> Records:
    data = path.read_bytes()
    ctx.on_total(len(data))
    head = data.lstrip()[:1]
    if head == b"{":
        first = data.lstrip().split(b"\n", 1)[0]
        try:
            json.loads(first)
            jsonl = True
        except (ValueError, RecursionError):
            jsonl = False
    else:
        jsonl = head != b"["
    if jsonl:
        for n, line in enumerate(data.split(b"\n"), start=1):
            ctx.on_bytes(len(line) + 1)
            if not line.strip():
                continue
            item = json_line(line, f"line {n}", origin)
            yield (
                item
                if isinstance(item, BadRecord)
                else _file_record(item, host, f"line {n}", origin)
            )
        return
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "line 1"
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else f"not UTF-8: {exc.reason}"
        raw = data[:2000].decode("utf-8", "replace")
        yield BadRecord(where, f"bad JSON: {reason}", raw, origin)
        return
    except RecursionError:
        yield BadRecord(
            "line 1", "bad JSON: nested too deeply", data[:2000].decode("utf-8", "replace"), origin
        )
        return
    ctx.on_bytes(len(data))
    items = body if isinstance(body, list) else [body]
    for n, item in enumerate(items, start=1):
        yield _file_record(item, host, f"item {n}", origin)


def _file_record(item: Any, host: str, location: str, origin: str) -> RawRecord:
    if isinstance(item, dict) and "event" in item:
        return RawRecord({"instance": host, "event": item}, location, origin, "stream")
    return RawRecord({"instance": host, "status": item}, location, origin, "status")


class MastodonStreamConnector(FileConnector):
    """Import a saved capture of streaming API events (or of statuses) from a file."""

    slug = "mastodon-stream"
    title = "Mastodon streaming capture or saved statuses (JSON/JSONL file)"
    platform = PLATFORM
    Config = MastodonStreamConfig

    def fetch(self, config: Any, cursor: dict[str, Any], ctx: FetchContext) -> Records:
        """Read events or statuses from the file."""
        path = input_file(config.path, "JSON or JSONL file")
        yield from _stream_records(path, instance_host(config.instance), ctx, config.path)

    def to_post(self, raw: RawRecord) -> PostIn | None:
        """Map a status or an "update" event; other events are not posts."""
        payload = raw.payload
        if not isinstance(payload, dict):
            raise MappingError("record is not an {instance, event|status} object")
        host = str(payload.get("instance") or "")
        if "event" in payload:
            return stream_event_to_post(payload["event"], host)
        return status_to_post(payload.get("status"), host)


@hookimpl
def elshi_connectors() -> list[type[Connector]]:
    """Register the Mastodon connectors."""
    return [MastodonConnector, MastodonStreamConnector]
