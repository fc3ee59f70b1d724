"""Backups: one encrypted archive with the database, the uploads and the keys; and its restore.

The archive is a tar stream (manifest, database, files of the home folder, keys) sealed with a
passphrase:

- the key comes from the passphrase through scrypt (a random salt per archive);
- the stream is cut into chunks of 1 MiB, each sealed with AES-256-GCM; the nonce holds the
  chunk's number and whether it is the last, and the header is authenticated with every chunk,
  so a chunk changed, moved, dropped or cut off is found and named;
- a check value derived from the key tells a wrong passphrase from a damaged archive.

The database is copied consistently while elshi runs: SQLite through its online backup API,
PostgreSQL through pg_dump (one snapshot). Restoring reads and checks the whole archive before
it changes anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from elshi import __version__
from elshi.settings import Settings

MAGIC = b"ELSHI-BACKUP\x00\x01"
CHUNK = 1 << 20
#: scrypt cost: 2**17 x 8 x 1 takes about 128 MiB and a fraction of a second.
SCRYPT = {"n": 1 << 17, "r": 8, "p": 1}
#: Files of the home folder that are not copied as they are (the database is copied apart).
SKIP_IN_HOME = {"elshi.db", "elshi.db-wal", "elshi.db-shm", "queue.db", "queue.db-wal"}
SKIP_IN_HOME |= {"queue.db-shm", "uploads"}

#: Progress: called with (what, bytes done so far of that step, total bytes or None).
Progress = Callable[[str, int, int | None], None]


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says what and where."""


class WrongPassphrase(BackupError):
    """The passphrase does not open the archive."""


class DamagedArchive(BackupError):
    """The archive was changed or cut off after it was written."""


class NotEmpty(BackupError):
    """The restore target already holds data (restore with force to replace it)."""


def _no_progress(what: str, done: int, total: int | None) -> None:
    return None


# ---------------------------------------------------------------------------- sealing


def _derive(passphrase: str, salt: bytes, params: dict[str, int]) -> tuple[bytes, bytes]:
    """Return the AES key and the check value for a passphrase."""
    if not passphrase:
        raise BackupError("the passphrase is empty")
    kdf = Scrypt(salt=salt, length=64, n=params["n"], r=params["r"], p=params["p"])
    material = kdf.derive(passphrase.encode("utf-8"))
    key, mac_key = material[:32], material[32:]
    check = hmac.new(mac_key, b"elshi backup passphrase check", hashlib.sha256).digest()
    return key, check


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


class SealedWriter(io.RawIOBase):
    """A write-only stream that seals what is written to it into `out`, chunk by chunk."""

    def __init__(self, out: IO[bytes], passphrase: str) -> None:
        super().__init__()
        salt = os.urandom(16)
        self._prefix = os.urandom(7)
        self._key, check = _derive(passphrase, salt, SCRYPT)
        header = {
            "format": 1,
            "kdf": "scrypt",
            **SCRYPT,
            "salt": base64.b64encode(salt).decode(),
            "nonce": base64.b64encode(self._prefix).decode(),
            "check": base64.b64encode(check).decode(),
            "cipher": "AES-256-GCM",
            "chunk": CHUNK,
        }
        self._header = MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n"
        self._out = out
        self._aead = AESGCM(self._key)
        self._buf = bytearray()
        self._index = 0
        out.write(self._header)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buf += bytes(data)
        while len(self._buf) > CHUNK:
            self._seal(bytes(self._buf[:CHUNK]), last=False)
            del self._buf[:CHUNK]
        return len(data)

    def _seal(self, plain: bytes, *, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._prefix, self._index, last), plain, self._header)
        self._out.write(struct.pack(">I", len(sealed)) + sealed)
        self._index += 1

    def finish(self) -> None:
        """Seal what is left as the last chunk (an archive without it is found cut off)."""
        self._seal(bytes(self._buf), last=True)
        self._buf.clear()
        self._out.flush()


