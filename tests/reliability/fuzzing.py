"""Mutations of real sample files for the connector fuzz tests and bench/fuzz_connectors.py.

A case is a sample file with one to three mutations: bytes flipped, cut, repeated or inserted
(bad UTF-8, quotes and brackets, NUL, JSON nested 100,000 deep, a lone surrogate escape), the
file truncated or emptied, a JSON value swapped for a nasty one (a date out of range, a
number of 40 digits, text of 200,000 characters, a lone surrogate, NUL, the wrong type), or
a whole bad line added. The same engine runs under Hypothesis (tests: derandomised, shrunk)
and under random.Random (the bench: many more cases).

Every case must end in one of three ways: stored, quarantined (with the count the report
gives) or refused with a message (an exception of REFUSALS); anything else escaping is a bug.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import func, select

from elshi.connectors.base import FetchContext, MappingError
from elshi.connectors.rss import FeedError
from elshi.db import Database
from elshi.listen.flows import import_with
from elshi.listen.models import Quarantine
from elshi.plugins import get_connector

T = TypeVar("T")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

#: What a connector may refuse a whole file with (its message says why).
REFUSALS: tuple[type[BaseException], ...] = (MappingError, FeedError)


class Picker(Protocol):
    """Where a mutation's choices come from: Hypothesis (tests) or random.Random (bench)."""

    def integer(self, lo: int, hi: int) -> int:
        """Return a whole number lo <= n <= hi."""
        ...

    def choice(self, options: Sequence[T]) -> T:
        """Return one of the options."""
        ...


class RandomPicker:
    """Choices from a seeded random.Random."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.random.randint(lo, hi)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.random.randrange(len(options))]


class DataPicker:
    """Choices drawn from Hypothesis's `data()`, so failing cases shrink."""

    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def integer(self, lo: int, hi: int) -> int:
        return int(self.data.draw(self.st.integers(lo, hi)))

    def choice(self, options: Sequence[T]) -> T:
        return options[self.integer(0, len(options) - 1)]


#: Snippets spliced into a file's bytes.
NASTY_BYTES: tuple[bytes, ...] = (
    b"\x00",
    b"\xff\xfe",
    b"\xc3",  # a cut UTF-8 sequence
    b"\xed\xa0\x80",  # a surrogate encoded as UTF-8 (CESU), invalid UTF-8
    b"\\ud800",  # a lone surrogate escape inside a JSON string
    b"\\u0000",
    b'"',
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\n",
    b"\r\n",
    b"\t",
    b"<",
    b">",
    b"&",
    b"&#0;",
    b"]]>",
    b"<![CDATA[",
    b"9" * 40,
    b"1e999",
    b"-",
    b"null",
    b"\xef\xbb\xbf",
    b"[" * 100_000,
    b"{" * 3_000,
    b"\xf0\x9f\x87\xb0\xf0\x9f\x87\xbf",  # a flag emoji
)

#: Values swapped into a JSON document or line.
NASTY_VALUES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    10**40,
    -(10**40),
    1e308,
    -0.0,
    "",
    " ",
    "\ud800",
    "a\udfffb",
    "\x00",
    "nul \x00 inside",
    "9" * 40,
    "-" + "9" * 40,
    "0" * 40,
    "2026-13-45T99:99:99Z",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "Mon, 99 Foo 2026 99:99:99 +9999",
    "x" * 200_000,
    "<p>" * 50,
    "\u202e\u200b",
    "🇰🇿" * 10,
    [],
    {},
    [[[]]],
    {"a": {"b": None}},
    ["text", 1, None],
    12345678901234567890,
)

#: Mutations of a file's bytes, by name.
_BYTE_OPS = ("flip", "delete", "insert", "truncate", "repeat")


@dataclass
class Sample:
    """A seed file: which connector reads it, with what options, and how it is laid out."""

    name: str
    connector: str
    data: bytes
    suffix: str
    layout: str  # "jsonl", "json" (one document) or "text"
    options: dict[str, Any] = field(default_factory=dict)


def samples() -> list[Sample]:
    """The repository's own samples, one per connector and tabular format."""
    tab, tg = FIXTURES / "tabular", FIXTURES / "telegram"
    return [
        Sample("tabular-csv", "tabular", (tab / "generic.csv").read_bytes(), ".csv", "text"),
        Sample(
            "tabular-jsonl",
            "tabular",
            gzip.decompress((tab / "tweets.jsonl.gz").read_bytes()),
            ".jsonl",
            "jsonl",
            {"profile": "twitter-v2"},
        ),
        Sample(
            "tabular-json",
            "tabular",
            (tab / "ct_api.json").read_bytes(),
            ".json",
            "json",
            {"profile": "crowdtangle"},
        ),
        Sample(
            "telegram-export",
            "telegram-export",
            (tg / "export_full.json").read_bytes(),
            ".json",
            "json",
        ),
        Sample(
            "telegram-json",
            "telegram-json",
            (tg / "telethon_dump.json").read_bytes(),
            ".json",
            "json",
            {"channel": "embassy"},
        ),
        Sample(
            "mastodon-stream",
            "mastodon-stream",
            (FIXTURES / "mastodon" / "stream_public.jsonl").read_bytes(),
            ".jsonl",
            "jsonl",
            {"instance": "mastodon.example"},
        ),
        Sample(
            "bluesky-jetstream-file",
            "bluesky-jetstream-file",
            (FIXTURES / "bluesky" / "jetstream_mixed.jsonl").read_bytes(),
            ".jsonl",
            "jsonl",
        ),
        Sample("rss", "rss", (FIXTURES / "rss" / "mission.atom").read_bytes(), ".atom", "text"),
    ]


