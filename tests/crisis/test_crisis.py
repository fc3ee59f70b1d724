"""Crisis mode: the area, SMS sizing, four eyes, bad check-in input (forged, replayed, closed,
flooding), relatives, walk-ins, SMS replies, the kill switch, retries, exports and the CLI."""

from __future__ import annotations

import csv
import io
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from elshi import crypto
from elshi.accounts.service import Principal
from elshi.consulate.models import Citizen, Registration
from elshi.crisis import flows, service
from elshi.crisis.models import CheckIn, Delivery, Recipient, WalkIn
from elshi.crisis.views import twilio_signature
from elshi.db import Database, utcnow
from elshi.settings import Settings
from tests.crisis.support import MESSAGES, populate, team
from tests.crisis.support import crisis as _crisis
from tests.crisis.support import officer_client as _client
from tests.crisis.support import sent as _sent
from tests.crisis.support import staff_login as _staff_login
from tests.speak.platforms import TOKENS, PlatformServer

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def gateways() -> Iterator[PlatformServer]:
    server = PlatformServer().start()
    yield server
    server.stop()


def _token(settings: Settings, cid: int, rid: int) -> str:
    key = crypto.purpose_key(settings, crypto.CHECKIN)
    return service.checkin_token(key=key, crisis_id=cid, recipient_id=rid)


def _first_recipient(db: Database, cid: int) -> Recipient:
    with db.session() as s:
        r = s.scalars(
            select(Recipient).where(Recipient.crisis_id == cid).order_by(Recipient.id)
        ).first()
        assert r is not None
        return r


# ---------------------------------------------------------------------------- sizing and area


def test_sms_segments_gsm7_and_ucs2() -> None:
    assert service.sms_segments("a" * 160) == service.Segments("GSM-7", 160, 1, 160)
    assert service.sms_segments("a" * 161).segments == 2  # 153 per joined segment
    assert service.sms_segments("a" * 306).segments == 2
    assert service.sms_segments("a" * 307).segments == 3
    assert service.sms_segments("€" * 80).units == 160  # extension characters count twice
    assert service.sms_segments("ж" * 70) == service.Segments("UCS-2", 70, 1, 70)
    assert service.sms_segments("ж" * 71).segments == 2  # 67 per joined segment
    assert service.sms_segments("Қ" * 135).segments == 3


def test_sms_too_long_is_refused_with_its_segment_count() -> None:
    raw = {"text_ru": "Текст", "sms_ru": "Ж" * 250}
    with pytest.raises(service.Invalid) as info:
        service.parse_messages(raw, max_segments=3, base_url="http://127.0.0.1:8000")
    problem = info.value.problems[0]
    assert problem.where == "sms_ru"
    assert problem.params["segments"] > 3 and problem.params["encoding"] == "UCS-2"
    ok = service.parse_messages(
        {"text_ru": "Текст", "sms_ru": "Ж" * 100}, max_segments=3, base_url="http://x"
    )
    assert ok["ru"]["sms"] == "Ж" * 100


def test_area_parsing_errors_name_the_field() -> None:
    with pytest.raises(service.Invalid, match="area"):
        service.parse_area({})
    with pytest.raises(service.Invalid, match="countries"):
        service.parse_area({"countries": "Turkey"})
    with pytest.raises(service.Invalid, match="polygon"):
        service.parse_area({"polygon": "41 28; 42 29"})
    with pytest.raises(service.Invalid, match="circle"):
        service.parse_area({"circle": "41 28"})
    with pytest.raises(service.Invalid, match=r"location|polygon"):
        service.parse_area({"polygon": "91 28; 42 29; 40 27"})


