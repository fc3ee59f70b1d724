"""`elshi channels` and `elshi statements`: what an administrator needs at the shell."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from elshi.cli.common import (
    Exit,
    console,
    database,
    fail,
    format_when,
    get_settings,
    parse_options,
    refused,
    show_rows,
)

if TYPE_CHECKING:
    from elshi.speak.channels.base import ChannelContext

channels_app = typer.Typer(
    help="Publishing channels of a mission: add one with its credentials, list, renew a token.",
    no_args_is_help=True,
)
statements_app = typer.Typer(
    help="Statements and their publications: list, retry, publish what is due, collect reach.",
    no_args_is_help=True,
)

MissionOpt = Annotated[str, typer.Option("--mission", "-m", help="Mission slug.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
StdinOpt = Annotated[
    bool,
    typer.Option(
        "--secrets-stdin",
        help="Read credentials as KEY=VALUE lines from standard input instead of prompting.",
    ),
]


def _secrets(model: Any, from_stdin: bool) -> dict[str, Any]:
    """Ask for each credential without echo (or read KEY=VALUE lines from stdin)."""

    if from_stdin:
        values: dict[str, Any] = {}
        for line in sys.stdin.read().splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise fail(f"standard input: expected KEY=VALUE, got {line[:20]!r}", Exit.USAGE)
            values[key.strip()] = value.strip()
        return values
    return {
        name: typer.prompt(field.description or name, hide_input=True)
        for name, field in model.model_fields.items()
        if field.is_required()
    }


def _listed(fetch: Callable[..., Any], shape: Any = None, **filters: Any) -> list[Any]:
    """Read rows as the system, each made into `shape` (a schema) while the session is open."""
    from elshi.accounts.service import Principal

    db = database(get_settings())
    with db.session() as s:
        rows = fetch(db=s, actor=Principal.system(), **filters)
        return [shape.model_validate(r) for r in rows] if shape else list(rows)


@contextmanager
def _channels() -> Iterator[tuple[Any, ChannelContext]]:
    """The database and a channel context for sending from this process (closed after)."""
    from elshi.speak.channels.base import ChannelContext

    settings = get_settings()
    db = database(settings)
    ctx = ChannelContext(settings=settings, db=db)
    try:
        yield db, ctx
    finally:
        ctx.close()


def _on_publication(publication_id: int, step: Callable[..., Any], done: str) -> None:
    """Run a flow step on one publication as the system; say what happened, or why not."""
    from elshi.accounts.service import Principal
    from elshi.speak import service

    db = database(get_settings())
    try:
        step(db, actor=Principal.system(), publication_id=publication_id)
    except LookupError as exc:
        raise fail(str(exc.args[0]), Exit.NOT_FOUND) from None
    except service.SpeakError as exc:
        raise fail(str(exc)) from None
    console.print(f"publication {publication_id} {done}")


def _config(options: list[str]) -> dict[str, Any]:
    config = parse_options(options)
    if isinstance(config.get("languages"), str):
        config["languages"] = [x.strip() for x in config["languages"].split(",") if x.strip()]
    return config


@channels_app.command("add")
def channels_add(
    channel: Annotated[str, typer.Argument(help="Channel slug (see `elshi plugins`).")],
    name: Annotated[str, typer.Argument(help="A name staff will recognise, e.g. 'Telegram kk'.")],
    mission: MissionOpt = "hq",
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Channel setting KEY=VALUE (repeatable)."),
    ] = None,
    secrets_stdin: StdinOpt = False,
) -> None:
    """Add a channel account; credentials are asked for without echo and stored encrypted."""
    from elshi.accounts.service import Principal
    from elshi.missions.service import get_mission
    from elshi.plugins import UnknownPlugin, get_channel
    from elshi.speak import service

    settings = get_settings()
    try:
        plugin = get_channel(channel)
    except UnknownPlugin as exc:
        raise fail(str(exc.args[0]), Exit.USAGE) from None
    config = _config(option or [])
    secrets = _secrets(plugin.Secrets, secrets_stdin)
    db = database(settings)
    with db.session() as s:
        m = get_mission(db=s, slug=mission)
        if m is None:
            raise fail(f"no mission {mission!r}", Exit.NOT_FOUND)
        with refused(service.SpeakError):
            account = service.add_account(
                db=s,
                actor=Principal.system(),
                settings=settings,
                mission_id=m.id,
                channel=channel,
                name=name,
                config=config,
                secrets=secrets,
            )
        console.print(f"added channel account {account.id}: {channel} {account.name}")


@channels_app.command("list")
def channels_list(as_json: JsonOpt = False) -> None:
    """List channel accounts (never their credentials)."""
    from elshi.speak import service

    show_rows(
        _listed(service.list_accounts),
        as_json,
        ("id", "mission", "channel", "name", "languages", "last error"),
        lambda r: (
            str(r.id),
            str(r.mission_id),
            r.channel,
            r.name,
            ",".join(r.config.get("languages") or []) or "all",
            (r.last_error or "-")[:60],
        ),
        record=lambda r: {
            "id": r.id,
            "mission_id": r.mission_id,
            "channel": r.channel,
            "name": r.name,
            "config": r.config,
            "enabled": r.enabled,
            "has_credentials": r.has_secret,
            "last_error": r.last_error,
        },
    )


@channels_app.command("set-secret")
def channels_set_secret(
    account_id: Annotated[int, typer.Argument(help="Channel account id (`elshi channels list`).")],
    secrets_stdin: StdinOpt = False,
) -> None:
    """Replace an account's credentials, e.g. after its token expired."""
    from elshi.accounts.service import Principal
    from elshi.plugins import get_channel
    from elshi.speak import service
    from elshi.speak.models import ChannelAccount

    settings = get_settings()
    db = database(settings)
    with db.session() as s:
        account = s.get(ChannelAccount, account_id)
        if account is None:
            raise fail(f"no channel account {account_id}", Exit.NOT_FOUND)
        secrets = _secrets(get_channel(account.channel).Secrets, secrets_stdin)
        with refused(service.SpeakError):
            service.set_account_secrets(
                db=s,
                actor=Principal.system(),
                settings=settings,
                account_id=account_id,
                secrets=secrets,
            )
    console.print(f"credentials of channel account {account_id} replaced")


