"""E-consulate services: access by role and mission, audit, uploads, e-mail, retention, export."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import struct
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from elshi.accounts.models import AuditEvent
from elshi.accounts.service import LoginPolicy, PermissionDenied, Principal
from elshi.consulate import documents, flows, service
from elshi.consulate.models import Citizen, Document, Registration, ServiceRequest, StaffAccess
from elshi.db import Database, utcnow
from elshi.settings import Settings
from tests.consulate.support import (
    PASSWORD,
    PNG_2x2,
    Sink,
    World,
    jpeg_with_gps,
    link_in,
    pdf,
    slot,
    world,
)


@pytest.fixture
def w(db: Database) -> World:
    return world(db)


def _visa(s: Any, w: World, citizen_id: int, settings: Settings) -> int:
    """A complete visa request with its two required documents, submitted."""
    req = service.create_draft(db=s, citizen_id=citizen_id, service_type_id=w.visa_a)
    service.save_answers(
        db=s,
        citizen_id=citizen_id,
        request_id=req.id,
        raw={
            "full_name": "Alice Applicant",
            "birth_date": "1990-02-03",
            "passport_number": "N1234567",
            "purpose": "tourism",
            "entry_date": "2027-01-10",
        },
    )
    s.commit()
    for kind, data in (("passport", pdf()), ("photo", PNG_2x2)):
        flows.upload_document(
            db=s,
            settings=settings,
            citizen_id=citizen_id,
            request_id=req.id,
            kind=kind,
            filename=f"{kind}.bin",
            data=data,
        )
    service.submit(db=s, citizen_id=citizen_id, request_id=req.id)
    return req.id


# ---------------------------------------------------------------------------- access by role


def test_citizen_reaches_only_own_records(db: Database, w: World, settings: Settings) -> None:
    with db.session() as s:
        req_id = _visa(s, w, w.alice, settings)
        stay = service.register_stay(
            db=s,
            citizen_id=w.alice,
            raw={
                "mission_id": str(w.a),
                "country_code": "de",
                "city": "Berlin",
                "arrive_on": str(date.today()),
                "leave_on": str(date.today() + timedelta(days=10)),
            },
        )
        doc_id = service.documents_of(db=s, request_id=req_id)[0].id
        stay_id = stay.id
    with db.session() as s:
        assert service.citizen_request(db=s, citizen_id=w.alice, request_id=req_id).id == req_id
        for call in (
            lambda: service.citizen_request(db=s, citizen_id=w.bob, request_id=req_id),
            lambda: service.citizen_document(db=s, citizen_id=w.bob, document_id=doc_id),
            lambda: service.citizen_stay(db=s, citizen_id=w.bob, registration_id=stay_id),
            lambda: service.save_answers(db=s, citizen_id=w.bob, request_id=req_id, raw={}),
            lambda: service.submit(db=s, citizen_id=w.bob, request_id=req_id),
            lambda: service.confirm_stay(db=s, citizen_id=w.bob, registration_id=stay_id),
            lambda: service.citizen_request(db=s, citizen_id=w.alice, request_id=10**6),
        ):
            with pytest.raises(service.NotFound):
                call()
        assert service.citizen_requests(db=s, citizen_id=w.bob) == []
        assert service.export_citizen(db=s, citizen_id=w.bob)["requests"] == []


@pytest.mark.parametrize(
    ("who", "sees", "acts"),
    [
        ("officer_a", True, True),
        ("officer_b", False, False),
        ("analyst_a", False, False),
        ("ambassador_a", True, False),
        ("hq_admin", True, True),
        ("nobody", False, False),
    ],
)
def test_staff_access_by_role_and_mission(
    db: Database, w: World, settings: Settings, who: str, sees: bool, acts: bool
) -> None:
    actor = (
        Principal(user_id=None, email="x@example.org", name="x")
        if who == "nobody"
        else getattr(w, who)
    )
    with db.session() as s:
        req_id = _visa(s, w, w.alice, settings)
        doc_id = service.documents_of(db=s, request_id=req_id)[0].id
    with db.session() as s:
        if sees:
            assert service.staff_request(db=s, actor=actor, request_id=req_id).id == req_id
            assert service.staff_document(db=s, actor=actor, document_id=doc_id).id == doc_id
        else:
            with pytest.raises(service.NotFound):
                service.staff_request(db=s, actor=actor, request_id=req_id)
            with pytest.raises(service.NotFound):
                service.staff_document(db=s, actor=actor, document_id=doc_id)
        if actor.can_somewhere("consulate.read"):
            total, rows = service.queue(db=s, actor=actor)
            assert ([r.id for r in rows] == [req_id]) is sees and total == len(rows)
        else:
            with pytest.raises(PermissionDenied):
                service.queue(db=s, actor=actor)
    with db.session() as s:
        if acts:
            assert service.claim(db=s, actor=actor, request_id=req_id).status == "in_review"
        else:
            with pytest.raises((service.NotFound, PermissionDenied)):
                service.claim(db=s, actor=actor, request_id=req_id)
            with pytest.raises((service.NotFound, PermissionDenied)):
                service.decide(db=s, actor=actor, request_id=req_id, approve=True, reason="")
    with db.session() as s:
        req = s.get(ServiceRequest, req_id)
        assert req is not None and req.status == ("in_review" if acts else "submitted")


def test_drafts_are_invisible_to_staff(db: Database, w: World) -> None:
    with db.session() as s:
        draft = service.create_draft(db=s, citizen_id=w.alice, service_type_id=w.visa_a)
        draft_id = draft.id
    with db.session() as s, pytest.raises(service.NotFound):
        service.staff_request(db=s, actor=w.officer_a, request_id=draft_id)


def test_every_staff_read_is_shown_to_the_citizen_and_audited(
    db: Database, w: World, settings: Settings
) -> None:
    with db.session() as s:
        req_id = _visa(s, w, w.alice, settings)
        doc_id = service.documents_of(db=s, request_id=req_id)[0].id
    with db.session() as s:
        service.staff_request(db=s, actor=w.officer_a, request_id=req_id)
        service.staff_document(db=s, actor=w.officer_a, document_id=doc_id)
        service.claim(db=s, actor=w.officer_a, request_id=req_id)
        service.search_district(db=s, actor=w.officer_a, q="alice")
    with db.session() as s, pytest.raises(service.NotFound):
        service.staff_request(db=s, actor=w.officer_b, request_id=req_id)
    with db.session() as s:
        log = service.access_log(db=s, citizen_id=w.alice)
        assert [(x.action, x.staff_label) for x in reversed(log)] == [
            ("view", "officer.a"),
            ("download", "officer.a"),
            ("change", "officer.a"),
            ("search", "officer.a"),
        ]
        assert service.access_log(db=s, citizen_id=w.bob) == []
        audited = s.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("consulate.%"))
        ).all()
        assert sorted(audited) == sorted(
            ["consulate.view", "consulate.download", "consulate.change", "consulate.search"]
        )


def test_district_search_stays_in_the_officers_missions(db: Database, w: World) -> None:
    today = date.today()
    with db.session() as s:
        for citizen_id, mission_id in ((w.alice, w.a), (w.bob, w.b)):
            service.register_stay(
                db=s,
                citizen_id=citizen_id,
                raw={
                    "mission_id": str(mission_id),
                    "country_code": "DE",
                    "city": "X",
                    "arrive_on": str(today),
                    "leave_on": str(today + timedelta(days=3)),
                },
            )
    with db.session() as s:
        names = [h.citizen.name for h in service.search_district(db=s, actor=w.officer_a, q="e")]
        assert names == ["Alice Applicant"]
        everyone = service.search_district(db=s, actor=w.hq_admin, q="E")
        assert sorted(h.citizen.name for h in everyone) == ["Alice Applicant", "Bob Visitor"]
        with pytest.raises(PermissionDenied):
            service.search_district(db=s, actor=w.analyst_a, q="alice")


# ---------------------------------------------------------------------------- requests


def test_request_lifecycle_with_history(db: Database, w: World, settings: Settings) -> None:
    with db.session() as s:
        req = service.create_draft(db=s, citizen_id=w.alice, service_type_id=w.visa_a)
        req_id = req.id
    with db.session() as s, pytest.raises(service.Invalid) as incomplete:
        service.submit(db=s, citizen_id=w.alice, request_id=req_id)
    wheres = {p.where for p in incomplete.value.problems}
    assert {"full_name", "passport_number", "passport", "photo"} <= wheres
    assert "invitation" not in wheres  # optional document
    with db.session() as s:
        s.delete(s.get(ServiceRequest, req_id))
        req_id = _visa(s, w, w.alice, settings)
    with db.session() as s:
        service.claim(db=s, actor=w.officer_a, request_id=req_id)
        with pytest.raises(service.Invalid):
            service.ask_documents(db=s, actor=w.officer_a, request_id=req_id, note="  ")
        service.ask_documents(db=s, actor=w.officer_a, request_id=req_id, note="Bank statement")
    with db.session() as s:
        flows.upload_document(
            db=s,
            settings=settings,
            citizen_id=w.alice,
            request_id=req_id,
            kind="invitation",
            filename="bank.pdf",
            data=pdf("bank"),
        )
        assert service.submit(db=s, citizen_id=w.alice, request_id=req_id).status == "in_review"
    with db.session() as s:
        with pytest.raises(service.Invalid) as no_reason:
            service.decide(db=s, actor=w.officer_a, request_id=req_id, approve=False, reason="")
        assert no_reason.value.problems[0].message == service.REASON_REQUIRED
        service.decide(db=s, actor=w.officer_a, request_id=req_id, approve=True, reason="")
    with db.session() as s:
        events = service.history(db=s, request_id=req_id)
        assert [(e.action, e.to_status) for e in events] == [
            ("created", None),
            ("submitted", "submitted"),
            ("claimed", "in_review"),
            ("asked_documents", "more_documents"),
            ("resubmitted", "in_review"),
            ("approved", "approved"),
        ]
        assert events[2].actor_label == "officer.a@mfa.example" and events[3].note
        assert all(e.at is not None for e in events)
        with pytest.raises(service.Invalid):  # decided: no more uploads
            service.save_answers(db=s, citizen_id=w.alice, request_id=req_id, raw={})


def test_malicious_and_missing_form_fields_are_refused(db: Database, w: World) -> None:
    today = date.today()
    with db.session() as s:
        req = service.create_draft(db=s, citizen_id=w.alice, service_type_id=w.visa_a)
        req_id = req.id
    bad = {
        "full_name": "x" * 201,
        "birth_date": "03/02/1990",
        "purpose": "smuggling",
        "passport_number": "A\x00B",
    }
    with db.session() as s, pytest.raises(service.Invalid) as refused:
        service.save_answers(db=s, citizen_id=w.alice, request_id=req_id, raw=bad)
    got = {p.where: p.message for p in refused.value.problems}
    assert got == {
        "full_name": service.TOO_LONG,
        "birth_date": service.BAD_DATE,
        "purpose": service.BAD_CHOICE,
        "passport_number": service.CONTROL_CHARS,
    }
    script = {"full_name": "<script>alert(1)</script>"}
    with db.session() as s:
        service.save_answers(db=s, citizen_id=w.alice, request_id=req_id, raw=script)
    with db.session() as s:
        assert s.get(ServiceRequest, req_id).answers["full_name"] == script["full_name"]  # type: ignore[union-attr]
    stays = [
        ({"mission_id": "999"}, "mission_id"),
        ({"mission_id": str(w.hq)}, "mission_id"),
        ({"country_code": "Narnia"}, "country_code"),
        ({"country_code": "ZZ"}, "country_code"),
        ({"leave_on": str(today - timedelta(days=1)), "arrive_on": str(today)}, "leave_on"),
        (
            {
                "leave_on": str(today - timedelta(days=2)),
                "arrive_on": str(today - timedelta(days=9)),
            },
            "leave_on",
        ),
        ({"city": ""}, "city"),
        ({"companion_0_name": "\u202eevil"}, "companion_0_name"),
    ]
    good = {
        "mission_id": str(w.a),
        "country_code": "DE",
        "city": "Berlin",
        "arrive_on": str(today),
        "leave_on": str(today + timedelta(days=5)),
    }
    for change, where in stays:
        with db.session() as s, pytest.raises(service.Invalid) as stay:
            service.register_stay(db=s, citizen_id=w.alice, raw=good | change)
        assert where in {p.where for p in stay.value.problems}, change
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Registration)) == 0


# ---------------------------------------------------------------------------- uploads


def test_bad_uploads_are_refused_and_nothing_is_stored(
    db: Database, w: World, settings: Settings
) -> None:
    with db.session() as s:
        req = service.create_draft(db=s, citizen_id=w.alice, service_type_id=w.visa_a)
        req_id = req.id
    cases = [
        (b"%PDF-1.4\n" + b"0" * (50 * 1024 * 1024), "big.pdf", documents.TOO_BIG),
        (b"MZ\x90\x00\x03" + os.urandom(4000), "invoice.pdf", documents.BAD_TYPE),
        (b"\x7fELF\x02\x01\x01" + os.urandom(100), "scan.pdf", documents.BAD_TYPE),
        (b"<!doctype html><script>alert(1)</script>", "page.pdf", documents.BAD_TYPE),
        (b"<html><body>x</body></html>", "photo.png", documents.BAD_TYPE),
        (b"", "empty.pdf", documents.EMPTY),
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 50, "photo.png", documents.BAD_IMAGE),
        (b"%PDF-1.4\nno end marker", "c.pdf", documents.BAD_PDF),
    ]
    for data, name, message in cases:
        with db.session() as s, pytest.raises(service.Invalid) as refused:
            flows.upload_document(
                db=s,
                settings=settings,
                citizen_id=w.alice,
                request_id=req_id,
                kind="passport",
                filename=name,
                data=data,
            )
        assert refused.value.problems[0].message == message, name
    with db.session() as s, pytest.raises(service.Invalid) as kind:
        flows.upload_document(
            db=s,
            settings=settings,
            citizen_id=w.alice,
            request_id=req_id,
            kind="../../etc",
            filename="x.pdf",
            data=pdf(),
        )
    assert kind.value.problems[0].where == "kind"
    with db.session() as s, pytest.raises(service.NotFound):
        flows.upload_document(
            db=s,
            settings=settings,
            citizen_id=w.bob,
            request_id=req_id,
            kind="passport",
            filename="x.pdf",
            data=pdf(),
        )
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Document)) == 0
    stored = list(settings.uploads_path.rglob("*")) if settings.uploads_path.exists() else []
    assert [p for p in stored if p.is_file()] == []


def test_images_are_reencoded_without_metadata_and_stored_privately(
    db: Database, w: World, settings: Settings
) -> None:
    original = jpeg_with_gps()
    assert b"SecretCam" in original
    with db.session() as s:
        req = service.create_draft(db=s, citizen_id=w.alice, service_type_id=w.visa_a)
        doc = flows.upload_document(
            db=s,
            settings=settings,
            citizen_id=w.alice,
            request_id=req.id,
            kind="photo",
            filename="../../My Photo<script>.jpeg.exe",
            data=original,
        )
        assert doc.content_type == "image/jpeg" and doc.filename == "My Photo_script_.jpeg.jpg"
        assert doc.scanner == "none"
        path = documents.file_path(settings.uploads_path, doc.storage_key)
    stored = path.read_bytes()
    assert stored != original and b"SecretCam" not in stored
    with Image.open(io.BytesIO(stored)) as img:
        assert img.size == (32, 24) and not img.getexif()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert "static" not in str(path) and path.name == doc.storage_key
    with pytest.raises(ValueError):
        documents.file_path(settings.uploads_path, "../elshi.db")


def _fake_clamd(path: Path, verdict: bytes) -> threading.Thread:
    """Speak clamd's INSTREAM protocol on a UNIX socket (documented in consulate/scan.py)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn, server:
            data = b""
            while b"\0" not in data:
                data += conn.recv(64)
            assert data.startswith(b"zINSTREAM\0")
            rest = data[len(b"zINSTREAM\0") :]
            while True:
                while len(rest) < 4:
                    rest += conn.recv(65536)
                (size,) = struct.unpack(">I", rest[:4])
                rest = rest[4:]
                if size == 0:
                    break
                while len(rest) < size:
                    rest += conn.recv(65536)
                rest = rest[size:]
            conn.sendall(verdict)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    ("verdict", "stored"),
    [(b"stream: OK\0", True), (b"stream: Eicar-Test-Signature FOUND\0", False)],
)
def test_clamav_hook_scans_uploads(
    db: Database, w: World, settings: Settings, tmp_path: Path, verdict: bytes, stored: bool
) -> None:
    sock = Path("/tmp") / f"elshi-clamd-{os.getpid()}-{stored}.sock"
    sock.unlink(missing_ok=True)
    settings.clamd_socket = sock
    thread = _fake_clamd(sock, verdict)
    try:
        with db.session() as s:
            req = service.create_draft(db=s, citizen_id=w.alice, service_type_id=w.visa_a)
            req_id = req.id
        with db.session() as s:
            if stored:
                doc = flows.upload_document(
                    db=s,
                    settings=settings,
                    citizen_id=w.alice,
                    request_id=req_id,
                    kind="passport",
                    filename="p.pdf",
                    data=pdf(),
                )
                assert doc.scanner == "clamav"
            else:
                with pytest.raises(service.Invalid) as refused:
                    flows.upload_document(
                        db=s,
                        settings=settings,
                        citizen_id=w.alice,
                        request_id=req_id,
                        kind="passport",
                        filename="p.pdf",
                        data=pdf(),
                    )
                assert refused.value.problems[0].message == documents.INFECTED
        thread.join(5)
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(Document)) == int(stored)
    finally:
        sock.unlink(missing_ok=True)
    settings.virus_scanner = "clamav"  # configured but gone: refuse rather than let through
    with db.session() as s, pytest.raises(service.Invalid) as down:
        flows.upload_document(
            db=s,
            settings=settings,
            citizen_id=w.alice,
            request_id=req_id,
            kind="photo",
            filename="p.png",
            data=PNG_2x2,
        )
    assert down.value.problems[0].message == documents.NO_SCANNER