def test_empty_area_is_refused_before_sending(db: Database) -> None:
    t = team(db)
    populate(db, t.mission_id, 5)
    with db.session() as s, pytest.raises(service.Invalid) as info:
        service.create_crisis(
            db=s,
            actor=t.officer,
            mission_id=t.mission_id,
            title="Nothing",
            area=service.parse_area({"cities": "Izmir"}),
            audience="present",
            messages=MESSAGES,
        )
    assert info.value.problems[0].message == service.EMPTY_AREA
    # People leave between approval and sending: the send is refused the same way.
    bid, _ = _crisis(db, t)
    with db.session() as s:
        service.approve(db=s, actor=t.officer2, broadcast_id=bid)
        s.execute(update(Registration).values(status="cancelled"))
    with db.session() as s, pytest.raises(service.Invalid, match="No one is in this area"):
        service.send(db=s, actor=t.officer2, broadcast_id=bid)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0


def test_polygon_circle_and_audience(db: Database) -> None:
    t = team(db)
    populate(db, t.mission_id, 30)  # around 41.01, 28.97
    populate(db, t.mission_id, 10, city="Ankara", center=(39.93, 32.86), prefix="a")
    with db.session() as s:
        today = utcnow().date()
        s.execute(
            update(Registration)
            .where(Registration.city == "Ankara")
            .values(arrive_on=today + timedelta(days=10), leave_on=today + timedelta(days=20))
        )
    with db.session() as s:
        poly = service.parse_area({"polygon": "40.5 28.5; 41.5 28.5; 41.5 29.5; 40.5 29.5"})
        assert (
            service.preview(
                db=s,
                actor=Principal.system(),
                mission_id=t.mission_id,
                area=poly,
                audience="present",
            ).people
            == 30
        )
        circle = service.parse_area({"circle": "39.93 32.86 50"})
        assert (
            service.preview(
                db=s,
                actor=Principal.system(),
                mission_id=t.mission_id,
                area=circle,
                audience="present",
            ).people
            == 0
        )
        seen = service.preview(
            db=s,
            actor=Principal.system(),
            mission_id=t.mission_id,
            area=circle,
            audience="everyone",
        )
        assert seen.people == 10 and seen.present_by_dates == 0
        both = service.parse_area({"countries": "TR"})
        seen = service.preview(
            db=s, actor=Principal.system(), mission_id=t.mission_id, area=both, audience="everyone"
        )
        assert seen.people == 40 and seen.channels["sms"] == 40


# ---------------------------------------------------------------------------- four eyes, kill


def test_four_eyes_roles_and_kill_switch(db: Database, settings: Settings) -> None:
    t = team(db)
    populate(db, t.mission_id, 12)
    bid, cid = _crisis(db, t)
    with db.session() as s, pytest.raises(service.Invalid, match="second officer"):
        service.approve(db=s, actor=t.officer, broadcast_id=bid)
    with db.session() as s, pytest.raises(service.NotFound):
        service.approve(db=s, actor=t.analyst, broadcast_id=bid)  # reads, may not act
    with db.session() as s, pytest.raises(service.Invalid, match="awaiting"):
        service.send(db=s, actor=t.officer2, broadcast_id=bid)
    with db.session() as s:
        service.approve(db=s, actor=t.officer2, broadcast_id=bid)
    with db.session() as s:
        counts = service.send(db=s, actor=t.officer, broadcast_id=bid)
    assert counts["email"] > 0
    with db.session() as s:
        stopped = service.kill(db=s, actor=t.officer, crisis_id=cid)
    assert stopped == sum(counts.values())
    out = flows.deliver(db, settings, broadcast_id=bid, channel="email")
    assert out["sent"] == 0
    with db.session() as s:
        statuses = set(s.scalars(select(Delivery.status)))
        assert statuses == {"cancelled"}
        assert service.escalate(db=s, minutes=0, now=utcnow() + timedelta(hours=2))["sms"] == 0


