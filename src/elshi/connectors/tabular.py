"""Tabular imports: CSV, JSON and NDJSON files (optionally gzip) mapped to posts by profiles.

A *profile* is plain data (a dict, or a TOML/JSON file given with ``--profile FILE``) that
says which source column or JSON path fills which post field::

    name = "my-export"
    platform = "telegram"
    required = ["msg_id", "body"]        # optional; default: the id and text columns
    [fields]
    external_id = "msg_id"
    text = ["body", "caption"]           # a list: the first non-empty one
    author_handle = "user.username"      # a dotted path into nested JSON (or a column so named)
    published_at = { column = "date", format = "%d.%m.%Y %H:%M", tz = "Europe/Moscow" }
    lang = "language"                    # names ("Russian") and codes ("ru") both become codes
    "metrics.likes" = "likes"            # numbers
    reply_to = { column = "refs", where = { type = "replied_to" }, take = "id" }
    url = { template = "https://example.org/{user.username}/{msg_id}" }
    [extra]
    region = "region"

A field spec is a column name, a list of specs (first non-empty wins) or a table with one of
``column``, ``hash`` (a stable id from several columns), ``template`` or ``const``, and
optionally ``format``/``tz`` (times), ``where``/``take`` (pick from a list of objects),
``transform`` (int, float, bool, lower, upper, html, lang) and ``default``.

Built-in profiles: ``generic``, ``twitter-v2``, ``crowdtangle``, ``mediacloud`` and ``ira``,
one TOML file each in profiles/ (loaded at import into PROFILES). Files are read as a stream:
memory stays bounded whatever the file size.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import html
import io
import json
import re
import tomllib
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, ValidationError, field_validator

from elshi.connectors.base import (
    BadRecord,
    Connector,
    FetchContext,
    MappingError,
    PostIn,
    RawRecord,
    parse_time,
    snippet,
)
from elshi.plugins import hookimpl

GZIP_MAGIC = b"\x1f\x8b"
SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson")
#: Bytes inspected to tell the format, encoding and CSV delimiter of a file.
SAMPLE_BYTES = 64 * 1024
POST_FIELDS = (
    "external_id",
    "text",
    "author_handle",
    "author_name",
    "published_at",
    "url",
    "lang",
    "title",
    "metrics",
    "reply_to",
    "repost_of",
)
DEFAULT_NULLS = ("", "NA", "N/A", "NULL", "null", "None", "nan", "NaN")


class MissingColumn(MappingError):
    """A file lacks a column its profile requires; nothing of it is imported."""


class ProfileError(ValueError):
    """A profile is not valid or cannot be found; the message says why."""


# ---------------------------------------------------------------------------- profiles


class Join(BaseModel):
    """A small lookup table (e.g. authors.csv) merged into each record by a key column."""

    path: str = Field(description="CSV file, relative to the imported file's folder.")
    on: str = Field(description="Key column, present in both files.")
    columns: list[str] = Field(description="Columns of the lookup file to add to each record.")
    optional: bool = Field(default=True, description="Go on without it when the file is absent.")


class Profile(BaseModel):
    """A column-mapping profile: where each post field comes from in a file's records."""

    model_config = {"extra": "forbid"}

    name: str = "custom"
    description: str = ""
    platform: str = "generic"
    format: Literal["csv", "json", "ndjson"] | None = None
    delimiter: str | None = None
    encoding: str | None = None
    records: str | None = Field(
        default=None,
        description="JSON: dotted path of the array of records inside a top-level object; "
        "'' means the whole document is one record. Default: the first array of objects.",
    )
    expand: Literal["twitter-v2"] | None = Field(
        default=None, description="Built-in expansion of container records (API pages)."
    )
    fields: dict[str, Any]
    extra: dict[str, Any] | list[str] = Field(default_factory=dict)
    required: list[str | list[str]] | None = None
    skip_when: list[str] = Field(
        default_factory=list, description="Skip (not quarantine) records where any is set."
    )
    null_values: list[str] = Field(default_factory=lambda: list(DEFAULT_NULLS))
    join: Join | None = None

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            base = key.split(".", 1)[0]
            if base not in POST_FIELDS:
                raise ValueError(f"unknown post field {key!r}; known: {', '.join(POST_FIELDS)}")
        if "external_id" not in value:
            raise ValueError("fields.external_id is required")
        return value

    def required_columns(self) -> list[list[str]]:
        """Return the columns a CSV header must have: each inner list is a set of alternatives."""
        if self.required is not None:
            return [[r] if isinstance(r, str) else list(r) for r in self.required]
        out = []
        for name in ("external_id", "text"):
            cols = _spec_columns(self.fields.get(name))
            if cols:
                out.append(cols)
        return out