class SealedReader(io.RawIOBase):
    """A read-only stream that opens an archive written by SealedWriter, checking each chunk."""

    def __init__(self, src: IO[bytes], passphrase: str, *, name: str) -> None:
        super().__init__()
        self._src = src
        self._name = name
        magic = src.read(len(MAGIC))
        if magic != MAGIC:
            raise DamagedArchive(f"{name} is not an elshi backup (its first bytes are not ours)")
        line = src.readline(4096)
        try:
            header = json.loads(line)
            salt = base64.b64decode(header["salt"])
            self._prefix = base64.b64decode(header["nonce"])
            check = base64.b64decode(header["check"])
            params = {k: int(header[k]) for k in ("n", "r", "p")}
        except (ValueError, KeyError, TypeError):
            raise DamagedArchive(
                f"{name}: the header (bytes {len(MAGIC)}-{len(MAGIC) + len(line)}) is damaged"
            ) from None
        if header.get("format") != 1:
            raise BackupError(f"{name}: archive format {header.get('format')} is not known")
        self._header = MAGIC + line
        key, expected = _derive(passphrase, salt, params)
        if not hmac.compare_digest(check, expected):
            raise WrongPassphrase(f"{name}: wrong passphrase (it does not open this archive)")
        self._aead = AESGCM(key)
        self._offset = len(self._header)
        self._index = 0
        self._plain = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def _next(self) -> None:
        start = self._offset
        size_bytes = self._src.read(4)
        if len(size_bytes) < 4:
            raise DamagedArchive(
                f"{self._name} is cut off: it ends at byte {start} after chunk {self._index} "
                "without its last chunk"
            )
        (size,) = struct.unpack(">I", size_bytes)
        if size < 16 or size > CHUNK + 16:
            raise DamagedArchive(
                f"{self._name} is damaged at byte {start} (chunk {self._index + 1}): "
                "bad chunk length"
            )
        sealed = self._src.read(size)
        if len(sealed) < size:
            raise DamagedArchive(
                f"{self._name} is cut off in chunk {self._index + 1} (bytes {start}-"
                f"{start + 4 + size} expected, the file ends at {start + 4 + len(sealed)})"
            )
        self._offset += 4 + size
        for last in (False, True):
            try:
                plain = self._aead.decrypt(
                    _nonce(self._prefix, self._index, last), sealed, self._header
                )
            except InvalidTag:
                continue
            self._index += 1
            self._plain = plain
            if last:
                self._done = True
                if self._src.read(1):
                    raise DamagedArchive(
                        f"{self._name} has bytes after its last chunk (from byte {self._offset})"
                    )
            return
        raise DamagedArchive(
            f"{self._name} is damaged in chunk {self._index + 1} (bytes {start}-{self._offset}): "
            "its content does not match its seal"
        )

    def readinto(self, buffer: Any) -> int:
        while not self._plain:
            if self._done:
                return 0
            self._next()
        n = min(len(buffer), len(self._plain))
        buffer[:n] = self._plain[:n]
        self._plain = self._plain[n:]
        return n


# ---------------------------------------------------------------------------- PostgreSQL tools


def pg_tool(name: str) -> str:
    """Return the path of pg_dump or pg_restore: on PATH, else the newest PostgreSQL's."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if candidates:
        return str(candidates[-1])
    raise BackupError(
        f"{name} not found: install the PostgreSQL client tools (postgresql-client) of the "
        "server's major version or newer"
    )


def _pg_connection(url: str) -> tuple[list[str], dict[str, str]]:
    """Return libpq options and environment (the password) for a SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    args = []
    if u.host:
        args += ["--host", u.host]
    if u.port:
        args += ["--port", str(u.port)]
    if u.username:
        args += ["--username", u.username]
    # pg_dump and pg_restore get no secret of elshi's (keys, the backup passphrase).
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELSHI_")}
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    for key, variable in (("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT")):
        value = u.query.get(key)
        if isinstance(value, str):
            env[variable] = value
    return args, env


