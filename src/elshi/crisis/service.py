"""Crisis queries and changes: the area and who is in it, broadcasts with four-eyes approval,
set-based queuing of deliveries, escalation, check-ins, and the welfare counts.

Every function takes keyword-only arguments and an explicit session (or connection).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    literal_column,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from elshi import netguard
from elshi.accounts.service import Principal, audit
from elshi.consulate.models import Citizen, Registration
from elshi.consulate.service import clean_text
from elshi.crisis.models import (
    ANSWERS,
    AUDIENCES,
    CHANNELS,
    Broadcast,
    CheckIn,
    Crisis,
    Delivery,
    PushSubscription,
    Recipient,
    WalkIn,
)
from elshi.crypto import PHONE
from elshi.db import keyring_of, utcnow
from elshi.errors import Invalid, NotFound, Problem
from elshi.missions.models import Mission
from elshi.settings import Settings
from elshi.web.i18n import N_

LANGUAGES = ("kk", "ru", "en")

EMPTY_AREA = N_("No one is in this area: nothing would be sent.")
NO_AREA = N_("Draw the area: countries, regions, cities, a polygon or a circle.")
BAD_POLYGON = N_("A polygon needs at least 3 points as 'latitude longitude; ...'.")
BAD_CIRCLE = N_("A circle is 'latitude longitude kilometres', e.g. '41.0 28.9 25'.")
BAD_COORD = N_("Latitude must be -90..90 and longitude -180..180.")
NO_MESSAGE = N_("Write the message in at least one language.")
SMS_TOO_LONG = N_(
    "The SMS in %(lang)s takes %(segments)s segments (%(units)s characters, %(encoding)s, "
    "with the personal link); at most %(max)s are allowed. Shorten the SMS text."
)
SAME_OFFICER = N_("A second officer must approve: you created this broadcast.")
BAD_STATE = N_("This cannot be done while the broadcast is %(status)s.")
CRISIS_CLOSED = N_("This crisis is %(status)s.")
NOT_ALLOWED = N_("Your role does not allow this in this mission.")


# ---------------------------------------------------------------------------- SMS segments

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class Segments:
    """How an SMS text is encoded and how many segments it takes."""

    encoding: str  # "GSM-7" or "UCS-2"
    units: int
    segments: int
    per_segment: int


def sms_segments(text: str) -> Segments:
    """Count SMS segments: GSM-7 160 alone / 153 joined, UCS-2 (e.g. Cyrillic) 70 / 67."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in text):
        units = sum(2 if c in _GSM7_EXTENDED else 1 for c in text)
        single, joined, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, joined, encoding = 70, 67, "UCS-2"
    if units == 0:
        return Segments(encoding, 0, 0, single)
    if units <= single:
        return Segments(encoding, units, 1, single)
    return Segments(encoding, units, math.ceil(units / joined), joined)


# ---------------------------------------------------------------------------- check-in tokens


class BadToken(ValueError):
    """A check-in link that elshi did not make (forged, cut short or altered)."""


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _token_mac(key: bytes, payload: str) -> str:
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def checkin_token(*, key: bytes, crisis_id: int, recipient_id: int) -> str:
    """Return the personal check-in token: both ids and an HMAC of them (short, for SMS).

    `key` is the check-in purpose key (`crypto.purpose_key(settings, crypto.CHECKIN)`)."""
    payload = f"{_b36(crisis_id)}-{_b36(recipient_id)}"
    return f"{payload}-{_token_mac(key, payload)}"


def read_token(*, keys: Sequence[bytes], token: str) -> tuple[int, int]:
    """Return (crisis_id, recipient_id) of a genuine token (no database read) or raise BadToken.

    `keys`: the check-in keys accepted (`crypto.verify_keys(settings, crypto.CHECKIN)`)."""
    parts = token.split("-", 2)
    if len(parts) != 3 or len(token) > 60:
        raise BadToken("malformed check-in link")
    payload = f"{parts[0]}-{parts[1]}"
    if not any(hmac.compare_digest(_token_mac(k, payload), parts[2]) for k in keys):
        raise BadToken("check-in link signature does not match")
    try:
        return int(parts[0], 36), int(parts[1], 36)
    except ValueError:
        raise BadToken("malformed check-in link") from None


def checkin_url(*, base_url: str, key: bytes, crisis_id: int, recipient_id: int) -> str:
    """Return the personal check-in link."""
    token = checkin_token(key=key, crisis_id=crisis_id, recipient_id=recipient_id)
    return f"{base_url}/c/{token}"


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


