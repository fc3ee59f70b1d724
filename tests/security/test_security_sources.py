"""Security audit, sources: no file reads from the web, no secrets shown, no requests to this
machine or its network (feeds, redirects, web push), listings scoped to the caller's missions.

Servers run on 127.0.0.1 (and 127.0.0.2, another loopback address) as an attacker would aim
them; the default settings refuse both, and a test that needs the first allows exactly it.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from elshi import jobs, netguard
from elshi.app import create_app
from elshi.connectors.base import REDACTED, FetchContext
from elshi.crisis import flows as crisis_flows
from elshi.crisis import service as crisis
from elshi.crisis.models import Delivery, PushSubscription
from elshi.db import Database, utcnow
from elshi.listen import flows, service
from elshi.listen.models import Post, Quarantine, Source
from elshi.missions import service as missions
from elshi.plugins import connectors
from elshi.settings import Settings, SettingsError, load_settings
from tests.consulate.support import PASSWORD as CITIZEN_PASSWORD
from tests.consulate.support import citizen
from tests.crisis.support import MESSAGES, populate, team
from tests.workspace_helpers import add_staff, csrf, sign_in

TOKEN = "s3cr3t-mastodon-token-do-not-show"
HASH = "0123456789abcdef0123456789abcdef"
FEED = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
    b"<item><guid>a1</guid><title>Hello</title><description>Hello world</description></item>"
    b"</channel></rss>"
)


# ---------------------------------------------------------------------------- loopback servers


@dataclass
class Server:
    """An HTTP server on a loopback address that records every request it gets."""

    host: str
    redirects: dict[str, str] = field(default_factory=dict)
    seen: list[tuple[str, str, str]] = field(default_factory=list)
    url: str = ""
    tls: Any = None  # an ssl.SSLContext to serve https with

    def start(self) -> Server:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.seen.append((self.command, self.path, self.headers.get("host", "")))
                target = outer.redirects.get(self.path)
                if target is not None:
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = FEED if self.command == "GET" else body[:0]
                self.send_response(200 if self.command == "GET" else 201)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _any
            do_POST = _any

        self.httpd = ThreadingHTTPServer((self.host, 0), Handler)
        if self.tls is not None:
            self.httpd.socket = self.tls.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"http://{self.host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server("127.0.0.1").start()
    yield s
    s.stop()


@pytest.fixture
def inner() -> Iterator[Server]:
    """A server on another loopback address: what a redirect or a rebinding would reach."""
    s = Server("127.0.0.2").start()
    yield s
    s.stop()


def _only(settings: Settings, ranges: str) -> Settings:
    return settings.model_copy(update={"fetch_allow_private": ranges})


# ---------------------------------------------------------------------------- workspace


@dataclass
class Missions:
    hq: int
    berlin: int
    tokyo: int
    astana: int


@pytest.fixture
def world(db: Database) -> Missions:
    with db.session() as s:
        add_staff(s, "hq-admin@example.org", "admin", "hq")
        add_staff(s, "berlin@example.org", "analyst", "berlin")
        add_staff(s, "tokyo@example.org", "analyst", "tokyo")
        add_staff(s, "astana@example.org", "analyst", "astana")
        ids = {m.slug: m.id for m in missions.list_missions(db=s)}
    return Missions(ids["hq"], ids["berlin"], ids["tokyo"], ids["astana"])


@pytest.fixture
def client(settings: Settings, db: Database, world: Missions) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=db)) as c:
        yield c


def _add_sources(db: Database, world: Missions) -> dict[str, int]:
    """A Mastodon source with a token in Berlin and Tokyo, and a feed of no mission."""
    with db.session() as s:
        out = {}
        for name, mission in (("berlin", world.berlin), ("tokyo", world.tokyo)):
            out[name] = service.add_source(
                db=s,
                connector="mastodon",
                name=f"{name}-mastodon",
                config={"instance": "https://mastodon.example", "target": "tag:kz", "token": TOKEN},
                mission_id=mission,
            ).id
        out["shared"] = service.add_source(
            db=s, connector="rss", name="shared-feed", config={"url": "https://news.example/rss"}
        ).id
        return out


def _count(db: Database, model: Any) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _post_source(client: TestClient, **form: str) -> httpx.Response:
    data = {"csrf_token": csrf(client, "/admin"), "every": "15", **form}
    return client.post("/admin/sources", data=data, follow_redirects=False)


# ---------------------------------------------------------------------------- finding 1


def test_finding_01_third_mission_analyst_cannot_add_a_file_source(
    client: TestClient, db: Database, world: Missions
) -> None:
    environ = json.dumps({"path": "/proc/self/environ", "format": "ndjson"})
    sign_in(client, "astana@example.org")
    # No mission means ministry-wide: that needs the role at headquarters.
    r = _post_source(client, connector="tabular", mission="", config=environ)
    assert r.status_code == 403
    # In their own mission a file connector is still refused: files are imported on the shell.
    r = _post_source(client, connector="tabular", mission=str(world.astana), config=environ)
    assert r.status_code == 400 and "elshi ingest" in r.text
    # And in another mission they hold no role in.
    r = _post_source(client, connector="tabular", mission=str(world.berlin), config=environ)
    assert r.status_code == 403
    # Even headquarters' admin cannot add a file source from the web.
    client.cookies.clear()
    sign_in(client, "hq-admin@example.org")
    r = _post_source(client, connector="tabular", mission="", config=environ)
    assert r.status_code == 400
    assert _count(db, Source) == 0


@pytest.mark.parametrize(
    "url",
    [
        "/etc/hostname",
        "file:///etc/hostname",
        "FILE:/etc/hostname",
        "http://user:password@news.example/feed.xml",
    ],
)
def test_finding_01_rss_source_of_a_file_is_refused_on_the_web(
    client: TestClient, db: Database, world: Missions, url: str
) -> None:
    sign_in(client, "berlin@example.org")
    r = _post_source(
        client, connector="rss", mission=str(world.berlin), config=json.dumps({"url": url})
    )
    assert r.status_code == 400, r.text[:500]
    assert _count(db, Source) == 0


def test_finding_01_web_offers_only_http_connectors(client: TestClient, world: Missions) -> None:
    sign_in(client, "berlin@example.org")
    page = client.get("/admin").text
    offered = set(re.findall(r"<option>([a-z-]+)</option>", page))
    assert offered == set(service.web_connectors())
    assert {"rss", "mastodon", "bluesky", "telegram-web"} <= offered
    assert not offered & {"tabular", "telegram-export", "demo", "mastodon-stream"}
    # Berlin's analyst may add sources to Berlin only, not ministry-wide ones.
    missions_offered = re.search(r'<select id="s-mission" name="mission">(.*?)</select>', page)
    assert missions_offered is not None
    assert re.findall(r'value="(\d*)"', missions_offered[1]) == [str(world.berlin)]


def _smuggle(db: Database, connector: str, config: dict[str, Any]) -> int:
    """Store a source as an older release (or a hand-edited database) might hold it."""
    with db.session() as s:
        src = Source(
            connector=connector,
            name="smuggled",
            config=config,
            cursor={},
            every_minutes=15,
            next_run_at=utcnow(),
        )
        s.add(src)
        s.flush()
        return src.id


@pytest.mark.parametrize(
    ("connector", "make"),
    [
        ("tabular", lambda p: {"path": str(p), "format": "ndjson"}),
        ("rss", lambda p: {"url": str(p)}),
        ("rss", lambda p: {"url": p.as_uri()}),
        ("telegram-json", lambda p: {"path": str(p)}),
    ],
)
def test_finding_01_scheduler_refuses_a_file_source_already_in_the_database(
    settings: Settings, db: Database, tmp_path: Path, connector: str, make: Any
) -> None:
    secret = tmp_path / "environ"
    secret.write_text("ELSHI_SECRET_KEY=hunter2-do-not-read\n<rss><channel><item>", "utf-8")
    source_id = _smuggle(db, connector, make(secret))
    jobs.bind(load_settings(queue_immediate=True, queue_url="memory://"), db)
    queued = jobs.runtime().tasks["schedule_due_sources"].call_local()
    assert queued == [source_id]  # the scheduler ran the poll and went on
    with db.session() as s:
        raws = list(s.scalars(select(Quarantine.raw)))
        src = s.get(Source, source_id)
        assert src is not None
        assert src.enabled is False and src.next_run_at is None
        assert src.last_error is not None and "elshi ingest" in src.last_error
        assert src.health != "ok"
    assert not any("hunter2" in (raw or "") for raw in raws)
    assert _count(db, Post) == 0 and _count(db, Quarantine) == 0
    # Polling it by hand is refused the same way.
    ctx = FetchContext(settings=settings)
    with pytest.raises(flows.SourceRefused, match="elshi ingest"):
        flows.run_source(db, source_id=source_id, ctx=ctx)
    ctx.close()
    assert _count(db, Quarantine) == 0


def test_finding_01_cli_refuses_a_file_as_a_scheduled_source(
    cli: Any, db: Database, tmp_path: Path
) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_bytes(FEED)
    r = cli("sources", "add", "rss", str(feed), "--every", "15m")
    assert r.exit_code != 0 and "elshi ingest rss" in " ".join(r.output.split())
    r = cli("sources", "add", "tabular", str(feed))
    assert r.exit_code != 0 and "elshi ingest tabular" in " ".join(r.output.split())
    assert _count(db, Source) == 0
    # The operator imports the file once instead.
    assert cli("ingest", "rss", str(feed), "--no-progress").exit_code == 0
    assert _count(db, Post) == 1


def test_finding_01_quarantine_is_scoped_to_the_callers_missions(
    client: TestClient, db: Database, world: Missions
) -> None:
    ids = _add_sources(db, world)
    with db.session() as s:
        for name, sid in [*ids.items(), ("import", None)]:
            s.add(
                Quarantine(
                    source_id=sid,
                    connector="x",
                    origin=name,
                    location="line 1",
                    reason="bad JSON",
                    raw=f"raw of {name}",
                )
            )
    sign_in(client, "berlin@example.org")
    rows = client.get("/api/quarantine").json()
    assert [r["origin"] for r in rows] == ["berlin"]
    assert client.get("/api/quarantine", params={"source_id": ids["berlin"]}).status_code == 200
    for other in ("tokyo", "shared"):
        r = client.get("/api/quarantine", params={"source_id": ids[other]})
        assert r.status_code == 404 and "raw of" not in r.text
    assert client.get("/api/quarantine", params={"source_id": 9999}).status_code == 404
    client.cookies.clear()
    sign_in(client, "hq-admin@example.org")
    everything = {r["origin"] for r in client.get("/api/quarantine").json()}
    assert everything == {"berlin", "tokyo", "shared", "import"}


# ---------------------------------------------------------------------------- finding 2


def test_finding_02_sources_api_shows_no_token_and_only_own_missions(
    client: TestClient, db: Database, world: Missions, cli: Any
) -> None:
    _add_sources(db, world)
    sign_in(client, "berlin@example.org")
    r = client.get("/api/sources")
    assert r.status_code == 200 and TOKEN not in r.text
    by_name = {x["name"]: x for x in r.json()}
    assert set(by_name) == {"berlin-mastodon", "shared-feed"}
    assert by_name["berlin-mastodon"]["config"]["token"] == REDACTED
    assert by_name["berlin-mastodon"]["config"]["instance"] == "https://mastodon.example"
    for page in ("/sources", "/admin"):
        assert TOKEN not in client.get(page).text
    client.cookies.clear()
    sign_in(client, "hq-admin@example.org")
    r = client.get("/api/sources")
    assert len(r.json()) == 3 and TOKEN not in r.text
    for page in ("/sources", "/admin"):
        assert TOKEN not in client.get(page).text
    listed = cli("sources", "list", "--json")
    assert listed.exit_code == 0 and TOKEN not in listed.output and REDACTED in listed.output


def test_finding_02_connectors_mark_their_secret_settings() -> None:
    found = connectors()
    assert found["mastodon"].secret_fields() == {"token"}
    assert found["bluesky"].secret_fields() == {"token"}
    assert found["telegram-api"].secret_fields() == {"api_hash"}
    shown = found["telegram-api"].redact({"channel": "x", "api_id": 1, "api_hash": HASH})
    assert shown == {"channel": "x", "api_id": 1, "api_hash": REDACTED}
    # A plugin that forgets to mark a field named like a credential is still redacted.
    from elshi.connectors.base import redact_source_config

    assert redact_source_config("no-such-plugin", {"api_key": "k", "url": "u"}) == {
        "api_key": REDACTED,
        "url": "u",
    }


# ---------------------------------------------------------------------------- finding 3

ADDRESSES = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("169.254.169.254", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "private"),
    ("100.64.0.1", "non-public"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ("93.184.215.14", None),
    ("8.8.8.8", None),
    ("2606:4700:4700::1111", None),
    ("::ffff:8.8.8.8", None),
]


@pytest.mark.parametrize(("address", "kind"), ADDRESSES)
def test_finding_03_address_classifier(address: str, kind: str | None) -> None:
    assert netguard.classify(address) == kind
    assert netguard.refusal(address) == kind


def test_finding_03_allowed_ranges_never_open_metadata() -> None:
    allow = netguard.parse_ranges("10.0.0.0/8, 169.254.0.0/16 127.0.0.1/32")
    assert netguard.refusal("10.20.30.40", allow) is None
    assert netguard.refusal("::ffff:10.0.0.1", allow) is None
    assert netguard.refusal("127.0.0.1", allow) is None
    assert netguard.refusal("127.0.0.2", allow) == "loopback"
    assert netguard.refusal("169.254.169.254", allow) == "cloud metadata"
    assert netguard.refusal("169.254.1.1", allow) is None
    with pytest.raises(SettingsError, match="ELSHI_FETCH_ALLOW_PRIVATE"):
        load_settings(fetch_allow_private="10.0.0.0/8, intranet")


def test_finding_03_guard_checks_every_resolved_address(settings: Settings) -> None:
    def resolver(answers: list[str]) -> Any:
        return lambda host, port: answers

    check = netguard.check_url
    assert check("https://news.example/rss", settings=settings, resolve=resolver(["8.8.8.8"]))
    for answers in (["10.0.0.5"], ["8.8.8.8", "127.0.0.1"], ["::ffff:192.168.0.1"]):
        with pytest.raises(netguard.Refused):
            check("https://news.example/rss", settings=settings, resolve=resolver(answers))
    for url in (
        "file:///etc/passwd",
        "/etc/passwd",
        "gopher://news.example/",
        "http://admin:pw@news.example/",
        "http://localhost:8000/",
        "http://app.localhost/",
        "http://[::1]:8000/",
        "http://2130706433/",  # 127.0.0.1 written as one number
    ):
        with pytest.raises(netguard.Refused):
            check(url, settings=settings, resolve=netguard.resolve_host)


@pytest.mark.parametrize(
    "target", ["http://127.0.0.1:{port}/feed.xml", "http://localhost:{port}/feed.xml"]
)
def test_finding_03_rss_source_on_loopback_is_refused_on_the_web(
    client: TestClient, db: Database, world: Missions, server: Server, target: str
) -> None:
    url = target.format(port=server.url.rsplit(":", 1)[1])
    sign_in(client, "berlin@example.org")
    r = _post_source(
        client, connector="rss", mission=str(world.berlin), config=json.dumps({"url": url})
    )
    assert r.status_code == 400 and "loopback" in r.text
    for connector, config in (
        ("mastodon", {"instance": server.url, "target": "tag:kz"}),
        ("bluesky", {"service": server.url, "target": "search:kz"}),
        ("telegram-web", {"channel": "kazakh_news", "base_url": server.url}),
        ("bluesky-jetstream", {"keywords": "kz", "url": server.url.replace("http", "ws")}),
    ):
        r = _post_source(
            client, connector=connector, mission=str(world.berlin), config=json.dumps(config)
        )
        assert r.status_code == 400 and "loopback" in r.text, (connector, r.text[:300])
    assert _count(db, Source) == 0 and server.seen == []


def test_finding_03_poll_of_a_loopback_feed_is_refused_and_recorded(
    settings: Settings, db: Database, server: Server
) -> None:
    source_id = _smuggle(db, "rss", {"url": f"{server.url}/feed.xml"})
    ctx = FetchContext(settings=settings)
    with pytest.raises(Exception, match="loopback"):
        flows.run_source(db, source_id=source_id, ctx=ctx)
    ctx.close()
    assert server.seen == []
    with db.session() as s:
        src = s.get(Source, source_id)
        assert src is not None and "loopback" in (src.last_error or "")
    # An operator who allows exactly this address gets the feed.
    ctx = FetchContext(settings=_only(settings, "127.0.0.1/32"))
    assert flows.run_source(db, source_id=source_id, ctx=ctx).stored == 1
    ctx.close()


@pytest.mark.parametrize(
    "where",
    [
        "{inner}/latest",  # another loopback address, not in the allowed range
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::1]:{port}/",
        "http://[::ffff:127.0.0.2]:{port}/",
    ],
)
def test_finding_03_redirect_to_a_private_address_is_refused(
    settings: Settings, db: Database, server: Server, inner: Server, where: str
) -> None:
    """The first hop is allowed (exactly 127.0.0.1/32); where it redirects is checked again."""
    target = where.format(inner=inner.url, port=inner.url.rsplit(":", 1)[1])
    server.redirects["/feed.xml"] = target
    ctx = FetchContext(settings=_only(settings, "127.0.0.1/32"))
    with pytest.raises(netguard.Refused):
        ctx.client().get(f"{server.url}/feed.xml")
    # Through the connector and the scheduler's poll the same: nothing reaches the target.
    source_id = _smuggle(db, "rss", {"url": f"{server.url}/feed.xml"})
    with pytest.raises(Exception, match="cannot fetch"):
        flows.run_source(db, source_id=source_id, ctx=ctx)
    ctx.close()
    assert inner.seen == []
    assert [p for _, p, _ in server.seen] == ["/feed.xml", "/feed.xml"]
    assert _count(db, Post) == 0


def test_finding_03_connection_goes_to_the_checked_address(
    settings: Settings, server: Server, inner: Server
) -> None:
    """The name is resolved once, checked, and that very address is connected to: a name no
    system resolver knows reaches the server, with its own name in the Host header."""
    allowed = _only(settings, "127.0.0.1/32")
    port = server.url.rsplit(":", 1)[1]
    http = netguard.client(allowed, resolve=lambda host, p: ["127.0.0.1"])
    assert http.get(f"http://feed.invalid:{port}/feed.xml").status_code == 200
    assert server.seen == [("GET", "/feed.xml", f"feed.invalid:{port}")]
    http.close()
    # The same name answering with an address outside the allowed range is never contacted.
    inner_port = inner.url.rsplit(":", 1)[1]
    http = netguard.client(allowed, resolve=lambda host, p: ["127.0.0.2"])
    with pytest.raises(netguard.Refused, match=r"127\.0\.0\.2"):
        http.get(f"http://feed.invalid:{inner_port}/feed.xml")
    http.close()
    assert inner.seen == []


def test_pinned_tls_connection_still_verifies_the_host_name(
    settings: Settings, tmp_path: Path
) -> None:
    """Connecting to the checked address keeps TLS honest: the certificate must name the host."""
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "feed.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("feed.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert_file, key_file)
    tls = Server("127.0.0.1", tls=server_side).start()
    port = tls.url.rsplit(":", 1)[1]
    trust = ssl.create_default_context(cafile=str(cert_file))
    try:
        for host, ok in (("feed.test", True), ("other.test", False)):
            transport = netguard.GuardedTransport(
                _only(settings, "127.0.0.1/32"), resolve=lambda h, p: ["127.0.0.1"], verify=trust
            )
            with httpx.Client(transport=transport) as http:
                if ok:
                    assert http.get(f"https://{host}:{port}/feed.xml").status_code == 200
                else:
                    with pytest.raises(httpx.ConnectError, match="certificate"):
                        http.get(f"https://{host}:{port}/feed.xml")
    finally:
        tls.stop()
    assert [h for _, _, h in tls.seen] == [f"feed.test:{port}"]


def _keys() -> dict[str, str]:
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return {
        "p256dh": base64.urlsafe_b64encode(point).rstrip(b"=").decode(),
        "auth": base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode(),
    }


def test_finding_03_push_subscribe_to_loopback_is_refused(
    settings: Settings, db: Database, server: Server
) -> None:
    with db.session() as s:
        cid = citizen(s, "phone@example.org")
    with TestClient(create_app(settings, db=db)) as c:
        page = c.get("/consulate/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        c.post(
            "/consulate/login",
            data={
                "email": "phone@example.org",
                "password": CITIZEN_PASSWORD,
                "csrf_token": token[1],
            },
        )
        home = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/consulate/home").text)
        assert home
        headers = {"X-CSRF-Token": home[1]}
        for endpoint in (
            f"{server.url}/push/x",
            "http://localhost:9/push/x",
            "http://169.254.169.254/push/x",
            "https://push.attacker.example/x",
            "https://fcm.googleapis.com.attacker.example/x",
        ):
            r = c.post(
                "/c/push/subscribe", json={"endpoint": endpoint, "keys": _keys()}, headers=headers
            )
            assert r.status_code == 422 and "endpoint" in r.text, (endpoint, r.text)
        assert _count(db, PushSubscription) == 0
        for endpoint in (
            "https://fcm.googleapis.com/fcm/send/abc",
            "https://wns2-db5p.notify.windows.com/w/?token=abc",
        ):
            r = c.post(
                "/c/push/subscribe", json={"endpoint": endpoint, "keys": _keys()}, headers=headers
            )
            assert r.status_code == 201, r.text
    with db.session() as s:
        assert set(s.scalars(select(PushSubscription.citizen_id))) == {cid}
    assert server.seen == []


@pytest.mark.parametrize("push_host_allowed", [False, True])
def test_finding_03_worker_does_not_post_to_a_stored_loopback_endpoint(
    settings: Settings, db: Database, server: Server, push_host_allowed: bool
) -> None:
    """A subscription stored before the check (or by hand) is refused when sending: by the
    push-host list, and, when that names the host, by the address check."""
    if push_host_allowed:
        settings.push_hosts = f"{settings.push_hosts}, 127.0.0.1"
    t = team(db)
    [cid] = populate(db, t.mission_id, 1, telegram_every=0)
    with db.session() as s:
        s.add(PushSubscription(citizen_id=cid, endpoint=f"{server.url}/push/x", **_keys()))
    with db.session() as s:
        bid = crisis.create_crisis(
            db=s,
            actor=t.officer,
            mission_id=t.mission_id,
            title="Flood",
            area=crisis.parse_area({"cities": "Istanbul"}),
            audience="present",
            messages=MESSAGES,
        ).id
    with db.session() as s:
        crisis.approve(db=s, actor=t.officer2, broadcast_id=bid)
    with db.session() as s:
        assert crisis.send(db=s, actor=t.officer2, broadcast_id=bid)["push"] == 1
    out = crisis_flows.deliver(db, settings, broadcast_id=bid, channel="push")
    assert out == {"sent": 0, "failed": 1, "retry": 0, "skipped": 0, "unknown": 0}
    assert server.seen == []
    with db.session() as s:
        row = s.scalars(select(Delivery).where(Delivery.channel == "push")).one()
    reason = "loopback" if push_host_allowed else "not a known push service"
    assert row.status == "failed" and reason in (row.error or "")


def test_finding_03_alert_webhook_on_loopback_is_not_posted(
    settings: Settings, server: Server
) -> None:
    """Staff set alert webhook addresses on the Alerts page: the same check applies."""
    from elshi.notify.flows import DeliveryError, post_webhook

    with pytest.raises(DeliveryError, match="loopback"):
        post_webhook(settings=settings, url=f"{server.url}/hook", payload={"alert": 1})
    assert server.seen == []
    post_webhook(
        settings=_only(settings, "127.0.0.1/32"), url=f"{server.url}/hook", payload={"alert": 1}
    )
    assert [(m, p) for m, p, _ in server.seen] == [("POST", "/hook")]


# ---------------------------------------------------------------------------- finding 12


def test_finding_12_admin_page_shows_only_sources_the_viewer_manages(
    client: TestClient, db: Database, world: Missions
) -> None:
    ids = _add_sources(db, world)
    sign_in(client, "berlin@example.org")
    page = client.get("/admin").text
    assert "berlin-mastodon" in page
    assert "tokyo-mastodon" not in page and "shared-feed" not in page
    assert f"/admin/sources/{ids['tokyo']}/toggle" not in page
    token = csrf(client, "/admin")
    r = client.post(
        f"/admin/sources/{ids['tokyo']}/toggle", data={"csrf_token": token, "enabled": "0"}
    )
    assert r.status_code == 403
    client.cookies.clear()
    sign_in(client, "hq-admin@example.org")
    page = client.get("/admin").text
    assert {"berlin-mastodon", "tokyo-mastodon", "shared-feed"} <= set(
        re.findall(r"<td(?: dir=\"auto\")?>([a-z-]+)</td>", page)
    )
    assert TOKEN not in page


def test_address_ranges_parse_both_families() -> None:
    nets = netguard.parse_ranges("10.0.0.0/8,fd00:1::/32")
    assert nets == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00:1::/32"))
