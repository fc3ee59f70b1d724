"""Signing in, for staff users and citizens alike: password, locks, TOTP step, sessions.

One set of steps serves every kind of account. An `AccountKind` says where a kind keeps its
accounts and sessions and what is logged and audited; `StaffKind` is the staff user's kind,
the e-consulate defines the citizen's. The rules the steps keep:

- an address that failed too often is answered at once ("blocked"): that tells nothing about
  any account;
- every other failed path costs exactly one argon2 check, the locked one too, so the time of
  the answer tells nothing about whether an e-mail is known or an account locked;
- a lock holds per account AND address (see `service.is_locked`);
- with TOTP enrolled, the password step opens a short pending session that only the code step
  turns into a full one.
"""

from __future__ import annotations

import logging
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Generic, Protocol, TypeVar

from sqlalchemy.orm import Session

from elshi.accounts import service
from elshi.accounts.models import User
from elshi.accounts.service import LoginPolicy
from elshi.errors import N_

log = logging.getLogger(__name__)


#: What the sign-in pages of staff and citizens say when a step fails.
BAD_LOGIN = N_(
    "Wrong e-mail or password. After several failed attempts the account is locked for a while."
)
BLOCKED = N_("Too many failed sign-ins from this address. Wait a few minutes and try again.")
BAD_CODE = N_("Wrong code. Enter the 6-digit code from your authenticator app.")
CODE_EXPIRED = N_("The sign-in took too long. Please start again.")


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in step.

    `status` is "ok", "code" (TOTP needed), "failed", "blocked", "expired" or "unverified";
    `user_id` is the id of the account (a staff user's or a citizen's).
    """

    status: str
    session_key: str | None = None
    user_id: int | None = None


@dataclass(frozen=True)
class Attempt:
    """Where a sign-in comes from, the rules it is held to, and how long its session lasts."""

    ip: str
    user_agent: str | None
    policy: LoginPolicy
    lifetime: timedelta


@dataclass(frozen=True)
class NewSession:
    """A session to start: whose, for how long, waiting for the code step or not, from where."""

    account_id: int
    lifetime: timedelta
    mfa_pending: bool
    ip: str
    user_agent: str | None


class Account(Protocol):
    """What the sign-in steps read of an account: staff users and citizens both have it."""

    totp_secret: str | None
    totp_last_step: int | None

    @property
    def id(self) -> int: ...

    @property
    def email(self) -> str: ...

    @property
    def password_hash(self) -> str: ...

    @property
    def is_active(self) -> bool: ...


#: The account type of a kind. Left unbound for the class (mypy cannot check a bound against
#: a mapped class in a base-class list); the steps below require `Account`.
T = TypeVar("T")
A = TypeVar("A", bound=Account)


class AccountKind(ABC, Generic[T]):
    """Where one kind of account lives and what its sign-in records."""

    #: True: a refused attempt (address blocked, account locked at the code step) is audited,
    #: and a wrong code that reaches the lock ends the pending sign-in at once ("failed").
    #: False: refusals are not audited, and a locked account's code step has "expired".
    audit_refusals: bool = True

    @abstractmethod
    def find(self, db: Session, email: str) -> T | None:
        """The account with this e-mail."""

    @abstractmethod
    def get(self, db: Session, account_id: int) -> T | None:
        """The account with this id."""

    @abstractmethod
    def attempt_owner(self, account_id: int | None) -> tuple[int | None, int | None]:
        """(user_id, citizen_id) under which attempts on this account are counted."""

    def accept(self, account: T, password: str) -> str:
        """After the right password: "ok", or why the account may not sign in yet."""
        return "ok"

    @abstractmethod
    def create_session(self, db: Session, new: NewSession) -> str:
        """Start a session in this kind's session table; return its key."""

    @abstractmethod
    def pending_owner(self, db: Session, key: str) -> int | None:
        """The account id of the unexpired pending (TOTP) session with this key."""

    @abstractmethod
    def end_session(self, db: Session, key: str) -> None:
        """Delete the session with this key."""

    @abstractmethod
    def failed(self, db: Session, *, account: T | None, email: str, ip: str, reason: str) -> None:
        """Log and audit a failed or refused attempt."""

    @abstractmethod
    def signed_in(self, db: Session, *, account: T, ip: str, mfa: bool) -> None:
        """Mark, log and audit a complete sign-in."""


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return service.hash_password(secrets.token_urlsafe(16))


