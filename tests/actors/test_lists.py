"""Reading lists of accounts: the real IRA list of accounts, columns found by name, defaults
for missing columns, and each bad line reported with where and what."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from elshi.actors.lists import ListError, norm_handle, read_list


def test_the_ira_account_list_reads_with_defaults_for_its_missing_columns(
    shared_data: Path,
) -> None:
    path = shared_data / "ira-troll-tweets-sample" / "authors.csv"
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    ticks: list[int] = []
    reading, columns = read_list(
        path.read_bytes(),
        filename=path.name,
        defaults={"platform": "twitter", "actor_type": "suspected inauthentic", "country": "ru"},
        progress=ticks.append,
    )
    assert reading.errors == [] and reading.bad == 0
    assert "handle=author_id" in columns
    assert sum(ticks) == len(rows) == len(reading.entries)
    assert [e.handle for e in reading.entries] == [r["author_id"].lower() for r in rows]
    assert {e.actor_type for e in reading.entries} == {"inauthentic"}
    assert {e.platform for e in reading.entries} == {"twitter"}
    assert {e.country for e in reading.entries} == {"RU"}
    # The columns no field reads are kept with the entry (here the researchers' category).
    for entry, row in zip(reading.entries, rows, strict=True):
        assert entry.note is not None
        assert f"account_category={row['account_category']}" in entry.note
    assert reading.entries[0].line == 2  # the header is line 1


def test_each_bad_line_says_where_and_what_and_good_lines_are_kept() -> None:
    data = (
        "Platform;Handle;Type;Country;Name\n"
        "twitter;@KazakhMFA;official;kz;MFA of Kazakhstan\n"
        "myspace;someone;journalist;KZ;\n"
        "telegram;;state media;RU;\n"
        "telegram;https://t.me/tass_agency;state media;Russia;\n"
        "telegram;https://t.me/rian_ru;госсми;RU;РИА Новости\n"
        "twitter;x;celebrity;US;\n"
        "twitter;y;citizen;US;;extra\n"
    ).encode()
    reading, _ = read_list(data, filename="list.csv")
    assert [(e.platform, e.handle, e.actor_type, e.country, e.line) for e in reading.entries] == [
        ("twitter", "kazakhmfa", "diplomat", "KZ", 2),
        ("telegram", "rian_ru", "state_media", "RU", 6),
    ]
    assert reading.entries[0].name == "MFA of Kazakhstan"
    where = [w for w, _ in reading.errors]
    assert where == [
        "line 3, column Platform",
        "line 4, column Handle",
        "line 5, column Country",
        "line 7, column Type",
        "line 8",
    ]
    what = dict(reading.errors)
    assert "myspace" in what["line 3, column Platform"]
    assert "no handle" in what["line 4, column Handle"]
    assert "'Russia'" in what["line 5, column Country"]
    assert (
        "celebrity" in what["line 7, column Type"] and "state_media" in what["line 7, column Type"]
    )
    assert "more fields" in what["line 8"]
    assert reading.bad == 5


def test_json_lists_and_whole_file_errors() -> None:
    doc = {
        "accounts": [
            {
                "platform": "bluesky",
                "handle": "https://bsky.app/profile/mfa.gov.kz",
                "type": "diplomat",
            },
            {
                "platform": "mastodon",
                "username": "@kazembassy@mastodon.example",
                "type": "diplomat",
            },
            "not an object",
        ]
    }
    reading, _ = read_list(json.dumps(doc).encode(), filename="accounts.json")
    assert [e.handle for e in reading.entries] == ["mfa.gov.kz", "kazembassy@mastodon.example"]
    assert reading.errors == [("item 3", "not an object with account fields")]

    with pytest.raises(ListError, match="not UTF-8"):
        read_list("platform,handle\ntwitter,Жанна".encode("cp1251"))
    with pytest.raises(ListError, match="no handle column"):
        read_list(b"platform,type\ntwitter,journalist\n")
    with pytest.raises(ListError, match="bad JSON at line 1"):
        read_list(b"[{", filename="x.json")
    with pytest.raises(ListError, match="unknown type"):
        read_list(b"handle\nx\n", defaults={"actor_type": "alien"})
    assert norm_handle(" @Some_One ") == "some_one"