def describe_area(area: Mapping[str, Any]) -> str:
    """Return the area in one line, for lists and exports."""
    parts = []
    if area.get("countries"):
        parts.append(", ".join(area["countries"]))
    if area.get("regions"):
        parts.append("regions: " + ", ".join(area["regions"]))
    if area.get("cities"):
        parts.append("cities: " + ", ".join(area["cities"]))
    if area.get("polygon"):
        parts.append(f"polygon of {len(area['polygon'])} points")
    if area.get("circle"):
        c = area["circle"]
        parts.append(f"{c['km']:g} km around {c['lat']:g}, {c['lon']:g}")
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


def _sample_link(base_url: str) -> str:
    return checkin_url(base_url=base_url, key=b"x", crisis_id=99999, recipient_id=9_999_999)


def sms_body(message: Mapping[str, str], *, link: str) -> str:
    """The SMS: its own short text (else the main text) and the personal link."""
    text = (message.get("sms") or message.get("text") or "").strip()
    return f"{text}\n{link}"


# ---------------------------------------------------------------------------- messages


def parse_messages(
    raw: Mapping[str, Any], *, max_segments: int, base_url: str
) -> dict[str, dict[str, str]]:
    """Return {lang: {subject, text, sms}} from form fields like `text_kk`; check SMS length."""
    out: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        text = clean_text(f"text_{lang}", raw.get(f"text_{lang}", ""), max_len=5000)
        if not text:
            continue
        message = {
            "subject": clean_text(f"subject_{lang}", raw.get(f"subject_{lang}", ""), max_len=200),
            "text": text,
            "sms": clean_text(f"sms_{lang}", raw.get(f"sms_{lang}", ""), max_len=1600),
        }
        seg = sms_segments(sms_body(message, link=_sample_link(base_url)))
        if seg.segments > max_segments:
            raise Invalid(
                Problem(
                    f"sms_{lang}",
                    SMS_TOO_LONG,
                    {
                        "lang": lang,
                        "segments": seg.segments,
                        "units": seg.units,
                        "encoding": seg.encoding,
                        "max": max_segments,
                    },
                )
            )
        out[lang] = message
    if not out:
        raise Invalid(Problem("text_kk", NO_MESSAGE))
    return out


# ---------------------------------------------------------------------------- crisis life


def rowcount(result: Any) -> int:
    """Return how many rows an INSERT or UPDATE touched."""
    return int(getattr(result, "rowcount", 0) or 0)


def _audit(
    db: Session,
    actor: Principal,
    action: str,
    kind: str,
    object_id: int,
    detail: dict[str, Any] | None = None,
) -> None:
    audit(
        db=db,
        action=action,
        object_type=kind,
        object_id=object_id,
        actor_id=actor.user_id,
        actor_label=actor.label,
        detail=detail,
    )


def _require(actor: Principal, permission: str, mission_id: int) -> None:
    if not actor.can(permission, mission_id):
        raise Invalid(Problem("role", NOT_ALLOWED))


def get_crisis(*, db: Session, actor: Principal, crisis_id: int, act: bool = False) -> Crisis:
    """Return a crisis the officer may see (act: may change); NotFound otherwise."""
    row = db.get(Crisis, crisis_id)
    perm = "consulate.act" if act else "consulate.read"
    if row is None or not actor.can(perm, row.mission_id):
        raise NotFound(f"crisis {crisis_id}")
    return row


def list_crises(*, db: Session, actor: Principal) -> list[Crisis]:
    """Return crises of the officer's missions, newest first."""
    stmt = select(Crisis).order_by(Crisis.id.desc())
    ids = actor.missions_where("consulate.read")
    if ids is not None:
        stmt = stmt.where(Crisis.mission_id.in_(ids))
    return [c for c in db.scalars(stmt) if actor.can("consulate.read", c.mission_id)]


def create_crisis(
    *,
    db: Session,
    actor: Principal,
    mission_id: int,
    title: str,
    area: Mapping[str, Any],
    audience: str,
    messages: Mapping[str, Mapping[str, str]],
    today: date | None = None,
) -> Broadcast:
    """Open a crisis with its first broadcast, awaiting a second officer; refuse an empty area."""
    _require(actor, "consulate.act", mission_id)
    if audience not in AUDIENCES:
        raise Invalid(Problem("audience", N_("Choose one of the options.")))
    title = clean_text("title", title, max_len=300, required=True)
    found = preview(
        db=db, actor=actor, mission_id=mission_id, area=area, audience=audience, today=today
    )
    if found.people == 0:
        raise Invalid(Problem("area", EMPTY_AREA))
    crisis = Crisis(
        mission_id=mission_id,
        title=title,
        area=dict(area),
        audience=audience,
        created_by=actor.user_id,
    )
    db.add(crisis)
    db.flush()
    b = Broadcast(crisis_id=crisis.id, messages=dict(messages), created_by=actor.user_id)
    db.add(b)
    db.flush()
    _audit(db, actor, "crisis.create", "crisis", crisis.id)
    return b