# ---------------------------------------------------------------------------- accounts and e-mail


def test_sign_up_verify_reset_and_status_mails_over_smtp(
    db: Database, w: World, settings: Settings, smtp: Sink
) -> None:
    policy = LoginPolicy()
    with db.session() as s:
        with pytest.raises(service.Invalid) as weak:
            flows.sign_up(
                db=s,
                settings=settings,
                email="carol@example.org",
                password="aaaaaaaaaaaaaa",
                name="C",
            )
        assert weak.value.problems[0].message == service.WEAK_PASSWORD
        citizen, mail = flows.sign_up(
            db=s,
            settings=settings,
            email="Carol@Example.org",
            password=PASSWORD,
            name="Carol",
            lang="ru",
        )
        citizen_id = citizen.id
    # The e-mail went to the outbox with the account, and out over SMTP at the commit.
    assert mail is not None and mail.key.startswith("outbox-")
    [verify] = smtp.texts("carol@example.org")
    assert "Подтвердите" in verify
    with db.session() as s:
        early = flows.sign_in(
            db=s,
            email="carol@example.org",
            password=PASSWORD,
            ip="1.2.3.4",
            policy=policy,
            lifetime=timedelta(hours=1),
        )
        assert early.status == "unverified"
        token = link_in(verify, "/consulate/verify").split("token=")[1]
        assert flows.verify_email(db=s, token=token) is not None
        assert flows.verify_email(db=s, token=token) is None  # one use only
    with db.session() as s:
        ok = flows.sign_in(
            db=s,
            email="carol@example.org",
            password=PASSWORD,
            ip="1.2.3.4",
            policy=policy,
            lifetime=timedelta(hours=1),
        )
        assert ok.status == "ok" and ok.session_key
        assert service.find_session(db=s, key=ok.session_key) is not None
        reset = flows.request_reset(db=s, settings=settings, email="carol@example.org")
        assert flows.request_reset(db=s, settings=settings, email="nobody@example.org") is None
    assert reset is not None
    token = link_in(smtp.texts("carol@example.org")[1], "/consulate/reset").split("token=")[1]
    with db.session() as s:
        assert flows.reset_password(db=s, token=token, password="a new long password!") is not None
        assert service.find_session(db=s, key=ok.session_key) is None  # old sessions ended
    with db.session() as s:
        req_id = _visa(s, w, citizen_id, settings)
        mails = [
            flows.status_email(db=s, settings=settings, request=s.get(ServiceRequest, req_id)),  # type: ignore[arg-type]
            flows.claim_request(db=s, settings=settings, actor=w.officer_a, request_id=req_id),
            flows.decide_request(
                db=s,
                settings=settings,
                actor=w.officer_a,
                request_id=req_id,
                approve=False,
                reason="Passport expires too soon",
            ),
        ]
    assert all(m is not None for m in mails)
    texts = smtp.texts("carol@example.org")[2:]
    assert len(texts) == 3
    assert "подана" in texts[0] and "на рассмотрении" in texts[1]
    assert "отклонена" in texts[2] and "Passport expires too soon" in texts[2]
    assert all(f"/consulate/requests/{req_id}" in t for t in texts)


