"""Operations from the command line: `elshi backup FILE` and `elshi restore FILE`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from elshi.cli.common import Exit, console, err, fail, get_settings

#: The environment variable a passphrase may come from (for scheduled backups).
PASSPHRASE_VARIABLE = "ELSHI_BACKUP_PASSPHRASE"

PassphraseFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="Read the passphrase from this file's first line (else the "
        f"{PASSPHRASE_VARIABLE} variable, else it is asked).",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def _passphrase(file: Path | None, *, confirm: bool) -> str:
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise fail(f"--passphrase-file {file}: {exc.strerror}", Exit.USAGE) from None
        lines = text.splitlines()
        value = lines[0] if lines else ""
        if not value:
            raise fail(f"--passphrase-file {file}: the first line is empty", Exit.USAGE)
        return value
    from elshi.settings import taken_from_environment

    # `elshi` takes it out of its environment at start-up, like the secret keys.
    value = os.environ.get(PASSPHRASE_VARIABLE, "") or taken_from_environment().get(
        PASSPHRASE_VARIABLE, ""
    )
    if value:
        return value
    if not sys.stdin.isatty():
        raise fail(
            f"no passphrase: give --passphrase-file or set {PASSPHRASE_VARIABLE} "
            "(or run in a terminal to be asked)",
            Exit.USAGE,
        )
    value = typer.prompt("Backup passphrase", hide_input=True, confirmation_prompt=confirm)
    if len(value) < 8 and confirm:
        raise fail("the passphrase must have at least 8 characters", Exit.USAGE)
    return str(value)


@contextmanager
def _bar(enabled: bool) -> Iterator[object]:
    if not enabled:
        yield lambda what, done, total: None
        return
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=err,
    ) as bar:

        def tick(what: str, done: int, total: int | None) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        yield tick


def backup(
    file: Annotated[Path, typer.Argument(help="Archive to write (encrypted).")],
    passphrase_file: PassphraseFileOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Back up the database, uploads and keys into one encrypted archive, while elshi runs.

    SQLite is copied through its online backup API, PostgreSQL with pg_dump: either way one
    consistent snapshot, without stopping the web server or the workers."""
    from elshi.backup import BackupError
    from elshi.backup import backup as run_backup

    settings = get_settings()
    passphrase = _passphrase(passphrase_file, confirm=True)
    try:
        with _bar(not quiet) as tick:
            report = run_backup(settings, file, passphrase, progress=tick, force=force)  # type: ignore[arg-type]
    except BackupError as exc:
        raise fail(str(exc)) from None
    rows = sum(report.tables.values())
    console.print(
        f"wrote {file}: {report.database} database ({rows:,} rows in {len(report.tables)} "
        f"tables), {report.files} files, keys; {report.bytes:,} bytes",
        highlight=False,
    )


def restore(
    file: Annotated[Path, typer.Argument(help="Archive written by `elshi backup`.")],
    passphrase_file: PassphraseFileOpt = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace a target database and uploads that hold data."),
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Restore a backup into this elshi's database, uploads folder and key files.

    The whole archive is read and checked before anything changes. Stop the web server and
    workers first. A target that holds data is refused unless --force is given."""
    from elshi.backup import BackupError, NotEmpty
    from elshi.backup import restore as run_restore

    settings = get_settings()
    passphrase = _passphrase(passphrase_file, confirm=False)
    try:
        with _bar(not quiet) as tick:
            report = run_restore(settings, file, passphrase, force=force, progress=tick)  # type: ignore[arg-type]
    except NotEmpty as exc:
        raise fail(str(exc), Exit.USAGE) from None
    except BackupError as exc:
        raise fail(str(exc)) from None
    rows = sum(report.tables.values())
    console.print(
        f"restored {file}: {report.database} database ({rows:,} rows), {report.files} files",
        highlight=False,
    )
    for path in report.keys:
        console.print(f"wrote key file {path} (mode 600)", highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)
