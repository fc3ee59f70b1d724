"""Statements: versions per language, translation, approval, schedule, channel accounts,
publications, reach and the rebuttal view. Every function checks the actor's role and
mission; nothing here calls a platform (that is flows.py)."""

from __future__ import annotations

import hashlib
import json
import re
import secrets as pysecrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from itsdangerous import BadSignature, URLSafeSerializer
from pydantic import BaseModel, ValidationError
from sqlalchemy import String, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from elshi.accounts.service import PermissionDenied, Principal, audit, authorize
from elshi.crypto import UNSUBSCRIBE, untimed_signer
from elshi.db import utcnow
from elshi.errors import InvalidRequest, NotFound
from elshi.missions.models import Mission
from elshi.settings import Settings
from elshi.speak import crypto
from elshi.speak.models import (
    STATEMENT_LANGUAGES,
    Approval,
    ChannelAccount,
    MetricSnapshot,
    Publication,
    Statement,
    StatementVersion,
    Subscriber,
)
from elshi.speak.text import LengthCheck
from elshi.speak.translation import Translator
from elshi.web.i18n import N_

MAX_TEXT = 20_000
MAX_TITLE = 300
MAX_COMMENT = 4_000
URGENT_APPROVALS = 2
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SpeakError(InvalidRequest):
    """A request cannot be done; the message says what and where, for a person.

    The message is a translatable template; `translated(gettext)` renders it in a language.
    """


class StatementNotFound(NotFound):
    """No statement with this id that the actor may see."""


class NotApproved(PermissionError):
    """The statement is not approved as it stands: nothing may reach a public channel."""


# ---------------------------------------------------------------------------- access


def _visible(actor: Principal, mission_id: int) -> bool:
    ids = actor.missions_where("listen.read")
    return ids is None or mission_id in ids


def get_statement(*, db: Session, actor: Principal, statement_id: int) -> Statement:
    """Return a statement the actor may see, or raise StatementNotFound."""
    st = db.get(Statement, statement_id)
    if st is None or not _visible(actor, st.mission_id):
        raise StatementNotFound(f"no statement with id {statement_id}")
    return st


def list_statements(
    *,
    db: Session,
    actor: Principal,
    status: str | None = None,
    mission_id: int | None = None,
    limit: int = 200,
) -> list[Statement]:
    """Return statements the actor may see, newest first."""
    q = select(Statement).order_by(Statement.updated_at.desc(), Statement.id.desc())
    ids = actor.missions_where("listen.read")
    if ids is not None:
        q = q.where(Statement.mission_id.in_(ids))
    if mission_id is not None:
        q = q.where(Statement.mission_id == mission_id)
    if status:
        q = q.where(Statement.status == status)
    return list(db.scalars(q.limit(limit)))


def approval_queue(*, db: Session, actor: Principal) -> list[Statement]:
    """Return submitted statements the actor may decide on (not their own), oldest first."""
    rows = list_statements(db=db, actor=actor, status="submitted")
    return sorted(
        (
            s
            for s in rows
            if actor.can("speak.approve", s.mission_id)
            and actor.user_id not in (s.submitted_by, s.created_by)
        ),
        key=lambda s: s.submitted_at or s.created_at,
    )


def versions_of(*, db: Session, statement_id: int) -> dict[str, StatementVersion]:
    """Return a statement's versions by language, in the order kk, ru, en, zh, ar."""
    rows = {
        v.lang: v
        for v in db.scalars(
            select(StatementVersion).where(StatementVersion.statement_id == statement_id)
        )
    }
    return {lang: rows[lang] for lang in STATEMENT_LANGUAGES if lang in rows}


def approvals_of(*, db: Session, statement_id: int) -> list[Approval]:
    """Return every decision on a statement, oldest first."""
    return list(
        db.scalars(
            select(Approval).where(Approval.statement_id == statement_id).order_by(Approval.id)
        )
    )


def _audit(db: Session, actor: Principal, action: str, st: Statement, **detail: Any) -> None:
    audit(
        db=db,
        action=action,
        object_type="statement",
        object_id=st.id,
        actor_id=actor.user_id,
        actor_label=actor.label,
        mission_id=st.mission_id,
        detail=detail,
    )


# ---------------------------------------------------------------------------- writing


def _check_lang(lang: str) -> str:
    if lang not in STATEMENT_LANGUAGES:
        raise SpeakError(
            N_("Language %(lang)s: choose one of %(known)s."),
            lang=lang,
            known=", ".join(STATEMENT_LANGUAGES),
        )
    return lang


def _check_text(text: str, what: str = "text") -> str:
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise SpeakError(N_("%(what)s: write something."), what=what)
    if len(text) > MAX_TEXT:
        raise SpeakError(
            N_("%(what)s: at most %(max)s characters (it has %(n)s)."),
            what=what,
            max=MAX_TEXT,
            n=len(text),
        )
    return text


