"""Users, roles, sessions, API tokens, TOTP, sign-in limits and the audit log."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.orm import Session

from elshi.accounts.models import (
    ROLES,
    ApiToken,
    AuditEvent,
    LoginAttempt,
    RoleGrant,
    SessionColumns,
    User,
    WebSession,
)
from elshi.db import utcnow
from elshi.errors import N_, FieldError, PermissionDenied
from elshi.missions.models import Mission

if TYPE_CHECKING:
    from elshi.settings import Settings

#: Passwords are hashed with argon2id at the library's defaults (RFC 9106, low memory: 3 passes,
#: 64 MiB, 4 lanes). Only the test suite swaps in a cheap hasher (use_password_hasher).
PRODUCTION_HASHER = PasswordHasher()
_hasher = PRODUCTION_HASHER
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 12


class SignInHolder(Protocol):
    """What TOTP checks read: a staff user and a citizen account both have it."""

    totp_secret: str | None
    totp_last_step: int | None


class InvalidUser(FieldError):
    """A user field is not valid: the field, a translatable message and its values."""


NOT_EMAIL = N_("%(email)s is not an e-mail address.")
SHORT_PASSWORD = N_("Use at least %(n)s characters.")
EMAIL_TAKEN = N_("A user with the e-mail address %(email)s already exists.")
NOT_ROLE = N_("%(role)s is not a role; choose one of: %(roles)s.")
DAYS_MIN = N_("Must be at least 1.")
NOT_SCOPE = N_("%(scope)s is not a token scope; choose read or write.")

#: What an API token may do: read (GET on /api/) or write (also POST, PUT, DELETE on /api/).
TOKEN_SCOPES = ("read", "write")


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    return _hasher.hash(password)


def use_password_hasher(hasher: PasswordHasher) -> PasswordHasher:
    """Hash new passwords with `hasher`; return the one it replaces. For the test suite only,
    before any password is hashed: hashes keep their cost inside, so either kind verifies."""
    global _hasher
    previous, _hasher = _hasher, hasher
    return previous


def verify_password(password_hash: str, password: str) -> bool:
    """Return True when the password matches the hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_user(*, db: Session, email: str, password: str, name: str = "") -> User:
    """Create a user with a hashed password."""
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidUser("email", NOT_EMAIL, email=repr(email))
    if len(password) < MIN_PASSWORD:
        raise InvalidUser("password", SHORT_PASSWORD, n=MIN_PASSWORD)
    if db.scalar(select(User.id).where(User.email == email)) is not None:
        raise InvalidUser("email", EMAIL_TAKEN, email=email)
    user = User(email=email, name=name, password_hash=hash_password(password))
    db.add(user)
    db.flush()
    return user


def get_user(*, db: Session, email: str) -> User | None:
    """Return the user with this e-mail."""
    return db.scalar(select(User).where(User.email == email.strip().lower()))


def grant_role(*, db: Session, user_id: int, mission_id: int, role: str) -> RoleGrant:
    """Give a user a role in a mission (idempotent)."""
    if role not in ROLES:
        raise InvalidUser("role", NOT_ROLE, role=repr(role), roles=", ".join(ROLES))
    grant = db.scalar(
        select(RoleGrant).where(
            RoleGrant.user_id == user_id, RoleGrant.mission_id == mission_id, RoleGrant.role == role
        )
    )
    if grant is None:
        grant = RoleGrant(user_id=user_id, mission_id=mission_id, role=role)
        db.add(grant)
        db.flush()
    return grant


def roles_of(*, db: Session, user_id: int) -> list[tuple[int, str]]:
    """Return (mission id, role) pairs of a user."""
    return [
        (g.mission_id, g.role)
        for g in db.scalars(select(RoleGrant).where(RoleGrant.user_id == user_id))
    ]


def list_users(*, db: Session) -> list[User]:
    """Return every user."""
    return list(db.scalars(select(User).order_by(User.id)))


