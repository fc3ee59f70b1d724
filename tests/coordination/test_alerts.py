"""Alerts on coordinated groups: a group that appears or grows fast raises one alert per rule
through the alert rules and channels (e-mail to a real SMTP server on loopback), scoped to the
rule's mission, once per group event whatever is re-run or restarted; groups keep their ids."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from elshi.accounts.service import Principal
from elshi.alerts import flows, wording
from elshi.alerts import service as alerts
from elshi.alerts.models import Alert, AlertDelivery, AlertRule
from elshi.app import create_app
from elshi.coordination import service, tracking
from elshi.coordination.models import CoGroup
from elshi.db import Database
from elshi.listen.models import Author
from elshi.missions import service as missions
from elshi.settings import Settings, load_settings
from elshi.watch import service as watches
from tests.workspace_helpers import (
    add_post,
    add_source,
    add_staff,
    csrf,
    sign_in,
    smtp_server,
    three_missions,
)

SYSTEM = Principal.system()
START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
PARAMS = service.Params(window=60, narrow=5)
ALPHA = ("troll_one", "troll_two", "troll_three", "troll_four")
JOINERS = ("troll_five", "troll_six", "troll_seven")
MIXED = ("alpha_bot1", "alpha_bot2", "bravo_bot3", "bravo_bot4")
ALPHA_TEXT = "Vote now #kazcamp #round{r} https://example.org/vote"
MIXED_TEXT = "Share this #bravocamp #wave{r} https://news.example.net/story"


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=db)) as c:
        yield c


def _post_rounds(
    db: Database, w: dict[str, Any], handles: tuple[str, ...], text: str, rounds: range, at: int
) -> None:
    """Each round, every account posts the round's text a few seconds after the other."""
    with db.session() as s:
        for r in rounds:
            when = START + timedelta(hours=r, minutes=at)
            for i, h in enumerate(handles):
                mission = "bravo" if h.startswith("bravo") else "alpha"
                add_post(
                    s,
                    text.format(r=r),
                    when + timedelta(seconds=3 * i),
                    platform="twitter",
                    source_id=w["sources"][mission],
                    author=s.get(Author, w["authors"][h]),
                )


def _world(db: Database) -> dict[str, Any]:
    """Missions, sources, accounts and one watch list per mission with a coordination rule
    (Alpha also a strict one), before any post is stored."""
    w: dict[str, Any] = {}
    with db.session() as s:
        w["missions"] = three_missions(s)
        hq = missions.ensure_hq(db=s)
        w["missions"]["hq"] = hq.id
        add_staff(s, "hq@example.org", "analyst", hq.slug)
        w["sources"] = {
            m: add_source(s, f"{m.title()} feed", w["missions"][m]).id for m in ("alpha", "bravo")
        }
        w["authors"] = {}
        for h in (*ALPHA, *JOINERS, *MIXED):
            a = Author(platform="twitter", handle=h, name=h.replace("_", " ").title())
            s.add(a)
            s.flush()
            w["authors"][h] = a.id
        w["watches"] = {
            m: watches.save_watch(
                db=s, principal=SYSTEM, mission_id=mid, name=f"{m} campaigns", terms="vote"
            ).id
            for m, mid in w["missions"].items()
        }
    w["rules"] = {}
    for m, params in (
        ("alpha", {"min_size": 2}),
        ("bravo", {"min_size": 2}),
        ("charlie", {"min_size": 2}),
        ("hq", {}),
        ("strict", {"min_size": 2, "growth_percent": 100, "growth_accounts": 5}),
    ):
        with db.session() as s:
            w["rules"][m] = alerts.create_rule(
                db=s,
                principal=SYSTEM,
                watch_id=w["watches"]["alpha" if m == "strict" else m],
                kind="coordinated_group",
                name=f"groups {m}",
                params=params,
                targets={"emails": f"duty@{m}.example"},
            ).id
    return w


def _settings_with(settings: Settings, **values: Any) -> Settings:
    return load_settings(**{**settings.model_dump(), **values})


