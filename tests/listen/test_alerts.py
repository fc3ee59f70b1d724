"""Alerts: rule checks with robust statistics, the queue path, delivery by SMTP, webhook and
Telegram to real servers on loopback, retries, acknowledgement and comments."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from elshi import jobs
from elshi.accounts.service import Principal
from elshi.alerts import flows, service, wording
from elshi.alerts.models import RULE_KINDS, Alert, AlertDelivery, AlertRule
from elshi.app import create_app
from elshi.db import Database, utcnow
from elshi.missions import service as missions
from elshi.settings import Settings, load_settings
from elshi.watch import service as watches
from elshi.watch.matching import process_posts
from elshi.web import i18n
from tests.net_support import allow_loopback
from tests.workspace_helpers import (
    add_post,
    add_source,
    add_staff,
    csrf,
    http_receiver,
    sign_in,
    smtp_server,
)

SYSTEM = Principal.system()
MONDAY = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday


@pytest.fixture
def settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Webhook receivers run on 127.0.0.1 here: allow that address, as an operator allows
    an intranet range (elshi refuses private addresses by default)."""
    return allow_loopback(settings, monkeypatch)


@pytest.fixture
def watch_id(db: Database) -> int:
    with db.session() as s:
        add_staff(s, "analyst@example.org", "analyst", "beijing")
        mid = missions.get_mission(db=s, slug="beijing").id  # type: ignore[union-attr]
        return watches.save_watch(
            db=s, principal=SYSTEM, mission_id=mid, name="KZ–CN", terms="China | Қытай | Китай"
        ).id


def _rule(
    db: Database,
    watch_id: int,
    kind: str,
    params: dict[str, Any] | None = None,
    targets: dict[str, Any] | None = None,
) -> int:
    with db.session() as s:
        return service.create_rule(
            db=s,
            principal=SYSTEM,
            watch_id=watch_id,
            kind=kind,
            name=kind,
            params=params or {},
            targets=targets,
        ).id


def _weeks_of_posts(db: Database, weeks: int = 5) -> datetime:
    """Weekdays 10 posts, weekends 2, for some weeks; return the start of the day after."""
    with db.session() as s:
        for d in range(weeks * 7):
            day = MONDAY + timedelta(days=d)
            for k in range(10 if day.weekday() < 5 else 2):
                add_post(
                    s,
                    f"China trade note {d}-{k}",
                    day + timedelta(hours=8 + k),
                    sentiment="neutral",
                )
    return MONDAY + timedelta(days=weeks * 7)


def test_volume_spike_is_seasonal_and_explained(db: Database, watch_id: int) -> None:
    rule_id = _rule(db, watch_id, "volume_spike", {"threshold": 3, "min_count": 10})
    after = _weeks_of_posts(db)  # a Monday
    process_posts(db)
    with db.session() as s:
        # A normal weekend day and a normal Monday do not fire.
        assert service.check_volume_spike(s, s.get(AlertRule, rule_id)) is None
    with db.session() as s:
        for k in range(60):
            add_post(
                s,
                f"China border news {k}",
                after + timedelta(hours=8, minutes=k * 10),
                sentiment="neutral",
                metrics={"likes": k},
            )
    result = process_posts(db)
    with db.session() as s:
        fired = flows.evaluate_rules(s, matched=result.matched)
    assert len(fired) == 1
    with db.session() as s:
        alert = s.get(Alert, fired[0])
        assert alert is not None and alert.kind == "volume_spike"
        why = alert.why
        assert why["current"] == 60 and why["seasonal"] is True
        assert why["baseline"] == [10, 10, 10, 10]  # the same window on the past four Mondays
        assert why["expected"] == 10 and why["z"] >= 3
        assert len(alert.post_ids) == 10
        # Posts with the most engagement come first.
        assert alert.post_ids[0] == max(alert.post_ids)
        # Checking again raises nothing new: one alert per window and the rule cools down.
        assert flows.evaluate_rules(s, matched=result.matched) == []


def test_negative_jump_reads_stance(db: Database, watch_id: int) -> None:
    _rule(db, watch_id, "negative_jump", {"min_delta": 0.3, "min_count": 10})
    day = MONDAY + timedelta(days=10)
    with db.session() as s:
        for d in range(7):
            for k in range(5):
                add_post(
                    s,
                    f"China opens a trade office {d}-{k}",
                    day - timedelta(days=7 - d, hours=-k),
                    sentiment="neutral",
                )
        for k in range(12):
            add_post(
                s,
                f"China is a terrible, corrupt and hostile partner {k}",
                day + timedelta(hours=k),
                sentiment="negative",
            )
    result = process_posts(db)
    with db.session() as s:
        fired = flows.evaluate_rules(s, matched=result.matched)
        assert len(fired) == 1
        why = s.get(Alert, fired[0]).why  # type: ignore[union-attr]
    assert why["posts"] == 12 and why["against"] >= 10 and why["baseline_share"] == 0.0


