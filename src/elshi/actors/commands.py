"""`elshi actors`: import lists of accounts with their types, assess every account (types by
rule, inauthenticity signals), and list what was found."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from elshi.cli.common import Exit, JsonOpt, console, database, err, fail, get_settings, progress_bar

app = typer.Typer(
    help="Who speaks: account types by list, label and name; inauthenticity signals.",
    no_args_is_help=True,
)

#: Bad lines printed by `import` (all of them are counted).
SHOWN_ERRORS = 50


@app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV (comma, semicolon or tab) or JSON list of accounts.", dir_okay=False
        ),
    ],
    name: Annotated[str, typer.Option(help="Name of the list (default: the file's name).")] = "",
    platform: Annotated[
        str, typer.Option(help="Platform of every account when the file has no platform column.")
    ] = "",
    actor_type: Annotated[
        str, typer.Option("--type", help="Type of every account when the file has no type column.")
    ] = "",
    country: Annotated[
        str, typer.Option(help="Two-letter country when the file has no country column.")
    ] = "",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Import a list of accounts (platform, handle, type, country; e.g. a ministry's list of
    state-affiliated media). Good lines are stored, each bad line is reported with where it
    is and what is wrong (exit 3). The types reach the accounts at `elshi actors assess`."""
    from elshi.accounts.service import Principal
    from elshi.actors import service
    from elshi.actors.lists import ListError
    from elshi.errors import Invalid

    try:
        data = file.read_bytes()
    except OSError as exc:
        raise fail(f"{file}: {exc.strerror or exc}", Exit.USAGE) from None
    db = database(get_settings())
    defaults = {"platform": platform, "actor_type": actor_type, "country": country}
    with db.session() as s:
        try:
            with progress_bar("lines", progress and not as_json) as tick:
                done = service.import_list(
                    s,
                    principal=Principal.system(),
                    data=data,
                    filename=file.name,
                    name=name,
                    defaults=defaults,
                    progress=tick,
                )
        except ListError as exc:
            raise fail(f"{file}: {exc}", Exit.USAGE) from None
        except Invalid as exc:
            raise fail(f"{file}: {exc}", Exit.USAGE) from None
        s.commit()
    r = done.reading
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "list_id": done.list_id,
                    "stored": len(r.entries),
                    "bad": r.bad,
                    "errors": [{"where": w, "what": m} for w, m in r.errors],
                    "columns": done.columns,
                }
            )
        )
    else:
        console.print(
            f"list {done.list_id or '-'}: {len(r.entries):,} accounts stored, {r.bad:,} bad lines "
            f"(columns: {', '.join(done.columns)})",
            markup=False,
            highlight=False,
        )
        for where, what in r.errors[:SHOWN_ERRORS]:
            err.print(
                f"{file.name}, {where}: {what}", markup=False, highlight=False, soft_wrap=True
            )
        if r.bad > SHOWN_ERRORS:
            err.print(f"... and {r.bad - SHOWN_ERRORS:,} more bad lines")
    if not r.entries:
        raise typer.Exit(int(Exit.FAILED))
    raise typer.Exit(int(Exit.QUARANTINED if r.bad else Exit.OK))


@app.command("lists")
def lists_(as_json: JsonOpt = False) -> None:
    """List the imported lists, newest first."""
    from rich.table import Table

    from elshi.actors import service

    db = database(get_settings())
    with db.session() as s:
        found: list[dict[str, Any]] = [
            {
                "id": r.id,
                "name": r.name,
                "file": r.filename,
                "entries": r.entries,
                "imported_at": r.imported_at.isoformat(),
            }
            for r in service.lists(s)
        ]
    if as_json:
        console.print_json(json.dumps(found))
        raise typer.Exit(int(Exit.OK))
    table = Table("id", "name", "file", "entries", "imported")
    for r in found:
        table.add_row(
            str(r["id"]), r["name"], r["file"], f"{r['entries']:,}", r["imported_at"][:16]
        )
    console.print(table)
    raise typer.Exit(int(Exit.OK))


@app.command("remove-list")
def remove_list(list_id: Annotated[int, typer.Argument(help="The list's id.")]) -> None:
    """Remove an imported list; the types it gave go at the next assessment."""
    from elshi.accounts.service import Principal
    from elshi.actors import service
    from elshi.errors import NotFound

    db = database(get_settings())
    with db.session() as s:
        try:
            row = service.delete_list(s, principal=Principal.system(), list_id=list_id)
        except NotFound:
            raise fail(f"no list {list_id}", Exit.NOT_FOUND) from None
        s.commit()
    console.print(f"removed list {list_id} ({row.name})")
    raise typer.Exit(int(Exit.OK))


@app.command("assess")
def assess(
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Give every account its type by rule (lists, platform labels, names; a type set by hand
    is kept) and compute its inauthenticity signals with their evidence."""
    from elshi.actors import service

    db = database(get_settings())
    with db.session() as s, progress_bar("accounts", progress and not as_json) as tick:
        report = service.assess(s, progress=tick)
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
    else:
        rules = ", ".join(f"{k} {n:,}" for k, n in sorted(report.by_rule.items())) or "none"
        console.print(
            f"accounts {report.accounts:,} (posts {report.posts:,}); typed by rule "
            f"{report.typed:,} ({rules}); hand-set kept {report.kept:,}; "
            f"with a signal {report.flagged:,}; score 0.5 or more {report.high:,}"
        )
    raise typer.Exit(int(Exit.OK))


@app.command("top")
def top(
    limit: Annotated[int, typer.Option(help="How many to show.", min=1, max=10_000)] = 30,
    as_json: JsonOpt = False,
) -> None:
    """List the accounts with the highest signal scores, with the signals that fired."""
    from rich.table import Table

    from elshi.actors import service

    db = database(get_settings())
    with db.session() as s:
        rows: list[dict[str, Any]] = [
            {
                "author_id": a.id,
                "platform": a.platform,
                "handle": a.handle,
                "type": a.actor_type,
                "score": x.score,
                "fired": [g["key"] for g in x.signals if g["fired"]],
                "signals": x.signals,
            }
            for a, x in service.flagged_accounts(s, mission_ids=None, limit=limit)
        ]
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        raise typer.Exit(int(Exit.OK))
    table = Table("author", "platform", "handle", "type", "score", "signals")
    for r in rows:
        table.add_row(
            str(r["author_id"]),
            r["platform"],
            r["handle"],
            r["type"] or "",
            f"{r['score']:.2f}",
            ", ".join(r["fired"]),
        )
    console.print(table)
    raise typer.Exit(int(Exit.OK))
