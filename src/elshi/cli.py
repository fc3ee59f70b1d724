"""The `elshi` command line.

Exit codes: 0 success; 1 failure; 2 bad usage or bad setting; 3 finished but some records
were quarantined; 4 not found.
"""

from __future__ import annotations

import json
import logging
import os
import sys
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
from rich.table import Table
from rich.text import Text

from elshi import __version__
from elshi.consulate import commands as consulate_commands
from elshi.crisis import commands as crisis_commands
from elshi.nlp import commands as nlp_commands
from elshi.settings import Settings, SettingsError, load_settings
from elshi.speak import commands as speak_commands


class Exit(IntEnum):
    """Exit codes scripts can rely on."""

    OK = 0
    FAILED = 1
    USAGE = 2
    QUARANTINED = 3
    NOT_FOUND = 4


app = typer.Typer(
    name="elshi",
    help="elshi: digital diplomacy for a ministry and its missions. Listen, speak, serve, analyse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sources_app = typer.Typer(
    help="Sources a mission follows: add, list, run, remove.", no_args_is_help=True
)
quarantine_app = typer.Typer(help="Records that could not be stored.", no_args_is_help=True)
users_app = typer.Typer(help="Staff users and their roles.", no_args_is_help=True)
missions_app = typer.Typer(help="Headquarters and missions (tenants).", no_args_is_help=True)
app.add_typer(sources_app, name="sources")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(users_app, name="users")
app.add_typer(missions_app, name="missions")
app.add_typer(consulate_commands.app, name="consulate")
app.add_typer(crisis_commands.app, name="crisis")
watch_app = typer.Typer(help="Watch lists: match new posts, update rollups, check alerts.")
app.add_typer(watch_app, name="watch")
app.add_typer(speak_commands.channels_app, name="channels")
app.add_typer(speak_commands.statements_app, name="statements")

console = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (else ELSHI_CONFIG).")
]


class _State:
    config: Path | None = None


def _fail(message: str, code: Exit = Exit.FAILED) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(int(code))


def get_settings(**overrides: Any) -> Settings:
    """Load settings or stop with exit code 2 and a message naming the bad variable."""
    try:
        return load_settings(_State.config, **overrides)
    except SettingsError as exc:
        raise _fail(str(exc), Exit.USAGE) from None


def _database(settings: Settings, migrate: bool = True) -> Any:
    from elshi.db import Database
    from elshi.listen.flows import ensure_indexes
    from elshi.migrate import migrate as run_migrations

    db = Database(settings)
    if migrate:
        run_migrations(db.engine)
        ensure_indexes(db)  # a bulk import that was killed may have left some out
    return db


@app.callback()
def main_callback(
    config: ConfigOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    """elshi command line."""
    _State.config = config
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from elshi.accounts.service import install_log_masking

    install_log_masking()


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


# ---------------------------------------------------------------------------- ingest


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "", style="cyan")


class _CountColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{int(task.completed):,} rows")


@contextmanager
def _progress(label: str, enabled: bool = True) -> Any:
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


