"""Speak pages (statement editor, approval queue, calendar, publications, reach, rebuttal),
the public news page with its feeds and newsletter sign-up, and a small JSON API."""

from __future__ import annotations

import calendar as cal
import json
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from typing import Annotated, Any
from xml.sax.saxutils import escape

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from elshi.accounts.service import PermissionDenied, Principal
from elshi.missions.models import Mission
from elshi.speak import flows, service
from elshi.speak.channels.base import ChannelContext
from elshi.speak.media import absolute
from elshi.speak.models import STATEMENT_LANGUAGES, Publication
from elshi.speak.schemas import PublicationOut, ReachOut, StatementOut
from elshi.web.bounds import Id, in_range, parse_date
from elshi.web.deps import DbSession, StaffUser, get_db, require_staff
from elshi.web.i18n import N_
from elshi.web.pages import int_or_none
from elshi.web.templating import csrf_valid, render, settings_of, translate

router = APIRouter(include_in_schema=False)
public = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api", tags=["speak"], dependencies=[Depends(require_staff)])

FORM_EXPIRED = N_("The form has expired. Please try again.")
STATUS_NAMES = {
    "draft": N_("draft"),
    "submitted": N_("waiting for approval"),
    "returned": N_("returned with comments"),
    "approved": N_("approved for publication"),
    "archived": N_("archived"),
    "pending": N_("waiting"),
    "sending": N_("sending"),
    "sent": N_("published"),
    "failed": N_("failed"),
    "unknown": N_("needs checking"),
    "deleted": N_("deleted"),
}
ADVICE = {
    "expired_token": N_(
        "The channel's access token has expired or was revoked. An administrator enters a "
        "new one (elshi channels set-secret %(account)s), then press Retry."
    ),
    "rate_limited": N_(
        "The platform asked elshi to slow down. elshi tries again by itself at %(when)s."
    ),
    "too_long": N_(
        "The text is too long for this channel (%(length)s of %(limit)s). Shorten this "
        "language version or write a variant for the channel, have it approved again, then "
        "press Retry."
    ),
    "too_long_platform": N_(
        "The platform says the text is too long. Shorten this language version or write a "
        "variant for the channel, have it approved again, then press Retry."
    ),
    "server_error": N_(
        "The platform had an internal error. elshi tries again by itself at %(when)s; if it "
        "keeps failing, check the platform's status page."
    ),
    "network": N_(
        "elshi could not reach the platform. It tries again by itself at %(when)s; if this "
        "stays, check the server's connection to the internet."
    ),
    "rejected": N_(
        "The platform refused the post. Read its message, fix the cause, then press Retry."
    ),
    "media_rejected": N_(
        "The platform refused an image of this version (its message says why, e.g. size or "
        "type). Replace the image with a smaller JPEG or PNG, or remove it, have the "
        "statement approved again, then press Retry."
    ),
    "unsure": N_(
        "The worker stopped while sending and the platform cannot say whether the post "
        "arrived. Look at the channel: if the post is there, press Mark as sent; if not, "
        "press Send again."
    ),
    "not_approved": N_(
        "The statement changed after it was approved. Submit it for approval again; it is "
        "sent once approved."
    ),
    "gave_up": N_("elshi tried several times and stopped. Press Retry to try again."),
}


def advice(request: Request, pub: Publication) -> str:
    """Return what to do about a publication's error, in the reader's language."""
    kind = pub.error_kind or ""
    detail = pub.error_detail or {}
    when = pub.retry_at.strftime("%H:%M UTC") if pub.retry_at else ""
    if kind == "too_long" and "limit" not in detail:
        kind = "too_long_platform"
    if kind in ("rate_limited", "server_error", "network") and pub.status == "failed":
        kind = "gave_up"
    template = ADVICE.get(kind)
    if template is None:
        return ""
    params = {"account": pub.account_id, "when": when, **detail}
    try:
        return translate(request, template) % params
    except (KeyError, TypeError, ValueError):
        return translate(request, template)


def _ctx(request: Request) -> ChannelContext:
    return ChannelContext(settings=settings_of(request), db=request.app.state.db)


def _error_page(request: Request, message: str, status: int) -> Response:
    return render(request, "error.html", {"message": message}, status=status)


def _missions_for(db: Session, actor: Principal, permission: str) -> list[Mission]:
    return [
        m for m in db.scalars(select(Mission).order_by(Mission.name)) if actor.can(permission, m.id)
    ]