def test_follow_up_reaches_only_the_unanswered(db: Database) -> None:
    t = team(db)
    populate(db, t.mission_id, 6, telegram_every=0, unverified_every=0)
    _, cid = _sent(db, t)
    first = _first_recipient(db, cid)
    with db.session() as s:
        service.record_checkin(
            s, crisis_id=cid, recipient_id=first.id, answer="safe", nonce="n-000001"
        )
        f = service.follow_up(db=s, actor=t.officer, crisis_id=cid, messages=MESSAGES)
        fid = f.id
    with db.session() as s:
        service.approve(db=s, actor=t.officer2, broadcast_id=fid)
    with db.session() as s:
        counts = service.send(db=s, actor=t.officer2, broadcast_id=fid)
    assert counts["email"] == 5


# ---------------------------------------------------------------------------- delivery retries


def test_sms_gateway_errors_retry_with_backoff_and_idempotency_key(
    db: Database, settings: Settings, gateways: PlatformServer
) -> None:
    t = team(db)
    populate(db, t.mission_id, 3, telegram_every=0)
    with db.session() as s:  # no confirmed e-mail, no Telegram: SMS only
        s.execute(update(Citizen).values(email_verified_at=None))
    settings.crisis_sms_url = f"{gateways.url}/sms"
    settings.crisis_sms_account = "AC1"
    settings.crisis_sms_token = TOKENS["sms"]
    settings.crisis_rate_sms = 0
    bid, _ = _sent(db, t)
    gateways.fail("sms", "500")
    gateways.fail("sms", "429")
    out = flows.deliver(db, settings, broadcast_id=bid, channel="sms")
    assert out == {"sent": 1, "failed": 0, "retry": 2, "skipped": 0, "unknown": 0}
    with db.session() as s:
        waiting = s.scalars(select(Delivery).where(Delivery.status == "pending")).all()
        assert len(waiting) == 2 and all(d.due_at > utcnow() for d in waiting)
        assert {d.error[:14] for d in waiting} == {"SMS gateway: H"}
        s.execute(update(Delivery).values(due_at=utcnow() - timedelta(seconds=1)))
    out = flows.deliver(db, settings, broadcast_id=bid, channel="sms")
    assert out["sent"] == 2
    assert len(gateways.posts["sms"]) == 3
    keys = [k for (p, k) in gateways.idempotency if p == "sms"]
    assert len(set(keys)) == 3
    # Sending the same delivery again with its key returns the first message, not a new SMS.
    settings.crisis_sms_gateway = "nope"
    with pytest.raises(Exception, match="no gateway 'nope'"):
        flows.SmsSender(settings)


def test_a_stopped_worker_leaves_unknown_never_resent(db: Database, settings: Settings) -> None:
    t = team(db)
    populate(db, t.mission_id, 4, telegram_every=0, unverified_every=0)
    _sent(db, t)
    with db.session() as s:
        one = s.scalars(select(Delivery.id)).first()
        s.execute(
            update(Delivery)
            .where(Delivery.id == one)
            .values(status="sending", claimed_at=utcnow() - timedelta(hours=1))
        )
    assert flows.reconcile(db, settings) == 1
    with db.session() as s:
        assert s.get(Delivery, one).status == "unknown"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- check-in page


def test_checkin_page_is_small_and_scriptless_and_records_answers(
    db: Database, settings: Settings
) -> None:
    t = team(db)
    populate(db, t.mission_id, 3)
    _, cid = _sent(db, t)
    r = _first_recipient(db, cid)
    client = _client(settings, db)
    token = _token(settings, cid, r.id)
    page = client.get(f"/c/{token}")
    assert page.status_code == 200
    assert len(page.content) < 4096 and "<script" not in page.text
    nonce = re.search(r'name="n" value="([^"]+)"', page.text)
    assert nonce
    data = {"answer": "help", "note": "broken leg", "location": "41.02, 28.95", "n": nonce[1]}
    done = client.post(f"/c/{token}", data=data)
    assert done.status_code == 200 and "needing help" in done.text
    again = client.post(f"/c/{token}", data=data)  # the same form sent twice
    assert again.status_code == 200 and "already recorded" in again.text
    bad = client.post(f"/c/{token}", data={"answer": "maybe", "n": "abcdefgh12"})
    assert bad.status_code == 422 and "Choose" in bad.text
    where = client.post(
        f"/c/{token}", data={"answer": "safe", "location": "north", "n": "abcdefgh13"}
    )
    assert where.status_code == 422 and "latitude" in where.text
    with db.session() as s:
        rows = s.scalars(select(CheckIn)).all()
        assert [(c.answer, c.note, round(c.latitude or 0, 2)) for c in rows] == [
            ("help", "broken leg", 41.02)
        ]
        assert service.help_points(db=s, crisis_id=cid) == [(41.02, 28.95)]