def _spec_columns(spec: Any) -> list[str]:
    if spec is None:
        return []
    if isinstance(spec, str):
        return [spec]
    if isinstance(spec, list):
        return [c for s in spec for c in _spec_columns(s)]
    if isinstance(spec, dict):
        if "column" in spec:
            return [spec["column"]]
        if "columns" in spec:
            return list(spec["columns"])
        if "hash" in spec:
            return list(spec["hash"])
    return []


#: The built-in profiles, in the order they are listed: one file each in profiles/, written
#: like the files users give with ``--profile FILE``.
BUILT_IN = ("generic", "twitter-v2", "crowdtangle", "mediacloud", "ira")
PROFILE_DIR = Path(__file__).parent / "profiles"


def _read_builtin_profiles() -> dict[str, dict[str, Any]]:
    out = {}
    for name in BUILT_IN:
        with (PROFILE_DIR / f"{name}.toml").open("rb") as f:
            out[name] = tomllib.load(f)
    return out


#: Built-in profiles by name. Plain data, like the files users write.
PROFILES: dict[str, dict[str, Any]] = _read_builtin_profiles()


def load_profile(
    value: str | Mapping[str, Any] | Profile, *, platform: str | None = None
) -> Profile:
    """Return a profile from a built-in name, a TOML/JSON file path or a dict."""
    if isinstance(value, Profile):
        profile = value
    elif isinstance(value, Mapping):
        profile = _validate(dict(value), "profile")
    elif value in PROFILES:
        profile = _builtin(value)
    else:
        path = Path(value)
        if not path.is_file():
            known = ", ".join(PROFILES)
            raise ProfileError(f"no profile {value!r}: not a built-in ({known}) nor a file")
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(path.read_text(encoding="utf-8-sig"))
            else:
                data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProfileError(f"profile {path}: {exc}") from None
        data.setdefault("name", path.stem)
        profile = _validate(data, str(path))
    custom = isinstance(value, Mapping) or (isinstance(value, str) and value not in PROFILES)
    if custom and profile.name.partition("@")[0] in PROFILES:
        raise ProfileError(f"profile name {profile.name!r} is a built-in's; choose another")
    if platform:
        profile = profile.model_copy(
            update={"platform": platform, "name": f"{profile.name.partition('@')[0]}@{platform}"}
        )
    _LOADED[profile.name] = CompiledProfile(profile)
    return profile


def _validate(data: dict[str, Any], where: str) -> Profile:
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'profile'}: {e['msg']}" for e in exc.errors()
        )
        raise ProfileError(f"bad profile {where}: {problems}") from None
    CompiledProfile(profile)  # fail now on a bad spec, not on the first record
    return profile


@cache
def _builtin(name: str) -> Profile:
    return _validate(PROFILES[name], name)


#: Profiles loaded in this process, compiled, by name: a record's kind names its profile.
_LOADED: dict[str, CompiledProfile] = {}


def resolve_profile(name: str) -> CompiledProfile:
    """Return the compiled profile a record was read with: built-in, derived or loaded."""
    found = _LOADED.get(name)
    if found is not None:
        return found
    base, _, platform = name.partition("@")
    if base in PROFILES:
        load_profile(base, platform=platform or None)
        return _LOADED[name]
    raise MappingError(f"profile {name!r} is not loaded (load its file again to reprocess)")


# ---------------------------------------------------------------------------- mapping

Getter = Callable[[Mapping[str, Any]], Any]


def _path_getter(path: str, nulls: frozenset[str]) -> Getter:
    parts = path.split(".")
    nested = len(parts) > 1

    def walk(record: Mapping[str, Any]) -> Any:
        value: Any = record
        for part in parts:
            if isinstance(value, Mapping):
                value = value.get(part)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return None
            if value is None:
                return None
        return value

    def get(record: Mapping[str, Any]) -> Any:
        # A column literally named "a.b" (CSV exports of nested data) wins over the path.
        value = record.get(path)
        if value is None:
            if not nested or path in record:
                return None
            value = walk(record)
            if value is None:
                return None
        if value.__class__ is str:
            value = value.strip()
            if value in nulls:
                return None
        return value

    return get


_TEMPLATE_FIELD = re.compile(r"\{([^{}]+)\}")


def _template_getter(template: str, nulls: frozenset[str]) -> Getter:
    names = _TEMPLATE_FIELD.findall(template)
    getters = {n: _path_getter(n, nulls) for n in names}

    def get(record: Mapping[str, Any]) -> Any:
        out = template
        for name, g in getters.items():
            value = g(record)
            if value is None:
                return None
            out = out.replace("{" + name + "}", str(value))
        return out

    return get