def _back(statement_id: int, note: str = "", anchor: str = "") -> RedirectResponse:
    query = f"?note={note}" if note else ""
    return RedirectResponse(f"/speak/{statement_id}{query}{anchor}", status_code=303)


def _queue(request: Request, ids: list[int]) -> None:
    """Hand due publications to the worker (the scheduler picks them up otherwise)."""
    runtime = request.app.state.runtime
    if runtime is None:
        return
    from elshi import jobs

    for pid in ids:
        jobs.enqueue("send_publication", pid)


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
            "can_draft": bool(_missions_for(db, principal, "speak.draft")),
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
            "missions": _missions_for(db, principal, "speak.draft"),
            "languages_all": STATEMENT_LANGUAGES,
            "v": values,
            "error": error,
        },
        status=status,
    )


@router.post("/speak/new")
def create_statement(
    request: Request,
    db: DbSession,
    principal: StaffUser,
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
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
    if not csrf_valid(request, csrf_token):
        return _new_form(request, db, principal, values, translate(request, FORM_EXPIRED), 400)
    if not mission_id.isdigit():
        msg = translate(request, N_("Choose a mission."))
        return _new_form(request, db, principal, values, msg, 400)
    if narrative_id and not narrative_id.isdigit():
        msg = translate(request, N_("The narrative number must be a whole number."))
        return _new_form(request, db, principal, values, msg, 400)
    try:
        st = service.create_statement(
            db=db,
            actor=principal,
            mission_id=int(mission_id),
            title=title,
            lang=lang,
            text=text,
            headline=headline,
            urgent=bool(urgent),
            topic_query=topic_query or None,
            narrative_id=int(narrative_id) if narrative_id else None,
        )
    except service.SpeakError as exc:
        return _new_form(request, db, principal, values, exc.translated(_gettext(request)), 400)
    except PermissionDenied:
        msg = translate(request, N_("You may not write statements for this mission."))
        return _new_form(request, db, principal, values, msg, 403)
    db.commit()
    return _back(st.id)


def _gettext(request: Request) -> Any:
    return lambda message: translate(request, message)


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
    try:
        st = service.get_statement(db=db, actor=principal, statement_id=statement_id)
    except service.StatementNotFound:
        return _error_page(request, N_("There is no such statement."), 404)
    versions = service.versions_of(db=db, statement_id=st.id)
    accounts = [
        a
        for a in service.list_accounts(db=db, actor=principal, mission_id=st.mission_id)
        if a.enabled
    ]
    checks = service.length_checks(db=db, statement_id=st.id, accounts=accounts)
    limits = _limits(accounts)
    pubs = service.publications_of(db=db, statement_id=st.id)
    note = request.query_params.get("note", "")
    mission = db.get(Mission, st.mission_id)
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
            "checks": checks,
            "limits": limits,
            "limits_json": json.dumps(limits),
            "approvals": service.approvals_of(db=db, statement_id=st.id),
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


def _limits(accounts: list[service.AccountView]) -> list[dict[str, Any]]:
    """Return each account's length rule for the page's live counters."""
    from elshi.plugins import channels

    known = channels()
    out = []
    for a in accounts:
        cls = known.get(a.channel)
        if cls is None:
            continue
        limit = cls().limit(cls.Config.model_validate(a.config))
        if limit is not None:
            out.append(
                {
                    "account": a.id,
                    "name": a.name,
                    "channel": a.channel,
                    "languages": service.account_languages(a),
                    "max": limit.max,
                    "counting": limit.counting,
                    "urls_as": limit.urls_as,
                }
            )
    return out


def _act(
    request: Request,
    db: Session,
    principal: Principal,
    statement_id: int,
    csrf_token: str,
    action: Any,
    note: str,
) -> Response:
    """Run one editor action; show its error on the editor, or go back with a note."""
    if not csrf_valid(request, csrf_token):
        return _editor(request, db, principal, statement_id, translate(request, FORM_EXPIRED), 400)
    try:
        result = action()
    except service.StatementNotFound:
        return _error_page(request, N_("There is no such statement."), 404)
    except service.SpeakError as exc:
        db.rollback()
        return _editor(request, db, principal, statement_id, exc.translated(_gettext(request)), 400)
    except service.NotApproved:
        db.rollback()
        msg = translate(request, N_("Only an approved statement can be scheduled or published."))
        return _editor(request, db, principal, statement_id, msg, 400)
    except PermissionDenied:
        db.rollback()
        msg = translate(request, N_("You may not do this: it needs another role or person."))
        return _editor(request, db, principal, statement_id, msg, 403)
    if callable(note):
        note = note(result)
    # Commit before answering: the browser's next request must see the change (the request
    # session would otherwise commit only after the redirect has gone out).
    db.commit()
    return _back(statement_id, note)


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
    return _act(
        request,
        db,
        principal,
        statement_id,
        str(form.get("csrf_token", "")),
        lambda: service.save_version(
            db=db,
            actor=principal,
            statement_id=statement_id,
            lang=lang,
            text=text,
            headline=headline,
            variants=variants,
            media=media,
        ),
        "saved",
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
    return _act(
        request,
        db,
        principal,
        statement_id,
        str(form.get("csrf_token", "")),
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
def remove_image(
    request: Request,
    statement_id: Id,
    lang: str,
    key: str,
    db: DbSession,
    principal: StaffUser,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Take an image off a language version."""
    return _act(
        request,
        db,
        principal,
        statement_id,
        csrf_token,
        lambda: service.remove_image(
            db=db,
            actor=principal,
            settings=settings_of(request),
            statement_id=statement_id,
            lang=lang,
            key=key,
        ),
        "image-removed",
    )


def _image_response(request: Request, item: dict[str, Any] | None, key: str) -> Response:
    from elshi.speak import media

    if item is None:
        return _error_page(request, N_("There is no such image."), 404)
    try:
        data = media.read(settings_of(request), key)
    except (FileNotFoundError, ValueError):
        return _error_page(request, N_("There is no such image."), 404)
    return Response(
        data,
        media_type=str(item.get("content_type", "application/octet-stream")),
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'",
            "Cache-Control": "private, max-age=300",
        },
    )


@router.get("/speak/media/{key}")
def staff_image(request: Request, key: str, db: DbSession, principal: StaffUser) -> Response:
    """An image of a statement the signed-in person may see (published or not)."""
    return _image_response(request, service.image_for_staff(db=db, actor=principal, key=key), key)


@public.get("/news-media/{key}")
def public_image(request: Request, key: str, db: DbSession) -> Response:
    """An image of a statement that has gone out on a channel; nothing else is public."""
    response = _image_response(request, service.image_published(db=db, key=key), key)
    if response.status_code == 200:
        response.headers["Cache-Control"] = "public, max-age=86400"
    return response


def _channel_slugs() -> set[str]:
    from elshi.plugins import channels

    return set(channels())


@router.post("/speak/{statement_id}/translate")
def translate_version(
    request: Request,
    statement_id: Id,
    db: DbSession,
    principal: StaffUser,
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
    source: Annotated[str, Form(max_length=8)] = "",
    target: Annotated[str, Form(max_length=8)] = "",
    backend: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Draft a version from another language (by hand, or with a translation backend)."""
    from elshi.speak.translation import available

    found = available(settings_of(request)).get(backend) if backend else None
    return _act(
        request,
        db,
        principal,
        statement_id,
        csrf_token,
        lambda: service.draft_translation(
            db=db,
            actor=principal,
            statement_id=statement_id,
            source_lang=source,
            target_lang=target,
            translator=found[1]() if found else None,
        ),
        "saved",
    )


@router.post("/speak/{statement_id}/versions/{lang}/reviewed")
def reviewed(
    request: Request,
    statement_id: Id,
    lang: str,
    db: DbSession,
    principal: StaffUser,
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Mark a translated version reviewed."""
    return _act(
        request,
        db,
        principal,
        statement_id,
        csrf_token,
        lambda: service.mark_reviewed(db=db, actor=principal, statement_id=statement_id, lang=lang),
        "reviewed",
    )


@router.post("/speak/{statement_id}/submit")
def submit(
    request: Request,
    statement_id: Id,
    db: DbSession,
    principal: StaffUser,
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Send for approval."""
    return _act(
        request,
        db,
        principal,
        statement_id,
        csrf_token,
        lambda: service.submit(db=db, actor=principal, statement_id=statement_id),
        "submitted",
    )


@router.post("/speak/{statement_id}/decide")
def decide(
    request: Request,
    statement_id: Id,
    db: DbSession,
    principal: StaffUser,
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
    decision: Annotated[str, Form(max_length=16)] = "",
    comment: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    """Approve, or return with comments."""
    approve = decision == "approve"

    def note(st: Any) -> str:
        if not approve:
            return "returned"
        return "approved" if st.status == "approved" else "approval-recorded"

    return _act(
        request,
        db,
        principal,
        statement_id,
        csrf_token,
        lambda: service.decide(
            db=db, actor=principal, statement_id=statement_id, approve=approve, comment=comment
        ),
        note,  # type: ignore[arg-type]
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
    response = _act(
        request,
        db,
        principal,
        statement_id,
        str(form.get("csrf_token", "")),
        lambda: service.schedule(
            db=db,
            actor=principal,
            statement_id=statement_id,
            account_ids=ids,
            at=at.replace(tzinfo=None) if at else None,
            tz=tz,
        ),
        "scheduled",
    )
    if response.status_code == 303 and when != "later":
        due = [
            p.id
            for p in service.publications_of(db=db, statement_id=statement_id)
            if p.status == "pending" and p.due_at <= datetime.now(UTC)
        ]
        _queue(request, due)
    return response


@router.post("/speak/{statement_id}/topic")
def link_topic(
    request: Request,
    statement_id: Id,
    db: DbSession,
    principal: StaffUser,
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
    query: Annotated[str, Form(max_length=1000)] = "",
    narrative_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Link the statement to the Listen topic it answers."""
    if narrative_id and not narrative_id.isdigit():
        msg = translate(request, N_("The narrative number must be a whole number."))
        return _editor(request, db, principal, statement_id, msg, 400)
    return _act(
        request,
        db,
        principal,
        statement_id,
        csrf_token,
        lambda: service.link_topic(
            db=db,
            actor=principal,
            statement_id=statement_id,
            query=query,
            narrative_id=int(narrative_id) if narrative_id else None,
        ),
        "linked",
    )


@router.post("/speak/publications/{publication_id}/{action}")
def publication_action(
    request: Request,
    publication_id: Id,
    action: str,
    db: DbSession,
    principal: StaffUser,
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Retry a failed publication, send one in doubt again, or mark it sent."""
    database = request.app.state.db
    try:
        pub = service.get_publication(db=db, actor=principal, publication_id=publication_id)
    except (LookupError, service.StatementNotFound):
        return _error_page(request, N_("There is no such publication."), 404)
    statement_id = pub.statement_id
    db.commit()
    if action not in ("retry", "send-again", "mark-sent"):
        return _error_page(request, N_("There is no such action."), 404)

    def run() -> None:
        if action == "mark-sent":
            flows.mark_sent(database, actor=principal, publication_id=publication_id)
        else:
            flows.retry_publication(
                database,
                actor=principal,
                publication_id=publication_id,
                send_again=action == "send-again",
            )

    response = _act(
        request,
        db,
        principal,
        statement_id,
        csrf_token,
        run,
        "marked" if action == "mark-sent" else "retrying",
    )
    if response.status_code == 303 and action != "mark-sent":
        _queue(request, [publication_id])
    return response


# ---------------------------------------------------------------------------- queue, calendar


@router.get("/speak-queue")
def approval_queue(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Statements waiting for this user's approval, oldest first."""
    rows = service.approval_queue(db=db, actor=principal)
    return render(
        request,
        "speak_queue.html",
        {
            "active": "speak",
            "statements": rows,
            "langs": {s.id: list(service.versions_of(db=db, statement_id=s.id)) for s in rows},
            "now": datetime.now(UTC),
        },
    )


@router.get("/speak-calendar")
def content_calendar(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """A month of planned and published statements per mission."""
    month_text = request.query_params.get("month", "")
    error = None
    month = parse_date(month_text + "-01") if month_text else date.today()
    if month is None:
        error = translate(request, N_("The month must look like 2026-12."))
        month = date.today()
    mission_text = request.query_params.get("mission", "")
    mission_id = int_or_none(mission_text)
    days = service.calendar(db=db, actor=principal, mission_id=mission_id, month=month)
    weeks = cal.Calendar(firstweekday=0).monthdatescalendar(month.year, month.month)
    prev_month = (month.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    next_month = (month.replace(day=28) + timedelta(days=5)).strftime("%Y-%m")
    return render(
        request,
        "speak_calendar.html",
        {
            "active": "speak",
            "month": month,
            "weeks": weeks,
            "days": days,
            "missions": _missions_for(db, principal, "listen.read"),
            "mission_id": mission_id,
            "prev_month": prev_month,
            "next_month": next_month,
            "status_names": STATUS_NAMES,
            "error": error,
        },
        status=400 if error else 200,
    )


# ---------------------------------------------------------------------------- reach, rebuttal


@router.get("/speak/{statement_id}/reach")
def reach_page(request: Request, statement_id: Id, db: DbSession, principal: StaffUser) -> Response:
    """Engagement per publication, language and channel."""
    try:
        st = service.get_statement(db=db, actor=principal, statement_id=statement_id)
    except service.StatementNotFound:
        return _error_page(request, N_("There is no such statement."), 404)
    aud = service.audience(db=db, statement_id=st.id)
    return render(
        request,
        "speak_reach.html",
        {
            "active": "speak",
            "st": st,
            "r": service.reach(db=db, statement_id=st.id),
            "status_names": STATUS_NAMES,
            "same": lambda value: value,
            "aud": aud,
            "audience_charts": _audience_charts(request, aud),
        },
    )


def _audience_charts(request: Request, aud: service.Audience) -> list[Any]:
    """Bar charts of engaging accounts by actor type: the statement, then each channel."""
    from elshi.watch.models import ACTOR_NAMES
    from elshi.web.charts import Chart, Series

    if not aud.accounts:
        return []
    labels = [translate(request, ACTOR_NAMES[t]) for t in aud.types]
    unknown = {translate(request, ACTOR_NAMES["unknown"])}
    series_name = translate(request, N_("accounts"))
    charts = [
        Chart(
            "audience",
            translate(request, N_("Who engages: accounts by actor type")),
            labels,
            [Series(series_name, [float(aud.total[t]) for t in aud.types])],
            kind="bar",
            highlight=unknown,
        )
    ]
    for channel, counts in sorted(aud.by_channel.items()):
        charts.append(
            Chart(
                f"audience-{channel}",
                translate(request, N_("Who engages on %(channel)s")) % {"channel": channel},
                labels,
                [Series(series_name, [float(counts[t]) for t in aud.types])],
                kind="bar",
                highlight=unknown,
            )
        )
    return charts


@router.get("/speak/{statement_id}/rebuttal")
def rebuttal_page(
    request: Request, statement_id: Id, db: DbSession, principal: StaffUser
) -> Response:
    """The answered topic's volume and negative share before and after the statement."""
    days_text = request.query_params.get("days", "3")
    days = int(days_text) if days_text.isdigit() and 1 <= int(days_text) <= 90 else 3
    try:
        st = service.get_statement(db=db, actor=principal, statement_id=statement_id)
        r = service.rebuttal(db=db, actor=principal, statement_id=st.id, days=days)
    except service.StatementNotFound:
        return _error_page(request, N_("There is no such statement."), 404)
    peak = 1
    if r is not None:
        peak = max([1] + [n for _, n in r.before.daily] + [n for _, n in r.after.daily])
    return render(
        request,
        "speak_rebuttal.html",
        {"active": "speak", "st": st, "r": r, "days": days, "peak": peak},
    )


# ---------------------------------------------------------------------------- public news


def _news_lang(lang: str) -> str:
    if lang not in STATEMENT_LANGUAGES:
        raise HTTPException(404, "no such language")
    return lang


@public.get("/news/{mission_slug}/{lang}")
def news(request: Request, mission_slug: str, lang: str, db: DbSession) -> Response:
    """The mission's public news page in one language."""
    mission, items = service.news_items(db=db, mission_slug=mission_slug, lang=_news_lang(lang))
    if mission is None:
        return _error_page(request, N_("There is no such page."), 404)
    return render(
        request,
        "news.html",
        {"mission": mission, "items": items, "news_lang": lang, "note": None},
    )


@public.get("/news/{mission_slug}/{lang}/{item}")
def news_item(request: Request, mission_slug: str, lang: str, item: str, db: DbSession) -> Response:
    """One news item, or a feed (rss.xml, atom.xml, feed.json)."""
    mission, items = service.news_items(db=db, mission_slug=mission_slug, lang=_news_lang(lang))
    if mission is None:
        return _error_page(request, N_("There is no such page."), 404)
    base = settings_of(request).base_url
    page = f"{base}/news/{mission.slug}/{lang}"
    if item == "rss.xml":
        return Response(_rss(mission, lang, page, items), media_type="application/rss+xml")
    if item == "atom.xml":
        return Response(_atom(mission, lang, page, items), media_type="application/atom+xml")
    if item == "feed.json":
        return Response(
            json.dumps(_json_feed(mission, lang, page, items), ensure_ascii=False),
            media_type="application/feed+json",
        )
    found = next(((p, v) for p, v in items if str(p.id) == item), None)
    if found is None:
        return _error_page(request, N_("There is no such page."), 404)
    db.execute(
        update(Publication)
        .where(Publication.id == found[0].id)
        .values(local_views=Publication.local_views + 1)
    )
    return render(
        request,
        "news.html",
        {"mission": mission, "items": [found], "news_lang": lang, "single": True, "note": None},
    )


def _title(pub: Publication, version: Any) -> str:
    return str(version.headline or pub.text.split("\n", 1)[0][:100])


def _base(page: str) -> str:
    return page.split("/news/", 1)[0]


def _rss(mission: Mission, lang: str, page: str, items: list[Any]) -> str:
    base = _base(page)
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>',
        f"<title>{escape(mission.name)}</title><link>{escape(page)}</link>",
        f"<description>{escape(mission.name)}</description><language>{lang}</language>",
        f'<atom:link href="{escape(page)}/rss.xml" rel="self" type="application/rss+xml"/>',
    ]
    for p, v in items:
        link = f"{page}/{p.id}"
        out.append(
            f"<item><title>{escape(_title(p, v))}</title><link>{escape(link)}</link>"
            f'<guid isPermaLink="true">{escape(link)}</guid>'
            f"<pubDate>{format_datetime(p.sent_at)}</pubDate>"
            f"<description>{escape(p.text)}</description>"
            + "".join(
                f'<enclosure url="{escape(absolute(base, m["url"]))}" '
                f'length="{int(m.get("size") or 0)}" '
                f'type="{escape(m.get("content_type") or "application/octet-stream")}"/>'
                for m in (v.media or [])[:1]
            )
            + "</item>"
        )
    out.append("</channel></rss>")
    return "\n".join(out)


def _atom(mission: Mission, lang: str, page: str, items: list[Any]) -> str:
    updated = items[0][0].sent_at if items else datetime(2000, 1, 1, tzinfo=UTC)
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{lang}">',
        f"<title>{escape(mission.name)}</title><id>{escape(page)}</id>",
        f'<link rel="alternate" href="{escape(page)}"/>',
        f'<link rel="self" href="{escape(page)}/atom.xml"/>',
        f"<updated>{updated.isoformat()}</updated>",
        f"<author><name>{escape(mission.name)}</name></author>",
    ]
    for p, v in items:
        link = f"{page}/{p.id}"
        out.append(
            f"<entry><title>{escape(_title(p, v))}</title><id>{escape(link)}</id>"
            f'<link rel="alternate" href="{escape(link)}"/>'
            f"<updated>{p.sent_at.isoformat()}</updated>"
            f"<published>{p.sent_at.isoformat()}</published>"
            + "".join(
                f'<link rel="enclosure" href="{escape(absolute(_base(page), m["url"]))}" '
                f'type="{escape(m.get("content_type") or "application/octet-stream")}"/>'
                for m in v.media or []
                if m.get("key")
            )
            + f'<content type="text">{escape(p.text)}</content></entry>'
        )
    out.append("</feed>")
    return "\n".join(out)


def _json_feed(mission: Mission, lang: str, page: str, items: list[Any]) -> dict[str, Any]:
    return {
        "version": "https://jsonfeed.org/version/1.1",
        "title": mission.name,
        "home_page_url": page,
        "feed_url": f"{page}/feed.json",
        "language": lang,
        "items": [
            {
                "id": f"{page}/{p.id}",
                "url": f"{page}/{p.id}",
                "title": _title(p, v),
                "content_text": p.text,
                "date_published": p.sent_at.isoformat(),
                "language": lang,
                **({"image": absolute(_base(page), v.media[0]["url"])} if v.media else {}),
            }
            for p, v in items
        ],
    }


@public.post("/news/{mission_slug}/{lang}")
def news_subscribe(
    request: Request,
    mission_slug: str,
    lang: str,
    db: DbSession,
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
    email: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Sign up for the newsletter: a confirmation link is e-mailed (double opt-in)."""
    mission, items = service.news_items(db=db, mission_slug=mission_slug, lang=_news_lang(lang))
    if mission is None:
        return _error_page(request, N_("There is no such page."), 404)
    context: dict[str, Any] = {"mission": mission, "items": items, "news_lang": lang}
    if not csrf_valid(request, csrf_token):
        context["error"] = translate(request, FORM_EXPIRED)
        return render(request, "news.html", {**context, "note": None}, status=400)
    db.commit()
    ctx = _ctx(request)
    try:
        sent = flows.request_subscription(
            request.app.state.db, mission_slug=mission_slug, email=email, lang=lang, ctx=ctx
        )
    except service.SpeakError as exc:
        context["error"] = exc.translated(_gettext(request))
        return render(request, "news.html", {**context, "note": None}, status=400)
    except Exception:
        context["error"] = translate(
            request, N_("The confirmation e-mail could not be sent. Please try again later.")
        )
        return render(request, "news.html", {**context, "note": None}, status=503)
    finally:
        ctx.close()
    note = (
        N_("Check your e-mail: open the link we sent to confirm the subscription.")
        if sent
        else N_("This mission has no newsletter.")
    )
    return render(request, "news.html", {**context, "note": note})


@public.get("/news-confirm/{token}")
def news_confirm(request: Request, token: str, db: DbSession) -> Response:
    """Confirm a newsletter subscription from the e-mailed link."""
    sub = service.confirm_subscription(db=db, token=token[:200])
    if sub is None:
        return _error_page(request, N_("This confirmation link is not valid."), 404)
    return render(request, "news_message.html", {"message": N_("You are subscribed. Thank you.")})


@public.get("/news-unsubscribe/{token}")
def news_unsubscribe(request: Request, token: str, db: DbSession) -> Response:
    """End a newsletter subscription from the link in each e-mail."""
    sub = service.unsubscribe(db=db, settings=settings_of(request), token=token[:500])
    if sub is None:
        return _error_page(request, N_("This link is not valid."), 404)
    return render(
        request, "news_message.html", {"message": N_("You will receive no more e-mails.")}
    )


# ---------------------------------------------------------------------------- JSON API


@api.get("/statements", response_model=list[StatementOut], summary="List statements")
def api_statements(
    db: Annotated[Session, Depends(get_db)],
    principal: Annotated[Principal, Depends(require_staff)],
    status: str | None = None,
) -> list[StatementOut]:
    """Statements the caller may see, newest first."""
    return [
        StatementOut.model_validate(s)
        for s in service.list_statements(db=db, actor=principal, status=status)
    ]


@api.get(
    "/statements/{statement_id}/publications",
    response_model=list[PublicationOut],
    summary="A statement's publications",
)
def api_publications(
    statement_id: Id,
    db: Annotated[Session, Depends(get_db)],
    principal: Annotated[Principal, Depends(require_staff)],
) -> list[PublicationOut]:
    """Each language version on each channel, with its status and error."""
    try:
        service.get_statement(db=db, actor=principal, statement_id=statement_id)
    except service.StatementNotFound:
        raise HTTPException(404, f"no statement with id {statement_id}") from None
    return [
        PublicationOut.model_validate(p)
        for p in service.publications_of(db=db, statement_id=statement_id)
    ]


@api.get("/statements/{statement_id}/reach", response_model=ReachOut, summary="Engagement")
def api_reach(
    statement_id: Id,
    db: Annotated[Session, Depends(get_db)],
    principal: Annotated[Principal, Depends(require_staff)],
) -> ReachOut:
    """Engagement totals per language and channel, and who engaged by actor type."""
    try:
        service.get_statement(db=db, actor=principal, statement_id=statement_id)
    except service.StatementNotFound:
        raise HTTPException(404, f"no statement with id {statement_id}") from None
    r = service.reach(db=db, statement_id=statement_id)
    aud = service.audience(db=db, statement_id=statement_id)
    return ReachOut(
        total=r.total,
        by_lang=r.by_lang,
        by_channel=r.by_channel,
        audience=aud.total,
        audience_by_channel=aud.by_channel,
    )


__all__ = ["api", "public", "router"]