def _locked(db: Session, kind: AccountKind[A], account: A, attempt: Attempt) -> bool:
    user_id, citizen_id = kind.attempt_owner(account.id)
    return service.is_locked(
        db=db, ip=attempt.ip, policy=attempt.policy, user_id=user_id, citizen_id=citizen_id
    )


def check_password(
    *,
    kind: AccountKind[A],
    db: Session,
    email: str,
    password: str,
    ip: str,
    policy: LoginPolicy,
    now: datetime | None = None,
) -> tuple[A | None, str]:
    """Check a password: (account, "ok"|"unknown"|"locked"|"wrong"|"inactive"|what `accept` says).

    Every path costs one argon2 check, the locked one too.
    """
    account = kind.find(db, email)
    if account is None:
        service.verify_password(_dummy_hash(), password)  # same time: no account probing
        return None, "unknown"
    matches = service.verify_password(account.password_hash, password)
    user_id, citizen_id = kind.attempt_owner(account.id)
    if service.is_locked(
        db=db, ip=ip, policy=policy, user_id=user_id, citizen_id=citizen_id, now=now
    ):
        return account, "locked"
    if not matches:
        return account, "wrong"
    if not account.is_active:
        return account, "inactive"
    return account, kind.accept(account, password)


def _record(
    db: Session, kind: AccountKind[A], attempt: Attempt, account_id: int | None, *, success: bool
) -> None:
    """Count a sign-in attempt from the address, for the account when one is known."""
    user_id, citizen_id = kind.attempt_owner(account_id)
    service.record_attempt(
        db=db,
        ip=attempt.ip,
        user_id=user_id,
        citizen_id=citizen_id,
        success=success,
        policy=attempt.policy,
    )


def _fail(
    db: Session,
    kind: AccountKind[A],
    attempt: Attempt,
    account: A | None,
    email: str,
    reason: str,
    record: bool = True,
) -> None:
    if record:
        _record(db, kind, attempt, account.id if account else None, success=False)
    kind.failed(db, account=account, email=email, ip=attempt.ip, reason=reason)


def _start(
    db: Session, kind: AccountKind[A], attempt: Attempt, account: A, *, pending: bool
) -> str:
    lifetime = attempt.policy.mfa_timeout if pending else attempt.lifetime
    new = NewSession(account.id, lifetime, pending, attempt.ip, attempt.user_agent)
    return kind.create_session(db, new)


def _complete(
    db: Session, kind: AccountKind[A], attempt: Attempt, account: A, *, mfa: bool
) -> SignIn:
    key = _start(db, kind, attempt, account, pending=False)
    user_id, citizen_id = kind.attempt_owner(account.id)
    service.lift_lock(db=db, user_id=user_id, citizen_id=citizen_id, ip=attempt.ip)
    _record(db, kind, attempt, account.id, success=True)
    kind.signed_in(db, account=account, ip=attempt.ip, mfa=mfa)
    return SignIn("ok", key, account.id)


