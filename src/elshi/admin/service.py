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
    accounts.audit_by(
        actor,
        db,
        "role.revoke",
        "user",
        grant.user_id,
        mission_id=grant.mission_id,
        role=grant.role,
    )
    return grant


def users_with_grants(*, db: Session, actor: Principal) -> list[tuple[User, list[RoleGrant]]]:
    """Return the users the actor manages, each with their grants in the actor's missions.

    An admin of headquarters sees everyone; a mission's admin sees the people who hold a role
    in their missions and only those roles; anyone else sees no one.
    """
    where = actor.missions_where("users.manage")
    if where is not None and not where:
        return []
    grants: dict[int, list[RoleGrant]] = {}
    stmt = accounts.scoped(
        select(RoleGrant).order_by(RoleGrant.mission_id, RoleGrant.role),
        RoleGrant.mission_id,
        actor,
        "users.manage",
    )
    for g in db.scalars(stmt):
        grants.setdefault(g.user_id, []).append(g)
    users = accounts.list_users(db=db)
    if where is None:
        return [(u, grants.get(u.id, [])) for u in users]
    return [(u, grants[u.id]) for u in users if u.id in grants]


def set_source_enabled(
    *, db: Session, actor: Principal, source_id: int, enabled: bool
) -> Source | None:
    """Pause or resume polling a source."""
    source = db.get(Source, source_id)
    if source is None:
        return None
    accounts.authorize(actor, "sources.manage", mission_id=source.mission_id)
    source.enabled = enabled
    accounts.audit_by(
        actor,
        db,
        "source.enabled" if enabled else "source.paused",
        "source",
        source.id,
        mission_id=source.mission_id,
    )
    return source
