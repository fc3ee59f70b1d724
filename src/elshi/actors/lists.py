"""Reading a list of accounts with their types: CSV (comma, semicolon or tab) or JSON.

A list names, per account, its platform, handle, actor type and country (and optionally a
name and a note): a ministry's own list of state-affiliated media, a research team's list of
troll accounts. Columns are found by name (case and spaces ignored, a few aliases each); a
column a file lacks can be given for the whole file (`defaults`). Other columns are kept in
the entry's note. A bad line is reported with where it is and what is wrong, and the good
lines are still read: nothing in the file is silently dropped.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from elshi.watch.models import ACTOR_TYPES

#: Most entries one list may hold, and most errors reported (the rest are counted).
MAX_ENTRIES = 500_000
MAX_ERRORS = 1_000

#: Column names each field is read from, first found wins (compared lower-case, no spaces).
COLUMNS: dict[str, tuple[str, ...]] = {
    "platform": ("platform", "network", "site"),
    "handle": ("handle", "username", "screen_name", "account", "author_id", "author", "url"),
    "actor_type": ("type", "actor_type", "actortype"),
    "country": ("country", "country_code"),
    "name": ("name", "display_name", "title"),
    "note": ("note", "notes", "comment"),
}

#: Names of platforms as lists write them.
PLATFORMS = {
    "twitter": "twitter",
    "x": "twitter",
    "x.com": "twitter",
    "twitter.com": "twitter",
    "telegram": "telegram",
    "tg": "telegram",
    "t.me": "telegram",
    "mastodon": "mastodon",
    "bluesky": "bluesky",
    "bsky": "bluesky",
    "bsky.app": "bluesky",
    "vk": "vk",
    "vk.com": "vk",
    "rss": "rss",
    "web": "web",
    "website": "web",
    "youtube": "youtube",
    "facebook": "facebook",
    "instagram": "instagram",
    "tiktok": "tiktok",
}

#: Names of actor types as lists write them (English, Russian, Kazakh), besides the codes.
TYPE_WORDS = {
    "state media": "state_media",
    "state-affiliated media": "state_media",
    "state affiliated media": "state_media",
    "state_affiliated": "state_media",
    "government media": "state_media",
    "государственные сми": "state_media",
    "госсми": "state_media",
    "мемлекеттік бақ": "state_media",
    "official": "diplomat",
    "government": "diplomat",
    "official or diplomat": "diplomat",
    "embassy": "diplomat",
    "дипломат": "diplomat",
    "официальный": "diplomat",
    "ресми": "diplomat",
    "журналист": "journalist",
    "politician": "politician",
    "политик": "politician",
    "саясаткер": "politician",
    "гражданин": "citizen",
    "азамат": "citizen",
    "suspected inauthentic": "inauthentic",
    "troll": "inauthentic",
    "bot": "inauthentic",
    "тролль": "inauthentic",
    "бот": "inauthentic",
}

_COUNTRY = re.compile(r"^[A-Za-z]{2}$")


@dataclass(frozen=True)
class Entry:
    """One account of a list, checked."""

    platform: str
    handle: str
    actor_type: str
    country: str | None
    name: str | None
    note: str | None
    line: int


@dataclass
class Reading:
    """What a list held: its good entries and an error per bad line (where, what)."""

    entries: list[Entry] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    bad: int = 0

    def error(self, where: str, what: str) -> None:
        self.bad += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append((where, what))


class ListError(ValueError):
    """The file as a whole cannot be read (not UTF-8, not a CSV or JSON list, no handles)."""


def _key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def norm_handle(value: str) -> str:
    """Return a handle as elshi compares it: no @, no link around it, lower case."""
    text = value.strip()
    if text.lower().startswith(("http://", "https://")):
        parts = urlsplit(text)
        path = [p for p in parts.path.split("/") if p]
        text = path[0] if path else ""
        if parts.hostname and ("bsky.app" in parts.hostname) and len(path) >= 2:
            text = path[1]
    return text.lstrip("@").strip().lower()


def norm_type(value: str) -> str | None:
    """Return the actor type code a list's word names, or None."""
    text = " ".join(value.strip().lower().replace("_", " ").split())
    code = text.replace(" ", "_")
    if code in ACTOR_TYPES:
        return code
    return TYPE_WORDS.get(text)


def norm_platform(value: str) -> str | None:
    """Return the platform code a list's word names, or None."""
    return PLATFORMS.get(value.strip().lower())


def _fields(headers: list[str]) -> dict[str, str]:
    """Map each field to the header it is read from."""
    keys = {_key(h): h for h in headers}
    found: dict[str, str] = {}
    for name, aliases in COLUMNS.items():
        for alias in aliases:
            if alias in keys and keys[alias] not in found.values():
                found[name] = keys[alias]
                break
    return found


