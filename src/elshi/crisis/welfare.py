"""The welfare view: counts, the people worklists, help points, push subscriptions."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    exists,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.orm import Session

from elshi import netguard
from elshi.accounts.service import Principal
from elshi.crisis.broadcasts import call_list
from elshi.crisis.models import (
    ANSWERS,
    CHANNELS,
    Broadcast,
    CheckIn,
    Delivery,
    PushSubscription,
    Recipient,
    WalkIn,
)
from elshi.crisis.service import Invalid, NotFound, Problem, _audit, clean_text, get_crisis
from elshi.settings import Settings
from elshi.web.i18n import N_

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
#: The evacuation list also holds the address and the companions of each stay.
EXPORT_FIELDS = (*PEOPLE_FIELDS, "registration.address", "registration.companions")


def disclosure(people: Sequence[Person], why: str) -> dict[str, Any]:
    """Audit detail of a list that opens sealed personal data: whose, which fields, and why
    (page: shown to an officer; export: handed out in a file)."""
    return {
        "rows": len(people),
        "recipients": [p.recipient.id for p in people],
        "citizens": sorted({p.recipient.citizen_id for p in people}),
        "fields": list(EXPORT_FIELDS if why == "export" else PEOPLE_FIELDS),
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


def worklist(
    *, db: Session, actor: Principal, crisis_id: int, kind: str, limit: int = 500
) -> list[Person]:
    """Return one worklist shown to an officer, and log whose sealed data it opened."""
    rows = people(db=db, crisis_id=crisis_id, kind=kind, limit=limit)
    detail = {"list": kind} | disclosure(rows, "page")
    _audit(db, actor, "crisis.worklist", "crisis", crisis_id, detail)
    return rows


def evacuation_list(*, db: Session, actor: Principal, crisis_id: int, fmt: str) -> list[Person]:
    """Return the evacuation list handed out in a file, and log whose sealed data it holds."""
    rows = people(db=db, crisis_id=crisis_id, kind="evacuation")
    detail = {"format": fmt} | disclosure(rows, "export")
    _audit(db, actor, "crisis.export", "crisis", crisis_id, detail)
    return rows


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


__all__ = [
    "EXPORT_FIELDS",
    "PEOPLE_FIELDS",
    "WORKLISTS",
    "Person",
    "Welfare",
    "assign",
    "disclosure",
    "evacuation_list",
    "help_points",
    "people",
    "push_subscriptions",
    "save_push_subscription",
    "welfare",
    "worklist",
]