def follow_up(
    *,
    db: Session,
    actor: Principal,
    crisis_id: int,
    messages: Mapping[str, Mapping[str, str]],
    target: str = "unanswered",
) -> Broadcast:
    """Add a follow-up broadcast to a sent crisis (again needs a second officer)."""
    crisis = get_crisis(db=db, actor=actor, crisis_id=crisis_id, act=True)
    if crisis.status != "open":
        raise Invalid(Problem("crisis", CRISIS_CLOSED, {"status": crisis.status}))
    if target not in ("all", "unanswered"):
        raise Invalid(Problem("target", N_("Choose one of the options.")))
    b = Broadcast(
        crisis_id=crisis.id, messages=dict(messages), target=target, created_by=actor.user_id
    )
    db.add(b)
    db.flush()
    return b


def _broadcast(db: Session, actor: Principal, broadcast_id: int) -> tuple[Broadcast, Crisis]:
    b = db.get(Broadcast, broadcast_id)
    if b is None:
        raise NotFound(f"broadcast {broadcast_id}")
    crisis = get_crisis(db=db, actor=actor, crisis_id=b.crisis_id, act=True)
    return b, crisis


def _state(b: Broadcast, *allowed: str) -> None:
    if b.status not in allowed:
        raise Invalid(Problem("status", BAD_STATE, {"status": b.status}))


def approve(*, db: Session, actor: Principal, broadcast_id: int) -> Broadcast:
    """A second officer approves the broadcast (never the one who wrote it)."""
    b, crisis = _broadcast(db, actor, broadcast_id)
    _state(b, "awaiting")
    if b.created_by is not None and b.created_by == actor.user_id:
        raise Invalid(Problem("approver", SAME_OFFICER))
    if crisis.status != "open":
        raise Invalid(Problem("crisis", CRISIS_CLOSED, {"status": crisis.status}))
    b.status, b.approved_by, b.approved_at = "approved", actor.user_id, utcnow()
    _audit(db, actor, "crisis.approve", "broadcast", b.id)
    return b


def snapshot_recipients(*, db: Session, crisis: Crisis, today: date | None = None) -> int:
    """Copy the people in the area into the crisis with one INSERT ... SELECT; return how many."""
    today = today or utcnow().date()
    chosen = _chosen_registrations(
        db, mission_id=crisis.mission_id, area=crisis.area, audience=crisis.audience, today=today
    )
    src = (
        select(
            literal(crisis.id),
            Citizen.id,
            Registration.id,
            Citizen.name,
            Citizen.lang,
            _EMAIL_OF,
            _PHONE_OF,
            _PHONE_INDEX_OF,
            Citizen.telegram_chat_id,
            Registration.city,
            and_(Registration.arrive_on <= today, Registration.leave_on >= today),
        )
        .select_from(Registration)
        .join(Citizen, Citizen.id == Registration.citizen_id)
        .where(_registration_ids_clause(chosen), Citizen.is_active.is_(True))
    )
    cols = [
        "crisis_id",
        "citizen_id",
        "registration_id",
        "name",
        "lang",
        "email",
        "phone",
        "phone_index",
        "telegram_chat_id",
        "city",
        "dates_cover",
    ]
    return rowcount(
        db.connection().execute(
            insert(Recipient).from_select(cols, src).execution_options(preserve_rowcount=True)
        )
    )


def _answered(crisis_id: int) -> Any:
    return exists().where(CheckIn.recipient_id == Recipient.id, CheckIn.crisis_id == crisis_id)


_has_push = exists().where(PushSubscription.citizen_id == Recipient.citizen_id)


def queue_deliveries(
    *,
    db: Session,
    broadcast: Broadcast,
    channel: str,
    only: Any = None,
    now: datetime | None = None,
    fresh: bool = False,
) -> int:
    """Queue one channel of a broadcast with one INSERT ... SELECT; existing rows are kept
    (fresh: the broadcast has no rows on this channel yet, so none is looked for)."""
    now = now or utcnow()
    contact = {
        "email": Recipient.email != "",
        "telegram": Recipient.telegram_chat_id != "",
        "push": _has_push,
        "sms": Recipient.phone != "",
    }[channel]
    already = exists().where(
        Delivery.broadcast_id == broadcast.id,
        Delivery.recipient_id == Recipient.id,
        Delivery.channel == channel,
    )
    conds = [Recipient.crisis_id == broadcast.crisis_id, contact]
    if not fresh:
        conds.append(not_(already))
    if broadcast.target == "unanswered":
        conds.append(not_(_answered(broadcast.crisis_id)))
    if only is not None:
        conds.append(only)
    src = select(
        literal(broadcast.id),
        Recipient.id,
        literal(channel),
        literal("pending"),
        literal(0),
        literal(now, type_=Delivery.due_at.type),
    ).where(*conds)
    cols = ["broadcast_id", "recipient_id", "channel", "status", "attempts", "due_at"]
    return rowcount(
        db.connection().execute(
            insert(Delivery).from_select(cols, src).execution_options(preserve_rowcount=True)
        )
    )