def _run_tool(cmd: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        errors = [line for line in lines if "error" in line.lower()] or lines
        raise BackupError(f"{what} failed ({cmd[0]}): {' '.join(errors[:2])}")


# ---------------------------------------------------------------------------- backup


@dataclass
class Report:
    """What a backup or restore did."""

    path: Path
    database: str
    tables: dict[str, int] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0
    keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _sqlite_path(settings: Settings) -> Path:
    from sqlalchemy.engine import make_url

    name = make_url(settings.db_url).database
    if not name or name == ":memory:":
        raise BackupError(f"the SQLite database {settings.db_url!r} is not a file")
    return Path(name)


def _counted(name: str) -> bool:
    """Whether a table holds data (not the schema's version, not a search index's own tables)."""
    return name != "alembic_version" and "_fts" not in name and not name.startswith("sqlite_")


def _table_counts(settings: Settings) -> dict[str, int]:
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(settings.db_url)
    try:
        with engine.connect() as conn:
            names = [n for n in sorted(inspect(conn).get_table_names()) if _counted(n)]
            return {
                n: int(conn.execute(text(f'SELECT count(*) FROM "{n}"')).scalar_one())
                for n in names
            }
    finally:
        engine.dispose()


def _dump_database(settings: Settings, folder: Path, progress: Progress) -> Path:
    if settings.is_sqlite:
        source = _sqlite_path(settings)
        if not source.is_file():
            raise BackupError(f"the SQLite database {source} does not exist")
        target = folder / "database.sqlite"
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=60)
        dst = sqlite3.connect(target)
        try:
            total = source.stat().st_size

            def step(status: int, remaining: int, pages: int) -> None:
                progress("database", max(0, total * (pages - remaining) // max(pages, 1)), total)

            # One step: a single read transaction, so the copy is one consistent snapshot
            # whatever the server writes meanwhile (with WAL, writers are not blocked).
            src.backup(dst, pages=-1, progress=step)
        finally:
            dst.close()
            src.close()
        progress("database", target.stat().st_size, target.stat().st_size)
        return target
    from sqlalchemy.engine import make_url

    target = folder / "database.pgdump"
    args, env = _pg_connection(settings.db_url)
    dbname = make_url(settings.db_url).database or ""
    progress("database", 0, None)
    _run_tool(
        [pg_tool("pg_dump"), *args, "--format=custom", "--no-owner", "--file", str(target), dbname],
        env,
        "pg_dump",
    )
    progress("database", target.stat().st_size, target.stat().st_size)
    return target


def _home_files(settings: Settings) -> Iterator[tuple[Path, str]]:
    """Yield (file, name in the archive) for the uploads and the other files of the home."""
    uploads = settings.uploads_path
    if uploads.is_dir():
        for path in sorted(uploads.rglob("*")):
            if path.is_file() and not path.name.endswith(".part"):
                yield path, "uploads/" + path.relative_to(uploads).as_posix()
    home = Path(settings.home)
    database = _sqlite_path(settings) if settings.is_sqlite else None
    copied_apart = (
        {database, *(database.with_name(database.name + x) for x in ("-wal", "-shm", "-journal"))}
        if database
        else set()
    )
    if home.is_dir():
        for path in sorted(home.rglob("*")):
            if path in copied_apart:
                continue
            rel = path.relative_to(home)
            if rel.parts[0] in SKIP_IN_HOME or not path.is_file():
                continue
            # Backups kept in the home folder, and the work folders of a backup or restore.
            if rel.parts[0].startswith(("elshi-backup-", "elshi-restore-")):
                continue
            if path.name.endswith((".elshi", ".part")):
                continue
            if uploads.is_dir() and path.is_relative_to(uploads):
                continue
            yield path, "home/" + rel.as_posix()


def _keys_text(settings: Settings) -> dict[str, str]:
    keys = {"keys/secret.key": settings.secret_key + "\n"}
    previous = settings.previous_secret_keys
    if previous:
        keys["keys/previous.keys"] = "\n".join(previous) + "\n"
    if settings.credentials_key:
        keys["keys/credentials.key"] = settings.credentials_key + "\n"
    return keys


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))