def test_lockout_and_rate_limit_for_citizens(db: Database, w: World) -> None:
    policy = LoginPolicy(max_failures=3, ip_max_failures=5)
    life = timedelta(hours=1)
    with db.session() as s:
        for _ in range(3):
            bad = flows.sign_in(
                db=s,
                email="alice@example.org",
                password="wrong password!",
                ip="9.9.9.9",
                policy=policy,
                lifetime=life,
            )
            assert bad.status == "failed"
        locked = flows.sign_in(
            db=s,
            email="alice@example.org",
            password=PASSWORD,
            ip="9.9.9.9",
            policy=policy,
            lifetime=life,
        )
        assert locked.status == "failed"
        for _ in range(1):
            flows.sign_in(
                db=s,
                email="nobody@example.org",
                password="x" * 12,
                ip="9.9.9.9",
                policy=policy,
                lifetime=life,
            )
        assert (
            flows.sign_in(
                db=s,
                email="bob@example.org",
                password=PASSWORD,
                ip="9.9.9.9",
                policy=policy,
                lifetime=life,
            ).status
            == "blocked"
        )
        assert (
            flows.sign_in(
                db=s,
                email="bob@example.org",
                password=PASSWORD,
                ip="7.7.7.7",
                policy=policy,
                lifetime=life,
            ).status
            == "ok"
        )