def _entry(
    row: dict[str, Any], columns: dict[str, str], defaults: dict[str, str], where: str
) -> Entry | tuple[str, str]:
    """Return the checked entry of one row, or (where, what) is wrong with it."""

    def get(name: str) -> str:
        col = columns.get(name)
        value = row.get(col) if col is not None else None
        text = "" if value is None else str(value).strip()
        return text or defaults.get(name, "")

    def at(name: str) -> str:
        col = columns.get(name)
        return f"{where}, column {col}" if col else f"{where} (default {name})"

    raw_platform = get("platform")
    if not raw_platform:
        return where, "no platform (add a platform column or give one for the whole list)"
    platform = norm_platform(raw_platform)
    if platform is None:
        known = ", ".join(sorted(set(PLATFORMS.values())))
        return at("platform"), f"unknown platform {raw_platform!r} (one of: {known})"
    handle = norm_handle(get("handle"))
    if not handle:
        return at("handle"), "no handle"
    if len(handle) > 300:
        return at("handle"), "handle longer than 300 characters"
    raw_type = get("actor_type")
    if not raw_type:
        return where, "no type (add a type column or give one for the whole list)"
    actor_type = norm_type(raw_type)
    if actor_type is None:
        return at("actor_type"), (f"unknown type {raw_type!r} (one of: {', '.join(ACTOR_TYPES)})")
    country = get("country") or None
    if country is not None and not _COUNTRY.match(country):
        return at("country"), f"country {country!r} is not a two-letter code (KZ, RU, ...)"
    used = set(columns.values())
    others = [
        f"{k}={str(v).strip()}"
        for k, v in row.items()
        if k not in used and k is not None and v is not None and str(v).strip()
    ]
    note = "; ".join(x for x in (get("note"), *others) if x) or None
    return Entry(
        platform=platform,
        handle=handle,
        actor_type=actor_type,
        country=country.upper() if country else None,
        name=(get("name") or None),
        note=note[:2000] if note else None,
        line=0,
    )


def _add(reading: Reading, got: Entry | tuple[str, str], line: int) -> None:
    if isinstance(got, tuple):
        reading.error(*got)
    elif len(reading.entries) >= MAX_ENTRIES:
        reading.error(f"line {line}", f"more than {MAX_ENTRIES:,} entries in one list")
    else:
        reading.entries.append(Entry(**{**got.__dict__, "line": line}))


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    sample = text[:65536]
    first = sample.splitlines()[0] if sample else ""
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    for row in reader:
        yield reader.line_num, row


def read_list(
    data: bytes,
    *,
    filename: str = "",
    defaults: dict[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Reading, list[str]]:
    """Read a list of accounts (JSON when the name ends .json or the text starts with [ or {,
    CSV otherwise); return what it held and the columns each field was read from."""
    defaults = {k: v for k, v in (defaults or {}).items() if v}
    if "actor_type" in defaults and norm_type(defaults["actor_type"]) is None:
        raise ListError(
            f"unknown type {defaults['actor_type']!r} (one of: {', '.join(ACTOR_TYPES)})"
        )
    if "platform" in defaults and norm_platform(defaults["platform"]) is None:
        raise ListError(f"unknown platform {defaults['platform']!r}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ListError(f"not UTF-8 text (byte {exc.start} cannot be read)") from None
    reading = Reading()
    stripped = text.lstrip()
    if filename.lower().endswith(".json") or stripped.startswith(("[", "{")):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ListError(
                f"bad JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        items = doc.get("accounts") if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise ListError('JSON must be a list of accounts or {"accounts": [...]}')
        headers: list[str] = []
        for item in items:
            if isinstance(item, dict):
                headers.extend(k for k in item if k not in headers)
        columns = _fields(headers)
        if "handle" not in columns:
            raise ListError(f"no handle field (one of: {', '.join(COLUMNS['handle'])})")
        for n, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                reading.error(f"item {n}", "not an object with account fields")
            else:
                # Objects of one list may name their fields differently: found per object.
                own = _fields(list(item))
                _add(reading, _entry(item, own, defaults, f"item {n}"), n)
            if progress is not None:
                progress(1)
        return reading, [f"{k}={v}" for k, v in columns.items()]
    try:
        rows = _csv_rows(text)
        first = next(rows, None)
    except csv.Error as exc:
        raise ListError(f"bad CSV: {exc}") from None
    if first is None:
        raise ListError("the list is empty")
    columns = _fields(list(first[1].keys()))
    if "handle" not in columns:
        raise ListError(f"no handle column (one of: {', '.join(COLUMNS['handle'])})")
    line, row = first
    while True:
        if None in row:
            reading.error(f"line {line}", "more fields than the header has")
        else:
            _add(reading, _entry(row, columns, defaults, f"line {line}"), line)
        if progress is not None:
            progress(1)
        try:
            nxt = next(rows, None)
        except csv.Error as exc:
            reading.error(f"line {line + 1}", f"bad CSV: {exc}")
            break
        if nxt is None:
            break
        line, row = nxt
    return reading, [f"{k}={v}" for k, v in columns.items()]
