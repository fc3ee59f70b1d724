"""The delivery layer (elshi.notify): each medium against a real server on loopback, and the
retry flags of SendError that callers' own bookkeeping (crisis, alerts, speak) relies on."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from email import message_from_bytes, policy
from typing import Any

import pytest

from elshi import notify
from elshi.notify import Attachment, Message, SendError, email, push, sms, telegram, webhook
from elshi.settings import Settings
from tests.crisis.test_crisis_push import PushService
from tests.net_support import allow_loopback
from tests.speak.platforms import TOKENS, Mailbox, PlatformServer
from tests.workspace_helpers import free_port, http_receiver


@pytest.fixture
def platforms() -> Iterator[PlatformServer]:
    server = PlatformServer().start()
    yield server
    server.stop()


class Counting(Mailbox):
    """A Mailbox that also notes the client connection each message came over, and answers
    DATA with a temporary failure for the subjects in `later`."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[Any] = []
        self.later: set[str] = set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        if msg["Subject"] in self.later:
            return "451 4.3.0 try again later"
        self.peers.append(session.peer)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def mailbox(settings: Settings) -> Iterator[Counting]:
    box = Counting().start()
    settings.smtp_host, settings.smtp_port = "127.0.0.1", box.port
    settings.smtp_from = "elshi <no-reply@mfa.example>"
    yield box
    box.stop()


def _error(call: Any) -> SendError:
    with pytest.raises(SendError) as caught:
        call()
    return caught.value


# ---------------------------------------------------------------------------- e-mail


def test_email_carries_key_html_attachment_and_unsubscribe(
    settings: Settings, mailbox: Counting
) -> None:
    message = Message(
        medium="email",
        to="dana@example.kz",
        subject="Digest",
        text="plain words",
        html="<p>html words</p>",
        attachments=(Attachment("d.pdf", "application/pdf", b"%PDF-1.4 x"),),
        key="crisis-d7",
        unsubscribe="https://elshi.example/leave/1",
    )
    assert notify.send(message, settings) == "crisis-d7"
    [got] = mailbox.to("dana@example.kz")
    assert got["From"] == settings.smtp_from and got["Subject"] == "Digest"
    assert got["Message-ID"] == "<crisis-d7@elshi>" and got["X-Elshi-Delivery"] == "crisis-d7"
    assert got["List-Unsubscribe"] == "<https://elshi.example/leave/1>"
    assert got.get_body(preferencelist=("plain",)).get_content().strip() == "plain words"
    assert "html words" in got.get_body(preferencelist=("html",)).get_content()
    [part] = list(got.iter_attachments())
    assert part.get_filename() == "d.pdf" and part.get_content() == b"%PDF-1.4 x"
    # Without a key the Message-ID is a fresh one, and that is what send returns.
    mid = email.send(Message(medium="email", to="dana@example.kz", text="b"), settings)
    assert mid.endswith("@elshi>") and mailbox.to("dana@example.kz")[1]["Message-ID"] == mid


def test_email_sender_reuses_one_connection_for_a_batch(
    settings: Settings, mailbox: Counting
) -> None:
    with email.EmailSender(settings) as sender:
        for n in range(3):
            sender.send(Message(medium="email", to=f"p{n}@example.kz", text="t", key=f"k{n}"))
    assert len(mailbox.messages) == 3 and len(set(mailbox.peers)) == 1
    for _ in range(2):
        email.send(Message(medium="email", to="q@example.kz", text="t"), settings)
    assert len(set(mailbox.peers)) == 3  # one connection each


def test_email_failures_say_where_and_whether_to_retry(
    settings: Settings, mailbox: Counting
) -> None:
    mailbox.refuse.add("gone@example.kz")
    mailbox.later.add("busy")
    where = f"e-mail via 127.0.0.1:{mailbox.port}"
    with email.EmailSender(settings) as sender:
        refused = _error(lambda: sender.send(Message(medium="email", to="gone@example.kz")))
        assert not refused.retry and refused.kind == "refused" and where in str(refused)
        assert "gone@example.kz" not in str(refused)  # no address is kept in an error
        busy = _error(
            lambda: sender.send(Message(medium="email", to="a@example.kz", subject="busy"))
        )
        assert busy.retry and busy.kind == "server" and "SMTP 451" in str(busy)
        # The same sender goes on after both failures.
        sender.send(Message(medium="email", to="a@example.kz", subject="fine"))
    assert [m["Subject"] for m in mailbox.messages] == ["fine"]

    settings.smtp_port = free_port()  # nothing listens there
    down = _error(lambda: email.send(Message(medium="email", to="a@example.kz"), settings))
    assert down.retry and down.kind == "network" and f"127.0.0.1:{settings.smtp_port}" in str(down)

    settings.smtp_host = ""
    unset = _error(lambda: email.send(Message(medium="email", to="a@example.kz"), settings))
    assert not unset.retry and unset.kind == "config" and "ELSHI_SMTP_HOST" in str(unset)


