"""Shared set-up for the crisis tests: a mission with two consular officers, and many
registered citizens written with set-based INSERTs (no password hashing per person)."""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from elshi.accounts import service as accounts
from elshi.accounts.service import Principal
from elshi.app import create_app
from elshi.consulate.models import Citizen, Registration
from elshi.crisis import service
from elshi.crypto import PHONE
from elshi.db import Database, keyring_of, utcnow
from elshi.missions import service as missions
from elshi.settings import Settings

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
MESSAGES = {
    "kk": {
        "subject": "Ыстамбұл: жер сілкінісі",
        "text": "Ыстамбұлда жер сілкінісі болды. Қауіпсіз жерде болыңыз.",
        "sms": "Elshi: jer silkinisi. Jauap beriniz:",
    },
    "ru": {
        "subject": "Стамбул: землетрясение",
        "text": "В Стамбуле произошло землетрясение. Оставайтесь в безопасном месте.",
        "sms": "Землетрясение. Ответьте:",
    },
    "en": {
        "subject": "Istanbul: earthquake",
        "text": "An earthquake struck Istanbul. Stay in a safe place.",
        "sms": "Earthquake in Istanbul. Answer here:",
    },
}


@dataclass
class Team:
    """A mission, two consular officers (four eyes) and an analyst."""

    mission_id: int
    officer: Principal
    officer2: Principal
    analyst: Principal


def _staff(s: Any, email: str, mission_id: int, role: str) -> Principal:
    user = accounts.create_user(db=s, email=email, password=PASSWORD, name=email.split("@")[0])
    accounts.grant_role(db=s, user_id=user.id, mission_id=mission_id, role=role)
    principal = accounts.load_principal(db=s, user_id=user.id)
    assert principal is not None
    return principal


def team(db: Database) -> Team:
    with db.session() as s:
        hq = missions.ensure_hq(db=s)
        m = missions.create_mission(
            db=s, slug="istanbul", name="Consulate in Istanbul", parent_id=hq.id
        )
        return Team(
            mission_id=m.id,
            officer=_staff(s, "duty1@mfa.example", m.id, "consular"),
            officer2=_staff(s, "duty2@mfa.example", m.id, "consular"),
            analyst=_staff(s, "analyst@mfa.example", m.id, "analyst"),
        )


def populate(
    db: Database,
    mission_id: int,
    n: int,
    *,
    city: str = "Istanbul",
    country: str = "TR",
    center: tuple[float, float] = (41.01, 28.97),
    prefix: str = "p",
    telegram_every: int = 3,
    unverified_every: int = 20,
    seed: int = 7,
) -> list[int]:
    """Insert n citizens with a stay in `city` covering today; return their ids."""
    rng = random.Random(seed)
    now = utcnow()
    today = now.date()
    citizens = [
        {
            "email": f"{prefix}{i}@example.org",
            "name": f"Person {prefix}{i}",
            "phone": "",
            "lang": ("kk", "ru", "en")[i % 3],
            "telegram_chat_id": str(700000000 + i)
            if telegram_every and i % telegram_every == 0
            else "",
            "password_hash": "!",
            "email_verified_at": None if unverified_every and i % unverified_every == 1 else now,
            "is_active": True,
            "failed_logins": 0,
            "created_at": now,
        }
        for i in range(n)
    ]
    with db.session() as s:
        s.execute(insert(Citizen), citizens)
        ids = list(
            s.scalars(
                select(Citizen.id)
                .where(Citizen.email.like(f"{prefix}%@example.org"))
                .order_by(Citizen.id)
            )
        )
        regs = [
            {
                "citizen_id": cid,
                "mission_id": mission_id,
                "country_code": country,
                "city": city,
                "region": city,
                "latitude": center[0] + rng.uniform(-0.1, 0.1),
                "longitude": center[1] + rng.uniform(-0.1, 0.1),
                "address": "",
                "arrive_on": today - timedelta(days=3),
                "leave_on": today + timedelta(days=20),
                "phone": f"+90555{cid:07d}",
                # A bulk INSERT runs no ORM events: the blind index is given with the phone.
                "phone_index": keyring_of(s).index(PHONE, f"+90555{cid:07d}"),
                "emergency_contact": "",
                "companions": [],
                "status": "active",
                "created_at": now,
                "updated_at": now,
            }
            for cid in ids
        ]
        s.execute(insert(Registration), regs)
    return ids