def _alerts(db: Database) -> list[Alert]:
    with db.session() as s:
        rows = list(s.scalars(select(Alert).order_by(Alert.id)))
        s.expunge_all()
    return rows


def _group_of(db: Database, handle: str, w: dict[str, Any]) -> int:
    with db.engine.connect() as conn:
        for g in service.groups(conn):
            if w["authors"][handle] in g["members"]:
                return int(g["id"])
    raise AssertionError(f"{handle} is in no group")


def test_new_groups_alert_each_mission_with_only_its_accounts_once(
    db: Database, settings: Settings
) -> None:
    w = _world(db)
    with smtp_server() as (port, inbox):
        conf = _settings_with(
            settings,
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_from="alerts@mfa.example",
            public_url="https://elshi.mfa.example",
        )
        _post_rounds(db, w, ALPHA, ALPHA_TEXT, range(3), 0)
        _post_rounds(db, w, MIXED, MIXED_TEXT, range(3), 30)
        service.update(db, params=PARAMS)
        assert flows.evaluate_coordination(db, settings=conf) == 7
        alpha_group, mixed_group = _group_of(db, ALPHA[0], w), _group_of(db, MIXED[0], w)

        fired = {(a.rule_id, a.why["group_id"]): a for a in _alerts(db)}
        rules = w["rules"]
        assert set(fired) == {
            (rules["alpha"], alpha_group),
            (rules["alpha"], mixed_group),
            (rules["strict"], alpha_group),
            (rules["strict"], mixed_group),
            (rules["bravo"], mixed_group),
            (rules["hq"], alpha_group),
            (rules["hq"], mixed_group),
        }
        # Each alert is its mission's, and names the accounts that mission sees.
        mine = fired[(rules["alpha"], mixed_group)]
        assert mine.mission_id == w["missions"]["alpha"] and mine.kind == "coordinated_group"
        assert mine.why["accounts"] == 2 and sorted(mine.why["handles"]) == [
            "@alpha_bot1",
            "@alpha_bot2",
        ]
        theirs = fired[(rules["bravo"], mixed_group)]
        assert theirs.mission_id == w["missions"]["bravo"]
        assert sorted(theirs.why["handles"]) == ["@bravo_bot3", "@bravo_bot4"]
        assert (rules["bravo"], alpha_group) not in fired
        assert fired[(rules["hq"], mixed_group)].why["accounts"] == 4
        assert fired[(rules["alpha"], alpha_group)].why["accounts"] == 4
        assert fired[(rules["alpha"], alpha_group)].key == f"group:{alpha_group}:new"
        assert not [a for a in fired.values() if a.mission_id == w["missions"]["charlie"]]
        # The posts behind an alert are posts its mission sees.
        with db.session() as s:
            from elshi.listen.models import Post

            sources = set(s.scalars(select(Post.source_id).where(Post.id.in_(theirs.post_ids))))
        assert theirs.post_ids and sources == {w["sources"]["bravo"]}

        # The e-mails: one per alert to the rule's address, with the group's address; Bravo's
        # names none of Alpha's accounts.
        assert len(inbox.messages) == len(fired)
        bravo = [m for m in inbox.messages if m["To"] == "duty@bravo.example"]
        assert len(bravo) == 1
        body = bravo[0].get_content()
        assert f"https://elshi.mfa.example/coordination/groups/{mixed_group}" in body
        assert "bravo_bot3" in body and "alpha_bot" not in body and "troll" not in body
        with db.session() as s:
            assert {d.status for d in s.scalars(select(AlertDelivery))} == {"sent"}

        # Checked again, after an update with nothing new, and after a restart: no duplicate.
        assert flows.evaluate_coordination(db, settings=conf) == 0
        service.update(db, params=PARAMS)
        assert flows.evaluate_coordination(db, settings=conf) == 0
        again = Database(conf)
        try:
            assert flows.evaluate_coordination(again, settings=conf) == 0
        finally:
            again.dispose()
        assert len(_alerts(db)) == len(fired) and len(inbox.messages) == len(fired)