def audit(
    *,
    db: Session,
    action: str,
    object_type: str,
    object_id: Any = None,
    actor_id: int | None = None,
    actor_label: str = "system",
    mission_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record who did what to which object."""
    event = AuditEvent(
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        actor_id=actor_id,
        actor_label=actor_label,
        mission_id=mission_id,
        detail=detail or {},
    )
    db.add(event)
    return event


def audit_by(
    actor: Principal,
    db: Session,
    action: str,
    object_type: str,
    object_id: Any = None,
    *,
    mission_id: int | None = None,
    **detail: Any,
) -> AuditEvent:
    """Record what a signed-in user (or the system) did to which object, with details."""
    return audit(
        db=db,
        action=action,
        object_type=object_type,
        object_id=object_id,
        actor_id=actor.user_id,
        actor_label=actor.label,
        mission_id=mission_id,
        detail=detail,
    )


# ---------------------------------------------------------------------------- roles

STAFF_ROLES = tuple(r for r in ROLES if r != "citizen")

#: Roles that grant each permission, in the mission concerned or at headquarters.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "listen.read": STAFF_ROLES,
    "sources.manage": ("admin", "analyst", "press"),
    "users.manage": ("admin",),
    "consulate.read": ("admin", "ambassador", "consular"),
    "consulate.act": ("admin", "consular"),
    "watch.manage": ("admin", "analyst"),
    "alerts.manage": ("admin", "analyst", "press"),
    "authors.manage": ("admin", "analyst"),
    "speak.draft": ("admin", "press"),
    "speak.approve": ("admin", "ambassador", "approver"),
    "channels.manage": ("admin",),
}


@dataclass(frozen=True)
class Principal:
    """Who is acting: a signed-in user with their grants, or the operator at the shell."""

    user_id: int | None
    email: str
    name: str
    grants: tuple[tuple[int, str], ...] = ()
    hq_mission_ids: frozenset[int] = field(default_factory=frozenset)
    via: str = "session"
    #: The scope of the API token the request came with ("read" or "write"); None otherwise.
    token_scope: str | None = None

    @classmethod
    def system(cls, label: str = "cli") -> Principal:
        """Return the operator principal used by the command line."""
        return cls(user_id=None, email="", name=label, via="system")

    @property
    def is_system(self) -> bool:
        """Return True for the operator at the shell, who may do anything."""
        return self.via == "system"

    @property
    def label(self) -> str:
        """Return the name recorded in the audit log."""
        return self.name if self.is_system else self.email

    @property
    def roles(self) -> frozenset[str]:
        """Return every role the user holds anywhere."""
        return frozenset(role for _, role in self.grants)

    @property
    def is_staff(self) -> bool:
        """Return True when the user holds any role but citizen."""
        return self.is_system or any(role in STAFF_ROLES for _, role in self.grants)

    def missions_where(self, permission: str) -> frozenset[int] | None:
        """Return the missions where `permission` is held; None means every mission.

        A role held at headquarters reaches every mission; a role held in a mission reaches that
        mission only. This is the one rule every query of mission data is scoped by.
        """
        if self.is_system:
            return None
        roles = PERMISSIONS[permission]
        held = frozenset(m for m, r in self.grants if r in roles)
        if held & self.hq_mission_ids:
            return None
        return held

    def can(self, permission: str, mission_id: int | None) -> bool:
        """Return True when `permission` is held in this mission.

        `mission_id=None` asks about data that belongs to no mission (a ministry-wide source,
        a user, a mission itself): that needs the permission at headquarters.
        """
        ids = self.missions_where(permission)
        return ids is None or (mission_id is not None and mission_id in ids)

    def can_somewhere(self, permission: str) -> bool:
        """Return True when `permission` is held in at least one mission (menus, page access)."""
        ids = self.missions_where(permission)
        return ids is None or bool(ids)


_Query = TypeVar("_Query", bound=Select)


def missions_where(actor: Principal, permission: str) -> frozenset[int] | None:
    """Return the mission ids where the actor holds `permission`; None means every mission."""
    return actor.missions_where(permission)


class _MissionRow(Protocol):
    mission_id: Any


_Row = TypeVar("_Row", bound=_MissionRow)


def readable(
    db: Session, model: type[_Row], row_id: int, actor: Principal, permission: str = "listen.read"
) -> _Row | None:
    """Return a row of mission data when the actor holds `permission` in its mission."""
    row = db.get(model, row_id)
    return row if row is not None and actor.can(permission, row.mission_id) else None


def get_readable(
    db: Session,
    model: type[_Row],
    row_id: int,
    actor: Principal,
    missing: Exception,
    permission: str = "listen.read",
) -> _Row:
    """Return a row of mission data the actor may read; raise `missing` when there is none."""
    row = readable(db, model, row_id, actor, permission)
    if row is None:
        raise missing
    return row


def scoped(
    stmt: _Query,
    column: Any,
    actor: Principal,
    permission: str,
    *,
    shared: bool = False,
) -> _Query:
    """Limit a query of mission data to the missions where the actor holds `permission`.

    `shared=True` also keeps rows of no mission (ministry-wide sources and their posts), which
    every holder of the permission may read.
    """
    ids = actor.missions_where(permission)
    if ids is None:
        return stmt
    if shared:
        return stmt.where(or_(column.is_(None), column.in_(ids)))
    return stmt.where(column.in_(ids))


def authorize(principal: Principal, permission: str, *, mission_id: int | None) -> None:
    """Raise PermissionDenied unless the principal holds `permission` in this mission."""
    if not principal.can(permission, mission_id):
        where = "at headquarters" if mission_id is None else f"in mission {mission_id}"
        raise PermissionDenied(
            f"{permission} {where}: needs role {' or '.join(PERMISSIONS[permission])}"
        )


def authorize_over_user(*, db: Session, actor: Principal, user_id: int) -> None:
    """Raise PermissionDenied unless the actor manages users in every mission the user is in.

    A user with a role at headquarters, or with no role at all, is managed from headquarters
    only: a mission's admin cannot disable, reset or issue tokens for the ministry's admin.
    """
    missions = {m for m, _ in roles_of(db=db, user_id=user_id)}
    if not missions:
        authorize(actor, "users.manage", mission_id=None)
    for mission_id in sorted(missions):
        authorize(actor, "users.manage", mission_id=mission_id)


def load_principal(
    *, db: Session, user_id: int, via: str = "session", token_scope: str | None = None
) -> Principal | None:
    """Return the principal of an active user, or None."""
    user = db.get(User, user_id)
    if user is None or not user.is_active:
        return None
    grants = tuple(roles_of(db=db, user_id=user_id))
    mission_ids = {m for m, _ in grants}
    hq = (
        frozenset(
            db.scalars(select(Mission.id).where(Mission.id.in_(mission_ids), Mission.kind == "hq"))
        )
        if mission_ids
        else frozenset()
    )
    return Principal(
        user_id=user.id,
        email=user.email,
        name=user.name,
        grants=grants,
        hq_mission_ids=hq,
        via=via,
        token_scope=token_scope,
    )


def role_labels(*, db: Session) -> dict[int, list[str]]:
    """Return 'mission-slug:role' labels per user id."""
    out: dict[int, list[str]] = {}
    rows = db.execute(
        select(RoleGrant.user_id, Mission.slug, RoleGrant.role)
        .join(Mission, Mission.id == RoleGrant.mission_id)
        .order_by(RoleGrant.user_id, Mission.slug, RoleGrant.role)
    )
    for user_id, slug, role in rows:
        out.setdefault(user_id, []).append(f"{slug}:{role}")
    return out


# ---------------------------------------------------------------------------- sign-in limits


@dataclass(frozen=True)
class LoginPolicy:
    """Limits on sign-in attempts; the state lives in the database so every process shares it."""

    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)
    ip_window: timedelta = timedelta(minutes=15)
    ip_max_failures: int = 30
    mfa_timeout: timedelta = timedelta(minutes=5)
    keep_attempts: timedelta = timedelta(days=7)

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginPolicy:
        """The limits set by ELSHI_LOGIN_* settings."""
        return cls(
            max_failures=settings.login_max_failures,
            lockout=timedelta(minutes=settings.login_lockout_minutes),
            ip_window=timedelta(minutes=settings.login_ip_window_minutes),
            ip_max_failures=settings.login_ip_max_failures,
        )


def ip_blocked(*, db: Session, ip: str, policy: LoginPolicy, now: datetime | None = None) -> bool:
    """Return True when this address failed too often within the policy's window."""
    since = (now or utcnow()) - policy.ip_window
    failures = db.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.ip == ip, LoginAttempt.at >= since, LoginAttempt.success.is_(False))
    )
    return (failures or 0) >= policy.ip_max_failures