def backup(
    settings: Settings,
    archive: Path,
    passphrase: str,
    *,
    progress: Progress = _no_progress,
    force: bool = False,
) -> Report:
    """Write an encrypted archive of the database, uploads, home files and keys to `archive`."""
    if archive.exists() and not force:
        raise BackupError(f"{archive} exists already; choose another file or pass --force")
    report = Report(path=archive, database="sqlite" if settings.is_sqlite else "postgresql")
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".part")
    with tempfile.TemporaryDirectory(prefix="elshi-backup-", dir=archive.parent) as tmp:
        dump = _dump_database(settings, Path(tmp), progress)
        report.tables = _table_counts_of_dump(settings, dump)
        files = list(_home_files(settings))
        keys = _keys_text(settings)
        report.keys = sorted(keys)
        manifest = {
            "elshi": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": report.database,
            "database_file": "database/" + dump.name,
            "tables": report.tables,
            "files": [name for _, name in files],
            "keys": report.keys,
        }
        total = dump.stat().st_size + sum(p.stat().st_size for p, _ in files)
        done = 0
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                sealed = SealedWriter(out, passphrase)
                with tarfile.open(fileobj=sealed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
                    for name, text in keys.items():
                        _add_bytes(tar, name, text.encode())
                    tar.add(dump, arcname="database/" + dump.name, recursive=False)
                    done += dump.stat().st_size
                    progress("files", done, total)
                    for path, name in files:
                        try:
                            tar.add(path, arcname=name, recursive=False)
                        except FileNotFoundError:  # deleted meanwhile (a withdrawn document)
                            continue
                        report.files += 1
                        done += path.stat().st_size
                        progress("files", done, total)
                sealed.finish()
                os.fsync(out.fileno())
            os.replace(partial, archive)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    report.bytes = archive.stat().st_size
    return report


def _table_counts_of_dump(settings: Settings, dump: Path) -> dict[str, int]:
    if dump.suffix == ".sqlite":
        conn = sqlite3.connect(dump)
        try:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' ORDER BY 1"
                )
                if _counted(r[0])
            ]
            return {
                n: int(conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names
            }
        finally:
            conn.close()
    # pg_dump took its own snapshot: these counts come after it (for the report only).
    return _table_counts(settings)


# ---------------------------------------------------------------------------- restore


@contextmanager
def _opened(archive: Path, passphrase: str) -> Iterator[tarfile.TarFile]:
    try:
        src = archive.open("rb")
    except OSError as exc:
        raise BackupError(f"cannot read {archive}: {exc.strerror}") from None
    with src:
        reader = io.BufferedReader(SealedReader(src, passphrase, name=str(archive)), CHUNK)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                yield tar
        except tarfile.TarError as exc:
            raise DamagedArchive(f"{archive}: the content is not a valid archive ({exc})") from None


def _unpack(archive: Path, passphrase: str, folder: Path, progress: Progress) -> dict[str, Any]:
    """Open, check and unpack the whole archive into `folder`; return its manifest."""
    size = archive.stat().st_size if archive.exists() else 0
    done = 0
    with _opened(archive, passphrase) as tar:
        for member in tar:
            name = member.name
            if (
                not member.isfile()
                or name.startswith("/")
                or ".." in Path(name).parts
                or name.split("/")[0]
                not in {"manifest.json", "keys", "database", "uploads", "home"}
            ):
                raise DamagedArchive(f"{archive}: unexpected entry {name!r} in the archive")
            target = folder / "unpacked" / name
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            extracted = tar.extractfile(member)
            assert extracted is not None
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(extracted, out, CHUNK)
            done += member.size
            progress("checking", min(done, size), size)
    manifest_path = folder / "unpacked" / "manifest.json"
    if not manifest_path.is_file():
        raise DamagedArchive(f"{archive}: the archive has no manifest.json")
    manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
    missing = [
        n
        for n in [manifest["database_file"], *manifest.get("files", []), *manifest.get("keys", [])]
        if not (folder / "unpacked" / n).is_file()
    ]
    if missing:
        raise DamagedArchive(f"{archive}: files named in its manifest are missing: {missing[:5]}")
    return manifest


def target_holds(settings: Settings) -> list[str]:
    """Say what data the restore target already holds (empty list: nothing)."""
    found = []
    if not settings.is_sqlite or _sqlite_path(settings).is_file():
        try:
            counts = _table_counts(settings)
        except Exception as exc:
            raise BackupError(f"cannot read the target database: {exc}") from None
        rows = {k: v for k, v in counts.items() if v}
        if rows:
            top = ", ".join(f"{k} ({v})" for k, v in sorted(rows.items())[:5])
            found.append(f"the database holds {sum(rows.values())} rows: {top}")
    uploads = settings.uploads_path
    if uploads.is_dir() and any(p.is_file() for p in uploads.rglob("*")):
        found.append(f"the uploads folder {uploads} holds files")
    return found


def _restore_sqlite(settings: Settings, dump: Path) -> None:
    target = _sqlite_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    incoming = target.with_name(target.name + ".restoring")
    shutil.copyfile(dump, incoming)
    os.chmod(incoming, 0o600)
    for suffix in ("-wal", "-shm", "-journal"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    os.replace(incoming, target)


def _restore_postgres(settings: Settings, dump: Path) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    # Empty the target first: its tables (made by migrations, or old data with --force) go,
    # so the dump's schema and rows come in whole.
    engine = create_engine(settings.db_url)
    try:
        with engine.begin() as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
                )
            ]
            for name in tables:
                conn.execute(text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
            seqs = [
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT sequence_name FROM information_schema.sequences "
                        "WHERE sequence_schema = current_schema()"
                    )
                )
            ]
            for name in seqs:
                conn.execute(text(f'DROP SEQUENCE IF EXISTS "{name}" CASCADE'))
    finally:
        engine.dispose()
    args, env = _pg_connection(settings.db_url)
    dbname = make_url(settings.db_url).database or ""
    _run_tool(
        [
            pg_tool("pg_restore"),
            *args,
            "--dbname",
            dbname,
            "--no-owner",
            "--no-privileges",
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--exit-on-error",
            str(dump),
        ],
        env,
        "pg_restore",
    )


