"""One bad record never costs the rest of a file (issue 21, fault 4).

A lone surrogate, nesting too deep for the JSON parser, a date out of range, a row the database
itself refuses: each is quarantined with its location and reason and the other records are
stored, on SQLite and on PostgreSQL (ELSHI_TEST_DB=postgres). An empty file is refused whole,
with the same words whatever the connector.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from elshi.connectors.base import EmptyFile, FetchContext
from elshi.db import Database
from elshi.listen.flows import IngestReport, import_with
from elshi.listen.models import Post, Quarantine
from elshi.plugins import get_connector
from elshi.settings import Settings

GOOD = 40
BAD_AT = 21  # the bad line goes between the 20th and the 21st good one


@pytest.fixture
def fetch_ctx(settings: Settings) -> Iterator[FetchContext]:
    ctx = FetchContext(settings=settings)
    yield ctx
    ctx.close()


def tabular_line(n: int, body: str = "") -> str:
    return json.dumps(
        {
            "id": f"t{n}",
            "text": body or f"good record number {n}",
            "author": "someone",
            "published_at": "2026-03-01T10:00:00Z",
        }
    )


def mastodon_line(n: int, body: str = "") -> str:
    return json.dumps(
        {
            "id": f"{1000 + n}",
            "created_at": "2026-03-01T10:00:00.000Z",
            "account": {"acct": "someone", "display_name": "Someone"},
            "content": f"<p>{body or f'good status number {n}'}</p>",
            "language": "en",
        }
    )


def jetstream_line(n: int, body: str = "") -> str:
    return json.dumps(
        {
            "did": "did:plc:abcdefghijklmnopqrstuvwx",
            "time_us": 1772359200000000 + n,
            "kind": "commit",
            "commit": {
                "rev": f"rev{n}",
                "operation": "create",
                "collection": "app.bsky.feed.post",
                "rkey": f"3k{n:08d}",
                "record": {
                    "$type": "app.bsky.feed.post",
                    "createdAt": "2026-03-01T10:00:00.000Z",
                    "text": body or f"good post number {n}",
                },
            },
        }
    )


#: connector, its options, and a maker of one good JSONL line.
JSONL: dict[str, tuple[dict[str, Any], Callable[..., str]]] = {
    "tabular": ({}, tabular_line),
    "mastodon-stream": ({"instance": "mastodon.example"}, mastodon_line),
    "bluesky-jetstream-file": ({}, jetstream_line),
}

SURROGATE = "lone \\ud800 surrogate"  # JSON escape: the parser makes a lone surrogate of it


def bad_lines(make: Callable[..., str]) -> dict[str, tuple[str, str]]:
    """Each issue example: the line, and words its quarantine reason must hold."""
    return {
        "surrogate": (make(999).replace("good", SURROGATE, 1), "lone surrogate (U+D800)"),
        "deep": ("[" * 100_000, "nested too deeply"),
    }


def write_jsonl(path: Path, make: Callable[..., str], bad: str) -> Path:
    lines = [make(n) for n in range(1, GOOD + 1)]
    lines.insert(BAD_AT - 1, bad)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def ingest(
    db: Database, ctx: FetchContext, connector: str, path: Path, **options: Any
) -> IngestReport:
    plugin = get_connector(connector)
    config = {plugin.target_field: str(path), **options}
    return import_with(db, connector=plugin, config=config, ctx=ctx)


def quarantined(db: Database) -> list[tuple[str, str]]:
    with db.session() as s:
        return [
            (q.location, q.reason) for q in s.scalars(select(Quarantine).order_by(Quarantine.id))
        ]


def stored(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Post)) or 0)


@pytest.mark.parametrize("connector", list(JSONL))
@pytest.mark.parametrize("kind", ["surrogate", "deep"])
def test_one_bad_jsonl_line_is_quarantined_and_the_rest_stored(
    db: Database, fetch_ctx: FetchContext, tmp_path: Path, connector: str, kind: str
) -> None:
    options, make = JSONL[connector]
    line, words = bad_lines(make)[kind]
    path = write_jsonl(tmp_path / "records.jsonl", make, line)
    report = ingest(db, fetch_ctx, connector, path, **options)
    assert (report.read, report.stored, report.quarantined) == (GOOD + 1, GOOD, 1)
    assert stored(db) == GOOD
    [(location, reason)] = quarantined(db)
    assert location == f"line {BAD_AT}"
    assert words in reason


def test_cli_reports_the_bad_line_and_exits_3(cli: Any, db: Database, tmp_path: Path) -> None:
    line, _ = bad_lines(tabular_line)["surrogate"]
    path = write_jsonl(tmp_path / "records.jsonl", tabular_line, line)
    r = cli("ingest", "tabular", str(path), "--no-progress")
    assert r.exit_code == 3, r.output
    assert "lone surrogate (U+D800)" in r.output and "Traceback" not in r.output
    assert stored(db) == GOOD


def telegram_export(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "Embassy", "type": "public_channel", "id": 1234567890, "messages": messages}


def test_telegram_export_date_out_of_range_costs_one_message(
    db: Database, fetch_ctx: FetchContext, tmp_path: Path
) -> None:
    messages = [
        {
            "id": n,
            "type": "message",
            "date": "2026-03-01T10:00:00",
            "date_unixtime": "1772359200",
            "text": f"message {n}",
        }
        for n in range(1, 5)
    ]
    messages[3]["date_unixtime"] = "9" * 40
    path = tmp_path / "result.json"
    path.write_text(json.dumps(telegram_export(messages)), encoding="utf-8")
    report = ingest(db, fetch_ctx, "telegram-export", path, channel="embassy")
    assert (report.read, report.stored, report.quarantined) == (4, 3, 1)
    [(location, reason)] = quarantined(db)
    assert location == "message 4"
    assert reason.startswith("date/time out of range") and "9999" in reason


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("text", "a NUL \x00 in the text", "text contains a NUL character (U+0000)"),
        ("author", "some\ud800one", "author_handle contains a lone surrogate (U+D800)"),
        # Not mapped to any field: only the raw record kept with the post holds it.
        ("note", "kept raw \ud800", "raw record contains a lone surrogate (U+D800)"),
        ("note", "kept raw \x00", "raw record contains a NUL character (U+0000)"),
    ],
)
def test_unstorable_characters_quarantine_only_their_record(
    db: Database,
    fetch_ctx: FetchContext,
    tmp_path: Path,
    field: str,
    value: str,
    words: str,
) -> None:
    """What no database stores (SQLite cannot encode a lone surrogate, PostgreSQL refuses NUL
    and lone surrogates in text and JSON) costs that record, the same on either backend."""
    rows = [json.loads(tabular_line(n)) for n in range(1, GOOD + 1)]
    rows[BAD_AT - 1][field] = value
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    report = ingest(db, fetch_ctx, "tabular", path)
    assert (report.stored, report.quarantined) == (GOOD - 1, 1)
    [(location, reason)] = quarantined(db)
    assert location == f"line {BAD_AT}"
    assert words in reason


POISON_SQLITE = (
    "CREATE TRIGGER poison BEFORE INSERT ON post WHEN NEW.external_id = 't7' "
    "BEGIN SELECT RAISE(ABORT, 'row t7 refused by a check'); END"
)
POISON_PG = (
    "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
    "IF NEW.external_id = 't7' THEN RAISE EXCEPTION 'row t7 refused by a check'; END IF; "
    "RETURN NEW; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER poison BEFORE INSERT ON post FOR EACH ROW EXECUTE FUNCTION poison()",
)


@pytest.fixture
def poisoned(db: Database) -> Any:
    """A database that refuses the row with external id t7 (a real error from the database)."""
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "sqlite":
            conn.execute(text(POISON_SQLITE))
        else:
            for statement in POISON_PG:
                conn.execute(text(statement))
    yield db
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "DROP TRIGGER IF EXISTS poison"
                + ("" if db.engine.dialect.name == "sqlite" else " ON post")
            )
        )
        if db.engine.dialect.name != "sqlite":
            conn.execute(text("DROP FUNCTION IF EXISTS poison()"))


def test_a_row_the_database_refuses_costs_only_that_row(
    poisoned: Database, fetch_ctx: FetchContext, tmp_path: Path
) -> None:
    db = poisoned
    first = tmp_path / "first.jsonl"
    first.write_text(tabular_line(1) + "\n" + tabular_line(2) + "\n", encoding="utf-8")
    assert ingest(db, fetch_ctx, "tabular", first).stored == 2
    # The batch holds two posts stored before and one twice: counted once each as duplicates.
    lines = [tabular_line(n) for n in range(1, GOOD + 1)] + [tabular_line(3)]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = ingest(db, fetch_ctx, "tabular", path)
    assert report.read == GOOD + 1
    assert report.stored == GOOD - 3  # t1, t2 stored before; t7 refused
    assert report.duplicates == 3
    assert report.quarantined == 1
    assert report.stored + report.duplicates + report.quarantined == report.read
    assert stored(db) == GOOD - 1
    [(location, reason)] = quarantined(db)
    assert location == "line 7"
    assert reason.startswith("database rejected the record") and "row t7 refused" in reason


#: Every connector that reads a file, with the options it needs.
FILE_CONNECTORS: dict[str, dict[str, Any]] = {
    "tabular": {},
    "telegram-export": {},
    "telegram-json": {},
    "mastodon-stream": {"instance": "mastodon.example"},
    "bluesky-jetstream-file": {},
    "rss": {},
}


@pytest.mark.parametrize("connector", list(FILE_CONNECTORS))
@pytest.mark.parametrize(
    "content", [b"", b"  \n\t\r\n", b"\xef\xbb\xbf\n"], ids=["0-byte", "white", "bom"]
)
def test_an_empty_file_gets_the_same_answer_from_every_connector(
    cli: Any, db: Database, tmp_path: Path, connector: str, content: bytes
) -> None:
    path = tmp_path / "input.json"
    path.write_bytes(content)
    args = [f"{k}={v}" for k, v in FILE_CONNECTORS[connector].items()]
    options = [x for a in args for x in ("-o", a)]
    r = cli("ingest", connector, str(path), *options, "--no-progress")
    assert r.exit_code == 1
    # The terminal may wrap a long path: compare without the line breaks.
    assert "".join(r.output.split()).endswith(f"error:fileisempty:{path}"), r.output
    assert "Traceback" not in r.output
    assert stored(db) == 0 and quarantined(db) == []


def test_an_empty_gzip_file_is_empty(db: Database, fetch_ctx: FetchContext, tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n \n"))
    with pytest.raises(EmptyFile, match=r"^file is empty: "):
        ingest(db, fetch_ctx, "tabular", path)


def test_an_empty_file_in_a_folder_is_set_aside(
    db: Database, fetch_ctx: FetchContext, tmp_path: Path
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "a.jsonl").write_text(tabular_line(1) + "\n", encoding="utf-8")
    (folder / "b.jsonl").write_bytes(b"")
    report = ingest(db, fetch_ctx, "tabular", folder)
    assert (report.stored, report.quarantined) == (1, 1)
    [(location, reason)] = quarantined(db)
    assert location.startswith("b.jsonl") and "file is empty" in reason


def capped_ingest(connector: str, path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Import a file with `elshi ingest` in a child process whose memory is capped 1 GiB above
    its size (capped_ingest.py): a parser that blows up fails there, and cannot hang this one."""
    script = Path(__file__).with_name("capped_ingest.py")
    args = [x for option in options for x in ("-o", option)]
    return subprocess.run(
        [sys.executable, str(script), connector, str(path), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_deep_nesting_in_a_json_document_stops_at_that_item(db: Database, tmp_path: Path) -> None:
    """A streamed JSON array cannot be read past 100,000 opening brackets, but what came
    before is stored and the place is named; memory stays bounded."""
    items = [tabular_line(n) for n in range(1, GOOD + 1)]
    items.insert(BAD_AT - 1, "[" * 100_000)
    path = tmp_path / "records.json"
    path.write_text("[" + ",\n".join(items) + "]", encoding="utf-8")
    run = capped_ingest("tabular", path)
    assert run.returncode == 3, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert stored(db) == BAD_AT - 1
    [(location, reason)] = quarantined(db)
    assert location == f"item {BAD_AT}"
    assert "the rest of the file cannot be read" in reason
    assert "nested more than 1,000 levels deep" in reason


def test_deep_nesting_in_a_telegram_export(db: Database, tmp_path: Path) -> None:
    message = '{"id": %d, "type": "message", "date_unixtime": "1772359200", "text": "m %d"}'
    parts = [message % (n, n) for n in range(1, 5)]
    parts.insert(2, "[" * 100_000)
    body = json.dumps(telegram_export([]))[:-2] + ", ".join(parts) + "]}"
    path = tmp_path / "result.json"
    path.write_text(body, encoding="utf-8")
    run = capped_ingest("telegram-export", path, "channel=embassy")
    assert run.returncode == 3, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert stored(db) == 2
    [(location, reason)] = quarantined(db)
    assert location == "message 3" and "nested more than 1,000 levels deep" in reason
