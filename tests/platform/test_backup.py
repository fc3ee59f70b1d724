"""`elshi backup` of a server that is writing, `elshi restore` into an empty one: everything is
back (posts, citizens and their sealed data, documents and their files, statements), on
SQLite and on PostgreSQL; a wrong passphrase, a damaged or cut archive and a target that holds
data are refused with a message saying what and where."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from elshi import backup as backup_mod
from elshi.accounts.models import AuditEvent
from elshi.accounts.service import audit
from elshi.cli import app
from elshi.consulate import documents
from elshi.consulate.models import Citizen, Document, Registration
from elshi.db import Database
from elshi.demo import load_demo
from elshi.listen.models import Post
from elshi.migrate import migrate
from elshi.settings import Settings, load_settings
from elshi.speak.models import Statement
from tests.conftest import PG_ADMIN, _clear_env

PASSPHRASE = "a long backup passphrase"


def _settings(mp: pytest.MonkeyPatch, home: Path, url: str, key_file: Path | None) -> Settings:
    _clear_env(mp)
    mp.setenv("ELSHI_HOME", str(home))
    mp.setenv("ELSHI_DATABASE_URL", url)
    mp.setenv("ELSHI_DEMO", "1")
    if key_file is not None:
        mp.setenv("ELSHI_SECRET_KEY_FILE", str(key_file))
    mp.setenv("ELSHI_BACKUP_PASSPHRASE", PASSPHRASE)
    return load_settings()


@pytest.fixture
def empty_target(tmp_path: Path, sqlite_template: Path, pg_database: str | None) -> Iterator[str]:
    """A second, empty (migrated) database for the restore."""
    if pg_database is None:
        path = tmp_path / "target" / "elshi.db"
        path.parent.mkdir(parents=True)
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"elshi_restore_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_database).set(database=name).render_as_string(hide_password=False)
    eng = create_engine(url)
    migrate(eng)
    eng.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _everything(db: Database, uploads: Path) -> dict[str, Any]:
    """What must come back: posts, citizens (sealed phone opened), documents' bytes, statements."""
    with db.session() as s:
        return {
            "posts": sorted((p.id, p.text) for p in s.scalars(select(Post))),
            "citizens": sorted((c.id, c.email) for c in s.scalars(select(Citizen))),
            "stays": sorted((r.id, r.phone, r.address) for r in s.scalars(select(Registration))),
            "documents": sorted(
                (d.id, d.sha256, documents.read(uploads, d.storage_key))
                for d in s.scalars(select(Document))
            ),
            "statements": sorted((st.id, st.title) for st in s.scalars(select(Statement))),
            "audit": {a.id for a in s.scalars(select(AuditEvent))},
        }


