"""Sign-in, sign-out and account changes, each recorded in the audit log."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from elshi.accounts import service, signin
from elshi.accounts.models import ApiToken, RoleGrant, User
from elshi.accounts.service import LoginPolicy, Principal
from elshi.accounts.signin import SignIn as SignIn  # where callers have found it
from elshi.errors import N_, FieldError, NotFound
from elshi.missions import service as missions
from elshi.missions.models import Mission

NO_USER = N_("No user has the e-mail address %(email)s.")
NO_MISSION = N_("There is no mission with the short name %(slug)s.")
NO_TOKEN = N_("No API token has the id %(id)s.")


class UserNotFound(FieldError, NotFound):
    """No user has this e-mail."""


class TokenNotFound(FieldError, NotFound):
    """No API token has this id."""


class MissionNotFound(FieldError, NotFound):
    """No mission has this slug."""


def _user(db: Session, email: str) -> User:
    user = service.get_user(db=db, email=email)
    if user is None:
        raise UserNotFound("email", NO_USER, email=repr(email.strip().lower()))
    return user


def _mission(db: Session, slug: str) -> Mission:
    if slug == "hq":
        return missions.ensure_hq(db=db)
    mission = missions.get_mission(db=db, slug=slug)
    if mission is None:
        raise MissionNotFound("mission", NO_MISSION, slug=repr(slug))
    return mission


def sign_in(
    *,
    db: Session,
    email: str,
    password: str,
    ip: str,
    user_agent: str | None,
    policy: LoginPolicy,
    lifetime: timedelta,
) -> SignIn:
    """Check e-mail and password; start a session, or a pending one when TOTP is enrolled.

    A blocked address is answered at once: that says nothing about any account.
    """
    attempt = signin.Attempt(ip, user_agent, policy, lifetime)
    return signin.sign_in(signin.STAFF, db, attempt, email=email, password=password)


def sign_in_code(
    *,
    db: Session,
    pending_key: str,
    code: str,
    ip: str,
    user_agent: str | None,
    policy: LoginPolicy,
    lifetime: timedelta,
) -> SignIn:
    """Check the TOTP code of a pending sign-in; replace the pending session with a full one."""
    attempt = signin.Attempt(ip, user_agent, policy, lifetime)
    return signin.sign_in_code(signin.STAFF, db, attempt, pending_key=pending_key, code=code)


def sign_out(*, db: Session, session_key: str, ip: str) -> None:
    """End a session and record it."""
    row = service.end_session(db=db, key=session_key)
    if row is not None and not row.mfa_pending:
        user = db.get(User, row.user_id)
        service.audit(
            db=db,
            action="auth.sign_out",
            object_type="user",
            object_id=row.user_id,
            actor_id=row.user_id,
            actor_label=user.email if user else "",
            detail={"ip": ip},
        )


def add_user(
    *,
    db: Session,
    actor: Principal,
    email: str,
    password: str,
    name: str,
    role: str,
    mission_slug: str,
) -> User:
    """Create a user with one role in one mission."""
    mission = _mission(db, mission_slug)
    service.authorize(actor, "users.manage", mission_id=mission.id)
    if role not in service.ROLES:
        raise service.InvalidUser(
            "role", service.NOT_ROLE, role=repr(role), roles=", ".join(service.ROLES)
        )
    user = service.create_user(db=db, email=email, password=password, name=name)
    service.grant_role(db=db, user_id=user.id, mission_id=mission.id, role=role)
    service.audit_by(
        actor,
        db,
        "user.create",
        "user",
        user.id,
        mission_id=mission.id,
        email=service.mask_email(user.email),
        role=role,
        mission=mission.slug,
    )
    return user


def grant(*, db: Session, actor: Principal, email: str, role: str, mission_slug: str) -> RoleGrant:
    """Give a user a role in a mission."""
    mission = _mission(db, mission_slug)
    service.authorize(actor, "users.manage", mission_id=mission.id)
    user = _user(db, email)
    row = service.grant_role(db=db, user_id=user.id, mission_id=mission.id, role=role)
    service.audit_by(
        actor,
        db,
        "role.grant",
        "user",
        user.id,
        mission_id=mission.id,
        role=role,
        mission=mission.slug,
    )
    return row


def issue_token(
    *,
    db: Session,
    actor: Principal,
    email: str,
    name: str = "",
    days: int | None = None,
    scope: str = "read",
) -> str:
    """Create an API token for a user and return it; only its digest is kept."""
    user = _user(db, email)
    if actor.user_id != user.id:
        service.authorize_over_user(db=db, actor=actor, user_id=user.id)
    row, plain = service.create_api_token(db=db, user_id=user.id, name=name, days=days, scope=scope)
    service.audit_by(
        actor,
        db,
        "token.create",
        "api_token",
        row.id,
        user_id=user.id,
        name=name,
        prefix=row.prefix,
        days=days,
        scope=scope,
    )
    return plain


def _set_totp(
    db: Session, actor: Principal, user: User, secret: str, last_step: int | None
) -> None:
    """Keep a user's TOTP secret (and the last step used with it), audited as an enrolment."""
    user.totp_secret = secret
    user.totp_last_step = last_step
    service.audit_by(actor, db, "totp.enrol", "user", user.id)