def test_a_group_that_grows_past_the_rule_alerts_and_keeps_its_id(
    db: Database, settings: Settings
) -> None:
    w = _world(db)
    _post_rounds(db, w, ALPHA, ALPHA_TEXT, range(3), 0)
    service.update(db, params=PARAMS)
    assert flows.evaluate_coordination(db, settings=settings) == 3  # alpha, strict, hq
    group = _group_of(db, ALPHA[0], w)

    # Three more accounts join the campaign: 4 -> 7 accounts, 75 % and 3 accounts more.
    _post_rounds(db, w, (*ALPHA, *JOINERS), ALPHA_TEXT, range(3, 9), 0)
    service.update(db, params=PARAMS)
    assert _group_of(db, JOINERS[0], w) == group  # the grown group keeps its id
    assert flows.evaluate_coordination(db, settings=settings) == 2  # alpha and hq; not strict
    grew = [a for a in _alerts(db) if "accounts_before" in a.why]
    assert {a.rule_id for a in grew} == {w["rules"]["alpha"], w["rules"]["hq"]}
    a = next(a for a in grew if a.rule_id == w["rules"]["alpha"])
    assert a.why["group_id"] == group
    assert (a.why["accounts_before"], a.why["accounts"]) == (4, 7)
    assert a.key == f"group:{group}:grew:7"
    assert wording.summary(a, "en") == f"Coordinated group {group} grew from 4 to 7 accounts"
    assert "выросла с 4 до 7 аккаунтов" in wording.summary(a, "ru")
    # The quiet time of the rule (it fired minutes ago) does not hold a group event back, and
    # the rule remembers the sizes it last saw.
    with db.session() as s:
        rule = s.get(AlertRule, w["rules"]["alpha"])
        assert rule is not None and rule.cooldown_minutes > 0
        assert rule.params["groups"] == {str(group): 7}
    assert flows.evaluate_coordination(db, settings=settings) == 0


def test_groups_keep_their_ids_and_a_new_group_never_takes_an_old_id(db: Database) -> None:
    w = _world(db)
    _post_rounds(db, w, ALPHA, ALPHA_TEXT, range(3), 0)
    service.update(db, params=PARAMS)
    first = _group_of(db, ALPHA[0], w)
    # Thresholds nothing passes: no group at all; then the groups again.
    assert service.regroup(db, params=service.Params(window=60, narrow=5, min_weight=1000)) == 0
    assert service.regroup(db, params=PARAMS) == 1
    second = _group_of(db, ALPHA[0], w)
    assert second > first
    _post_rounds(db, w, MIXED, MIXED_TEXT, range(3), 30)
    service.update(db, params=PARAMS)
    assert _group_of(db, ALPHA[0], w) == second
    assert _group_of(db, MIXED[0], w) > second
    with db.engine.connect() as conn:
        st = service.state(conn)
    assert st is not None and st["last_group_id"] == _group_of(db, MIXED[0], w)
    # A row stored without an id (PostgreSQL: from the sequence) takes none given already.
    with db.session() as s:
        extra = CoGroup(size=0, edges=0, weight=0, symmetry=0.0, speed_share=0.0)
        s.add(extra)
        s.flush()
        assert extra.id > st["last_group_id"]


def test_assign_ids_follows_most_of_each_old_group() -> None:
    old = {3: {1, 2, 3, 4}, 5: {10, 11}, 7: {20, 21, 22}}
    new = [
        [1, 2, 3, 4, 30, 31],  # group 3 grown
        [10, 20, 21, 22],  # group 7 took one of group 5: 7 goes on, 5 is gone
        [11, 40],  # half of group 5 is not more than half: new
        [50, 51],  # new
    ]
    ids, high = tracking.assign_ids(old, new, high=9)
    assert ids == [3, 7, 10, 11] and high == 11
    # A split: the part holding more than half keeps the id.
    ids, high = tracking.assign_ids({4: {1, 2, 3}}, [[1], [2, 3]], high=4)
    assert ids == [5, 4] and high == 5
    # With nothing before, ids start above the highest ever given.
    assert tracking.assign_ids({}, [[1, 2]], high=41) == ([42], 42)


