"""Fault: the database goes away while the web app runs, then comes back.

Every request that needs the database answers 503 with Retry-After (JSON for /health and the
API, a page in the visitor's language elsewhere), never a bare 500, and the app serves again
as soon as the database is back, without a restart. PostgreSQL: this test's own server
(initdb, pg_ctl) stopped at once and started again. SQLite: the database's folder gone, and a
writer holding the write lock past the busy timeout.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from elshi import crypto
from elshi import db as elshi_db
from elshi.app import create_app
from elshi.consulate.views import CITIZEN_COOKIE
from elshi.consulate.views import _serializer as citizen_serializer
from elshi.crisis import service
from elshi.crisis.models import CheckIn, Crisis, Recipient
from elshi.db import Database
from elshi.migrate import migrate
from elshi.settings import Settings
from elshi.web.deps import SESSION_COOKIE, session_serializer
from elshi.web.i18n import gettext
from elshi.web.outage import RETRY_AFTER, TITLE, WHAT
from tests.conftest import service_missing
from tests.consulate.support import free_port
from tests.crisis.support import populate, team

NONCE = re.compile(r'name="n" value="([^"]+)"')


# ---------------------------------------------------------------------------- helpers


@dataclass
class World:
    """A mission with an open crisis and one citizen asked to check in."""

    crisis_id: int
    recipient_id: int
    token: str


def world(db: Database, settings: Settings) -> World:
    t = team(db)
    (citizen,) = populate(db, t.mission_id, 1, telegram_every=0, unverified_every=0)
    with db.session() as s:
        crisis = Crisis(mission_id=t.mission_id, title="earthquake", status="open")
        s.add(crisis)
        s.flush()
        person = Recipient(crisis_id=crisis.id, citizen_id=citizen)
        s.add(person)
        s.flush()
        crisis_id, recipient_id = crisis.id, person.id
    key = crypto.purpose_key(settings, crypto.CHECKIN)
    token = service.checkin_token(key=key, crisis_id=crisis_id, recipient_id=recipient_id)
    return World(crisis_id, recipient_id, token)


def client_for(settings: Settings, db: Database) -> TestClient:
    client = TestClient(create_app(settings, db=db))
    client.headers["accept-language"] = "en"
    return client


def staff_cookie(settings: Settings) -> str:
    """A validly signed session cookie: the page must look its session up in the database."""
    return str(session_serializer(settings).dumps("a-session-key"))


def citizen_cookie(settings: Settings) -> str:
    """The same for a citizen of the e-consulate."""
    return str(citizen_serializer(settings).dumps("a-citizen-session-key"))


def assert_json_503(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == str(RETRY_AFTER)
    assert response.headers["content-type"].startswith("application/json")
    assert "database is unavailable" in response.json()["detail"]


def assert_page_503(response: Any, lang: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == str(RETRY_AFTER)
    assert response.headers["content-type"].startswith("text/html")
    assert f'<html lang="{lang}">' in response.text
    assert gettext(lang, TITLE) in response.text
    assert gettext(lang, WHAT) in response.text
    if lang != "en":
        assert gettext(lang, WHAT) != WHAT  # really translated
    assert "Internal Server Error" not in response.text


def stored_checkins(db: Database, crisis_id: int) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).where(CheckIn.crisis_id == crisis_id)) or 0


def assert_outage_answers(client: TestClient, settings: Settings, w: World) -> None:
    """What every kind of visitor gets while the database is unreachable."""
    assert_json_503(client.get("/health"))
    # A citizen's check-in link, asked for in Russian by the browser.
    assert_page_503(client.get(f"/c/{w.token}", headers={"accept-language": "ru"}), "ru")
    # The walk-in registration form of the crisis, asked for in Kazakh.
    assert_page_503(client.get(f"/c/register/{w.crisis_id}?lang=kk"), "kk")
    # The e-consulate sign-in page of a signed-in citizen (whose session is looked up), with
    # Kazakh chosen earlier (the language cookie).
    client.cookies.set("elshi_lang", "kk")
    client.cookies.set(CITIZEN_COOKIE, citizen_cookie(settings))
    try:
        assert_page_503(client.get("/consulate/login"), "kk")
    finally:
        client.cookies.delete("elshi_lang")
        client.cookies.delete(CITIZEN_COOKIE)
    # A page that needs nothing from the database is still served.
    assert client.get("/consulate/login").status_code == 200
    # A staff page whose session lookup (the signed-in user) is what meets the outage.
    client.cookies.set(SESSION_COOKIE, staff_cookie(settings))
    try:
        assert_page_503(client.get("/"), "en")
        assert_json_503(client.get("/api/posts"))
    finally:
        client.cookies.delete(SESSION_COOKIE)


def assert_serving(client: TestClient, w: World) -> str:
    """The app serves normally; returns the check-in form's nonce."""
    health = client.get("/health")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    assert client.get("/consulate/login").status_code == 200
    page = client.get(f"/c/{w.token}")
    assert page.status_code == 200, page.text
    nonce = NONCE.search(page.text)
    assert nonce
    return nonce[1]


# ---------------------------------------------------------------------------- PostgreSQL


def _pg_bin() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


