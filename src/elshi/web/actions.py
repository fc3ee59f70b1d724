"""One way to handle a submitted form: check its token, run the change, answer, commit, deliver.

A view parses the form, then hands the change to `handle_form` with the pages to show:

    return handle_form(
        request, db, lambda: service.do_it(db=db, ...),
        token=csrf_token,
        expired=lambda: page_of_expired_form(request),
        done=lambda result: redirect_somewhere(result),
        refused=[(NotFound, lambda exc: page_404(request)), (Invalid, lambda exc: form_again(exc))],
        deliver=lambda result: send_the_mail(result),
    )

A refusal (any exception type listed in `refused`, first match wins) rolls the whole change
back and shows its page; any other exception propagates. On success the change is committed
before the answer goes out, so the browser's next request sees it, and only then are the
deliveries (e-mail, pushes) started: nothing is sent for a change that was not stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from elshi.web.templating import csrf_valid

T = TypeVar("T")

#: Which refusals a view answers, and with which page: (exception type(s), page of the error).
Refusal = tuple[type[BaseException] | tuple[type[BaseException], ...], Callable[[Any], Response]]

#: Pass as `token` when the form token was checked already (or the route needs none).
CHECKED = object()


def handle_form(
    request: Request,
    db: Session,
    change: Callable[[], T],
    *,
    token: str | object | None,
    expired: Callable[[], Response],
    done: Callable[[T], Response],
    refused: Sequence[Refusal] = (),
    deliver: Callable[[T], None] | None = None,
) -> Response:
    """Run one change of a submitted form and return the page to answer with."""
    if token is not CHECKED and not csrf_valid(request, token if isinstance(token, str) else None):
        return expired()
    kinds = tuple(
        t for types, _ in refused for t in (types if isinstance(types, tuple) else (types,))
    )
    try:
        result = change()
    except kinds as exc:
        db.rollback()
        return next(page for types, page in refused if isinstance(exc, types))(exc)
    db.commit()
    if deliver is not None:
        deliver(result)
    return done(result)
