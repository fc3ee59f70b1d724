"""Coordination over stored posts: the stored edges of each kind, the incremental update
against a full recomputation, the groups, the task and the command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from elshi import jobs
from elshi.connectors.base import FetchContext
from elshi.connectors.tabular import TabularConnector
from elshi.coordination import service
from elshi.coordination.keys import keys_of
from elshi.coordination.models import CoAction, CoEdge, CoParticipation
from elshi.db import Database
from elshi.listen.flows import import_with
from elshi.listen.models import Post
from elshi.settings import Settings
from tests.coordination.support import IRA_AUTHORS, Facts, reference_edges


def ingest(db: Database, path: Path, profile: str) -> int:
    ctx = FetchContext(settings=db.settings)
    try:
        report = import_with(
            db,
            connector=TabularConnector(),
            config={"path": str(path), "profile": profile},
            ctx=ctx,
        )
    finally:
        ctx.close()
    return report.stored


def ira_folder(shared_data: Path, tmp_path: Path, names: tuple[str, ...], label: str) -> Path:
    folder = tmp_path / label / "tweets"
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(shared_data / "ira-troll-tweets-sample" / "tweets" / f"{name}.csv.gz", folder)
    shutil.copy(shared_data / "ira-troll-tweets-sample" / "authors.csv", folder.parent)
    return folder


def stored_facts(db: Database) -> list[Facts]:
    with db.session() as s:
        rows = s.execute(select(Post).where(Post.author_id.is_not(None))).scalars().all()
        return [
            Facts(
                id=p.id,
                account=int(p.author_id or 0),
                time_ms=int(p.published_at.timestamp() * 1000),
                keys=tuple(keys_of(p)),
            )
            for p in rows
            if p.published_at is not None
        ]


def snapshot(db: Database) -> dict[str, Any]:
    with db.engine.connect() as conn:
        actions = sorted(
            tuple(r)
            for r in conn.execute(
                select(
                    CoAction.kind,
                    CoAction.post_id,
                    CoAction.author_id,
                    CoAction.partner_id,
                    CoAction.fast,
                )
            )
        )
        edges = {k: service.edge_set(conn, k) for k in (*service.KINDS, service.ALL)}
        fast = {
            k: {
                (a, p): f
                for a, p, f in conn.execute(
                    select(CoEdge.author_id, CoEdge.partner_id, CoEdge.fast_weight).where(
                        CoEdge.kind == k
                    )
                )
            }
            for k in (*service.KINDS, service.ALL)
        }
        participation = sorted(
            tuple(r)
            for r in conn.execute(
                select(CoParticipation.kind, CoParticipation.author_id, CoParticipation.posts)
            )
        )
        groups = [
            {k: v for k, v in g.items() if k not in ("id", "created_at")}
            for g in service.groups(conn)
        ]
    return {
        "actions": actions,
        "edges": edges,
        "fast": fast,
        "participation": participation,
        "groups": groups,
    }


def test_stored_edges_of_each_kind_are_the_reference_edges(
    shared_data: Path, tmp_path: Path, db: Database
) -> None:
    twarc = shared_data / "formats" / "twitter-v2-twarc-csv" / "test-data"
    ct = shared_data / "formats" / "crowdtangle-pycoornet" / "ct_shares_coornet_format.csv"
    stored = ingest(db, twarc, "twitter-v2") + ingest(db, ct, "crowdtangle")
    report = service.update(db, params=service.Params(window=600, narrow=60))
    assert report.full and report.posts == stored > 2000
    facts = stored_facts(db)
    with db.engine.connect() as conn:
        for kind in ("repost", "reply", "hashtag", "link", "domain", "text", "near_text"):
            expected = reference_edges(facts, kind, window=600)
            assert expected, kind
            assert service.edge_set(conn, kind) == expected, kind
        # The common kinds' co-actions are counted, not stored.
        kinds = set(conn.scalars(select(CoAction.kind).distinct()))
        assert kinds and not kinds & service.COUNTED_KINDS
        groups = service.groups(conn)
    assert report.groups == len(groups) > 0
    platforms = {p for g in groups for p in g["platforms"]}
    assert platforms <= {"twitter", "facebook"} and platforms
    for g in groups:
        assert g["size"] == len(g["members"]) >= 2
        assert g["first_at"] <= g["last_at"]
        assert 0 <= g["symmetry"] <= 1 and 0 <= g["speed_share"] <= 1
        assert sum(g["kinds"].values()) > 0


def test_incremental_update_equals_full_recomputation(
    shared_data: Path, tmp_path: Path, db: Database
) -> None:
    params = service.Params(window=600, narrow=60, min_weight=2, min_participation=2)
    first = ingest(db, ira_folder(shared_data, tmp_path, IRA_AUTHORS[::2], "a"), "ira")
    one = service.update(db, params=params)
    assert one.full and one.posts == first
    before = snapshot(db)
    second = ingest(db, ira_folder(shared_data, tmp_path, IRA_AUTHORS[1::2], "b"), "ira")
    two = service.update(db, params=params)
    assert not two.full and two.posts == second
    incremental = snapshot(db)
    # The new accounts co-act with the old ones: the update found pairs across the batches,
    # of the stored kinds and of the counted ones (whose edges grew).
    assert len(incremental["actions"]) > len(before["actions"])
    for kind in ("hashtag", service.ALL):
        assert len(incremental["edges"][kind]) > len(before["edges"][kind]), kind
    assert len(incremental["participation"]) > len(before["participation"])
    again = service.update(db, params=params)
    assert again.posts == 0 and snapshot(db) == incremental
    full = service.update(db, params=params, full=True)
    assert full.full
    assert snapshot(db) == incremental
    groups = incremental["groups"]
    assert groups and all(g["platforms"] == ["twitter"] for g in groups)
    assert any(g["top"]["hashtags"] for g in groups)


def test_other_windows_mean_a_full_recomputation(
    shared_data: Path, tmp_path: Path, db: Database
) -> None:
    ingest(db, ira_folder(shared_data, tmp_path, IRA_AUTHORS[:3], "a"), "ira")
    service.update(db, params=service.Params(window=60))
    report = service.update(db, params=service.Params(window=3600))
    assert report.full
    with db.engine.connect() as conn:
        assert service.state(conn)["window_seconds"] == 3600


def test_the_pipeline_task_updates_after_ingest(
    shared_data: Path, tmp_path: Path, settings: Settings, db: Database
) -> None:
    rt = jobs.bind(settings, db)
    assert rt.tasks["coordination_catch_up"].call_local() is None  # no post yet
    ingest(db, ira_folder(shared_data, tmp_path, IRA_AUTHORS[:2], "a"), "ira")
    result = rt.tasks["update_coordination"].call_local(0)
    assert result["full"] and result["posts"] > 0
    assert rt.tasks["coordination_catch_up"].call_local() is None  # nothing new since
    ingest(db, ira_folder(shared_data, tmp_path, IRA_AUTHORS[2:3], "b"), "ira")
    caught = rt.tasks["coordination_catch_up"].call_local()
    assert caught is not None and not caught["full"] and caught["posts"] > 0


def test_command_runs_lists_and_refuses_bad_parameters(
    shared_data: Path, tmp_path: Path, cli: Any, db: Database
) -> None:
    ingest(db, ira_folder(shared_data, tmp_path, IRA_AUTHORS[:3], "a"), "ira")
    r = cli("coordination", "run", "--no-progress", "--window", "600", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["full"] and report["co_actions"]["hashtag"] > 0
    r = cli("coordination", "groups", "--json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == report["groups"] > 0
    # Options not given keep the last run's.
    with db.engine.connect() as conn:
        assert service.state(conn)["params"]["window"] == 600
    r = cli("coordination", "run", "--no-progress", "--narrow", "900")
    assert r.exit_code == 2
    assert "narrow: The narrow window must be above 0 and no longer than the window." in r.output
    r = cli("coordination", "run", "--no-progress", "--kind", "likes")
    assert r.exit_code == 2 and "Unknown co-action kinds: likes" in r.output


@pytest.mark.parametrize("bad", [{"window": 0}, {"percentile": 1.0}, {"min_weight": 0}])
def test_parameters_are_checked(bad: dict[str, Any]) -> None:
    from elshi.errors import FieldError

    with pytest.raises(FieldError) as caught:
        service.Params(**bad).check()
    assert caught.value.field == next(iter(bad))


def test_counted_kinds_are_worked_out_again_as_they_would_be_stored(
    shared_data: Path, tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest(db, ira_folder(shared_data, tmp_path, IRA_AUTHORS, "a"), "ira")
    params = service.Params(window=600, narrow=60)
    counted = service.COUNTED_KINDS
    # Stored as every other kind's: the reference the worked-out co-actions must equal.
    monkeypatch.setattr(service, "COUNTED_KINDS", frozenset())
    service.update(db, params=params)
    monkeypatch.setattr(service, "COUNTED_KINDS", counted)
    with db.engine.connect() as conn:
        groups = [g["members"] for g in service.groups(conn)]
        group_of = {a: i for i, g in enumerate(groups) for a in g}
        a = CoAction
        stored = {
            tuple(r)
            for r in conn.execute(
                select(a.kind, a.post_id, a.author_id, a.partner_id, a.fast).where(
                    a.kind.in_(sorted(counted))
                )
            )
            if r.author_id in group_of and group_of.get(r.partner_id) == group_of[r.author_id]
        }
        again = service.worked_out(conn, groups, sorted(counted), window=600, narrow=60)
    got = {
        (kind, int(p), int(u), int(v), bool(f))
        for kind, acts in again.items()
        for p, u, v, f in zip(acts.post, acts.account, acts.partner, acts.fast, strict=True)
    }
    assert len(groups) > 1 and {x[0] for x in stored} == {"hashtag"}
    assert got == stored


def test_an_update_another_overtook_starts_again_and_counts_once(
    shared_data: Path, tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = service.Params(window=600, narrow=60)
    ingest(db, ira_folder(shared_data, tmp_path, IRA_AUTHORS[::2], "a"), "ira")
    service.update(db, params=params)
    ingest(db, ira_folder(shared_data, tmp_path, IRA_AUTHORS[1::2], "b"), "ira")
    write = service._write
    overtaken: list[service.Report] = []
    raced: list[bool] = []

    def racing(*args: Any) -> None:
        if not raced:  # another update reads the same new posts and writes first
            raced.append(True)
            overtaken.append(service.update(db, params=params))
        write(*args)

    monkeypatch.setattr(service, "_write", racing)
    report = service.update(db, params=params)
    assert overtaken[0].posts > 0 and not overtaken[0].full
    assert report.posts == 0  # started again, after the other's posts
    both = snapshot(db)
    service.update(db, params=params, full=True)
    assert snapshot(db) == both