# ---------------------------------------------------------------------------- Telegram


def test_telegram_sends_and_flags_retries(settings: Settings, platforms: PlatformServer) -> None:
    settings.telegram_bot_token = TOKENS["telegram"]
    settings.telegram_api_url = f"{platforms.url}/telegram"
    sent = telegram.send(Message(medium="telegram", to="-100200", text="hello"), settings)
    assert platforms.posts["telegram"] == [{"id": sent, "text": "hello", "chat_id": "-100200"}]

    platforms.fail("telegram", "429")
    limited = _error(lambda: notify.send(Message(medium="telegram", to="1", text="x"), settings))
    assert limited.retry and limited.retry_after == 7 and limited.kind == "rate"
    assert "Telegram sendMessage" in str(limited)
    platforms.fail("telegram", "500")
    broken = _error(lambda: notify.send(Message(medium="telegram", to="1", text="x"), settings))
    assert broken.retry and broken.status == 500
    platforms.expired.add("telegram")
    expired = _error(lambda: notify.send(Message(medium="telegram", to="1", text="x"), settings))
    assert not expired.retry and expired.kind == "auth" and "Unauthorized" in str(expired)
    platforms.expired.clear()

    # A server that takes the message and does not answer in time: it may have arrived.
    settings.http_timeout = 0.5
    platforms.fail("telegram", "hold:2")
    unsure = _error(lambda: notify.send(Message(medium="telegram", to="1", text="x"), settings))
    assert not unsure.retry and unsure.kind == "unsure"

    settings.telegram_api_url = f"http://127.0.0.1:{free_port()}"
    down = _error(lambda: notify.send(Message(medium="telegram", to="1", text="x"), settings))
    assert down.retry and down.kind == "network" and "127.0.0.1" in str(down)
    assert TOKENS["telegram"] not in str(down)  # the token is in the URL, never in errors

    settings.telegram_bot_token = ""
    unset = _error(lambda: notify.send(Message(medium="telegram", to="1", text="x"), settings))
    assert not unset.retry and unset.kind == "config"


# ---------------------------------------------------------------------------- SMS


def test_sms_sends_once_per_key_and_flags_retries(
    settings: Settings, platforms: PlatformServer
) -> None:
    settings.crisis_sms_url = f"{platforms.url}/sms"
    settings.crisis_sms_account = "AC1"
    settings.crisis_sms_token = TOKENS["sms"]
    message = Message(medium="sms", to="+77010000000", text="Are you safe?", key="k-1")
    with sms.SmsSender(settings) as sender:
        first = sender.send(message)
        assert sender.send(message) == first  # the gateway honours the idempotency key
    assert platforms.posts["sms"] == [{"id": first, "to": "+77010000000", "text": "Are you safe?"}]

    platforms.fail("sms", "429")
    limited = _error(lambda: sms.send(Message(medium="sms", to="+7", text="x", key="k2"), settings))
    assert limited.retry and limited.retry_after == 1 and str(limited).startswith("SMS gateway")
    platforms.fail("sms", "500")
    broken = _error(lambda: sms.send(Message(medium="sms", to="+7", text="x", key="k3"), settings))
    assert broken.retry and broken.status == 500
    settings.crisis_sms_token = "wrong"
    denied = _error(lambda: sms.send(Message(medium="sms", to="+7", text="x", key="k4"), settings))
    assert not denied.retry and denied.status == 401

    settings.crisis_sms_url = ""
    unset = _error(lambda: notify.send(Message(medium="sms", to="+7", text="x"), settings))
    assert not unset.retry and unset.kind == "config" and "ELSHI_CRISIS_SMS_URL" in str(unset)


