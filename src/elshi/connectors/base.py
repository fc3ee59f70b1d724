"""The connector contract: fetch raw records (I/O) and map each to a post (pure)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from elshi.settings import Settings


class MappingError(ValueError):
    """A record is well-formed but cannot become a post; the message says why."""


@dataclass(slots=True)
class RawRecord:
    """One record as read from a source, before mapping."""

    payload: Any
    location: str
    origin: str = ""
    kind: str | None = None


@dataclass(slots=True)
class BadRecord:
    """A record that could not even be read (bad JSON, bad encoding, short row)."""

    location: str
    reason: str
    raw: str | None = None
    origin: str = ""


@dataclass(slots=True)
class PostIn:
    """A post as a connector maps it; the ingest service validates and stores it."""

    platform: str
    external_id: str
    text: str = ""
    url: str | None = None
    author_handle: str | None = None
    author_name: str | None = None
    title: str | None = None
    lang: str | None = None
    published_at: datetime | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    reply_to: str | None = None
    repost_of: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FetchContext:
    """What a connector's I/O part may use: settings, an HTTP client, a byte counter."""

    settings: Settings
    http: httpx.Client | None = None
    on_bytes: Callable[[int], None] = lambda n: None
    on_total: Callable[[int | None], None] = lambda n: None

    def client(self) -> httpx.Client:
        """Return a shared HTTP client with elshi's timeout and User-Agent."""
        if self.http is None:
            self.http = httpx.Client(
                timeout=self.settings.http_timeout,
                headers={"User-Agent": self.settings.user_agent},
                follow_redirects=True,
            )
        return self.http

    def close(self) -> None:
        """Close the HTTP client if one was opened."""
        if self.http is not None:
            self.http.close()
            self.http = None


class Connector(ABC):
    """A source type. Built-ins register through the same hook as third-party plugins."""

    slug: ClassVar[str]
    title: ClassVar[str]
    platform: ClassVar[str]
    Config: ClassVar[type[BaseModel]]
    #: The Config field that `elshi sources add <slug> TARGET` and `elshi ingest` fill in.
    target_field: ClassVar[str] = "url"
    #: True when the source can be polled on a schedule; False for one-off file imports.
    pollable: ClassVar[bool] = True

    def parse_config(self, data: dict[str, Any]) -> BaseModel:
        """Validate a config dict against this connector's Config."""
        return self.Config.model_validate(data)

    @abstractmethod
    def fetch(
        self, config: Any, cursor: dict[str, Any], ctx: FetchContext
    ) -> Iterator[RawRecord | BadRecord]:
        """Read records from the source; update `cursor` in place as progress is made."""

    @abstractmethod
    def to_post(self, raw: RawRecord) -> PostIn | None:
        """Map one raw record to a post, or None if it is not a post (a like, a deletion)."""


def parse_time(value: Any) -> datetime | None:
    """Parse ISO 8601, RFC 822, unix seconds/microseconds or 'YYYY-MM-DD HH:MM:SS' into UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        num = float(value)
        if num > 1e14:  # microseconds (Jetstream time_us)
            num /= 1e6
        elif num > 1e11:  # milliseconds
            num /= 1e3
        return datetime.fromtimestamp(num, tz=UTC)
    text = str(value).strip()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            dt = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError) as exc:
            raise MappingError(f"unreadable date/time {text[:40]!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def input_file(value: str | Path, what: str = "file") -> Path:
    """Return the file a one-off import reads, or raise an error that names it."""
    path = Path(value).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give the {what}")
    return path


def snippet(raw: Any, limit: int = 2000) -> str:
    """Return a short text form of a raw payload for the quarantine."""
    text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
    return text[:limit]
