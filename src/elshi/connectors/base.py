"""The connector contract: fetch raw records (I/O) and map each to a post (pure)."""

from __future__ import annotations

import gzip
import json
import re
import reprlib
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ValidationError

from elshi import netguard
from elshi.settings import Settings


class MappingError(ValueError):
    """A record is well-formed but cannot become a post; the message says why."""


class EmptyFile(MappingError):
    """A file to import holds nothing (0 bytes, or only white space); refused as a whole."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(f"file is empty: {path}")
        self.path = str(path)


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


#: What a connector's fetch yields: records read, and records that could not be read.
Records = Iterator[RawRecord | BadRecord]


@dataclass
class FetchContext:
    """What a connector's I/O part may use: settings, an HTTP client, a byte counter."""

    settings: Settings
    http: httpx.Client | None = None
    on_bytes: Callable[[int], None] = lambda n: None
    on_total: Callable[[int | None], None] = lambda n: None

    def client(self) -> httpx.Client:
        """Return a shared HTTP client with elshi's timeout and User-Agent.

        Every request it makes, and every redirect it follows, goes to a public address only
        (or a range the operator allows): see elshi.netguard.
        """
        if self.http is None:
            self.http = netguard.client(
                self.settings, headers={"User-Agent": self.settings.user_agent}
            )
        return self.http

    def close(self) -> None:
        """Close the HTTP client if one was opened."""
        if self.http is not None:
            self.http.close()
            self.http = None


#: Mark a Config field whose value is a credential: `Field(..., json_schema_extra=SECRET)`.
#: Its value is never shown back (API, pages, `elshi sources list`).
SECRET: dict[str, Any] = {"secret": True}
#: Mark a Config field holding an http(s) address the connector fetches from: a scheduled
#: source must have one, and only public addresses are reached (elshi.netguard).
HTTP_ADDRESS: dict[str, Any] = {"address": list(netguard.HTTP)}
#: The same for a ws(s) address (WebSocket streams).
WS_ADDRESS: dict[str, Any] = {"address": list(netguard.WEBSOCKET)}
#: What a secret value is shown as.
REDACTED = "[redacted]"
#: Config keys treated as secret even when a connector does not mark them.
_SECRET_NAMES = re.compile(r"token|secret|password|passwd|api_hash|api_key|apikey|credential", re.I)


