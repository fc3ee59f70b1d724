"""Speak's staff pages for writing: the statement list, a new statement, the editor with its
language versions and images, approval, the schedule and the publications' buttons."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from babel.numbers import format_decimal
from fastapi import Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from elshi.accounts.service import PermissionDenied, Principal
from elshi.speak import flows, service
from elshi.speak.channels.base import Preview
from elshi.speak.models import STATEMENT_LANGUAGES
from elshi.speak.views.common import (
    FORM_EXPIRED,
    STATUS_NAMES,
    _back,
    _error_page,
    _gettext,
    _image_response,
    _queue,
    _statement_or_404,
    advice,
    router,
)
from elshi.web.actions import StaffAction, StaffForm
from elshi.web.bounds import Id, in_range
from elshi.web.deps import DbSession, StaffUser
from elshi.web.i18n import N_
from elshi.web.templating import render, request_language, settings_of, translate

T = TypeVar("T")

# ---------------------------------------------------------------------------- list, create


@router.get("/speak")
def statements(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Statements the user may see, newest first."""
    rows = service.list_statements(db=db, actor=principal)
    langs = {st.id: list(service.versions_of(db=db, statement_id=st.id)) for st in rows}
    return render(
        request,
        "speak_list.html",
        {
            "active": "speak",
            "statements": rows,
            "langs": langs,
            "status_names": STATUS_NAMES,
            "can_draft": bool(
                service.missions_for(db=db, actor=principal, permission="speak.draft")
            ),
            "queue": len(service.approval_queue(db=db, actor=principal)),
        },
    )