def _run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_backup_of_a_running_server_restores_into_an_empty_one(
    tmp_path: Path, db_url: str, empty_target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "secret.key"
    key_file.write_text("a-source-secret-key-that-seals-the-data\n")
    key_file.chmod(0o600)
    source = _settings(monkeypatch, tmp_path / "home", db_url, key_file)
    db = Database(source)
    try:
        load_demo(db, settings=source, posts=120)
        before = _everything(db, source.uploads_path)
        assert before["posts"] and before["citizens"] and before["documents"]
        assert before["statements"] and any(phone for _, phone, _ in before["stays"])

        # The server goes on writing while the backup runs.
        stop = threading.Event()
        written: list[int] = []

        def write() -> None:
            while not stop.is_set():
                with db.session() as s:
                    entry = audit(db=s, action="test.write", object_type="backup")
                    s.commit()
                    written.append(entry.id)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            while len(written) < 5:
                stop.wait(0.01)
            result = _run("backup", str(tmp_path / "site.elshi"), "--quiet")
            during = len(written)
            while len(written) < during + 5:  # and still writing after it
                stop.wait(0.01)
        finally:
            stop.set()
            writer.join()
        assert result.exit_code == 0, result.output
        assert "wrote" in result.output
    finally:
        db.dispose()

    # An empty elshi elsewhere, with no key of its own: the key comes from the archive.
    target_home = tmp_path / "target-home"
    target = _settings(monkeypatch, target_home, empty_target, None)
    result = _run("restore", str(tmp_path / "site.elshi"), "--quiet")
    assert result.exit_code == 0, result.output
    restored_key = target_home / "secret.key"
    assert restored_key.read_text().strip() == "a-source-secret-key-that-seals-the-data"
    assert restored_key.stat().st_mode & 0o077 == 0
    assert "ELSHI_SECRET_KEY_FILE" in result.output

    target = _settings(monkeypatch, target_home, empty_target, restored_key)
    db2 = Database(target)
    try:
        migrate(db2.engine)
        after = _everything(db2, target.uploads_path)
    finally:
        db2.dispose()
    for kind in ("posts", "citizens", "stays", "documents", "statements"):
        assert after[kind] == before[kind], kind
    # A consistent snapshot: everything written before the backup, in order, nothing half.
    assert before["audit"] <= after["audit"]
    assert after["audit"] <= before["audit"] | set(written)

    # A second restore into what is now full is refused, and --force replaces it.
    result = _run("restore", str(tmp_path / "site.elshi"), "--quiet")
    assert result.exit_code == 2
    assert "not empty" in result.output and "--force" in result.output
    result = _run("restore", str(tmp_path / "site.elshi"), "--quiet", "--force")
    assert result.exit_code == 0, result.output


@pytest.fixture
def small_archive(tmp_path: Path, settings: Settings) -> Path:
    """An archive of a home with a few uploads (several chunks long)."""
    Database(settings).dispose()
    for i in range(3):
        documents.store(settings.uploads_path, os.urandom(700_000) + bytes([i]))
    archive = tmp_path / "small.elshi"
    backup_mod.backup(settings, archive, PASSPHRASE)
    return archive


def test_wrong_passphrase_is_named(small_archive: Path, settings: Settings) -> None:
    with pytest.raises(backup_mod.WrongPassphrase, match="wrong passphrase"):
        backup_mod.restore(settings, small_archive, "not the passphrase")


def test_a_damaged_chunk_is_named_and_nothing_changes(
    small_archive: Path, settings: Settings, tmp_path: Path
) -> None:
    data = bytearray(small_archive.read_bytes())
    where = len(data) // 2
    data[where] ^= 0xFF
    damaged = tmp_path / "damaged.elshi"
    damaged.write_bytes(bytes(data))
    target = settings.model_copy(update={"home": tmp_path / "t", "database_url": ""})
    with pytest.raises(backup_mod.DamagedArchive) as caught:
        backup_mod.restore(target, damaged, PASSPHRASE)
    message = str(caught.value)
    assert "damaged in chunk 2" in message and str(damaged) in message
    start, end = (int(x) for x in message.split("(bytes ")[1].split(")")[0].split("-"))
    assert start <= where < end
    assert not (tmp_path / "t" / "elshi.db").exists()
    assert not (tmp_path / "t" / "secret.key").exists()


def test_a_cut_archive_is_named(small_archive: Path, settings: Settings, tmp_path: Path) -> None:
    data = small_archive.read_bytes()
    cut = tmp_path / "cut.elshi"
    cut.write_bytes(data[: len(data) - 100])
    target = settings.model_copy(update={"home": tmp_path / "t", "database_url": ""})
    with pytest.raises(backup_mod.DamagedArchive, match="cut off"):
        backup_mod.restore(target, cut, PASSPHRASE)
    # Cut exactly at a chunk's end: its last chunk is missing.
    first_len = data.index(b"\n") + 1
    size = int.from_bytes(data[first_len : first_len + 4], "big")
    cut.write_bytes(data[: first_len + 4 + size])
    with pytest.raises(backup_mod.DamagedArchive, match="without its last chunk"):
        backup_mod.restore(target, cut, PASSPHRASE)


def test_not_an_archive(tmp_path: Path, settings: Settings) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(backup_mod.DamagedArchive, match="not an elshi backup"):
        backup_mod.restore(settings, other, PASSPHRASE)


def test_cli_without_a_passphrase_says_how_to_give_one(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ELSHI_BACKUP_PASSPHRASE", raising=False)
    result = _run("backup", str(tmp_path / "x.elshi"))
    assert result.exit_code == 2
    assert "--passphrase-file" in result.output
    phrase = tmp_path / "phrase"
    phrase.write_text(PASSPHRASE + "\n")
    result = _run("backup", str(tmp_path / "x.elshi"), "--passphrase-file", str(phrase), "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x.elshi").stat().st_size > 0


def test_a_backup_kept_in_the_home_folder_is_not_backed_up_again(settings: Settings) -> None:
    Database(settings).dispose()
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "vapid.pem").write_text("push key\n")
    first = settings.home / "monday.elshi"
    second = settings.home / "tuesday.elshi"
    one = backup_mod.backup(settings, first, PASSPHRASE)
    two = backup_mod.backup(settings, second, PASSPHRASE)
    assert one.files == two.files == 1  # vapid.pem only: not monday.elshi nor the work files
    with backup_mod._opened(second, PASSPHRASE) as tar:
        names = [m.name for m in tar]
    assert "home/vapid.pem" in names
    assert not [n for n in names if n.endswith(".elshi") or "elshi-backup-" in n]
