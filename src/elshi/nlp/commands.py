"""`elshi enrich`: run enrichers over stored posts with a progress bar."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer


def enrich(
    enricher: Annotated[
        list[str] | None,
        typer.Option(
            "--enricher", "-e", help="Enricher slug (repeatable); all registered if omitted."
        ),
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only posts collected at or after this time (ISO).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Re-run even where the current version has run.")
    ] = False,
    batch: Annotated[int, typer.Option(help="Posts per batch.", min=1, max=20000)] = 500,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Annotate stored posts; a newer enricher version re-runs over what an older one did."""
    from elshi.cli import Exit, _database, _fail, _progress, console, get_settings
    from elshi.nlp.pipeline import enrich_posts, ordered

    settings = get_settings()
    try:
        ordered(enricher)
    except (KeyError, ValueError) as exc:
        raise _fail(str(exc.args[0]), Exit.USAGE) from None
    db = _database(settings)
    with _progress("enrich", progress) as tick:
        counts = enrich_posts(
            db, slugs=enricher, since=since, force=force, batch_size=batch, progress=tick
        )
    per = ", ".join(f"{k} {v:,}" for k, v in counts["by_enricher"].items()) or "nothing to do"
    console.print(f"posts {counts['posts']:,}; annotations: {per}; errors {counts['errors']:,}")
    raise typer.Exit(int(Exit.OK))