@channels_app.command("new-key")
def channels_new_key() -> None:
    """Print a fresh key for ELSHI_CREDENTIALS_KEY."""
    from elshi.crypto import new_credentials_key

    console.print(new_credentials_key(), highlight=False)


@statements_app.command("list")
def statements_list(
    status: Annotated[
        str | None, typer.Option(help="draft, submitted, returned, approved or archived.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List statements, newest first."""
    from elshi.speak import service
    from elshi.speak.schemas import StatementOut

    show_rows(
        _listed(service.list_statements, StatementOut, status=status),
        as_json,
        ("id", "mission", "title", "status", "urgent", "planned"),
        lambda r: (
            str(r.id),
            str(r.mission_id),
            r.title,
            r.status,
            "yes" if r.urgent else "",
            format_when(r.scheduled_at),
        ),
    )


@statements_app.command("publications")
def statements_publications(
    status: Annotated[
        str | None,
        typer.Option(help="pending, sending, sent, failed, unknown (needs checking), deleted."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List recent publications with their status and errors."""
    from elshi.speak import service
    from elshi.speak.schemas import PublicationOut

    show_rows(
        _listed(service.list_publications, PublicationOut, status=status),
        as_json,
        ("id", "statement", "channel", "lang", "status", "time", "error"),
        lambda r: (
            str(r.id),
            str(r.statement_id),
            f"{r.channel} #{r.account_id}",
            r.lang,
            r.status,
            format_when(r.sent_at or r.due_at),
            f"{r.error_kind}: {r.error}"[:70] if r.error_kind else "-",
        ),
    )


@statements_app.command("retry")
def statements_retry(
    publication_id: Annotated[int, typer.Argument(help="Publication id.")],
    send_again: Annotated[
        bool,
        typer.Option(
            "--send-again",
            help="For one marked unknown: send it again after you checked it is not there.",
        ),
    ] = False,
) -> None:
    """Put a failed publication back in the queue (the worker sends it)."""
    from elshi.speak import flows

    _on_publication(
        publication_id,
        lambda db, **who: flows.retry_publication(db, **who, send_again=send_again),
        "queued again",
    )


@statements_app.command("mark-sent")
def statements_mark_sent(
    publication_id: Annotated[int, typer.Argument(help="Publication id.")],
    url: Annotated[str | None, typer.Option(help="Where the post is.")] = None,
) -> None:
    """Record that a publication marked unknown is on the channel after all."""
    from elshi.speak import flows

    _on_publication(
        publication_id, lambda db, **who: flows.mark_sent(db, **who, url=url), "marked sent"
    )


@statements_app.command("publish-due")
def statements_publish_due() -> None:
    """Send every publication that is due now, in this process; exit 1 if any failed."""
    from elshi.speak import flows

    with _channels() as (db, ctx):
        found = flows.publish_due(db, ctx)
        results = {pid: flows.send_publication(db, pid, ctx) for pid in found["due"]}
    for pid, status in results.items():
        console.print(f"publication {pid}: {status}")
    console.print(f"{len(results)} sent or tried, {len(found['reconciled'])} reconciled")
    if any(status == "failed" for status in results.values()):
        raise typer.Exit(1)


@statements_app.command("reach")
def statements_reach() -> None:
    """Collect engagement of recent publications now, with the accounts that engaged."""
    from elshi.speak import flows

    with _channels() as (db, ctx):
        taken = flows.collect_reach(db, ctx)
    console.print(f"engagement read for {taken} publications")
