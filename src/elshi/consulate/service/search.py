"""District search: officers find citizens by name, passport or phone in their missions."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from elshi.accounts.service import PermissionDenied, Principal
from elshi.consulate.models import (
    Citizen,
    Registration,
    ServiceRequest,
)
from elshi.consulate.service import clean_text
from elshi.consulate.service.access import SEARCH_FIELDS, record_access
from elshi.crypto import PASSPORT, PHONE, normalise_passport
from elshi.db import keyring_of


@dataclass
class SearchHit:
    """A citizen found in the officer's district, with their registrations there."""

    citizen: Citizen
    registrations: list[Registration]


def search_district(*, db: Session, actor: Principal, q: str, limit: int = 50) -> list[SearchHit]:
    """Find citizens by name, e-mail or phone among those registered with the officer's missions."""
    if not actor.can_somewhere("consulate.read"):
        raise PermissionDenied("consulate.read: needs role consular, ambassador or admin")
    text = clean_text("q", q, max_len=100, required=True)
    pattern = "%" + text.lower().replace("\\", "").replace("%", "").replace("_", "") + "%"
    missions = actor.missions_where("consulate.read")
    in_district = select(Registration.citizen_id)
    requested = select(ServiceRequest.citizen_id).where(ServiceRequest.status != "draft")
    if missions is not None:
        in_district = in_district.where(Registration.mission_id.in_(missions))
        requested = requested.where(ServiceRequest.mission_id.in_(missions))
    found: list[ColumnElement[bool]] = [
        func.lower(Citizen.name).like(pattern),
        Citizen.email.like(pattern),
    ]
    # Phones and passport numbers are sealed: they are found whole, by their blind index.
    keyring = keyring_of(db)
    phones = keyring.lookups(PHONE, text)
    if phones:
        found.append(Citizen.phone_index.in_(phones))
        found.append(Citizen.id.in_(in_district.where(Registration.phone_index.in_(phones))))
    passport = normalise_passport(text)
    if len(passport) >= 5 and passport.isalnum() and any(c.isdigit() for c in passport):
        found.append(
            Citizen.id.in_(
                requested.where(ServiceRequest.passport_index.in_(keyring.lookups(PASSPORT, text)))
            )
        )
    citizens = list(
        db.scalars(
            select(Citizen)
            .where(
                or_(Citizen.id.in_(in_district), Citizen.id.in_(requested)),
                or_(*found),
            )
            .order_by(Citizen.name, Citizen.id)
            .limit(limit)
        )
    )
    hits = []
    for citizen in citizens:
        regs = select(Registration).where(Registration.citizen_id == citizen.id)
        if missions is not None:
            regs = regs.where(Registration.mission_id.in_(missions))
        hits.append(SearchHit(citizen, list(db.scalars(regs.order_by(Registration.id.desc())))))
        record_access(
            db=db,
            actor=actor,
            row=citizen,
            mission_id=None,
            action="search",
            fields=SEARCH_FIELDS,
            why="page",
        )
    return hits