def test_totp_for_citizens(db: Database, w: World) -> None:
    import pyotp

    policy = LoginPolicy()
    life = timedelta(hours=1)
    with db.session() as s:
        secret = flows.start_totp()
        assert not flows.enable_totp(db=s, citizen_id=w.alice, secret=secret, code="000000")
        assert flows.enable_totp(
            db=s, citizen_id=w.alice, secret=secret, code=pyotp.TOTP(secret).now()
        )
    with db.session() as s:
        first = flows.sign_in(
            db=s,
            email="alice@example.org",
            password=PASSWORD,
            ip="1.1.1.1",
            policy=policy,
            lifetime=life,
        )
        assert first.status == "code" and first.session_key
        assert service.find_session(db=s, key=first.session_key).mfa_pending  # type: ignore[union-attr]
        wrong = flows.sign_in_code(
            db=s,
            pending_key=first.session_key,
            code="123456",
            ip="1.1.1.1",
            policy=policy,
            lifetime=life,
        )
        assert wrong.status == "failed"
        citizen = s.get(Citizen, w.alice)
        citizen.totp_last_step = None  # type: ignore[union-attr]
        done = flows.sign_in_code(
            db=s,
            pending_key=first.session_key,
            code=pyotp.TOTP(secret).now(),
            ip="1.1.1.1",
            policy=policy,
            lifetime=life,
        )
        assert done.status == "ok"


