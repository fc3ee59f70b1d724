"""The area of a crisis: parsing and describing it, and who is in it (the preview)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from elshi.accounts.service import Principal
from elshi.consulate.models import Citizen, Registration
from elshi.crisis.models import (
    PushSubscription,
)
from elshi.crisis.service import (
    BAD_CIRCLE,
    BAD_COORD,
    BAD_POLYGON,
    NO_AREA,
    Invalid,
    Problem,
    Segments,
    _require,
    _sample_link,
    sms_body,
    sms_segments,
)
from elshi.db import utcnow
from elshi.missions.models import Mission
from elshi.web.i18n import N_

# ---------------------------------------------------------------------------- the area


def _split(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        items = [str(v) for v in value]
    else:
        items = re.split(r"[,;\n]", str(value or ""))
    return [i.strip() for i in items if i.strip()]


def _coord(lat: float, lon: float, where: str) -> tuple[float, float]:
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise Invalid(Problem(where, BAD_COORD))
    return lat, lon


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text)]


def parse_area(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Return a clean area from form or CLI values; raise Invalid naming the bad field."""
    area: dict[str, Any] = {}
    countries = [c.upper() for c in _split(raw.get("countries"))]
    for code in countries:
        if not re.fullmatch(r"[A-Z]{2}", code):
            raise Invalid(Problem("countries", N_("Use two-letter country codes, e.g. TR, DE.")))
    if countries:
        area["countries"] = countries
    for key in ("regions", "cities"):
        values = _split(raw.get(key))
        if values:
            area[key] = [v[:200] for v in values]
    polygon = raw.get("polygon")
    if polygon:
        if isinstance(polygon, str):
            points = [_numbers(p) for p in polygon.split(";") if p.strip()]
        else:
            points = [list(map(float, p)) for p in polygon]
        if len(points) < 3 or any(len(p) != 2 for p in points):
            raise Invalid(Problem("polygon", BAD_POLYGON))
        area["polygon"] = [list(_coord(p[0], p[1], "polygon")) for p in points]
    circle = raw.get("circle")
    if circle:
        if isinstance(circle, str):
            nums = _numbers(circle)
        else:
            nums = [float(circle["lat"]), float(circle["lon"]), float(circle["km"])]
        if len(nums) != 3 or not 0 < nums[2] <= 5000:
            raise Invalid(Problem("circle", BAD_CIRCLE))
        lat, lon = _coord(nums[0], nums[1], "circle")
        area["circle"] = {"lat": lat, "lon": lon, "km": nums[2]}
    if not area:
        raise Invalid(Problem("area", NO_AREA))
    return area


def describe_area(area: Mapping[str, Any], translate: Callable[[str], str] = str) -> str:
    """Return the area in one line, for lists and exports (`translate`: a page's gettext)."""
    parts = []
    if area.get("countries"):
        parts.append(", ".join(area["countries"]))
    if area.get("regions"):
        parts.append(translate(N_("regions: %(names)s")) % {"names": ", ".join(area["regions"])})
    if area.get("cities"):
        parts.append(translate(N_("cities: %(names)s")) % {"names": ", ".join(area["cities"])})
    if area.get("polygon"):
        parts.append(translate(N_("polygon of %(n)s points")) % {"n": len(area["polygon"])})
    if area.get("circle"):
        c = area["circle"]
        parts.append(
            translate(N_("%(km)s km around %(lat)s, %(lon)s"))
            % {"km": f"{c['km']:g}", "lat": f"{c['lat']:g}", "lon": f"{c['lon']:g}"}
        )
    return "; ".join(parts)


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(min(1.0, a)))


def _in_polygon(lat: float, lon: float, polygon: list[list[float]]) -> bool:
    inside = False
    n = len(polygon)
    for i in range(n):
        y1, x1 = polygon[i]
        y2, x2 = polygon[(i + 1) % n]
        if (y1 > lat) != (y2 > lat):
            x = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if lon < x:
                inside = not inside
    return inside


def _bbox(area: Mapping[str, Any]) -> list[tuple[float, float, float, float]]:
    boxes = []
    if area.get("polygon"):
        lats = [p[0] for p in area["polygon"]]
        lons = [p[1] for p in area["polygon"]]
        boxes.append((min(lats), max(lats), min(lons), max(lons)))
    if area.get("circle"):
        c = area["circle"]
        dlat = c["km"] / 111.0
        dlon = c["km"] / max(1e-6, 111.0 * math.cos(math.radians(c["lat"])))
        boxes.append((c["lat"] - dlat, c["lat"] + dlat, c["lon"] - dlon, c["lon"] + dlon))
    return boxes


def in_geometry(area: Mapping[str, Any], lat: float, lon: float) -> bool:
    """Return True when a point is inside the area's polygon or circle."""
    if area.get("polygon") and _in_polygon(lat, lon, area["polygon"]):
        return True
    c = area.get("circle")
    if not c:
        return False
    return _haversine_km(c["lat"], c["lon"], lat, lon) <= c["km"]


def _mission_filter(db: Session | Connection, mission_id: int) -> Any:
    kind = db.execute(select(Mission.kind).where(Mission.id == mission_id)).scalar()
    return literal(True) if kind == "hq" else Registration.mission_id == mission_id


