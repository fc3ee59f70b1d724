"""Telegram: files read as a stream, Desktop exports (result.json) and Telethon JSON dumps."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import ijson
from pydantic import BaseModel, Field, field_validator

from elshi.connectors.base import (
    BadRecord,
    FetchContext,
    FileConnector,
    JsonTooDeep,
    MappingError,
    PostIn,
    RawRecord,
    Records,
    blank_file,
    input_file,
    json_events,
)
from elshi.connectors.telegram_base import (
    PLATFORM,
    PUBLIC_BASE,
    OptionalChannelName,
    _message_id,
    _required_time,
    _unique,
    channel_id_from_peer,
    channel_key,
    channel_post,
    normalize_channel,
)

_CHAT_TYPES_WITH_LINKS = frozenset(
    {"public_channel", "private_channel", "public_supergroup", "private_supergroup"}
)


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
    for prefix, event, value in json_events(fh, use_float=True):
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
    channel: OptionalChannelName = Field(
        default=None,
        description="Public username of the exported channel (single-chat export), so its "
        "messages share ids with telegram-web.",
    )
    usernames: dict[str, str] = Field(
        default_factory=dict,
        description='Chat id to public username for a full export, e.g. {"1394050290": "mfa_kz"}.',
    )

    @field_validator("usernames")
    @classmethod
    def _usernames(cls, value: dict[str, str]) -> dict[str, str]:
        return {str(k): normalize_channel(v) for k, v in value.items()}


_EXPORT_CHATS = ("chats.list.item", "left_chats.list.item")
_EXPORT_ITEMS = frozenset({"messages.item", *(f"{c}.messages.item" for c in _EXPORT_CHATS)})
_EXPORT_ARRAYS = frozenset(p.rpartition(".")[0] for p in _EXPORT_ITEMS)


class TelegramExportConnector(FileConnector):
    """Import a Telegram Desktop export (result.json): one chat, or a full account export.

    The file is streamed, so a large export is never loaded whole. Text may be a string or a
    list of strings and entities; links are kept as their text. The time is date_unixtime
    (UTC), else "date". Service messages are skipped. Locations are "message N" (the N-th
    entry of the chat's messages), or "chat K message N" in a full export.
    """

    slug = "telegram-export"
    title = "Telegram Desktop export (result.json)"
    platform = PLATFORM
    Config = TelegramExportConfig

    def fetch(self, config: Any, cursor: dict[str, Any], ctx: FetchContext) -> Records:
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
            except (ijson.JSONError, JsonTooDeep, UnicodeDecodeError) as exc:
                where = f"chat {chats} message {count + 1}" if full else f"message {count + 1}"
                yield BadRecord(
                    location=where,
                    reason=f"bad JSON, the rest of the file is unreadable: {_json_error(exc)}",
                    origin=str(path),
                )
                return
        if not found:
            raise MappingError(
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
    return channel_post(
        key,
        mid,
        username,
        text=text,
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
    channel: OptionalChannelName = Field(
        default=None,
        description="Public username of the channel, so its messages share ids with "
        "telegram-web; without it the numeric channel id is used.",
    )


_DUMP_FILE = re.compile(r"^(?P<peer>-?\d+)_messages\.json$")


class TelegramJsonConnector(FileConnector):
    """Import Telethon-style JSON dumps: arrays of {message_id, sender_id, text, date, channel}.

    Files are streamed. The channel comes from the `channel` option (a public username) or
    else from the marked sender_id (-100<channel id>) or a "<peer id>_messages.json" file
    name. Messages with empty text are skipped (counted as skipped, not quarantined): they
    are media without a caption, not broken records. A record without a message_id or with
    an unreadable date is quarantined at "message N" (or "<file> message N" for a folder).
    """

    slug = "telegram-json"
    title = "Telegram JSON dump (Telethon)"
    platform = PLATFORM
    Config = TelegramJsonConfig

    def fetch(self, config: Any, cursor: dict[str, Any], ctx: FetchContext) -> Records:
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

    def _file(self, file: Path, config: Any, ctx: FetchContext, prefix: str) -> Records:
        match = _DUMP_FILE.match(file.name)
        peer = -int(match["peer"].lstrip("-")) if match else None
        count = 0
        started = False
        if file.is_file() and blank_file(file):
            yield BadRecord(
                f"{prefix}message 1", f"file skipped: file is empty: {file}", None, str(file)
            )
            return
        with _open_checked(file) as fh:
            try:
                reader = _CountingReader(fh, ctx.on_bytes)
                for what, where, value in _stream(reader, frozenset({"item"})):
                    if what == "event":
                        if not started and not (where == "" and value[0] == "start_array"):
                            raise MappingError(f"{file} is not a JSON array of messages")
                        started = True
                        continue
                    count += 1
                    yield RawRecord(
                        payload={"channel": config.channel, "peer_id": peer, "message": value},
                        location=f"{prefix}message {count}",
                        origin=str(file),
                        kind=self.slug,
                    )
            except (ijson.JSONError, JsonTooDeep, UnicodeDecodeError) as exc:
                yield BadRecord(
                    location=f"{prefix}message {count + 1}",
                    reason=f"bad JSON, the rest of the file is unreadable: {_json_error(exc)}",
                    origin=str(file),
                )

    def to_post(self, raw: RawRecord) -> PostIn | None:
        """Map one dumped message."""
        return map_dump_message(raw.payload)