def _write_key(path: Path, text: str, *, force: bool) -> bool:
    """Write a key file (mode 600); False when it already holds the same keys."""
    if path.exists():
        if path.read_text(encoding="utf-8").split() == text.split():
            return False
        if not force:
            raise NotEmpty(f"the key file {path} holds other keys; pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".restoring")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)
    return True


def restore(
    settings: Settings,
    archive: Path,
    passphrase: str,
    *,
    force: bool = False,
    progress: Progress = _no_progress,
) -> Report:
    """Check the whole archive, then put its database, uploads, home files and keys in place.

    Refuses a target that already holds data unless `force`. Stop the web server and workers
    first: the database is replaced under them."""
    if not archive.is_file():
        raise BackupError(f"{archive} does not exist")
    home = Path(settings.home)
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="elshi-restore-", dir=home) as tmp:
        folder = Path(tmp)
        manifest = _unpack(archive, passphrase, folder, progress)
        unpacked = folder / "unpacked"
        kind = "sqlite" if settings.is_sqlite else "postgresql"
        if manifest["database"] != kind:
            raise BackupError(
                f"{archive} holds a {manifest['database']} database; the target is {kind} "
                "(restore into a database of the same kind)"
            )
        holds = target_holds(settings)
        if holds and not force:
            raise NotEmpty(
                "the target is not empty: " + "; ".join(holds) + ". Pass --force to replace it."
            )
        report = Report(path=archive, database=kind, tables=dict(manifest.get("tables", {})))
        dump = unpacked / manifest["database_file"]
        progress("database", 0, dump.stat().st_size)
        if kind == "sqlite":
            _restore_sqlite(settings, dump)
        else:
            _restore_postgres(settings, dump)
        progress("database", dump.stat().st_size, dump.stat().st_size)
        uploads = settings.uploads_path
        if uploads.exists() and force:
            shutil.rmtree(uploads)
        names = manifest.get("files", [])
        total = sum((unpacked / n).stat().st_size for n in names)
        moved = 0
        for name in names:
            src = unpacked / name
            moved += src.stat().st_size
            top, _, rest = name.partition("/")
            dest = (uploads if top == "uploads" else home) / rest
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.replace(src, dest)
            report.files += 1
            progress("files", moved, total)
        key_file = settings.secret_key_file or home / "secret.key"
        secret = (unpacked / "keys" / "secret.key").read_text(encoding="utf-8")
        if _write_key(key_file, secret, force=force):
            report.keys.append(str(key_file))
        previous = unpacked / "keys" / "previous.keys"
        if previous.is_file():
            prev_file = settings.secret_key_previous_file or home / "secret-previous.keys"
            if _write_key(prev_file, previous.read_text(encoding="utf-8"), force=force):
                report.keys.append(str(prev_file))
        credentials = unpacked / "keys" / "credentials.key"
        if credentials.is_file():
            cred_file = home / "credentials.key"
            text = credentials.read_text(encoding="utf-8")
            if _write_key(cred_file, text, force=force):
                report.keys.append(str(cred_file))
            if text.strip() != settings.credentials_key:
                report.notes.append(
                    f"channel credentials are sealed with the key restored to {cred_file}: "
                    "set ELSHI_CREDENTIALS_KEY to its content"
                )
        if settings.secret_key_file is None and secret.strip() != settings.secret_key:
            report.notes.append(
                f"the data is sealed with the key restored to {key_file}: set "
                f"ELSHI_SECRET_KEY_FILE={key_file}"
                + (
                    f" and ELSHI_SECRET_KEY_PREVIOUS_FILE={home / 'secret-previous.keys'}"
                    if previous.is_file() and settings.secret_key_previous_file is None
                    else ""
                )
                + " before starting elshi"
            )
    report.bytes = archive.stat().st_size
    return report
