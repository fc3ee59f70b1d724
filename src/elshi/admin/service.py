"""Administration that the accounts and listen services do not already offer."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from elshi.accounts import service as accounts
from elshi.accounts.models import RoleGrant, User
from elshi.accounts.service import Principal
from elshi.listen.models import Source


def revoke_role(*, db: Session, actor: Principal, grant_id: int) -> RoleGrant | None:
    """Take one role in one mission away from a user."""
    grant = db.get(RoleGrant, grant_id)
    if grant is None:
        return None
    accounts.authorize(actor, "users.manage", mission_id=grant.mission_id)
    db.execute(delete(RoleGrant).where(RoleGrant.id == grant_id))
    accounts.audit(
        db=db,
        action="role.revoke",
        object_type="user",
        object_id=grant.user_id,
        actor_id=actor.user_id,
        actor_label=actor.label,
        mission_id=grant.mission_id,
        detail={"role": grant.role},
    )
    return grant


def users_with_grants(*, db: Session) -> list[tuple[User, list[RoleGrant]]]:
    """Return every user with their role grants."""
    grants: dict[int, list[RoleGrant]] = {}
    for g in db.scalars(select(RoleGrant).order_by(RoleGrant.mission_id, RoleGrant.role)):
        grants.setdefault(g.user_id, []).append(g)
    return [(u, grants.get(u.id, [])) for u in accounts.list_users(db=db)]


def set_source_enabled(
    *, db: Session, actor: Principal, source_id: int, enabled: bool
) -> Source | None:
    """Pause or resume polling a source."""
    source = db.get(Source, source_id)
    if source is None:
        return None
    accounts.authorize(actor, "sources.manage", mission_id=source.mission_id)
    source.enabled = enabled
    accounts.audit(
        db=db,
        action="source.enabled" if enabled else "source.paused",
        object_type="source",
        object_id=source.id,
        actor_id=actor.user_id,
        actor_label=actor.label,
        mission_id=source.mission_id,
    )
    return source
