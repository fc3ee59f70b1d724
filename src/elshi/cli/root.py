"""The `elshi` command: the root app, every command and group in the order `elshi --help`
lists them, and the entry point.

Exit codes: 0 success; 1 failure; 2 bad usage or bad setting; 3 finished but some records
were quarantined; 4 not found; 5 disk full (see `Exit` in elshi.cli.common).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from elshi import __version__
from elshi.actors import commands as actors_commands
from elshi.cli import accounts, keys, listen, ops, serve
from elshi.cli.common import ConfigOpt, State, console, get_settings, set_up_logging
from elshi.consulate import commands as consulate_commands
from elshi.coordination import commands as coordination_commands
from elshi.crisis import commands as crisis_commands
from elshi.nlp import commands as nlp_commands
from elshi.speak import commands as speak_commands

app = typer.Typer(
    name="elshi",
    help="elshi: digital diplomacy for a ministry and its missions. Listen, speak, serve, analyse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main_callback(
    config: ConfigOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    """elshi command line."""
    State.config = config
    set_up_logging(verbose=verbose)


@app.command()
def version() -> None:
    """Print elshi's version."""
    console.print(__version__)


@app.command()
def migrate() -> None:
    """Apply database migrations (also done on every start)."""
    from elshi.db import Database
    from elshi.migrate import migrate as run_migrations

    settings = get_settings()
    db = Database(settings)
    rev = run_migrations(db.engine)
    console.print(f"database at revision {rev}")


@app.command()
def plugins() -> None:
    """List registered plugins and the connectors, channels and scanners they provide."""
    from elshi.plugins import channels, connectors, plugin_names, virus_scanners

    table = Table("connector", "title", "platform", "pollable", "target", title="connectors")
    for slug, cls in connectors().items():
        table.add_row(
            slug, cls.title, cls.platform, "yes" if cls.pollable else "no", cls.target_field
        )
    console.print(table)
    scanners = Table("virus scanner", "title", title="virus scanners")
    for slug, scanner in virus_scanners().items():
        scanners.add_row(slug, scanner.title)
    console.print(scanners)
    table = Table("channel", "title", "retry-safe", "edit", "delete", title="channels")
    for slug, ch in channels().items():
        table.add_row(
            slug,
            ch.title,
            "yes" if ch.retry_safe else "no",
            "yes" if ch.can_edit else "no",
            "yes" if ch.can_delete else "no",
        )
    console.print(table)
    console.print("plugins: " + ", ".join(plugin_names()))


# ---------------------------------------------------------------------------- the table of contents
# Commands first, then groups, each in the order `elshi --help` lists them.

app.command()(listen.ingest)
app.command()(listen.runs)
app.command(name="enrich")(nlp_commands.enrich)
app.command(name="eval")(nlp_commands.eval_command)
app.command()(listen.search)
app.command()(listen.digest)
app.command()(serve.serve)
app.command()(serve.web)
app.command()(serve.worker)
app.command()(serve.demo)
app.command()(ops.backup)
app.command()(ops.restore)

app.add_typer(listen.reprocess_app, name="reprocess")
app.add_typer(listen.sources_app, name="sources")
app.add_typer(listen.quarantine_app, name="quarantine")
app.add_typer(accounts.users_app, name="users")
app.add_typer(accounts.missions_app, name="missions")
app.add_typer(consulate_commands.app, name="consulate")
app.add_typer(crisis_commands.app, name="crisis")
app.add_typer(listen.watch_app, name="watch")
app.add_typer(speak_commands.channels_app, name="channels")
app.add_typer(speak_commands.statements_app, name="statements")
app.add_typer(nlp_commands.narratives_app, name="narratives")
app.add_typer(nlp_commands.train_app, name="train")
app.add_typer(coordination_commands.app, name="coordination")
app.add_typer(actors_commands.app, name="actors")
app.add_typer(keys.keys_app, name="keys")


def main() -> None:
    """Entry point for the `elshi` script."""
    from elshi.settings import hide_secrets

    # The secret keys leave the environment before anything else runs (see hide_secrets).
    hide_secrets(reexec=True)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        from elshi.cli.common import Exit, err
        from elshi.db import disk_full

        full = disk_full(exc, State.db)
        if full is None:
            raise
        err.print(f"[red]error:[/red] {full}", highlight=False, soft_wrap=True)
        sys.exit(int(Exit.DISK_FULL))
