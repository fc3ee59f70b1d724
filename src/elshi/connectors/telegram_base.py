"""Telegram: what every Telegram connector shares (channel names, message ids, counts).

See telegram.py for how messages are identified and what is skipped.
"""

from __future__ import annotations

import base64
import re
from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import urljoin, urlsplit

from pydantic import AfterValidator

from elshi.connectors.base import MappingError, PostIn, parse_time

PLATFORM = "telegram"
PUBLIC_BASE = "https://t.me"
#: Telethon marks a channel's peer id as -(10**12 + channel id).
_CHANNEL_MARK = 10**12
_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
_POST_PATH = re.compile(r"^/(?:s/)?(?P<channel>c/\d+|[A-Za-z][A-Za-z0-9_]{3,31})/(?P<id>\d+)/?$")


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


def _optional_channel(value: str | None) -> str | None:
    return normalize_channel(value) if value else None


#: A setting naming a public channel, in any written form; kept as the bare username.
ChannelName = Annotated[str, AfterValidator(normalize_channel)]
#: The same, where the setting may be left out (empty means none).
OptionalChannelName = Annotated[str | None, AfterValidator(_optional_channel)]


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


def channel_post(key: str, mid: int, username: str | None, **fields: Any) -> PostIn:
    """Return message `mid` of the channel `key` as a post: its id, public link and author."""
    return PostIn(
        platform=PLATFORM,
        external_id=f"{key}/{mid}",
        url=f"{PUBLIC_BASE}/{username}/{mid}" if username else f"{PUBLIC_BASE}/{key}/{mid}",
        author_handle=key,
        **fields,
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