def _field_extra(model: type[BaseModel], name: str) -> dict[str, Any]:
    extra = model.model_fields[name].json_schema_extra
    return extra if isinstance(extra, dict) else {}


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

    @classmethod
    def secret_fields(cls) -> frozenset[str]:
        """Return the Config fields marked SECRET."""
        return frozenset(
            n for n in cls.Config.model_fields if _field_extra(cls.Config, n).get("secret")
        )

    @classmethod
    def address_fields(cls) -> dict[str, tuple[str, ...]]:
        """Return the Config fields holding addresses fetched from, with their schemes."""
        out = {}
        for name in cls.Config.model_fields:
            schemes = _field_extra(cls.Config, name).get("address")
            if schemes:
                out[name] = tuple(schemes)
        return out

    @classmethod
    def addresses(cls, config: dict[str, Any]) -> dict[str, tuple[Any, tuple[str, ...]]]:
        """Return each address field's value (as validated, or its default) with its schemes.

        Raises pydantic's ValidationError when the config is not valid.
        """
        parsed = cls.Config.model_validate(config)
        return {
            name: (getattr(parsed, name, None), schemes)
            for name, schemes in cls.address_fields().items()
        }

    @classmethod
    def poll_problem(cls, config: dict[str, Any]) -> str | None:
        """Return why a source of this connector may not be polled on a schedule, or None.

        Scheduled sources fetch from the network; files are imported once by the operator.
        This is checked again before every poll, whatever put the source in the database.
        """
        if not cls.pollable:
            return (
                f"the {cls.slug} connector reads files; a file is imported once with "
                f"`elshi ingest {cls.slug} FILE`, not polled"
            )
        try:
            found = cls.addresses(config)
        except ValidationError as exc:
            return f"bad {cls.slug} config: {exc.errors()[0]['msg']}"
        for name, (value, schemes) in found.items():
            if not isinstance(value, str):
                return f"{name}: an address is required"
            try:
                netguard.parse(value, schemes)
            except netguard.NotAnAddress:
                wanted = " or ".join(f"{s}://" for s in schemes)
                return (
                    f"{name}: {value!r} is not a {wanted} address; a file is imported once "
                    f"with `elshi ingest {cls.slug} FILE`"
                )
            except netguard.Refused as exc:
                return f"{name}: {exc}"
        return None

    @classmethod
    def input_path(cls, config: dict[str, Any]) -> Path | None:
        """Return the local file (or folder) an import reads, or None when it reads the network.

        `elshi ingest` refuses an empty file here, with one message for every connector.
        """
        if cls.pollable:
            return None
        target = config.get(cls.target_field)
        if not isinstance(target, str | Path) or not str(target):
            return None
        return Path(target).expanduser()

    @classmethod
    def redact(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Return a copy of a config with every secret value replaced by REDACTED."""
        return redact(config, cls.secret_fields())

    @abstractmethod
    def fetch(self, config: Any, cursor: dict[str, Any], ctx: FetchContext) -> Records:
        """Read records from the source; update `cursor` in place as progress is made."""

    @abstractmethod
    def to_post(self, raw: RawRecord) -> PostIn | None:
        """Map one raw record to a post, or None if it is not a post (a like, a deletion)."""


class FileConnector(Connector):
    """A connector that imports a file once (`elshi ingest SLUG FILE`): never polled."""

    target_field: ClassVar[str] = "path"
    pollable: ClassVar[bool] = False


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
        try:
            return datetime.fromtimestamp(num, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise MappingError(f"date/time out of range {str(value)[:40]!r}") from exc
    text = str(value).strip()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            dt = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError) as exc:
            raise MappingError(f"unreadable date/time {text[:40]!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except (OverflowError, ValueError) as exc:  # year 1 or 9999 shifted out of range
        raise MappingError(f"date/time out of range {text[:40]!r}") from exc


def input_file(value: str | Path, what: str = "file") -> Path:
    """Return the file a one-off import reads, or raise an error that names it."""
    path = Path(value).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give the {what}")
    return path


#: JSON nested deeper than this is refused while streaming: the parser keeps the path of every
#: open level, so a file of 100,000 opening brackets would otherwise take gigabytes.
MAX_JSON_DEPTH = 1_000
_OPENS = frozenset({"start_map", "start_array"})
_CLOSES = frozenset({"end_map", "end_array"})


class JsonTooDeep(ValueError):
    """A streamed JSON document is nested deeper than MAX_JSON_DEPTH."""


def json_events(fh: Any, **options: Any) -> Iterator[tuple[str, str, Any]]:
    """Stream (prefix, event, value) like ijson.parse, refusing nesting past MAX_JSON_DEPTH."""
    import ijson

    depth = 0
    for prefix, event, value in ijson.parse(fh, **options):
        if event in _OPENS:
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise JsonTooDeep(f"nested more than {MAX_JSON_DEPTH:,} levels deep")
        elif event in _CLOSES:
            depth -= 1
        yield prefix, event, value


def json_items(fh: Any, prefix: str, **options: Any) -> Iterator[Any]:
    """Stream the values at `prefix` like ijson.items, within the same nesting limit."""
    import ijson

    builder: Any = None
    depth = 0
    for where, event, value in ijson.parse(fh, **options):
        if event in _OPENS:
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise JsonTooDeep(f"nested more than {MAX_JSON_DEPTH:,} levels deep")
        elif event in _CLOSES:
            depth -= 1
        if builder is not None:
            builder.event(event, value)
            if where == prefix and event in _CLOSES:
                yield builder.value
                builder = None
        elif where == prefix:
            if event in _OPENS:
                builder = ijson.ObjectBuilder()
                builder.event(event, value)
            else:
                yield value


#: The bytes a file may hold and still be empty: white space and a UTF-8 byte-order mark.
_BLANK = b" \t\r\n\f\v"


def blank_file(path: Path) -> bool:
    """Return True when a file (gzip-compressed or not) holds only white space, or nothing.

    Reads no further than the first byte that is not white space.
    """
    with path.open("rb") as fh:
        compressed = fh.read(2) == b"\x1f\x8b"
    try:
        with gzip.open(path, "rb") if compressed else path.open("rb") as fh:
            first = True
            while chunk := fh.read(65536):
                if first:
                    chunk = chunk.removeprefix(b"\xef\xbb\xbf")
                    first = False
                if chunk.strip(_BLANK):
                    return False
    except (OSError, EOFError, zlib.error):
        return False  # damaged: the connector says where
    return True


def refuse_empty(path: Path) -> None:
    """Raise EmptyFile for a file that holds nothing; folders and missing files pass."""
    if path.is_file() and blank_file(path):
        raise EmptyFile(path)


def storable(value: str) -> str:
    """Return text any database can store: lone surrogates and NUL shown as escapes."""
    if "\x00" in value:
        value = value.replace("\x00", "\\x00")
    if value.isascii():
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def snippet(raw: Any, limit: int = 2000) -> str:
    """Return a short text form of a raw payload for the quarantine, safe to store.

    A payload nested too deeply to serialise is shown abridged rather than refused.
    """
    if isinstance(raw, str):
        text = raw
    else:
        try:
            text = json.dumps(raw, ensure_ascii=False, default=str)
        except (RecursionError, ValueError, TypeError):
            short = reprlib.Repr()
            short.maxlevel, short.maxstring, short.maxother = 8, 200, 200
            text = short.repr(raw)
    return storable(text[:limit])


def redact(config: dict[str, Any], secret: Iterable[str] = ()) -> dict[str, Any]:
    """Return a copy of a config with secret values (marked, or named like one) redacted."""
    marked = set(secret)
    return {
        key: REDACTED
        if value not in (None, "") and (key in marked or _SECRET_NAMES.search(key))
        else value
        for key, value in config.items()
    }


def redact_source_config(slug: str, config: dict[str, Any] | None) -> dict[str, Any]:
    """Return a source's config as it may be shown: secrets of its connector redacted."""
    from elshi.plugins import UnknownPlugin, get_connector

    try:
        secret = get_connector(slug).secret_fields()
    except UnknownPlugin:
        secret = frozenset()
    return redact(dict(config or {}), secret)
