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
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from elshi.accounts.service import Principal
from elshi.web.deps import DbSession, StaffUser
from elshi.web.pages import check_form
from elshi.web.templating import csrf_valid

T = TypeVar("T")

#: Which refusals a view answers, and with which page: (exception type(s), page of the error).
Refusal = tuple[type[BaseException] | tuple[type[BaseException], ...], Callable[[Any], Response]]

#: Pass as `token` when the form token was checked already (or the route needs none).
CHECKED = object()


def token_valid(request: Request, token: str | object | None) -> bool:
    """Return True when a form's token is good, or was checked already (`CHECKED`)."""
    return token is CHECKED or csrf_valid(request, token if isinstance(token, str) else None)


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
    if not token_valid(request, token):
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


@dataclass(frozen=True)
class FormAction:
    """A submitted form: the request, its database session and the form's token."""

    request: Request
    db: Session
    token: str | object | None

    def valid(self) -> bool:
        """Return True when the form's token is good (or was checked already)."""
        return token_valid(self.request, self.token)

    def handle(
        self,
        change: Callable[[], T],
        *,
        expired: Callable[[], Response],
        done: Callable[[T], Response],
        refused: Sequence[Refusal] = (),
        deliver: Callable[[T], None] | None = None,
    ) -> Response:
        """Run the form's change through `handle_form` with this form's token."""
        return handle_form(
            self.request,
            self.db,
            change,
            token=self.token,
            expired=expired,
            done=done,
            refused=refused,
            deliver=deliver,
        )


def form_action(
    request: Request, db: DbSession, csrf_token: Annotated[str, Form(max_length=1000)] = ""
) -> FormAction:
    """Gather what a form's handler needs (the token is checked when the form is handled)."""
    return FormAction(request, db, csrf_token)


def text_fields(max_fields: int) -> Any:
    """A dependency: the submitted form's fields as text, at most `max_fields` and no files.

    For a form whose fields vary (one row per companion, per form field, per language), read
    into a dict before the route runs; the route itself stays synchronous, in a worker thread.
    """

    async def read(request: Request) -> dict[str, str]:
        form = await request.form(max_files=0, max_fields=max_fields)
        return {k: str(v) for k, v in form.items()}

    return Depends(read)


@dataclass(frozen=True)
class StaffAction(FormAction):
    """A form a signed-in staff member sent, and who they are."""

    principal: Principal

    def checked(self) -> tuple[Request, Session, Principal]:
        """Refuse the form (400) unless its token is valid; return the request, session, who."""
        check_form(self.request, self.token if isinstance(self.token, str) else "")
        return self.request, self.db, self.principal


def staff_action(
    request: Request,
    db: DbSession,
    principal: StaffUser,
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
) -> StaffAction:
    """Gather what every staff form's handler needs (the token is checked by the handler)."""
    return StaffAction(request, db, csrf_token, principal)


@dataclass(frozen=True)
class SignInAction(FormAction):
    """A step of signing in (staff or citizen): the password step sends the e-mail and the
    password, the code step the authenticator code; both say where to go next."""

    email: str
    password: str
    code: str
    next: str


def sign_in_action(
    act: Annotated[FormAction, Depends(form_action)],
    email: Annotated[str, Form(max_length=1000)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
    code: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> SignInAction:
    """Gather a sign-in step's fields (the token is checked when the form is handled)."""
    return SignInAction(act.request, act.db, act.token, email, password, code, next)


#: A submitted form, as one parameter of the route (anyone may send it).
SentForm = Annotated[FormAction, Depends(form_action)]
#: A step of signing in (password or code), as one parameter of the route.
SignInForm = Annotated[SignInAction, Depends(sign_in_action)]
#: A staff page's submitted form, as one parameter of the route.
StaffForm = Annotated[StaffAction, Depends(staff_action)]