def test_term_rule_finds_inflected_forms(db: Database, watch_id: int) -> None:
    _rule(db, watch_id, "term", {"terms": "шекара\nborder"})
    with db.session() as s:
        quiet = add_post(s, "Қытай сауда келісімі", MONDAY, lang="kk")
        loud = add_post(
            s, "Қытай шекарасы жабылады деген қауесет", MONDAY + timedelta(hours=1), lang="kk"
        )
    result = process_posts(db)
    with db.session() as s:
        fired = flows.evaluate_rules(s, matched=result.matched)
        alert = s.get(Alert, fired[0])
    assert (
        alert is not None and alert.post_ids == [loud.id] and alert.why["found"] == {"шекарасы": 1}
    )
    assert quiet.id not in alert.post_ids


def test_source_silent(db: Database, watch_id: int) -> None:
    with db.session() as s:
        src = add_source(s, "Kazinform feed", None)
        add_post(s, "China", utcnow() - timedelta(hours=30), source_id=src.id)
        sid = src.id
    _rule(db, watch_id, "source_silent", {"source_id": sid, "silent_hours": 24})
    with db.session() as s:
        fired = flows.evaluate_rules(s, kinds=("source_silent",))
        why = s.get(Alert, fired[0]).why  # type: ignore[union-attr]
    assert why["source"] == "Kazinform feed" and 29 < why["hours_silent"] < 31
    with db.session() as s:
        with pytest.raises(service.InvalidRule) as err:
            service.create_rule(
                db=s,
                principal=SYSTEM,
                watch_id=watch_id,
                kind="source_silent",
                name="x",
                params={"source_id": 999},
            )
        assert err.value.field == "source_id"


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("volume_spike", {"threshold": "high"}, "threshold"),
        ("volume_spike", {"window_hours": 0}, "window_hours"),
        ("negative_jump", {"min_delta": 2}, "min_delta"),
        ("term", {"terms": ""}, "terms"),
        ("nonsense", {}, "kind"),
        ("narrative_growth", {"growth": 0}, "growth"),
    ],
)
def test_bad_rules_name_the_field(
    db: Database, watch_id: int, kind: str, params: dict[str, Any], field: str
) -> None:
    with db.session() as s, pytest.raises(service.InvalidRule) as err:
        service.create_rule(
            db=s, principal=SYSTEM, watch_id=watch_id, kind=kind, name="r", params=params
        )
    assert err.value.field == field


def _settings_with(settings: Settings, **values: Any) -> Settings:
    return load_settings(**{**settings.model_dump(), **values})


