"""Listening from the command line: ingest, reprocess, sources, quarantine, search, watch,
digest."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from elshi.cli.common import (
    Exit,
    JsonOpt,
    connector_config,
    console,
    database,
    disk_full_stops,
    err,
    fail,
    format_when,
    get_settings,
    progress_bar,
    queue_enrichment,
    refused,
    show_rows,
)

sources_app = typer.Typer(
    help="Sources a mission follows: add, list, run, remove.", no_args_is_help=True
)
quarantine_app = typer.Typer(help="Records that could not be stored.", no_args_is_help=True)
watch_app = typer.Typer(help="Watch lists: match new posts, update rollups, check alerts.")


def _print_report(report: Any) -> Exit:
    table = Table("read", "stored", "duplicates", "near-duplicates", "skipped", "quarantined")
    table.add_row(
        *(
            f"{getattr(report, k):,}"
            for k in ("read", "stored", "duplicates", "near_duplicates", "skipped", "quarantined")
        )
    )
    console.print(table)
    if report.quarantined:
        for reason, n in sorted(report.reasons.items(), key=lambda kv: -kv[1])[:10]:
            err.print(f"  quarantined {n:,}: {reason}", highlight=False)
        err.print("see: elshi quarantine list", highlight=False)
        return Exit.QUARANTINED
    return Exit.OK


OptionOpt = Annotated[
    list[str] | None,
    typer.Option("--option", "-o", help="Connector setting KEY=VALUE (repeatable)."),
]


def ingest(
    connector: Annotated[str, typer.Argument(help="Connector slug (see `elshi plugins`).")],
    target: Annotated[str, typer.Argument(help="File, URL, channel or account to read.")],
    option: OptionOpt = None,
    profile: Annotated[str | None, typer.Option(help="Column-mapping profile (tabular).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Import once from a file or URL; prints a summary; exit 3 if anything was quarantined."""
    from pydantic import ValidationError

    from elshi.connectors.base import EmptyFile, FetchContext
    from elshi.db import DiskFull
    from elshi.listen.flows import import_with
    from elshi.nlp.jobs import newest_post_id

    settings = get_settings()
    plugin, config = connector_config(connector, target, option)
    if profile:
        config["profile"] = profile
    db = database(settings)
    ctx = FetchContext(settings=settings)
    try:
        with progress_bar(f"{connector} {Path(target).name or target}", progress) as tick:
            before = newest_post_id(db)
            report = import_with(db, connector=plugin, config=config, ctx=ctx, progress=tick)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise fail(f"bad {connector} settings: {problems}", Exit.USAGE) from None
    except DiskFull as exc:
        raise fail(f"{connector} {target}: {exc}", Exit.DISK_FULL) from None
    except EmptyFile as exc:
        raise fail(str(exc)) from None  # the same words whatever the connector
    except Exception as exc:
        raise fail(f"{connector} {target}: {exc}") from None
    finally:
        ctx.close()
    if report.stored:
        queue_enrichment(settings, db, before)
    raise typer.Exit(int(_print_report(report)))


reprocess_app = typer.Typer()