@router.get("/speak/new")
def new_statement(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """The form for a new statement."""
    return _new_form(request, db, principal, {}, None)


def _new_form(
    request: Request,
    db: Session,
    principal: Principal,
    values: dict[str, Any],
    error: str | None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "speak_new.html",
        {
            "active": "speak",
            "missions": service.missions_for(db=db, actor=principal, permission="speak.draft"),
            "languages_all": STATEMENT_LANGUAGES,
            "v": values,
            "error": error,
        },
        status=status,
    )


@router.post("/speak/new")
def create_statement(
    act: StaffForm,
    mission_id: Annotated[str, Form(max_length=20)] = "",
    title: Annotated[str, Form(max_length=1000)] = "",
    lang: Annotated[str, Form(max_length=8)] = "kk",
    headline: Annotated[str, Form(max_length=1000)] = "",
    text: Annotated[str, Form(max_length=50_000)] = "",
    urgent: Annotated[str, Form(max_length=8)] = "",
    topic_query: Annotated[str, Form(max_length=1000)] = "",
    narrative_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Create a statement with its first language version."""
    request = act.request
    values = {
        "mission_id": mission_id,
        "title": title,
        "lang": lang,
        "headline": headline,
        "text": text,
        "urgent": urgent,
        "topic_query": topic_query,
        "narrative_id": narrative_id,
    }

    def change() -> Any:
        if not mission_id.isdigit():
            raise service.SpeakError(N_("Choose a mission."))
        if narrative_id and not narrative_id.isdigit():
            raise service.SpeakError(N_("The narrative number must be a whole number."))
        return service.create_statement(
            db=act.db,
            actor=act.principal,
            mission_id=int(mission_id),
            title=title,
            lang=lang,
            text=text,
            headline=headline,
            urgent=bool(urgent),
            topic_query=topic_query or None,
            narrative_id=int(narrative_id) if narrative_id else None,
        )

    def again(message: str, status: int = 400) -> Response:
        return _new_form(request, act.db, act.principal, values, message, status)

    return act.handle(
        change,
        expired=lambda: again(translate(request, FORM_EXPIRED)),
        done=lambda st: _back(st.id),
        refused=[
            (service.SpeakError, lambda exc: again(exc.translated(_gettext(request)))),
            (
                PermissionDenied,
                lambda _: again(
                    translate(request, N_("You may not write statements for this mission.")),
                    403,
                ),
            ),
        ],
    )


# ---------------------------------------------------------------------------- editor


NOTES = {
    "saved": N_("Saved."),
    "submitted": N_("Submitted for approval."),
    "approved": N_("Approved."),
    "approval-recorded": N_("Your approval is recorded; a second approver is needed."),
    "returned": N_("Returned to the drafter with your comments."),
    "scheduled": N_("Scheduled. The publications are listed below."),
    "retrying": N_("Queued again."),
    "marked": N_("Marked as sent."),
    "reviewed": N_("Marked reviewed."),
    "linked": N_("Topic linked."),
    "image-added": N_("Image added. The statement needs approval again."),
    "image-removed": N_("Image removed."),
}


@router.get("/speak/{statement_id}")
def editor(request: Request, statement_id: Id, db: DbSession, principal: StaffUser) -> Response:
    """Language versions side by side with per-channel counters, approval, schedule, status."""
    return _editor(request, db, principal, statement_id)


def _editor(
    request: Request,
    db: Session,
    principal: Principal,
    statement_id: int,
    error: str | None = None,
    status: int = 200,
) -> Response:
    st = _statement_or_404(request, db, principal, statement_id)
    if isinstance(st, Response):
        return st
    versions = service.versions_of(db=db, statement_id=st.id)
    accounts = [
        a
        for a in service.list_accounts(db=db, actor=principal, mission_id=st.mission_id)
        if a.enabled
    ]
    words = {key: translate(request, msg) for key, msg in COUNTER_WORDS.items()}
    rules = service.counting_rules(accounts)
    for rule in rules:
        rule["max_label"] = (
            format_decimal(rule["max"], locale=request_language(request)) if rule["max"] else ""
        )
    labels = {r["account"]: r["max_label"] for r in rules}
    previews = {
        lang: [
            {"account": a, "preview": p, "counter": counter_text(words, p, labels.get(a.id, ""))}
            for a, p in seen
        ]
        for lang, seen in service.previews(
            accounts=accounts, versions=versions, title=st.title
        ).items()
    }
    pubs = service.publications_of(db=db, statement_id=st.id)
    note = request.query_params.get("note", "")
    mission = service.mission_of(db=db, statement=st)
    approvals = service.approvals_of(db=db, statement_id=st.id)
    return render(
        request,
        "speak_edit.html",
        {
            "active": "speak",
            "st": st,
            "mission": mission,
            "versions": versions,
            "missing_langs": [lang for lang in STATEMENT_LANGUAGES if lang not in versions],
            "accounts": accounts,
            "account_names": {a.id: a.name for a in accounts},
            "previews": previews,
            "counting_json": json.dumps({"rules": rules, "words": words}),
            "approvals": approvals,
            "superseded": {a.id for a in approvals if service.superseded(st, a)},
            "changes": _changes(db, st) if st.status == "submitted" else None,
            "approval_minutes": service.approval_minutes(st),
            "publications": pubs,
            "advice": {p.id: advice(request, p) for p in pubs if p.error_kind},
            "status_names": STATUS_NAMES,
            "can_draft": principal.can("speak.draft", st.mission_id),
            "can_approve": principal.can("speak.approve", st.mission_id)
            and principal.user_id not in (st.submitted_by, st.created_by),
            "note": NOTES.get(note),
            "error": error,
            "now_local": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M"),
            "media_max_mb": f"{settings_of(request).speak_media_max_mb:g}",
            "translators": _translator_titles(request),
        },
        status=status,
    )


def _translator_titles(request: Request) -> dict[str, str]:
    from elshi.speak.translation import available

    return {slug: title for slug, (title, _) in available(settings_of(request)).items()}


#: The words of the editor's live counters ("n" and "over" are plain digits, "max" is the
#: limit as the page writes numbers); speak.js fills in the same words as the officer types.
COUNTER_WORDS = {
    "fits": N_("%(n)s of %(max)s characters"),
    "over": N_("%(n)s of %(max)s characters: too long by %(over)s"),
    "empty": N_("%(n)s of %(max)s characters: empty, write the text"),
    "free": N_("%(n)s characters (no limit)"),
}


def counter_text(words: dict[str, str], preview: Preview, max_label: str) -> str:
    """Return a counter's words for a preview: the same as speak.js writes for that text."""
    if preview.limit is None:
        key = "free"
    elif preview.length == 0:
        key = "empty"
    else:
        key = "over" if preview.over else "fits"
    return words[key] % {"n": preview.length, "max": max_label, "over": preview.over}


def _changes(db: Session, st: Any) -> list[Any] | None:
    """Return the changes since the last approved version (None when there is none)."""
    from elshi.speak.diff import changes

    last = service.last_approved(db=db, statement=st)
    if last is None or last.content is None:
        return None
    return changes(last.content, service.content_snapshot(db=db, statement_id=st.id))


def _editor_form(
    act: StaffAction,
    statement_id: int,
    change: Callable[[], T],
    note: str | Callable[[T], str],
    deliver: Callable[[T], None] | None = None,
) -> Response:
    """Run one editor action; show its error on the editor, or go back with a note."""
    request = act.request

    def again(message: str, status: int = 400) -> Response:
        return _editor(request, act.db, act.principal, statement_id, message, status)

    return act.handle(
        change,
        expired=lambda: again(translate(request, FORM_EXPIRED)),
        done=lambda result: _back(statement_id, note(result) if callable(note) else note),
        deliver=deliver,
        refused=[
            (
                service.StatementNotFound,
                lambda _: _error_page(request, N_("There is no such statement."), 404),
            ),
            (service.SpeakError, lambda exc: again(exc.translated(_gettext(request)))),
            (
                service.NotApproved,
                lambda _: again(
                    translate(
                        request, N_("Only an approved statement can be scheduled or published.")
                    )
                ),
            ),
            (
                PermissionDenied,
                lambda _: again(
                    translate(request, N_("You may not do this: it needs another role or person.")),
                    403,
                ),
            ),
        ],
    )


def _step(
    act: StaffAction,
    statement_id: int,
    step: Callable[..., T],
    note: str | Callable[[T], str],
    deliver: Callable[[T], None] | None = None,
    **args: Any,
) -> Response:
    """Run one service step on the statement as the signed-in person (see `_editor_form`)."""
    return _editor_form(
        act,
        statement_id,
        lambda: step(db=act.db, actor=act.principal, statement_id=statement_id, **args),
        note,
        deliver,
    )


@router.post("/speak/{statement_id}/versions/{lang}")
async def save_version(
    request: Request, statement_id: Id, lang: str, db: DbSession, principal: StaffUser
) -> Response:
    """Save one language version (text, headline, per-channel variants)."""
    form = await request.form()
    text = str(form.get("text", ""))[:50_000]
    headline = str(form.get("headline", ""))[:1000]
    variants = {
        str(k).removeprefix("variant_"): str(v)[:50_000]
        for k, v in form.multi_items()
        if str(k).startswith("variant_") and str(k)[8:] in _channel_slugs()
    }
    media = [
        {"url": line.strip()}
        for line in str(form.get("media", ""))[:10_000].splitlines()
        if line.strip()
    ]
    return _step(
        StaffAction(request, db, str(form.get("csrf_token", "")), principal),
        statement_id,
        service.save_version,
        "saved",
        lang=lang,
        text=text,
        headline=headline,
        variants=variants,
        media=media,
    )


@router.post("/speak/{statement_id}/versions/{lang}/images")
async def add_image(
    request: Request, statement_id: Id, lang: str, db: DbSession, principal: StaffUser
) -> Response:
    """Upload an image with one language version (checked by content; alt text required)."""
    settings = settings_of(request)
    form = await request.form()
    upload = form.get("image")
    limit = int(settings.speak_media_max_mb * 1_000_000)
    data, filename, size = b"", "", 0
    if upload is not None and not isinstance(upload, str):
        data = await upload.read(limit + 1)  # one byte over is enough to refuse
        filename = upload.filename or ""
        size = max(upload.size or 0, len(data))
    alt = str(form.get("alt", ""))[:5000]
    return _editor_form(
        StaffAction(request, db, str(form.get("csrf_token", "")), principal),
        statement_id,
        lambda: service.add_image(
            db=db,
            actor=principal,
            settings=settings,
            statement_id=statement_id,
            lang=lang,
            data=data,
            filename=filename or "image",
            alt=alt,
            size=size,
        ),
        "image-added",
    )


@router.post("/speak/{statement_id}/versions/{lang}/images/{key}/remove")
def remove_image(statement_id: Id, lang: str, key: str, act: StaffForm) -> Response:
    """Take an image off a language version."""
    return _editor_form(
        act,
        statement_id,
        lambda: service.remove_image(
            db=act.db,
            actor=act.principal,
            settings=settings_of(act.request),
            statement_id=statement_id,
            lang=lang,
            key=key,
        ),
        "image-removed",
    )


@router.get("/speak/media/{key}")
def staff_image(request: Request, key: str, db: DbSession, principal: StaffUser) -> Response:
    """An image of a statement the signed-in person may see (published or not)."""
    return _image_response(request, service.image_for_staff(db=db, actor=principal, key=key), key)


def _channel_slugs() -> set[str]:
    from elshi.plugins import channels

    return set(channels())


@router.post("/speak/{statement_id}/translate")
def translate_version(
    statement_id: Id,
    act: StaffForm,
    source: Annotated[str, Form(max_length=8)] = "",
    target: Annotated[str, Form(max_length=8)] = "",
    backend: Annotated[str, Form(max_length=64)] = "",
    headline: Annotated[str, Form(max_length=1000)] = "",
    text: Annotated[str, Form(max_length=50_000)] = "",
) -> Response:
    """Draft a version from another language: with a translation backend, by copying the
    source (when a backend is configured), or from the translator's own text (when none is)."""
    from elshi.speak.translation import available

    backends = available(settings_of(act.request))
    found = backends.get(backend) if backend else None

    def draft() -> Any:
        if not backends and not text.strip():
            raise service.SpeakError(NO_MODEL)
        return service.draft_translation(
            db=act.db,
            actor=act.principal,
            statement_id=statement_id,
            source_lang=source,
            target_lang=target,
            translator=found[1]() if found else None,
            by_hand=None if backends else (headline, text),
        )

    return _editor_form(act, statement_id, draft, "saved")


#: Said when a translation is asked for with neither a model nor the translator's own text.
NO_MODEL = N_(
    "No translation model is configured, so elshi cannot draft a translation: write the "
    "translation in the box and press the button again."
)


@router.post("/speak/{statement_id}/versions/{lang}/reviewed")
def reviewed(statement_id: Id, lang: str, act: StaffForm) -> Response:
    """Mark a translated version reviewed."""
    return _step(
        act,
        statement_id,
        service.mark_reviewed,
        "reviewed",
        lang=lang,
    )


@router.post("/speak/{statement_id}/submit")
def submit(statement_id: Id, act: StaffForm) -> Response:
    """Send for approval."""
    return _step(
        act,
        statement_id,
        service.submit,
        "submitted",
    )


@router.post("/speak/{statement_id}/decide")
def decide(
    statement_id: Id,
    act: StaffForm,
    decision: Annotated[str, Form(max_length=16)] = "",
    comment: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    """Approve, or return with comments."""
    approve = decision == "approve"

    def note(st: Any) -> str:
        if not approve:
            return "returned"
        return "approved" if st.status == "approved" else "approval-recorded"

    return _step(
        act,
        statement_id,
        service.decide,
        note,
        approve=approve,
        comment=comment,
    )


@router.post("/speak/{statement_id}/schedule")
async def schedule(
    request: Request, statement_id: Id, db: DbSession, principal: StaffUser
) -> Response:
    """Plan the approved statement on the chosen channels, now or at a local time."""
    form = await request.form()
    when = str(form.get("when", "now"))
    at_text = str(form.get("at", ""))[:40]
    tz = str(form.get("tz", "UTC"))[:64].strip() or "UTC"
    raw_ids = [str(v) for v in form.getlist("account")][:100]
    at = None
    if when == "later":
        try:
            at = datetime.fromisoformat(at_text)
        except ValueError:
            at = None
        if at is None or not in_range(at):
            msg = translate(request, N_("Give the date and time, e.g. 2026-12-05 10:00."))
            return _editor(request, db, principal, statement_id, msg, 400)
    ids = [int(v) for v in raw_ids if v.isdigit()]

    def send_due(_: Any) -> None:
        if when != "later":
            _queue(request, service.due_now(db=db, statement_id=statement_id))

    return _step(
        StaffAction(request, db, str(form.get("csrf_token", "")), principal),
        statement_id,
        service.schedule,
        "scheduled",
        deliver=send_due,
        account_ids=ids,
        at=at.replace(tzinfo=None) if at else None,
        tz=tz,
    )


@router.post("/speak/{statement_id}/topic")
def link_topic(
    statement_id: Id,
    act: StaffForm,
    query: Annotated[str, Form(max_length=1000)] = "",
    narrative_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Link the statement to the Listen topic it answers."""
    if narrative_id and not narrative_id.isdigit():
        msg = translate(act.request, N_("The narrative number must be a whole number."))
        return _editor(act.request, act.db, act.principal, statement_id, msg, 400)
    return _step(
        act,
        statement_id,
        service.link_topic,
        "linked",
        query=query,
        narrative_id=int(narrative_id) if narrative_id else None,
    )


@router.post("/speak/publications/{publication_id}/{action}")
def publication_action(publication_id: Id, action: str, act: StaffForm) -> Response:
    """Retry a failed publication, send one in doubt again, or mark it sent."""
    request = act.request
    database = request.app.state.db
    try:
        pub = service.get_publication(db=act.db, actor=act.principal, publication_id=publication_id)
    except (LookupError, service.StatementNotFound):
        return _error_page(request, N_("There is no such publication."), 404)
    statement_id = pub.statement_id
    if action not in ("retry", "send-again", "mark-sent"):
        return _error_page(request, N_("There is no such action."), 404)

    def run() -> None:
        act.db.commit()  # the flows change the publication in their own session
        if action == "mark-sent":
            flows.mark_sent(database, actor=act.principal, publication_id=publication_id)
        else:
            flows.retry_publication(
                database,
                actor=act.principal,
                publication_id=publication_id,
                send_again=action == "send-again",
            )

    return _editor_form(
        act,
        statement_id,
        run,
        "marked" if action == "mark-sent" else "retrying",
        deliver=None if action == "mark-sent" else lambda _: _queue(request, [publication_id]),
    )