def record_attempt(
    *,
    db: Session,
    ip: str,
    user_id: int | None,
    success: bool,
    policy: LoginPolicy,
    citizen_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """Store one sign-in attempt (for a staff user or a citizen, or neither) and drop old ones."""
    now = now or utcnow()
    db.add(
        LoginAttempt(at=now, ip=ip[:64], user_id=user_id, citizen_id=citizen_id, success=success)
    )
    if not success:
        from elshi.metrics import signin_failed

        signin_failed(user_id=user_id, citizen_id=citizen_id)
    db.execute(delete(LoginAttempt).where(LoginAttempt.at < now - policy.keep_attempts))


def _of_account(user_id: int | None, citizen_id: int | None) -> Any:
    if (user_id is None) == (citizen_id is None):
        raise ValueError("name either a user or a citizen")
    if user_id is not None:
        return LoginAttempt.user_id == user_id
    return LoginAttempt.citizen_id == citizen_id


def is_locked(
    *,
    db: Session,
    ip: str,
    policy: LoginPolicy,
    user_id: int | None = None,
    citizen_id: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Return True while an account is locked for this address.

    The lock holds per account AND address: `max_failures` failed sign-ins from one address
    within the lockout time lock that address out of the account, not the owner elsewhere.
    """
    since = (now or utcnow()) - policy.lockout
    failures = db.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(
            _of_account(user_id, citizen_id),
            LoginAttempt.ip == ip[:64],
            LoginAttempt.at >= since,
            LoginAttempt.success.is_(False),
        )
    )
    return (failures or 0) >= policy.max_failures


def locked_addresses(
    *,
    db: Session,
    policy: LoginPolicy,
    user_id: int | None = None,
    citizen_id: int | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Return the addresses an account is locked for now."""
    since = (now or utcnow()) - policy.lockout
    return list(
        db.scalars(
            select(LoginAttempt.ip)
            .where(
                _of_account(user_id, citizen_id),
                LoginAttempt.at >= since,
                LoginAttempt.success.is_(False),
            )
            .group_by(LoginAttempt.ip)
            .having(func.count() >= policy.max_failures)
            .order_by(LoginAttempt.ip)
        )
    )


def lift_lock(
    *,
    db: Session,
    user_id: int | None = None,
    citizen_id: int | None = None,
    ip: str | None = None,
) -> None:
    """Forget an account's failed sign-ins (from one address, or all); address counts stay."""
    stmt = update(LoginAttempt).where(
        _of_account(user_id, citizen_id), LoginAttempt.success.is_(False)
    )
    if ip is not None:
        stmt = stmt.where(LoginAttempt.ip == ip[:64])
    db.execute(stmt.values(user_id=None, citizen_id=None))
    db.flush()


def needs_rehash(password_hash: str) -> bool:
    """Return True when a stored hash was made at other argon2 parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)


def mark_signed_in(*, db: Session, user: User, now: datetime | None = None) -> None:
    """Record the time of a complete sign-in."""
    user.last_login_at = now or utcnow()
    db.flush()


def set_password(*, db: Session, user: User, password: str) -> None:
    """Replace a user's password after checking its length."""
    if len(password) < MIN_PASSWORD:
        raise InvalidUser("password", SHORT_PASSWORD, n=MIN_PASSWORD)
    user.password_hash = hash_password(password)
    db.flush()


# ---------------------------------------------------------------------------- TOTP


def new_totp_secret() -> str:
    """Return a random base32 TOTP secret."""
    return pyotp.random_base32()


def totp_uri(*, secret: str, email: str, issuer: str = "elshi") -> str:
    """Return the otpauth:// URI an authenticator app enrols from."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def valid_totp_secret(secret: str) -> bool:
    """Return True for a base32 key of at least 112 bits (a form may send back anything)."""
    try:
        pyotp.TOTP(secret).byte_secret()
    except (ValueError, TypeError):
        return False
    return True


def verify_totp(*, user: SignInHolder, code: str, now: datetime | None = None) -> bool:
    """Check a 6-digit code (one step of clock drift allowed); a used code is refused."""
    code = re.sub(r"\s+", "", code or "")
    if not user.totp_secret or not re.fullmatch(r"\d{6}", code):
        return False
    if not valid_totp_secret(user.totp_secret):
        return False
    totp = pyotp.TOTP(user.totp_secret)
    current = int((now or utcnow()).timestamp()) // totp.interval
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            if user.totp_last_step is not None and step <= user.totp_last_step:
                return False
            user.totp_last_step = step
            return True
    return False


# ---------------------------------------------------------------------------- sessions


SessionRow = TypeVar("SessionRow", bound=SessionColumns)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def open_session(
    db: Session, model: type[SessionRow], *, lifetime: timedelta, now: datetime | None, **row: Any
) -> str:
    """Add a session of `model` (its owner and columns in `row`), drop the expired ones, and
    return its secret key: only the key's digest is stored."""
    now = now or utcnow()
    key = secrets.token_urlsafe(32)
    stored = {"key_hash": _digest(key), "created_at": now, "expires_at": now + lifetime}
    db.add(model(**stored, **row))
    db.execute(delete(model).where(model.expires_at < now))
    db.flush()
    return key


def find_session_row(
    db: Session, model: type[SessionRow], key: str, now: datetime | None = None
) -> SessionRow | None:
    """Return the unexpired session of `model` with this key."""
    row = db.scalar(select(model).where(model.key_hash == _digest(key)))
    if row is None or row.expires_at <= (now or utcnow()):
        return None
    return row


def create_session(
    *,
    db: Session,
    user_id: int,
    lifetime: timedelta,
    mfa_pending: bool = False,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> str:
    """Start a session and return its secret key (only its digest is stored)."""
    return open_session(
        db,
        WebSession,
        lifetime=lifetime,
        now=now,
        user_id=user_id,
        mfa_pending=mfa_pending,
        ip=(ip or "")[:64] or None,
        user_agent=(user_agent or "")[:300] or None,
    )


def find_session(*, db: Session, key: str, now: datetime | None = None) -> WebSession | None:
    """Return the unexpired session with this key."""
    return find_session_row(db, WebSession, key, now)


def end_session(*, db: Session, key: str) -> WebSession | None:
    """Delete the session with this key; return it if it existed."""
    row = db.scalar(select(WebSession).where(WebSession.key_hash == _digest(key)))
    if row is not None:
        db.delete(row)
        db.flush()
    return row


def end_user_sessions(*, db: Session, user_id: int, keep_key: str | None = None) -> int:
    """Sign a user out everywhere (but the session `keep_key`); return how many sessions ended."""
    stmt = delete(WebSession).where(WebSession.user_id == user_id)
    if keep_key:
        stmt = stmt.where(WebSession.key_hash != _digest(keep_key))
    ended = db.execute(stmt)
    db.flush()
    return int(getattr(ended, "rowcount", 0) or 0)


# ---------------------------------------------------------------------------- API tokens

TOKEN_PREFIX = "elshi_"


def create_api_token(
    *,
    db: Session,
    user_id: int,
    name: str = "",
    days: int | None = None,
    scope: str = "read",
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; return the row and the plain token, which is never stored."""
    if days is not None and days < 1:
        raise InvalidUser("days", DAYS_MIN)
    if scope not in TOKEN_SCOPES:
        raise InvalidUser("scope", NOT_SCOPE, scope=repr(scope))
    now = now or utcnow()
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user_id,
        name=name[:100],
        token_hash=_digest(plain),
        prefix=plain[: len(TOKEN_PREFIX) + 6],
        scope=scope,
        created_at=now,
        expires_at=now + timedelta(days=days) if days else None,
    )
    db.add(row)
    db.flush()
    return row, plain


def find_api_token(*, db: Session, token: str, now: datetime | None = None) -> ApiToken | None:
    """Return the live token matching this plain value and note its use."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    now = now or utcnow()
    row = db.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    # Writing on every request would serialise API reads on SQLite; a minute is precise enough.
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
    return row


def list_api_tokens(*, db: Session, user_id: int) -> list[ApiToken]:
    """Return a user's tokens, newest first."""
    return list(
        db.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc()))
    )


def revoke_api_token(*, db: Session, token_id: int, now: datetime | None = None) -> ApiToken | None:
    """Revoke a token by id; return it if it existed."""
    row = db.get(ApiToken, token_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = now or utcnow()
        db.flush()
    return row


# ---------------------------------------------------------------------------- personal data in logs

_EMAIL_IN_TEXT = re.compile(
    r"(?<![\w.+-])([\w.%+-])[\w.%+-]*@([\w-])[\w.-]*(\.[A-Za-z]{2,24})(?![\w-])"
)


def mask_email(email: str) -> str:
    """Return the e-mail with all but the first letters hidden: a***@e***.org."""
    masked = mask_emails(email)
    return masked if masked != email else "***"


# International phone numbers: a plus sign and 7 to 15 digits, spaces or dashes allowed.
_PHONE_IN_TEXT = re.compile(r"(?<![\w+])\+(\d)(?:[\s-]?\d){5,13}(\d)(?!\d)")


def mask_emails(text: str) -> str:
    """Hide every e-mail address (and international phone number) found in a text."""
    text = _EMAIL_IN_TEXT.sub(lambda m: f"{m[1]}***@{m[2]}***{m[3]}", text)
    return _PHONE_IN_TEXT.sub(lambda m: f"+{m[1]}***{m[2]}", text)


def _mask_arg(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = str(value)
    masked = mask_emails(text)
    return value if masked == text else masked


class MaskEmailsFilter(logging.Filter):
    """A logging filter that masks e-mail addresses in every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the message and its arguments in place (keeping their shape); never drop."""
        if isinstance(record.msg, str):
            record.msg = mask_emails(record.msg)
        # Formatters such as uvicorn's access log unpack args, so keep a tuple a tuple.
        if isinstance(record.args, tuple):
            record.args = tuple(_mask_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _mask_arg(v) for k, v in record.args.items()}
        return True


_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "elshi")


def install_log_masking() -> None:
    """Mask e-mail addresses in what elshi's, uvicorn's and the root handlers write."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            if not any(isinstance(f, MaskEmailsFilter) for f in target.filters):
                target.addFilter(MaskEmailsFilter())
