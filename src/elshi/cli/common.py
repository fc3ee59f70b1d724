"""What every `elshi` command shares: settings, the database, the console, errors and exit
codes.

Domain command modules (crisis/commands.py, speak/commands.py, ...) import from here."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from elshi.settings import Settings, SettingsError, load_settings


class Exit(IntEnum):
    """Exit codes scripts can rely on."""

    OK = 0
    FAILED = 1
    USAGE = 2
    QUARANTINED = 3
    NOT_FOUND = 4
    DISK_FULL = 5


console = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (else ELSHI_CONFIG).")
]

#: The `--json` switch of the commands that list things.
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


class State:
    """What the root options (`elshi --config FILE ...`) set for the command that runs."""

    config: Path | None = None
    #: The database the command opened (so a full disk can be reported with its path).
    db: Any = None
    #: --verbose was given.
    verbose: bool = False


def fail(message: str, code: Exit = Exit.FAILED) -> typer.Exit:
    """Print `error: message` on stderr and return the exit to raise: `raise fail(...)`."""
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(int(code))


@contextmanager
def refused(*errors: type[Exception], code: Exit = Exit.USAGE) -> Iterator[None]:
    """Turn the given errors, raised inside, into a failure of the command with their message."""
    try:
        yield
    except errors as exc:
        raise fail(str(exc), code) from None


def get_settings(**overrides: Any) -> Settings:
    """Load settings or stop with exit code 2 and a message naming the bad variable."""
    try:
        settings = load_settings(State.config, **overrides)
    except SettingsError as exc:
        raise fail(str(exc), Exit.USAGE) from None
    apply_log_settings(settings)
    return settings


def database(settings: Settings, migrate: bool = True, check: bool = False) -> Any:
    """Open the database of `settings`, bringing its schema up to date unless told not to.

    With `check` (the long-running commands: serve, web, worker, demo), stop with a clear
    message when the tables and columns still differ from the models after migrating,
    instead of failing page by page later."""
    from elshi.db import Database, disk_full
    from elshi.listen.flows import ensure_indexes
    from elshi.migrate import migrate as run_migrations

    db = Database(settings)
    State.db = db
    if migrate:
        run_migrations(db.engine)
        try:
            ensure_indexes(db)  # a bulk import that was killed may have left some out
        except Exception as exc:
            full = disk_full(exc, db)
            if full is None:
                raise
            # Reading works without them (slower); writing will say the disk is full.
            err.print(f"warning: search indexes not rebuilt: {full}", highlight=False)
    if check:
        from elshi.schema import check_schema

        report = check_schema(db.engine)
        if not report.ok:
            db.dispose()
            raise fail(report.message(database=f"the database ({db.engine.url!r})"))
    return db


@contextmanager
def disk_full_stops(db: Any) -> Any:
    """Turn a full disk met inside the block into `error: disk full: ...` and exit code 5."""
    from elshi.db import disk_full

    try:
        yield
    except Exception as exc:
        full = disk_full(exc, db)
        if full is None:
            raise
        raise fail(str(full), Exit.DISK_FULL) from None


# ---------------------------------------------------------------------------- output


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "", style="cyan")


class _CountColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{int(task.completed):,} rows")


@contextmanager
def progress_bar(label: str, enabled: bool = True) -> Any:
    """Show a progress bar on stderr; yields `tick(n)` to count n more rows."""
    if not enabled:
        yield lambda n: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        _CountColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        tid = bar.add_task(label, total=None)
        yield lambda n: bar.advance(tid, n)


def connector_config(
    connector: str, target: str, options: list[str] | None
) -> tuple[Any, dict[str, Any]]:
    """Return a connector and its config from `-o key=value` options and the target."""
    from elshi.plugins import UnknownPlugin, get_connector

    try:
        plugin = get_connector(connector)
    except UnknownPlugin as exc:
        raise fail(str(exc.args[0]), Exit.USAGE) from None
    config = parse_options(options or [])
    config[plugin.target_field] = target
    return plugin, config


def parse_options(options: list[str]) -> dict[str, Any]:
    """Turn repeated `--option KEY=VALUE` into a dict; VALUE is read as JSON when it is JSON."""
    out: dict[str, Any] = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"--option {item!r}: expected KEY=VALUE", Exit.USAGE)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def show_rows(
    rows: Sequence[Any],
    as_json: bool,
    columns: tuple[str, ...],
    cells: Callable[[Any], tuple[str, ...]],
    record: Callable[[Any], Any] = lambda r: r.model_dump(mode="json"),
) -> None:
    """Print rows as JSON (each as `record` gives it), or as a table of `columns`."""
    from rich.table import Table

    if as_json:
        console.print_json(json.dumps([record(r) for r in rows]))
        return
    table = Table(*columns)
    for r in rows:
        table.add_row(*cells(r))
    console.print(table)


def format_when(value: datetime | None) -> str:
    """A time for a table cell: `2026-11-01 09:30`, or `-` for none."""
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def set_up_logging(*, verbose: bool) -> None:
    """Log warnings (everything with --verbose) to stderr, personal data masked; the settings
    (ELSHI_LOG_LEVEL, ELSHI_LOG_FORMAT) apply once a command has read them."""
    import logging

    from elshi import logs

    State.verbose = verbose
    logs.configure(level=logging.DEBUG if verbose else logging.WARNING)
    from elshi.accounts.service import install_log_masking

    install_log_masking()


def apply_log_settings(settings: Settings) -> None:
    """Write logs as the settings say (JSON lines with ELSHI_LOG_FORMAT=json)."""
    from elshi import logs

    logs.apply(settings, verbose=State.verbose)


def queue_enrichment(settings: Settings, db: Any, after_id: int) -> None:
    """Queue enrichment of posts stored after `after_id`; a worker (or `elshi serve`) runs it."""
    from elshi import jobs

    try:
        jobs.bind(settings, db)
        jobs.enqueue("enrich_new_posts", after_id)
    except Exception as exc:  # the posts are stored; the periodic catch-up will enrich them
        err.print(f"could not queue enrichment ({exc}); it will run later", highlight=False)
