"""A mission's channel accounts (where statements are published) and their secrets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from elshi.accounts.service import Principal, audit_by, authorize, get_readable, scoped
from elshi.missions.models import Mission
from elshi.settings import Settings
from elshi.speak import crypto
from elshi.speak.models import (
    STATEMENT_LANGUAGES,
    ChannelAccount,
    StatementVersion,
)
from elshi.speak.service import SpeakError, versions_of
from elshi.speak.text import LengthCheck

if TYPE_CHECKING:
    from elshi.speak.channels.base import Preview
from elshi.web.i18n import N_

# ---------------------------------------------------------------------------- channels


@dataclass
class AccountView:
    """A channel account as shown to staff: never its credentials."""

    id: int
    mission_id: int
    channel: str
    name: str
    config: dict[str, Any]
    enabled: bool
    has_secret: bool
    last_error: str | None


def _validate(model: type[BaseModel], data: dict[str, Any], what: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or what}: {e['msg']}" for e in exc.errors()
        )
        raise SpeakError(N_("%(what)s: %(problems)s"), what=what, problems=problems) from None


def add_account(
    *,
    db: Session,
    actor: Principal,
    settings: Settings,
    mission_id: int,
    channel: str,
    name: str,
    config: dict[str, Any],
    secrets: dict[str, Any],
) -> ChannelAccount:
    """Add a channel account; its credentials are checked and stored encrypted."""
    from elshi.plugins import UnknownPlugin, get_channel

    authorize(actor, "channels.manage", mission_id=mission_id)
    try:
        plugin = get_channel(channel)
    except UnknownPlugin as exc:
        raise SpeakError(N_("Unknown channel: %(error)s"), error=str(exc.args[0])) from None
    if db.get(Mission, mission_id) is None:
        raise SpeakError(N_("Mission %(id)s does not exist."), id=mission_id)
    cfg = _validate(plugin.Config, config, "settings")
    sec = _validate(plugin.Secrets, secrets, "credentials")
    account = ChannelAccount(
        mission_id=mission_id,
        channel=channel,
        name=name.strip()[:200] or channel,
        config=cfg.model_dump(mode="json"),
        secret=crypto.encrypt(settings, sec.model_dump(mode="json")),
    )
    db.add(account)
    db.flush()
    audit_by(
        actor,
        db,
        "channel.add",
        "channel_account",
        account.id,
        mission_id=mission_id,
        channel=channel,
    )
    return account


def set_account_secrets(
    *,
    db: Session,
    actor: Principal,
    settings: Settings,
    account_id: int,
    secrets: dict[str, Any],
) -> ChannelAccount:
    """Replace an account's credentials (e.g. after a token expired)."""
    from elshi.plugins import get_channel

    account = get_account(db=db, actor=actor, account_id=account_id)
    authorize(actor, "channels.manage", mission_id=account.mission_id)
    sec = _validate(get_channel(account.channel).Secrets, secrets, "credentials")
    account.secret = crypto.encrypt(settings, sec.model_dump(mode="json"))
    account.last_error = None
    audit_by(
        actor, db, "channel.secret", "channel_account", account.id, mission_id=account.mission_id
    )
    return account


def get_account(*, db: Session, actor: Principal, account_id: int) -> ChannelAccount:
    """Return a channel account the actor may see."""
    missing = LookupError(f"no channel account with id {account_id}")
    return get_readable(db, ChannelAccount, account_id, actor, missing)


def list_accounts(
    *, db: Session, actor: Principal, mission_id: int | None = None
) -> list[AccountView]:
    """Return the channel accounts the actor may see (without credentials)."""
    q = select(ChannelAccount).order_by(ChannelAccount.id)
    q = scoped(q, ChannelAccount.mission_id, actor, "listen.read")
    if mission_id is not None:
        q = q.where(ChannelAccount.mission_id == mission_id)
    return [
        AccountView(
            a.id, a.mission_id, a.channel, a.name, a.config, a.enabled, bool(a.secret), a.last_error
        )
        for a in db.scalars(q)
    ]


def account_languages(account: ChannelAccount | AccountView) -> list[str]:
    """Return the languages an account carries (all when it names none)."""
    return list(account.config.get("languages") or STATEMENT_LANGUAGES)


def length_checks(
    *, db: Session, statement_id: int, accounts: list[AccountView]
) -> dict[tuple[str, int], LengthCheck]:
    """Return the length check of every version on every account that would carry it."""
    from elshi.plugins import channels

    known = channels()
    out: dict[tuple[str, int], LengthCheck] = {}
    for lang, v in versions_of(db=db, statement_id=statement_id).items():
        for a in accounts:
            cls = known.get(a.channel)
            if cls is None or lang not in account_languages(a):
                continue
            plugin = cls()
            limit = plugin.limit(cls.Config.model_validate(a.config))
            if limit is not None:
                out[(lang, a.id)] = limit.check(v.text_for(a.channel))
    return out


def previews(
    *, accounts: list[AccountView], versions: dict[str, StatementVersion], title: str
) -> dict[str, list[tuple[AccountView, Preview]]]:
    """Return, for every language version, what each account carrying it would post (its
    channel variant or the text, the subject line) and how long that is on the channel."""
    from elshi.plugins import channels

    known = channels()
    out: dict[str, list[tuple[AccountView, Preview]]] = {}
    for lang, v in versions.items():
        out[lang] = []
        for a in accounts:
            cls = known.get(a.channel)
            if cls is None or lang not in account_languages(a):
                continue
            config = cls.Config.model_validate(a.config)
            seen = cls().preview(
                config, text=v.text_for(a.channel), headline=v.headline, title=title
            )
            out[lang].append((a, seen))
    return out


def counting_rules(accounts: list[AccountView]) -> list[dict[str, Any]]:
    """Return each account's length rule and subject line, for the editor's live previews."""
    from elshi.plugins import channels

    known = channels()
    out = []
    for a in accounts:
        cls = known.get(a.channel)
        if cls is None:
            continue
        limit = cls().limit(cls.Config.model_validate(a.config))
        out.append(
            {
                "account": a.id,
                "channel": a.channel,
                "languages": account_languages(a),
                "max": limit.max if limit is not None else None,
                "counting": limit.counting if limit is not None else "graphemes",
                "urls_as": limit.urls_as if limit is not None else None,
                "subject": cls.subject_fallback,
            }
        )
    return out


__all__ = [
    "AccountView",
    "account_languages",
    "add_account",
    "counting_rules",
    "get_account",
    "length_checks",
    "list_accounts",
    "previews",
    "set_account_secrets",
]
