"""Accounts API shapes."""

from __future__ import annotations

from pydantic import BaseModel


class GrantOut(BaseModel):
    """One role in one mission."""

    mission_id: int
    role: str


class MeOut(BaseModel):
    """The signed-in user as the API sees them."""

    id: int | None
    email: str
    name: str
    via: str
    staff: bool
    all_missions: bool
    grants: list[GrantOut]