class PostgresServer:
    """A PostgreSQL server of this test's own (initdb in a temporary folder, a free port).

    PostgreSQL refuses to run as root: as root the server runs as the `postgres` user, in a
    folder that user owns."""

    def __init__(self) -> None:
        bindir = _pg_bin()
        if bindir is None:
            raise FileNotFoundError("initdb and pg_ctl (PostgreSQL server) not installed")
        self.bin = bindir
        self.port = free_port()
        self.prefix: list[str] = []
        self.folder = Path(tempfile.mkdtemp(prefix="elshi-pg-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")  # KeyError: no such user
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.data = self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [*self.prefix, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stderr.strip()}\n{tail}")

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        """Stop at once, as a crash or a pulled cable would: no goodbye to the clients."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        subprocess.run(
            [
                *self.prefix,
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
        server.init()
        server.start()
    except (OSError, KeyError, RuntimeError, subprocess.SubprocessError) as exc:
        if "server" in locals():
            server.remove()
        service_missing("a PostgreSQL server of the test's own (initdb, pg_ctl)", exc)
    try:
        yield server
    finally:
        server.remove()


def test_postgres_outage_answers_503_and_recovers_without_restart(
    postgres: PostgresServer, settings: Settings
) -> None:
    engine = create_engine(postgres.url)
    migrate(engine)
    engine.dispose()
    settings.database_url = postgres.url
    db = Database(settings)
    try:
        w = world(db, settings)
        client = client_for(settings, db)
        assert_serving(client, w)

        postgres.stop()
        assert_outage_answers(client, settings, w)
        # An answer sent now is refused with the same page (and it says to send it again).
        answer = client.post(
            f"/c/{w.token}",
            data={"answer": "safe", "n": "outage-nonce-1"},
            headers={"accept-language": "ru"},
        )
        assert_page_503(answer, "ru")

        postgres.start()
        nonce = assert_serving(client, w)  # the same app, its pool renewed on the way
        done = client.post(f"/c/{w.token}", data={"answer": "safe", "n": nonce})
        assert done.status_code == 200, done.text
        assert stored_checkins(db, w.crisis_id) == 1
    finally:
        db.dispose()


# ---------------------------------------------------------------------------- SQLite


@pytest.fixture
def sqlite_settings(settings: Settings, sqlite_template: Path, tmp_path: Path) -> Settings:
    """The test's settings on a SQLite file in its own folder, whatever the suite's backend."""
    path = tmp_path / "disk" / "elshi.db"
    path.parent.mkdir()
    shutil.copy(sqlite_template, path)
    settings.database_url = f"sqlite:///{path}"
    return settings


def test_sqlite_folder_gone_answers_503_and_recovers(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    db = Database(sqlite_settings)
    w = world(db, sqlite_settings)
    db.dispose()
    folder = tmp_path / "disk"
    away = tmp_path / "disk.unmounted"
    db = Database(sqlite_settings)  # the web app's own, no connection open yet
    try:
        client = client_for(sqlite_settings, db)
        # The disk holding the database is gone (unmounted): where its folder was is no
        # folder (a plain file, so that even root cannot open the database there).
        folder.rename(away)
        folder.write_text("not a folder")
        assert_outage_answers(client, sqlite_settings, w)

        folder.unlink()
        away.rename(folder)
        nonce = assert_serving(client, w)
        done = client.post(f"/c/{w.token}", data={"answer": "help", "n": nonce})
        assert done.status_code == 200, done.text
        assert stored_checkins(db, w.crisis_id) == 1
    finally:
        db.dispose()


HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


def test_sqlite_write_lock_held_past_busy_timeout_answers_503(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(sqlite_settings)
    w = world(db, sqlite_settings)
    db.dispose()
    # The wait for the lock shortened from 30 s so the test does not sit through it.
    monkeypatch.setattr(elshi_db, "BUSY_TIMEOUT_MS", 300)
    db = Database(sqlite_settings)
    path = db.path
    assert path is not None
    try:
        client = client_for(sqlite_settings, db)
        nonce = assert_serving(client, w)
        # Another process (a stuck import, a hand-run sqlite3 shell) holds the write lock.
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            answer = client.post(
                f"/c/{w.token}",
                data={"answer": "safe", "n": nonce},
                headers={"accept-language": "kk"},
            )
            assert_page_503(answer, "kk")
            assert stored_checkins(db, w.crisis_id) == 0
            # Reading still works meanwhile (SQLite's readers do not wait for a writer).
            assert client.get("/health").status_code == 200
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(timeout=30)
        # The lock released: the same answer, sent again as the page asked, is stored.
        done = client.post(f"/c/{w.token}", data={"answer": "safe", "n": nonce})
        assert done.status_code == 200, done.text
        assert stored_checkins(db, w.crisis_id) == 1
    finally:
        db.dispose()


def test_other_database_errors_stay_server_errors(sqlite_settings: Settings) -> None:
    """A schema fault (a table missing) is a bug to see, not an outage to wait out."""
    db = Database(sqlite_settings)
    try:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE crisis_checkin")
        client = TestClient(create_app(sqlite_settings, db=db), raise_server_exceptions=False)
        w_token = service.checkin_token(
            key=crypto.purpose_key(sqlite_settings, crypto.CHECKIN), crisis_id=1, recipient_id=1
        )
        answer = client.post(f"/c/{w_token}", data={"answer": "safe", "n": "abcdefgh12"})
        assert answer.status_code == 500
        assert "retry-after" not in answer.headers
    finally:
        db.dispose()