def test_rule_form_and_bad_thresholds(client: TestClient, db: Database) -> None:
    w = _world(db)
    _post_rounds(db, w, ALPHA, ALPHA_TEXT, range(3), 0)
    service.update(db, params=PARAMS)
    watch = w["watches"]["alpha"]
    sign_in(client, "alpha@example.org")
    page = client.get(f"/watch/{watch}/alerts", params={"lang": "en"})
    assert 'data-kind="coordinated_group"' in page.text
    assert "A coordinated group appears or grows" in page.text
    assert re.search(r'<input id="growth_percent"[^>]*value="50"', page.text)
    token = csrf(client, f"/watch/{watch}/alerts")
    form = {"csrf_token": token, "kind": "coordinated_group", "name": "Armies"}
    bad = client.post(f"/watch/{watch}/alerts", data=form | {"min_size": "1"})
    assert bad.status_code == 400 and 'id="min_size"' in bad.text
    assert re.search(r'<input id="min_size"[^>]*aria-invalid="true"', bad.text)
    bad = client.post(f"/watch/{watch}/alerts", data=form | {"growth_percent": "lots"})
    assert bad.status_code == 400
    assert re.search(r'<input id="growth_percent"[^>]*aria-invalid="true"', bad.text)
    ok = client.post(
        f"/watch/{watch}/alerts",
        data=form | {"min_size": "3", "growth_percent": "25", "growth_accounts": "10"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    with db.session() as s:
        rule = s.scalars(select(AlertRule).where(AlertRule.name == "Armies")).one()
        group = _group_of(db, ALPHA[0], w)
        # The groups there are now are where the rule starts from.
        assert rule.params == {
            "min_size": 3,
            "growth_percent": 25.0,
            "growth_accounts": 10,
            "groups": {str(group): 4},
        }
    listed = client.get(f"/watch/{watch}/alerts", params={"lang": "en"}).text
    assert "Alert me when a coordinated group of at least" in listed
    assert "grows by" in listed
    assert '<strong dir="auto">10</strong> accounts since the last update' in listed


def test_the_alert_page_links_the_group_and_stays_in_its_mission(
    client: TestClient, db: Database, settings: Settings
) -> None:
    w = _world(db)
    _post_rounds(db, w, ALPHA, ALPHA_TEXT, range(3), 0)
    service.update(db, params=PARAMS)
    flows.evaluate_coordination(db, settings=settings)
    group = _group_of(db, ALPHA[0], w)
    mine = next(a for a in _alerts(db) if a.rule_id == w["rules"]["alpha"])
    sign_in(client, "alpha@example.org")
    page = client.get(f"/alerts/{mine.id}", params={"lang": "en"})
    assert page.status_code == 200
    assert f'<a id="alert-group" href="/coordination/groups/{group}">' in page.text
    assert f"New coordinated group {group}: 4 accounts" in page.text
    assert "@troll_one" in page.text and "Accounts in the group" in page.text
    assert client.get(f"/coordination/groups/{group}").status_code == 200
    ru = client.get(f"/alerts/{mine.id}", params={"lang": "ru"}).text
    assert f"Новая скоординированная группа {group}: 4 аккаунта" in ru
    client.post("/logout")
    sign_in(client, "bravo@example.org")
    assert client.get(f"/alerts/{mine.id}").status_code == 404
    listed = client.get("/alerts", params={"lang": "en"}).text
    assert "troll" not in listed and "New coordinated group" not in listed


def test_the_coordination_run_command_raises_the_alerts(
    db: Database, cli: Any, settings: Settings
) -> None:
    w = _world(db)
    _post_rounds(db, w, ALPHA, ALPHA_TEXT, range(3), 0)
    r = cli("coordination", "run", "--no-progress", "--window", "60", "--narrow", "5", "--json")
    assert r.exit_code == 0, r.output
    assert '"alerts": 3' in r.output
    r = cli("coordination", "run", "--no-progress", "--json")
    assert r.exit_code == 0 and '"alerts": 0' in r.output
    assert len(_alerts(db)) == 3
