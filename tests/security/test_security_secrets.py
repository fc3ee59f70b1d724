"""Security II, secrets: a key per purpose, the key file, the secret key out of the environment,
citizens' personal data sealed at rest with blind indexes, the decryption audit, key rotation
and the migration that seals existing rows."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import itsdangerous
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi.testclient import TestClient
from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Integer,
    MetaData,
    create_engine,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection, make_url

from elshi import crypto
from elshi import settings as settings_module
from elshi.accounts import service as accounts
from elshi.accounts.models import AuditEvent, User
from elshi.app import create_app
from elshi.consulate import service as consulate
from elshi.consulate.models import Citizen, Message, Registration, ServiceRequest
from elshi.crisis import service as crisis
from elshi.crisis import telegram
from elshi.crisis.models import CheckIn, Recipient, WalkIn
from elshi.db import Database, SealedUnreadable, utcnow
from elshi.migrate import current_revision, head_revision, migrate
from elshi.missions.service import ensure_hq
from elshi.settings import Settings, SettingsError, load_settings
from elshi.speak import crypto as credentials
from elshi.speak.models import ChannelAccount
from elshi.web.deps import SESSION_COOKIE, session_serializer
from tests.conftest import BACKEND, PG_ADMIN, _clear_env, service_missing
from tests.consulate.support import PASSWORD, World, free_port, world
from tests.crisis.support import MESSAGES, Team, populate, team

PHONE = "+7 701 234 56 78"
REG_PHONE = "+49 30 9876 5432"
ADDRESS = "Friedrichstraße 43, 10117 Berlin"
CONTACT = "Mother, +7 777 000 11 22"
COMPANION = "Dana Applicantova"
PASSPORT = "N1234567"
BODY = "My passport N1234567 was stolen at the station"
NEW_KEY = "the-new-secret-key-after-rotation-0123456789"


@pytest.fixture
def w(db: Database) -> World:
    return world(db)


def _personal_data(db: Database, w: World) -> int:
    """Alice: a phone, a stay with address, phone, contact and a companion, a submitted visa
    request with her passport number, and a message. Returns the request id."""
    today = date.today()
    with db.session() as s:
        alice = s.get(Citizen, w.alice)
        assert alice is not None
        alice.phone = PHONE
        consulate.register_stay(
            db=s,
            citizen_id=w.alice,
            raw={
                "mission_id": str(w.a),
                "country_code": "DE",
                "city": "Berlin",
                "address": ADDRESS,
                "arrive_on": str(today),
                "leave_on": str(today + timedelta(days=10)),
                "phone": REG_PHONE,
                "emergency_contact": CONTACT,
                "companion_0_name": COMPANION,
                "companion_0_relation": "daughter",
            },
        )
        req = consulate.create_draft(db=s, citizen_id=w.alice, service_type_id=w.visa_a)
        consulate.save_answers(
            db=s,
            citizen_id=w.alice,
            request_id=req.id,
            raw={"full_name": "Alice Applicant", "passport_number": "n 123 4567"},
        )
        req.status, req.submitted_at = "submitted", utcnow()
        consulate.post_message(
            db=s, request=req, kind="citizen", sender_id=w.alice, label="Alice", body=BODY
        )
        return req.id


def _raw(db: Database, sql: str, **params: Any) -> list[str]:
    with db.engine.connect() as conn:
        return [str(v) for v in conn.execute(text(sql), params).scalars()]


# ---------------------------------------------------------------------------- purpose keys


def _old_checkin_token(secret: str, crisis_id: int, recipient_id: int) -> str:
    """A check-in token as elshi made them before purpose keys: keyed by the raw secret."""
    key = hashlib.sha256(f"elshi.crisis.checkin:{secret}".encode()).digest()
    payload = f"{crisis._b36(crisis_id)}-{crisis._b36(recipient_id)}"
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:12]
    return f"{payload}-{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def _sent_crisis(db: Database, t: Team) -> int:
    with db.session() as s:
        b = crisis.create_crisis(
            db=s,
            actor=t.officer,
            mission_id=t.mission_id,
            title="Flood",
            area=crisis.parse_area({"countries": "TR", "cities": "Istanbul"}),
            audience="present",
            messages=MESSAGES,
        )
        bid, cid = b.id, b.crisis_id
    with db.session() as s:
        crisis.approve(db=s, actor=t.officer2, broadcast_id=bid)
    with db.session() as s:
        crisis.send(db=s, actor=t.officer2, broadcast_id=bid)
    return cid


def _first_recipient(db: Database, cid: int) -> Recipient:
    with db.session() as s:
        r = s.scalars(select(Recipient).where(Recipient.crisis_id == cid).order_by(Recipient.id))
        first = r.first()
        assert first is not None
        return first


def test_finding_checkin_link_forged_with_the_raw_secret_key_is_refused(
    db: Database, settings: Settings
) -> None:
    t = team(db)
    populate(db, t.mission_id, 2)
    cid = _sent_crisis(db, t)
    r = _first_recipient(db, cid)
    client = TestClient(create_app(settings, db=db))
    forged = _old_checkin_token(settings.secret_key, cid, r.id)
    assert client.get(f"/c/{forged}").status_code == 404
    got = client.post(f"/c/{forged}", data={"answer": "safe", "n": "abcdefgh00"})
    assert got.status_code == 404
    genuine = crisis.checkin_token(
        key=crypto.purpose_key(settings, crypto.CHECKIN), crisis_id=cid, recipient_id=r.id
    )
    assert client.get(f"/c/{genuine}").status_code == 200


def test_finding_signatures_made_with_the_raw_secret_key_are_refused(settings: Settings) -> None:
    from elshi.consulate.views import _serializer as citizen_serializer
    from elshi.speak.service import _unsubscribe_signer

    raw = settings.secret_key
    cases: list[tuple[Any, Any]] = [
        (session_serializer(settings), URLSafeTimedSerializer(raw, salt="elshi.session")),
        (citizen_serializer(settings), URLSafeTimedSerializer(raw, salt="elshi.citizen")),
        (_unsubscribe_signer(settings), URLSafeSerializer(raw, salt="elshi.unsubscribe")),
    ]
    for ours, old in cases:
        assert ours.loads(ours.dumps("k")) == "k"
        with pytest.raises(BadSignature):
            ours.loads(old.dumps("k"))
    # The Telegram start link, keyed before by SHA-256 of the raw secret.
    old_key = hashlib.sha256(b"elshi.telegram-link\0" + raw.encode()).digest()
    body = struct.pack(">II", 42, int(time.time()) + 3600)
    old_link = base64.urlsafe_b64encode(
        body + hmac.new(old_key, body, hashlib.sha256).digest()[:16]
    )
    assert telegram.read_token(settings, old_link.decode().rstrip("=")) is None
    assert telegram.read_token(settings, telegram.link_token(settings, 42)) == 42
    # Each purpose has its own key, none of them the secret key.
    keys = {crypto.purpose_key(settings, p) for p in crypto.PURPOSES}
    assert len(keys) == len(crypto.PURPOSES) and raw.encode() not in keys


# ---------------------------------------------------------------------------- the key file


def _key_file(path: Path, key: str, mode: int = 0o600) -> Path:
    path.write_text(key + "\n", encoding="utf-8")
    path.chmod(mode)
    return path


def test_key_file_is_read_and_refused_when_others_can_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear_env(monkeypatch)
    path = _key_file(tmp_path / "secret.key", "k" * 40)
    monkeypatch.setenv("ELSHI_SECRET_KEY_FILE", str(path))
    loaded = load_settings(demo=False)
    assert loaded.secret_key == "k" * 40
    loaded.require_secret()
    path.chmod(0o644)
    with pytest.raises(SettingsError, match=r"ELSHI_SECRET_KEY_FILE.*chmod 600"):
        load_settings()
    path.chmod(0o640)  # the group of the service may read it
    assert load_settings().secret_key == "k" * 40
    monkeypatch.setenv("ELSHI_SECRET_KEY", "x" * 40)
    with pytest.raises(SettingsError, match="not both"):
        load_settings()
    monkeypatch.delenv("ELSHI_SECRET_KEY")
    previous = _key_file(tmp_path / "previous.keys", "p" * 40 + "\n" + "q" * 40)
    monkeypatch.setenv("ELSHI_SECRET_KEY_PREVIOUS_FILE", str(previous))
    assert load_settings().previous_secret_keys == ["p" * 40, "q" * 40]
    _key_file(tmp_path / "empty.key", "")
    monkeypatch.setenv("ELSHI_SECRET_KEY_FILE", str(tmp_path / "empty.key"))
    with pytest.raises(SettingsError, match=r"ELSHI_SECRET_KEY_FILE.*empty"):
        load_settings()


def test_hide_secrets_takes_the_keys_out_of_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_env(monkeypatch)
    monkeypatch.setattr(settings_module, "_taken", {})
    monkeypatch.setenv("ELSHI_SECRET_KEY", "e" * 40)
    monkeypatch.setenv("ELSHI_SECRET_KEY_PREVIOUS", "f" * 40)
    settings_module.hide_secrets()
    assert "ELSHI_SECRET_KEY" not in os.environ
    assert "ELSHI_SECRET_KEY_PREVIOUS" not in os.environ
    loaded = load_settings()
    assert loaded.secret_key == "e" * 40 and loaded.previous_secret_keys == ["f" * 40]
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ.get('ELSHI_SECRET_KEY'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "None"


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = [item.decode("utf-8", "replace").split("=", 1) for item in raw.split(b"\0") if item]
    return {p[0]: p[1] if len(p) > 1 else "" for p in pairs}


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                out.append(int(entry.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_finding_secret_key_is_not_in_the_environment_after_start_up(settings: Settings) -> None:
    port = free_port()
    secret = "web-processes-secret-key-" + uuid.uuid4().hex
    env = {**os.environ, "ELSHI_SECRET_KEY": secret, "ELSHI_DEMO": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "elshi.cli", "web", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    key_files: list[str] = []
    try:
        deadline = time.monotonic() + 90
        page = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert page is not None and page.status_code == 200, (
            proc.stdout.read().decode() if proc.stdout and proc.poll() is not None else ""
        )
        # The serving process signed the form with the CSRF key of the secret it was given.
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        signer = crypto.signer(
            settings.model_copy(update={"secret_key": secret}), crypto.CSRF, "elshi.csrf"
        )
        assert signer.loads(token) == page.cookies["elshi_csrf"]
        pids = [proc.pid, *_children(proc.pid)]
        pids += [g for c in pids[1:] for g in _children(c)]
        pythons = [p for p in pids if "python" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(pythons) >= 3  # the command, uvicorn's workers
        for pid in pythons:
            environ = _environ(pid)
            assert "ELSHI_SECRET_KEY" not in environ, pid
            assert not any(secret in v for v in environ.values()), pid
            if "ELSHI_SECRET_KEY_FILE" in environ:
                key_files.append(environ["ELSHI_SECRET_KEY_FILE"])
        assert key_files, "the serving processes got their key from a key file"
        for path in set(key_files):
            assert Path(path).stat().st_mode & 0o077 == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for path in key_files:
        assert not Path(path).exists(), "the key file is removed when the server stops"


# ---------------------------------------------------------------------------- sealed at rest


def test_finding_personal_data_is_sealed_at_rest(db: Database, w: World) -> None:
    req_id = _personal_data(db, w)
    stored = [
        *_raw(db, "SELECT phone FROM citizen WHERE id = :i", i=w.alice),
        *_raw(
            db,
            "SELECT address FROM registration UNION ALL SELECT phone FROM registration "
            "UNION ALL SELECT emergency_contact FROM registration "
            "UNION ALL SELECT companions FROM registration",
        ),
        *_raw(db, "SELECT answers FROM service_request WHERE id = :i", i=req_id),
        *_raw(db, "SELECT body FROM consular_message"),
    ]
    assert len(stored) == 7
    for value in stored:
        assert value.startswith("sealed:"), value
        for secret in ("N1234567", "1234567", "234 56 78", "9876", "Friedrich", "Dana", "stolen"):
            assert secret not in value
    indexes = _raw(db, "SELECT passport_index FROM service_request WHERE id = :i", i=req_id)
    assert len(indexes[0]) == 64 and "1234567" not in indexes[0]
    with db.session() as s:
        alice = s.get(Citizen, w.alice)
        reg = s.scalars(select(Registration)).one()
        req = s.get(ServiceRequest, req_id)
        assert alice is not None and req is not None
        assert alice.phone == PHONE
        assert (reg.address, reg.phone, reg.emergency_contact) == (ADDRESS, REG_PHONE, CONTACT)
        assert reg.companions == [{"name": COMPANION, "relation": "daughter"}]
        assert req.answers["passport_number"] == "n 123 4567"
        assert s.scalars(select(Message.body)).one() == BODY


def test_finding_officers_find_citizens_by_passport_and_phone(db: Database, w: World) -> None:
    _personal_data(db, w)
    with db.session() as s:
        for q in ("N1234567", "n 123-4567", "8 (701) 234-56-78", "+77012345678", "030 98765432"):
            hits = consulate.search_district(db=s, actor=w.officer_a, q=q)
            assert [h.citizen.id for h in hits] == [w.alice], q
        assert consulate.search_district(db=s, actor=w.officer_a, q="N1234568") == []
        assert consulate.search_district(db=s, actor=w.officer_a, q="701 234 56 79") == []
        # Another mission's officer does not find her by the passport number either.
        assert consulate.search_district(db=s, actor=w.officer_b, q="N1234567") == []
    with db.session() as s:
        search = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "consulate.search")
        ).first()
        assert search is not None
        assert search.detail["citizen_id"] == w.alice and search.detail["why"] == "page"
        assert "citizen.phone" in search.detail["fields"]


def test_officers_search_page_finds_by_passport(settings: Settings, db: Database, w: World) -> None:
    _personal_data(db, w)
    with TestClient(create_app(settings, db=db)) as client:
        client.headers["accept-language"] = "en"
        page = client.get("/login")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        client.post(
            "/login",
            data={"email": "officer.a@mfa.example", "password": PASSWORD, "csrf_token": token},
        )
        found = client.get("/consular/search", params={"q": "N 1234567"})
        assert found.status_code == 200 and "Alice Applicant" in found.text and PHONE in found.text


def test_finding_sms_answer_finds_the_person_by_a_sealed_phone(
    db: Database, settings: Settings
) -> None:
    t = team(db)
    ids = populate(db, t.mission_id, 3)
    cid = _sent_crisis(db, t)
    with db.session() as s:
        r = s.scalars(select(Recipient).where(Recipient.citizen_id == ids[1])).one()
        stored_phone = r.phone
    digits = stored_phone.removeprefix("+90")
    # The same number written another way: international prefix 00 and spaces.
    sender = f"0090 {digits[:3]} {digits[3:6]} {digits[6:]}"
    with db.session() as s:
        assert (
            crisis.sms_reply(db=s, phone=sender, body="HELP water rising", nonce="sms-1") == "help"
        )
        assert crisis.sms_reply(db=s, phone="+1 555 000 0000", body="SAFE", nonce="sms-2") is None
    with db.session() as s:
        checkin = s.scalars(select(CheckIn)).one()
        assert (checkin.recipient_id, checkin.answer, checkin.note) == (
            r.id,
            "help",
            "water rising",
        )
        walkin = crisis.add_walkin(
            db=s, crisis_id=cid, raw={"name": "Yerlan", "phone": "+7 700 111 2233", "note": "hurt"}
        )
        walkin_id = walkin.id
    for value in (
        *_raw(db, "SELECT phone FROM crisis_recipient WHERE id = :i", i=r.id),
        *_raw(db, "SELECT note FROM crisis_checkin"),
        *_raw(db, "SELECT phone FROM crisis_walkin UNION ALL SELECT note FROM crisis_walkin"),
    ):
        assert value.startswith("sealed:") and digits[-4:] not in value and "water" not in value
    with db.session() as s:
        walked = s.get(WalkIn, walkin_id)
        assert walked is not None and (walked.phone, walked.note) == ("+7 700 111 2233", "hurt")


# ---------------------------------------------------------------------------- audit of decryption


def test_finding_officer_pages_and_exports_record_whose_data_was_opened(
    db: Database, w: World, settings: Settings, cli: Any, tmp_path: Path
) -> None:
    req_id = _personal_data(db, w)
    with db.session() as s:
        consulate.staff_request(db=s, actor=w.officer_a, request_id=req_id)
        consulate.export_citizen(db=s, citizen_id=w.alice)
    with db.session() as s:
        events = {e.action: e for e in s.scalars(select(AuditEvent))}
        view = events["consulate.view"]
        assert view.actor_id == w.officer_a.user_id and view.detail["citizen_id"] == w.alice
        assert view.detail["why"] == "page"
        assert set(view.detail["fields"]) >= {"service_request.answers", "consular_message.body"}
        export = events["citizen.export"]
        assert export.detail["why"] == "export" and export.detail["citizen_id"] == w.alice
        assert "registration.address" in export.detail["fields"]

    t = team(db)
    ids = populate(db, t.mission_id, 3)
    cid = _sent_crisis(db, t)
    with TestClient(create_app(settings, db=db)) as client:
        page = client.get("/login")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        client.post(
            "/login",
            data={"email": "duty1@mfa.example", "password": PASSWORD, "csrf_token": token},
        )
        assert client.get(f"/crisis/{cid}/people/all").status_code == 200
        assert client.get(f"/crisis/{cid}/evacuation.csv").status_code == 200
    out = tmp_path / "evacuation.csv"
    assert cli("crisis", "export", str(cid), str(out)).exit_code == 0
    with db.session() as s:
        lists = {
            (e.action, e.actor_label): e.detail
            for e in s.scalars(select(AuditEvent).where(AuditEvent.action.like("crisis.%")))
        }
    page_detail = lists[("crisis.worklist", "duty1@mfa.example")]
    web_export = lists[("crisis.export", "duty1@mfa.example")]
    cli_export = lists[("crisis.export", "cli")]
    assert page_detail["why"] == "page" and web_export["why"] == cli_export["why"] == "export"
    for detail in (page_detail, web_export, cli_export):
        assert sorted(detail["citizens"]) == sorted(ids)
        assert "crisis_recipient.phone" in detail["fields"]


# ---------------------------------------------------------------------------- rotation


def _channel_account(db: Database, settings: Settings, mission_id: int) -> int:
    with db.session() as s:
        row = ChannelAccount(
            mission_id=mission_id,
            channel="mastodon",
            name="@embassy",
            config={},
            secret=credentials.encrypt(settings, {"token": "platform-token-123"}),
        )
        s.add(row)
        s.flush()
        return row.id


def test_finding_rotation_reseals_and_the_old_key_no_longer_opens(
    db: Database, w: World, settings: Settings, cli: Any, tmp_path: Path
) -> None:
    _personal_data(db, w)
    account_id = _channel_account(db, settings, w.a)
    with db.session() as s:
        officer = s.get(User, w.officer_a.user_id)
        assert officer is not None
        officer.totp_secret = "JBSWY3DPEHPK3PXP"
    sealed_before = _raw(db, "SELECT phone FROM citizen WHERE id = :i", i=w.alice)
    new_file = _key_file(tmp_path / "new.key", NEW_KEY)
    result = cli("keys", "rotate", "--new-key-file", str(new_file))
    assert result.exit_code == 0, result.output
    assert "re-sealed" in result.output

    old_only = crypto.Keyring([settings.secret_key])
    new_only = crypto.Keyring([NEW_KEY])
    stored = [
        *_raw(db, "SELECT phone FROM citizen WHERE id = :i", i=w.alice),
        *_raw(db, "SELECT totp_secret FROM user_account WHERE totp_secret IS NOT NULL"),
        *_raw(db, "SELECT address FROM registration UNION ALL SELECT answers FROM service_request"),
        *_raw(db, "SELECT body FROM consular_message"),
    ]
    assert len(stored) == 5 and stored[0] != sealed_before[0]
    for value in stored:
        assert value.startswith("sealed:")
        with pytest.raises(SealedUnreadable):
            old_only.open(value)
        new_only.open(value)

    rotated = settings.model_copy(update={"secret_key": NEW_KEY})
    new_db = Database(rotated)
    old_db = Database(settings)
    try:
        with new_db.session() as s:
            alice = s.get(Citizen, w.alice)
            assert alice is not None and alice.phone == PHONE
            officer = s.get(User, w.officer_a.user_id)
            assert officer is not None and officer.totp_secret == "JBSWY3DPEHPK3PXP"
            # The blind indexes were recomputed with the new key alone.
            hits = consulate.search_district(db=s, actor=w.officer_a, q="N1234567")
            assert [h.citizen.id for h in hits] == [w.alice]
            account = s.get(ChannelAccount, account_id)
            assert account is not None
            assert credentials.decrypt(rotated, account.secret) == {"token": "platform-token-123"}
        with pytest.raises(SealedUnreadable), old_db.session() as s:
            s.get(Citizen, w.alice)
        with old_db.session() as s:
            assert consulate.search_district(db=s, actor=w.officer_a, q="N1234567") == []
            audited = s.scalars(select(AuditEvent).where(AuditEvent.action == "keys.rotate")).one()
            assert audited.detail["citizen"] >= 1
    finally:
        new_db.dispose()
        old_db.dispose()
    # Running it again is harmless; a key already in use is refused.
    assert cli("keys", "rotate", "--new-key-file", str(new_file)).exit_code == 0
    assert new_only.open(_raw(db, "SELECT body FROM consular_message")[0]) == BODY
    same = _key_file(tmp_path / "same.key", settings.secret_key)
    refused = cli("keys", "rotate", "--new-key-file", str(same))
    assert refused.exit_code == 2 and "current key" in refused.output


def test_finding_links_made_before_rotation_stay_valid_until_they_expire(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = settings
    rotated = settings.model_copy(
        update={"secret_key": NEW_KEY, "secret_key_previous": settings.secret_key}
    )
    alone = settings.model_copy(update={"secret_key": NEW_KEY})

    # Check-in links (no expiry of their own: valid while the crisis is open).
    token = crisis.checkin_token(
        key=crypto.purpose_key(old, crypto.CHECKIN), crisis_id=3, recipient_id=9
    )
    assert crisis.read_token(keys=crypto.verify_keys(rotated, crypto.CHECKIN), token=token) == (
        3,
        9,
    )
    with pytest.raises(crisis.BadToken):
        crisis.read_token(keys=crypto.verify_keys(alone, crypto.CHECKIN), token=token)
    # Telegram start links: valid with the previous key, until their two days are over.
    assert telegram.read_token(rotated, telegram.link_token(old, 42)) == 42
    assert telegram.read_token(alone, telegram.link_token(old, 42)) is None
    expired = telegram.link_token(old, 42, now=time.time() - 3 * 86400)
    assert telegram.read_token(rotated, expired) is None
    # Unsubscribe links.
    from elshi.speak.service import _unsubscribe_signer

    assert _unsubscribe_signer(rotated).loads(_unsubscribe_signer(old).dumps(7)) == 7
    # New signatures and seals are made with the new key only, never with the previous one.
    with pytest.raises(BadSignature):
        session_serializer(old).loads(session_serializer(rotated).dumps("k"))
    sealed = crypto.Keyring.of(rotated).seal("secret")
    assert crypto.Keyring.of(alone).open(sealed) == "secret"
    with pytest.raises(SealedUnreadable):
        crypto.Keyring.of(old).open(sealed)

    # A staff session made before the rotation is still signed in after it.
    with db.session() as s:
        user = accounts.create_user(db=s, email="duty@mfa.example", password=PASSWORD)
        accounts.grant_role(db=s, user_id=user.id, mission_id=ensure_hq(db=s).id, role="analyst")
        key = accounts.create_session(db=s, user_id=user.id, lifetime=timedelta(hours=8))
    cookie = session_serializer(old).dumps(key)
    for config, signed_in in ((rotated, True), (alone, False)):
        client = TestClient(create_app(config, db=db))
        client.cookies.set(SESSION_COOKIE, cookie)
        assert (client.get("/api/me").status_code == 200) is signed_in
    # ... until the cookie is older than the session lifetime.
    then = int(time.time()) - (old.session_max_age_minutes + 5) * 60
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: then)
    stale = session_serializer(old).dumps(key)
    monkeypatch.undo()
    with pytest.raises(SignatureExpired):
        session_serializer(rotated).loads(stale, max_age=old.session_max_age_minutes * 60)


# ---------------------------------------------------------------------------- the migration


@pytest.fixture
def bare_url(tmp_path: Path) -> Iterator[str]:
    """An empty database on the test backend (SQLite file or a throwaway PostgreSQL one)."""
    if BACKEND != "postgres":
        yield f"sqlite:///{tmp_path / 'bare.db'}"
        return
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"elshi_seal_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    yield make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _filler(column: Any) -> Any:
    kind = column.type
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Integer):
        return 0
    if isinstance(kind, DateTime):
        return datetime(2026, 1, 2, 3, 4, 5)
    if isinstance(kind, Date):
        return date(2026, 1, 2)
    if isinstance(kind, JSON) or type(kind).__name__ == "JSONB":
        return {}
    return "x"


def _put(conn: Connection, meta: MetaData, table_name: str, **values: Any) -> int:
    """Insert a row with the given values and a filler in every other required column."""
    table = meta.tables[table_name]
    for column in table.columns:
        required = not column.nullable and column.server_default is None
        if column.name not in values and required and not column.primary_key:
            values[column.name] = _filler(column)
    return int(conn.execute(insert(table).values(values).returning(table.c.id)).scalar_one())


def _legacy_fernet(secret: str, salt: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"fernet").derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def test_migration_seals_existing_rows_and_fills_the_indexes(
    bare_url: str, settings: Settings
) -> None:
    plain = create_engine(bare_url)
    migrate(plain, "0011")
    secret = settings.secret_key
    meta = MetaData()
    with plain.begin() as conn:
        meta.reflect(bind=conn)
        m = _put(conn, meta, "mission", slug="berlin", name="Berlin", parent_id=None)
        u = _put(
            conn,
            meta,
            "user_account",
            email="o@mfa.example",
            totp_secret="sealed:"
            + _legacy_fernet(secret, b"elshi.sealed").encrypt(b"JBSWY3DPEHPK3PXP").decode(),
        )
        c = _put(conn, meta, "citizen", email="alice@example.org", phone=PHONE, totp_secret=None)
        _put(
            conn,
            meta,
            "registration",
            citizen_id=c,
            mission_id=m,
            address=ADDRESS,
            phone=REG_PHONE,
            emergency_contact=CONTACT,
            companions=[{"name": COMPANION}],
        )
        st = _put(conn, meta, "service_type", mission_id=m, slug="visa", names={}, fields=[])
        r = _put(
            conn,
            meta,
            "service_request",
            reference="R-1",
            citizen_id=c,
            mission_id=m,
            service_type_id=st,
            status="submitted",
            answers={"passport_number": PASSPORT},
            assigned_to=None,
        )
        _put(conn, meta, "consular_message", request_id=r, body=BODY, sender_id=None)
        k = _put(conn, meta, "crisis", mission_id=m, status="open", created_by=u, area={})
        rc = _put(
            conn,
            meta,
            "crisis_recipient",
            crisis_id=k,
            citizen_id=c,
            registration_id=None,
            assigned_to=None,
            phone=PHONE,
            officer_note="called twice",
        )
        _put(conn, meta, "crisis_checkin", crisis_id=k, recipient_id=rc, note="water rising")
        _put(
            conn,
            meta,
            "crisis_walkin",
            crisis_id=k,
            phone=REG_PHONE,
            note="hurt",
            name="Y",
            merged_citizen_id=None,
        )
        token = _legacy_fernet(secret, b"elshi.credentials").encrypt(b'{"token": "t-1"}')
        _put(
            conn,
            meta,
            "channel_account",
            mission_id=m,
            channel="rss",
            name="a",
            config={},
            secret=token.decode(),
        )

    # Without the secret key the migration refuses to leave the data as it is.
    with pytest.raises(RuntimeError, match="needs the secret key"):
        migrate(plain)
    # Each revision has its own transaction: 0012 finished and stays, 0013 left nothing.
    assert current_revision(plain) == "0012"
    plain.dispose()

    db = Database(settings.model_copy(update={"database_url": bare_url}))
    try:
        assert migrate(db.engine) == head_revision()
        raw = [
            *_raw(db, "SELECT phone FROM citizen"),
            *_raw(
                db, "SELECT address FROM registration UNION ALL SELECT companions FROM registration"
            ),
            *_raw(db, "SELECT answers FROM service_request"),
            *_raw(db, "SELECT body FROM consular_message"),
            *_raw(
                db, "SELECT phone FROM crisis_recipient UNION ALL SELECT note FROM crisis_checkin"
            ),
            *_raw(db, "SELECT phone FROM crisis_walkin UNION ALL SELECT note FROM crisis_walkin"),
        ]
        assert len(raw) == 9
        for value in raw:
            assert value.startswith("sealed:")
            assert not any(p in value for p in ("1234567", "234 56", "Friedrich", "Dana", "hurt"))
        with db.session() as s:
            citizen = s.scalars(select(Citizen)).one()
            assert citizen.phone == PHONE and citizen.phone_index is not None
            reg = s.scalars(select(Registration)).one()
            assert (reg.address, reg.companions) == (ADDRESS, [{"name": COMPANION}])
            req = s.scalars(select(ServiceRequest)).one()
            assert req.answers == {"passport_number": PASSPORT} and req.passport_index
            assert s.scalars(select(Message.body)).one() == BODY
            assert s.scalars(select(CheckIn.note)).one() == "water rising"
            assert s.scalars(select(Recipient.officer_note)).one() == "called twice"
            user = s.scalars(select(User)).one()
            assert user.totp_secret == "JBSWY3DPEHPK3PXP"  # moved to the sealing purpose key
            account = s.scalars(select(ChannelAccount)).one()
            assert credentials.decrypt(db.settings, account.secret) == {"token": "t-1"}
            # SMS answers and officers' searches find the migrated rows by their index.
            lookups = crypto.Keyring.of(db.settings).lookups(crypto.PHONE, "8 701 234 56 78")
            assert s.scalars(select(Recipient.id).where(Recipient.phone_index.in_(lookups))).one()
            found = json.loads(json.dumps(req.answers))
            assert found["passport_number"] == PASSPORT
    finally:
        db.dispose()
