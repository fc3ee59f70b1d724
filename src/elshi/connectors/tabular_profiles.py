"""Tabular profiles: what a profile file says (Profile), the built-in ones (PROFILES, read
from profiles/*.toml), and their compiled form that maps one record to a post
(CompiledProfile). The format is described in tabular.py."""

from __future__ import annotations

import hashlib
import html
import json
import re
import tomllib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, ValidationError, field_validator

from elshi.connectors.base import (
    MappingError,
    PostIn,
    parse_time,
)
from elshi.connectors.tabular_languages import lang_code

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
BUILT_IN = ("generic", "twitter-v2", "crowdtangle", "mediacloud", "ira", "coortweet")
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
