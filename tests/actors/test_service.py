"""The assessment over stored posts: types from an imported list (the IRA account list), a
hand-set type kept, types taken back with the list, coordination membership as a signal,
platform payloads (Mastodon) and names as rules, and the periodic task."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select

from elshi import jobs
from elshi.accounts import service as accounts
from elshi.accounts.service import Principal
from elshi.actors import rules
from elshi.actors import service as actors
from elshi.actors.models import AccountAssessment, ActorList, ActorListEntry
from elshi.connectors.base import FetchContext
from elshi.connectors.mastodon import MastodonStreamConnector
from elshi.connectors.tabular import TabularConnector
from elshi.coordination import service as coordination
from elshi.coordination.models import CoGroupMember
from elshi.db import Database
from elshi.listen.flows import import_with
from elshi.listen.models import Author
from elshi.settings import Settings
from elshi.watch import service as watch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
#: Real IRA accounts: three of the Russian-language ones that repost alike, and two others.
SLICE = ("AnastasiaR777", "_Nickulya", "pieceoflemonpie", "Solano_Ki", "Robin_Mc_Call")


def ingest(db: Database, connector: Any, config: dict[str, Any]) -> int:
    ctx = FetchContext(settings=db.settings)
    try:
        return import_with(db, connector=connector, config=config, ctx=ctx).stored
    finally:
        ctx.close()


def ira_slice(db: Database, shared_data: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "ira" / "tweets"
    folder.mkdir(parents=True)
    for name in SLICE:
        shutil.copy(shared_data / "ira-troll-tweets-sample" / "tweets" / f"{name}.csv.gz", folder)
    authors = shared_data / "ira-troll-tweets-sample" / "authors.csv"
    shutil.copy(authors, folder.parent)
    assert ingest(db, TabularConnector(), {"path": str(folder), "profile": "ira"}) > 1000
    return authors


def by_handle(db: Database) -> dict[str, tuple[Author, AccountAssessment | None]]:
    with db.session() as s:
        rows = s.execute(
            select(Author, AccountAssessment).outerjoin(
                AccountAssessment, AccountAssessment.author_id == Author.id
            )
        ).all()
        s.expunge_all()
    return {a.handle: (a, x) for a, x in rows}


def test_an_imported_list_types_accounts_and_a_hand_set_type_wins(
    db: Database, cli: Any, shared_data: Path, tmp_path: Path
) -> None:
    authors_csv = ira_slice(db, shared_data, tmp_path)
    with authors_csv.open(encoding="utf-8") as fh:
        line_of = {row["author_id"]: n for n, row in enumerate(csv.DictReader(fh), start=2)}
        fh.seek(0)
        category = {row["author_id"]: row["account_category"] for row in csv.DictReader(fh)}
    with db.session() as s:
        analyst = accounts.create_user(db=s, email="hand@example.org", password="x" * 16)
        hand = s.scalars(select(Author).where(Author.handle == "Solano_Ki")).one()
        hand.actor_type, hand.actor_type_by = "journalist", analyst.id
        s.commit()

    r = cli(
        "actors", "import", str(authors_csv), "--platform", "twitter",
        "--type", "suspected inauthentic", "--country", "RU", "--name", "IRA accounts",
        "--no-progress", "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    done = json.loads(r.stdout)
    assert done["stored"] == len(line_of) and done["bad"] == 0

    r = cli("actors", "assess", "--no-progress", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["accounts"] == len(SLICE)
    assert report["typed"] == len(SLICE) - 1 and report["kept"] == 1
    assert report["by_rule"] == {"list": len(SLICE)}

    seen = by_handle(db)
    for handle in SLICE:
        author, x = seen[handle]
        assert x is not None and x.auto_type == "inauthentic"
        assert x.reason["rule"] == "list" and x.reason["list"] == "IRA accounts"
        assert x.reason["line"] == line_of[handle] and x.reason["country"] == "RU"
        assert f"account_category={category[handle]}" in x.reason["note"]
        if handle == "Solano_Ki":
            assert author.actor_type == "journalist" and x.applied_type is None
        else:
            assert author.actor_type == "inauthentic" and author.actor_type_by is None

    # Given back to the rules by hand, the account takes the list's type.
    with db.session() as s:
        user = accounts.get_user(db=s, email="hand@example.org")
        assert user is not None
        principal = Principal(user.id, user.email, "", via="system")
        author = watch.set_actor_type(
            db=s, principal=principal, author_id=seen["Solano_Ki"][0].id, actor_type="rules"
        )
        assert author.actor_type == "inauthentic" and author.actor_type_by is None
        s.commit()

    # The list removed, the types it gave go at the next assessment; a type set by hand stays.
    with db.session() as s:
        list_id = s.scalars(select(ActorList.id)).one()
        hand = s.get(Author, seen["_Nickulya"][0].id)
        assert hand is not None
        hand.actor_type, hand.actor_type_by = "citizen", user.id
        s.commit()
    r = cli("actors", "remove-list", str(list_id))
    assert r.exit_code == 0, r.output
    with db.session() as s:
        assert s.scalar(select(ActorListEntry.id).limit(1)) is None
    assert cli("actors", "assess", "--no-progress").exit_code == 0
    seen = by_handle(db)
    assert seen["_Nickulya"][0].actor_type == "citizen"
    for handle in set(SLICE) - {"_Nickulya"}:
        assert seen[handle][0].actor_type is None
        assert seen[handle][1] is not None and seen[handle][1].auto_type is None


def test_signals_name_the_coordination_groups_and_real_reposts(
    db: Database, cli: Any, shared_data: Path, tmp_path: Path
) -> None:
    ira_slice(db, shared_data, tmp_path)
    coordination.update(db, params=coordination.Params(window=60))
    with db.session() as s:
        members: dict[int, set[int]] = {}
        for group_id, author_id in s.execute(
            select(CoGroupMember.group_id, CoGroupMember.author_id)
        ):
            members.setdefault(author_id, set()).add(group_id)
        report = actors.assess(s)
    assert members, "the slice has a group of accounts that act together"
    assert report.accounts == len(SLICE)
    for handle, (author, x) in by_handle(db).items():
        assert x is not None
        found = {g["key"]: g for g in x.signals}
        groups = {g["id"] for g in found["coordination"]["evidence"]["groups"]}
        assert groups == members.get(author.id, set()), handle
        assert found["coordination"]["fired"] == bool(groups)
        amp = found["amplification"]
        assert amp["evidence"]["posts"] == x.posts
        assert 0 <= amp["evidence"]["reposts"] <= x.posts
        assert x.score == round(sum(g["weight"] for g in x.signals if g["fired"]), 3)
    # The three Russian-language accounts repost nearly all the time in the sample.
    for handle in ("AnastasiaR777", "_Nickulya", "pieceoflemonpie"):
        x = by_handle(db)[handle][1]
        assert x is not None
        assert next(g for g in x.signals if g["key"] == "amplification")["fired"]

    r = cli("actors", "top", "--json", "--limit", "3")
    assert r.exit_code == 0, r.output
    top = json.loads(r.stdout)
    assert len(top) == 3
    assert [t["score"] for t in top] == sorted((t["score"] for t in top), reverse=True)


def test_names_and_platform_payloads_give_types_and_signals(db: Database) -> None:
    statuses = json.loads((FIXTURES / "mastodon" / "tag_kazakhstan.json").read_text("utf-8"))
    lines = "\n".join(json.dumps(s, ensure_ascii=False) for s in statuses)
    target = db.settings.home / "statuses.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(lines, encoding="utf-8")
    stored = ingest(
        db, MastodonStreamConnector(), {"path": str(target), "instance": "mastodon.example"}
    )
    assert stored > 0
    with db.session() as s:
        report = actors.assess(s)
    seen = by_handle(db)
    mfa, x = seen["mfa_kz@mastodon.social"]
    assert mfa.actor_type == "diplomat" and x is not None
    assert x.reason == {"rule": "name", "field": "name", "word": "mfa"}
    embassy, x = seen["kazembassy@mastodon.example"]
    assert embassy.actor_type == "diplomat" and x is not None
    assert x.reason == {"rule": "name", "field": "name", "word": "елшілігі"}
    person, x = seen["aigerim@mastodon.example"]
    assert person.actor_type is None and x is not None and x.auto_type is None
    found = {g["key"]: g for g in x.signals}
    # The payload says the picture is the instance's default and when the account was made.
    assert found["anonymity"]["evidence"]["found"] == ["default_avatar"]
    assert found["age"]["known"] and found["age"]["evidence"]["created"] == "2022-03-01"
    assert report.by_rule.get("name", 0) >= 2


def test_platform_labels_and_profiles_of_each_payload() -> None:
    # X/Twitter API v2 tweet with its author embedded (the fields the API documents).
    tweet = {
        "id": "1",
        "author": {
            "username": "mfa_kz",
            "verified_type": "government",
            "created_at": "2012-05-01T10:00:00.000Z",
            "profile_image_url": "https://pbs.twimg.com/profile_images/1/a_normal.jpg",
        },
    }
    profile = rules.profile_of("twitter", tweet)
    assert profile.verified_type == "government" and profile.default_avatar is False
    assert rules.label_type("twitter", profile) == (
        "diplomat",
        {"rule": "label", "platform": "twitter", "label": "verified_type", "value": "government"},
    )
    assert rules.label_type("twitter", rules.profile_of("twitter", {"author": {}})) is None
    bot = {"instance": "m.example", "status": {"account": {"bot": True, "avatar": "x.png"}}}
    assert rules.profile_of("mastodon", bot).automated is True
    assert rules.profile_of("rss", {"title": "x"}) == rules.Profile()
    assert rules.name_type("Посольство Казахстана", "kz_embassy_ru") == (
        "diplomat",
        {"rule": "name", "field": "name", "word": "посольство"},
    )
    assert rules.name_type("Jane Doe", "janedoe_reporter") is None
    assert rules.name_type("Jane Doe, reporter", "jd")[0] == "journalist"  # type: ignore[index]


def test_the_tasks_assess(
    db: Database, settings: Settings, shared_data: Path, tmp_path: Path
) -> None:
    ira_slice(db, shared_data, tmp_path)
    rt = jobs.bind(settings, db)
    assert rt.tasks["actors_hourly"].call_local()["accounts"] == len(SLICE)
    assert rt.tasks["assess_actors"].call_local()["accounts"] == len(SLICE)
    with db.session() as s:
        assert len(s.scalars(select(AccountAssessment)).all()) == len(SLICE)


def test_the_import_command_reports_each_bad_line_and_refuses_a_bad_file(
    db: Database, cli: Any, tmp_path: Path
) -> None:
    path = tmp_path / "state-media.csv"
    path.write_text(
        "platform,handle,type,country\n"
        "telegram,@tass_agency,state media,RU\n"
        "telegram,rian_ru,news,RU\n"
        "twitter,,state media,RU\n",
        encoding="utf-8",
    )
    r = cli("actors", "import", str(path), "--no-progress")
    assert r.exit_code == 3, r.output
    assert "list 1: 1 accounts stored, 2 bad lines" in r.stdout
    assert "state-media.csv, line 3, column type: unknown type 'news'" in r.stderr
    assert "state-media.csv, line 4, column handle: no handle" in r.stderr
    with db.session() as s:
        entries = s.scalars(select(ActorListEntry)).all()
        assert [(e.platform, e.handle, e.actor_type, e.line) for e in entries] == [
            ("telegram", "tass_agency", "state_media", 2)
        ]
    r = cli("actors", "import", str(tmp_path / "missing.csv"), "--no-progress")
    assert r.exit_code == 2 and "missing.csv" in r.stderr
    (tmp_path / "bad.json").write_text('[{"handle": "x"', encoding="utf-8")
    r = cli("actors", "import", str(tmp_path / "bad.json"), "--no-progress")
    assert r.exit_code == 2 and "bad JSON at line 1" in r.stderr
    r = cli("actors", "lists", "--json")
    assert [x["entries"] for x in json.loads(r.stdout)] == [1]


def test_telegram_and_bluesky_labels_say_suspected_inauthentic() -> None:
    # As the Telegram API connector stores a message: the channel and Telegram's marks on it.
    raw = {"channel": "kz_news_fake", "channel_id": 1, "channel_labels": ["fake"], "message": {}}
    profile = rules.profile_of("telegram", raw)
    assert rules.label_type("telegram", profile) == (
        "inauthentic",
        {"rule": "label", "platform": "telegram", "label": "label", "value": "fake"},
    )
    assert rules.label_type("telegram", rules.profile_of("telegram", {"channel": "x"})) is None
    view = {"author": {"handle": "a.bsky.social", "labels": [{"val": "impersonation"}]}}
    assert rules.label_type("bluesky", rules.profile_of("bluesky", view)) == (
        "inauthentic",
        {"rule": "label", "platform": "bluesky", "label": "label", "value": "impersonation"},
    )