def shared_samples(root: Path) -> list[Sample]:
    """Real third-party samples from the shared data folder (those present)."""
    formats = root / "formats"
    found: list[Sample] = []

    def add(name: str, connector: str, path: Path, layout: str, **options: Any) -> None:
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".gz":
                data, path = gzip.decompress(data), path.with_suffix("")
            found.append(Sample(name, connector, data, path.suffix, layout, options))

    jet = formats / "bluesky-jetstream"
    for p in sorted(jet.glob("*.jsonl"))[:2] if jet.is_dir() else []:
        add(f"jetstream {p.name}", "bluesky-jetstream-file", p, "jsonl")
    feeds = formats / "rss-atom-rss-parser"
    for p in sorted(feeds.rglob("*"))[:4] if feeds.is_dir() else []:
        if p.suffix in (".rss", ".xml", ".atom"):
            add(f"rss {p.name}", "rss", p, "text")
    twarc = formats / "twitter-v2-twarc-csv"
    for p in sorted(twarc.rglob("*.json*"))[:3] if twarc.is_dir() else []:
        if p.stat().st_size < 2_000_000:
            add(f"twarc {p.name}", "tabular", p, "jsonl", profile="twitter-v2")
    news = root / "telegram-ru-news"
    for p in sorted(news.rglob("*.json"))[:1] if news.is_dir() else []:
        if p.stat().st_size < 5_000_000:
            add(f"telegram {p.name}", "telegram-json", p, "json", channel="news")
    return found


def _json_slots(doc: Any, limit: int = 5_000) -> list[tuple[Any, Any]]:
    """Every (container, key) of a JSON document, found without recursion."""
    slots: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack and len(slots) < limit:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            slots.append((node, key))
            if isinstance(child, dict | list):
                stack.append(child)
    return slots


def _dumps(doc: Any, pick: Picker) -> bytes:
    text = json.dumps(doc, ensure_ascii=pick.choice((True, False)))
    # Unescaped, a lone surrogate becomes bytes that are not UTF-8 at all.
    return text.encode("utf-8", "surrogatepass")


def _swap_value(doc: Any, pick: Picker) -> bool:
    slots = _json_slots(doc) if isinstance(doc, dict | list) else []
    if not slots:
        return False
    container, key = pick.choice(slots)
    container[key] = pick.choice(NASTY_VALUES)
    return True


def _mutate_json(data: bytes, layout: str, pick: Picker) -> bytes | None:
    """Swap one value of the document (or of one line); None when it does not parse."""
    if layout == "json":
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            return None
        return _dumps(doc, pick) if _swap_value(doc, pick) else None
    lines = data.split(b"\n")
    n = pick.integer(0, len(lines) - 1)
    try:
        doc = json.loads(lines[n])
    except (ValueError, RecursionError):
        return None
    if not _swap_value(doc, pick):
        return None
    lines[n] = _dumps(doc, pick)
    return b"\n".join(lines)


def _mutate_bytes(data: bytes, pick: Picker) -> bytes:
    op = pick.choice(_BYTE_OPS)
    size = len(data)
    at = pick.integer(0, size)
    if op == "flip" and size:
        at = min(at, size - 1)
        byte = pick.choice((0x00, 0xFF, 0x80, 0xC3, 0xED, 0x22, 0x5C, 0x7B, 0x5B, 0x0A, 0x3C))
        return data[:at] + bytes([byte]) + data[at + 1 :]
    if op == "delete":
        return data[:at] + data[at + pick.integer(1, 64) :]
    if op == "truncate":
        return data[:at]
    if op == "repeat":
        return data[:at] + data[at : at + pick.integer(1, 400)] + data[at:]
    return data[:at] + pick.choice(NASTY_BYTES) + data[at:]


def mutate(sample: Sample, pick: Picker) -> bytes:
    """Return the sample's bytes with one to three mutations."""
    what = pick.integer(0, 19)
    if what == 0:
        return pick.choice((b"", b" \n\t\r\n", b"\xef\xbb\xbf"))
    data = sample.data
    for _ in range(pick.integer(1, 3)):
        kind = pick.integer(0, 9)
        if sample.layout in ("json", "jsonl") and kind < 4:
            swapped = _mutate_json(data, sample.layout, pick)
            if swapped is not None:
                data = swapped
                continue
        if sample.layout == "jsonl" and kind == 4:
            lines = data.split(b"\n")
            bad = pick.choice((b"[" * 100_000, b'{"text": "\\ud800"}', b"\x00", b"{}", b"[]"))
            lines.insert(pick.integer(0, len(lines)), bad)
            data = b"\n".join(lines)
            continue
        data = _mutate_bytes(data, pick)
    return data


@dataclass
class Outcome:
    """How one case ended."""

    kind: str  # "stored", "quarantined" or "refused"
    message: str = ""
    stored: int = 0
    quarantined: int = 0


def quarantine_count(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Quarantine)) or 0)


def run_case(db: Database, ctx: FetchContext, sample: Sample, path: Path) -> Outcome:
    """Import one mutated file; return how it ended; raise whatever else escaped.

    Checks that every record read was stored, a duplicate, skipped or quarantined, and that
    the quarantine holds as many new rows as the report says.
    """
    connector = get_connector(sample.connector)
    config = {connector.target_field: str(path), **sample.options}
    before = quarantine_count(db)
    try:
        report = import_with(db, connector=connector, config=config, ctx=ctx)
    except REFUSALS as exc:
        message = str(exc).strip()
        assert message, f"{type(exc).__name__} without a message"
        return Outcome("refused", message)
    accounted = report.stored + report.duplicates + report.skipped + report.quarantined
    assert report.read == accounted, report
    assert quarantine_count(db) - before == report.quarantined, report
    kind = "quarantined" if report.quarantined else "stored"
    return Outcome(kind, stored=report.stored, quarantined=report.quarantined)