def test_delivery_by_email_webhook_and_telegram_with_retries(
    db: Database, settings: Settings, watch_id: int
) -> None:
    with (
        smtp_server() as (port, inbox),
        http_receiver([500]) as hook,
        http_receiver(body=b'{"ok": true, "result": {}}') as bot,
    ):
        conf = _settings_with(
            settings,
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_from="alerts@mfa.example",
            webhook_secret="s3cret",
            telegram_bot_token="123:abc",
            telegram_api_url=bot.url,
            public_url="https://elshi.mfa.example",
        )
        _rule(
            db,
            watch_id,
            "term",
            {"terms": "border"},
            {
                "emails": "duty@mfa.example, press@mfa.example",
                "webhook": hook.url + "/hook",
                "telegram": "-100200",
            },
        )
        with db.session() as s:
            add_post(s, "China closes the border", MONDAY)
        result = process_posts(db)
        assert flows.evaluate_after_batch(db, settings=conf, matched=result.matched) == 1
        with db.session() as s:
            rows = {d.target: d for d in s.scalars(select(AlertDelivery))}
        assert {k: v.status for k, v in rows.items()} == {
            "duty@mfa.example": "sent",
            "press@mfa.example": "sent",
            hook.url + "/hook": "pending",
            "-100200": "sent",
        }
        failed = rows[hook.url + "/hook"]
        assert (
            failed.attempts == 1
            and "HTTP 500" in (failed.last_error or "")
            and failed.next_attempt_at is not None
        )
        assert len(inbox.messages) == 2
        msg = inbox.messages[0]
        assert msg["From"] == "alerts@mfa.example" and "KZ–CN" in msg["Subject"]
        assert "https://elshi.mfa.example/alerts/" in msg.get_content()
        path, headers, body = bot.requests[0]
        assert path == "/bot123:abc/sendMessage" and json.loads(body)["chat_id"] == "-100200"
        # Not due yet: nothing is retried.
        assert flows.deliver_due(db, settings=conf)["sent"] == 0
        with db.session() as s:
            s.execute(update(AlertDelivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        assert flows.deliver_due(db, settings=conf) == {"sent": 1, "retry": 0, "failed": 0}
        path, headers, body = hook.requests[-1]
        payload = json.loads(body)
        assert (
            path == "/hook"
            and payload["type"] == "elshi.alert"
            and payload["why"]["found"] == {"border": 1}
        )
        expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers["X-Elshi-Signature"] == expected


def test_failures_give_up_and_show(
    client: TestClient, db: Database, settings: Settings, watch_id: int
) -> None:
    conf = _settings_with(settings, smtp_host="127.0.0.1", smtp_port=1, delivery_max_attempts=2)
    _rule(db, watch_id, "term", {"terms": "border"}, {"emails": "duty@mfa.example"})
    with db.session() as s:
        add_post(s, "China closes the border", MONDAY)
    flows.evaluate_after_batch(db, settings=conf, matched=process_posts(db).matched)
    with db.session() as s:
        s.execute(update(AlertDelivery).values(next_attempt_at=utcnow()))
    assert flows.deliver_due(db, settings=conf)["failed"] == 1
    with db.session() as s:
        d = s.scalar(select(AlertDelivery))
        assert (
            d is not None
            and d.status == "failed"
            and d.attempts == 2
            and "127.0.0.1:1" in (d.last_error or "")
        )
    sign_in(client, "analyst@example.org")
    page = client.get("/alerts")
    assert i18n.gettext("kk", "Deliveries that failed") in page.text and "127.0.0.1:1" in page.text


def test_queue_raises_alerts_and_people_acknowledge_and_comment(
    client: TestClient, db: Database, settings: Settings, watch_id: int
) -> None:
    _rule(db, watch_id, "term", {"terms": "border"})
    rt = jobs.bind(_settings_with(settings, queue_url="memory://", queue_immediate=True), db)
    with db.session() as s:
        post = add_post(s, "China closes the border", MONDAY)
    jobs.enqueue("enrich_new_posts", post.id - 1)
    assert rt.huey.immediate
    with db.session() as s:
        alert = s.scalar(select(Alert))
        assert alert is not None and alert.post_ids == [post.id]
        alert_id = alert.id
    sign_in(client, "analyst@example.org")
    home = client.get("/")
    assert 'class="count"' in home.text
    page = client.get(f"/alerts/{alert_id}")
    assert page.status_code == 200 and "border" in page.text
    rule = re.search(r'<p class="rule-sentence" id="alert-rule">(.*?)</p>', page.text)
    assert rule and _text(rule[1]) == (
        "Ереже: KZ–CN тізімі бойынша жаңа жарияланымда «border» аталса, маған хабар берілсін."
    )
    token = csrf(client, f"/alerts/{alert_id}")
    assert (
        client.post(
            f"/alerts/{alert_id}/comment", data={"csrf_token": token, "text": ""}
        ).status_code
        == 400
    )
    client.post(
        f"/alerts/{alert_id}/comment",
        data={"csrf_token": token, "text": "Checked with the consulate: false."},
    )
    client.post(f"/alerts/{alert_id}/ack", data={"csrf_token": token})
    page = client.get(f"/alerts/{alert_id}")
    assert "Checked with the consulate: false." in page.text
    assert i18n.gettext("kk", "acknowledged") in page.text
    with db.session() as s:
        a = s.get(Alert, alert_id)
        assert a is not None and a.status == "acknowledged" and a.acknowledged_by is not None
    # Another mission's staff cannot see it.
    client.post("/logout", data={"csrf_token": csrf(client, "/")})
    with db.session() as s:
        add_staff(s, "berlin@example.org", "analyst", "berlin")
    sign_in(client, "berlin@example.org")
    assert client.get(f"/alerts/{alert_id}").status_code == 404
    assert (
        client.post(f"/alerts/{alert_id}/ack", data={"csrf_token": csrf(client, "/")}).status_code
        == 404
    )


def test_rule_form(client: TestClient, db: Database, watch_id: int) -> None:
    sign_in(client, "analyst@example.org")
    token = csrf(client, f"/watch/{watch_id}/alerts")
    bad = client.post(
        f"/watch/{watch_id}/alerts",
        data={"csrf_token": token, "kind": "volume_spike", "name": "Spike", "threshold": "lots"},
    )
    assert (
        bad.status_code == 400
        and i18n.gettext("kk", "not a number") in bad.text
        and 'value="lots"' in bad.text
    )
    # Fields left empty show the default that an empty field stores.
    window = re.search(r'<input id="window_hours"[^>]*>', bad.text)
    assert window and 'value="24"' in window[0]
    bad = client.post(
        f"/watch/{watch_id}/alerts",
        data={"csrf_token": token, "kind": "term", "name": "T", "terms": "x", "webhook": "ftp://x"},
    )
    assert (
        bad.status_code == 400
        and i18n.gettext("kk", "must start with http:// or https://") in bad.text
    )
    ok = client.post(
        f"/watch/{watch_id}/alerts",
        data={"csrf_token": token, "kind": "volume_spike", "name": "Spike", "threshold": "2.5"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    with db.session() as s:
        rule = s.scalar(select(AlertRule))
        assert rule is not None and rule.params == {
            "window_hours": 24,
            "threshold": 2.5,
            "min_count": 10,
        }


def _text(html: str) -> str:
    """The words of a piece of a page, without tags and with spaces folded."""
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


#: What the rules of the test below read like, in each language.
RULE_SENTENCES = {
    "en": [
        "Alert me when at least 1 post about KZ–CN comes within 1 hour and",
        "Alert me when at least 3 posts about KZ–CN come within 2 hours and",
        "rises by 20% over the 3 days before",
        "Alert me when a new post about KZ–CN mentions «border», «шекара»",
        "Alert me when Xinhua feed posts nothing for 21 hours",
    ],
    "ru": [
        "если за 1 час по списку KZ–CN приходит 1 публикация или больше",
        "если за 2 часа по списку KZ–CN приходят 3 публикации или больше",
        "если за 5 часов по списку KZ–CN приходят 25 публикаций или больше",
        "источник Xinhua feed ничего не публикует 21 час",
        "выросла на 20 % по сравнению с долей за 3 дня до этого",
    ],
    "kk": [
        "KZ–CN тізімі бойынша 2 сағат ішінде кемінде 3 жарияланым келсе",
        "Xinhua feed көзі 21 сағат бойы ештеңе жарияламаса",
    ],
}


def test_rules_read_as_sentences_with_plural_forms(
    client: TestClient, db: Database, watch_id: int
) -> None:
    """Each stored rule reads as the sentence of its kind, its numbers in the reader's
    plural forms (Russian has three), its terms and source named."""
    with db.session() as s:
        mid = missions.get_mission(db=s, slug="beijing").id  # type: ignore[union-attr]
        source_id = add_source(s, "Xinhua feed", mid).id
    _rule(db, watch_id, "volume_spike", {"min_count": 1, "window_hours": 1})
    _rule(db, watch_id, "volume_spike", {"min_count": 3, "window_hours": 2})
    _rule(db, watch_id, "volume_spike", {"min_count": 25, "window_hours": 5})
    _rule(db, watch_id, "negative_jump", {"min_delta": 0.2, "baseline_days": 3})
    _rule(db, watch_id, "term", {"terms": "border\nшекара"})
    _rule(db, watch_id, "source_silent", {"source_id": source_id, "silent_hours": 21})
    sign_in(client, "analyst@example.org")
    for lang, sentences in RULE_SENTENCES.items():
        page = _text(client.get(f"/watch/{watch_id}/alerts?lang={lang}").text)
        missing = [words for words in sentences if words not in page]
        assert not missing, (lang, missing)


def test_every_rule_kind_has_a_sentence_with_a_place_for_each_setting() -> None:
    """The form can set every setting of every kind, in every language, and the words
    around the fields are translated (no English left in the Kazakh or Russian sentence)."""
    english = {
        kind: [words for field, words in wording.rule_sentence(kind, {}, "en") if not field]
        for kind in RULE_KINDS
    }
    for lang in i18n.LANGUAGES:
        for kind in RULE_KINDS:
            pieces = wording.rule_sentence(kind, dict(service.DEFAULTS[kind]), lang)
            fields = [field for field, _ in pieces if field and field != "watch"]
            assert sorted(fields) == sorted(service.DEFAULTS[kind]), (lang, kind)
            words = [words for field, words in pieces if not field]
            assert words and all(w.strip() for w in words[:1]), (lang, kind)
            if lang != "en":
                assert not set(words) & set(english[kind]) - {" "}, (lang, kind, words)


def test_the_form_script_gets_the_sentence_for_every_plural_form() -> None:
    """Russian counts have three forms (1 пост, 3 поста, 5 постов): the form's script gets
    the words of each combination, the same as the server would write for such numbers."""
    data = wording.sentence_variants("volume_spike", dict(service.DEFAULTS["volume_spike"]), "ru")
    assert data["settings"] == ["min_count", "window_hours"]
    forms = data["forms"]
    assert len({forms[1], forms[3], forms[5]}) == 3
    assert forms[21] == forms[1] and forms[11] == forms[5] and forms[112] == forms[5]
    for count, hours in ((1, 1), (3, 5), (5, 21), (12, 2)):
        words = [
            w
            for name, w in wording.rule_sentence(
                "volume_spike", {"min_count": count, "window_hours": hours}, "ru"
            )
            if not name
        ]
        assert data["variants"][f"{forms[count]},{forms[hours]}"] == words
    assert data["variants"]["0,0"] != data["variants"]["2,2"]
    english = wording.sentence_variants("term", {}, "en")
    assert english == {}  # a term rule has no number in its sentence


def test_rule_form_shows_each_kind_as_a_sentence_and_reads_only_the_chosen_one(
    client: TestClient, db: Database, watch_id: int
) -> None:
    sign_in(client, "analyst@example.org")
    page = client.get(f"/watch/{watch_id}/alerts?lang=en")
    # Without scripts every kind is there under its own heading, its fields in its sentence.
    for kind in ("volume_spike", "negative_jump", "term", "source_silent"):
        assert f'<fieldset class="rule-kind" id="kind-{kind}" data-kind="{kind}">' in page.text
    form = _text(page.text)
    assert "Alert me when at least posts about KZ–CN come within hours and" in form
    assert 'id="jump_window_hours" name="jump_window_hours"' in page.text
    assert '<script src="/static/rules.js" defer></script>' in page.text
    token = csrf(client, f"/watch/{watch_id}/alerts")
    # The browser sends every kind's fields; only the chosen kind's count.
    sent = {
        "csrf_token": token,
        "name": "Hostile turn",
        "kind": "negative_jump",
        "window_hours": "48",
        "min_count": "99",
        "threshold": "4",
        "jump_window_hours": "12",
        "jump_min_count": "5",
        "baseline_days": "3",
        "min_delta": "0.25",
        "terms": "",
        "silent_hours": "24",
        "growth": "2",
        "min_posts": "20",
        "cooldown": "60",
    }
    assert (
        client.post(f"/watch/{watch_id}/alerts", data=sent, follow_redirects=False).status_code
        == 303
    )
    with db.session() as s:
        rule = s.scalar(select(AlertRule).where(AlertRule.name == "Hostile turn"))
        assert rule is not None and rule.params == {
            "window_hours": 12,
            "baseline_days": 3,
            "min_delta": 0.25,
            "min_count": 5,
        }
    # An API client that knows only the shared names still sets them.
    old = {k: v for k, v in sent.items() if not k.startswith("jump_")}
    client.post(f"/watch/{watch_id}/alerts", data=old | {"name": "Old client"})
    with db.session() as s:
        rule = s.scalar(select(AlertRule).where(AlertRule.name == "Old client"))
        assert rule is not None and rule.params["window_hours"] == 48
    # A bad value names its field, in the reader's language, and marks that field.
    bad = client.post(f"/watch/{watch_id}/alerts?lang=ru", data=sent | {"jump_min_count": "many"})
    assert bad.status_code == 400
    error = re.search(r'<div class="error" role="alert" id="form-error">([^<]*)</div>', bad.text)
    assert error and error[1] == (
        i18n.gettext("ru", "Fewest posts") + ": " + i18n.gettext("ru", "not a number")
    )
    field = re.search(r"<input id=\"jump_min_count\"[^>]*>", bad.text)
    assert field and 'aria-invalid="true"' in field[0] and 'value="many"' in field[0]
    assert 'aria-invalid="true"' not in re.sub(r"<input id=\"jump_min_count\"[^>]*>", "", bad.text)
    # The chosen kind stays chosen.
    assert '<option value="negative_jump" selected>' in bad.text


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=db)) as c:
        yield c
