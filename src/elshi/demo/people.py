"""Demo people: the embassy's staff, citizens abroad and what they did, so every page has a use.

Citizens in kk, ru and en (some travelling with family) have stays in Germany; they have
requests at every status (a draft, submitted, in review, sent back for documents, approved,
rejected), appointments, messages both ways; a past crisis in Berlin has its answers. Everything
is written through the same services a user's clicks go through, once: a second run adds nothing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from elshi.accounts import service as accounts
from elshi.accounts.service import Principal
from elshi.db import Database, utcnow
from elshi.settings import Settings

#: Staff of the demo embassy, besides the demo admin at headquarters (who may do everything).
STAFF = (
    ("consul@demo.elshi.example", "Асель Қайратқызы", "consular"),
    ("duty@demo.elshi.example", "Ерлан Бекұлы", "consular"),
    ("press@demo.elshi.example", "Dana Seitkali", "press"),
    ("ambassador@demo.elshi.example", "Нұрлан Оспанов", "ambassador"),
)


@dataclass(frozen=True)
class Person:
    """One demo citizen and the stay they registered."""

    email: str
    name: str
    lang: str
    city: str
    latitude: float
    longitude: float
    companions: tuple[tuple[str, str], ...] = ()


PEOPLE = (
    Person(
        "aigerim@demo.elshi.example",
        "Әйгерім Нұрланқызы",
        "kk",
        "Berlin",
        52.52,
        13.40,
        (("Нұрлан Әбенов", "әкесі"),),
    ),
    Person("daniyar@demo.elshi.example", "Данияр Серікұлы", "kk", "Munich", 48.14, 11.58),
    Person(
        "olga@demo.elshi.example",
        "Ольга Ким",
        "ru",
        "Berlin",
        52.50,
        13.37,
        (("Максим Ким", "сын"), ("Анна Ким", "дочь")),
    ),
    Person("timur@demo.elshi.example", "Тимур Ахметов", "ru", "Hamburg", 53.55, 9.99),
    Person("sara@demo.elshi.example", "Sara Bekova", "en", "Berlin", 52.53, 13.42),
    Person(
        "arman@demo.elshi.example",
        "Arman Zhaksylykov",
        "en",
        "Frankfurt",
        50.11,
        8.68,
        (("Dana Zhaksylykova", "wife"),),
    ),
)

#: Answers that satisfy every field of the default catalogue.
ANSWERS = {
    "full_name": "",
    "birth_date": "1990-04-12",
    "passport_number": "N12345678",
    "purpose": "family",
    "entry_date": "",
    "notes": "",
    "purpose_of_certificate": "employer",
}


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (60, 80), (210, 220, 235)).save(out, "PNG")
    return out.getvalue()


def _staff(s: Session, email: str, name: str, role: str, mission_id: int, password: str) -> int:
    user = accounts.get_user(db=s, email=email)
    if user is None:
        user = accounts.create_user(db=s, email=email, password=password, name=name)
        accounts.grant_role(db=s, user_id=user.id, mission_id=mission_id, role=role)
    return user.id


def _principal(s: Session, user_id: int) -> Principal:
    principal = accounts.load_principal(db=s, user_id=user_id)
    assert principal is not None
    return principal


def _answers(s: Session, service_type_id: int, person: Person, today: date) -> dict[str, str]:
    from elshi.consulate.models import ServiceType

    st = s.get(ServiceType, service_type_id)
    assert st is not None
    values = dict(ANSWERS, full_name=person.name, entry_date=str(today + timedelta(days=30)))
    out: dict[str, str] = {}
    for spec in st.fields:
        if spec.get("type") == "select":
            out[spec["name"]] = (spec.get("options") or [""])[0]
        else:
            out[spec["name"]] = values.get(spec["name"], "—")
    return out


def _request(
    db: Database,
    settings: Settings,
    citizen_id: int,
    person: Person,
    service_type_id: int,
    *,
    submit: bool,
) -> int:
    """A request with its answers and required documents; submitted if asked."""
    from elshi.consulate import flows
    from elshi.consulate import service as consulate
    from elshi.consulate.models import ServiceType

    today = utcnow().date()
    with db.session() as s:
        req = consulate.create_draft(db=s, citizen_id=citizen_id, service_type_id=service_type_id)
        consulate.save_answers(
            db=s,
            citizen_id=citizen_id,
            request_id=req.id,
            raw=_answers(s, service_type_id, person, today),
        )
        request_id = req.id
        st = s.get(ServiceType, service_type_id)
        assert st is not None
        kinds = [d["slug"] for d in st.documents if d.get("required")]
    for kind in kinds:
        with db.session() as s:
            flows.upload_document(
                db=s,
                settings=settings,
                citizen_id=citizen_id,
                request_id=request_id,
                kind=kind,
                filename=f"{kind}.png",
                data=_png(),
            )
    if submit:
        with db.session() as s:
            consulate.submit(db=s, citizen_id=citizen_id, request_id=request_id)
    return request_id


def seed_people(
    db: Database, *, settings: Settings, mission_id: int, password: str | None
) -> dict[str, Any]:
    """Add the demo staff, citizens, stays, requests, appointments and messages, once."""
    from elshi.consulate import service as consulate
    from elshi.consulate.models import Citizen, Slot

    with db.session() as s:
        if s.scalar(
            select(func.count())
            .select_from(Citizen)
            .where(Citizen.email.in_([p.email for p in PEOPLE]))
        ):
            return {"citizens": 0}
    # Staff and citizens share the demo admin's password (shown by `elshi demo`).
    password = password or "demo-" + utcnow().strftime("%Y%m%d")
    today = utcnow().date()
    with db.session() as s:
        staff = {
            role if role != "consular" or email.startswith("consul") else "duty": _staff(
                s, email, name, role, mission_id, password
            )
            for email, name, role in STAFF
        }
        services = {st.slug: st.id for st in consulate.services(db=s, mission_id=mission_id)}
        citizens: list[int] = []
        for p in PEOPLE:
            row = consulate.create_citizen(
                db=s, email=p.email, password=password, name=p.name, lang=p.lang
            )
            row.email_verified_at = utcnow()
            raw: dict[str, str] = {
                "mission_id": str(mission_id),
                "country_code": "DE",
                "city": p.city,
                "address": f"{p.city}, Musterstraße {len(citizens) + 3}",
                "arrive_on": str(today - timedelta(days=40 + 9 * len(citizens))),
                "leave_on": str(today + timedelta(days=60 + 30 * len(citizens))),
                "phone": f"+49 151 0000 {len(citizens) + 11:04d}",
                "emergency_contact": "+7 701 000 00 00",
            }
            for i, (name, relation) in enumerate(p.companions):
                raw[f"companion_{i}_name"] = name
                raw[f"companion_{i}_relation"] = relation
            stay = consulate.register_stay(db=s, citizen_id=row.id, raw=raw)
            stay.latitude, stay.longitude, stay.region = p.latitude, p.longitude, p.city
            # Most confirmed their stay; the newest two are still asked to.
            if len(citizens) < 4:
                consulate.confirm_stay(db=s, citizen_id=row.id, registration_id=stay.id)
            citizens.append(row.id)
        consul = _principal(s, staff["consular"])
    # Requests at every status, one per citizen.
    plan = [
        ("visa", "approved"),
        ("passport-renewal", "in_review"),
        ("certificate", "more_documents"),
        ("visa", "submitted"),
        ("passport-renewal", "rejected"),
        ("certificate", "draft"),
    ]
    requests: dict[str, int] = {}
    for (slug, status), cid, person in zip(plan, citizens, PEOPLE, strict=True):
        if slug not in services:
            continue
        rid = _request(db, settings, cid, person, services[slug], submit=status != "draft")
        requests[status] = rid
        with db.session() as s:
            if status in ("in_review", "more_documents", "approved", "rejected"):
                consulate.claim(db=s, actor=consul, request_id=rid)
            if status == "more_documents":
                consulate.ask_documents(
                    db=s,
                    actor=consul,
                    request_id=rid,
                    note="Please add a scan of your employer's letter.",
                )
            elif status in ("approved", "rejected"):
                consulate.decide(
                    db=s,
                    actor=consul,
                    request_id=rid,
                    approve=status == "approved",
                    reason=""
                    if status == "approved"
                    else "The passport is valid for 8 more years.",
                )
    # Messages both ways on the request in review.
    if "in_review" in requests:
        with db.session() as s:
            req = consulate.citizen_request(
                db=s, citizen_id=citizens[1], request_id=requests["in_review"]
            )
            consulate.post_message(
                db=s,
                request=req,
                kind="citizen",
                sender_id=citizens[1],
                label=PEOPLE[1].name,
                body="Сәлеметсіз бе! Төлқұжат қашан дайын болады?",
            )
            consulate.post_message(
                db=s,
                request=req,
                kind="staff",
                sender_id=consul.user_id,
                label=consul.name,
                body="Сәлеметсіз бе! Шамамен екі аптада. Қабылдауға жазылыңыз.",
            )
    # Appointments: one booked for the request in review, one past and attended.
    with db.session() as s:
        slots = list(
            s.scalars(
                select(Slot)
                .where(Slot.mission_id == mission_id, Slot.starts_at > utcnow())
                .order_by(Slot.starts_at)
                .limit(3)
            )
        )
        if slots and "in_review" in requests:
            consulate.book(
                db=s,
                slot_id=slots[0].id,
                citizen_id=citizens[1],
                request_id=requests["in_review"],
            )
        past = Slot(
            mission_id=mission_id,
            starts_at=datetime.combine(today - timedelta(days=6), time(8, 0)).replace(
                tzinfo=utcnow().tzinfo
            ),
            minutes=30,
            capacity=1,
            booked=0,
        )
        s.add(past)
        s.flush()
        if "approved" in requests:
            appt = consulate.book(
                db=s,
                slot_id=past.id,
                citizen_id=citizens[0],
                request_id=requests["approved"],
                now=past.starts_at - timedelta(days=3),
            )
            consulate.mark_appointment(
                db=s, actor=consul, appointment_id=appt.id, status="attended"
            )
    return {"citizens": len(citizens), "requests": len(requests), "password": password}


def seed_past_crisis(db: Database, *, mission_id: int) -> int | None:
    """A closed crisis in Berlin, sent a week ago, with every kind of answer; once."""
    from elshi.crisis import service as crisis
    from elshi.crisis.models import Crisis, Delivery, Recipient

    with db.session() as s:
        if s.scalar(select(func.count()).select_from(Crisis)):
            return None
        users = {
            u.email: u.id
            for u in (accounts.get_user(db=s, email=e) for e, _, _ in STAFF)
            if u is not None
        }
        first = _principal(s, users["consul@demo.elshi.example"])
        second = _principal(s, users["duty@demo.elshi.example"])
        messages = {
            "kk": {
                "subject": "Берлин: көлік ереуілі",
                "text": "Берлинде көлік ереуілі жүріп жатыр. Жағдайыңызды хабарлаңыз.",
                "sms": "Elshi: Berlinde ereuil. Jauap beriniz:",
            },
            "ru": {
                "subject": "Берлин: транспортная забастовка",
                "text": "В Берлине транспортная забастовка. Сообщите, как вы.",
                "sms": "Забастовка в Берлине. Ответьте:",
            },
            "en": {
                "subject": "Berlin: transport strike",
                "text": "A transport strike is under way in Berlin. Tell us how you are.",
                "sms": "Strike in Berlin. Answer here:",
            },
        }
        b = crisis.create_crisis(
            db=s,
            actor=first,
            mission_id=mission_id,
            title="Berlin transport strike",
            area={"cities": ["Berlin"]},
            audience="present",
            messages=messages,
        )
        broadcast_id, crisis_id = b.id, b.crisis_id
    with db.session() as s:
        crisis.approve(db=s, actor=second, broadcast_id=broadcast_id)
    with db.session() as s:
        crisis.send(db=s, actor=first, broadcast_id=broadcast_id)
    week_ago = utcnow() - timedelta(days=7)
    answers = ("safe", "help", "left")
    with db.session() as s:
        # The messages went out a week ago (the demo has no mail server to send them now).
        for d in s.scalars(select(Delivery).where(Delivery.broadcast_id == broadcast_id)):
            d.status, d.sent_at, d.due_at = "sent", week_ago, week_ago
        recipients = list(
            s.scalars(
                select(Recipient).where(Recipient.crisis_id == crisis_id).order_by(Recipient.id)
            )
        )
        notes = {"help": "Кішкентай балам бар, вокзалда тұрмыз / stuck at the station"}
        for i, r in enumerate(recipients[: len(answers)]):
            answer = answers[i]
            crisis.record_checkin(
                s,
                crisis_id=crisis_id,
                recipient_id=r.id,
                answer=answer,
                note=notes.get(answer, ""),
                nonce=f"demo-{crisis_id}-{r.id:06d}",
                now=week_ago + timedelta(hours=1 + i),
            )
        row = s.get(Crisis, crisis_id)
        assert row is not None
        row.created_at = week_ago - timedelta(minutes=30)
    with db.session() as s:
        crisis.close(db=s, actor=first, crisis_id=crisis_id)
    return crisis_id