def sign_in(
    kind: AccountKind[A], db: Session, attempt: Attempt, *, email: str, password: str
) -> SignIn:
    """Check e-mail and password; start a session, or a pending one when TOTP is enrolled."""
    ip, policy = attempt.ip, attempt.policy
    if service.ip_blocked(db=db, ip=ip, policy=policy):
        if kind.audit_refusals:
            _fail(db, kind, attempt, None, email, "rate_limited", record=False)
        return SignIn("blocked")
    account, result = check_password(
        kind=kind, db=db, email=email, password=password, ip=ip, policy=policy
    )
    if account is None or result not in ("ok", "unverified"):
        _fail(db, kind, attempt, account, email, result)
        return SignIn("failed")
    if result == "unverified":
        return SignIn("unverified", None, account.id)
    if account.totp_secret:
        return SignIn("code", _start(db, kind, attempt, account, pending=True), account.id)
    return _complete(db, kind, attempt, account, mfa=False)


def sign_in_code(
    kind: AccountKind[A], db: Session, attempt: Attempt, *, pending_key: str, code: str
) -> SignIn:
    """Check the TOTP code of a pending sign-in; replace the pending session with a full one."""
    owner = kind.pending_owner(db, pending_key)
    if owner is None:
        return SignIn("expired")
    account = kind.get(db, owner)
    if (
        account is None
        or not account.is_active
        or (not kind.audit_refusals and _locked(db, kind, account, attempt))
    ):
        kind.end_session(db, pending_key)
        return SignIn("expired")
    if service.ip_blocked(db=db, ip=attempt.ip, policy=attempt.policy):
        if kind.audit_refusals:
            _fail(db, kind, attempt, account, account.email, "rate_limited", record=False)
        return SignIn("blocked", pending_key)
    if kind.audit_refusals and _locked(db, kind, account, attempt):
        kind.end_session(db, pending_key)
        _fail(db, kind, attempt, account, account.email, "locked")
        return SignIn("failed")
    if not service.verify_totp(user=account, code=code):
        _fail(db, kind, attempt, account, account.email, "wrong_code")
        if kind.audit_refusals and _locked(db, kind, account, attempt):
            kind.end_session(db, pending_key)
            return SignIn("failed")
        return SignIn("failed", pending_key)
    kind.end_session(db, pending_key)
    return _complete(db, kind, attempt, account, mfa=True)


class StaffKind(AccountKind[User]):
    """Staff users: the web_session table, "auth.*" audit events, refusals audited."""

    def find(self, db: Session, email: str) -> User | None:
        return service.get_user(db=db, email=email)

    def get(self, db: Session, account_id: int) -> User | None:
        return db.get(User, account_id)

    def attempt_owner(self, account_id: int | None) -> tuple[int | None, int | None]:
        return account_id, None

    def accept(self, account: User, password: str) -> str:
        if service.needs_rehash(account.password_hash):
            account.password_hash = service.hash_password(password)
        return "ok"

    def create_session(self, db: Session, new: NewSession) -> str:
        return service.create_session(
            db=db,
            user_id=new.account_id,
            lifetime=new.lifetime,
            mfa_pending=new.mfa_pending,
            ip=new.ip,
            user_agent=new.user_agent,
        )

    def pending_owner(self, db: Session, key: str) -> int | None:
        row = service.find_session(db=db, key=key)
        return row.user_id if row is not None and row.mfa_pending else None

    def end_session(self, db: Session, key: str) -> None:
        service.end_session(db=db, key=key)

    def failed(
        self, db: Session, *, account: User | None, email: str, ip: str, reason: str
    ) -> None:
        log.warning("sign-in failed for %s from %s: %s", service.mask_email(email), ip, reason)
        service.audit(
            db=db,
            action="auth.sign_in_failed",
            object_type="user",
            object_id=account.id if account else None,
            actor_label=service.mask_email(email),
            detail={"reason": reason, "ip": ip},
        )

    def signed_in(self, db: Session, *, account: User, ip: str, mfa: bool) -> None:
        service.mark_signed_in(db=db, user=account)
        log.info("user %s signed in from %s", account.id, ip)
        service.audit(
            db=db,
            action="auth.sign_in",
            object_type="user",
            object_id=account.id,
            actor_id=account.id,
            actor_label=account.email,
            detail={"ip": ip, "mfa": mfa},
        )


STAFF = StaffKind()