def enrol_totp(*, db: Session, actor: Principal, email: str) -> str:
    """Give a user a new TOTP secret and return the otpauth:// URI to scan."""
    user = _user(db, email)
    if actor.user_id != user.id:
        service.authorize_over_user(db=db, actor=actor, user_id=user.id)
    secret = service.new_totp_secret()
    _set_totp(db, actor, user, secret, None)
    return service.totp_uri(secret=secret, email=user.email)


def disable_totp(*, db: Session, actor: Principal, email: str) -> None:
    """Remove a user's TOTP secret."""
    user = _user(db, email)
    service.authorize_over_user(db=db, actor=actor, user_id=user.id)
    user.totp_secret = None
    user.totp_last_step = None
    service.audit_by(actor, db, "totp.disable", "user", user.id)


def set_active(*, db: Session, actor: Principal, email: str, active: bool) -> User:
    """Disable a user (signed out everywhere, tokens refused) or enable them again."""
    user = _user(db, email)
    service.authorize_over_user(db=db, actor=actor, user_id=user.id)
    user.is_active = active
    ended = 0 if active else service.end_user_sessions(db=db, user_id=user.id)
    service.audit_by(
        actor,
        db,
        "user.enable" if active else "user.disable",
        "user",
        user.id,
        sessions_ended=ended,
    )
    return user


def reset_password(*, db: Session, actor: Principal, email: str, password: str) -> User:
    """Set a new password for a user, lift their locks and sign them out everywhere."""
    user = _user(db, email)
    service.authorize_over_user(db=db, actor=actor, user_id=user.id)
    service.set_password(db=db, user=user, password=password)
    service.lift_lock(db=db, user_id=user.id)
    service.end_user_sessions(db=db, user_id=user.id)
    service.audit_by(actor, db, "password.reset", "user", user.id)
    return user


def tokens_of(*, db: Session, actor: Principal, email: str) -> list[ApiToken]:
    """A user's API tokens, newest first (the user themself or a user manager may look)."""
    user = _user(db, email)
    if actor.user_id != user.id:
        service.authorize_over_user(db=db, actor=actor, user_id=user.id)
    return service.list_api_tokens(db=db, user_id=user.id)


def revoke_token(*, db: Session, actor: Principal, token_id: int) -> ApiToken:
    """Revoke an API token by id (its owner or a user manager may)."""
    row = db.get(ApiToken, token_id)
    if row is None:
        raise TokenNotFound("token", NO_TOKEN, id=token_id)
    if actor.user_id != row.user_id:
        service.authorize_over_user(db=db, actor=actor, user_id=row.user_id)
    service.revoke_api_token(db=db, token_id=token_id)
    service.audit_by(
        actor,
        db,
        "token.revoke",
        "api_token",
        row.id,
        user_id=row.user_id,
        prefix=row.prefix,
    )
    return row


def enable_own_totp(*, db: Session, actor: Principal, secret: str, code: str) -> bool:
    """Turn on two-step sign-in for the signed-in user once their app shows the right code."""
    if actor.user_id is None:
        return False
    user = db.get(User, actor.user_id)
    if user is None:
        return False
    probe = User(totp_secret=secret, totp_last_step=None)
    if not secret or not service.verify_totp(user=probe, code=code):
        return False
    _set_totp(db, actor, user, secret, probe.totp_last_step)
    return True


def change_own_password(
    *, db: Session, actor: Principal, current: str, new: str, session_key: str | None = None
) -> str | None:
    """Replace the signed-in user's password; return what is wrong, or None when done.

    The current password must match; the new one must be long enough and differ from it.
    Every other session of the user ends; the one of `session_key` (this browser) stays.
    """
    user = db.get(User, actor.user_id) if actor.user_id is not None else None
    if user is None or not service.verify_password(user.password_hash, current):
        return "current"
    if len(new) < service.MIN_PASSWORD:
        return "short"
    if new == current:
        return "same"
    service.set_password(db=db, user=user, password=new)
    ended = service.end_user_sessions(db=db, user_id=user.id, keep_key=session_key)
    service.audit_by(actor, db, "password.change", "user", user.id, sessions_ended=ended)
    return None


def add_mission(
    *,
    db: Session,
    actor: Principal,
    slug: str,
    name: str,
    kind: str = "embassy",
    country_code: str | None = None,
    parent_slug: str | None = None,
    timezone: str = "UTC",
    emergency_phone: str = "",
) -> Mission:
    """Create a mission under HQ (or another parent)."""
    service.authorize(actor, "users.manage", mission_id=None)
    parent = _mission(db, parent_slug) if parent_slug else None
    if parent is None and kind != "hq":
        parent = missions.ensure_hq(db=db)
    mission = missions.create_mission(
        db=db,
        slug=slug,
        name=name,
        kind=kind,
        country_code=country_code,
        parent_id=parent.id if parent else None,
        timezone=timezone,
        emergency_phone=emergency_phone,
    )
    service.audit_by(
        actor,
        db,
        "mission.create",
        "mission",
        mission.id,
        mission_id=mission.id,
        slug=slug,
        kind=kind,
    )
    return mission
