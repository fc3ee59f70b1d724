"""Staff users and missions from the command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.table import Table

from elshi.cli.common import (
    Exit,
    JsonOpt,
    console,
    database,
    err,
    fail,
    format_when,
    get_settings,
    show_rows,
)

users_app = typer.Typer(help="Staff users and their roles.", no_args_is_help=True)
missions_app = typer.Typer(help="Headquarters and missions (tenants).", no_args_is_help=True)


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
            raise fail("--password-stdin: no password on standard input", Exit.USAGE)
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
        raise fail(f"{exc}{hint}", Exit.NOT_FOUND) from None
    except (InvalidUser, InvalidMission) as exc:
        raise fail(str(exc), Exit.USAGE) from None
    except PermissionDenied as exc:
        raise fail(str(exc)) from None


@contextmanager
def _as_system() -> Iterator[tuple[Any, Any]]:
    """Open a session acting as the system; an account error ends the command with its code."""
    from elshi.accounts.service import Principal

    db = database(get_settings())
    with _account_errors(), db.session() as s:
        yield s, Principal.system()


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

    password = _read_password(password_stdin)
    with _as_system() as (s, system):
        user = flows.add_user(
            db=s,
            actor=system,
            email=email,
            password=password,
            name=name,
            role=role,
            mission_slug=mission,
        )
        console.print(f"added user {user.id}: {user.email} ({mission}:{role})", highlight=False)


@users_app.command("list")
def users_list(
    as_json: JsonOpt = False,
) -> None:
    """List users with their roles, TOTP and the addresses they are locked for."""
    from elshi.accounts import service

    settings = get_settings()
    policy = service.LoginPolicy.from_settings(settings)
    db = database(settings)
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
            format_when(r["last_login_at"]),
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

    with _as_system() as (s, system):
        flows.grant(db=s, actor=system, email=email, role=role, mission_slug=mission)
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

    with _as_system() as (s, system):
        token = flows.issue_token(
            db=s, actor=system, email=email, name=name, days=days, scope=scope
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

    with _as_system() as (s, system):
        if disable:
            flows.disable_totp(db=s, actor=system, email=email)
            console.print(f"TOTP removed for {email}", highlight=False)
            return
        uri = flows.enrol_totp(db=s, actor=system, email=email)
    err.print(
        "add this to the authenticator app (as a QR code or by hand); sign-in now asks for a code:",
        highlight=False,
    )
    print(uri)


def _set_active(email: str, active: bool) -> None:
    from elshi.accounts import flows

    with _as_system() as (s, system):
        flows.set_active(db=s, actor=system, email=email, active=active)


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

    password = _read_password(password_stdin)
    with _as_system() as (s, system):
        flows.reset_password(db=s, actor=system, email=email, password=password)
    console.print(f"new password set for {email}; they are signed out everywhere", highlight=False)


@users_app.command("tokens")
def users_tokens(
    email: Annotated[str, typer.Argument(help="The user whose API tokens are listed.")],
) -> None:
    """List a user's API tokens (prefix, name, scope, expiry, last use, state); never the tokens."""
    from elshi.accounts import flows

    with _as_system() as (s, system):
        tokens = flows.tokens_of(db=s, actor=system, email=email)
        table = Table("id", "prefix", "name", "scope", "created", "expires", "last used", "state")
        for t in tokens:
            table.add_row(
                str(t.id),
                t.prefix + "...",
                t.name or "-",
                t.scope,
                format_when(t.created_at),
                format_when(t.expires_at),
                format_when(t.last_used_at),
                "revoked" if t.revoked_at else "live",
            )
    console.print(table)


@users_app.command("revoke-token")
def users_revoke_token(
    token_id: Annotated[int, typer.Argument(help="The token's id (see `elshi users tokens`).")],
) -> None:
    """Revoke an API token at once."""
    from elshi.accounts import flows

    with _as_system() as (s, system):
        row = flows.revoke_token(db=s, actor=system, token_id=token_id)
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
    emergency_phone: Annotated[
        str,
        typer.Option(help="Consular emergency number shown to citizens on crisis pages."),
    ] = "",
) -> None:
    """Create a mission (tenant) under headquarters."""
    from elshi.accounts import flows

    with _as_system() as (s, system):
        mission = flows.add_mission(
            db=s,
            actor=system,
            slug=slug,
            name=name,
            kind=kind,
            country_code=country,
            parent_slug=parent,
            timezone=timezone,
            emergency_phone=emergency_phone,
        )
        console.print(
            f"added mission {mission.id}: {mission.slug} ({mission.kind})", highlight=False
        )


def _change_mission(slug: str, field: str, change: Callable[[Any, Any], object]) -> Any:
    """Change one setting of a mission as the system, audit it, and return its new value."""
    from elshi.accounts.service import audit
    from elshi.missions import service

    with _as_system() as (s, _):
        mission = service.get_mission(db=s, slug=slug)
        if mission is None:
            raise fail(f"no mission {slug!r} (see: elshi missions list)", Exit.NOT_FOUND)
        change(s, mission)
        value = getattr(mission, field)
        audit(
            db=s,
            action=f"mission.{field}",
            object_type="mission",
            object_id=mission.id,
            actor_label="cli",
            mission_id=mission.id,
            detail={field: value},
        )
    return value


@missions_app.command("timezone")
def missions_timezone(
    slug: Annotated[str, typer.Argument(help="Mission slug (see `elshi missions list`).")],
    zone: Annotated[str, typer.Argument(help="IANA time zone, e.g. Europe/Berlin.")],
) -> None:
    """Set the time zone a mission's office works in (slots are opened and shown in it)."""
    from elshi.missions import service

    _change_mission(
        slug,
        "timezone",
        lambda s, mission: service.set_timezone(db=s, mission=mission, timezone=zone),
    )
    console.print(f"{slug}: time zone {zone}", highlight=False)


@missions_app.command("phone")
def missions_phone(
    slug: Annotated[str, typer.Argument(help="Mission slug (see `elshi missions list`).")],
    number: Annotated[
        str, typer.Argument(help="Emergency number, e.g. '+49 30 555 0100'; '' removes it.")
    ],
) -> None:
    """Set the consular emergency number citizens see on the mission's crisis pages."""
    from elshi.missions import service

    phone = _change_mission(
        slug,
        "emergency_phone",
        lambda s, mission: service.set_emergency_phone(db=s, mission=mission, phone=number),
    )
    console.print(f"{slug}: emergency phone {phone or '-'}", highlight=False)


@missions_app.command("list")
def missions_list(
    as_json: JsonOpt = False,
) -> None:
    """List headquarters and missions."""
    from elshi.missions import service

    db = database(get_settings())
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
    show_rows(
        rows,
        as_json,
        ("id", "slug", "name", "kind", "country", "parent", "time zone"),
        lambda r: (
            str(r["id"]),
            r["slug"],
            r["name"],
            r["kind"],
            r["country"] or "-",
            str(r["parent_id"] or "-"),
            r["timezone"],
        ),
        record=lambda r: r,
    )
