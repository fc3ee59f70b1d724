"""`elshi coordination`: find accounts that act together, and list the groups."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from elshi.cli.common import Exit, JsonOpt, console, database, fail, get_settings, progress_bar
from elshi.coordination.keys import KINDS

app = typer.Typer(
    help="Coordinated accounts: co-reposts, co-links, co-hashtags, co-texts, co-replies.",
    no_args_is_help=True,
)


@app.command("run")
def run(
    full: Annotated[
        bool, typer.Option(help="Recompute from every stored post, not only the new ones.")
    ] = False,
    window: Annotated[
        float | None, typer.Option(help="Seconds within which posts co-act (default 60).")
    ] = None,
    narrow: Annotated[
        float | None, typer.Option(help="Narrower window for the speed share (default 10).")
    ] = None,
    min_weight: Annotated[
        int | None, typer.Option(help="Co-acting posts an edge needs (default 2).")
    ] = None,
    percentile: Annotated[
        float | None,
        typer.Option(help="Keep edges at or above this weight quantile, 0..1 (default 0)."),
    ] = None,
    min_participation: Annotated[
        int | None,
        typer.Option(help="Co-acting posts an account needs to count (default 2)."),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind", help=f"Kind groups are drawn from (repeatable): {', '.join(KINDS)}."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Pair the posts stored since the last run (all with --full) and draw the groups.

    Options not given keep the values of the last run."""
    from elshi.alerts.flows import evaluate_coordination
    from elshi.coordination import service
    from elshi.errors import Invalid

    settings = get_settings()
    db = database(settings)
    try:
        params = service.stored_params(
            db,
            window=window,
            narrow=narrow,
            min_weight=min_weight,
            percentile=percentile,
            min_participation=min_participation,
            kinds=tuple(kind) if kind else None,
        )
    except Invalid as exc:
        raise fail(str(exc), Exit.USAGE) from None
    with progress_bar("coordination", progress and not as_json) as tick:
        report = service.update(db, params=params, full=full, progress=tick)
    alerts = evaluate_coordination(db, settings=settings)
    if as_json:
        console.print_json(json.dumps(report.as_dict() | {"alerts": alerts}))
    else:
        found = ", ".join(f"{k} {n:,}" for k, n in report.co_actions.items()) or "none"
        console.print(
            f"{'full' if report.full else 'incremental'}: posts {report.posts:,}; "
            f"co-actions: {found}; edges {report.edges:,}; groups {report.groups:,}; "
            f"alerts {alerts:,}"
        )
    raise typer.Exit(int(Exit.OK))


@app.command("groups")
def groups_list(
    limit: Annotated[int, typer.Option(help="How many to show.", min=1, max=10_000)] = 30,
    as_json: JsonOpt = False,
) -> None:
    """List the groups of coordinated accounts, largest first."""
    from rich.table import Table

    from elshi.coordination import service

    db = database(get_settings())
    with db.engine.connect() as conn:
        found = service.groups(conn)[:limit]
    if as_json:
        console.print_json(json.dumps(found, default=str))
        raise typer.Exit(int(Exit.OK))
    table = Table(
        "id", "size", "weight", "symmetry", "speed", "platforms", "kinds", "first", "last"
    )
    for g in found:
        table.add_row(
            str(g["id"]),
            str(g["size"]),
            str(g["weight"]),
            f"{g['symmetry']:.2f}",
            f"{g['speed_share']:.2f}",
            ", ".join(g["platforms"]),
            ", ".join(f"{k} {n}" for k, n in g["kinds"].items()),
            str(g["first_at"] or "")[:10],
            str(g["last_at"] or "")[:10],
        )
    console.print(table)
    raise typer.Exit(int(Exit.OK))
