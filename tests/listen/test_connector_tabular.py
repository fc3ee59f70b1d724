"""Tabular imports: formats, encodings, profiles, bad input, idempotency and the CLI."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from elshi.connectors.base import BadRecord, EmptyFile, FetchContext, RawRecord
from elshi.connectors.tabular import (
    MissingColumn,
    ProfileError,
    TabularConnector,
    lang_code,
    load_profile,
)
from elshi.db import Database
from elshi.listen.flows import IngestReport, import_with
from elshi.listen.models import Author, Post, Quarantine
from elshi.plugins import connectors

FIX = Path(__file__).parents[1] / "fixtures" / "tabular"
TWARC = Path("formats") / "twitter-v2-twarc-csv" / "test-data"
CT = Path("formats") / "crowdtangle-pycoornet"


def run(
    db: Database, ctx: FetchContext, path: Path, profile: Any = "generic", **options: Any
) -> IngestReport:
    return import_with(
        db,
        connector=TabularConnector(),
        config={"path": str(path), "profile": profile, **options},
        ctx=ctx,
    )


def posts(db: Database) -> dict[str, Post]:
    with db.session() as s:
        return {p.external_id: p for p in s.scalars(select(Post))}


def quarantine(db: Database) -> dict[str, str]:
    with db.session() as s:
        return {q.location: q.reason for q in s.scalars(select(Quarantine))}


def count(db: Database, model: Any = Post) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_registered_as_plugin() -> None:
    cls = connectors()["tabular"]
    assert cls is TabularConnector
    assert cls.target_field == "path" and not cls.pollable


# ---------------------------------------------------------------------------- X / Twitter v2


def _expected_tweets(path: Path) -> tuple[dict[str, dict[str, Any]], Counter[str]]:
    """Read a twarc2 file independently: tweets by id with their author, and line kinds."""
    tweets: dict[str, dict[str, Any]] = {}
    kinds: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            page = json.loads(line)
        except ValueError:
            kinds["bad json"] += 1
            continue
        if "data" not in page:
            if "action" in page:
                kinds["compliance"] += 1
            elif "text" in page:
                kinds["tweets"] += 1
                tweets[page["id"]] = dict(page, _username=page["author"]["username"])
            continue
        data = page["data"] if isinstance(page["data"], list) else [page["data"]]
        if not all("text" in d for d in data):
            kinds["not tweets"] += 1
            continue
        users = {u["id"]: u for u in page.get("includes", {}).get("users", [])}
        for tweet in data:
            kinds["tweets"] += 1
            author = users.get(tweet.get("author_id"))
            tweets[tweet["id"]] = dict(tweet, _username=author["username"] if author else None)
    return tweets, kinds


def _ref(tweet: dict[str, Any], kind: str) -> str | None:
    return next((r["id"] for r in tweet.get("referenced_tweets", []) if r["type"] == kind), None)


def _twitter_lang(code: str | None) -> str | None:
    if code is None or code in ("und", "zxx") or (len(code) == 3 and code.startswith("q")):
        return None
    return {"in": "id", "iw": "he"}.get(code, code)


def _twarc_files() -> list[str]:
    from tests.conftest import shared_data_dir

    folder = shared_data_dir() / TWARC
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else ["(absent)"]


@pytest.mark.shared_data
@pytest.mark.parametrize("name", _twarc_files())
def test_twitter_v2_every_twarc_file(
    name: str, shared_data: Path, db: Database, fetch_ctx: FetchContext
) -> None:
    path = shared_data / TWARC / name
    if not path.read_bytes().strip():
        # An empty file is refused as a whole, with the words every connector uses.
        with pytest.raises(EmptyFile, match=f"^file is empty: {path}$"):
            run(db, fetch_ctx, path, "twitter-v2")
        assert posts(db) == {}
        return
    tweets, kinds = _expected_tweets(path)
    report = run(db, fetch_ctx, path, "twitter-v2")
    stored = posts(db)
    assert report.stored == len(tweets) == kinds["tweets"] == len(stored)
    assert report.skipped == kinds["compliance"]
    assert report.quarantined == kinds["bad json"] + kinds["not tweets"]
    for tid, tweet in tweets.items():
        post = stored[tid]
        assert post.platform == "twitter"
        assert post.text == tweet["text"]
        assert post.author_handle == tweet["_username"]
        assert post.published_at == datetime.fromisoformat(
            tweet["created_at"].replace("Z", "+00:00")
        )
        assert post.lang == _twitter_lang(tweet.get("lang"))
        pm = tweet.get("public_metrics", {})
        assert post.metrics.get("likes") == pm.get("like_count")
        assert post.metrics.get("shares") == pm.get("retweet_count")
        assert post.metrics.get("replies") == pm.get("reply_count")
        assert post.reply_to == _ref(tweet, "replied_to")
        assert post.repost_of == _ref(tweet, "retweeted")
        assert post.extra.get("quoted") == _ref(tweet, "quoted")
        if tweet["_username"]:
            assert post.url == f"https://twitter.com/{tweet['_username']}/status/{tid}"
        else:  # author withheld from includes: no handle, still a working link
            assert post.url == f"https://twitter.com/i/web/status/{tid}"
    reasons = quarantine(db)
    # Decisions per non-tweet file, asserted with their reasons:
    if name in ("users.jsonl", "counts.jsonl", "lists.jsonl"):
        what = {
            "users.jsonl": "user objects",
            "counts.jsonl": "tweet-count buckets",
            "lists.jsonl": "list objects",
        }[name]
        assert reasons and all("not tweets" in r and what in r for r in reasons.values())
        assert set(reasons) == {f"line {n}" for n in range(1, kinds["not tweets"] + 1)}
    if name.endswith("_compliance.jsonl"):
        assert report.skipped > 0 and report.stored == 0 and not reasons
    if name == "empty.json":
        assert report.read == 0 and report.stored == 0 and not reasons
    if name == "streaming_output_with_error.jsonl":
        assert report.stored == 7
        assert list(reasons) == ["line 8"] and "bad JSON" in reasons["line 8"]


@pytest.mark.shared_data
def test_twitter_v2_authors_and_page_locations(
    shared_data: Path, db: Database, fetch_ctx: FetchContext
) -> None:
    report = run(db, fetch_ctx, shared_data / TWARC / "2sets.jsonl", "twitter-v2")
    assert report.stored == 200 and report.read == 200
    with db.session() as s:
        handles = set(s.scalars(select(Author.handle).where(Author.platform == "twitter")))
        stored = {p.author_handle for p in s.scalars(select(Post))}
    assert handles == stored


def test_twitter_v2_twarc_csv_columns(db: Database, fetch_ctx: FetchContext) -> None:
    report = run(db, fetch_ctx, FIX / "twarc.csv", "twitter-v2")
    assert report.stored == 3 and report.quarantined == 0
    p = posts(db)
    assert p["7001"].author_handle == "astana_forum"
    assert p["7001"].text == "Астана принимает форум, #diplomacy"
    assert p["7001"].metrics == {"likes": 5, "shares": 2}
    assert p["7002"].reply_to == "7001" and p["7002"].repost_of is None
    assert p["7003"].repost_of == "7001"
    assert p["7002"].lang == "en"


def test_gzip_ndjson_detected_by_magic_bytes(tmp_path: Path, db: Database, settings: Any) -> None:
    seen: list[int] = []
    ctx = FetchContext(settings=settings, on_bytes=seen.append)
    plain_name = tmp_path / "export.jsonl"  # gzip inside, no .gz suffix
    shutil.copy(FIX / "tweets.jsonl.gz", plain_name)
    report = run(db, ctx, plain_name, "twitter-v2")
    assert report.read == 4 and report.stored == 3 and report.quarantined == 1
    assert sum(seen) == plain_name.stat().st_size  # compressed bytes, for progress
    assert "bad JSON" in quarantine(db)["line 3"]
    p = posts(db)
    assert p["9002"].reply_to == "9001" and p["9002"].lang == "kk"
    assert p["9003"].repost_of == "9001"
    # The same file under its real name imports nothing new.
    again = run(db, ctx, FIX / "tweets.jsonl.gz", "twitter-v2")
    assert again.stored == 0 and again.duplicates == 3


# ---------------------------------------------------------------------------- IRA


@pytest.mark.shared_data
def test_ira_all_files_import(shared_data: Path, db: Database, fetch_ctx: FetchContext) -> None:
    folder = shared_data / "ira-troll-tweets-sample" / "tweets"
    files = sorted(folder.glob("*.csv.gz"))
    rows: list[tuple[str, ...]] = []
    for f in files:
        with gzip.open(f, "rt", encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            rows.extend(tuple(r) for r in reader)
    distinct = len(set(rows))
    assert len(files) == 30 and len(rows) == 51_598
    report = run(db, fetch_ctx, folder, "ira")
    assert report.read == len(rows)
    assert report.quarantined == 0
    # Rows repeated verbatim in the source are one tweet: stored once, counted as duplicates.
    assert report.stored == distinct
    assert report.duplicates == len(rows) - distinct
    assert count(db) == distinct
    languages = Counter(r[header.index("language")] for r in set(rows))
    with db.session() as s:
        by_lang = dict(s.execute(select(Post.lang, func.count()).group_by(Post.lang)).all())
        assert by_lang["en"] == languages["English"]
        assert by_lang["ru"] == languages["Russian"]
        assert by_lang["uk"] == languages["Ukrainian"]
        assert by_lang[None] == languages["LANGUAGE UNDEFINED"]
        first = s.scalars(
            select(Post).where(Post.author_handle == "AnastasiaR777").order_by(Post.published_at)
        ).first()
        assert first is not None
        assert first.published_at == datetime(2015, 6, 30, 14, 22, tzinfo=UTC)
        assert first.text.startswith("Ученые: сон на рабочем месте")
        assert first.lang == "ru"
        assert first.extra["account_category"] == "NonEnglish"  # from ../authors.csv
        assert first.extra["region"] == "Azerbaijan"
        assert s.scalar(select(func.count(func.distinct(Post.author_handle)))) == 30


def test_ira_profile_bad_rows_and_cli_exit_code(tmp_path: Path, cli: Any, db: Database) -> None:
    r = cli("ingest", "tabular", str(FIX / "ira_small.csv"), "--profile", "ira")
    assert r.exit_code == 3, r.output
    assert "rows" in r.output  # the progress bar's counter
    assert "quarantined" in r.output
    q = quarantine(db)
    assert "wrong number of fields" in q["line 3"]
    assert "published_at" in q["line 4"] and "unreadable date/time" in q["line 4"]
    stored = list(posts(db).values())
    assert len(stored) == 2 and {p.lang for p in stored} == {"ru", "en"}
    clean = tmp_path / "clean.csv"
    lines = (FIX / "ira_small.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    clean.write_text(lines[0] + lines[1] + lines[4], encoding="utf-8")
    r = cli("ingest", "tabular", str(clean), "--profile", "ira")
    assert r.exit_code == 0, r.output  # both rows known already: duplicates, nothing bad
    assert count(db) == 2


# ------------------------------------------------------------------- CrowdTangle, Media Cloud


@pytest.mark.shared_data
def test_crowdtangle_api_json(shared_data: Path, db: Database, fetch_ctx: FetchContext) -> None:
    path = shared_data / CT / "ct_shares_links_endpoint.json"
    items = json.loads(path.read_text(encoding="utf-8"))
    report = run(db, fetch_ctx, path, "crowdtangle")
    assert report.stored == len(items) and report.quarantined == 0
    p = posts(db)
    for item in items:
        post = p[str(item["id"])]
        assert post.platform == "facebook"
        assert post.text == (item.get("message") or item.get("description") or item["title"])
        assert post.url == item["postUrl"]
        assert post.author_name == item["account.name"]
        assert post.metrics["likes"] == item["statistics.actual.likeCount"]
        assert post.metrics["shares"] == item["statistics.actual.shareCount"]
        assert post.published_at == datetime.fromisoformat(item["date"]).replace(tzinfo=UTC)


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "name", ["ct_shares_coornet_format.csv", "sample_ct_out_links_endpoint_flat.csv"]
)
def test_crowdtangle_csv_exports(
    name: str, shared_data: Path, db: Database, fetch_ctx: FetchContext
) -> None:
    path = shared_data / CT / name
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ids = {r["id"] for r in rows}
    report = run(db, fetch_ctx, path, "crowdtangle")
    assert report.read == len(rows) and report.quarantined == 0
    assert report.stored == len(ids)
    assert report.duplicates == len(rows) - len(ids)  # one ct_shares row per shared link
    p = posts(db)
    first = rows[0]
    post = p[first["id"]]
    assert post.extra["link"] == first["expanded"]
    if "message" in first:
        assert post.text == first["message"]
        assert post.author_handle == first["account_handle"]
        assert post.metrics["likes"] == int(first["statistics_actual_likeCount"])
    else:  # CooRnet rows carry only the shared link and the account
        assert post.text == first["expanded"]
        assert post.author_name == first["account.name"]
        assert post.extra["is_orig"] is (first["is_orig"] == "TRUE")


@pytest.mark.shared_data
def test_mediacloud_csv(shared_data: Path, db: Database, fetch_ctx: FetchContext) -> None:
    path = shared_data / CT / "mediacloud_telesurenglish2017-1000.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    report = run(db, fetch_ctx, path, "mediacloud")
    assert report.stored == len(rows) == 312 and report.quarantined == 0
    p = posts(db)
    for row in rows:
        post = p[row["stories_id"]]
        assert post.platform == "news"
        assert post.url == row["url"].strip()
        assert post.lang == (row["language"] or None)
        assert post.author_handle == row["media_name"].strip()  # values are trimmed
        assert "&#" not in (post.title or "")
    assert p["566353072"].title == (
        "Fuentes no oficiales: Barack Obama pone fin a la política “pies secos, pies mojados”"
    )


def test_json_array_inside_object_and_a_cut_file(db: Database, fetch_ctx: FetchContext) -> None:
    report = run(db, fetch_ctx, FIX / "ct_api.json", "crowdtangle")
    assert report.stored == 2
    p = posts(db)
    assert p["501"].metrics == {"likes": 10, "shares": 4, "comments": 2}
    assert p["502"].author_handle == "2"  # a group: no handle, its platform id
    report = run(db, fetch_ctx, FIX / "ct_truncated.json", "crowdtangle")
    assert report.read == 3 and report.duplicates == 2 and report.quarantined == 1
    assert "bad JSON after item 2" in quarantine(db)["item 3"]


# ------------------------------------------------------------------- generic CSV, bad input


def test_generic_csv_bad_rows_are_located_and_the_rest_imported(
    db: Database, fetch_ctx: FetchContext
) -> None:
    report = run(db, fetch_ctx, FIX / "generic.csv")
    assert report.read == 7
    assert report.stored == 4
    assert report.quarantined == 3
    q = quarantine(db)
    # g2 spans lines 3-5, so the short row is on line 6 and the bad date on line 7
    assert set(q) == {"line 6", "line 7", "line 9"}
    assert q["line 6"] == "wrong number of fields: 3 where the header has 6"
    assert "published_at" in q["line 7"] and "not a date" in q["line 7"]
    assert q["line 9"] == "missing required field: text"
    p = posts(db)
    assert p["g2"].text == "Посольство сообщает:\r\nконсульский приём переносится\r\nна понедельник"
    assert p["g2"].lang == "ru"  # a language name
    assert p["g2"].published_at == datetime(2026, 3, 1, 11, 30, tzinfo=UTC)
    assert p["g5"].text == 'Quoted, with a comma and "quotes"'
    assert p["g5"].published_at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # unix seconds
    assert p["g7"].text == "Last row without a newline"
    assert p["g1"].platform == "generic" and p["g1"].author_handle == "mfa_kz"


def test_idempotent_import(db: Database, fetch_ctx: FetchContext) -> None:
    first = run(db, fetch_ctx, FIX / "generic.csv", platform="telegram")
    second = run(db, fetch_ctx, FIX / "generic.csv", platform="telegram")
    assert first.stored == 4
    assert second.stored == 0 and second.duplicates == 4
    assert count(db) == 4
    assert {p.platform for p in posts(db).values()} == {"telegram"}


def test_missing_required_column_stores_nothing(
    db: Database, fetch_ctx: FetchContext, cli: Any
) -> None:
    path = FIX / "missing_text.csv"
    with pytest.raises(MissingColumn) as err:
        run(db, fetch_ctx, path)
    assert "'text'" in str(err.value) and "missing_text.csv" in str(err.value)
    assert count(db) == 0 and count(db, Quarantine) == 0
    r = cli("ingest", "tabular", str(path))
    assert r.exit_code == 1
    assert "no column 'text'" in r.output


def test_oversize_field_is_quarantined(
    tmp_path: Path, db: Database, fetch_ctx: FetchContext
) -> None:
    path = tmp_path / "big.csv"
    huge = "x" * 200_000
    path.write_text(f'id,text\n1,first\n2,"{huge}"\n3,third\n4,{"y" * 100_050}\n', encoding="utf-8")
    report = run(db, fetch_ctx, path)
    assert report.stored == 2 and report.quarantined == 2
    q = quarantine(db)
    assert "field larger than field limit" in q["line 3"]
    assert "longer than 100000" in q["line 5"]
    assert set(posts(db)) == {"1", "3"}


def test_overlong_line_is_skipped_with_bounded_reading(
    tmp_path: Path, db: Database, fetch_ctx: FetchContext
) -> None:
    path = tmp_path / "long.jsonl"
    line = json.dumps({"id": "2", "text": "z" * 5000})
    path.write_text(
        '{"id": "1", "text": "one"}\n' + line + '\n{"id": "3", "text": "three"}\n', encoding="utf-8"
    )
    report = run(db, fetch_ctx, path, max_line_bytes=2048)
    assert report.stored == 2 and report.quarantined == 1
    assert quarantine(db)["line 2"] == "line longer than 2,048 bytes"


def test_cp1251_is_detected(db: Database, fetch_ctx: FetchContext) -> None:
    report = run(db, fetch_ctx, FIX / "cp1251.csv")
    assert report.stored == 3 and report.quarantined == 0
    p = posts(db)
    assert p["101"].text == "Министерство иностранных дел опубликовало заявление"
    assert p["103"].published_at == datetime(2026, 2, 2, 12, 15, tzinfo=UTC)
    assert {x.lang for x in p.values()} == {"ru"}


def test_wrong_encoding_line_is_quarantined(db: Database, fetch_ctx: FetchContext) -> None:
    report = run(db, fetch_ctx, FIX / "mixed_encoding.csv")  # UTF-8 with BOM, one cp1251 line
    assert report.stored == 2 and report.quarantined == 1
    assert "not valid utf-8 text" in quarantine(db)["line 3"]
    assert posts(db)["u1"].text == "Первая строка в UTF-8"
    # Forcing the legacy encoding reads that line and garbles the others, which is on the user.
    forced = run(db, fetch_ctx, FIX / "mixed_encoding.csv", encoding="cp1251")
    assert forced.stored == 1 and posts(db)["u2"].text == "Вторая строка в cp1251"


def test_undecodable_file_has_a_clear_error(
    tmp_path: Path, db: Database, fetch_ctx: FetchContext
) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(bytes(range(256)) * 50)
    with pytest.raises(Exception, match=r"binary\.csv") as err:
        run(db, fetch_ctx, path)
    assert count(db) == 0
    assert err.value is not None


# ---------------------------------------------------------------------------- profiles


def test_custom_toml_profile_through_the_cli(cli: Any, db: Database) -> None:
    r = cli(
        "ingest",
        "tabular",
        str(FIX / "channel_export.csv"),
        "--profile",
        str(FIX / "telegram_export.toml"),
    )
    assert r.exit_code == 0, r.output
    p = posts(db)
    assert set(p) == {"mfa_kz/15", "mfa_kz/16", "mfa_kz/17"}
    first, second, third = p["mfa_kz/15"], p["mfa_kz/16"], p["mfa_kz/17"]
    assert first.platform == "telegram"
    assert first.published_at == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)  # Almaty is UTC+5
    assert first.metrics == {"views": 1204}
    assert first.url == "https://t.me/mfa_kz/15"
    assert first.extra == {"pinned": True}
    assert second.text == "Фото с брифинга" and second.reply_to == "15"  # caption fallback
    assert third.lang == "kk" and first.lang == "ru"


def test_profiles_are_validated() -> None:
    with pytest.raises(ProfileError, match="unknown post field 'body'"):
        load_profile({"name": "x", "fields": {"external_id": "id", "body": "b"}})
    with pytest.raises(ProfileError, match="unknown transform"):
        load_profile(
            {"name": "x", "fields": {"external_id": {"column": "id", "transform": "rot13"}}}
        )
    with pytest.raises(ProfileError, match="built-in"):
        load_profile({"name": "ira", "fields": {"external_id": "id"}})
    with pytest.raises(ProfileError, match="no profile 'nope'"):
        load_profile("nope")
    assert load_profile("generic", platform="rss").platform == "rss"


def test_to_post_is_pure_and_reprocessable() -> None:
    conn = TabularConnector()
    raw = RawRecord(
        payload={"id": "1", "text": "hi there", "lang": "English"},
        location="line 2",
        kind="generic@rss",
    )
    post = conn.to_post(raw)
    assert post is not None and post.platform == "rss" and post.lang == "en"
    assert conn.to_post(raw) == post


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("Russian", "ru"),
        ("English", "en"),
        ("Kazakh", "kk"),
        ("казахский", "kk"),
        ("Farsi (Persian)", "fa"),
        ("Tagalog (Filipino)", "tl"),
        ("Pushto", "ps"),
        ("LANGUAGE UNDEFINED", None),
        ("und", None),
        ("qme", None),
        ("en-GB", "en"),
        ("zh-CN", "zh"),
        ("in", "id"),
        ("Klingonese", None),
    ],
)
def test_language_names_become_codes(value: str, code: str | None) -> None:
    assert lang_code(value) == code


def test_fetch_yields_locations_without_storing(fetch_ctx: FetchContext) -> None:
    conn = TabularConnector()
    cfg = conn.parse_config({"path": str(FIX / "generic.csv")})
    cursor: dict[str, Any] = {}
    items = list(conn.fetch(cfg, cursor, fetch_ctx))
    assert [i.location for i in items] == [f"line {n}" for n in (2, 3, 6, 7, 8, 9, 10)]
    assert isinstance(items[2], BadRecord)
    assert cursor["files"] == 1


def test_folder_import_sets_aside_a_file_of_another_layout(
    tmp_path: Path, db: Database, fetch_ctx: FetchContext
) -> None:
    folder = tmp_path / "export"
    (folder / "more").mkdir(parents=True)
    shutil.copy(FIX / "ira_small.csv", folder / "a.csv")
    with gzip.open(folder / "more" / "b.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write(
            "author_id,content,publish_date,language\n"
            "Other,Second file's tweet,2016-01-01 10:00:00,English\n"
        )
    (folder / "authors.csv").write_text(
        "author_id,account_category\nTestTroll,Test\n", encoding="utf-8"
    )
    (folder / "notes.md").write_text("not data", encoding="utf-8")
    report = run(db, fetch_ctx, folder, "ira")
    assert report.stored == 3
    q = quarantine(db)
    assert q["authors.csv: line 1"].startswith("file skipped:")
    assert "no column 'content'" in q["authors.csv: line 1"]
    assert "wrong number of fields" in q["a.csv: line 3"]
    assert "unreadable date/time" in q["a.csv: line 4"]
    assert len(q) == 3
    assert {p.extra.get("account_category") for p in posts(db).values()} == {None}


def test_database_errors_are_quarantined_row_by_row(db: Database, fetch_ctx: FetchContext) -> None:
    # A trigger makes the database itself refuse one row, as a constraint would.
    sqlite = db.engine.dialect.name == "sqlite"
    ddl = (
        [
            "CREATE TRIGGER refuse_102 BEFORE INSERT ON post WHEN NEW.external_id = '102' "
            "BEGIN SELECT RAISE(ABORT, 'row refused by test trigger'); END"
        ]
        if sqlite
        else [
            "CREATE FUNCTION refuse_102() RETURNS trigger AS $$ BEGIN "
            "IF NEW.external_id = '102' THEN RAISE EXCEPTION 'row refused by test trigger'; "
            "END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_102 BEFORE INSERT ON post FOR EACH ROW "
            "EXECUTE FUNCTION refuse_102()",
        ]
    )
    drop = (
        ["DROP TRIGGER refuse_102"]
        if sqlite
        else ["DROP TRIGGER refuse_102 ON post", "DROP FUNCTION refuse_102()"]
    )
    with db.engine.begin() as conn:
        for stmt in ddl:
            conn.exec_driver_sql(stmt)
    try:
        report = run(db, fetch_ctx, FIX / "cp1251.csv")
    finally:
        with db.engine.begin() as conn:
            for stmt in drop:
                conn.exec_driver_sql(stmt)
    assert report.stored == 2 and report.quarantined == 1
    q = quarantine(db)
    assert list(q) == ["line 3"]
    assert q["line 3"].startswith("database rejected the record")
    assert "row refused by test trigger" in q["line 3"]
    assert set(posts(db)) == {"101", "103"}


def test_truncated_gzip_keeps_what_was_readable(
    tmp_path: Path, db: Database, fetch_ctx: FetchContext
) -> None:
    lines = "".join(
        json.dumps({"id": str(n), "text": f"post number {n} " + "w" * n}) + "\n"
        for n in range(1, 400)
    )
    whole = gzip.compress(lines.encode("utf-8"))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    report = run(db, fetch_ctx, path)
    q = quarantine(db)
    assert report.quarantined == 1 and report.stored > 0
    assert next(iter(q.values())).startswith("file is damaged, the rest cannot be read")
    stored = posts(db)
    assert set(stored) == {str(n) for n in range(1, len(stored) + 1)}  # a clean prefix


def test_large_sqlite_import_rebuilds_the_search_indexes(
    db, fetch_ctx, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text as sql

    from elshi.listen import flows
    from elshi.listen.flows import import_with
    from elshi.plugins import get_connector

    if db.engine.dialect.name != "sqlite":
        pytest.skip("bulk loading applies to SQLite only")
    path = tmp_path / "big.csv"
    path.write_text(
        "id,text,author,published_at,lang\n"
        + "".join(
            f"b{n},post number {n} about Astana,user{n % 7},2026-01-0{1 + n % 9},en\n"
            for n in range(300)
        ),
        encoding="utf-8",
    )
    monkeypatch.setattr(flows, "BULK_MIN_BYTES", 1)
    dropped: list[set[str]] = []
    real_drop = flows._drop_bulk_indexes

    def spy(database):  # type: ignore[no-untyped-def]
        real_drop(database)
        with database.engine.connect() as conn:
            dropped.append(
                {
                    r[0]
                    for r in conn.execute(sql("SELECT name FROM sqlite_master WHERE type='index'"))
                }
            )

    monkeypatch.setattr(flows, "_drop_bulk_indexes", spy)
    report = import_with(
        db,
        connector=get_connector("tabular"),
        config={"path": str(path), "profile": "generic"},
        ctx=fetch_ctx,
    )
    assert report.stored == 300
    assert dropped and "ix_post_lang_published" not in dropped[0]
    with db.engine.connect() as conn:
        names = {
            r[0] for r in conn.execute(sql("SELECT name FROM sqlite_master WHERE type='index'"))
        }
        plan = " ".join(
            str(r[-1])
            for r in conn.execute(
                sql(
                    "EXPLAIN QUERY PLAN SELECT id FROM post WHERE lang='en' "
                    "ORDER BY published_at DESC"
                )
            )
        )
    assert set(flows._BULK_INDEXES) <= names
    assert "ix_post_lang_published" in plan


def _bulk_fixture(path) -> None:  # type: ignore[no-untyped-def]
    lines = ["id,text,author,published_at,lang"]
    for n in range(2500):
        # Every tenth post repeats an earlier one's text (near duplicates across batches).
        body = f"statement {n % 10 if n % 10 == 0 else n} on the Astana summit"
        lines.append(f"b{n},{body},user{n % 7},2026-01-0{1 + n % 9},en")
    lines.append("b-bad,,user1,2026-01-01,en")  # no text: quarantined
    lines.append("b1,a second b1 is a duplicate key,user1,2026-01-01,en")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_bulk_import_maps_in_a_child_process_with_the_same_result(
    db, settings, fetch_ctx, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A big SQLite import (mapping in a child process, near duplicates marked in one pass at
    the end) stores exactly what the row-by-row path stores."""
    from sqlalchemy import text as sql

    from elshi.db import Database
    from elshi.listen import flows
    from elshi.listen.flows import import_with
    from elshi.migrate import migrate
    from elshi.plugins import get_connector

    if db.engine.dialect.name != "sqlite":
        pytest.skip("bulk loading applies to SQLite only")
    path = tmp_path / "bulk.csv"
    _bulk_fixture(path)
    children: list[str] = []
    real_child = flows._ingest_in_child

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        children.append("child")
        return real_child(*args, **kwargs)

    monkeypatch.setattr(flows, "_ingest_in_child", spy)

    def load(database, bulk_min: int):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(flows, "BULK_MIN_BYTES", bulk_min)
        report = import_with(
            database,
            connector=get_connector("tabular"),
            config={"path": str(path), "profile": "generic"},
            ctx=fetch_ctx,
        )
        with database.engine.connect() as conn:
            rows = conn.execute(
                sql(
                    "SELECT p.external_id, p.text, p.author_id IS NOT NULL, d.external_id "
                    "FROM post p LEFT JOIN post d ON d.id = p.dup_of_id ORDER BY p.external_id"
                )
            ).all()
            hits = conn.execute(
                sql("SELECT count(*) FROM post_fts WHERE post_fts MATCH 'summit'")
            ).scalar()
        return report, rows, hits

    bulk_report, bulk_rows, bulk_hits = load(db, 1)
    assert children == ["child"]
    other_url = f"sqlite:///{tmp_path / 'rowwise.db'}"
    other = Database(settings.model_copy(update={"database_url": other_url}))
    migrate(other.engine)
    row_report, row_rows, row_hits = load(other, 1 << 60)
    assert children == ["child"]  # the second import ran inline

    assert bulk_rows == row_rows
    assert bulk_hits == row_hits == 2500
    for field in ("read", "stored", "duplicates", "near_duplicates", "quarantined"):
        assert getattr(bulk_report, field) == getattr(row_report, field), field
    assert bulk_report.read == 2502 and bulk_report.stored == 2500
    assert bulk_report.duplicates == 1 and bulk_report.quarantined == 1
    # b10, b20, ... repeat b0's text ("statement 0 ..."): 249 near duplicates of b0.
    assert bulk_report.near_duplicates == 249
    dups = {ext: first for ext, _, _, first in bulk_rows if first}
    assert len(dups) == 249 and set(dups.values()) == {"b0"}