def _hash_getter(columns: list[str], prefix: str, nulls: frozenset[str]) -> Getter:
    getters = [_path_getter(c, nulls) for c in columns]

    def get(record: Mapping[str, Any]) -> Any:
        values = [g(record) for g in getters]
        if all(v is None for v in values):
            return None
        joined = "\x1f".join("" if v is None else str(v) for v in values)
        return prefix + hashlib.blake2b(joined.encode("utf-8"), digest_size=12).hexdigest()

    return get


def _where_getter(inner: Getter, where: dict[str, Any], take: str | None) -> Getter:
    def get(record: Mapping[str, Any]) -> Any:
        items = inner(record)
        if not isinstance(items, list):
            return None
        for item in items:
            if isinstance(item, Mapping) and all(item.get(k) == v for k, v in where.items()):
                return item.get(take) if take else item
        return None

    return get


_TRUE = {"true", "t", "yes", "y", "1", "да", "иә"}
_FALSE = {"false", "f", "no", "n", "0", "нет", "жоқ"}


def _to_int(value: Any) -> int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    text = str(value).strip().replace(",", "").replace("\u00a0", "").replace(" ", "")
    try:
        return int(text)
    except ValueError:
        try:
            num = float(text)
        except ValueError:
            raise MappingError(f"not a number: {str(value)[:40]!r}") from None
        return int(num) if num.is_integer() else num


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MappingError(f"not a number: {str(value)[:40]!r}") from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise MappingError(f"not a yes/no value: {str(value)[:40]!r}")


TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "lower": lambda v: str(v).lower(),
    "upper": lambda v: str(v).upper(),
    "html": lambda v: html.unescape(str(v)),
    "str": str,
}


def _compile(spec: Any, nulls: frozenset[str], where: str) -> Getter:
    if isinstance(spec, str):
        return _path_getter(spec, nulls)
    if isinstance(spec, list):
        if not spec:
            raise ProfileError(f"{where}: empty list")
        options = [_compile(s, nulls, where) for s in spec]

        def first(record: Mapping[str, Any]) -> Any:
            for g in options:
                value = g(record)
                if value is not None:
                    return value
            return None

        return first
    if not isinstance(spec, dict):
        raise ProfileError(f"{where}: expected a column name, a list or a table, got {spec!r}")
    known = {
        "column",
        "columns",
        "hash",
        "prefix",
        "template",
        "const",
        "format",
        "tz",
        "transform",
        "default",
        "where",
        "take",
    }
    unknown = set(spec) - known
    if unknown:
        raise ProfileError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    base: Getter
    if "column" in spec or "columns" in spec:
        base = _compile(spec.get("column", spec.get("columns")), nulls, where)
    elif "hash" in spec:
        base = _hash_getter(list(spec["hash"]), str(spec.get("prefix", "")), nulls)
    elif "template" in spec:
        base = _template_getter(str(spec["template"]), nulls)
    elif "const" in spec:
        const = spec["const"]

        def base(record: Mapping[str, Any]) -> Any:
            return const
    else:
        raise ProfileError(f"{where}: needs one of column, columns, hash, template, const")
    if "where" in spec:
        base = _where_getter(base, dict(spec["where"]), spec.get("take"))
    steps: list[Callable[[Any], Any]] = []
    if "format" in spec or "tz" in spec:
        steps.append(_time_parser(spec.get("format"), spec.get("tz"), where))
    if "transform" in spec:
        name = spec["transform"]
        if name == "lang":
            steps.append(lang_code)
        elif name in TRANSFORMS:
            steps.append(TRANSFORMS[name])
        else:
            raise ProfileError(
                f"{where}: unknown transform {name!r}; known: lang, " + ", ".join(TRANSFORMS)
            )
    default = spec.get("default")
    if not steps and default is None:
        return base

    def get(record: Mapping[str, Any]) -> Any:
        value = base(record)
        if value is None:
            return default
        for step in steps:
            value = step(value)
        return value

    return get


def _time_parser(fmt: str | None, tz: str | None, where: str) -> Callable[[Any], datetime | None]:
    try:
        zone = ZoneInfo(tz) if tz and tz.upper() != "UTC" else UTC
    except (ZoneInfoNotFoundError, ValueError):
        raise ProfileError(f"{where}: unknown time zone {tz!r}") from None

    def parse(value: Any) -> datetime | None:
        dt: datetime | None
        if isinstance(value, datetime):
            dt = value
        elif fmt:
            try:
                dt = datetime.strptime(str(value).strip(), fmt)
            except ValueError:
                raise MappingError(
                    f"unreadable date/time {str(value)[:40]!r} (expected {fmt})"
                ) from None
        else:
            dt = parse_time(value) if zone is UTC else _naive(value)
        if dt is None:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=zone)
        return dt.astimezone(UTC)

    return parse


