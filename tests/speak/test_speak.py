"""Statements: versions, translation, approval by someone else, schedule, calendar, gate."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from elshi.accounts.models import AuditEvent
from elshi.accounts.service import PermissionDenied, Principal
from elshi.db import Database
from elshi.settings import Settings
from elshi.speak import flows, service
from elshi.speak.channels.base import ChannelContext
from elshi.speak.models import ChannelAccount, Publication, StatementVersion
from elshi.speak.service import Translator
from tests.speak.platforms import staff

KK = "Қазақстан Германиямен мәдени ынтымақтастықты кеңейтеді."
RU = "Казахстан расширяет культурное сотрудничество с Германией."


@pytest.fixture
def team(db: Database) -> dict[str, Any]:
    return staff(db)


def _statement(db: Database, team: dict[str, Any], **kw: Any) -> int:
    with db.session() as s:
        st = service.create_statement(
            db=s,
            actor=team["drafter"],
            mission_id=team["mission_id"],
            title="Culture days",
            lang="kk",
            text=KK,
            **kw,
        )
        return st.id


def _web_account(db: Database, team: dict[str, Any], settings: Settings) -> int:
    with db.session() as s:
        return service.add_account(
            db=s,
            actor=team["admin"],
            settings=settings,
            mission_id=team["mission_id"],
            channel="web",
            name="News page",
            config={},
            secrets={},
        ).id


def test_drafter_cannot_approve_own_statement_and_approver_must_differ(
    db: Database, team: dict[str, Any]
) -> None:
    sid = _statement(db, team)
    with db.session() as s:
        service.submit(db=s, actor=team["drafter"], statement_id=sid)
    with db.session() as s, pytest.raises(PermissionDenied):
        service.decide(db=s, actor=team["drafter"], statement_id=sid, approve=True)
    # an admin who also drafted is refused for being the author, not for the role
    with db.session() as s:
        sid2 = service.create_statement(
            db=s,
            actor=team["admin"],
            mission_id=team["mission_id"],
            title="t",
            lang="ru",
            text=RU,
        ).id
        service.submit(db=s, actor=team["admin"], statement_id=sid2)
    with db.session() as s, pytest.raises(PermissionDenied, match="different person"):
        service.decide(db=s, actor=team["admin"], statement_id=sid2, approve=True)
    with db.session() as s:
        st = service.decide(db=s, actor=team["approver"], statement_id=sid, approve=True)
        assert st.status == "approved"
        assert service.approval_minutes(st) is not None


def test_return_needs_a_comment_and_goes_back_to_the_drafter(
    db: Database, team: dict[str, Any]
) -> None:
    sid = _statement(db, team)
    with db.session() as s:
        service.submit(db=s, actor=team["drafter"], statement_id=sid)
    with db.session() as s, pytest.raises(service.SpeakError, match="Comment"):
        service.decide(db=s, actor=team["approver"], statement_id=sid, approve=False)
    with db.session() as s:
        st = service.decide(
            db=s,
            actor=team["approver"],
            statement_id=sid,
            approve=False,
            comment="Name the festival dates.",
        )
        assert st.status == "returned"
        assert service.approvals_of(db=s, statement_id=sid)[0].comment == "Name the festival dates."
    with db.session() as s:
        service.save_version(
            db=s, actor=team["drafter"], statement_id=sid, lang="kk", text=KK + " 5-7 желтоқсан."
        )
        assert service.submit(db=s, actor=team["drafter"], statement_id=sid).status == "submitted"


def test_urgent_statement_needs_two_different_approvers(db: Database, team: dict[str, Any]) -> None:
    sid = _statement(db, team, urgent=True)
    with db.session() as s:
        service.submit(db=s, actor=team["drafter"], statement_id=sid)
    with db.session() as s:
        assert (
            service.decide(db=s, actor=team["approver"], statement_id=sid, approve=True).status
            == "submitted"
        )
    with db.session() as s, pytest.raises(service.SpeakError, match="second approver"):
        service.decide(db=s, actor=team["approver"], statement_id=sid, approve=True)
    with db.session() as s:
        st = service.decide(db=s, actor=team["approver2"], statement_id=sid, approve=True)
        assert st.status == "approved"
        assert len(service.approvals_of(db=s, statement_id=sid)) == 2


def test_translation_drafted_side_by_side_must_be_reviewed_before_submit(
    db: Database, team: dict[str, Any]
) -> None:
    sid = _statement(db, team)
    with db.session() as s:
        v = service.draft_translation(
            db=s, actor=team["drafter"], statement_id=sid, source_lang="kk", target_lang="ru"
        )
        assert v.text == KK and v.source_lang == "kk" and v.translated_with is None
    with db.session() as s:
        service.save_version(db=s, actor=team["drafter"], statement_id=sid, lang="ru", text=RU)
    with db.session() as s, pytest.raises(service.SpeakError, match=r"reviewed.*ru"):
        service.submit(db=s, actor=team["drafter"], statement_id=sid)
    with db.session() as s:
        service.mark_reviewed(db=s, actor=team["drafter"], statement_id=sid, lang="ru")
        service.submit(db=s, actor=team["drafter"], statement_id=sid)
        assert list(service.versions_of(db=s, statement_id=sid)) == ["kk", "ru"]


class Upper(Translator):
    """A stand-in machine translation backend, registered as a plugin."""

    slug = "upper"
    title = "Upper"

    def translate(self, text: str, *, source: str, target: str) -> str:
        return f"[{target}] {text.upper()}"


def test_machine_translation_backend_is_optional_and_pluggable(
    db: Database, team: dict[str, Any]
) -> None:
    from elshi.plugins import get_manager, hookimpl, translators

    class Plugin:
        @hookimpl
        def elshi_translators(self) -> list[type[Translator]]:
            return [Upper]

    pm = get_manager()
    assert translators() == {}
    plugin = Plugin()
    pm.register(plugin, name="test-translator")
    try:
        assert list(translators()) == ["upper"]
        sid = _statement(db, team)
        with db.session() as s:
            v = service.draft_translation(
                db=s,
                actor=team["drafter"],
                statement_id=sid,
                source_lang="kk",
                target_lang="en",
                translator=translators()["upper"](),
            )
            assert v.text.startswith("[en] ҚАЗАҚСТАН") and v.translated_with == "upper"
    finally:
        pm.unregister(plugin)


def test_bad_input_is_refused_with_what_and_where(db: Database, team: dict[str, Any]) -> None:
    with db.session() as s, pytest.raises(service.SpeakError, match="Language de"):
        service.create_statement(
            db=s,
            actor=team["drafter"],
            mission_id=team["mission_id"],
            title="x",
            lang="de",
            text="Hallo",
        )
    with db.session() as s, pytest.raises(service.SpeakError, match="kk text: write something"):
        sid = service.create_statement(
            db=s,
            actor=team["drafter"],
            mission_id=team["mission_id"],
            title="x",
            lang="kk",
            text="ok",
        ).id
        service.save_version(db=s, actor=team["drafter"], statement_id=sid, lang="kk", text="  ")
    with db.session() as s, pytest.raises(service.SpeakError, match="Media 1"):
        sid = _statement(db, team)
        service.save_version(
            db=s,
            actor=team["drafter"],
            statement_id=sid,
            lang="kk",
            text=KK,
            media=[{"url": "javascript:alert(1)"}],
        )
    with db.session() as s, pytest.raises(service.SpeakError, match="Time zone"):
        service.local_to_utc(datetime(2026, 12, 5, 10), "Mars/Olympus")
    with db.session() as s, pytest.raises(PermissionDenied):
        service.create_statement(
            db=s,
            actor=team["approver"],
            mission_id=team["mission_id"],
            title="x",
            lang="kk",
            text=KK,
        )


def _approved(db: Database, team: dict[str, Any]) -> int:
    sid = _statement(db, team)
    with db.session() as s:
        service.submit(db=s, actor=team["drafter"], statement_id=sid)
    with db.session() as s:
        service.decide(db=s, actor=team["approver"], statement_id=sid, approve=True)
    return sid


def test_nothing_unapproved_reaches_a_channel(
    db: Database, team: dict[str, Any], settings: Settings
) -> None:
    account = _web_account(db, team, settings)
    sid = _statement(db, team)
    with db.session() as s, pytest.raises(service.NotApproved):
        service.schedule(db=s, actor=team["drafter"], statement_id=sid, account_ids=[account])
    sid = _approved(db, team)
    with db.session() as s:
        pubs = service.schedule(
            db=s, actor=team["drafter"], statement_id=sid, account_ids=[account]
        )
        pid = pubs[0].id
    # Someone changes the text behind elshi's back after approval: the worker refuses.
    with db.session() as s:
        v = s.scalar(select(StatementVersion).where(StatementVersion.statement_id == sid))
        assert v is not None
        v.text = "Unapproved words"
    ctx = ChannelContext(settings=settings, db=db)
    assert flows.send_publication(db, pid, ctx) == "failed"
    with db.session() as s:
        pub = s.get(Publication, pid)
        assert pub is not None and pub.error_kind == "not_approved" and pub.sent_at is None
    # Editing through elshi returns the statement to draft: approval is needed again.
    sid = _approved(db, team)
    with db.session() as s:
        service.save_version(
            db=s, actor=team["drafter"], statement_id=sid, lang="kk", text=KK + " !"
        )
    with db.session() as s:
        st = service.get_statement(db=s, actor=team["drafter"], statement_id=sid)
        assert st.status == "draft" and st.approved_digest is None
        with pytest.raises(service.NotApproved):
            service.schedule(db=s, actor=team["drafter"], statement_id=sid, account_ids=[account])


def test_schedule_in_the_audience_time_zone_and_calendar(
    db: Database, team: dict[str, Any], settings: Settings
) -> None:
    account = _web_account(db, team, settings)
    sid = _approved(db, team)
    with db.session() as s:
        pubs = service.schedule(
            db=s,
            actor=team["drafter"],
            statement_id=sid,
            account_ids=[account],
            at=datetime(2026, 12, 5, 10, 0),
            tz="Europe/Berlin",
        )
        assert pubs[0].due_at == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
        assert pubs[0].status == "pending"
    with db.session() as s:
        days = service.calendar(
            db=s, actor=team["drafter"], mission_id=team["mission_id"], month=date(2026, 12, 1)
        )
        assert [st.id for st in days[date(2026, 12, 5)]] == [sid]
        assert (
            service.calendar(db=s, actor=team["drafter"], mission_id=None, month=date(2026, 11, 1))
            == {}
        )
    # not due yet at 08:00 UTC that morning: the worker leaves it alone; due at 09:00
    ctx = ChannelContext(settings=settings, db=db)
    assert flows.publish_due(db, ctx, now=datetime(2026, 12, 5, 8, 0, tzinfo=UTC))["due"] == []
    assert flows.publish_due(db, ctx, now=datetime(2026, 12, 5, 9, 0, tzinfo=UTC))["due"] == [
        pubs[0].id
    ]


def test_credentials_are_encrypted_at_rest_and_never_listed(
    db: Database, team: dict[str, Any], settings: Settings
) -> None:
    with db.session() as s:
        acc = service.add_account(
            db=s,
            actor=team["admin"],
            settings=settings,
            mission_id=team["mission_id"],
            channel="mastodon",
            name="Mastodon",
            config={"base_url": "https://mastodon.example"},
            secrets={"access_token": "very-secret-token-123"},
        )
        aid = acc.id
    with db.session() as s:
        row = s.get(ChannelAccount, aid)
        assert row is not None and row.secret and "very-secret" not in row.secret
        assert "very-secret" not in str(row.config)
        views = service.list_accounts(db=s, actor=team["admin"])
        assert views[0].has_secret and "very-secret" not in repr(views)
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "channel.add")))
        assert events and "very-secret" not in str(events[0].detail)
    from elshi.speak import crypto

    assert crypto.decrypt(settings, row.secret)["access_token"] == "very-secret-token-123"
    other = settings.model_copy(update={"secret_key": "another-secret"})
    with pytest.raises(crypto.CredentialsUnreadable, match="set-secret"):
        crypto.decrypt(other, row.secret)
    with db.session() as s, pytest.raises(service.SpeakError, match="credentials: access_token"):
        service.add_account(
            db=s,
            actor=team["admin"],
            settings=settings,
            mission_id=team["mission_id"],
            channel="mastodon",
            name="M",
            config={"base_url": "https://m.example"},
            secrets={},
        )
    with db.session() as s, pytest.raises(PermissionDenied):
        service.add_account(
            db=s,
            actor=team["drafter"],
            settings=settings,
            mission_id=team["mission_id"],
            channel="web",
            name="W",
            config={},
            secrets={},
        )


def test_other_missions_statements_are_invisible(db: Database, team: dict[str, Any]) -> None:
    sid = _statement(db, team)
    other = staff(db, "tokyo")
    with db.session() as s, pytest.raises(service.StatementNotFound):
        service.get_statement(db=s, actor=other["drafter"], statement_id=sid)
    with db.session() as s:
        assert service.list_statements(db=s, actor=other["drafter"]) == []
        assert [x.id for x in service.list_statements(db=s, actor=Principal.system())] == [sid]


def test_rebuttal_shows_topic_volume_and_negative_share_before_and_after(
    db: Database, team: dict[str, Any], settings: Settings
) -> None:
    from datetime import timedelta

    from elshi.connectors.base import PostIn, RawRecord
    from elshi.connectors.demo import DemoConnector
    from elshi.listen.flows import ingest_records
    from elshi.listen.models import Annotation, Post

    answered = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    class Fixed(DemoConnector):
        slug = "fixed"

        def to_post(self, raw: RawRecord) -> PostIn:
            p = raw.payload
            return PostIn(
                platform="test",
                external_id=p["id"],
                text=p["text"],
                published_at=datetime.fromisoformat(p["at"]),
            )

    rows = []
    for i in range(10):  # before: 10 posts on the rumour, 8 of them negative
        rows.append(
            {
                "id": f"b{i}",
                "text": f"Су тарифі туралы өсек {i}",
                "at": answered - timedelta(hours=5 + i * 6),
                "neg": i < 8,
            }
        )
    for i in range(4):  # after: 4 posts, 1 negative
        rows.append(
            {
                "id": f"a{i}",
                "text": f"Су тарифі туралы түсініктеме {i}",
                "at": answered + timedelta(hours=3 + i * 10),
                "neg": i == 0,
            }
        )
    rows.append({"id": "other", "text": "Мәдениет күндері", "at": answered, "neg": True})
    records = [RawRecord({**r, "at": r["at"].isoformat()}, location=r["id"]) for r in rows]
    ingest_records(db, Fixed(), records, origin="t")
    with db.session() as s:
        for post in s.scalars(select(Post)):
            neg = next(r["neg"] for r in rows if r["id"] == post.external_id)
            s.add(
                Annotation(
                    post_id=post.id,
                    enricher="sentiment",
                    version="t",
                    label="negative" if neg else "neutral",
                    score=0.0,
                    value={},
                )
            )
    account = _web_account(db, team, settings)
    sid = _statement(db, team, topic_query="су тарифі", narrative_id=7)
    with db.session() as s:
        service.submit(db=s, actor=team["drafter"], statement_id=sid)
    with db.session() as s:
        service.decide(db=s, actor=team["approver"], statement_id=sid, approve=True)
    with db.session() as s:
        pub = service.schedule(
            db=s, actor=team["drafter"], statement_id=sid, account_ids=[account]
        )[0]
        pub.status, pub.sent_at = "sent", answered
    with db.session() as s:
        r = service.rebuttal(
            db=s, actor=team["drafter"], statement_id=sid, days=3, now=answered + timedelta(days=5)
        )
    assert r is not None and r.narrative_id == 7 and r.answered_at == answered
    assert (r.before.volume, r.before.negative_share) == (10, 0.8)
    assert (r.after.volume, r.after.negative_share) == (4, 0.25)
    assert sum(n for _, n in r.before.daily) == 10 and sum(n for _, n in r.after.daily) == 4
    assert r.after.per_day < r.before.per_day


def test_admin_commands_add_a_channel_list_retry(
    cli: Any, db: Database, team: dict[str, Any], settings: Settings
) -> None:
    r = cli(
        "channels",
        "add",
        "mastodon",
        "Mastodon ru",
        "--mission",
        "berlin",
        "-o",
        "base_url=https://mastodon.example",
        "-o",
        "languages=ru,kk",
        "--secrets-stdin",
        input="access_token=tok-123\n",
    )
    assert r.exit_code == 0, r.output
    r = cli("channels", "list", "--json")
    rows = json.loads(r.output)
    assert rows[0]["config"]["languages"] == ["ru", "kk"] and rows[0]["has_credentials"]
    assert "tok-123" not in r.output
    assert cli("channels", "add", "myspace", "x", "--secrets-stdin", input="").exit_code == 2
    assert (
        cli(
            "channels", "add", "web", "x", "--mission", "nowhere", "--secrets-stdin", input=""
        ).exit_code
        == 4
    )
    r = cli(
        "channels",
        "add",
        "mastodon",
        "M",
        "--mission",
        "berlin",
        "--secrets-stdin",
        input="access_token=t\n",
    )
    assert r.exit_code == 2 and "base_url" in r.output
    assert cli("channels", "set-secret", "999", "--secrets-stdin", input="").exit_code == 4
    assert (
        cli(
            "channels",
            "set-secret",
            str(rows[0]["id"]),
            "--secrets-stdin",
            input="access_token=new\n",
        ).exit_code
        == 0
    )
    assert cli("statements", "retry", "999").exit_code == 4
    sid = _approved(db, team)
    acc = _web_account(db, team, settings)
    with db.session() as s:
        pid = service.schedule(db=s, actor=team["drafter"], statement_id=sid, account_ids=[acc])[
            0
        ].id
    r = cli("statements", "publish-due")
    assert r.exit_code == 0 and f"publication {pid}: sent" in r.output
    r = cli("statements", "publications", "--json")
    assert json.loads(r.output)[0]["status"] == "sent"
    assert cli("statements", "retry", str(pid)).exit_code == 1  # not failed
    assert cli("statements", "list", "--status", "approved").exit_code == 0
    assert cli("statements", "reach").exit_code == 0
    assert len(cli("channels", "new-key").output.strip()) == 44