def send(
    *, db: Session, actor: Principal, broadcast_id: int, today: date | None = None
) -> dict[str, int]:
    """Queue an approved broadcast: e-mail and Telegram to whoever has them, SMS at once to
    those with only a phone. Refused when no one is in the area."""
    b, crisis = _broadcast(db, actor, broadcast_id)
    _state(b, "approved")
    if crisis.status != "open" or crisis.halted:
        raise Invalid(
            Problem(
                "crisis", CRISIS_CLOSED, {"status": "halted" if crisis.halted else crisis.status}
            )
        )
    has_people = db.scalar(select(func.count()).where(Recipient.crisis_id == crisis.id))
    if not has_people:
        snapshot_recipients(db=db, crisis=crisis, today=today)
        has_people = db.scalar(select(func.count()).where(Recipient.crisis_id == crisis.id))
    if not has_people:
        raise Invalid(Problem("area", EMPTY_AREA))
    counts = {
        # An approved broadcast was never sent: it has no delivery rows yet.
        "email": queue_deliveries(db=db, broadcast=b, channel="email", fresh=True),
        "telegram": queue_deliveries(db=db, broadcast=b, channel="telegram", fresh=True),
        "push": queue_deliveries(db=db, broadcast=b, channel="push", fresh=True),
        "sms": queue_deliveries(
            db=db,
            broadcast=b,
            channel="sms",
            only=and_(Recipient.email == "", Recipient.telegram_chat_id == "", not_(_has_push)),
            fresh=True,
        ),
    }
    b.status, b.sent_at = "sent", utcnow()
    _audit(db, actor, "crisis.send", "broadcast", b.id, detail=counts)
    return counts


def cancel(*, db: Session, actor: Principal, broadcast_id: int) -> int:
    """Cancel a broadcast: before sending it is dropped; after, its pending deliveries stop."""
    b, _ = _broadcast(db, actor, broadcast_id)
    _state(b, "awaiting", "approved", "sent")
    b.status = "cancelled"
    n = rowcount(
        db.connection().execute(
            update(Delivery)
            .where(Delivery.broadcast_id == b.id, Delivery.status == "pending")
            .values(status="cancelled")
        )
    )
    _audit(db, actor, "crisis.cancel", "broadcast", b.id)
    return int(n or 0)


def kill(*, db: Session, actor: Principal, crisis_id: int) -> int:
    """The kill switch: stop every pending delivery of the crisis and any escalation."""
    crisis = get_crisis(db=db, actor=actor, crisis_id=crisis_id, act=True)
    crisis.halted = True
    ids = select(Broadcast.id).where(Broadcast.crisis_id == crisis.id).scalar_subquery()
    n = rowcount(
        db.connection().execute(
            update(Delivery)
            .where(Delivery.broadcast_id.in_(ids), Delivery.status == "pending")
            .values(status="cancelled")
        )
    )
    _audit(db, actor, "crisis.kill", "crisis", crisis.id)
    return int(n or 0)


def close(*, db: Session, actor: Principal, crisis_id: int, status: str = "closed") -> Crisis:
    """Close (or cancel) a crisis: check-in links then answer that it is over."""
    crisis = get_crisis(db=db, actor=actor, crisis_id=crisis_id, act=True)
    crisis.status, crisis.closed_at = status, utcnow()
    kill(db=db, actor=actor, crisis_id=crisis_id)
    return crisis


# ---------------------------------------------------------------------------- escalation