def _check_media(media: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(media or [], 1):
        url = str(item.get("url", "")).strip()
        if not re.match(r"^https?://\S+$", url):
            raise SpeakError(
                N_("Media %(n)s: the address must start with http:// or https://."), n=i
            )
        out.append({"url": url, "alt": str(item.get("alt", ""))[:1000]})
    return out


def create_statement(
    *,
    db: Session,
    actor: Principal,
    mission_id: int,
    title: str,
    lang: str,
    text: str,
    headline: str = "",
    urgent: bool = False,
    topic_query: str | None = None,
    narrative_id: int | None = None,
) -> Statement:
    """Start a statement with its first language version."""
    authorize(actor, "speak.draft", mission_id=mission_id)
    title = title.strip()
    if not title or len(title) > MAX_TITLE:
        raise SpeakError(N_("Title: write 1 to %(max)s characters."), max=MAX_TITLE)
    if db.get(Mission, mission_id) is None:
        raise SpeakError(N_("Mission %(id)s does not exist."), id=mission_id)
    if topic_query is not None and len(topic_query) > 500:
        raise SpeakError(N_("Topic search: at most 500 characters."))
    st = Statement(
        mission_id=mission_id,
        title=title,
        urgent=urgent,
        required_approvals=URGENT_APPROVALS if urgent else 1,
        created_by=actor.user_id,
        topic_query=(topic_query or "").strip() or None,
        narrative_id=narrative_id,
    )
    db.add(st)
    db.flush()
    db.add(
        StatementVersion(
            statement_id=st.id,
            lang=_check_lang(lang),
            text=_check_text(text),
            headline=headline.strip()[:MAX_TITLE],
            updated_by=actor.user_id,
        )
    )
    db.flush()
    _audit(db, actor, "statement.create", st, lang=lang, urgent=urgent)
    return st


def _content_changed(db: Session, actor: Principal, st: Statement) -> None:
    """A change of content voids earlier approvals: back to draft, revision bumped."""
    st.revision += 1
    st.updated_at = utcnow()
    if st.status in ("submitted", "approved"):
        _audit(db, actor, "statement.reopen", st, was=st.status)
        st.status = "draft"
        st.approved_revision = None
        st.approved_digest = None
        st.approved_at = None


def _editable(actor: Principal, st: Statement) -> None:
    authorize(actor, "speak.draft", mission_id=st.mission_id)
    if st.status == "archived":
        raise SpeakError(N_("This statement is archived and cannot be changed."))


def save_version(
    *,
    db: Session,
    actor: Principal,
    statement_id: int,
    lang: str,
    text: str,
    headline: str | None = None,
    variants: dict[str, str] | None = None,
    media: list[dict[str, Any]] | None = None,
) -> StatementVersion:
    """Write (or rewrite) one language version; a change returns the statement to draft."""
    st = get_statement(db=db, actor=actor, statement_id=statement_id)
    _editable(actor, st)
    _check_lang(lang)
    text = _check_text(text, f"{lang} text")
    version = versions_of(db=db, statement_id=st.id).get(lang)
    clean_variants = {
        k: _check_text(v, f"{lang} {k} variant") for k, v in (variants or {}).items() if v.strip()
    }
    if version is None:
        version = StatementVersion(statement_id=st.id, lang=lang)
        db.add(version)
    before = (version.text, version.headline, version.variants, version.media)
    version.text = text
    if headline is not None:
        version.headline = headline.strip()[:MAX_TITLE]
    if variants is not None:
        version.variants = clean_variants
    if media is not None:
        # The links are replaced; uploaded images stay until removed on their own.
        version.media = [m for m in version.media or [] if m.get("key")] + _check_media(media)
    if before != (version.text, version.headline, version.variants, version.media):
        version.updated_by = actor.user_id
        version.updated_at = utcnow()
        if version.source_lang:
            version.reviewed_at = None  # a changed translation needs a new review
            version.reviewed_by = None
        _content_changed(db, actor, st)
        _audit(db, actor, "statement.version.save", st, lang=lang)
    db.flush()
    return version


def add_image(
    *,
    db: Session,
    actor: Principal,
    settings: Settings,
    statement_id: int,
    lang: str,
    data: bytes,
    filename: str,
    alt: str,
    size: int | None = None,
) -> dict[str, Any]:
    """Check and store an image with one language version; the statement goes back to draft.

    Raises SpeakError (what and where) and stores nothing when the image is refused.
    """
    from elshi.speak import media

    st = get_statement(db=db, actor=actor, statement_id=statement_id)
    _editable(actor, st)
    version = versions_of(db=db, statement_id=st.id).get(_check_lang(lang))
    if version is None:
        raise SpeakError(N_("Write the %(lang)s text before adding an image."), lang=lang)
    current = list(version.media or [])
    if sum(1 for m in current if m.get("key")) >= settings.speak_media_per_version:
        raise SpeakError(media.TOO_MANY, n=settings.speak_media_per_version)
    try:
        checked = media.check_image(
            data=data,
            filename=filename,
            alt=alt,
            max_bytes=int(settings.speak_media_max_mb * 1_000_000),
            size=size,
        )
    except media.MediaError as exc:
        raise SpeakError(exc.message, **exc.params) from None
    key = media.store(settings, checked)
    item = media.entry(key, checked, alt)
    try:
        version.media = [*current, item]
        version.updated_by, version.updated_at = actor.user_id, utcnow()
        _content_changed(db, actor, st)
        _audit(db, actor, "statement.image.add", st, lang=lang, key=key)
        db.flush()
    except BaseException:
        media.remove(settings, [key])  # no row refers to it: keep no stray file
        raise
    return item


def remove_image(
    *, db: Session, actor: Principal, settings: Settings, statement_id: int, lang: str, key: str
) -> None:
    """Take an image off a language version (its file is deleted unless published)."""
    st = get_statement(db=db, actor=actor, statement_id=statement_id)
    _editable(actor, st)
    version = versions_of(db=db, statement_id=st.id).get(_check_lang(lang))
    if version is None or not any(m.get("key") == key for m in version.media or []):
        raise SpeakError(N_("This version has no such image."))
    version.media = [m for m in version.media or [] if m.get("key") != key]
    version.updated_by, version.updated_at = actor.user_id, utcnow()
    _content_changed(db, actor, st)
    _audit(db, actor, "statement.image.remove", st, lang=lang, key=key)
    db.flush()
    if not image_published(db=db, key=key):
        from elshi.speak import media

        media.remove(settings, [key])


def _versions_with_image(db: Session, key: str) -> list[StatementVersion]:
    # The key is 32 hex digits made by elshi: a text match on the JSON finds the candidates,
    # the exact check below keeps only real ones.
    rows = db.scalars(
        select(StatementVersion).where(cast(StatementVersion.media, String).contains(key))
    )
    return [v for v in rows if any(m.get("key") == key for m in v.media or [])]


def image_published(*, db: Session, key: str) -> dict[str, Any] | None:
    """Return an image's media entry when a version carrying it has gone out, else None."""
    for v in _versions_with_image(db, key):
        out = db.scalar(
            select(Publication.id).where(
                Publication.version_id == v.id,
                Publication.status.in_(("sending", "sent", "unknown")),
            )
        )
        if out is not None:
            return next(m for m in v.media if m.get("key") == key)
    return None


def image_for_staff(*, db: Session, actor: Principal, key: str) -> dict[str, Any] | None:
    """Return an image's media entry when the actor may see a statement carrying it."""
    for v in _versions_with_image(db, key):
        st = db.get(Statement, v.statement_id)
        if st is not None and _visible(actor, st.mission_id):
            return next(m for m in v.media if m.get("key") == key)
    return None


def draft_translation(
    *,
    db: Session,
    actor: Principal,
    statement_id: int,
    source_lang: str,
    target_lang: str,
    translator: Translator | None = None,
) -> StatementVersion:
    """Draft a version from another language, for a translator to finish and review.

    With a machine-translation backend the draft is its output; without one, the source text
    is copied in to be translated by hand beside the original.
    """
    st = get_statement(db=db, actor=actor, statement_id=statement_id)
    _editable(actor, st)
    _check_lang(target_lang)
    versions = versions_of(db=db, statement_id=st.id)
    source = versions.get(_check_lang(source_lang))
    if source is None:
        raise SpeakError(N_("There is no %(lang)s version to translate from."), lang=source_lang)
    if target_lang in versions:
        raise SpeakError(
            N_("A %(lang)s version exists already; edit it instead."), lang=target_lang
        )
    if target_lang == source_lang:
        raise SpeakError(N_("Choose a language other than the source."))
    text, used = source.text, None
    if translator is not None:
        text = translator.translate(source.text, source=source_lang, target=target_lang)
        used = translator.slug
    version = StatementVersion(
        statement_id=st.id,
        lang=target_lang,
        text=_check_text(text, f"{target_lang} text"),
        headline=source.headline
        if translator is None
        else translator.translate(source.headline, source=source_lang, target=target_lang)
        if source.headline
        else "",
        source_lang=source_lang,
        translated_with=used,
        updated_by=actor.user_id,
    )
    db.add(version)
    _content_changed(db, actor, st)
    db.flush()
    _audit(db, actor, "statement.translate", st, source=source_lang, target=target_lang, mt=used)
    return version


def mark_reviewed(
    *, db: Session, actor: Principal, statement_id: int, lang: str
) -> StatementVersion:
    """Record that a person checked a translated version against its source."""
    st = get_statement(db=db, actor=actor, statement_id=statement_id)
    _editable(actor, st)
    version = versions_of(db=db, statement_id=st.id).get(lang)
    if version is None:
        raise SpeakError(N_("There is no %(lang)s version."), lang=lang)
    version.reviewed_by = actor.user_id
    version.reviewed_at = utcnow()
    _audit(db, actor, "statement.review", st, lang=lang)
    return version


def content_digest(*, db: Session, statement_id: int) -> str:
    """Return a digest of every version's content (what approvers saw)."""
    parts = [
        [v.lang, v.headline, v.text, v.variants or {}, v.media or []]
        for v in versions_of(db=db, statement_id=statement_id).values()
    ]
    blob = json.dumps(parts, ensure_ascii=False, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


# ---------------------------------------------------------------------------- approval


def submit(*, db: Session, actor: Principal, statement_id: int) -> Statement:
    """Send a statement for approval; every translated version must be reviewed first."""
    st = get_statement(db=db, actor=actor, statement_id=statement_id)
    _editable(actor, st)
    if st.status not in ("draft", "returned"):
        raise SpeakError(N_("Only a draft or returned statement can be submitted."))
    versions = versions_of(db=db, statement_id=st.id)
    if not versions:
        raise SpeakError(N_("Write at least one language version first."))
    unreviewed = [lang for lang, v in versions.items() if v.source_lang and not v.reviewed_at]
    if unreviewed:
        raise SpeakError(
            N_("Mark these translations reviewed before submitting: %(langs)s."),
            langs=", ".join(unreviewed),
        )
    st.status = "submitted"
    st.submitted_by = actor.user_id
    st.submitted_at = utcnow()
    st.updated_at = st.submitted_at
    _audit(db, actor, "statement.submit", st, revision=st.revision)
    return st


def decide(
    *,
    db: Session,
    actor: Principal,
    statement_id: int,
    approve: bool,
    comment: str = "",
) -> Statement:
    """Approve a submitted statement, or return it to the drafter with comments.

    The approver must be someone other than whoever wrote and submitted it; an urgent
    statement needs two different approvers.
    """
    st = get_statement(db=db, actor=actor, statement_id=statement_id)
    authorize(actor, "speak.approve", mission_id=st.mission_id)
    if st.status != "submitted":
        raise SpeakError(N_("Only a submitted statement can be approved or returned."))
    if actor.user_id is not None and actor.user_id in (st.submitted_by, st.created_by):
        raise PermissionDenied("a different person must approve: you wrote or submitted it")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise SpeakError(N_("Comment: at most %(max)s characters."), max=MAX_COMMENT)
    if not approve and not comment:
        raise SpeakError(N_("Comment: say what to change when returning a statement."))
    current = [
        a
        for a in approvals_of(db=db, statement_id=st.id)
        if a.revision == st.revision and a.decision == "approve"
    ]
    if approve and any(a.user_id == actor.user_id for a in current):
        raise SpeakError(N_("You have approved this already; a second approver must approve too."))
    db.add(
        Approval(
            statement_id=st.id,
            revision=st.revision,
            user_id=actor.user_id,
            user_label=actor.label,
            decision="approve" if approve else "return",
            comment=comment,
        )
    )
    now = utcnow()
    st.updated_at = now
    if not approve:
        st.status = "returned"
        _audit(db, actor, "statement.return", st, revision=st.revision)
        return st
    _audit(db, actor, "statement.approve", st, revision=st.revision)
    if len(current) + 1 >= st.required_approvals:
        st.status = "approved"
        st.approved_at = now
        st.approved_revision = st.revision
        db.flush()
        st.approved_digest = content_digest(db=db, statement_id=st.id)
    return st


def approval_minutes(st: Statement) -> float | None:
    """Return how long approval took, in minutes (None until approved)."""
    if st.submitted_at is None or st.approved_at is None:
        return None
    return round((st.approved_at - st.submitted_at).total_seconds() / 60, 1)


def assert_publishable(*, db: Session, statement: Statement) -> None:
    """Raise NotApproved unless the statement is approved exactly as it stands now."""
    if (
        statement.status != "approved"
        or statement.approved_revision != statement.revision
        or not statement.approved_digest
    ):
        raise NotApproved(f"statement {statement.id} is {statement.status}, not approved")
    if content_digest(db=db, statement_id=statement.id) != statement.approved_digest:
        raise NotApproved(f"statement {statement.id} changed after it was approved")


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
    audit(
        db=db,
        action="channel.add",
        object_type="channel_account",
        object_id=account.id,
        actor_id=actor.user_id,
        actor_label=actor.label,
        mission_id=mission_id,
        detail={"channel": channel},
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
    audit(
        db=db,
        action="channel.secret",
        object_type="channel_account",
        object_id=account.id,
        actor_id=actor.user_id,
        actor_label=actor.label,
        mission_id=account.mission_id,
    )
    return account


def get_account(*, db: Session, actor: Principal, account_id: int) -> ChannelAccount:
    """Return a channel account the actor may see."""
    account = db.get(ChannelAccount, account_id)
    if account is None or not _visible(actor, account.mission_id):
        raise LookupError(f"no channel account with id {account_id}")
    return account


def list_accounts(
    *, db: Session, actor: Principal, mission_id: int | None = None
) -> list[AccountView]:
    """Return the channel accounts the actor may see (without credentials)."""
    q = select(ChannelAccount).order_by(ChannelAccount.id)
    ids = actor.missions_where("listen.read")
    if ids is not None:
        q = q.where(ChannelAccount.mission_id.in_(ids))
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


# ---------------------------------------------------------------------------- scheduling


def local_to_utc(local: datetime, tz: str) -> datetime:
    """Turn a wall-clock time in the audience's time zone into UTC."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise SpeakError(
            N_("Time zone %(tz)s is not known: use a name like Asia/Almaty."), tz=tz
        ) from None
    return local.replace(tzinfo=zone).astimezone(UTC)


def schedule(
    *,
    db: Session,
    actor: Principal,
    statement_id: int,
    account_ids: list[int],
    at: datetime | None = None,
    tz: str = "UTC",
) -> list[Publication]:
    """Plan an approved statement on channel accounts: at `at` (wall clock in `tz`) or now.

    One publication per version per account, each with its idempotency key, is written now.
    A version too long for an account is recorded as failed with the reason, and the others
    go ahead.
    """
    st = get_statement(db=db, actor=actor, statement_id=statement_id)
    authorize(actor, "speak.draft", mission_id=st.mission_id)
    assert_publishable(db=db, statement=st)
    if not account_ids:
        raise SpeakError(N_("Channels: choose at least one."))
    due = utcnow() if at is None else local_to_utc(at, tz)
    accounts = [a for a in list_accounts(db=db, actor=actor) if a.id in set(account_ids)]
    missing = set(account_ids) - {a.id for a in accounts}
    if missing:
        raise SpeakError(
            N_("Channels: no account %(ids)s."), ids=", ".join(map(str, sorted(missing)))
        )
    wrong = [a.name for a in accounts if a.mission_id != st.mission_id or not a.enabled]
    if wrong:
        raise SpeakError(
            N_("Channels not usable for this mission: %(names)s."), names=", ".join(wrong)
        )
    checks = length_checks(db=db, statement_id=st.id, accounts=accounts)
    versions = versions_of(db=db, statement_id=st.id)
    existing = {
        (p.version_id, p.account_id): p
        for p in db.scalars(select(Publication).where(Publication.statement_id == st.id))
    }
    out = []
    for a in accounts:
        for lang, v in versions.items():
            if lang not in account_languages(a):
                continue
            pub = existing.get((v.id, a.id))
            if pub is not None:
                if pub.status == "pending":
                    pub.due_at = due
                out.append(pub)
                continue
            pub = Publication(
                statement_id=st.id,
                version_id=v.id,
                account_id=a.id,
                channel=a.channel,
                lang=lang,
                text=v.text_for(a.channel),
                idempotency_key=uuid.uuid4().hex,
                due_at=due,
            )
            check = checks.get((lang, a.id))
            if check is not None and not check.ok:
                pub.status = "failed"
                pub.error_kind = "too_long"
                pub.error = f"{check.length} of {check.limit} characters"
                pub.error_detail = {"length": check.length, "limit": check.limit}
            db.add(pub)
            out.append(pub)
    st.scheduled_at = due
    st.schedule_tz = tz if at is not None else st.schedule_tz
    st.updated_at = utcnow()
    db.flush()
    _audit(db, actor, "statement.schedule", st, at=due.isoformat(), accounts=sorted(account_ids))
    return out


def publications_of(*, db: Session, statement_id: int) -> list[Publication]:
    """Return a statement's publications."""
    return list(
        db.scalars(
            select(Publication)
            .where(Publication.statement_id == statement_id)
            .order_by(Publication.account_id, Publication.lang)
        )
    )


def list_publications(
    *,
    db: Session,
    actor: Principal,
    status: str | None = None,
    limit: int = 100,
) -> list[Publication]:
    """Return recent publications the actor may see."""
    q = select(Publication).join(Statement, Statement.id == Publication.statement_id)
    ids = actor.missions_where("listen.read")
    if ids is not None:
        q = q.where(Statement.mission_id.in_(ids))
    if status:
        q = q.where(Publication.status == status)
    return list(db.scalars(q.order_by(Publication.id.desc()).limit(limit)))


def get_publication(*, db: Session, actor: Principal, publication_id: int) -> Publication:
    """Return a publication the actor may see."""
    pub = db.get(Publication, publication_id)
    if pub is None:
        raise LookupError(f"no publication with id {publication_id}")
    get_statement(db=db, actor=actor, statement_id=pub.statement_id)
    return pub


def calendar(
    *, db: Session, actor: Principal, mission_id: int | None, month: date
) -> dict[date, list[Statement]]:
    """Return the statements planned or published in a month, by day (UTC)."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    q = select(Statement).where(Statement.scheduled_at >= start, Statement.scheduled_at < end)
    ids = actor.missions_where("listen.read")
    if ids is not None:
        q = q.where(Statement.mission_id.in_(ids))
    if mission_id is not None:
        q = q.where(Statement.mission_id == mission_id)
    days: dict[date, list[Statement]] = {}
    for st in db.scalars(q.order_by(Statement.scheduled_at)):
        assert st.scheduled_at is not None
        days.setdefault(st.scheduled_at.date(), []).append(st)
    return days


# ---------------------------------------------------------------------------- reach


@dataclass
class ReachRow:
    """Latest engagement of one publication."""

    publication: Publication
    account_name: str
    views: int | None = None
    reactions: int | None = None
    reposts: int | None = None
    replies: int | None = None
    at: datetime | None = None


@dataclass
class Reach:
    """Engagement of a statement per publication, and totals per language and channel."""

    rows: list[ReachRow] = field(default_factory=list)
    by_lang: dict[str, dict[str, int]] = field(default_factory=dict)
    by_channel: dict[str, dict[str, int]] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)


_METRICS = ("views", "reactions", "reposts", "replies")


def reach(*, db: Session, statement_id: int) -> Reach:
    """Return the latest engagement snapshot of each publication, with totals."""
    pubs = publications_of(db=db, statement_id=statement_id)
    names = {
        a.id: a.name
        for a in db.scalars(
            select(ChannelAccount).where(ChannelAccount.id.in_({p.account_id for p in pubs}))
        )
    }
    latest: dict[int, MetricSnapshot] = {}
    if pubs:
        newest = (
            select(MetricSnapshot.publication_id, func.max(MetricSnapshot.id).label("mid"))
            .where(MetricSnapshot.publication_id.in_([p.id for p in pubs]))
            .group_by(MetricSnapshot.publication_id)
            .subquery()
        )
        for found in db.scalars(
            select(MetricSnapshot).join(newest, MetricSnapshot.id == newest.c.mid)
        ):
            latest[found.publication_id] = found
    out = Reach(total=dict.fromkeys(_METRICS, 0))
    for p in pubs:
        snap = latest.get(p.id)
        row = ReachRow(p, names.get(p.account_id, "?"))
        if snap is not None:
            row.views, row.reactions, row.reposts, row.replies = (
                snap.views,
                snap.reactions,
                snap.reposts,
                snap.replies,
            )
            row.at = snap.at
            for key in _METRICS:
                value = getattr(snap, key) or 0
                out.by_lang.setdefault(p.lang, dict.fromkeys(_METRICS, 0))[key] += value
                out.by_channel.setdefault(p.channel, dict.fromkeys(_METRICS, 0))[key] += value
                out.total[key] += value
        out.rows.append(row)
    return out


# ---------------------------------------------------------------------------- audience

#: The Listen platforms whose authors an engaging account of a channel may be.
AUTHOR_PLATFORMS = {"mastodon": ("mastodon",), "bluesky": ("bluesky",), "x": ("x", "twitter")}


def _norm_handle(handle: str) -> str:
    return handle.strip().removeprefix("@").lower()


def record_engagers(*, db: Session, publication_id: int, platform: str, engagers: list[Any]) -> int:
    """Keep the accounts that engaged with a publication (each account and kind once);
    return how many were new."""
    from elshi.speak.models import Engager

    seen = {
        (h, k)
        for h, k in db.execute(
            select(Engager.handle, Engager.kind).where(Engager.publication_id == publication_id)
        )
    }
    added = 0
    for e in engagers:
        handle = _norm_handle(e.handle)[:300]
        if not handle or e.kind not in ("reply", "repost", "like") or (handle, e.kind) in seen:
            continue
        seen.add((handle, e.kind))
        db.add(
            Engager(
                publication_id=publication_id,
                platform=platform,
                handle=handle,
                name=(e.name or "")[:300],
                kind=e.kind,
            )
        )
        added += 1
    db.flush()
    return added


@dataclass
class Audience:
    """Who engaged with a statement's publications, by Listen actor type.

    Counts are of distinct accounts; "unknown" holds accounts that are not Listen authors or
    have no actor type yet, kept apart from the typed ones.
    """

    types: tuple[str, ...]
    total: dict[str, int]
    by_channel: dict[str, dict[str, int]]
    by_kind: dict[str, dict[str, int]]
    #: Typed accounts other than citizens (name, handle, platform, type, author id).
    named: list[tuple[str, str, str, str, int]]

    @property
    def accounts(self) -> int:
        """Return how many distinct accounts engaged."""
        return sum(self.total.values())

    @property
    def known_share(self) -> float | None:
        """Return the share of engaging accounts whose actor type is known."""
        n = self.accounts
        return (n - self.total.get("unknown", 0)) / n if n else None


def audience(*, db: Session, statement_id: int) -> Audience:
    """Return who engaged with a statement, matched to Listen authors and their actor types."""
    from elshi.listen.models import Author
    from elshi.speak.models import Engager
    from elshi.watch.models import ACTOR_TYPES

    rows = db.execute(
        select(Engager.platform, Engager.handle, Engager.name, Engager.kind)
        .join(Publication, Publication.id == Engager.publication_id)
        .where(Publication.statement_id == statement_id)
    ).all()
    wanted: dict[str, set[str]] = {}
    for platform, handle, _, _ in rows:
        for author_platform in AUTHOR_PLATFORMS.get(platform, (platform,)):
            wanted.setdefault(author_platform, set()).add(handle)
    typed: dict[tuple[str, str], Author] = {}
    for author_platform, handles in wanted.items():
        listed = sorted(handles)
        for i in range(0, len(listed), 500):
            for found in db.scalars(
                select(Author).where(
                    Author.platform == author_platform,
                    func.lower(Author.handle).in_(listed[i : i + 500]),
                )
            ):
                typed[(author_platform, _norm_handle(found.handle))] = found
    types = (*(t for t in ACTOR_TYPES if t != "unknown"), "unknown")
    out = Audience(
        types=types,
        total=dict.fromkeys(types, 0),
        by_channel={},
        by_kind={k: dict.fromkeys(types, 0) for k in ("reply", "repost", "like")},
        named=[],
    )
    counted: set[tuple[str, str]] = set()
    per_channel: set[tuple[str, str]] = set()
    per_kind: set[tuple[str, str, str]] = set()
    for platform, handle, name, kind in rows:
        author = next(
            (
                typed[(p, handle)]
                for p in AUTHOR_PLATFORMS.get(platform, (platform,))
                if (p, handle) in typed
            ),
            None,
        )
        actor = author.actor_type if author is not None and author.actor_type in types else None
        actor = actor or "unknown"
        key = (platform, handle)
        if key not in counted:
            counted.add(key)
            out.total[actor] += 1
            if author is not None and actor not in ("unknown", "citizen"):
                out.named.append(
                    (author.name or name or handle, handle, platform, actor, author.id)
                )
        if key not in per_channel:
            per_channel.add(key)
            out.by_channel.setdefault(platform, dict.fromkeys(types, 0))[actor] += 1
        if (platform, handle, kind) not in per_kind:
            per_kind.add((platform, handle, kind))
            out.by_kind[kind][actor] += 1
    out.named.sort(key=lambda n: (types.index(n[3]), n[0].lower()))
    return out


# ---------------------------------------------------------------------------- rebuttal


@dataclass
class Period:
    """Volume and negative share of a topic's posts in one window."""

    start: datetime
    end: datetime
    volume: int
    negative: int
    scored: int
    daily: list[tuple[date, int]]

    @property
    def negative_share(self) -> float | None:
        """Return the share of scored posts that are negative, or None when none are scored."""
        return self.negative / self.scored if self.scored else None

    @property
    def per_day(self) -> float:
        """Return the mean posts per day in the window."""
        days = max((self.end - self.start).total_seconds() / 86400, 1 / 24)
        return self.volume / days


@dataclass
class Rebuttal:
    """A topic's posts before and after the statement answering it went out."""

    query: str
    narrative_id: int | None
    answered_at: datetime
    before: Period
    after: Period


def _period(
    db: Session, query: str, start: datetime, end: datetime, mission_ids: frozenset[int] | None
) -> Period:
    from elshi.listen.models import Annotation, Post
    from elshi.listen.service import SearchQuery, match_conditions

    conds = match_conditions(
        db=db, query=SearchQuery(q=query, since=start, until=end, mission_ids=mission_ids)
    )
    where = and_(*conds)
    volume = db.scalar(select(func.count()).select_from(Post).where(where)) or 0
    sentiment = (
        select(Annotation.label, func.count())
        .join(Post, Post.id == Annotation.post_id)
        .where(where, Annotation.enricher == "sentiment")
        .group_by(Annotation.label)
    )
    counts = {label: n for label, n in db.execute(sentiment)}
    day = func.date(Post.published_at)
    daily_rows = db.execute(select(day, func.count()).where(where).group_by(day).order_by(day))
    daily = [(d if isinstance(d, date) else date.fromisoformat(str(d)), n) for d, n in daily_rows]
    return Period(
        start=start,
        end=end,
        volume=volume,
        negative=counts.get("negative", 0),
        scored=sum(counts.values()),
        daily=daily,
    )


def rebuttal(
    *, db: Session, actor: Principal, statement_id: int, days: int = 3, now: datetime | None = None
) -> Rebuttal | None:
    """Return the answered topic's volume and negative share before and after the answer."""
    st = get_statement(db=db, actor=actor, statement_id=statement_id)
    if not st.topic_query:
        return None
    first_sent = db.scalar(
        select(func.min(Publication.sent_at)).where(
            Publication.statement_id == st.id, Publication.status == "sent"
        )
    )
    now = now or utcnow()
    answered = first_sent or st.scheduled_at or now
    window = timedelta(days=max(1, min(days, 90)))
    mission_ids = actor.missions_where("listen.read")
    return Rebuttal(
        query=st.topic_query,
        narrative_id=st.narrative_id,
        answered_at=answered,
        before=_period(db, st.topic_query, answered - window, answered, mission_ids),
        after=_period(db, st.topic_query, answered, min(answered + window, now), mission_ids),
    )


def link_topic(
    *,
    db: Session,
    actor: Principal,
    statement_id: int,
    query: str,
    narrative_id: int | None = None,
) -> Statement:
    """Link a statement to the Listen topic (search) it answers."""
    st = get_statement(db=db, actor=actor, statement_id=statement_id)
    authorize(actor, "speak.draft", mission_id=st.mission_id)
    query = query.strip()
    if len(query) > 500:
        raise SpeakError(N_("Topic search: at most 500 characters."))
    st.topic_query = query or None
    st.narrative_id = narrative_id
    _audit(db, actor, "statement.topic", st, narrative_id=narrative_id)
    return st


# ---------------------------------------------------------------------------- subscribers


def _unsubscribe_signer(settings: Settings) -> URLSafeSerializer:
    return untimed_signer(settings, UNSUBSCRIBE, salt="elshi.unsubscribe")


def unsubscribe_url(settings: Settings, subscriber_id: int) -> str:
    """Return the signed link that ends one subscription."""
    token = _unsubscribe_signer(settings).dumps(subscriber_id)
    return f"{settings.base_url}/news-unsubscribe/{token}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def subscribe(
    *, db: Session, mission_id: int, email: str, lang: str
) -> tuple[Subscriber, str | None]:
    """Record a subscription request; return it and the confirmation token (None if confirmed)."""
    email = email.strip().lower()
    if len(email) > 320 or not _EMAIL.match(email):
        raise SpeakError(N_("This is not an e-mail address."))
    _check_lang(lang)
    sub = db.scalar(
        select(Subscriber).where(Subscriber.mission_id == mission_id, Subscriber.email == email)
    )
    token = pysecrets.token_urlsafe(24)
    if sub is None:
        sub = Subscriber(mission_id=mission_id, email=email, lang=lang, token_hash=_digest(token))
        db.add(sub)
    elif sub.confirmed_at is not None and sub.unsubscribed_at is None:
        sub.lang = lang
        return sub, None
    else:
        sub.token_hash, sub.lang, sub.unsubscribed_at = _digest(token), lang, None
        sub.confirmed_at = None
    db.flush()
    audit(
        db=db,
        action="subscriber.request",
        object_type="subscriber",
        object_id=sub.id,
        mission_id=mission_id,
    )
    return sub, token


def confirm_subscription(*, db: Session, token: str) -> Subscriber | None:
    """Confirm a subscription by the token from its e-mail (double opt-in)."""
    sub = db.scalar(select(Subscriber).where(Subscriber.token_hash == _digest(token)))
    if sub is None:
        return None
    if sub.confirmed_at is None:
        sub.confirmed_at = utcnow()
        audit(
            db=db,
            action="subscriber.confirm",
            object_type="subscriber",
            object_id=sub.id,
            mission_id=sub.mission_id,
        )
    return sub


def unsubscribe(*, db: Session, settings: Settings, token: str) -> Subscriber | None:
    """End a subscription from its signed link."""
    try:
        sub_id = _unsubscribe_signer(settings).loads(token)
    except BadSignature:
        return None
    sub = db.get(Subscriber, sub_id) if isinstance(sub_id, int) else None
    if sub is not None and sub.unsubscribed_at is None:
        sub.unsubscribed_at = utcnow()
        audit(
            db=db,
            action="subscriber.unsubscribe",
            object_type="subscriber",
            object_id=sub.id,
            mission_id=sub.mission_id,
        )
    return sub


def news_items(
    *, db: Session, mission_slug: str, lang: str, limit: int = 50
) -> tuple[Mission | None, list[tuple[Publication, StatementVersion]]]:
    """Return a mission's published web items in a language, newest first."""
    mission = db.scalar(select(Mission).where(Mission.slug == mission_slug))
    if mission is None:
        return None, []
    rows = db.execute(
        select(Publication, StatementVersion)
        .join(StatementVersion, StatementVersion.id == Publication.version_id)
        .join(Statement, Statement.id == Publication.statement_id)
        .where(
            Statement.mission_id == mission.id,
            Publication.channel == "web",
            Publication.status == "sent",
            Publication.lang == lang,
        )
        .order_by(Publication.sent_at.desc(), Publication.id.desc())
        .limit(limit)
    ).all()
    return mission, [(p, v) for p, v in rows]


def due_publications(
    *, db: Session, now: datetime, lease: timedelta
) -> tuple[list[int], list[int]]:
    """Return ids of publications due to send, and of ones claimed too long ago (stuck)."""
    due = list(
        db.scalars(
            select(Publication.id).where(
                Publication.status == "pending",
                Publication.due_at <= now,
                or_(Publication.retry_at.is_(None), Publication.retry_at <= now),
            )
        )
    )
    stuck = list(
        db.scalars(
            select(Publication.id).where(
                Publication.status == "sending", Publication.claimed_at < now - lease
            )
        )
    )
    return due, stuck
