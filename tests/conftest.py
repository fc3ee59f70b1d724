"""Test fixtures: a real database per test (SQLite file or PostgreSQL), settings, shared data.

ELSHI_TEST_DB=sqlite (default) or postgres picks the backend the whole suite runs on.
ELSHI_TEST_POSTGRES_URL is the admin URL used to create a throwaway database per run.
ELSHI_TEST_REDIS_URL is the Redis used by queue tests.
ELSHI_TEST_REQUIRE_SERVICES=1 (CI) turns "service unreachable" skips into failures.
"""

from __future__ import annotations

import inspect
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from elshi.accounts.service import use_password_hasher
from elshi.db import Database
from elshi.migrate import migrate
from elshi.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
BACKEND = os.environ.get("ELSHI_TEST_DB", "sqlite")
PG_ADMIN = os.environ.get(
    "ELSHI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("ELSHI_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("ELSHI_TEST_REQUIRE_SERVICES") == "1"


def service_missing(what: str, exc: BaseException) -> None:
    """Skip (on a user's machine) or fail (in CI) when a real service is unreachable."""
    message = f"{what} unreachable: {exc}"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def tiny_bert(folder: Path, vocab: list[str], **config: Any) -> tuple[Any, Any]:
    """Return a tokenizer over `vocab` (written to folder) and a tiny BERT config (transformers)."""
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab), encoding="utf-8")
    # transformers 4 names the argument vocab_file; 5 names it vocab (and ignores vocab_file).
    params = inspect.signature(transformers.BertTokenizerFast.__init__).parameters
    key = "vocab_file" if "vocab_file" in params else "vocab"
    tokenizer = transformers.BertTokenizerFast(**{key: str(folder / "vocab.txt")})
    assert tokenizer.convert_tokens_to_ids(vocab[-1]) == len(vocab) - 1, "vocabulary not loaded"
    settings = {
        "vocab_size": len(vocab),
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
    }
    return tokenizer, transformers.BertConfig(**(settings | config))


def shared_data_dir() -> Path:
    """Return ../shared/data or ELSHI_SHARED_DATA."""
    return Path(os.environ.get("ELSHI_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The third-party data folder; tests using it skip with a reason where it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set ELSHI_SHARED_DATA)")
    return path


#: What the suite hashes test passwords with: argon2id at the lowest cost, so that the many
#: accounts tests create take milliseconds, not seconds. elshi itself always hashes at
#: PRODUCTION_HASHER's cost (tests/accounts/test_accounts.py checks both).
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashing() -> Iterator[None]:
    previous = use_password_hasher(CHEAP_HASHER)
    yield
    use_password_hasher(previous)


def _clear_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if (
            key.startswith("ELSHI_")
            and not key.startswith("ELSHI_TEST")
            and key != "ELSHI_SHARED_DATA"
        ):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """Create a throwaway PostgreSQL database for this run (only when the suite runs on it)."""
    if BACKEND != "postgres":
        yield None
        return
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"elshi_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    eng = create_engine(url)
    migrate(eng)
    eng.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies."""
    path = tmp_path_factory.mktemp("template") / "elshi.db"
    eng = create_engine(f"sqlite:///{path}")
    migrate(eng)
    eng.dispose()
    return path


@pytest.fixture
def db_url(tmp_path: Path, pg_database: str | None, sqlite_template: Path) -> Iterator[str]:
    """A clean, migrated database URL for one test."""
    if pg_database is None:
        path = tmp_path / "home" / "elshi.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    eng = create_engine(pg_database)
    with eng.begin() as conn:
        # A connection an earlier test left open (a pool not disposed, a session kept alive by a
        # reference cycle until the collector runs) would hold its locks and make TRUNCATE wait
        # for ever: end every other session on this run's database first, and never wait long.
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        conn.execute(text("SET LOCAL lock_timeout = '60s'"))
        tables = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname='public' "
                    "AND tablename <> 'alembic_version'"
                )
            )
        ]
        if tables:
            conn.execute(
                text(
                    "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
                )
            )
    eng.dispose()
    yield pg_database


@pytest.fixture
def settings(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for one test: its own home, the test database, tasks run immediately."""
    _clear_env(monkeypatch)
    home = tmp_path / "home"
    monkeypatch.setenv("ELSHI_HOME", str(home))
    monkeypatch.setenv("ELSHI_DATABASE_URL", db_url)
    monkeypatch.setenv("ELSHI_DEMO", "1")
    return load_settings()


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    """The test database."""
    database = Database(settings)
    yield database
    database.dispose()


@pytest.fixture
def cli(settings: Settings) -> Any:
    """Run the `elshi` CLI in-process against the test settings; returns a Result."""
    from typer.testing import CliRunner

    from elshi.cli import app

    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Any:
        return runner.invoke(app, [*args], input=input, catch_exceptions=False)

    return run


@pytest.fixture
def smtp(settings: Settings) -> Iterator[Any]:
    """A real SMTP server (aiosmtpd) on loopback that keeps every message; settings point at it."""
    from aiosmtpd.controller import Controller

    from tests.consulate.support import Sink, free_port

    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.smtp_host, settings.smtp_port = "127.0.0.1", controller.port
    settings.smtp_from = "elshi <no-reply@mfa.example>"
    try:
        yield sink
    finally:
        controller.stop()
