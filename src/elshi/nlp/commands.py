"""`elshi enrich`: run enrichers over stored posts with a progress bar."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
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


def eval_command(
    task: Annotated[str, typer.Argument(help="language, sentiment, stance or entities.")],
    path: Annotated[Path, typer.Argument(help="Labelled file: KazSAnDRA, RuSentNE, IOB2 or CSV.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print accuracy, macro-F1 and a confusion table per language for a labelled file."""
    from rich.table import Table

    from elshi.cli import Exit, _fail, console, err
    from elshi.nlp.evaluate import EvalError, evaluate_file, iter_rows

    if task == "entities":
        _eval_entities(path, as_json)
        return
    try:
        results, loaded = evaluate_file(task, path)
    except EvalError as exc:
        raise _fail(str(exc), Exit.USAGE) from None
    if as_json:
        console.print_json(
            json.dumps({"format": loaded.fmt, "results": results, "skipped": len(loaded.skipped)})
        )
        raise typer.Exit(int(Exit.OK))
    summary = Table(
        "language",
        "n",
        "accuracy",
        "macro-F1",
        "macro-F1 pos/neg",
        title=f"{task}: {path.name} ({loaded.fmt})",
    )
    for group, rep in iter_rows(results):
        pn = rep.get("macro_f1_pos_neg")
        summary.add_row(
            group,
            f"{rep['n']:,}",
            f"{rep['accuracy']:.4f}",
            f"{rep['macro_f1']:.4f}",
            "-" if pn is None else f"{pn:.4f}",
        )
    console.print(summary)
    for group, rep in iter_rows(results):
        if task == "language" and group != "all":
            continue  # per-language groups of a language file are rows of the same table
        labels = sorted(
            set(rep["confusion"]) | {p for row in rep["confusion"].values() for p in row}
        )
        table = Table("gold \\ predicted", *labels, title=f"confusion: {group}")
        for gold, row in rep["confusion"].items():
            table.add_row(gold, *(str(row.get(lab, 0)) for lab in labels))
        console.print(table)
    for where, reason in loaded.skipped[:10]:
        err.print(f"skipped {where}: {reason}", highlight=False, markup=False)
    if loaded.skipped:
        err.print(f"{len(loaded.skipped):,} rows skipped", highlight=False)
    raise typer.Exit(int(Exit.OK))


def _eval_entities(path: Path, as_json: bool) -> None:
    """Print entity precision, recall and F1 (exact span and type) for an IOB2 file."""
    from rich.table import Table

    from elshi.cli import Exit, _fail, console, err
    from elshi.nlp.entities import evaluate_iob
    from elshi.nlp.evaluate import EvalError

    try:
        rep = evaluate_iob(path)
    except EvalError as exc:
        raise _fail(str(exc), Exit.USAGE) from None
    if as_json:
        console.print_json(json.dumps(rep, default=str))
        raise typer.Exit(int(Exit.OK))
    for title, overall, per in (
        ("entities (all types)", rep["overall"], rep["per_type"]),
        ("entities (coarse types)", rep["coarse"]["overall"], rep["coarse"]["per_type"]),
    ):
        table = Table("type", "precision", "recall", "F1", "support", title=f"{title}: {path.name}")
        table.add_row(
            "all",
            *(f"{overall[k]:.4f}" for k in ("precision", "recall", "f1")),
            f"{overall['support']:,}",
        )
        for kind, row in sorted(per.items()):
            table.add_row(
                kind,
                *(f"{row[k]:.4f}" for k in ("precision", "recall", "f1")),
                f"{row['support']:,}",
            )
        console.print(table)
    console.print(f"{rep['n_sentences']:,} sentences, {rep['n_tokens']:,} tokens (Kazakh, IOB2)")
    for where, reason in rep["skipped"][:10]:
        err.print(f"skipped {where}: {reason}", highlight=False, markup=False)
    raise typer.Exit(int(Exit.OK))
