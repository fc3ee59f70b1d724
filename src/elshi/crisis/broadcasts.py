"""A crisis and its broadcasts: create, approve (four eyes), queue deliveries, send, cancel,
kill, close; and escalation to a call list."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    and_,
    exists,
    func,
    insert,
    literal,
    not_,
    select,
    update,
)
from sqlalchemy.orm import Session

from elshi.accounts.service import Principal, scoped
from elshi.consulate.models import Citizen, Registration
from elshi.crisis.area import (
    _EMAIL_OF,
    _PHONE_INDEX_OF,
    _PHONE_OF,
    _chosen_registrations,
    _registration_ids_clause,
    preview,
)
from elshi.crisis.models import (
    AUDIENCES,
    Broadcast,
    CheckIn,
    Crisis,
    Delivery,
    PushSubscription,
    Recipient,
)
from elshi.crisis.service import (
    BAD_STATE,
    CRISIS_CLOSED,
    EMPTY_AREA,
    SAME_OFFICER,
    Invalid,
    NotFound,
    Problem,
    _audit,
    _require,
    clean_text,
    get_crisis,
    rowcount,
)
from elshi.db import utcnow
from elshi.missions.models import Mission
from elshi.web.i18n import N_


def list_crises(*, db: Session, actor: Principal) -> list[Crisis]:
    """Return crises of the officer's missions, newest first."""
    stmt = select(Crisis).order_by(Crisis.id.desc())
    return list(db.scalars(scoped(stmt, Crisis.mission_id, actor, "consulate.read")))


def missions_to_act(*, db: Session, actor: Principal) -> list[Mission]:
    """Return the missions where the officer may start a crisis, by name."""
    stmt = scoped(select(Mission).order_by(Mission.name), Mission.id, actor, "consulate.act")
    return list(db.scalars(stmt))


def broadcasts_of(*, db: Session, crisis_id: int) -> list[Broadcast]:
    """Return the broadcasts of a crisis, oldest first."""
    stmt = select(Broadcast).where(Broadcast.crisis_id == crisis_id).order_by(Broadcast.id)
    return list(db.scalars(stmt))


def find_broadcast(*, db: Session, broadcast_id: int) -> Broadcast | None:
    """Return a broadcast by id, or None (access is checked by the change made to it)."""
    return db.get(Broadcast, broadcast_id)


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


__all__ = [
    "approve",
    "broadcasts_of",
    "call_list",
    "cancel",
    "close",
    "create_crisis",
    "escalate",
    "find_broadcast",
    "follow_up",
    "kill",
    "list_crises",
    "missions_to_act",
    "queue_deliveries",
    "send",
    "snapshot_recipients",
]