def test_forged_altered_and_closed_links(db: Database, settings: Settings) -> None:
    t = team(db)
    populate(db, t.mission_id, 3)
    _, cid = _sent(db, t)
    r = _first_recipient(db, cid)
    client = _client(settings, db)
    token = _token(settings, cid, r.id)
    other_person = token.split("-")[0] + "-" + service._b36(r.id + 1) + "-" + token.split("-", 2)[2]
    forged = service.checkin_token(key=b"someone-else", crisis_id=cid, recipient_id=r.id)
    for bad in (other_person, forged, "garbage", token[:-3]):
        got = client.post(f"/c/{bad}", data={"answer": "safe", "n": "abcdefgh00"})
        assert got.status_code == 404 and "not valid" in got.text, bad
        assert client.get(f"/c/{bad}").status_code == 404
    # A genuine link for a person of another crisis is refused by the INSERT's condition.
    stray = _token(settings, cid + 1, r.id)
    assert client.post(f"/c/{stray}", data={"answer": "safe", "n": "abcdefgh01"}).status_code == 404
    with db.session() as s:
        service.close(db=s, actor=t.officer, crisis_id=cid)
    closed = client.post(f"/c/{token}", data={"answer": "safe", "n": "abcdefgh02"})
    assert closed.status_code == 410 and "over" in closed.text
    assert client.get(f"/c/{token}").status_code == 410
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(CheckIn)) == 0


def test_a_flood_from_one_address_gets_429(db: Database, settings: Settings) -> None:
    t = team(db)
    populate(db, t.mission_id, 3)
    _, cid = _sent(db, t)
    r = _first_recipient(db, cid)
    settings.crisis_checkin_per_minute = 3
    client = _client(settings, db)
    token = _token(settings, cid, r.id)
    codes = [
        client.post(f"/c/{token}", data={"answer": "safe", "n": f"flood-{i:04d}"}).status_code
        for i in range(6)
    ]
    assert codes[:3] == [200, 200, 200] and set(codes[3:]) == {429}
    last = client.post(f"/c/{token}", data={"answer": "safe", "n": "flood-9999"})
    assert last.status_code == 429 and "Too many answers" in last.text
    assert last.headers["retry-after"] == "60"
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(CheckIn)) == 3


def test_a_relative_answers_after_proving_the_phone(db: Database, settings: Settings) -> None:
    t = team(db)
    populate(db, t.mission_id, 3)
    _, cid = _sent(db, t)
    r = _first_recipient(db, cid)
    client = _client(settings, db)
    token = _token(settings, cid, r.id)
    base = {"answer": "safe", "relative": "Aigerim (sister)", "n": "relative01"}
    wrong = client.post(f"/c/{token}/relative", data=base | {"phone_tail": "0000"})
    assert wrong.status_code == 403 and "do not match" in wrong.text
    right = client.post(f"/c/{token}/relative", data=base | {"phone_tail": r.phone[-4:]})
    assert right.status_code == 200
    with db.session() as s:
        c = s.scalars(select(CheckIn)).one()
        assert (c.via, c.relative) == ("relative", "Aigerim (sister)")
        assert service.welfare(db=s, crisis_id=cid).by_relative == 1