def _naive(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).strip())
    except ValueError:
        return parse_time(value)


def _as_text(value: Any) -> str:
    if isinstance(value, dict | list):
        raise MappingError(f"expected text, got a JSON {type(value).__name__}")
    return str(value)


def _as_metrics(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise MappingError(f"not an object: {str(value)[:40]!r}")
    return dict(value)


class CompiledProfile:
    """A profile turned into getters, ready to map many records fast."""

    def __init__(self, profile: Profile) -> None:
        nulls = frozenset(profile.null_values)
        self.profile = profile
        self.platform = profile.platform
        self.metrics: list[tuple[str, Getter]] = []
        # (field, getter, converter or None when the value is used as it comes)
        self.fields: list[tuple[str, Getter, Callable[[Any], Any] | None]] = []
        time = _time_parser(None, None, "fields.published_at")
        for key, spec in profile.fields.items():
            getter = _compile(spec, nulls, f"fields.{key}")
            if key.startswith("metrics."):
                self.metrics.append((key.removeprefix("metrics."), getter))
            elif key == "published_at":
                self.fields.append((key, getter, time))
            elif key == "lang":
                self.fields.append((key, getter, lang_code))
            elif key == "metrics":
                self.fields.append((key, getter, _as_metrics))
            else:
                self.fields.append((key, getter, None))
        extra = profile.extra
        if isinstance(extra, list):
            extra = {c: c for c in extra}
        self.extra = [(k, _compile(v, nulls, f"extra.{k}")) for k, v in extra.items()]
        self.skip = [_path_getter(c, nulls) for c in profile.skip_when]
        self.id_columns = ", ".join(_spec_columns(profile.fields["external_id"])) or "?"

    def to_post(self, record: Any) -> PostIn | None:
        """Map one record (a row dict or a JSON object) to a post; None when it is to be skipped."""
        if not isinstance(record, Mapping):
            raise MappingError(f"not an object: a JSON {type(record).__name__}")
        for g in self.skip:
            if g(record) is not None:
                return None
        values: dict[str, Any] = {}
        name = ""
        try:
            for name, getter, convert in self.fields:
                value = getter(record)
                if value is None:
                    continue
                if convert is not None:
                    value = convert(value)
                elif value.__class__ is not str:
                    value = _as_text(value)
                values[name] = value
            metrics = values.pop("metrics", None) or {}
            for key, getter in self.metrics:
                name = f"metrics.{key}"
                value = getter(record)
                if value is not None:
                    metrics[key] = _to_int(value)
            extra: dict[str, Any] = {}
            for key, getter in self.extra:
                name = f"extra.{key}"
                value = getter(record)
                if value is not None:
                    extra[key] = value
        except MappingError as exc:
            raise MappingError(f"{name}: {exc}") from None
        if not values.get("external_id"):
            raise MappingError(f"missing required field: external id ({self.id_columns})")
        return PostIn(platform=self.platform, metrics=metrics, extra=extra, **values)


# ---------------------------------------------------------------------------- languages

_LANG_ALIASES = {
    "farsi": "fa",
    "pushto": "ps",
    "kirghiz": "ky",
    "kyrgyz": "ky",
    "filipino": "tl",
    "tagalog": "tl",
    "in": "id",
    "iw": "he",
    "ji": "yi",
    "jw": "jv",
    "kz": "kk",
    "қазақша": "kk",
    "қазақ тілі": "kk",
    "казахский": "kk",
    "русский": "ru",
    "орыс тілі": "ru",
    "english": "en",
    "ағылшын тілі": "en",
    "английский": "en",
    "chinese (simplified)": "zh",
    "chinese (traditional)": "zh",
}
#: Platform codes meaning "no language": undetermined, no linguistic content, Twitter's q-codes.
_NO_LANG = {"und", "zxx", "mul", "language undefined", "undefined", "unknown", "xx"}


@cache
def _language_names() -> dict[str, str]:
    from babel import Locale

    names: dict[str, str] = {}
    for loc in ("kk", "ru", "en"):  # later wins: English names take precedence
        for code, name in Locale.parse(loc).languages.items():
            code, name = str(code), str(name)
            if "_" in code:
                continue
            key = name.casefold()
            if key not in names or len(code) <= len(names[key]):
                names[key] = code
    codes = {str(code) for code in Locale.parse("en").languages if "_" not in str(code)}
    names.update({c: c for c in codes})
    names.update(_LANG_ALIASES)
    return names


def lang_code(value: Any) -> str | None:
    """Return a language code for a code or a name ('Russian', 'ru', 'en-GB', 'казахский')."""
    return _lang_code(value if isinstance(value, str) else str(value))


@cache
def _lang_code(text: str) -> str | None:
    key = text.strip().casefold().replace("_", "-")
    if not key or key in _NO_LANG or (len(key) == 3 and key.startswith("q")):
        return None
    names = _language_names()
    if key in names:
        return names[key]
    primary = key.split("-")[0]
    if 2 <= len(primary) <= 3 and primary in names:
        return names[primary]
    match = re.match(r"^(.*?)\s*\((.*)\)\s*$", key)
    if match:
        for part in match.groups():
            if part.strip() in names:
                return names[part.strip()]
    return None


# ---------------------------------------------------------------------------- twitter pages


def _tweet_page_kind(items: list[Any]) -> str | None:
    """Return what a page's data items are when they are not tweets."""
    first = next((i for i in items if isinstance(i, Mapping)), None)
    if first is None:
        return "empty data"
    if "text" in first and "id" in first:
        return None
    if "username" in first:
        return f"{len(items)} user objects"
    if "tweet_count" in first:
        return f"{len(items)} tweet-count buckets"
    if "member_count" in first or "owner_id" in first:
        return f"{len(items)} list objects"
    return f"{len(items)} objects without text"


def expand_twitter_v2(payload: Any, location: str) -> Iterator[tuple[Any, str] | BadRecord]:
    """Split a twarc2 page into one flattened tweet per `data` item, author from includes."""
    if not isinstance(payload, Mapping):
        yield BadRecord(
            location, f"not a tweet page: a JSON {type(payload).__name__}", snippet(payload)
        )
        return
    if "data" not in payload:
        if "errors" in payload and "text" not in payload:
            detail = "; ".join(
                str(e.get("detail") or e.get("title") or e)
                for e in payload["errors"][:3]
                if isinstance(e, Mapping)
            )
            yield BadRecord(
                location, f"API error page, no tweets: {detail}"[:500], snippet(payload)
            )
            return
        # A flattened tweet (author embedded) or a compliance event: map it as it is.
        yield payload, location
        return
    data = payload["data"]
    items = data if isinstance(data, list) else [data]
    kind = _tweet_page_kind(items)
    if kind is not None:
        yield BadRecord(
            location,
            f"not tweets: the page holds {kind} (the twitter-v2 profile imports tweets)",
            snippet(payload, 500),
        )
        return
    includes = payload.get("includes") or {}
    users = {u.get("id"): u for u in includes.get("users") or [] if isinstance(u, Mapping)}
    extra = {k: payload[k] for k in ("matching_rules",) if k in payload}
    many = len(items) > 1 or isinstance(data, list)
    for n, tweet in enumerate(items, 1):
        where = f"{location} item {n}" if many else location
        if not isinstance(tweet, Mapping):
            yield BadRecord(where, f"not a tweet: a JSON {type(tweet).__name__}", snippet(tweet))
            continue
        flat = dict(tweet)
        author = users.get(tweet.get("author_id"))
        if author is not None and "author" not in flat:
            flat["author"] = author
        flat.update(extra)
        yield flat, where


EXPANDERS: dict[str, Callable[[Any, str], Iterator[tuple[Any, str] | BadRecord]]] = {
    "twitter-v2": expand_twitter_v2,
}


# ---------------------------------------------------------------------------- reading


class _Counting(io.RawIOBase):
    """A raw file that reports every chunk it reads (for progress)."""

    def __init__(self, raw: BinaryIO, on_bytes: Callable[[int], None]) -> None:
        self.raw = raw
        self.on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.on_bytes(n)
        return n or 0

    def close(self) -> None:
        self.raw.close()
        super().close()


class _Gunzip(io.RawIOBase):
    """Streamed gzip decompression that hands out every byte before reporting a cut file.

    (gzip.GzipFile drops the data of a read that runs into a truncated end.)
    """

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self._dec = zlib.decompressobj(31)
        self._pending = b""
        self._fed = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = len(buffer)
        while True:
            if self._pending:
                chunk, self._pending = self._pending, b""
            else:
                chunk = self.raw.read(1 << 16)
                if not chunk:
                    if self._dec.eof or not self._fed:
                        return 0
                    raise EOFError("compressed file ended before the end-of-stream marker")
            self._fed = True
            data = self._dec.decompress(chunk, size)
            self._pending = self._dec.unconsumed_tail
            if self._dec.eof:
                rest = self._dec.unused_data
                if rest.strip(b"\x00"):  # another gzip member follows
                    self._dec = zlib.decompressobj(31)
                    self._pending = rest
                    self._fed = False
            if data:
                buffer[: len(data)] = data
                return len(data)


class _Source:
    """An opened file: decompressed binary stream, encoding, and a sample of its start."""

    def __init__(self, path: Path, ctx: FetchContext, max_line: int) -> None:
        self.path = path
        self.max_line = max_line
        self._file = path.open("rb", buffering=0)
        with path.open("rb") as probe:
            self.gzip = probe.read(2) == GZIP_MAGIC
        counting = io.BufferedReader(_Counting(self._file, ctx.on_bytes), 1 << 20)
        self.stream: io.BufferedReader[Any] = (
            io.BufferedReader(_Gunzip(counting), 1 << 20) if self.gzip else counting
        )
        try:
            self.sample = self.stream.peek(SAMPLE_BYTES)[:SAMPLE_BYTES]
        except (OSError, EOFError, zlib.error) as exc:
            self.close()
            raise MappingError(f"{path}: cannot read: {exc}") from None
        self.bom = b""
        for bom in (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            if self.sample.startswith(bom):
                self.bom = bom
        if self.bom:
            self.stream.read(len(self.bom))
            self.sample = self.sample[len(self.bom) :]

    def close(self) -> None:
        self.stream.close()
        self._file.close()

    def lines(self) -> Iterator[tuple[int, bytes | None]]:
        """Yield (line number, bytes); None for a line longer than the limit (skipped)."""
        readline = self.stream.readline
        limit = self.max_line
        n = 0
        while True:
            line = readline(limit)
            if not line:
                return
            n += 1
            if len(line) >= limit and not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):
                    line = readline(limit)
                yield n, None
                continue
            yield n, line


def detect_encoding(sample: bytes, bom: bytes = b"") -> str:
    """Return the encoding of a file's first bytes: UTF-8 unless most non-ASCII lines are not."""
    if bom == codecs.BOM_UTF8:
        return "utf-8"
    if bom:
        return "utf-16"
    good = bad = 0
    lines = sample.split(b"\n")
    if len(sample) >= SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut mid-character
    for line in lines:
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
            good += 1
        except UnicodeDecodeError:
            bad += 1
    if bad <= good:
        return "utf-8"
    from charset_normalizer import from_bytes

    best = from_bytes(b"\n".join(lines)).best()
    if best is None:
        raise MappingError(
            "not UTF-8 and the encoding cannot be told; pass -o encoding=NAME (e.g. cp1251)"
        )
    return str(best.encoding)


def detect_format(path: Path, sample: bytes) -> str:
    """Return csv, json or ndjson from a file's name and first bytes."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson")):
        return "ndjson"
    head = sample.lstrip()
    if head[:1] == b"[":
        return "json"
    if head[:1] == b"{":
        first, _, rest = head.partition(b"\n")
        try:
            json.loads(first)
        except ValueError:
            return "json"  # a pretty-printed object spans lines
        return "ndjson" if rest.strip() or not name.endswith(".json") else "json"
    return "csv"


def _files(target: Path) -> list[Path]:
    if target.is_dir():
        return sorted(
            p
            for p in target.rglob("*")
            if p.is_file()
            and not p.name.startswith(".")
            and p.name.lower().removesuffix(".gz").endswith(SUFFIXES)
        )
    if not target.exists():
        raise FileNotFoundError(f"no such file or folder: {target}")
    return [target]


class TabularConfig(BaseModel):
    """What to import and how to read it."""

    path: str = Field(description="A CSV/JSON/NDJSON file (optionally .gz) or a folder of them.")
    profile: str | dict[str, Any] = Field(
        default="generic",
        description="Built-in profile name (generic, twitter-v2, crowdtangle, mediacloud, ira), "
        "a TOML/JSON profile file, or a profile dict.",
    )
    platform: str | None = Field(default=None, description="Platform to store posts under.")
    format: Literal["auto", "csv", "json", "ndjson"] = Field(
        default="auto", description="File format; auto tells it from the name and content."
    )
    delimiter: str | None = Field(default=None, description="CSV delimiter; default: sniffed.")
    encoding: str | None = Field(default=None, description="Text encoding; default: detected.")
    records: str | None = Field(
        default=None, description="JSON: dotted path of the records array inside an object."
    )
    max_line_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Longer lines are quarantined unread."
    )


class TabularConnector(Connector):
    """Import CSV, JSON or NDJSON exports mapped by a column-mapping profile."""

    slug: ClassVar[str] = "tabular"
    title: ClassVar[str] = "CSV / JSON / NDJSON file (column-mapping profiles)"
    platform: ClassVar[str] = "generic"
    Config: ClassVar[type[BaseModel]] = TabularConfig
    target_field: ClassVar[str] = "path"
    pollable: ClassVar[bool] = False
    _kind: str = ""
    _profile: CompiledProfile

    def fetch(
        self, config: Any, cursor: dict[str, Any], ctx: FetchContext
    ) -> Iterator[RawRecord | BadRecord]:
        """Stream every record of the file (or folder) with its line or item number."""
        profile = load_profile(config.profile, platform=config.platform)
        target = Path(config.path)
        files = _files(target)
        ctx.on_total(sum(p.stat().st_size for p in files))
        many = target.is_dir()
        for done, path in enumerate(files, 1):
            label = str(path.relative_to(target)) if many else ""
            try:
                yield from self._read_file(path, label, profile, config, ctx)
            except MappingError as exc:
                if not many:
                    raise
                # In a folder, a file of another layout is set aside; the others go on.
                yield BadRecord(f"{label}: line 1", f"file skipped: {exc}")
            cursor["files"] = done
        cursor["bytes"] = sum(p.stat().st_size for p in files)

    def _read_file(
        self, path: Path, label: str, profile: Profile, config: TabularConfig, ctx: FetchContext
    ) -> Iterator[RawRecord | BadRecord]:
        src = _Source(path, ctx, config.max_line_bytes)
        try:
            fmt: str = (
                config.format if config.format != "auto" else profile.format
            ) or detect_format(path, src.sample)
            encoding = config.encoding or profile.encoding
            if encoding is None:
                try:
                    encoding = detect_encoding(src.sample, src.bom)
                except MappingError as exc:
                    raise MappingError(f"{path}: {exc}") from None
            join = _load_join(path, profile.join, profile)
            if fmt == "csv":
                records = _csv_records(
                    src, encoding, config.delimiter or profile.delimiter, profile
                )
            elif fmt == "ndjson":
                records = _ndjson_records(src, encoding)
            else:
                records = _json_records(
                    src, config.records if config.records is not None else profile.records
                )
            expand = EXPANDERS.get(profile.expand or "")
            join_on = profile.join.on if profile.join else ""
            origin = str(path)
            prefix = f"{label}: " if label else ""
            for item in records:
                if isinstance(item, BadRecord):
                    item.location = prefix + item.location
                    yield item
                    continue
                payload, location = item
                parts: Iterable[tuple[Any, str] | BadRecord] = (
                    expand(payload, location) if expand else ((payload, location),)
                )
                for part in parts:
                    if isinstance(part, BadRecord):
                        part.location = prefix + part.location
                        yield part
                        continue
                    data, where = part
                    if join is not None and isinstance(data, dict):
                        extra = join.get(str(data.get(join_on, "")))
                        if extra:
                            for k, v in extra.items():
                                data.setdefault(k, v)
                    yield RawRecord(
                        payload=data, location=prefix + where, origin=origin, kind=profile.name
                    )
        finally:
            src.close()

    def to_post(self, raw: RawRecord) -> PostIn | None:
        """Map a record with the profile it was read with (its kind)."""
        kind = raw.kind or "generic"
        if kind != self._kind:
            self._profile, self._kind = resolve_profile(kind), kind
        return self._profile.to_post(raw.payload)


def _load_join(path: Path, join: Join | None, profile: Profile) -> dict[str, dict[str, str]] | None:
    if join is None:
        return None
    table = (path.parent / join.path).resolve()
    if not table.is_file():
        if join.optional:
            return None
        raise MappingError(f"{path}: lookup file {table} of profile {profile.name} not found")
    out: dict[str, dict[str, str]] = {}
    with table.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            key = row.get(join.on)
            if key:
                out[key] = {c: row[c] for c in join.columns if row.get(c)}
    return out


def _decoded(src: _Source, encoding: str, bad: dict[int, tuple[str, str | None]]) -> Iterator[str]:
    """Decode lines one by one; a line that does not decode is noted in `bad` and blanked."""
    for n, line in src.lines():
        if line is None:
            bad[n] = (f"line longer than {src.max_line:,} bytes", None)
            yield "\n"
            continue
        try:
            yield line.decode(encoding)
        except UnicodeDecodeError as exc:
            bad[n] = (
                f"not valid {encoding} text (byte 0x{line[exc.start]:02x} at column "
                f"{exc.start + 1})",
                line[:2000].decode(encoding, "replace"),
            )
            yield "\n"


def _sniff_delimiter(sample: str, path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".tsv"):
        return "\t"
    text = sample[: sample.rfind("\n")] if "\n" in sample else sample
    try:
        return csv.Sniffer().sniff(text, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _csv_records(
    src: _Source, encoding: str, delimiter: str | None, profile: Profile
) -> Iterator[tuple[dict[str, str], str] | BadRecord]:
    if encoding.lower().replace("_", "-") in ("utf-16", "utf-16-le", "utf-16-be"):
        raise MappingError(f"{src.path}: UTF-16 CSV is not supported; convert it to UTF-8")
    if delimiter is None:
        delimiter = _sniff_delimiter(src.sample.decode(encoding, "replace"), src.path)
    bad: dict[int, tuple[str, str | None]] = {}
    reader = csv.reader(_decoded(src, encoding, bad), delimiter=delimiter)
    header: list[str] | None = None
    last = 0
    while True:
        start = last + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            last = reader.line_num
            yield BadRecord(f"line {start}", f"unreadable CSV: {exc}")
            continue
        except (OSError, EOFError, zlib.error) as exc:
            yield BadRecord(f"line {start}", f"file is damaged, the rest cannot be read: {exc}")
            return
        last = reader.line_num
        problems = [bad.pop(n) for n in range(start, last + 1) if n in bad]
        if header is None:
            if problems:
                raise MappingError(f"{src.path}: header line: {problems[0][0]}")
            if not row:
                continue
            header = [h.strip() for h in row]
            _check_header(header, profile, src.path)
            width = len(header)
            continue
        if problems:
            yield BadRecord(f"line {start}", *problems[0])
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != width:
            yield BadRecord(
                f"line {start}",
                f"wrong number of fields: {len(row)} where the header has {width}",
                delimiter.join(row)[:2000],
            )
            continue
        yield dict(zip(header, row, strict=True)), f"line {start}"


def _check_header(header: list[str], profile: Profile, path: Path) -> None:
    present = set(header)
    tops = {h.split(".")[0] for h in header}
    for options in profile.required_columns():
        if not any(o in present or o.split(".")[0] in tops for o in options):
            wanted = " or ".join(repr(o) for o in options)
            raise MissingColumn(
                f"{path}: no column {wanted}, which the {profile.name} profile needs; "
                f"the header has: {', '.join(header[:30])}"
            )


def _ndjson_records(src: _Source, encoding: str) -> Iterator[tuple[Any, str] | BadRecord]:
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8", "ascii")
    loads = json.loads
    try:
        for n, line in src.lines():
            if line is None:
                yield BadRecord(f"line {n}", f"line longer than {src.max_line:,} bytes")
                continue
            if not line.strip():
                continue
            try:
                yield loads(line if utf8 else line.decode(encoding)), f"line {n}"
            except UnicodeDecodeError as exc:
                yield BadRecord(
                    f"line {n}",
                    f"not valid {encoding} text: {exc.reason}",
                    line[:2000].decode("utf-8", "replace"),
                )
            except ValueError as exc:
                yield BadRecord(
                    f"line {n}", f"bad JSON: {exc}", line[:2000].decode("utf-8", "replace")
                )
    except (OSError, EOFError, zlib.error) as exc:
        yield BadRecord("end of file", f"file is damaged, the rest cannot be read: {exc}")


def _records_prefix(src: _Source) -> str | None:
    """Return the ijson prefix of the first array of objects in the document."""
    import ijson

    head = src.sample.lstrip()
    if head[:1] == b"[":
        return "item"
    # Scan events only as far as the first array of objects; a second pass then streams it.
    with src.path.open("rb") as fh:
        stream: BinaryIO = io.BufferedReader(_Gunzip(fh)) if src.gzip else fh
        if src.bom:
            stream.read(len(src.bom))
        pending: str | None = None
        for prefix, event, _ in ijson.parse(stream):
            if pending is not None:
                if event == "start_map":
                    return pending + ".item" if pending else "item"
                pending = None
            if event == "start_array":
                pending = prefix
    return None


def _json_records(src: _Source, records: str | None) -> Iterator[tuple[Any, str] | BadRecord]:
    import ijson

    if not src.sample.strip():
        return
    if records == "" and src.sample.lstrip()[:1] == b"[":
        records = None
    if records == "":
        try:
            yield json.load(src.stream), "item 1"
        except ValueError as exc:
            yield BadRecord("item 1", f"bad JSON: {exc}")
        return
    try:
        prefix = (records + ".item") if records else _records_prefix(src)
    except (ijson.JSONError, ValueError, OSError, EOFError, zlib.error):
        prefix = "item"  # unreadable before any array: let the streaming pass report where
    if prefix is None:
        try:
            yield json.load(src.stream), "item 1"
        except ValueError as exc:
            yield BadRecord("item 1", f"bad JSON: {exc}")
        return
    n = 0
    try:
        for n, item in enumerate(ijson.items(src.stream, prefix, use_float=True), 1):
            yield item, f"item {n}"
    except (ijson.JSONError, ValueError) as exc:
        yield BadRecord(
            f"item {n + 1}", f"bad JSON after item {n}, the rest of the file cannot be read: {exc}"
        )
    except (OSError, EOFError, zlib.error) as exc:
        yield BadRecord(f"item {n + 1}", f"file is damaged, the rest cannot be read: {exc}")


@hookimpl
def elshi_connectors() -> list[type[Connector]]:
    """Register the tabular connector."""
    return [TabularConnector]