def _place_filter(area: Mapping[str, Any]) -> Any:
    """The SQL part of the area: countries AND (regions OR cities OR geometry bounding box)."""
    conds: list[Any] = []
    if area.get("countries"):
        conds.append(Registration.country_code.in_(area["countries"]))
    places: list[Any] = []
    if area.get("regions"):
        places.append(func.lower(Registration.region).in_([r.lower() for r in area["regions"]]))
    if area.get("cities"):
        places.append(func.lower(Registration.city).in_([c.lower() for c in area["cities"]]))
    for lat0, lat1, lon0, lon1 in _bbox(area):
        places.append(
            and_(
                Registration.latitude.between(lat0, lat1),
                Registration.longitude.between(lon0, lon1),
            )
        )
    if places:
        conds.append(or_(*places))
    return and_(*conds)


def _audience_filter(audience: str, today: date) -> Any:
    active = Registration.status == "active"
    if audience == "present":
        return and_(active, Registration.arrive_on <= today, Registration.leave_on >= today)
    return active


def _chosen_registrations(
    db: Session | Connection,
    *,
    mission_id: int,
    area: Mapping[str, Any],
    audience: str,
    today: date,
) -> Select[Any] | list[int]:
    """Return the newest matching registration per citizen: a subquery, or exact ids when the
    area has a polygon or circle (their bounding box is narrowed to the exact shape here)."""
    where = and_(
        _mission_filter(db, mission_id), _place_filter(area), _audience_filter(audience, today)
    )
    if not (area.get("polygon") or area.get("circle")):
        return select(func.max(Registration.id)).where(where).group_by(Registration.citizen_id)
    rows = db.execute(
        select(
            Registration.id,
            Registration.citizen_id,
            Registration.latitude,
            Registration.longitude,
            func.lower(Registration.city),
            func.lower(Registration.region),
        ).where(where)
    ).all()
    cities = {c.lower() for c in area.get("cities", [])}
    regions = {r.lower() for r in area.get("regions", [])}
    best: dict[int, int] = {}
    for rid, cid, lat, lon, city, region in rows:
        named = city in cities or region in regions
        if named or (lat is not None and lon is not None and in_geometry(area, lat, lon)):
            best[cid] = max(rid, best.get(cid, 0))
    return sorted(best.values())


def _registration_ids_clause(chosen: Select[Any] | list[int]) -> Any:
    if isinstance(chosen, list):
        return Registration.id.in_(chosen) if chosen else literal(False)
    return Registration.id.in_(chosen.scalar_subquery())


_EMAIL_OF = case((Citizen.email_verified_at.is_not(None), Citizen.email), else_="")
# The phones are sealed: the cipher text (and its blind index) is copied as it is.
_PHONE_OF = case((Registration.phone != "", Registration.phone), else_=Citizen.phone)
_PHONE_INDEX_OF = case(
    (Registration.phone != "", Registration.phone_index), else_=Citizen.phone_index
)


@dataclass
class Preview:
    """Who a broadcast would reach, before anything is sent."""

    people: int
    present_by_dates: int
    channels: dict[str, int]
    segments: dict[str, Segments] = field(default_factory=dict)


def preview(
    *,
    db: Session,
    actor: Principal,
    mission_id: int,
    area: Mapping[str, Any],
    audience: str,
    messages: Mapping[str, Mapping[str, str]] | None = None,
    today: date | None = None,
    base_url: str = "http://localhost",
) -> Preview:
    """Count the people and the channels that would be reached (and SMS segments per language).

    The count itself is personal data of the mission (how many citizens are in a city), so the
    role is checked before anything is counted.
    """
    _require(actor, "consulate.read", mission_id)
    today = today or utcnow().date()
    chosen = _chosen_registrations(
        db, mission_id=mission_id, area=area, audience=audience, today=today
    )
    row = db.execute(
        select(
            func.count(),
            func.coalesce(
                func.sum(
                    case(
                        (and_(Registration.arrive_on <= today, Registration.leave_on >= today), 1),
                        else_=0,
                    )
                ),
                0,
            ),
            func.coalesce(func.sum(case((_EMAIL_OF != "", 1), else_=0)), 0),
            func.coalesce(func.sum(case((Citizen.telegram_chat_id != "", 1), else_=0)), 0),
            func.coalesce(func.sum(case((_PHONE_OF != "", 1), else_=0)), 0),
            func.coalesce(
                func.sum(
                    case((exists().where(PushSubscription.citizen_id == Citizen.id), 1), else_=0)
                ),
                0,
            ),
        )
        .select_from(Registration)
        .join(Citizen, Citizen.id == Registration.citizen_id)
        .where(_registration_ids_clause(chosen), Citizen.is_active.is_(True))
    ).one()
    segs = {
        lang: sms_segments(sms_body(m, link=_sample_link(base_url)))
        for lang, m in (messages or {}).items()
    }
    return Preview(
        people=int(row[0]),
        present_by_dates=int(row[1]),
        channels={
            "email": int(row[2]),
            "telegram": int(row[3]),
            "push": int(row[5]),
            "sms": int(row[4]),
        },
        segments=segs,
    )


__all__ = ["Preview", "describe_area", "in_geometry", "parse_area", "preview"]