def test_walkin_and_merge(db: Database, settings: Settings) -> None:
    t = team(db)
    populate(db, t.mission_id, 3)
    _, cid = _sent(db, t)
    client = _client(settings, db)
    form = client.get(f"/c/register/{cid}")
    assert form.status_code == 200 and "<script" not in form.text
    empty = client.post(f"/c/register/{cid}", data={"name": "Dana"})
    assert empty.status_code == 422 and "phone number or an e-mail" in empty.text
    ok = client.post(
        f"/c/register/{cid}", data={"name": "Dana", "email": "p1@example.org", "answer": "help"}
    )
    assert ok.status_code == 200
    client.post(f"/c/register/{cid}", data={"name": "Yerlan", "phone": "+7 700 000 0000"})
    with db.session() as s:
        assert service.merge_walkins(db=s, actor=t.officer, crisis_id=cid) == 1
        merged = s.scalars(select(WalkIn).where(WalkIn.merged_citizen_id.is_not(None))).one()
        assert merged.name == "Dana"
    assert client.get("/c/register/9999").status_code == 410


def test_sms_reply_webhook_is_signed(db: Database, settings: Settings) -> None:
    t = team(db)
    populate(db, t.mission_id, 3)
    _, cid = _sent(db, t)
    r = _first_recipient(db, cid)
    settings.crisis_sms_token = TOKENS["sms"]
    client = _client(settings, db)
    params = {"From": r.phone, "Body": "HELP water rising", "MessageSid": "SM1"}
    url = settings.base_url + "/crisis/sms/inbound"
    bad = client.post("/crisis/sms/inbound", data=params, headers={"X-Twilio-Signature": "x"})
    assert bad.status_code == 403
    sig = twilio_signature(TOKENS["sms"], url, params)
    got = client.post("/crisis/sms/inbound", data=params, headers={"X-Twilio-Signature": sig})
    assert got.status_code == 200 and "<Message>OK</Message>" in got.text
    with db.session() as s:
        c = s.scalars(select(CheckIn)).one()
        assert (c.recipient_id, c.answer, c.note, c.via) == (r.id, "help", "water rising", "sms")


# ---------------------------------------------------------------------------- officer pages


def test_officer_pages_preview_create_dashboard_and_exports(
    db: Database, settings: Settings
) -> None:
    t = team(db)
    populate(db, t.mission_id, 20)
    client = _client(settings, db)
    _staff_login(client, "duty1@mfa.example")
    page = client.get("/crisis")
    token = CSRF.search(page.text)
    assert token
    form = {
        "csrf_token": token[1],
        "mission_id": str(t.mission_id),
        "title": "Storm",
        "cities": "Izmir",
        "audience": "present",
        "text_en": "Storm warning",
        "sms_en": "Storm",
        "action": "preview",
    }
    empty = client.post("/crisis", data=form)
    assert empty.status_code == 200 and "0 people" in empty.text
    create = client.post("/crisis", data=form | {"action": "create"})
    assert create.status_code == 422 and "No one is in this area" in create.text
    form["cities"] = "Istanbul"
    long_sms = client.post("/crisis", data=form | {"sms_ru": "Ж" * 300, "text_ru": "Ш"})
    assert long_sms.status_code == 422 and "segments" in long_sms.text
    seen = client.post("/crisis", data=form)
    assert "20 people will be reached" in seen.text and "segment" in seen.text
    made = client.post("/crisis", data=form | {"action": "create"}, follow_redirects=False)
    assert made.status_code == 303
    dash = client.get(made.headers["location"])
    assert dash.status_code == 200 and "Waiting for a second officer" in dash.text
    assert "Not sent yet: 20 people" in dash.text and "<svg" in dash.text
    cid = int(re.search(r"/crisis/(\d+)", made.headers["location"])[1])  # type: ignore[index]
    csv_text = client.get(f"/crisis/{cid}/evacuation.csv").text
    rows = list(csv.DictReader(io.StringIO(csv_text.lstrip("\ufeff"))))
    assert len(rows) == 0  # nobody is in the crisis until it is sent
    with db.session() as s:
        bid = s.scalar(select(func.max(Delivery.broadcast_id))) or 0
    assert bid == 0


