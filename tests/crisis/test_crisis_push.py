"""Web push to a loopback push service that checks what RFC 8292 (VAPID) and RFC 8291
(aes128gcm message encryption) require, and decrypts each message as the browser would."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from fastapi.testclient import TestClient
from sqlalchemy import select

from elshi.accounts.service import Principal
from elshi.app import create_app
from elshi.crisis import flows, service
from elshi.crisis.models import Delivery
from elshi.db import Database
from elshi.settings import Settings
from tests.crisis.support import MESSAGES, team
from tests.net_support import allow_loopback


@pytest.fixture
def settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The push service runs on 127.0.0.1 here: allow that address, as an operator allows
    an intranet range (elshi refuses private addresses by default)."""
    return allow_loopback(settings, monkeypatch, push=True)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PushService:
    """A push service on loopback: one endpoint per subscriber, keeps what it decrypted."""

    def __init__(self) -> None:
        self.subscribers: dict[str, tuple[ec.EllipticCurvePrivateKey, bytes]] = {}
        self.received: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.gone: set[str] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self, status: int, text: str = "") -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                if status == 201:
                    self.send_header("Location", f"{outer.url}/m/{len(outer.received)}")
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                sub = self.path.rsplit("/", 1)[-1]
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                problem = outer.check(sub, self.headers, body)
                if problem:
                    outer.refused.append(problem)
                    self._answer(410 if problem == "gone" else 400, problem)
                    return
                self._answer(201)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def subscribe(self, name: str) -> dict[str, Any]:
        """Make a browser's key pair and auth secret; return the subscription JSON."""
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self.subscribers[name] = (key, auth)
        raw = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.url}/push/{name}",
            "keys": {"p256dh": _b64(raw), "auth": _b64(auth)},
        }

    def check(self, sub: str, headers: Any, body: bytes) -> str | None:
        """Return what is wrong with a push request, or None (and keep the plaintext)."""
        if sub in self.gone:
            return "gone"
        if headers.get("content-encoding") != "aes128gcm":
            return "not aes128gcm"
        if not headers.get("ttl"):
            return "no TTL"
        scheme, _, params = (headers.get("authorization") or "").partition(" ")
        fields = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        if scheme != "vapid" or "t" not in fields or "k" not in fields:
            return "no VAPID authorization"
        head, claims, signature = fields["t"].split(".")
        server_key = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), _unb64(fields["k"])
        )
        sig = _unb64(signature)
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        server_key.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
        payload = json.loads(_unb64(claims))
        if payload["aud"] != self.url or payload["exp"] < time.time() or "sub" not in payload:
            return "bad VAPID claims"
        key, auth = self.subscribers[sub]
        plain = http_ece.decrypt(body, private_key=key, auth_secret=auth, version="aes128gcm")
        self.received.append(
            {"to": sub, "k": fields["k"], "message": json.loads(plain), "bytes": len(body)}
        )
        return None

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def push_service() -> Iterator[PushService]:
    server = PushService()
    yield server
    server.stop()


def test_web_push_is_encrypted_for_each_browser_and_vapid_signed(
    db: Database, settings: Settings, push_service: PushService
) -> None:
    from tests.crisis.support import populate

    t = team(db)
    ids = populate(db, t.mission_id, 4, telegram_every=0)
    with db.session() as s:
        for i, cid in enumerate(ids[:3]):
            service.save_push_subscription(
                db=s, settings=settings, citizen_id=cid, raw=push_service.subscribe(f"browser{i}")
            )
        with pytest.raises(service.Invalid, match="p256dh"):
            service.save_push_subscription(
                db=s,
                settings=settings,
                citizen_id=ids[3],
                raw={
                    "endpoint": f"{push_service.url}/push/x",
                    "keys": {"p256dh": "AAAA", "auth": "x"},
                },
            )
    push_service.gone.add("browser2")  # this browser unsubscribed
    with db.session() as s:
        b = service.create_crisis(
            db=s,
            actor=t.officer,
            mission_id=t.mission_id,
            title="Flood",
            area=service.parse_area({"cities": "Istanbul"}),
            audience="present",
            messages=MESSAGES,
        )
        bid = b.id
        assert (
            service.preview(
                db=s,
                actor=Principal.system(),
                mission_id=t.mission_id,
                area={"cities": ["Istanbul"]},
                audience="present",
            ).channels["push"]
            == 3
        )
    with db.session() as s:
        service.approve(db=s, actor=t.officer2, broadcast_id=bid)
    with db.session() as s:
        counts = service.send(db=s, actor=t.officer2, broadcast_id=bid)
    assert counts["push"] == 3
    out = flows.deliver(db, settings, broadcast_id=bid, channel="push")
    assert out == {"sent": 2, "failed": 1, "retry": 0, "skipped": 0, "unknown": 0}
    assert push_service.refused == ["gone"]
    got = sorted(push_service.received, key=lambda r: r["to"])
    assert [r["to"] for r in got] == ["browser0", "browser1"]
    for r in got:
        assert "/c/" in r["message"]["body"] and r["message"]["tag"].startswith("crisis-d")
    # The key the push service verified is the one elshi hands to browsers.
    key = TestClient(create_app(settings, db=db)).get("/c/push/key").json()["publicKey"]
    assert {r["k"] for r in got} == {key} and len(_unb64(key)) == 65
    with db.session() as s:
        statuses = sorted(s.scalars(select(Delivery.status).where(Delivery.channel == "push")))
    assert statuses == ["failed", "sent", "sent"]