def test_personal_data_is_masked_in_logs(
    db: Database, w: World, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from elshi.accounts.service import install_log_masking

    install_log_masking()
    settings.smtp_host = ""
    caplog.set_level(logging.INFO)
    with db.session() as s:
        _citizen, mail = flows.sign_up(
            db=s,
            settings=settings,
            email="dana.private@example.org",
            password=PASSWORD,
            name="Dana Secretname",
            phone="+49 170 5550123",
        )
        flows.sign_in(
            db=s,
            email="dana.private@example.org",
            password="nope nope nope",
            ip="1.2.3.4",
            policy=LoginPolicy(),
            lifetime=timedelta(hours=1),
        )
    assert mail is not None
    logging.getLogger("elshi.test").warning(
        "callback to %s from %s", "+49 170 5550123", "dana.private@example.org"
    )
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "e-mail to d***@e***.org kept, not sent" in text
    assert "dana.private" not in text and "5550123" not in text and "Secretname" not in text


# ---------------------------------------------------------------------------- retention and export


def test_purge_applies_retention_per_record_type(
    db: Database, w: World, settings: Settings
) -> None:
    today = date.today()
    with db.session() as s:
        old_req = _visa(s, w, w.alice, settings)
        new_req = _visa(s, w, w.bob, settings)
        for rid in (old_req, new_req):
            service.claim(db=s, actor=w.officer_a, request_id=rid)
            service.decide(db=s, actor=w.officer_a, request_id=rid, approve=True, reason="")
        s.get(ServiceRequest, old_req).decided_at = utcnow() - timedelta(
            days=settings.retention_request_days + 1
        )  # type: ignore[union-attr]
        s.get(ServiceRequest, new_req).decided_at = utcnow() - timedelta(
            days=settings.retention_document_days + 1
        )  # type: ignore[union-attr]
        draft = service.create_draft(db=s, citizen_id=w.bob, service_type_id=w.visa_a)
        draft.updated_at = utcnow() - timedelta(days=settings.retention_draft_days + 1)
        for leave, arrive in (
            (today - timedelta(days=400), today - timedelta(days=420)),
            (today - timedelta(days=3), today - timedelta(days=9)),
        ):
            s.add(
                Registration(
                    citizen_id=w.alice,
                    mission_id=w.a,
                    country_code="DE",
                    city="B",
                    arrive_on=arrive,
                    leave_on=leave,
                    companions=[],
                )
            )
        ghost = service.create_citizen(db=s, email="ghost@example.org", password=PASSWORD, name="G")
        ghost.created_at = utcnow() - timedelta(days=settings.retention_unverified_days + 1)
        fresh = service.create_citizen(db=s, email="fresh@example.org", password=PASSWORD, name="F")
        s.add(
            StaffAccess(
                citizen_id=w.alice,
                staff_label="x",
                action="view",
                object_type="citizen",
                at=utcnow() - timedelta(days=settings.retention_access_log_days + 1),
            )
        )
        s.add(
            StaffAccess(citizen_id=w.alice, staff_label="y", action="view", object_type="citizen")
        )
        fresh_id = fresh.id
        files_before = [p for p in settings.uploads_path.rglob("*") if p.is_file()]
        assert len(files_before) == 4
    with db.session() as s:
        counts = flows.purge_expired(db=s, settings=settings)
    assert counts == {
        "expired_stays": 2,
        "documents": 4,
        "requests": 2,
        "registrations": 1,
        "access_log": 1,
        "unverified_accounts": 1,
        "tokens": 0,
        "files": 4,
    }
    with db.session() as s:
        assert s.get(ServiceRequest, old_req) is None
        kept = s.get(ServiceRequest, new_req)
        assert kept is not None and service.documents_of(db=s, request_id=new_req) == []
        assert [r.status for r in s.scalars(select(Registration))] == ["expired"]
        assert s.get(Citizen, fresh_id) is not None
        assert (
            s.scalar(
                select(func.count())
                .select_from(Citizen)
                .where(Citizen.email == "ghost@example.org")
            )
            == 0
        )
    assert [p for p in settings.uploads_path.rglob("*") if p.is_file()] == []


def test_export_holds_the_citizens_own_data_and_no_secrets(
    db: Database, w: World, settings: Settings
) -> None:
    with db.session() as s:
        req_id = _visa(s, w, w.alice, settings)
        service.staff_request(db=s, actor=w.officer_a, request_id=req_id)
        service.post_message(
            db=s,
            request=s.get(ServiceRequest, req_id),
            kind="citizen",
            sender_id=w.alice,
            label="",
            body="Hello",
        )  # type: ignore[arg-type]
        slot_id = slot(s, w.a, 2)
        service.book(db=s, slot_id=slot_id, citizen_id=w.alice, request_id=req_id)
    with db.session() as s:
        data = service.export_citizen(db=s, citizen_id=w.alice)
    text = json.dumps(data)
    assert data["account"]["email"] == "alice@example.org"
    assert [r["id"] for r in data["requests"]] == [req_id]
    assert (
        len(data["requests"][0]["documents"]) == 2
        and data["requests"][0]["messages"][0]["body"] == "Hello"
    )
    assert data["appointments"][0]["status"] == "booked"
    assert data["staff_access"][0]["staff_label"] == "officer.a"
    assert "password" not in text and "argon2" not in text and "storage_key" not in text


# ---------------------------------------------------------------------------- command line


def test_cli_catalogue_purge_and_scanner(cli: Any, db: Database, tmp_path: Path) -> None:
    assert cli("missions", "add", "rome", "--name", "Embassy in Rome").exit_code == 0
    assert cli("consulate", "seed", "nowhere").exit_code == 4
    assert cli("consulate", "seed", "hq").exit_code == 2
    seeded = cli("consulate", "seed", "rome")
    assert seeded.exit_code == 0 and "5 services" in seeded.output
    exported = cli("consulate", "export", "rome")
    catalogue = json.loads(exported.output)
    assert [c["slug"] for c in catalogue][:2] == ["visa", "passport-renewal"]
    catalogue[0]["fee_cents"] = 9900
    catalogue[1]["fields"][0]["name"] = "Bad Name!"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(catalogue), encoding="utf-8")
    refused = cli("consulate", "import", "rome", str(bad))
    assert refused.exit_code == 2 and "entry 1.fields.0.name" in refused.output
    assert "nothing stored" in refused.output
    catalogue[1]["fields"][0]["name"] = "full_name"
    good = tmp_path / "good.json"
    good.write_text(json.dumps(catalogue), encoding="utf-8")
    assert cli("consulate", "import", "rome", str(good)).exit_code == 0
    assert json.loads(cli("consulate", "export", "rome").output)[0]["fee_cents"] == 9900
    (tmp_path / "junk.json").write_text("{not json", encoding="utf-8")
    assert cli("consulate", "import", "rome", str(tmp_path / "junk.json")).exit_code == 2
    assert cli("consulate", "import", "rome", str(tmp_path / "none.json")).exit_code == 4
    purged = cli("consulate", "purge")
    assert purged.exit_code == 0 and "requests: 0" in purged.output
    scanner = cli("consulate", "scanner")
    assert scanner.exit_code == 0 and "* none" in scanner.output
