"""Check-ins: citizens' answers by link, SMS or walk-in, and relatives' checks."""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    Integer,
    String,
    bindparam,
    exists,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from elshi.accounts.service import Principal
from elshi.consulate.models import Citizen
from elshi.crisis.area import _coord, _numbers
from elshi.crisis.models import (
    ANSWERS,
    Broadcast,
    CheckIn,
    Crisis,
    Recipient,
    WalkIn,
)
from elshi.crisis.service import Invalid, NotFound, Problem, clean_text, get_crisis, rowcount
from elshi.crypto import PHONE
from elshi.db import keyring_of, utcnow
from elshi.web.i18n import N_

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


def find_crisis(*, db: Session, crisis_id: int) -> Crisis | None:
    """Return a crisis for its public pages (the check-in link or the walk-in form), or None."""
    return db.get(Crisis, crisis_id)


@dataclass(frozen=True)
class PublicCrisis:
    """What a citizen's crisis page shows: the message in their language and whom to call."""

    crisis_id: int
    status: str
    #: The staff's working title, for a page that has no message (the walk-in form).
    title: str
    #: The latest message sent, by language: {"kk": {"subject", "text", "sms"}, ...}.
    messages: dict[str, dict[str, str]]
    #: The recipient's own language (None on the walk-in form).
    lang: str | None
    emergency_phone: str
    mission_name: str

    def message(self, lang: str) -> dict[str, str]:
        """The message in `lang`, else English, else any language it was written in."""
        for code in (lang, "en", *self.messages):
            found = self.messages.get(code)
            if found and (found.get("subject") or found.get("text")):
                return found
        return {}


def public_crisis(
    *, db: Session, crisis_id: int, recipient_id: int | None = None
) -> PublicCrisis | None:
    """Return a crisis as its public pages show it (the check-in link or the walk-in form)."""
    from elshi.missions.models import Mission

    crisis = db.get(Crisis, crisis_id)
    if crisis is None:
        return None
    sent = db.scalars(
        select(Broadcast)
        .where(Broadcast.crisis_id == crisis_id, Broadcast.status.in_(("sent", "sending")))
        .order_by(Broadcast.id.desc())
        .limit(1)
    ).first()
    recipient = db.get(Recipient, recipient_id) if recipient_id is not None else None
    mission = db.get(Mission, crisis.mission_id)
    return PublicCrisis(
        crisis_id=crisis.id,
        status=crisis.status,
        title=crisis.title,
        messages=dict(sent.messages) if sent else {},
        lang=recipient.lang if recipient is not None and recipient.crisis_id == crisis_id else None,
        emergency_phone=mission.emergency_phone if mission else "",
        mission_name=mission.name if mission else "",
    )


def walkins_of(*, db: Session, crisis_id: int, limit: int = 200) -> list[WalkIn]:
    """Return the first walk-in registrations of a crisis."""
    stmt = select(WalkIn).where(WalkIn.crisis_id == crisis_id).order_by(WalkIn.id).limit(limit)
    return list(db.scalars(stmt))


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


__all__ = [
    "CHECKIN_COLUMNS",
    "SMS_KEYWORDS",
    "PublicCrisis",
    "add_walkin",
    "checkin_insert",
    "checkin_values",
    "crisis_state",
    "find_crisis",
    "merge_walkins",
    "parse_checkin",
    "public_crisis",
    "record_checkin",
    "sms_reply",
    "verify_relative",
    "walkins_of",
]