def test_evacuation_export_csv_and_pdf(db: Database, settings: Settings) -> None:
    t = team(db)
    populate(db, t.mission_id, 8)
    _, cid = _sent(db, t)
    with db.session() as s:
        ids = list(
            s.scalars(select(Recipient.id).where(Recipient.crisis_id == cid).order_by(Recipient.id))
        )
        for rid, answer in zip(ids[:3], ("safe", "help", "left"), strict=True):
            service.record_checkin(
                s,
                crisis_id=cid,
                recipient_id=rid,
                answer=answer,
                note="=cmd",
                nonce=f"n-{rid:08d}",
            )
    client = _client(settings, db)
    _staff_login(client, "duty1@mfa.example")
    got = client.get(f"/crisis/{cid}/evacuation.csv")
    rows = list(csv.DictReader(io.StringIO(got.text.lstrip("\ufeff"))))
    assert len(rows) == 7  # the one who left is not on it
    assert {r["presence"] for r in rows} == {"confirmed", "estimated"}
    assert all(not r["note"].startswith("=") for r in rows)
    if shutil.which(settings.chromium_path) or shutil.which("chromium"):
        pdf = client.get(f"/crisis/{cid}/evacuation.pdf")
        assert pdf.status_code == 200 and pdf.content[:4] == b"%PDF"


def test_cli_create_approve_send_status_export(
    db: Database, settings: Settings, cli: Any, tmp_path: Any
) -> None:
    t = team(db)
    populate(db, t.mission_id, 9, telegram_every=0, unverified_every=0)
    dry = cli(
        "crisis",
        "create",
        "istanbul",
        "Quake",
        "--as",
        "duty1@mfa.example",
        "--cities",
        "Istanbul",
        "--text",
        "en:Quake",
        "--dry-run",
    )
    assert dry.exit_code == 0 and "9 people" in dry.output
    long = cli(
        "crisis",
        "create",
        "istanbul",
        "Quake",
        "--as",
        "duty1@mfa.example",
        "--cities",
        "Istanbul",
        "--text",
        "ru:Земля",
        "--sms",
        "ru:" + "Ж" * 300,
    )
    assert long.exit_code == 2 and "segments" in long.output
    none = cli(
        "crisis",
        "create",
        "istanbul",
        "Quake",
        "--as",
        "duty1@mfa.example",
        "--cities",
        "Izmir",
        "--text",
        "en:Quake",
    )
    assert none.exit_code == 2 and "No one is in this area" in none.output
    made = cli(
        "crisis",
        "create",
        "istanbul",
        "Quake",
        "--as",
        "duty1@mfa.example",
        "--cities",
        "Istanbul",
        "--text",
        "en:Quake",
    )
    assert made.exit_code == 0, made.output
    bid = re.search(r"broadcast (\d+)", made.output)[1]  # type: ignore[index]
    same = cli("crisis", "approve", bid, "--as", "duty1@mfa.example")
    assert same.exit_code == 2 and "second officer" in same.output
    assert cli("crisis", "approve", bid, "--as", "duty2@mfa.example").exit_code == 0
    settings.queue_immediate = False
    sent = cli("crisis", "send", bid, "--as", "duty2@mfa.example")
    assert sent.exit_code == 0 and "email 9" in sent.output
    status = cli("crisis", "status", "1")
    assert "people 9" in status.output and "estimated 9" in status.output
    out = tmp_path / "list.csv"
    assert cli("crisis", "export", "1", str(out)).exit_code == 0
    assert len(out.read_text(encoding="utf-8").strip().splitlines()) == 10
