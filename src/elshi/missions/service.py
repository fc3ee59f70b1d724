"""Missions: create and list tenants."""

from __future__ import annotations

import re
from functools import cache
from zoneinfo import ZoneInfo
from zoneinfo import available_timezones as _all_zones

from sqlalchemy import select
from sqlalchemy.orm import Session

from elshi.errors import N_, FieldError
from elshi.missions.models import MISSION_KINDS, Mission

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class InvalidMission(FieldError):
    """A mission field is not valid: the field, a translatable message and its values."""


BAD_SLUG = N_("%(slug)s: use lower-case letters, digits and dashes.")
NOT_KIND = N_("%(kind)s is not a kind of mission; choose one of: %(kinds)s.")
BAD_COUNTRY = N_("%(code)s: use the two-letter country code (ISO 3166), e.g. KZ.")
BAD_PHONE = N_(
    "%(phone)s is not a phone number: digits, spaces and a leading +, e.g. +49 30 555 0100."
)
SLUG_TAKEN = N_("A mission with the short name %(slug)s already exists.")
ONE_HQ = N_("There is already a headquarters (%(slug)s): a ministry has one.")
BAD_ZONE = N_("%(zone)s is not a time zone name such as Europe/Berlin (IANA).")


@cache
def available_timezones() -> frozenset[str]:
    """The IANA time zone names this machine knows."""
    return frozenset(_all_zones())


def check_timezone(name: str) -> str:
    """Return an IANA time zone name (e.g. Europe/Berlin) after checking it exists."""
    if name not in available_timezones():
        raise InvalidMission("timezone", BAD_ZONE, zone=repr(name))
    return name


def zone_of(mission: Mission | None) -> ZoneInfo:
    """Return a mission's time zone (UTC when it has none)."""
    return ZoneInfo(mission.timezone if mission is not None and mission.timezone else "UTC")


def set_timezone(*, db: Session, mission: Mission, timezone: str) -> Mission:
    """Change the time zone a mission's office works in."""
    mission.timezone = check_timezone(timezone)
    db.flush()
    return mission


def set_emergency_phone(*, db: Session, mission: Mission, phone: str) -> Mission:
    """Change the emergency number citizens are shown on the mission's crisis pages."""
    mission.emergency_phone = check_phone(phone)
    db.flush()
    return mission


def create_mission(
    *,
    db: Session,
    slug: str,
    name: str,
    kind: str = "embassy",
    country_code: str | None = None,
    parent_id: int | None = None,
    timezone: str = "UTC",
    emergency_phone: str = "",
) -> Mission:
    """Create a mission after checking its slug, kind, country code and time zone."""
    check_timezone(timezone)
    if not _SLUG.match(slug):
        raise InvalidMission("slug", BAD_SLUG, slug=repr(slug))
    if kind not in MISSION_KINDS:
        raise InvalidMission("kind", NOT_KIND, kind=repr(kind), kinds=", ".join(MISSION_KINDS))
    if country_code is not None and not re.fullmatch(r"[A-Za-z]{2}", country_code):
        raise InvalidMission("country", BAD_COUNTRY, code=repr(country_code))
    if db.scalar(select(Mission.id).where(Mission.slug == slug)) is not None:
        raise InvalidMission("slug", SLUG_TAKEN, slug=slug)
    # A role held at headquarters reaches every mission: a second one would widen every grant.
    hq = db.scalar(select(Mission.slug).where(Mission.kind == "hq"))
    if kind == "hq" and hq is not None:
        raise InvalidMission("kind", ONE_HQ, slug=hq)
    mission = Mission(
        slug=slug,
        name=name,
        kind=kind,
        country_code=country_code.upper() if country_code else None,
        parent_id=parent_id,
        timezone=timezone,
        emergency_phone=check_phone(emergency_phone),
    )
    db.add(mission)
    db.flush()
    return mission


def check_phone(phone: str) -> str:
    """Return an emergency number as typed, or raise InvalidMission when it is not one."""
    phone = " ".join(phone.split())
    if phone and not re.fullmatch(r"\+?[0-9][0-9 ()./-]{3,38}", phone):
        raise InvalidMission("emergency_phone", BAD_PHONE, phone=repr(phone))
    return phone


def get_mission(*, db: Session, slug: str) -> Mission | None:
    """Return the mission with this slug."""
    return db.scalar(select(Mission).where(Mission.slug == slug))


def list_missions(*, db: Session) -> list[Mission]:
    """Return every mission."""
    return list(db.scalars(select(Mission).order_by(Mission.id)))


def ensure_hq(*, db: Session, name: str = "Headquarters") -> Mission:
    """Return the HQ mission, creating it on first use."""
    hq = get_mission(db=db, slug="hq")
    return hq or create_mission(db=db, slug="hq", name=name, kind="hq")
