"""`elshi enrich`: run enrichers over stored posts with a progress bar."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from elshi.cli.common import Exit, JsonOpt, console, database, err, fail, get_settings, progress_bar


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
    from elshi.nlp.pipeline import enrich_posts, ordered

    settings = get_settings()
    try:
        ordered(enricher)
    except (KeyError, ValueError) as exc:
        raise fail(str(exc.args[0]), Exit.USAGE) from None
    db = database(settings)
    with progress_bar("enrich", progress) as tick:
        counts = enrich_posts(
            db, slugs=enricher, since=since, force=force, batch_size=batch, progress=tick
        )
    per = ", ".join(f"{k} {v:,}" for k, v in counts["by_enricher"].items()) or "nothing to do"
    console.print(f"posts {counts['posts']:,}; annotations: {per}; errors {counts['errors']:,}")
    raise typer.Exit(int(Exit.OK))


def eval_command(
    task: Annotated[str, typer.Argument(help="language, sentiment, stance or entities.")],
    path: Annotated[Path, typer.Argument(help="Labelled file: KazSAnDRA, RuSentNE, IOB2 or CSV.")],
    as_json: JsonOpt = False,
) -> None:
    """Print accuracy, macro-F1 and a confusion table per language for a labelled file."""
    from rich.table import Table

    from elshi.nlp.evaluate import EvalError, evaluate_file, iter_rows

    if task == "entities":
        _eval_entities(path, as_json)
        return
    from elshi.nlp.sentiment import local_models_dir

    models = local_models_dir(get_settings().home) if task == "sentiment" else None
    try:
        results, loaded = evaluate_file(task, path, models)
    except EvalError as exc:
        raise fail(str(exc), Exit.USAGE) from None
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

    from elshi.nlp.entities import evaluate_iob
    from elshi.nlp.evaluate import EvalError

    try:
        rep = evaluate_iob(path)
    except EvalError as exc:
        raise fail(str(exc), Exit.USAGE) from None
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


narratives_app = typer.Typer(
    help="Stories across languages: list, show, rebuild.", no_args_is_help=True
)


@narratives_app.command("list")
def narratives_list(
    emerging: Annotated[
        bool, typer.Option(help="Only narratives that are new or growing in the window.")
    ] = False,
    hours: Annotated[int, typer.Option(help="Window in hours.", min=1, max=720)] = 24,
    now: Annotated[
        datetime | None, typer.Option(help="End of the window (ISO); default now.")
    ] = None,
    lang: Annotated[str | None, typer.Option(help="Only narratives with this language.")] = None,
    limit: Annotated[int, typer.Option(help="How many to show.", min=1, max=10_000)] = 30,
    as_json: JsonOpt = False,
) -> None:
    """List narratives with their languages, key terms and activity, most recent first."""
    from datetime import timedelta

    from rich.table import Table

    from elshi.nlp import service
    from elshi.nlp.schemas import NarrativeOut, TrendOut

    db = database(get_settings())
    with db.session() as s:
        found = service.list_narratives(
            db=s,
            mission_ids=None,
            emerging=emerging,
            now=now,
            window=timedelta(hours=hours),
            lang=lang,
            limit=limit,
        )
        items = [
            NarrativeOut.model_validate(r).model_copy(
                update={"emerging": None if t is None else TrendOut.model_validate(t)}
            )
            for r, t in found
        ]
        info = service.state_info(db=s)
    if as_json:
        console.print_json(json.dumps([i.model_dump(mode="json") for i in items]))
        raise typer.Exit(int(Exit.OK))
    table = Table("id", "posts", "languages", "first seen", "last seen", "trend", "key terms")
    for i in items:
        trend = "" if i.emerging is None else f"{i.emerging.reason} x{i.emerging.ratio:g}"
        table.add_row(
            str(i.id),
            f"{i.count:,}",
            " ".join(f"{k}:{v}" for k, v in i.langs.items()),
            f"{i.first_seen:%Y-%m-%d %H:%M}" if i.first_seen else "-",
            f"{i.last_seen:%Y-%m-%d %H:%M}" if i.last_seen else "-",
            trend,
            ", ".join(i.terms[:8]),
        )
    console.print(table)
    if info is None:
        console.print("no narratives yet: run `elshi enrich --enricher narratives`")
    else:
        console.print(f"backend {info['backend']}; {info['posts']:,} posts assigned")
    raise typer.Exit(int(Exit.OK))


@narratives_app.command("show")
def narratives_show(
    narrative_id: Annotated[int, typer.Argument(help="Narrative id (see `narratives list`).")],
    posts: Annotated[int, typer.Option(help="Member posts to show.", min=0, max=1000)] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Show a narrative: languages, key terms per language, first/last seen and member posts."""
    from elshi.listen.schemas import PostOut
    from elshi.nlp import service
    from elshi.nlp.schemas import NarrativeDetail, NarrativeOut

    db = database(get_settings())
    with db.session() as s:
        row = service.get_narrative(db=s, narrative_id=narrative_id, mission_ids=None)
        if row is None:
            raise fail(f"no narrative with id {narrative_id}", Exit.NOT_FOUND)
        total, members = service.member_posts(
            db=s, narrative_id=row.id, mission_ids=None, limit=posts
        )
        detail = NarrativeDetail(
            **NarrativeOut.model_validate(row).model_dump(),
            posts_total=total,
            posts=[PostOut.model_validate(p) for p in members],
        )
    if as_json:
        console.print_json(detail.model_dump_json())
        raise typer.Exit(int(Exit.OK))
    if row.id != narrative_id:
        console.print(f"narrative {narrative_id} was merged into {row.id}")
    console.print(f"[bold]narrative {detail.id}[/bold]: {detail.count:,} posts", highlight=False)
    console.print(
        "languages: " + ", ".join(f"{k} {v:,}" for k, v in detail.langs.items()), highlight=False
    )
    console.print(f"first seen {detail.first_seen}, last seen {detail.last_seen}", highlight=False)
    for lang, terms in detail.terms_by_lang.items():
        console.print(f"  {lang}: {', '.join(terms)}", highlight=False, markup=False)
    for p in detail.posts:
        text = " ".join(p.text.split())[:120]
        console.print(f"- #{p.id} [{p.lang or '?'}] {text}", highlight=False, markup=False)
    raise typer.Exit(int(Exit.OK))


