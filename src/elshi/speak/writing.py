"""Writing a statement: versions per language, images, translation drafts, review."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from elshi.accounts.service import Principal, authorize
from elshi.db import utcnow
from elshi.missions.models import Mission
from elshi.settings import Settings
from elshi.speak.models import (
    STATEMENT_LANGUAGES,
    Publication,
    Statement,
    StatementVersion,
)
from elshi.speak.service import (
    MAX_TEXT,
    MAX_TITLE,
    URGENT_APPROVALS,
    SpeakError,
    Translator,
    _audit,
    _visible,
    get_statement,
    versions_of,
)
from elshi.web.i18n import N_

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
    by_hand: tuple[str, str] | None = None,
) -> StatementVersion:
    """Draft a version from another language, for a translator to finish and review.

    With a machine-translation backend the draft is its output; with `by_hand` (headline,
    text) it is the translator's own words; with neither, the source text is copied in to be
    translated beside the original.
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
    text, headline, used = source.text, source.headline, None
    if translator is not None:
        text = translator.translate(source.text, source=source_lang, target=target_lang)
        headline = (
            translator.translate(source.headline, source=source_lang, target=target_lang)
            if source.headline
            else ""
        )
        used = translator.slug
    elif by_hand is not None:
        headline, text = by_hand
    version = StatementVersion(
        statement_id=st.id,
        lang=target_lang,
        text=_check_text(text, f"{target_lang} text"),
        headline=headline.strip()[:MAX_TITLE],
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


def content_snapshot(*, db: Session, statement_id: int) -> list[dict[str, Any]]:
    """Return every version's words as an approver sees them: headline, text, variants."""
    return [
        {"lang": v.lang, "headline": v.headline, "text": v.text, "variants": dict(v.variants or {})}
        for v in versions_of(db=db, statement_id=statement_id).values()
    ]


def content_digest(*, db: Session, statement_id: int) -> str:
    """Return a digest of every version's content (what approvers saw)."""
    parts = [
        [v.lang, v.headline, v.text, v.variants or {}, v.media or []]
        for v in versions_of(db=db, statement_id=statement_id).values()
    ]
    blob = json.dumps(parts, ensure_ascii=False, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


__all__ = [
    "_editable",
    "add_image",
    "content_digest",
    "content_snapshot",
    "create_statement",
    "draft_translation",
    "image_for_staff",
    "image_published",
    "mark_reviewed",
    "remove_image",
    "save_version",
]
