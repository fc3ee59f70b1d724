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

Built-in profiles: ``generic``, ``twitter-v2``, ``crowdtangle``, ``mediacloud``, ``ira`` and
``coortweet``, one TOML file each in profiles/ (loaded at import into PROFILES). Files are
read as a stream: memory stays bounded whatever the file size.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pydantic import BaseModel, Field

from elshi.connectors.base import (
    BadRecord,
    Connector,
    FetchContext,
    FileConnector,
    MappingError,
    PostIn,
    RawRecord,
    Records,
    json_events,
    json_items,
    refuse_empty,
    snippet,
)

# Profiles, languages and API pages live in their own modules; their names stay importable
# from here, as they were before the split.
from elshi.connectors.tabular_languages import lang_code as lang_code
from elshi.connectors.tabular_profiles import BUILT_IN as BUILT_IN
from elshi.connectors.tabular_profiles import DEFAULT_NULLS as DEFAULT_NULLS
from elshi.connectors.tabular_profiles import POST_FIELDS as POST_FIELDS
from elshi.connectors.tabular_profiles import PROFILE_DIR as PROFILE_DIR
from elshi.connectors.tabular_profiles import PROFILES as PROFILES
from elshi.connectors.tabular_profiles import TRANSFORMS as TRANSFORMS
from elshi.connectors.tabular_profiles import CompiledProfile as CompiledProfile
from elshi.connectors.tabular_profiles import Getter as Getter
from elshi.connectors.tabular_profiles import Join as Join
from elshi.connectors.tabular_profiles import Profile as Profile
from elshi.connectors.tabular_profiles import ProfileError as ProfileError
from elshi.connectors.tabular_profiles import load_profile as load_profile
from elshi.connectors.tabular_profiles import resolve_profile as resolve_profile
from elshi.connectors.tabular_twitter import EXPANDERS as EXPANDERS
from elshi.connectors.tabular_twitter import expand_twitter_v2 as expand_twitter_v2
from elshi.plugins import hookimpl

GZIP_MAGIC = b"\x1f\x8b"
SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson")
#: Bytes inspected to tell the format, encoding and CSV delimiter of a file.
SAMPLE_BYTES = 64 * 1024


class MissingColumn(MappingError):
    """A file lacks a column its profile requires; nothing of it is imported."""


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
        except (ValueError, RecursionError):
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
        description="Built-in profile name (generic, twitter-v2, crowdtangle, mediacloud, ira, "
        "coortweet), a TOML/JSON profile file, or a profile dict.",
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


class TabularConnector(FileConnector):
    """Import CSV, JSON or NDJSON exports mapped by a column-mapping profile."""

    slug = "tabular"
    title = "CSV / JSON / NDJSON file (column-mapping profiles)"
    platform = "generic"
    Config = TabularConfig
    _kind: str = ""
    _profile: CompiledProfile

    def fetch(self, config: Any, cursor: dict[str, Any], ctx: FetchContext) -> Records:
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
    ) -> Records:
        refuse_empty(path)
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
            for part in _expanded(records, expand):
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
            except RecursionError:
                yield BadRecord(
                    f"line {n}",
                    "bad JSON: nested too deeply",
                    line[:2000].decode("utf-8", "replace"),
                )
    except (OSError, EOFError, zlib.error) as exc:
        yield BadRecord("end of file", f"file is damaged, the rest cannot be read: {exc}")


def _records_prefix(src: _Source) -> str | None:
    """Return the ijson prefix of the first array of objects in the document."""

    head = src.sample.lstrip()
    if head[:1] == b"[":
        return "item"
    # Scan events only as far as the first array of objects; a second pass then streams it.
    with src.path.open("rb") as fh:
        stream: BinaryIO = io.BufferedReader(_Gunzip(fh)) if src.gzip else fh
        if src.bom:
            stream.read(len(src.bom))
        pending: str | None = None
        for prefix, event, _ in json_events(stream):
            if pending is not None:
                if event == "start_map":
                    return pending + ".item" if pending else "item"
                pending = None
            if event == "start_array":
                pending = prefix
    return None


def _expanded(
    records: Iterable[tuple[Any, str] | BadRecord], expand: Any
) -> Iterator[tuple[Any, str] | BadRecord]:
    """The records with each expanded into its parts by the profile's expander, if it has one;
    a record the expander cannot read becomes a bad record (that record only)."""
    for item in records:
        if isinstance(item, BadRecord) or not expand:
            yield item
            continue
        payload, location = item
        try:
            parts = list(expand(payload, location))
        except Exception as exc:  # one page of an odd shape: that page only
            yield BadRecord(
                location, f"unreadable record: {type(exc).__name__}: {exc}", snippet(payload)
            )
            continue
        yield from parts


def _json_whole(src: _Source) -> Iterator[tuple[Any, str] | BadRecord]:
    """Read the whole file as one JSON value: one record."""
    try:
        yield json.load(src.stream), "item 1"
    except ValueError as exc:
        yield BadRecord("item 1", f"bad JSON: {exc}")
    except RecursionError:
        yield BadRecord("item 1", "bad JSON: nested too deeply")


def _json_records(src: _Source, records: str | None) -> Iterator[tuple[Any, str] | BadRecord]:
    import ijson

    if not src.sample.strip():
        return
    if records == "" and src.sample.lstrip()[:1] == b"[":
        records = None
    if records == "":
        yield from _json_whole(src)
        return
    try:
        prefix = (records + ".item") if records else _records_prefix(src)
    except (ijson.JSONError, ValueError, OSError, EOFError, zlib.error):
        prefix = "item"  # unreadable before any array: let the streaming pass report where
    if prefix is None:
        yield from _json_whole(src)
        return
    n = 0
    try:
        for n, item in enumerate(json_items(src.stream, prefix, use_float=True), 1):
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