# ---------------------------------------------------------------------------- web push


@pytest.fixture
def push_service() -> Iterator[PushService]:
    server = PushService()
    yield server
    server.stop()


def test_push_is_encrypted_for_the_browser_and_refuses_for_good(
    settings: Settings, push_service: PushService, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = json.dumps(push_service.subscribe("ana"))
    message = Message(medium="push", to=sub, subject="Alert", text="Stay indoors", key="crisis-d9")
    # 127.0.0.1 is neither public nor a known push service until an operator allows it.
    refused = _error(lambda: push.send(message, settings))
    assert not refused.retry and "web push refused" in str(refused)
    assert push_service.received == []

    allow_loopback(settings, monkeypatch, push=True)
    location = notify.send(message, settings)
    assert location.startswith(push_service.url)
    [got] = push_service.received
    assert got["message"] == {"title": "Alert", "body": "Stay indoors", "tag": "crisis-d9"}

    push_service.gone.add("ana")
    gone = _error(lambda: push.send(message, settings))
    assert not gone.retry and gone.status == 410
    empty = _error(lambda: push.send(Message(medium="push", to=""), settings))
    assert not empty.retry and empty.kind == "config"


# ---------------------------------------------------------------------------- webhook


def test_webhook_is_signed_and_flags_retries(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.webhook_secret = "s3cret"
    with http_receiver([500, 404]) as hook:
        message = Message(medium="webhook", to=hook.url + "/hook", payload={"alert": 1})
        refused = _error(lambda: webhook.send(message, settings))
        assert not refused.retry and "loopback" in str(refused) and hook.requests == []

        allow_loopback(settings, monkeypatch)
        broken = _error(lambda: webhook.send(message, settings))
        assert broken.retry and f"webhook {hook.url}/hook: answered HTTP 500" == str(broken)
        missing = _error(lambda: webhook.send(message, settings))
        assert not missing.retry and missing.status == 404
        assert notify.send(message, settings) == "200"
        path, headers, body = hook.requests[-1]
        assert path == "/hook" and json.loads(body) == {"alert": 1}
        expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers["X-Elshi-Signature"] == expected
    bad = _error(lambda: webhook.send(Message(medium="webhook", to="ftp://x"), settings))
    assert not bad.retry and "not an http(s) URL" in str(bad)


def test_messages_round_trip_for_a_queue_and_old_queued_emails_still_read(
    settings: Settings,
) -> None:
    message = Message(
        medium="email",
        to="a@example.kz",
        subject="s",
        text="t",
        attachments=(Attachment("f.bin", "application/octet-stream", b"\x00\x01"),),
        key="k",
    )
    assert Message.from_dict(json.loads(json.dumps(message.as_dict()))) == message
    old = Message.from_dict({"to": "a@example.kz", "subject": "s", "body": "t"})
    assert old == Message(medium="email", to="a@example.kz", subject="s", text="t")
    unknown = _error(lambda: notify.send(Message(medium="fax", to="1"), settings))
    assert not unknown.retry and "fax" in str(unknown)


def _self_signed(folder: Any) -> tuple[str, str]:
    """A certificate for 127.0.0.1 signed by itself, and its key, as PEM files."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365 * 100))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp.pem", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def test_starttls_checks_the_servers_certificate(
    settings: Settings, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ssl

    from aiosmtpd.controller import Controller

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    class Inbox:
        messages: list[bytes] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.messages.append(envelope.content)
            return "250 OK"

    inbox = Inbox()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True
    )
    controller.start()
    try:
        settings.smtp_host, settings.smtp_port = "127.0.0.1", controller.port
        settings.smtp_starttls = True
        message = Message(medium="email", to="a@example.org", subject="Hi", text="hello")
        # A certificate nobody vouches for: refused before anything is sent.
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
        with pytest.raises(SendError) as refused:
            email.send(message, settings)
        assert "certificate" in str(refused.value).lower() and not inbox.messages
        # The operator trusts it: delivered over the encrypted connection.
        monkeypatch.setenv("SSL_CERT_FILE", cert)
        email.send(message, settings)
        assert len(inbox.messages) == 1
    finally:
        controller.stop()