def escalate(*, db: Session, minutes: int, now: datetime | None = None) -> dict[str, int]:
    """No answer N minutes after sending: queue SMS; N minutes after that: the call list."""
    now = now or utcnow()
    due = now - timedelta(minutes=minutes)
    out = {"sms": 0, "call_list": 0}
    rows = db.scalars(
        select(Broadcast)
        .join(Crisis, Crisis.id == Broadcast.crisis_id)
        .where(Broadcast.status == "sent", Crisis.status == "open", Crisis.halted.is_(False))
    ).all()
    for b in rows:
        if b.escalated_sms_at is None and b.sent_at is not None and b.sent_at <= due:
            targeted = exists().where(
                Delivery.broadcast_id == b.id, Delivery.recipient_id == Recipient.id
            )
            out["sms"] += queue_deliveries(
                db=db,
                broadcast=b,
                channel="sms",
                only=and_(targeted, not_(_answered(b.crisis_id))),
            )
            b.escalated_sms_at = now
        elif (
            b.escalated_sms_at is not None
            and b.escalated_call_at is None
            and b.escalated_sms_at <= due
        ):
            b.escalated_call_at = now
            out["call_list"] += len(call_list(db=db, crisis_id=b.crisis_id))
    return out


def call_list(*, db: Session, crisis_id: int) -> list[Recipient]:
    """People with no answer after every channel was tried: duty officers call them."""
    escalated = (
        select(Broadcast.id)
        .where(Broadcast.crisis_id == crisis_id, Broadcast.escalated_call_at.is_not(None))
        .scalar_subquery()
    )
    tried = exists().where(
        Delivery.recipient_id == Recipient.id, Delivery.broadcast_id.in_(escalated)
    )
    open_sms = exists().where(
        Delivery.recipient_id == Recipient.id,
        Delivery.channel == "sms",
        Delivery.status.in_(("pending", "sending")),
    )
    return list(
        db.scalars(
            select(Recipient)
            .where(
                Recipient.crisis_id == crisis_id,
                tried,
                not_(open_sms),
                not_(_answered(crisis_id)),
            )
            .order_by(Recipient.id)
        )
    )


# ---------------------------------------------------------------------------- check-ins


CHECKIN_COLUMNS = (
    "crisis_id",
    "recipient_id",
    "answer",
    "note",
    "latitude",
    "longitude",
    "via",
    "relative",
    "nonce",
    "at",
)


@cache
def checkin_insert(dialect: str) -> Any:
    """The check-in INSERT with bound parameters (one per CHECKIN_COLUMNS): it stores nothing
    for a closed crisis, a recipient of another crisis, or a submission already stored."""
    ins = (postgresql if dialect == "postgresql" else sqlite).insert
    p: dict[str, Any] = {
        "crisis_id": bindparam("crisis_id", type_=Integer()),
        "recipient_id": bindparam("recipient_id", type_=Integer()),
        "answer": bindparam("answer", type_=String()),
        "note": bindparam("note", type_=CheckIn.note.type),
        "latitude": bindparam("latitude", type_=Float()),
        "longitude": bindparam("longitude", type_=Float()),
        "via": bindparam("via", type_=String()),
        "relative": bindparam("relative", type_=String()),
        "nonce": bindparam("nonce", type_=String()),
        "at": bindparam("at", type_=CheckIn.at.type),
    }
    # 'open' is written into the SQL: the check-in writer passes only the named parameters.
    open_crisis = exists().where(
        Crisis.id == p["crisis_id"], Crisis.status == literal_column("'open'")
    )
    person = exists().where(
        Recipient.id == p["recipient_id"], Recipient.crisis_id == p["crisis_id"]
    )
    src = select(*(p[c] for c in CHECKIN_COLUMNS)).where(open_crisis, person)
    return (
        ins(CheckIn)
        .from_select(list(CHECKIN_COLUMNS), src)
        .on_conflict_do_nothing()
        .execution_options(preserve_rowcount=True)
    )


