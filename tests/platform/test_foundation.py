"""Settings, migrations, demo data, ingest semantics and search on the configured backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from elshi.connectors.base import BadRecord, PostIn, RawRecord
from elshi.connectors.demo import DemoConnector
from elshi.db import Database
from elshi.listen import service
from elshi.listen.flows import ingest_records
from elshi.listen.models import Post, Quarantine
from elshi.migrate import current_revision, head_revision
from elshi.settings import SettingsError, load_settings


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELSHI_PORT", "not-a-port")
    with pytest.raises(SettingsError, match="ELSHI_PORT"):
        load_settings()


def test_config_file_and_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "elshi.toml"
    cfg.write_text('[elshi]\nport = 9001\nlog_level = "DEBUG"\n', encoding="utf-8")
    monkeypatch.setenv("ELSHI_LOG_LEVEL", "ERROR")
    s = load_settings(cfg)
    assert s.port == 9001
    assert s.log_level == "ERROR"
    cfg.write_text("[elshi]\nbogus = 1\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="bogus"):
        load_settings(cfg)


def test_placeholder_secret_refused_outside_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELSHI_DEMO", raising=False)
    monkeypatch.delenv("ELSHI_SECRET_KEY", raising=False)
    with pytest.raises(SettingsError, match="ELSHI_SECRET_KEY"):
        load_settings(demo=False).require_secret()
    load_settings(demo=True).require_secret()
    load_settings(demo=False, secret_key="x" * 40).require_secret()


def test_database_is_at_head(db: Database) -> None:
    assert current_revision(db.engine) == head_revision()


def _demo_records(n: int) -> list[RawRecord]:
    conn = DemoConnector()
    cfg = conn.parse_config({"count": n, "seed": 3})
    return list(conn.fetch(cfg, {}, None))  # type: ignore[arg-type]


def test_ingest_is_idempotent(db: Database) -> None:
    conn = DemoConnector()
    records = _demo_records(300)
    first = ingest_records(db, conn, records, origin="demo", batch_size=64)
    assert first.read == 300
    assert first.stored == 300
    assert first.near_duplicates > 0  # templates repeat, so equal texts are marked
    second = ingest_records(db, conn, records, origin="demo", batch_size=64)
    assert second.stored == 0
    assert second.duplicates == 300
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Post)) == 300
        marked = s.scalar(select(func.count()).select_from(Post).where(Post.dup_of_id.is_not(None)))
        assert marked == first.near_duplicates
        # the earliest post of each text is never marked as a duplicate of a later one
        for post in s.scalars(select(Post).where(Post.dup_of_id.is_not(None)).limit(20)):
            original = s.get(Post, post.dup_of_id)
            assert original is not None and original.id < post.id
            assert original.content_hash == post.content_hash


class _Flaky(DemoConnector):
    slug = "flaky"

    def to_post(self, raw: RawRecord) -> PostIn | None:
        if raw.payload.get("broken"):
            raise KeyError("text")
        return super().to_post(raw)


def test_bad_records_are_quarantined_and_the_rest_stored(db: Database) -> None:
    records: list[RawRecord | BadRecord] = list(_demo_records(10))
    records.insert(3, BadRecord(location="line 4", reason="bad JSON: Expecting value", raw="{oops"))
    broken = RawRecord(payload={"broken": True}, location="line 7")
    records.insert(6, broken)
    huge = _demo_records(1)[0]
    huge.payload = dict(huge.payload, id="huge", text="x" * 200_001)
    huge.location = "line 9"
    records.insert(8, huge)
    report = ingest_records(db, _Flaky(), records, origin="f.ndjson", max_chars=100_000)
    assert report.read == 13
    assert report.stored == 10
    assert report.quarantined == 3
    with db.session() as s:
        rows = {q.location: q.reason for q in s.scalars(select(Quarantine))}
    assert "bad JSON" in rows["line 4"]
    assert rows["line 7"] == "missing required field: text"
    assert "longer than 100000" in rows["line 9"]


def test_search_filters_and_inflected_forms(db: Database) -> None:
    conn = DemoConnector()
    ingest_records(db, conn, _demo_records(400), origin="demo")
    with db.session() as s:
        total_all, _ = service.search_posts(db=s, query=service.SearchQuery())
        assert total_all == 400
        # Kazakh dative form finds nominative and genitive forms
        total, posts = service.search_posts(
            db=s, query=service.SearchQuery(q="Қазақстанға", lang="kk")
        )
        assert total > 0
        assert all(p.lang == "kk" for p in posts)
        assert all("қазақстан" in p.text.casefold() for p in posts)
        # Russian genitive finds other forms
        total_ru, posts_ru = service.search_posts(
            db=s, query=service.SearchQuery(q="Казахстана", limit=50)
        )
        assert total_ru > 0
        assert any("Казахстан" in p.text for p in posts_ru)
        # pagination is stable and newest first
        _, page1 = service.search_posts(db=s, query=service.SearchQuery(q="Kazakhstan", limit=5))
        _, page2 = service.search_posts(
            db=s, query=service.SearchQuery(q="Kazakhstan", limit=5, offset=5)
        )
        assert not {p.id for p in page1} & {p.id for p in page2}
        stamps = [p.published_at for p in page1 + page2]
        assert stamps == sorted(stamps, reverse=True)
        author = page1[0].author_handle
        _, by_author = service.search_posts(
            db=s, query=service.SearchQuery(author=author, limit=100)
        )
        assert by_author and all(p.author_handle == author for p in by_author)
        none, _ = service.search_posts(db=s, query=service.SearchQuery(q="zzzzqqq"))
        assert none == 0


def test_cli_demo_search_and_exit_codes(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("demo", "--no-serve", "--posts", "200")
    assert r.exit_code == 0, r.output
    assert "200 posts" in r.output
    r = cli("search", "Astana", "--json")
    assert r.exit_code == 0
    assert '"total"' in r.output
    r = cli("search", "zzzzqqq")
    assert r.exit_code == 4
    r = cli("ingest", "nope", "x")
    assert r.exit_code == 2


def test_search_total_is_capped_and_flagged(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = DemoConnector()
    ingest_records(db, conn, _demo_records(120), origin="demo")
    monkeypatch.setattr(service, "COUNT_CAP", 50)
    with db.session() as s:
        page = service.search_page(db=s, query=service.SearchQuery(limit=10))
        assert (page.total, page.exact, len(page.items)) == (50, False, 10)
        small = service.search_page(db=s, query=service.SearchQuery(q="Astana", limit=10))
        if small.total <= 50:
            assert small.exact
        last = service.search_page(db=s, query=service.SearchQuery(limit=10, offset=115))
        assert (last.total, last.exact, len(last.items)) == (120, True, 5)
