"""Telegram: the live API through Telethon (an optional package) and its connector."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from elshi.connectors.base import (
    SECRET,
    Connector,
    FetchContext,
    MappingError,
    PostIn,
    RawRecord,
    Records,
)
from elshi.connectors.telegram_base import (
    PLATFORM,
    ChannelName,
    _message_id,
    _required_time,
    _unique,
    channel_key,
    channel_post,
    jsonable,
)


class TelegramApiError(RuntimeError):
    """The live API connector cannot run: Telethon missing or the session not signed in."""


class TelethonMissing(TelegramApiError):
    """The live API connector needs the optional Telethon package."""


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
    return channel_post(
        key,
        mid,
        username,
        text=text,
        author_name=payload.get("channel_title") or username,
        published_at=published,
        metrics=metrics,
        reply_to=reply_to,
        repost_of=repost_of,
        extra=extra,
    )


class TelegramApiConfig(BaseModel):
    """A channel read live with the user's own Telegram account through Telethon."""

    channel: ChannelName = Field(description="Channel: username, @username or a t.me link.")
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

    slug = "telegram-api"
    title = "Telegram channel (live API, Telethon)"
    platform = PLATFORM
    Config = TelegramApiConfig
    target_field = "channel"

    def fetch(self, config: Any, cursor: dict[str, Any], ctx: FetchContext) -> Records:
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
                # Telegram's own marks on the channel (verified, scam, fake), for the actors'
                # platform labels.
                "channel_labels": [
                    flag for flag in ("verified", "scam", "fake") if getattr(entity, flag, False)
                ],
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