def checkin_values(
    *,
    crisis_id: int,
    recipient_id: int,
    answer: str,
    note: str = "",
    latitude: float | None = None,
    longitude: float | None = None,
    via: str = "web",
    relative: str = "",
    nonce: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Return the parameters of one check-in for checkin_insert."""
    return {
        "crisis_id": crisis_id,
        "recipient_id": recipient_id,
        "answer": answer,
        "note": note,
        "latitude": latitude,
        "longitude": longitude,
        "via": via,
        "relative": relative,
        "nonce": nonce,
        "at": now or utcnow(),
    }


def record_checkin(db: Session | Connection, **values: Any) -> int:
    """Store one check-in (see checkin_values); return 1, or 0 when it was kept out."""
    conn = db.connection() if isinstance(db, Session) else db
    stmt = checkin_insert(conn.dialect.name)
    return rowcount(conn.execute(stmt, checkin_values(**values)))


def parse_checkin(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check a check-in form: answer, note, optional location, nonce. Raise Invalid."""
    answer = str(raw.get("answer") or "")
    if answer not in ANSWERS:
        raise Invalid(Problem("answer", N_("Choose: I am safe, I need help, or I have left.")))
    note = clean_text("note", raw.get("note", ""), max_len=500)
    lat = lon = None
    where = str(raw.get("location") or "").strip()
    if where:
        nums = _numbers(where)
        if len(nums) != 2:
            raise Invalid(
                Problem("location", N_("Location is 'latitude, longitude', e.g. 41.01, 28.97."))
            )
        lat, lon = _coord(nums[0], nums[1], "location")
    nonce = re.sub(r"[^A-Za-z0-9_-]", "", str(raw.get("n") or ""))[:32]
    if len(nonce) < 8:
        raise Invalid(Problem("form", N_("The form has expired. Please try again.")))
    return {"answer": answer, "note": note, "latitude": lat, "longitude": lon, "nonce": nonce}


def crisis_state(*, db: Session | Connection, crisis_id: int) -> str | None:
    """Return the crisis's status, or None when there is no such crisis."""
    return db.execute(select(Crisis.status).where(Crisis.id == crisis_id)).scalar()


def verify_relative(*, db: Session, recipient_id: int, phone_tail: str) -> bool:
    """A relative proves they know the person: the last 4 digits of the registered phone."""
    phone = db.scalar(select(Recipient.phone).where(Recipient.id == recipient_id)) or ""
    digits = re.sub(r"\D", "", phone)
    given = re.sub(r"\D", "", phone_tail)
    return len(digits) >= 4 and len(given) == 4 and hmac.compare_digest(digits[-4:], given)


SMS_KEYWORDS = {
    "safe": "safe",
    "ok": "safe",
    "аман": "safe",
    "безопасно": "safe",
    "help": "help",
    "sos": "help",
    "көмек": "help",
    "помощь": "help",
    "left": "left",
    "кеттім": "left",
    "уехал": "left",
}


def sms_reply(*, db: Session, phone: str, body: str, nonce: str) -> str | None:
    """Record an SMS answer (keyword first, then an optional note); return the answer or None."""
    words = body.strip().split(maxsplit=1)
    answer = SMS_KEYWORDS.get(words[0].lower()) if words else None
    if answer is None:
        return None
    # Phones are sealed: the sender's number is found by its blind index.
    lookups = keyring_of(db).lookups(PHONE, phone)
    if not lookups:
        return None
    match = db.execute(
        select(Recipient.id, Recipient.crisis_id)
        .join(Crisis, Crisis.id == Recipient.crisis_id)
        .where(Crisis.status == "open", Recipient.phone_index.in_(lookups))
        .order_by(Recipient.crisis_id.desc(), Recipient.id)
        .limit(1)
    ).first()
    if match is None:
        return None
    rid, cid = match
    note = words[1][:500] if len(words) > 1 else ""
    record_checkin(
        db, crisis_id=cid, recipient_id=rid, answer=answer, note=note, via="sms", nonce=nonce
    )
    return answer


def add_walkin(*, db: Session, crisis_id: int, raw: Mapping[str, Any]) -> WalkIn:
    """Register someone abroad without an account during an open crisis."""
    state = crisis_state(db=db, crisis_id=crisis_id)
    if state != "open":
        raise NotFound(f"crisis {crisis_id}")
    name = clean_text("name", raw.get("name"), max_len=200, required=True)
    email = clean_text("email", raw.get("email", ""), max_len=320)
    phone = clean_text("phone", raw.get("phone", ""), max_len=40)
    if not email and not phone:
        raise Invalid(Problem("phone", N_("Give a phone number or an e-mail address.")))
    answer = str(raw.get("answer") or "safe")
    if answer not in ANSWERS:
        raise Invalid(Problem("answer", N_("Choose one of the options.")))
    row = WalkIn(
        crisis_id=crisis_id,
        name=name,
        email=email,
        phone=phone,
        city=clean_text("city", raw.get("city", ""), max_len=200),
        answer=answer,
        note=clean_text("note", raw.get("note", ""), max_len=500),
    )
    db.add(row)
    db.flush()
    return row


def merge_walkins(*, db: Session, actor: Principal, crisis_id: int) -> int:
    """Link walk-ins to citizen accounts with the same e-mail; return how many were merged."""
    get_crisis(db=db, actor=actor, crisis_id=crisis_id, act=True)
    n = 0
    for w in db.scalars(
        select(WalkIn).where(WalkIn.crisis_id == crisis_id, WalkIn.merged_citizen_id.is_(None))
    ):
        cid = None
        if w.email:
            cid = db.scalar(select(Citizen.id).where(func.lower(Citizen.email) == w.email.lower()))
        lookups = keyring_of(db).lookups(PHONE, w.phone) if cid is None else []
        if lookups:
            cid = db.scalar(
                select(Citizen.id).where(Citizen.phone_index.in_(lookups)).order_by(Citizen.id)
            )
        if cid is not None:
            w.merged_citizen_id = cid
            n += 1
    return n


# ---------------------------------------------------------------------------- the welfare view


def _latest_answers(crisis_id: int) -> Any:
    last = (
        select(func.max(CheckIn.id))
        .where(CheckIn.crisis_id == crisis_id)
        .group_by(CheckIn.recipient_id)
        .scalar_subquery()
    )
    return select(CheckIn.recipient_id, CheckIn.answer).where(CheckIn.id.in_(last)).subquery()


@dataclass
class Welfare:
    """The dashboard counts of one crisis."""

    people: int
    safe: int
    help: int
    left: int
    not_reached: int
    not_answered: int
    confirmed_present: int
    estimated_present: int
    registered_only: int
    by_relative: int
    call_list: int
    walkins: int
    deliveries: dict[str, dict[str, int]]
    checkins: int


def welfare(*, db: Session, crisis_id: int) -> Welfare:
    """Count safe, need help, left, not reached, not answered; presence confirmed vs estimated."""
    latest = _latest_answers(crisis_id)
    reached = exists().where(Delivery.recipient_id == Recipient.id, Delivery.status == "sent")
    rows = db.execute(
        select(latest.c.answer, reached, Recipient.dates_cover, func.count())
        .select_from(Recipient)
        .outerjoin(latest, latest.c.recipient_id == Recipient.id)
        .where(Recipient.crisis_id == crisis_id)
        .group_by(latest.c.answer, reached, Recipient.dates_cover)
    ).all()
    c = {"safe": 0, "help": 0, "left": 0, "not_reached": 0, "not_answered": 0}
    est = reg_only = people = 0
    for answer, was_reached, covers, n in rows:
        people += n
        if answer:
            c[answer] += n
            continue
        c["not_answered" if was_reached else "not_reached"] += n
        if covers:
            est += n
        else:
            reg_only += n
    deliveries: dict[str, dict[str, int]] = {ch: {} for ch in CHANNELS}
    bids = select(Broadcast.id).where(Broadcast.crisis_id == crisis_id).scalar_subquery()
    for ch, status, n in db.execute(
        select(Delivery.channel, Delivery.status, func.count())
        .where(Delivery.broadcast_id.in_(bids))
        .group_by(Delivery.channel, Delivery.status)
    ):
        deliveries.setdefault(ch, {})[status] = n
    relatives = db.scalar(
        select(func.count(func.distinct(CheckIn.recipient_id))).where(
            CheckIn.crisis_id == crisis_id, CheckIn.via == "relative"
        )
    )
    return Welfare(
        people=people,
        safe=c["safe"],
        help=c["help"],
        left=c["left"],
        not_reached=c["not_reached"],
        not_answered=c["not_answered"],
        confirmed_present=c["safe"] + c["help"],
        estimated_present=est,
        registered_only=reg_only,
        by_relative=int(relatives or 0),
        call_list=len(call_list(db=db, crisis_id=crisis_id)),
        walkins=int(db.scalar(select(func.count()).where(WalkIn.crisis_id == crisis_id)) or 0),
        deliveries=deliveries,
        checkins=int(db.scalar(select(func.count()).where(CheckIn.crisis_id == crisis_id)) or 0),
    )


@dataclass
class Person:
    """One line of a worklist or the evacuation list."""

    recipient: Recipient
    answer: str | None
    note: str
    latitude: float | None
    longitude: float | None
    via: str


#: Sealed personal data a worklist and the evacuation list show.
PEOPLE_FIELDS = ("crisis_recipient.phone", "crisis_checkin.note", "crisis_recipient.officer_note")


def disclosure(people: Sequence[Person], why: str) -> dict[str, Any]:
    """Audit detail of a list that opens sealed personal data: whose, which fields, and why
    (page: shown to an officer; export: handed out in a file)."""
    return {
        "rows": len(people),
        "recipients": [p.recipient.id for p in people],
        "citizens": sorted({p.recipient.citizen_id for p in people}),
        "fields": list(PEOPLE_FIELDS),
        "why": why,
    }


WORKLISTS = ("help", "not_reached", "not_answered", "call", "safe", "left", "all")


def people(
    *, db: Session, crisis_id: int, kind: str = "all", limit: int | None = None
) -> list[Person]:
    """Return the people of one list: help, not_reached, not_answered, call, safe, left, all."""
    last = (
        select(func.max(CheckIn.id))
        .where(CheckIn.crisis_id == crisis_id)
        .group_by(CheckIn.recipient_id)
        .scalar_subquery()
    )
    latest = select(CheckIn).where(CheckIn.id.in_(last)).subquery()
    stmt = (
        select(
            Recipient,
            latest.c.answer,
            latest.c.note,
            latest.c.latitude,
            latest.c.longitude,
            latest.c.via,
        )
        .outerjoin(latest, latest.c.recipient_id == Recipient.id)
        .where(Recipient.crisis_id == crisis_id)
        .order_by(Recipient.id)
    )
    reached = exists().where(Delivery.recipient_id == Recipient.id, Delivery.status == "sent")
    if kind in ANSWERS:
        stmt = stmt.where(latest.c.answer == kind)
    elif kind == "not_reached":
        stmt = stmt.where(latest.c.answer.is_(None), not_(reached))
    elif kind == "not_answered":
        stmt = stmt.where(latest.c.answer.is_(None), reached)
    elif kind == "call":
        ids = [r.id for r in call_list(db=db, crisis_id=crisis_id)]
        stmt = stmt.where(Recipient.id.in_(ids) if ids else literal(False))
    elif kind == "evacuation":
        stmt = stmt.where(or_(latest.c.answer.is_(None), latest.c.answer != "left"))
    if limit:
        stmt = stmt.limit(limit)
    return [
        Person(r, a, n or "", lat, lon, via or "")
        for r, a, n, lat, lon, via in db.execute(stmt).all()
    ]


def assign(
    *,
    db: Session,
    actor: Principal,
    crisis_id: int,
    recipient_id: int,
    note: str | None = None,
    to_me: bool = True,
) -> Recipient:
    """Take a person on one's worklist (and keep a note); access is logged."""
    get_crisis(db=db, actor=actor, crisis_id=crisis_id, act=True)
    r = db.get(Recipient, recipient_id)
    if r is None or r.crisis_id != crisis_id:
        raise NotFound(f"person {recipient_id}")
    if to_me:
        r.assigned_to = actor.user_id
    if note is not None:
        r.officer_note = clean_text("note", note, max_len=2000)
    _audit(db, actor, "crisis.assign", "recipient", r.id)
    return r


def help_points(*, db: Session, crisis_id: int) -> list[tuple[float, float]]:
    """Return the locations of need-help answers (latest answer per person)."""
    out = []
    for p in people(db=db, crisis_id=crisis_id, kind="help"):
        if p.latitude is not None and p.longitude is not None:
            out.append((p.latitude, p.longitude))
    return out


_B64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")


def save_push_subscription(
    *, db: Session, settings: Settings, citizen_id: int, raw: Mapping[str, Any]
) -> int:
    """Store a browser's push subscription ({endpoint, keys: {p256dh, auth}}); return its id.

    The endpoint must be on a known push service (ELSHI_PUSH_HOSTS) and not name a private
    address: the worker POSTs to it, so anything else would let a citizen aim the worker at
    this machine or its network. The worker checks the resolved address again when sending.
    """
    endpoint = str(raw.get("endpoint") or "")
    found = raw.get("keys")
    keys: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    p256dh, auth = str(keys.get("p256dh") or ""), str(keys.get("auth") or "")
    try:
        netguard.check_push_endpoint(endpoint, settings=settings, resolve=None)
        ok = len(endpoint) <= 1000
    except netguard.Refused:
        ok = False
    if not ok:
        raise Invalid(Problem("endpoint", N_("Not a push service address.")))
    for name, value, size in (("p256dh", p256dh, 65), ("auth", auth, 16)):
        try:
            ok = (
                bool(_B64URL.match(value))
                and len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))) == size
            )
        except ValueError:
            ok = False
        if not ok:
            raise Invalid(Problem(name, N_("Not a valid push subscription key.")))
    row = db.scalar(select(PushSubscription).where(PushSubscription.endpoint == endpoint))
    if row is None:
        row = PushSubscription(endpoint=endpoint, citizen_id=citizen_id, p256dh=p256dh, auth=auth)
        db.add(row)
    else:
        row.citizen_id, row.p256dh, row.auth = citizen_id, p256dh, auth
    db.flush()
    return row.id


def push_subscriptions(*, db: Session, citizen_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Return the newest subscription of each citizen in the form pywebpush takes."""
    out: dict[int, dict[str, Any]] = {}
    ids = list(set(citizen_ids))
    if not ids:
        return out
    rows = db.scalars(
        select(PushSubscription)
        .where(PushSubscription.citizen_id.in_(ids))
        .order_by(PushSubscription.id)
    )
    for r in rows:
        out[r.citizen_id] = {"endpoint": r.endpoint, "keys": {"p256dh": r.p256dh, "auth": r.auth}}
    return out
