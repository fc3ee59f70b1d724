"""Shared set-up for the e-consulate tests: missions, officers, citizens, catalogue, slots."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from elshi.accounts import service as accounts
from elshi.accounts.service import Principal
from elshi.consulate import service
from elshi.consulate.models import Citizen, Slot
from elshi.consulate.schemas import DEFAULT_CATALOGUE
from elshi.db import Database, utcnow
from elshi.missions import service as missions

PASSWORD = "correct horse battery"


@dataclass
class World:
    """Two missions (A, B), their officers, HQ staff, and two verified citizens."""

    hq: int
    a: int
    b: int
    officer_a: Principal
    officer_b: Principal
    analyst_a: Principal
    ambassador_a: Principal
    hq_admin: Principal
    alice: int
    bob: int
    visa_a: int
    visa_b: int


def _staff(s: Session, email: str, mission_id: int, role: str) -> Principal:
    user = accounts.create_user(db=s, email=email, password=PASSWORD, name=email.split("@")[0])
    accounts.grant_role(db=s, user_id=user.id, mission_id=mission_id, role=role)
    principal = accounts.load_principal(db=s, user_id=user.id)
    assert principal is not None
    return principal


def citizen(s: Session, email: str, name: str = "Test Person") -> int:
    row = service.create_citizen(db=s, email=email, password=PASSWORD, name=name)
    row.email_verified_at = utcnow()
    return row.id


def seed(s: Session, mission_id: int) -> dict[str, int]:
    return {
        spec.slug: service.upsert_service(db=s, mission_id=mission_id, spec=spec.model_dump()).id
        for spec in DEFAULT_CATALOGUE
    }


def world(db: Database) -> World:
    with db.session() as s:
        hq = missions.ensure_hq(db=s)
        a = missions.create_mission(db=s, slug="berlin", name="Embassy in Berlin", parent_id=hq.id)
        b = missions.create_mission(db=s, slug="paris", name="Embassy in Paris", parent_id=hq.id)
        w = World(
            hq=hq.id,
            a=a.id,
            b=b.id,
            officer_a=_staff(s, "officer.a@mfa.example", a.id, "consular"),
            officer_b=_staff(s, "officer.b@mfa.example", b.id, "consular"),
            analyst_a=_staff(s, "analyst.a@mfa.example", a.id, "analyst"),
            ambassador_a=_staff(s, "ambassador.a@mfa.example", a.id, "ambassador"),
            hq_admin=_staff(s, "admin@mfa.example", hq.id, "admin"),
            alice=citizen(s, "alice@example.org", "Alice Applicant"),
            bob=citizen(s, "bob@example.org", "Bob Visitor"),
            visa_a=seed(s, a.id)["visa"],
            visa_b=seed(s, b.id)["visa"],
        )
    return w


def many_citizens(s: Session, n: int) -> list[int]:
    """Insert n verified citizens fast (one shared password hash)."""
    digest = accounts.hash_password(PASSWORD)
    now = utcnow()
    s.execute(
        insert(Citizen),
        [
            {
                "email": f"c{i}@load.example",
                "name": f"Citizen {i}",
                "phone": "",
                "lang": "en",
                "password_hash": digest,
                "email_verified_at": now,
                "is_active": True,
                "failed_logins": 0,
                "created_at": now,
            }
            for i in range(n)
        ],
    )
    s.flush()
    from sqlalchemy import select

    return list(s.scalars(select(Citizen.id).where(Citizen.email.like("%@load.example"))))


def slot(s: Session, mission_id: int, capacity: int, *, hours: float = 48) -> int:
    row = Slot(
        mission_id=mission_id,
        starts_at=datetime.now(UTC) + timedelta(hours=hours),
        minutes=15,
        capacity=capacity,
        booked=0,
    )
    s.add(row)
    s.flush()
    return row.id


class Sink:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"

    def texts(self, to: str) -> list[str]:
        """Return the decoded bodies of messages sent to an address."""
        from email import message_from_bytes, policy

        out = []
        for env in self.messages:
            if to in env.rcpt_tos:
                msg = message_from_bytes(env.content, policy=policy.default)
                body = msg.get_body(preferencelist=("plain",))
                out.append(f"Subject: {msg['subject']}\n\n{body.get_content() if body else ''}")
        return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def link_in(text: str, path: str) -> str:
    import re

    match = re.search(r"https?://\S+" + re.escape(path) + r"\S*", text)
    assert match, text
    return match[0]


PNG_2x2 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000002000000020802000000fdd49a73000000"
    "1649444154789c636464626660606062606060606000000070000a33c5f7880000000049"
    "454e44ae426082"
)


def pdf(text: str = "hello") -> bytes:
    """A small valid one-page PDF whose page shows `text`."""
    import io

    import pikepdf

    doc = pikepdf.new()
    doc.add_blank_page(page_size=(200, 100))
    doc.pages[0].Contents = doc.make_stream(f"BT /F1 12 Tf 10 50 Td ({text}) Tj ET".encode())
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def jpeg_with_gps() -> bytes:
    """A small JPEG carrying EXIF with a GPS position and a camera model."""
    import io

    from PIL import Image

    img = Image.new("RGB", (32, 24), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0110] = "SecretCam 3000"  # Model
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "E", 4: (0.0, 7.0, 0.0)}  # GPS
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)
    return out.getvalue()


def add_stay(s: Any, citizen_id: int, mission_id: int, leave_in: int, **fields: Any) -> int:
    """Register a stay of `citizen_id` at `mission_id` from today, leaving in `leave_in` days."""
    today = date.today()
    row = service.register_stay(
        db=s,
        citizen_id=citizen_id,
        raw={
            "mission_id": str(mission_id),
            "country_code": "DE",
            "city": fields.pop("city", "Berlin"),
            "arrive_on": str(today),
            "leave_on": str(today + timedelta(days=leave_in)),
        },
    )
    for name, value in fields.items():
        setattr(row, name, value)
    s.flush()
    return row.id
