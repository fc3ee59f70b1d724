"""Shared by the speak pages: the routers, status names, advice on errors, page helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from elshi.accounts.service import Principal
from elshi.speak import service
from elshi.speak.channels.base import ChannelContext
from elshi.speak.models import Publication, Statement
from elshi.web.deps import require_staff
from elshi.web.i18n import N_
from elshi.web.pages import FORM_EXPIRED as FORM_EXPIRED
from elshi.web.templating import render, settings_of, translate

router = APIRouter(include_in_schema=False)
public = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api", tags=["speak"], dependencies=[Depends(require_staff)])

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
        "elshi cannot tell whether the post arrived: the worker stopped while sending, or "
        "the platform failed after the post was sent, and elshi cannot look for it there. "
        "Look at the channel: if the post is there, press Mark as sent; if not, press Send "
        "again."
    ),
    "checking": N_(
        "The platform failed after the post was sent and may have it. elshi settles this by "
        "itself at %(when)s without posting it twice: it looks for the post first and sends "
        "it only if it is not there."
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
    in_doubt = detail.get("in_doubt") or kind == "unsure"
    if in_doubt and pub.status in ("pending", "unknown") and pub.retry_at:
        kind = "checking"  # elshi looks (or sends with the same key) by itself
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


def _statement_or_404(
    request: Request, db: Session, principal: Principal, statement_id: int
) -> Statement | Response:
    """The statement the staff member may see, or the page saying there is no such one."""
    try:
        return service.get_statement(db=db, actor=principal, statement_id=statement_id)
    except service.StatementNotFound:
        return _error_page(request, N_("There is no such statement."), 404)


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


def _gettext(request: Request) -> Callable[[str], str]:
    return lambda message: translate(request, message)


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
