"""Watch lists: terms across scripts and case endings, incremental rollups, dashboards, charts."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from elshi.accounts.models import AuditEvent
from elshi.accounts.service import Principal
from elshi.app import create_app
from elshi.db import Database
from elshi.listen.models import Author
from elshi.missions import service as missions
from elshi.settings import Settings
from elshi.watch import service
from elshi.watch.matching import process_posts
from elshi.watch.models import WatchDaily, WatchMatch
from elshi.web import i18n
from tests.workspace_helpers import add_post, add_source, add_staff, csrf, sign_in

SYSTEM = Principal.system()
T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
CHINA = "China | Қытай | Китай | 中国 | country:CN"


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=db)) as c:
        yield c


def _mission(db: Database, slug: str = "beijing") -> int:
    with db.session() as s:
        hq = missions.ensure_hq(db=s)
        m = missions.get_mission(db=s, slug=slug) or missions.create_mission(
            db=s, slug=slug, name=slug, parent_id=hq.id
        )
        return m.id


def _watch(db: Database, mission_id: int, terms: str = CHINA, context: str = "") -> int:
    with db.session() as s:
        return service.save_watch(
            db=s,
            principal=SYSTEM,
            mission_id=mission_id,
            name="KZ–CN",
            terms=terms,
            context_terms=context,
        ).id


def test_terms_parse_and_bad_terms_name_the_line() -> None:
    terms = service.parse_terms("China | Қытай | country:CN\n\n  Beijing|Пекин  ")
    assert terms == [
        {"name": "China", "aliases": ["Қытай"], "entity": "country:CN"},
        {"name": "Beijing", "aliases": ["Пекин"]},
    ]
    assert service.format_terms(terms) == "China | Қытай | country:CN\nBeijing | Пекин"
    with pytest.raises(service.InvalidWatch) as err:
        service.parse_terms("ok\n" + "x" * 201)
    assert err.value.field == "terms" and err.value.params == {"line": 2}
    with pytest.raises(service.InvalidWatch, match="at most 200 lines"):
        service.parse_terms("\n".join(f"t{i}" for i in range(201)))


def test_matching_across_scripts_endings_and_entities(db: Database) -> None:
    mid = _mission(db)
    wid = _watch(db, mid, context="Kazakhstan | Қазақстан | Казахстан")
    with db.session() as s:
        kk = add_post(
            s, "Қазақстан мен Қытайдың ынтымақтастығы артты", T0, lang="kk", sentiment="positive"
        )
        ru = add_post(
            s, "Казахстан и Китаем подписали соглашение", T0 + timedelta(hours=1), lang="ru"
        )
        zh = add_post(s, "哈萨克斯坦 Kazakhstan 与中国签署协议", T0 + timedelta(hours=2), lang="zh")
        ent = add_post(
            s,
            "Kazakhstan talks with Beijing leaders",
            T0 + timedelta(hours=3),
            entities=["country:CN"],
        )
        no_ctx = add_post(s, "China opened a new port", T0 + timedelta(hours=4))
        other = add_post(s, "Қазақстан Германиямен келісті", T0 + timedelta(hours=5), lang="kk")
    result = process_posts(db)
    assert sorted(result.matched[wid]) == sorted([kk.id, ru.id, zh.id, ent.id])
    with db.session() as s:
        m = s.scalar(select(WatchMatch).where(WatchMatch.post_id == kk.id))
        assert m is not None and m.why["terms"][0]["text"] == "Қытайдың"
        assert m.why["context"][0]["text"] == "Қазақстан" and m.sentiment == "positive"
        assert s.scalar(select(WatchMatch).where(WatchMatch.post_id == ent.id)).why["terms"] == [
            {"term": 0, "entity": "country:CN"}
        ]
        assert (
            s.scalar(
                select(func.count())
                .select_from(WatchMatch)
                .where(WatchMatch.post_id.in_([no_ctx.id, other.id]))
            )
            == 0
        )
    # Running again reads nothing new.
    assert process_posts(db).posts == 0


def test_watch_sees_only_its_missions_sources(db: Database) -> None:
    mine, theirs = _mission(db, "beijing"), _mission(db, "berlin")
    wid = _watch(db, mine)
    with db.session() as s:
        a = add_post(s, "China news", T0, source_id=add_source(s, "mine", mine).id)
        b = add_post(s, "China news too", T0, source_id=add_source(s, "theirs", theirs).id)
        c = add_post(s, "China, no source", T0)
    assert sorted(process_posts(db).matched[wid]) == sorted([a.id, c.id])
    assert b.id


def test_incremental_rollups_equal_a_full_rebuild(db: Database) -> None:
    mid = _mission(db)
    wid = _watch(db, mid)
    langs = ["en", "ru", "kk"]
    with db.session() as s:
        for i in range(120):
            add_post(
                s,
                ["China trade", "Китай торговля", "Қытай сауда"][i % 3],
                T0 + timedelta(hours=7 * i),
                lang=langs[i % 3],
                platform=["rss", "telegram"][i % 2],
                sentiment=["negative", "neutral", "positive", None][i % 4],
                entities=["country:CN", "country:KZ"] if i % 5 == 0 else ["country:CN"],
                metrics={"likes": i, "views": 1000},
            )
    for _ in range(4):  # small batches, as posts arrive
        process_posts(db, batch_size=37, max_batches=1)
    process_posts(db, batch_size=37)

    def snapshot() -> list[tuple[object, ...]]:
        with db.session() as s:
            return sorted(
                tuple(r)
                for r in s.execute(
                    select(
                        WatchDaily.day,
                        WatchDaily.lang,
                        WatchDaily.platform,
                        WatchDaily.n,
                        WatchDaily.neg,
                        WatchDaily.neu,
                        WatchDaily.pos,
                        WatchDaily.engagement,
                    ).where(WatchDaily.watch_id == wid)
                )
            )

    incremental = snapshot()
    with db.session() as s:
        service.reset_watch(db=s, watch_id=wid)
    process_posts(db, batch_size=10_000)
    assert snapshot() == incremental
    with db.session() as s:
        d = service.dashboard(
            db=s,
            principal=SYSTEM,
            watch_id=wid,
            filters=service.Filters(since=T0.date(), until=T0.date() + timedelta(days=40)),
        )
        assert d.total == 120 == sum(n for _, n in d.by_lang)
        assert dict(d.by_lang) == {"en": 40, "ru": 40, "kk": 40}
        assert sum(d.sentiment["negative"]) == 30 and sum(d.sentiment["positive"]) == 30
        assert d.top_entities[0] == ("country:CN", 120) and d.top_entities[1] == ("country:KZ", 24)
        assert [p.metrics["likes"] for p in d.top_posts[:3]] == [119, 118, 117]
        assert dict(d.share_of_voice) == {"country:CN": 120, "country:KZ": 24}
        kk_only = service.dashboard(
            db=s,
            principal=SYSTEM,
            watch_id=wid,
            filters=service.Filters(
                since=T0.date(), until=T0.date() + timedelta(days=40), lang="kk"
            ),
        )
        assert kk_only.total == 40 and dict(kk_only.top_entities)["country:CN"] == 40


def test_changing_terms_rematches_history(db: Database) -> None:
    mid = _mission(db)
    wid = _watch(db, mid, terms="China")
    with db.session() as s:
        add_post(s, "China and Japan", T0)
        add_post(s, "Japan only", T0)
    assert len(process_posts(db).matched[wid]) == 1
    with db.session() as s:
        service.save_watch(
            db=s, principal=SYSTEM, mission_id=mid, name="Japan", terms="Japan", watch_id=wid
        )
    assert len(process_posts(db).matched[wid]) == 2


def _kk(message: str) -> str:
    return i18n.gettext("kk", message)


def test_admin_creates_watch_list_and_sees_dashboard(client: TestClient, db: Database) -> None:
    with db.session() as s:
        add_staff(s, "analyst@example.org", "analyst", "beijing")
        add_staff(s, "press@example.org", "press", "berlin")
    mid = _mission(db)
    sign_in(client, "analyst@example.org")
    token = csrf(client, "/watch-new")
    bad = client.post(
        "/watch-save", data={"csrf_token": token, "mission_id": mid, "name": "KZ–CN", "terms": ""}
    )
    assert (
        bad.status_code == 400
        and _kk("give at least one term") in bad.text
        and _kk("Terms") in bad.text
    )
    assert (
        client.post(
            "/watch-save",
            data={"csrf_token": "forged", "mission_id": mid, "name": "x", "terms": "x"},
        ).status_code
        == 400
    )
    ok = client.post(
        "/watch-save",
        data={"csrf_token": token, "mission_id": mid, "name": "KZ–CN", "terms": CHINA},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    wid = int(ok.headers["location"].rsplit("/", 1)[1])
    with db.session() as s:
        for i in range(20):
            add_post(
                s,
                f"Қытай жаңалығы {i}",
                datetime.now(UTC) - timedelta(days=i % 10, hours=1),
                lang="kk",
                sentiment="negative" if i % 2 else "positive",
            )
    process_posts(db)
    page = client.get(f"/watch/{wid}")
    assert page.status_code == 200 and '<span class="n" id="total">20</span>' in page.text
    assert page.text.count('<figure class="chart') == 8 and page.text.count("<svg") == 16
    assert _kk("Posts per day") in page.text and 'class="chart-table"' in page.text
    filtered = client.get(f"/watch/{wid}", params={"language": "ru"})
    assert '<span class="n" id="total">0</span>' in filtered.text
    bad_range = client.get(f"/watch/{wid}", params={"since": "2026-02-30"})
    assert (
        bad_range.status_code == 400
        and _kk("A date is not valid: use the form 2026-11-01.") in bad_range.text
    )
    svg = client.get(f"/watch/{wid}/chart/volume.svg")
    root = ET.fromstring(svg.content)
    assert root.tag.endswith("svg") and "attachment" in svg.headers["content-disposition"]
    png = client.get(f"/watch/{wid}/chart/sentiment.png")
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n" and png.headers["content-type"] == "image/png"
    rows = list(csv.reader(io.StringIO(client.get(f"/watch/{wid}/chart/volume.csv").text)))
    assert sum(int(r[1]) for r in rows[1:] if r[1]) == 20
    assert client.get(f"/watch/{wid}/chart/nothing.svg").status_code == 404
    # Someone of another mission does not see it.
    client.post("/logout", data={"csrf_token": csrf(client, "/")})
    sign_in(client, "press@example.org")
    assert client.get(f"/watch/{wid}").status_code == 404
    assert client.get(f"/watch/{wid}/chart/volume.csv").status_code == 404


def test_actor_type_is_editable_and_audited(client: TestClient, db: Database) -> None:
    with db.session() as s:
        add_staff(s, "analyst@example.org", "analyst", "hq")
        author = Author(platform="rss", handle="kaznews", name="Kaz News", extra={})
        s.add(author)
        s.flush()
        post = add_post(s, "Kazakhstan", T0, author=author)
        aid, pid = author.id, post.id
    sign_in(client, "analyst@example.org")
    page = client.get(f"/authors/{aid}")
    assert page.status_code == 200 and _kk("unknown") in page.text
    token = csrf(client, f"/authors/{aid}")
    assert (
        client.post(
            f"/authors/{aid}/actor-type", data={"csrf_token": token, "actor_type": "spy"}
        ).status_code
        == 400
    )
    r = client.post(
        f"/authors/{aid}/actor-type",
        data={"csrf_token": token, "actor_type": "state_media"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert _kk("state media") in client.get(f"/authors/{aid}").text
    detail = client.get(f"/posts/{pid}")
    assert _kk("state media") in detail.text
    with db.session() as s:
        a = s.get(Author, aid)
        assert a is not None and a.actor_type == "state_media" and a.actor_type_by is not None
        actions = list(
            s.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "author"))
        )
    assert "author.actor_type" in actions and "author.viewed" in actions


def test_explorer_facets_and_saved_search_link(client: TestClient, db: Database) -> None:
    with db.session() as s:
        add_staff(s, "analyst@example.org", "analyst", "hq")
        for i in range(6):
            add_post(
                s,
                f"Astana forum {i}",
                T0 + timedelta(hours=i),
                lang=["en", "ru"][i % 2],
                sentiment=["negative", "positive", "neutral"][i % 3],
            )
    sign_in(client, "analyst@example.org")
    # Posts stored straight into the table are not in the SQLite search index: filter, no words.
    page = client.get("/explore", params={"since": "2026-11-02"})
    assert page.status_code == 200 and "Табылды: 6" in page.text
    assert 'id="facet-language"' in page.text and "?since=2026-11-02&amp;language=en" in page.text
    neg = client.get("/explore", params={"since": "2026-11-02", "sentiment": "negative"})
    assert "Табылды: 2" in neg.text
    assert client.get("/explore", params={"sentiment": "angry"}).status_code == 400
    token = csrf(client, "/explore")
    saved = client.post(
        "/explore/save",
        data={
            "csrf_token": token,
            "name": "forum, negative",
            "query": "since=2026-11-02&sentiment=negative",
        },
        follow_redirects=False,
    )
    link = saved.headers["location"]
    assert link.startswith("/s/")
    opened = client.get(link, follow_redirects=True)
    assert "Табылды: 2" in opened.text and link in opened.text
    assert client.get("/s/not-a-token").status_code == 404


def test_default_range_follows_the_data(db: Database) -> None:
    mid = _mission(db)
    wid = _watch(db, mid)
    with db.session() as s:
        add_post(s, "China", datetime(2026, 1, 15, tzinfo=UTC))
    process_posts(db)
    with db.session() as s:
        since, until = service.default_range(db=s, watch_id=wid)
    assert until == date(2026, 1, 15) and since == date(2025, 12, 17)


def test_narratives_panel_counts_the_watch_lists_own_matches(db: Database) -> None:
    """The panel once showed the biggest narratives of the whole store on every watch list."""
    from elshi.listen.models import Annotation
    from elshi.nlp.models import NarrativeRow

    mid = _mission(db)
    wid = _watch(db, mid)
    filters = service.Filters(since=T0.date(), until=T0.date())
    with db.session() as s:
        assert (
            service.dashboard(db=s, principal=SYSTEM, watch_id=wid, filters=filters).narratives
            == []
        )
        s.add_all(
            [
                NarrativeRow(id=1, count=12, terms=["border", "rumours"], langs={"ru": 12}),
                NarrativeRow(id=2, count=40, terms=["trade"], langs={"kk": 40}),
                NarrativeRow(id=3, count=90, terms=["gone"], merged_into=2),
                NarrativeRow(id=4, count=500, terms=["festival"], langs={"en": 500}),
            ]
        )
        posts = {
            1: add_post(s, "China border rumours", T0),
            2: add_post(s, "China trade grows", T0),
            3: add_post(s, "China trade deal", T0),
            4: add_post(s, "A festival in Almaty", T0),
            5: add_post(s, "China trade, a month later", T0 + timedelta(days=30)),
        }
        for narrative, post in ((1, 1), (2, 2), (3, 3), (4, 4), (2, 5)):
            s.add(
                Annotation(
                    post_id=posts[post].id,
                    enricher="narratives",
                    version="1",
                    label=str(narrative),
                )
            )
    process_posts(db)
    with db.session() as s:
        d = service.dashboard(db=s, principal=SYSTEM, watch_id=wid, filters=filters)
    # Narrative 3 was merged into 2; 4 is not about this list; the post of day 30 is out of range.
    assert d.narratives == [
        {"id": 2, "title": "trade", "size": 2},
        {"id": 1, "title": "border, rumours", "size": 1},
    ]


def test_the_worker_waits_for_enrichment_before_counting_a_post(db: Database) -> None:
    """Rollups built before enrichment counted every post as of unknown sentiment."""
    from elshi.listen.models import Annotation
    from elshi.nlp.pipeline import ordered

    last = ordered(apart=False)[-1].slug
    mid = _mission(db)
    wid = _watch(db, mid)
    with db.session() as s:
        stale = add_post(s, "China and the old news", T0 - timedelta(hours=2))
        fresh = add_post(s, "China opens a new consulate", T0)
        fresh_id, stale_id = fresh.id, stale.id
    soon = T0 + timedelta(minutes=5)
    # The stale post (collected two hours ago, never enriched) is matched as it is; the fresh
    # one waits for its enrichment.
    process_posts(db, wait_for_enrichment=True, now=soon)
    with db.session() as s:
        seen = set(s.scalars(select(WatchMatch.post_id).where(WatchMatch.watch_id == wid)))
    assert seen == {stale_id}
    with db.session() as s:
        s.add(Annotation(post_id=fresh_id, enricher="sentiment", version="1", label="positive"))
        if last != "sentiment":
            s.add(Annotation(post_id=fresh_id, enricher=last, version="1", value={}))
    process_posts(db, wait_for_enrichment=True, now=soon)
    with db.session() as s:
        rows = s.execute(
            select(WatchMatch.post_id, WatchMatch.sentiment).where(WatchMatch.watch_id == wid)
        ).all()
        assert dict(rows)[fresh_id] == "positive"
        assert s.scalar(select(func.sum(WatchDaily.pos)).where(WatchDaily.watch_id == wid)) == 1
    # A post no enricher reads does not hold the lists back for long.
    with db.session() as s:
        late = add_post(s, "China, unread", T0).id
    process_posts(db, wait_for_enrichment=True, now=T0 + timedelta(hours=1))
    with db.session() as s:
        assert late in set(s.scalars(select(WatchMatch.post_id)))