def crisis(db: Database, t: Team, **area: Any) -> tuple[int, int]:
    """Draft a crisis broadcast (default area: Istanbul); return (broadcast id, crisis id)."""
    with db.session() as s:
        b = service.create_crisis(
            db=s,
            actor=t.officer,
            mission_id=t.mission_id,
            title="Flood",
            area=service.parse_area(area or {"countries": "TR", "cities": "Istanbul"}),
            audience="present",
            messages=MESSAGES,
        )
        return b.id, b.crisis_id


def sent(db: Database, t: Team, **area: Any) -> tuple[int, int]:
    """A crisis broadcast approved by the second officer and sent (its people are copied)."""
    bid, cid = crisis(db, t, **area)
    with db.session() as s:
        service.approve(db=s, actor=t.officer2, broadcast_id=bid)
    with db.session() as s:
        service.send(db=s, actor=t.officer2, broadcast_id=bid)
    return bid, cid


def officer_client(settings: Settings, db: Database) -> TestClient:
    """A test client of the app that asks for English pages."""
    client = TestClient(create_app(settings, db=db))
    client.headers["accept-language"] = "en"
    return client


def staff_login(client: TestClient, email: str) -> None:
    """Sign a staff member in on the client."""
    page = client.get("/login")
    token = CSRF.search(page.text)
    assert token
    r = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token[1], "next": "/crisis"},
        follow_redirects=False,
    )
    assert r.status_code == 303


_OBJECT = re.compile(rb"(\d+) 0 obj\s*(.*?)endobj", re.S)


def _to_unicode(cmap: str) -> dict[int, str]:
    """Glyph code -> text of a PDF ToUnicode CMap (bfchar and bfrange entries)."""
    out: dict[int, str] = {}
    for block in re.findall(r"beginbfchar(.*?)endbfchar", cmap, re.S):
        for src, dst in re.findall(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            out[int(src, 16)] = bytes.fromhex(dst).decode("utf-16-be")
    for block in re.findall(r"beginbfrange(.*?)endbfrange", cmap, re.S):
        hexes = r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>"
        for first, last, dst in re.findall(hexes, block):
            start = int(dst, 16)
            for i, code in enumerate(range(int(first, 16), int(last, 16) + 1)):
                out[code] = chr(start + i)
    return out


def pdf_text(data: bytes) -> str:
    """The text of a PDF printed by Chromium (Skia: Type0 fonts with ToUnicode maps, two-byte
    glyph codes in hex strings), one line per text object, in the order of the file."""
    objects: dict[int, bytes] = {}
    streams: dict[int, bytes] = {}
    for m in _OBJECT.finditer(data):
        num, body = int(m[1]), m[2]
        objects[num] = body
        found = re.search(rb"stream\r?\n(.*?)\r?\nendstream", body, re.S)
        if found:
            raw = found[1]
            streams[num] = zlib.decompress(raw) if b"/FlateDecode" in body[: found.start()] else raw
    lines: list[str] = []
    for body in objects.values():
        if not re.search(rb"/Type /Page\s", body):
            continue
        fonts: dict[str, dict[int, str]] = {}
        listed = re.search(rb"/Font <<(.*?)>>", body, re.S)
        for name, ref in re.findall(rb"/(\w+) (\d+) 0 R", listed[1] if listed else b""):
            cmap = re.search(rb"/ToUnicode (\d+) 0 R", objects[int(ref)])
            text = streams[int(cmap[1])].decode("latin-1") if cmap else ""
            fonts[name.decode()] = _to_unicode(text)
        contents = re.search(rb"/Contents (\d+) 0 R", body)
        assert contents, "a page without contents"
        font: dict[int, str] = {}
        line: list[str] = []
        ops = r"/(\w+) [\d.]+ Tf|<([0-9A-Fa-f]*)>|\b(ET)\b"
        for tok in re.finditer(ops, streams[int(contents[1])].decode("latin-1")):
            if tok[1]:
                font = fonts.get(tok[1], {})
            elif tok[2] is not None:
                codes = (int(tok[2][i : i + 4], 16) for i in range(0, len(tok[2]), 4))
                line.append("".join(font.get(c, "\ufffd") for c in codes))
            else:
                lines.append("".join(line))
                line = []
    return "\n".join(lines)