@reprocess_app.callback(invoke_without_command=True)
def reprocess(
    ctx: typer.Context,
    source: Annotated[int | None, typer.Option(help="Only posts of this source.")] = None,
    connector: Annotated[
        str | None, typer.Option(help="Only posts stored by this connector.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Re-run connectors' mappings over the raw payloads kept with stored posts.

    `elshi reprocess near-duplicates` decides the near duplicates of every stored post again.
    """
    if ctx.invoked_subcommand is not None:
        return
    from elshi.listen.reprocess import reprocess_posts

    settings = get_settings()
    db = database(settings)
    with disk_full_stops(db), progress_bar("reprocess", progress) as tick:
        counts = reprocess_posts(db, source_id=source, connector=connector, progress=tick)
    console.print(
        f"checked {counts['checked']:,}, updated {counts['updated']:,}, failed {counts['failed']:,}"
    )
    raise typer.Exit(int(Exit.QUARANTINED if counts["failed"] else Exit.OK))


@reprocess_app.command("near-duplicates")
def reprocess_near_duplicates(
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Decide near duplicates for every stored post (repairs a database after killed imports).

    Points each post at the first post with the same normalised text, whichever import
    stored it. Safe to run again: it changes nothing the second time.
    """
    from elshi.listen.flows import mark_near_duplicates

    settings = get_settings()
    db = database(settings)
    with disk_full_stops(db), progress_bar("near-duplicates", progress) as tick:
        marked = mark_near_duplicates(db, everything=True, progress=tick)
    console.print(f"marked {marked:,} near duplicates")


def runs(
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    status: Annotated[
        str | None,
        typer.Option(help="Only runs with this status: running, ok, failed, interrupted."),
    ] = None,
) -> None:
    """List recent imports and polls with their counts; a dead process's run is interrupted."""
    from elshi.listen.runs import STATUSES, list_runs

    if status is not None and status not in STATUSES:
        raise fail(f"--status must be one of: {', '.join(STATUSES)}", Exit.USAGE)
    settings = get_settings()
    db = database(settings)
    table = Table(
        "id", "connector", "origin", "started", "status", "read", "stored", "near-dups", "error"
    )
    for run in list_runs(db, limit=limit, status=status):
        table.add_row(
            str(run.id),
            run.connector,
            run.origin if len(run.origin) <= 40 else "..." + run.origin[-37:],
            format_when(run.started_at),
            run.status,
            f"{run.read:,}",
            f"{run.stored:,}",
            f"{run.near_duplicates:,}",
            (run.error or "")[:60],
        )
    console.print(table)


# ---------------------------------------------------------------------------- sources


@sources_app.command("add")
def sources_add(
    connector: Annotated[str, typer.Argument(help="Connector slug (see `elshi plugins`).")],
    target: Annotated[str, typer.Argument(help="URL, channel, account, tag or file.")],
    every: Annotated[str | None, typer.Option(help="Poll interval, e.g. 15m, 2h, 1d.")] = None,
    name: Annotated[str | None, typer.Option(help="A name to show instead of the target.")] = None,
    option: OptionOpt = None,
) -> None:
    """Add a source; with --every it is polled on a schedule."""
    from elshi.listen import service

    settings = get_settings()
    _, config = connector_config(connector, target, option)
    minutes = None
    if every:
        try:
            minutes = max(1, int(service.parse_duration(every).total_seconds() // 60))
        except ValueError as exc:
            raise fail(f"--every: {exc}", Exit.USAGE) from None
    db = database(settings)
    with db.session() as s:
        with refused(service.InvalidSource):
            src = service.add_source(
                db=s, connector=connector, config=config, name=name, every_minutes=minutes
            )
        console.print(f"added source {src.id}: {src.connector} {src.name}")


@sources_app.command("list")
def sources_list(
    as_json: JsonOpt = False,
) -> None:
    """List sources with their schedule and health."""
    from elshi.listen import service
    from elshi.listen.schemas import SourceOut

    db = database(get_settings())
    with db.session() as s:
        rows = [SourceOut.model_validate(x) for x in service.list_sources(db=s)]
    show_rows(
        rows,
        as_json,
        ("id", "connector", "name", "every", "health", "last success", "last error"),
        lambda r: (
            str(r.id),
            r.connector,
            r.name,
            f"{r.every_minutes}m" if r.every_minutes else "-",
            r.health,
            format_when(r.last_success_at),
            (r.last_error or "-")[:60],
        ),
    )


@sources_app.command("run")
def sources_run(
    source_id: Annotated[
        int | None, typer.Argument(help="Source id; all enabled sources if omitted.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Poll a source (or every enabled source) now, in this process."""
    from elshi.connectors.base import FetchContext
    from elshi.listen import flows, service
    from elshi.nlp.jobs import newest_post_id

    settings = get_settings()
    db = database(settings)
    with db.session() as s:
        ids = (
            [source_id]
            if source_id is not None
            else [x.id for x in service.list_sources(db=s) if x.enabled]
        )
    worst = Exit.OK
    ctx = FetchContext(settings=settings)
    try:
        for sid in ids:
            try:
                before = newest_post_id(db)
                with progress_bar(f"source {sid}", progress) as tick:
                    report = flows.run_source(db, source_id=sid, ctx=ctx, progress=tick)
            except flows.SourceNotFound as exc:
                raise fail(str(exc), Exit.NOT_FOUND) from None
            except Exception as exc:
                err.print(f"[red]source {sid} failed:[/red] {exc}", highlight=False)
                worst = Exit.FAILED
                continue
            if report.stored:
                queue_enrichment(settings, db, before)
            code = _print_report(report)
            if worst == Exit.OK:
                worst = code
    finally:
        ctx.close()
    raise typer.Exit(int(worst))


@sources_app.command("remove")
def sources_remove(source_id: Annotated[int, typer.Argument(help="Source id.")]) -> None:
    """Remove a source (its posts stay)."""
    from elshi.listen import service

    db = database(get_settings())
    with db.session() as s:
        if not service.remove_source(db=s, source_id=source_id):
            raise fail(f"no source with id {source_id}", Exit.NOT_FOUND)
    console.print(f"removed source {source_id}")


# ---------------------------------------------------------------------------- quarantine


@quarantine_app.command("list")
def quarantine_list(
    source: Annotated[int | None, typer.Option(help="Only this source.")] = None,
    limit: Annotated[int, typer.Option(help="How many to show.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List quarantined records: source, location, reason."""
    from elshi.listen import service
    from elshi.listen.schemas import QuarantineOut

    db = database(get_settings())
    with db.session() as s:
        rows = [
            QuarantineOut.model_validate(q)
            for q in service.list_quarantine(db=s, source_id=source, limit=limit)
        ]
    show_rows(
        rows,
        as_json,
        ("id", "connector", "origin", "location", "reason"),
        lambda r: (str(r.id), r.connector, r.origin[-50:], r.location, r.reason[:100]),
    )


# ---------------------------------------------------------------------------- search


def search(
    query: Annotated[str, typer.Argument(help="Words to find; inflected kk/ru forms match.")] = "",
    since: Annotated[
        datetime | None, typer.Option(help="Published at or after (ISO date).")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="Published before (ISO date).")] = None,
    source: Annotated[int | None, typer.Option(help="Source id.")] = None,
    platform: Annotated[
        str | None, typer.Option(help="Platform, e.g. rss, telegram, twitter.")
    ] = None,
    lang: Annotated[str | None, typer.Option(help="Language code, e.g. kk, ru, en.")] = None,
    author: Annotated[str | None, typer.Option(help="Author handle.")] = None,
    limit: Annotated[int, typer.Option(help="Results per page.")] = 20,
    offset: Annotated[int, typer.Option(help="Results to skip.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Search stored posts; newest first."""
    from elshi.listen import service
    from elshi.listen.schemas import PostOut

    db = database(get_settings())
    q = service.SearchQuery(
        q=query,
        since=since,
        until=until,
        source_id=source,
        platform=platform,
        lang=lang,
        author=author,
        limit=limit,
        offset=offset,
    )
    with db.session() as s:
        page = service.search_page(db=s, query=q)
        total, posts = page.total, page.items
        items = [PostOut.model_validate(p) for p in posts]
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "total": total,
                    "total_exact": page.exact,
                    "items": [i.model_dump(mode="json") for i in items],
                }
            )
        )
        return
    console.print(f"{total:,}{'' if page.exact else '+'} posts", highlight=False)
    for p in items:
        when = format_when(p.published_at)
        head = f"[{p.platform}] {when} {p.author_handle or ''} ({p.lang or '?'})"
        console.print(head, style="bold", highlight=False, markup=False)
        body = ("  " + (p.title + " — " if p.title else "") + p.text)[:300]
        console.print(body, highlight=False, markup=False)
    raise typer.Exit(int(Exit.OK if total else Exit.NOT_FOUND))


# ---------------------------------------------------------------------------- workspace


@watch_app.command("update")
def watch_update() -> None:
    """Match posts not yet seen by each watch list, update the rollups and check alert rules."""
    from elshi.alerts.flows import evaluate_after_batch
    from elshi.watch.matching import process_posts

    settings = get_settings()
    db = database(settings)
    result = process_posts(db)
    fired = evaluate_after_batch(db, settings=settings, matched=result.matched)
    console.print(
        f"read {result.posts:,} posts; new matches "
        + ", ".join(f"watch {k}: {len(v)}" for k, v in sorted(result.matched.items()))
        + f"; alerts fired: {fired}",
        highlight=False,
    )


def digest(
    mission: Annotated[str, typer.Option(help="Mission slug, e.g. berlin (the demo's embassy).")],
    format: Annotated[
        str, typer.Option("--format", help="html, pdf, or email (sent to the mission's readers).")
    ] = "pdf",
    lang: Annotated[str, typer.Option(help="Language of the digest: kk, ru or en.")] = "kk",
    day: Annotated[
        str | None, typer.Option(help="Day (YYYY-MM-DD); default yesterday or the last busy day.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="File to write (html/pdf); default elshi-digest-....")
    ] = None,
    to: Annotated[
        list[str] | None, typer.Option(help="With --format email: send to these addresses only.")
    ] = None,
) -> None:
    """Make a mission's daily digest as an HTML page, a PDF, or an e-mail with the PDF."""
    from datetime import date as date_type

    from elshi.digest import flows, service
    from elshi.watch.matching import process_posts

    if format not in ("html", "pdf", "email"):
        raise fail(f"--format {format!r}: use html, pdf or email", Exit.USAGE)
    if lang not in ("kk", "ru", "en"):
        raise fail(f"--lang {lang!r}: use kk, ru or en", Exit.USAGE)
    try:
        when = date_type.fromisoformat(day) if day else None
    except ValueError:
        raise fail(f"--day {day!r}: use the form 2026-11-01", Exit.USAGE) from None
    settings = get_settings()
    db = database(settings)
    process_posts(db)
    with db.session() as s:
        try:
            m = service.get_mission(db=s, slug=mission)
        except service.MissionNotFound as exc:
            raise fail(f"{exc} (see: elshi missions list)", Exit.NOT_FOUND) from None
        d = service.build(
            db=s, mission=m, day=when or service.latest_day(db=s, mission_id=m.id), lang=lang
        )
        readers = list(to or []) or service.readers(db=s, mission_id=m.id)
    html = flows.render_html(d)
    try:
        if format == "html":
            target = out or Path(f"elshi-digest-{mission}-{d.day}-{lang}.html")
            target.write_text(html, encoding="utf-8")
        elif format == "pdf":
            target = out or Path(f"elshi-digest-{mission}-{d.day}-{lang}.pdf")
            target.write_bytes(flows.render_pdf(html, settings=settings))
        else:
            if not readers:
                raise fail("no readers: give --to or grant a role in the mission", Exit.USAGE)
            flows.send_digest(
                d, settings=settings, to=readers, pdf=flows.render_pdf(html, settings=settings)
            )
            console.print(
                f"sent the digest of {d.day} to {len(readers)} addresses", highlight=False
            )
            return
    except (flows.PdfError, flows.SendError) as exc:
        raise fail(str(exc)) from None
    console.print(f"wrote {target} ({d.day}, {lang})", highlight=False)