@narratives_app.command("rebuild")
def narratives_rebuild(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    batch: Annotated[int, typer.Option(help="Posts per batch.", min=1, max=20000)] = 500,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Forget every narrative and group all stored posts again (after changing the model)."""
    from elshi.nlp import service
    from elshi.nlp.pipeline import enrich_posts

    settings = get_settings()
    if not yes and not typer.confirm("Forget every narrative and assign all posts again?"):
        raise typer.Exit(int(Exit.USAGE))
    db = database(settings)
    with db.session() as s:
        service.reset(db=s)
    with progress_bar("narratives", progress) as tick:
        counts = enrich_posts(db, slugs=["narratives"], batch_size=batch, progress=tick)
    with db.session() as s:
        live = len(service.list_narratives(db=s, mission_ids=None, limit=1_000_000))
    console.print(
        f"posts {counts['posts']:,}; assigned {counts['by_enricher'].get('narratives', 0):,}; "
        f"narratives {live:,}; errors {counts['errors']:,}"
    )
    raise typer.Exit(int(Exit.OK))


train_app = typer.Typer(
    help="Train models of your own from labelled files (needs the `train` extra).",
    no_args_is_help=True,
)


@train_app.command("sentiment")
def train_sentiment_command(
    path: Annotated[
        Path,
        typer.Argument(help="UTF-8 CSV with columns text and label (negative/neutral/positive)."),
    ],
    lang: Annotated[str, typer.Option("--lang", help="Language of the texts, e.g. zh.")],
    valid: Annotated[
        Path | None, typer.Option(help="Labelled CSV held apart: its scores are printed.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a sentence sentiment model for a language into the data home's models folder.

    Posts in that language are then scored by it, in place of the shipped model if there
    is one. Chinese has no shipped model: this is how to get Chinese sentiment."""
    from elshi.nlp.sentiment import TRAINABLE, language_key, local_models_dir

    settings = get_settings()
    code = language_key(lang)
    if code not in TRAINABLE:
        raise fail(f"--lang {lang!r}: choose one of {', '.join(TRAINABLE)}", Exit.USAGE)
    try:
        from elshi.nlp import sentiment_train as st
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise fail(f"training needs scikit-learn (install the `train` extra): {exc}") from None
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise fail("training needs scikit-learn: install elshi with the `train` extra") from None
    try:
        train = st.read_labelled_csv(path)
        held = st.read_labelled_csv(valid) if valid is not None else []
    except st.DataError as exc:
        raise fail(str(exc), Exit.USAGE) from None
    if not train:
        raise fail(f"{path}: no labelled rows", Exit.USAGE)
    folder = local_models_dir(settings.home)
    with progress_bar(f"train sentiment-{code}", progress) as tick:
        try:
            model = st.train_language(code, train, data=path.name)
        except st.DataError as exc:
            raise fail(f"{path}: {exc}", Exit.USAGE) from None
        tick(len(train))
        found = st.scores(model, held) if held else {}
        if found:
            model.meta["validation"] = found
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"sentiment-{code}.npz"
        partial = folder / f".sentiment-{code}.partial.npz"
        model.save(partial)
        partial.replace(target)
    console.print(
        f"sentiment-{code}: {len(train):,} texts, classes {', '.join(model.classes)}, "
        f"{model.n_features:,} features, saved to {target}"
    )
    if found:
        console.print(
            f"held-out {valid.name if valid else ''} (n={int(found['n']):,}): "
            f"macro-F1 {found['macro_f1']:.4f}, macro-recall {found['macro_recall']:.4f}, "
            f"F1 pos/neg {found['pos_neg_f1']:.4f}, accuracy {found['accuracy']:.4f}"
        )
    raise typer.Exit(int(Exit.OK))