def _parse_options(options: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _fail(f"--option {item!r}: expected KEY=VALUE", Exit.USAGE)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


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


@app.command()
def ingest(
    connector: Annotated[str, typer.Argument(help="Connector slug (see `elshi plugins`).")],
    target: Annotated[str, typer.Argument(help="File, URL, channel or account to read.")],
    option: OptionOpt = None,
    profile: Annotated[str | None, typer.Option(help="Column-mapping profile (tabular).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Import once from a file or URL; prints a summary; exit 3 if anything was quarantined."""
    from pydantic import ValidationError

    from elshi.connectors.base import FetchContext
    from elshi.listen.flows import import_with
    from elshi.nlp.jobs import newest_post_id
    from elshi.plugins import UnknownPlugin, get_connector

    settings = get_settings()
    try:
        plugin = get_connector(connector)
    except UnknownPlugin as exc:
        raise _fail(str(exc.args[0]), Exit.USAGE) from None
    config = _parse_options(option or [])
    config[plugin.target_field] = target
    if profile:
        config["profile"] = profile
    db = _database(settings)
    ctx = FetchContext(settings=settings)
    try:
        with _progress(f"{connector} {Path(target).name or target}", progress) as tick:
            before = newest_post_id(db)
            report = import_with(db, connector=plugin, config=config, ctx=ctx, progress=tick)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise _fail(f"bad {connector} settings: {problems}", Exit.USAGE) from None
    except Exception as exc:
        raise _fail(f"{connector} {target}: {exc}") from None
    finally:
        ctx.close()
    if report.stored:
        _queue_enrichment(settings, db, before)
    raise typer.Exit(int(_print_report(report)))


def _queue_enrichment(settings: Settings, db: Any, after_id: int) -> None:
    """Queue enrichment of posts stored after `after_id`; a worker (or `elshi serve`) runs it."""
    from elshi import jobs

    try:
        jobs.bind(settings, db)
        jobs.enqueue("enrich_new_posts", after_id)
    except Exception as exc:  # the posts are stored; the periodic catch-up will enrich them
        err.print(f"could not queue enrichment ({exc}); it will run later", highlight=False)


@app.command()
def reprocess(
    source: Annotated[int | None, typer.Option(help="Only posts of this source.")] = None,
    connector: Annotated[
        str | None, typer.Option(help="Only posts stored by this connector.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Re-run connectors' mappings over the raw payloads kept with stored posts."""
    from elshi.listen.reprocess import reprocess_posts

    settings = get_settings()
    db = _database(settings)
    with _progress("reprocess", progress) as tick:
        counts = reprocess_posts(db, source_id=source, connector=connector, progress=tick)
    console.print(
        f"checked {counts['checked']:,}, updated {counts['updated']:,}, failed {counts['failed']:,}"
    )
    raise typer.Exit(int(Exit.QUARANTINED if counts["failed"] else Exit.OK))


app.command(name="enrich")(nlp_commands.enrich)
app.command(name="eval")(nlp_commands.eval_command)
app.add_typer(nlp_commands.narratives_app, name="narratives")


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
    from elshi.plugins import UnknownPlugin, get_connector

    settings = get_settings()
    try:
        plugin = get_connector(connector)
    except UnknownPlugin as exc:
        raise _fail(str(exc.args[0]), Exit.USAGE) from None
    config = _parse_options(option or [])
    config[plugin.target_field] = target
    minutes = None
    if every:
        try:
            minutes = max(1, int(service.parse_duration(every).total_seconds() // 60))
        except ValueError as exc:
            raise _fail(f"--every: {exc}", Exit.USAGE) from None
    db = _database(settings)
    with db.session() as s:
        try:
            src = service.add_source(
                db=s, connector=connector, config=config, name=name, every_minutes=minutes
            )
        except service.InvalidSource as exc:
            raise _fail(str(exc), Exit.USAGE) from None
        console.print(f"added source {src.id}: {src.connector} {src.name}")


@sources_app.command("list")
def sources_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List sources with their schedule and health."""
    from elshi.listen import service
    from elshi.listen.schemas import SourceOut

    db = _database(get_settings())
    with db.session() as s:
        rows = [SourceOut.model_validate(x) for x in service.list_sources(db=s)]
    if as_json:
        console.print_json(json.dumps([r.model_dump(mode="json") for r in rows]))
        return
    table = Table("id", "connector", "name", "every", "health", "last success", "last error")
    for r in rows:
        table.add_row(
            str(r.id),
            r.connector,
            r.name,
            f"{r.every_minutes}m" if r.every_minutes else "-",
            r.health,
            _when(r.last_success_at),
            (r.last_error or "-")[:60],
        )
    console.print(table)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


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
    db = _database(settings)
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
                with _progress(f"source {sid}", progress) as tick:
                    report = flows.run_source(db, source_id=sid, ctx=ctx, progress=tick)
            except flows.SourceNotFound as exc:
                raise _fail(str(exc), Exit.NOT_FOUND) from None
            except Exception as exc:
                err.print(f"[red]source {sid} failed:[/red] {exc}", highlight=False)
                worst = Exit.FAILED
                continue
            if report.stored:
                _queue_enrichment(settings, db, before)
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

    db = _database(get_settings())
    with db.session() as s:
        if not service.remove_source(db=s, source_id=source_id):
            raise _fail(f"no source with id {source_id}", Exit.NOT_FOUND)
    console.print(f"removed source {source_id}")


# ---------------------------------------------------------------------------- quarantine


@quarantine_app.command("list")
def quarantine_list(
    source: Annotated[int | None, typer.Option(help="Only this source.")] = None,
    limit: Annotated[int, typer.Option(help="How many to show.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List quarantined records: source, location, reason."""
    from elshi.listen import service
    from elshi.listen.schemas import QuarantineOut

    db = _database(get_settings())
    with db.session() as s:
        rows = [
            QuarantineOut.model_validate(q)
            for q in service.list_quarantine(db=s, source_id=source, limit=limit)
        ]
    if as_json:
        console.print_json(json.dumps([r.model_dump(mode="json") for r in rows]))
        return
    table = Table("id", "connector", "origin", "location", "reason")
    for r in rows:
        table.add_row(str(r.id), r.connector, r.origin[-50:], r.location, r.reason[:100])
    console.print(table)


# ---------------------------------------------------------------------------- search


@app.command()
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
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Search stored posts; newest first."""
    from elshi.listen import service
    from elshi.listen.schemas import PostOut

    db = _database(get_settings())
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
        when = _when(p.published_at)
        head = f"[{p.platform}] {when} {p.author_handle or ''} ({p.lang or '?'})"
        console.print(head, style="bold", highlight=False, markup=False)
        body = ("  " + (p.title + " — " if p.title else "") + p.text)[:300]
        console.print(body, highlight=False, markup=False)
    raise typer.Exit(int(Exit.OK if total else Exit.NOT_FOUND))


# ---------------------------------------------------------------------------- users, missions

RoleOpt = Annotated[
    str,
    typer.Option(
        "--role", help="admin, ambassador, analyst, press, approver, consular or citizen."
    ),
]
MissionOpt = Annotated[
    str,
    typer.Option(
        "--mission", help="Mission slug (see `elshi missions list`); hq is created on first use."
    ),
]


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise _fail("--password-stdin: no password on standard input", Exit.USAGE)
        return password
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@contextmanager
def _account_errors() -> Any:
    from elshi.accounts.flows import MissionNotFound, TokenNotFound, UserNotFound
    from elshi.accounts.service import InvalidUser, PermissionDenied
    from elshi.missions.service import InvalidMission

    try:
        yield
    except (UserNotFound, MissionNotFound, TokenNotFound) as exc:
        hint = " (see: elshi missions list)" if isinstance(exc, MissionNotFound) else ""
        raise _fail(f"{exc}{hint}", Exit.NOT_FOUND) from None
    except (InvalidUser, InvalidMission) as exc:
        raise _fail(str(exc), Exit.USAGE) from None
    except PermissionDenied as exc:
        raise _fail(str(exc)) from None


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="The user's e-mail; they sign in with it.")],
    role: RoleOpt,
    mission: MissionOpt = "hq",
    name: Annotated[str, typer.Option(help="Full name shown in the interface.")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a user with a role in a mission; asks for the password unless --password-stdin."""
    from elshi.accounts import flows
    from elshi.accounts.service import Principal

    db = _database(get_settings())
    password = _read_password(password_stdin)
    with _account_errors(), db.session() as s:
        user = flows.add_user(
            db=s,
            actor=Principal.system(),
            email=email,
            password=password,
            name=name,
            role=role,
            mission_slug=mission,
        )
        console.print(f"added user {user.id}: {user.email} ({mission}:{role})", highlight=False)


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List users with their roles, TOTP and the addresses they are locked for."""
    from elshi.accounts import service

    settings = get_settings()
    policy = service.LoginPolicy.from_settings(settings)
    db = _database(settings)
    with db.session() as s:
        labels = service.role_labels(db=s)
        rows: list[dict[str, Any]] = []
        for u in service.list_users(db=s):
            locked_from = service.locked_addresses(db=s, policy=policy, user_id=u.id)
            rows.append(
                {
                    "id": u.id,
                    "email": u.email,
                    "name": u.name,
                    "active": u.is_active,
                    "roles": labels.get(u.id, []),
                    "totp": bool(u.totp_secret),
                    "locked": bool(locked_from),
                    "locked_from": locked_from,
                    "last_login_at": u.last_login_at,
                }
            )
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table("id", "name", "roles", "TOTP", "state", "last sign-in")
    table.add_column("email", no_wrap=True)
    for r in rows:
        state = "active" if r["active"] else "disabled"
        if r["active"] and r["locked"]:
            state = "locked from " + ", ".join(r["locked_from"])
        table.add_row(
            str(r["id"]),
            r["name"],
            ", ".join(r["roles"]) or "-",
            "yes" if r["totp"] else "no",
            state,
            _when(r["last_login_at"]),
            r["email"],
        )
    console.print(table)


@users_app.command("grant")
def users_grant(
    email: Annotated[str, typer.Argument(help="The user's e-mail.")],
    role: RoleOpt,
    mission: MissionOpt = "hq",
) -> None:
    """Give a user a role in a mission (HQ roles apply to every mission)."""
    from elshi.accounts import flows
    from elshi.accounts.service import Principal

    db = _database(get_settings())
    with _account_errors(), db.session() as s:
        flows.grant(db=s, actor=Principal.system(), email=email, role=role, mission_slug=mission)
    console.print(f"granted {mission}:{role} to {email}", highlight=False)


@users_app.command("token")
def users_token(
    email: Annotated[str, typer.Argument(help="The user the token acts as.")],
    name: Annotated[str, typer.Option(help="What the token is for, e.g. a script's name.")] = "",
    days: Annotated[
        int | None, typer.Option(help="Expire after this many days (default: never).")
    ] = None,
    scope: Annotated[
        str,
        typer.Option(help="read (GET on /api/ only) or write (also API writes)."),
    ] = "read",
) -> None:
    """Create an API token and print it once; send it as `Authorization: Bearer <token>`."""
    from elshi.accounts import flows
    from elshi.accounts.service import Principal

    db = _database(get_settings())
    with _account_errors(), db.session() as s:
        token = flows.issue_token(
            db=s, actor=Principal.system(), email=email, name=name, days=days, scope=scope
        )
    err.print("API token (shown only this once; elshi keeps only its hash):", highlight=False)
    print(token)


@users_app.command("totp")
def users_totp(
    email: Annotated[str, typer.Argument(help="The user to enrol.")],
    disable: Annotated[
        bool, typer.Option("--disable", help="Remove the user's TOTP instead.")
    ] = False,
) -> None:
    """Enrol a user in TOTP and print the otpauth:// URI for their authenticator app."""
    from elshi.accounts import flows
    from elshi.accounts.service import Principal

    db = _database(get_settings())
    with _account_errors(), db.session() as s:
        if disable:
            flows.disable_totp(db=s, actor=Principal.system(), email=email)
            console.print(f"TOTP removed for {email}", highlight=False)
            return
        uri = flows.enrol_totp(db=s, actor=Principal.system(), email=email)
    err.print(
        "add this to the authenticator app (as a QR code or by hand); sign-in now asks for a code:",
        highlight=False,
    )
    print(uri)


def _set_active(email: str, active: bool) -> None:
    from elshi.accounts import flows
    from elshi.accounts.service import Principal

    db = _database(get_settings())
    with _account_errors(), db.session() as s:
        flows.set_active(db=s, actor=Principal.system(), email=email, active=active)


@users_app.command("disable")
def users_disable(email: Annotated[str, typer.Argument(help="The user to disable.")]) -> None:
    """Disable a user: their sessions end at once and their API tokens stop working."""
    _set_active(email, False)
    console.print(f"disabled {email}: signed out everywhere", highlight=False)


@users_app.command("enable")
def users_enable(email: Annotated[str, typer.Argument(help="The user to enable again.")]) -> None:
    """Enable a disabled user again."""
    _set_active(email, True)
    console.print(f"enabled {email}", highlight=False)


@users_app.command("reset-password")
def users_reset_password(
    email: Annotated[str, typer.Argument(help="The user whose password is replaced.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Set a new password for a user, lift a lock and sign them out everywhere."""
    from elshi.accounts import flows
    from elshi.accounts.service import Principal

    db = _database(get_settings())
    password = _read_password(password_stdin)
    with _account_errors(), db.session() as s:
        flows.reset_password(db=s, actor=Principal.system(), email=email, password=password)
    console.print(f"new password set for {email}; they are signed out everywhere", highlight=False)


@users_app.command("tokens")
def users_tokens(
    email: Annotated[str, typer.Argument(help="The user whose API tokens are listed.")],
) -> None:
    """List a user's API tokens (prefix, name, scope, expiry, last use, state); never the tokens."""
    from elshi.accounts import flows
    from elshi.accounts.service import Principal

    db = _database(get_settings())
    with _account_errors(), db.session() as s:
        tokens = flows.tokens_of(db=s, actor=Principal.system(), email=email)
        table = Table("id", "prefix", "name", "scope", "created", "expires", "last used", "state")
        for t in tokens:
            table.add_row(
                str(t.id),
                t.prefix + "...",
                t.name or "-",
                t.scope,
                _when(t.created_at),
                _when(t.expires_at),
                _when(t.last_used_at),
                "revoked" if t.revoked_at else "live",
            )
    console.print(table)


@users_app.command("revoke-token")
def users_revoke_token(
    token_id: Annotated[int, typer.Argument(help="The token's id (see `elshi users tokens`).")],
) -> None:
    """Revoke an API token at once."""
    from elshi.accounts import flows
    from elshi.accounts.service import Principal

    db = _database(get_settings())
    with _account_errors(), db.session() as s:
        row = flows.revoke_token(db=s, actor=Principal.system(), token_id=token_id)
    console.print(f"revoked token {row.id} ({row.prefix}...)", highlight=False)


@missions_app.command("add")
def missions_add(
    slug: Annotated[str, typer.Argument(help="Short id: lower-case letters, digits, dashes.")],
    name: Annotated[str, typer.Option(help="Full name, e.g. 'Embassy in Berlin'.")],
    kind: Annotated[str, typer.Option(help="hq, embassy or consulate.")] = "embassy",
    country: Annotated[str | None, typer.Option(help="Host country, ISO 3166 two letters.")] = None,
    parent: Annotated[str | None, typer.Option(help="Parent mission slug (default hq).")] = None,
    timezone: Annotated[
        str,
        typer.Option(help="IANA time zone of the office, e.g. Europe/Berlin (consular slots)."),
    ] = "UTC",
) -> None:
    """Create a mission (tenant) under headquarters."""
    from elshi.accounts import flows
    from elshi.accounts.service import Principal

    db = _database(get_settings())
    with _account_errors(), db.session() as s:
        mission = flows.add_mission(
            db=s,
            actor=Principal.system(),
            slug=slug,
            name=name,
            kind=kind,
            country_code=country,
            parent_slug=parent,
            timezone=timezone,
        )
        console.print(
            f"added mission {mission.id}: {mission.slug} ({mission.kind})", highlight=False
        )


@missions_app.command("timezone")
def missions_timezone(
    slug: Annotated[str, typer.Argument(help="Mission slug (see `elshi missions list`).")],
    zone: Annotated[str, typer.Argument(help="IANA time zone, e.g. Europe/Berlin.")],
) -> None:
    """Set the time zone a mission's office works in (slots are opened and shown in it)."""
    from elshi.accounts.service import audit
    from elshi.missions import service

    db = _database(get_settings())
    with _account_errors(), db.session() as s:
        mission = service.get_mission(db=s, slug=slug)
        if mission is None:
            raise _fail(f"no mission {slug!r} (see: elshi missions list)", Exit.NOT_FOUND)
        service.set_timezone(db=s, mission=mission, timezone=zone)
        audit(
            db=s,
            action="mission.timezone",
            object_type="mission",
            object_id=mission.id,
            actor_label="cli",
            mission_id=mission.id,
            detail={"timezone": zone},
        )
    console.print(f"{slug}: time zone {zone}", highlight=False)


@missions_app.command("list")
def missions_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List headquarters and missions."""
    from elshi.missions import service

    db = _database(get_settings())
    with db.session() as s:
        rows: list[dict[str, Any]] = [
            {
                "id": m.id,
                "slug": m.slug,
                "name": m.name,
                "kind": m.kind,
                "country": m.country_code,
                "parent_id": m.parent_id,
                "timezone": m.timezone,
            }
            for m in service.list_missions(db=s)
        ]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table("id", "slug", "name", "kind", "country", "parent", "time zone")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["slug"],
            r["name"],
            r["kind"],
            r["country"] or "-",
            str(r["parent_id"] or "-"),
            r["timezone"],
        )
    console.print(table)


# ---------------------------------------------------------------------------- workspace


@watch_app.command("update")
def watch_update() -> None:
    """Match posts not yet seen by each watch list, update the rollups and check alert rules."""
    from elshi.alerts.flows import evaluate_after_batch
    from elshi.watch.matching import process_posts

    settings = get_settings()
    db = _database(settings)
    result = process_posts(db)
    fired = evaluate_after_batch(db, settings=settings, matched=result.matched)
    console.print(
        f"read {result.posts:,} posts; new matches "
        + ", ".join(f"watch {k}: {len(v)}" for k, v in sorted(result.matched.items()))
        + f"; alerts fired: {fired}",
        highlight=False,
    )


@app.command()
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
        raise _fail(f"--format {format!r}: use html, pdf or email", Exit.USAGE)
    if lang not in ("kk", "ru", "en"):
        raise _fail(f"--lang {lang!r}: use kk, ru or en", Exit.USAGE)
    try:
        when = date_type.fromisoformat(day) if day else None
    except ValueError:
        raise _fail(f"--day {day!r}: use the form 2026-11-01", Exit.USAGE) from None
    settings = get_settings()
    db = _database(settings)
    process_posts(db)
    with db.session() as s:
        try:
            m = service.get_mission(db=s, slug=mission)
        except service.MissionNotFound as exc:
            raise _fail(f"{exc} (see: elshi missions list)", Exit.NOT_FOUND) from None
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
                raise _fail("no readers: give --to or grant a role in the mission", Exit.USAGE)
            flows.send_digest(
                d, settings=settings, to=readers, pdf=flows.render_pdf(html, settings=settings)
            )
            console.print(
                f"sent the digest of {d.day} to {len(readers)} addresses", highlight=False
            )
            return
    except (flows.PdfError, flows.SendError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"wrote {target} ({d.day}, {lang})", highlight=False)


# ---------------------------------------------------------------------------- keys

keys_app = typer.Typer(
    help="The secret key: make one, rotate it (re-seal stored data).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")


@keys_app.command("new")
def keys_new(
    path: Annotated[Path, typer.Argument(help="Key file to write (must not exist yet).")],
) -> None:
    """Write a new random secret key to a file only its owner may read (ELSHI_SECRET_KEY_FILE)."""
    import secrets

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise _fail(f"{path} exists already; choose another file", Exit.USAGE) from None
    except OSError as exc:
        raise _fail(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secrets.token_urlsafe(48) + "\n")
    console.print(f"wrote a new secret key to {path} (mode 600)", highlight=False)


def _reseal(settings: Settings, action: str, work: Any) -> dict[str, int]:
    from sqlalchemy.orm import Session

    from elshi.accounts.service import audit
    from elshi.keys import RotationError

    db = _database(settings)
    try:
        with db.engine.begin() as conn:
            counts: dict[str, int] = work(conn)
            with Session(bind=conn) as s:
                audit(db=s, action=action, object_type="keys", actor_label="cli", detail=counts)
                s.flush()
    except RotationError as exc:
        raise _fail(str(exc), Exit.USAGE) from None
    except ValueError as exc:  # a value no configured key opens: nothing was changed
        raise _fail(f"{exc}; nothing was changed") from None
    finally:
        db.dispose()
    return counts


@keys_app.command("rotate")
def keys_rotate(
    new_key_file: Annotated[
        Path | None,
        typer.Option(help="File holding the new secret key (else it is asked for)."),
    ] = None,
) -> None:
    """Re-seal all sealed data and blind indexes under a new secret key, in one transaction.

    Stop elshi first. Then put the new key in ELSHI_SECRET_KEY_FILE (or ELSHI_SECRET_KEY), the
    old one in ELSHI_SECRET_KEY_PREVIOUS (links and sessions made with it stay valid until they
    expire), and start elshi again.
    """
    from elshi.crypto import secrets_of
    from elshi.keys import rotate
    from elshi.settings import read_key_file

    settings = get_settings()
    if new_key_file is not None:
        try:
            keys = read_key_file(new_key_file, "--new-key-file")
        except ValueError as exc:
            raise _fail(str(exc), Exit.USAGE) from None
        if len(keys) != 1:
            raise _fail(f"--new-key-file: {new_key_file} must hold one key", Exit.USAGE)
        new_key = keys[0]
    else:
        new_key = typer.prompt("New secret key", hide_input=True, confirmation_prompt=True)
    counts = _reseal(
        settings,
        "keys.rotate",
        lambda conn: rotate(
            conn,
            old_secrets=secrets_of(settings),
            new_secret=new_key,
            credentials_fixed=bool(settings.credentials_key),
        ),
    )
    console.print(
        f"re-sealed {sum(counts.values()):,} rows under the new key. Now put the new key in "
        "ELSHI_SECRET_KEY_FILE and the old one in ELSHI_SECRET_KEY_PREVIOUS, then start elshi.",
        highlight=False,
    )


@keys_app.command("reseal")
def keys_reseal() -> None:
    """Re-seal under the current secret key whatever a previous key still opens (run it before
    removing ELSHI_SECRET_KEY_PREVIOUS), and recompute the blind indexes."""
    from elshi.crypto import secrets_of
    from elshi.keys import reseal_all

    settings = get_settings()
    counts = _reseal(
        settings,
        "keys.reseal",
        lambda conn: reseal_all(
            conn,
            secrets=secrets_of(settings),
            credentials_fixed=bool(settings.credentials_key),
        ),
    )
    console.print(f"re-sealed {sum(counts.values()):,} rows under the current key", highlight=False)


# ---------------------------------------------------------------------------- running


@contextmanager
def _key_files_for_children(settings: Settings) -> Any:
    """Hand the secret keys taken from the environment to server processes in key files.

    The files are readable by this user only, in a private folder (in memory under /dev/shm
    where there is one), and removed when the server stops.
    """
    import shutil
    import tempfile

    from elshi.settings import taken_from_environment

    taken = taken_from_environment()
    wanted = {
        "ELSHI_SECRET_KEY_FILE": [settings.secret_key]
        if "ELSHI_SECRET_KEY" in taken and settings.secret_key_file is None
        else [],
        "ELSHI_SECRET_KEY_PREVIOUS_FILE": [taken["ELSHI_SECRET_KEY_PREVIOUS"]]
        if "ELSHI_SECRET_KEY_PREVIOUS" in taken and settings.secret_key_previous_file is None
        else [],
    }
    wanted = {k: v for k, v in wanted.items() if v}
    if not wanted:
        yield
        return
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="elshi-keys-", dir=shm if shm.is_dir() else None))
    try:
        for name, keys in wanted.items():
            path = folder / name.lower()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write("\n".join(keys) + "\n")
            os.environ[name] = str(path)
        yield
    finally:
        for name in wanted:
            os.environ.pop(name, None)
        shutil.rmtree(folder, ignore_errors=True)


def _serve(
    settings: Settings, *, web: bool, worker: bool, workers: int = 2, processes: int = 1
) -> None:
    import uvicorn

    from elshi import jobs

    db = _database(settings)
    if web:
        try:
            settings.require_secret()
        except SettingsError as exc:
            raise _fail(str(exc), Exit.USAGE) from None
    if web and processes > 1:
        # Each process builds its own app from the same settings (passed on through the
        # environment; secret keys through a private key file); the database is shared.
        db.dispose()
        if _State.config is not None:
            os.environ["ELSHI_CONFIG"] = str(_State.config)
        os.environ["ELSHI_PORT"] = str(settings.port)
        console.print(
            f"elshi is running at http://{settings.host}:{settings.port}/ ({processes} processes)",
            highlight=False,
        )
        with _key_files_for_children(settings):
            uvicorn.run(
                "elshi.app:app_from_environment",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=processes,
                log_level="warning",
            )
        return
    rt = jobs.bind(settings, db)
    consumer = jobs.consumer(rt, workers=workers) if worker else None
    if consumer is not None:
        # Catch up at once on sources that fell due while nothing was running.
        jobs.enqueue("schedule_due_sources")
        jobs.enqueue("publish_due")  # and settle publications a stopped worker left
        jobs.enqueue("crisis_tick_now")  # and crisis deliveries
    if not web:
        assert consumer is not None
        console.print(f"worker running ({workers} threads, scheduler on); Ctrl+C stops")
        consumer.run()
        return
    from elshi.app import create_app

    api = create_app(settings, db=db, runtime=rt)
    if consumer is not None:
        consumer.start()
    console.print(f"elshi is running at http://{settings.host}:{settings.port}/", highlight=False)
    try:
        uvicorn.run(api, host=settings.host, port=settings.port, log_level="warning")
    finally:
        if consumer is not None:
            consumer.stop(graceful=True)


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="Port (else ELSHI_PORT).")] = None,
) -> None:
    """Run the web app, the worker and the scheduler in one process."""
    settings = get_settings(**({"port": port} if port else {}))
    _serve(settings, web=True, worker=True)


@app.command()
def web(
    port: Annotated[int | None, typer.Option(help="Port (else ELSHI_PORT).")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Web server processes on this machine (about one per CPU core). More than "
            "one is meant for PostgreSQL; on SQLite the writes still queue for one file.",
        ),
    ] = 1,
) -> None:
    """Run only the web app (workers run apart with `elshi worker`)."""
    settings = get_settings(**({"port": port} if port else {}))
    _serve(settings, web=True, worker=False, processes=workers)


@app.command()
def worker(
    threads: Annotated[int, typer.Option(help="Worker threads.")] = 2,
) -> None:
    """Run only the background worker and scheduler."""
    _serve(get_settings(), web=False, worker=True, workers=threads)


@app.command()
def demo(
    port: Annotated[int | None, typer.Option(help="Port (else ELSHI_PORT).")] = None,
    posts: Annotated[int, typer.Option(help="How many demo posts to generate.")] = 3000,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the web app after loading.")
    ] = True,
) -> None:
    """Create a SQLite database with generated kk/ru/en demo data and start elshi."""
    from elshi.demo import load_demo
    from elshi.nlp.jobs import newest_post_id

    overrides: dict[str, Any] = {"demo": True}
    if port:
        overrides["port"] = port
    settings = get_settings(**overrides)
    db = _database(settings)
    with _progress("demo corpus") as tick:
        before = newest_post_id(db)
        info = load_demo(db, settings=settings, posts=posts, progress=tick)
    if info["stored"]:
        _queue_enrichment(settings, db, before)
    console.print(
        f"demo data in {settings.db_url}: {info['posts']:,} posts, mission {info['mission']!r}",
        highlight=False,
    )
    if info.get("password"):
        console.print(
            f"sign in as {info['email']} with password {info['password']}", highlight=False
        )
    if serve_after:
        _serve(settings, web=True, worker=True)


def main() -> None:
    """Entry point for the `elshi` script."""
    from elshi.settings import hide_secrets

    # The secret keys leave the environment before anything else runs (see hide_secrets).
    hide_secrets(reexec=True)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
