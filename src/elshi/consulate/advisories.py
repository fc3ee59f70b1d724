"""Travel advisories: HQ publishes a level and a text per country (or region), citizens hear of it.

The levels are those of the US STEP programme: 1 exercise normal precautions, 2 exercise
increased caution, 3 reconsider travel, 4 do not travel. Publishing adds a row (nothing is ever
changed or deleted), so a country's rows are its history and the newest row of each (country,
region) pair is the advisory in force there.

When a publication changes the level of its area (a first advisory counts as a change from
level 1), every citizen with a current stay registered in the country and every citizen who
follows the country gets one e-mail in their language, through the outbox, in the
transaction of the publication: the e-mail's key names the publication and the citizen, so
nobody is told twice of one change. A new text at the same level is published without e-mails.

Who may publish: staff holding `consulate.act` at headquarters (admin or consular there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from xml.etree import ElementTree as ET

from sqlalchemy import select
from sqlalchemy.orm import Session

from elshi import notify
from elshi.accounts.service import Principal, audit_by, authorize
from elshi.consulate import countries
from elshi.consulate.models import AdvisorySubscription, Citizen, Registration, TravelAdvisory
from elshi.consulate.service import (
    BAD_COUNTRY,
    Invalid,
    NotFound,
    Problem,
    _gather,
    _invalid,
    clean_text,
)
from elshi.db import utcnow
from elshi.settings import Settings
from elshi.web import i18n
from elshi.web.i18n import N_

#: Who may publish an advisory (held at headquarters).
PERMISSION = "consulate.act"
LEVELS = (1, 2, 3, 4)
LEVEL_NAMES = {
    1: N_("Exercise normal precautions"),
    2: N_("Exercise increased caution"),
    3: N_("Reconsider travel"),
    4: N_("Do not travel"),
}
BAD_LEVEL = N_("Choose a level from 1 to 4.")
#: The longest advisory text, per language.
MAX_TEXT = 10_000
TEXT_FIELDS = {lang: f"text_{lang}" for lang in countries.LANGS}

SUBJECT = N_("Travel advisory for %(country)s: level %(level)s, %(name)s")
BODY = N_(
    "Hello %(name)s,\n\nthe travel advisory for %(area)s changed from level %(before)s to "
    "level %(level)s: %(level_name)s.\n\n%(text)s\n\nThe advisory and its history: %(link)s"
)
BODY_FOLLOWED = N_("You get this e-mail because you follow this country's advisories.")


@dataclass(frozen=True)
class Published:
    """A publication and the e-mails it put in the outbox."""

    advisory: TravelAdvisory
    emails: list[notify.Message]


def parse(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check a publication form; return clean values or raise Invalid naming every field."""

    def country() -> str:
        text = clean_text("country_code", raw.get("country_code"), max_len=100, required=True)
        code = countries.resolve(text)
        if code is None:
            raise _invalid("country_code", BAD_COUNTRY)
        return code

    def level() -> int:
        text = str(raw.get("level") or "").strip()
        if not text.isdigit() or int(text) not in LEVELS:
            raise _invalid("level", BAD_LEVEL)
        return int(text)

    checks: list[tuple[str, Any]] = [
        ("country_code", country),
        ("region", lambda: clean_text("region", raw.get("region"), max_len=200)),
        ("level", level),
    ]
    for field in TEXT_FIELDS.values():
        checks.append(
            (
                field,
                lambda f=field: clean_text(f, raw.get(f), max_len=MAX_TEXT, required=True),
            )
        )
    values, problems = _gather(checks)
    if problems:
        raise Invalid(*problems)
    values["texts"] = {lang: values.pop(field) for lang, field in TEXT_FIELDS.items()}
    return values


def current(db: Session, country_code: str, region: str = "") -> TravelAdvisory | None:
    """Return the advisory in force for a country (or one of its regions), or None."""
    return db.scalars(
        select(TravelAdvisory)
        .where(TravelAdvisory.country_code == country_code, TravelAdvisory.region == region)
        .order_by(TravelAdvisory.published_at.desc(), TravelAdvisory.id.desc())
        .limit(1)
    ).first()


def history(db: Session, country_code: str) -> list[TravelAdvisory]:
    """Return every publication for a country (all its regions), newest first."""
    return list(
        db.scalars(
            select(TravelAdvisory)
            .where(TravelAdvisory.country_code == country_code)
            .order_by(TravelAdvisory.published_at.desc(), TravelAdvisory.id.desc())
        )
    )


def in_force(db: Session, country_code: str) -> list[TravelAdvisory]:
    """Return the advisories in force in a country: the whole country first, then regions."""
    seen: dict[str, TravelAdvisory] = {}
    for row in history(db, country_code):
        seen.setdefault(row.region, row)
    return sorted(seen.values(), key=lambda r: (r.region != "", r.region.casefold()))


def countries_in_force(db: Session) -> list[TravelAdvisory]:
    """Return the whole-country advisory in force in every country that has one."""
    rows = db.scalars(
        select(TravelAdvisory)
        .where(TravelAdvisory.region == "")
        .order_by(TravelAdvisory.published_at.desc(), TravelAdvisory.id.desc())
    )
    seen: dict[str, TravelAdvisory] = {}
    for row in rows:
        seen.setdefault(row.country_code, row)
    return list(seen.values())


def recipients(db: Session, country_code: str, *, today: date) -> list[tuple[Citizen, bool]]:
    """Return the citizens to tell of a change in a country, each once: (citizen, follows).

    Those with a current stay registered there (active, not yet over), then those who follow
    the country; only active accounts with a confirmed e-mail address.
    """
    registered = select(Registration.citizen_id).where(
        Registration.country_code == country_code,
        Registration.status == "active",
        Registration.leave_on >= today,
    )
    following = select(AdvisorySubscription.citizen_id).where(
        AdvisorySubscription.country_code == country_code
    )
    staying = set(db.scalars(registered))
    rows = db.scalars(
        select(Citizen)
        .where(
            Citizen.id.in_(registered.union(following)),
            Citizen.is_active.is_(True),
            Citizen.email_verified_at.is_not(None),
        )
        .order_by(Citizen.id)
    )
    return [(row, row.id not in staying) for row in rows]


def page_path(country_code: str) -> str:
    """Return the public page of a country's advisories."""
    return f"/consulate/advisories/{country_code}"


def publish(
    *, db: Session, settings: Settings, actor: Principal, raw: Mapping[str, Any]
) -> Published:
    """Publish an advisory; when its level changed, put the citizens' e-mails in the outbox.

    Raises PermissionDenied unless the actor holds `consulate.act` at headquarters, and
    Invalid (every bad field named) for a bad form; nothing is stored then.
    """
    authorize(actor, PERMISSION, mission_id=None)
    values = parse(raw)
    before = current(db, values["country_code"], values["region"])
    row = TravelAdvisory(
        previous_level=before.level if before else None,
        published_at=utcnow(),
        published_by=actor.user_id,
        published_by_label=actor.label,
        **values,
    )
    db.add(row)
    db.flush()
    old_level = before.level if before else 1
    emails: list[notify.Message] = []
    if row.level != old_level:
        emails = _tell(db, settings, row, old_level)
        row.notified = len(emails)
    audit_by(
        actor,
        db,
        "advisory.publish",
        "travel_advisory",
        row.id,
        country=row.country_code,
        region=row.region,
        level=row.level,
        notified=row.notified,
    )
    db.flush()
    return Published(row, emails)


def _tell(
    db: Session, settings: Settings, row: TravelAdvisory, old_level: int
) -> list[notify.Message]:
    out = []
    link = settings.base_url + page_path(row.country_code)
    for citizen, follows in recipients(db, row.country_code, today=utcnow().date()):
        lang = citizen.lang if citizen.lang in countries.LANGS else "en"
        country = countries.name(row.country_code, lang)
        area = f"{country}, {row.region}" if row.region else country
        level_name = i18n.gettext(lang, LEVEL_NAMES[row.level])
        text = i18n.gettext(lang, BODY) % {
            "name": citizen.name,
            "area": area,
            "before": old_level,
            "level": row.level,
            "level_name": level_name,
            "text": row.texts.get(lang) or row.texts.get("en", ""),
            "link": f"{link}?lang={lang}",
        }
        if follows:
            text += "\n\n" + i18n.gettext(lang, BODY_FOLLOWED)
        subject = i18n.gettext(lang, SUBJECT) % {
            "country": area,
            "level": row.level,
            "name": level_name,
        }
        message = notify.Message(
            medium="email",
            to=citizen.email,
            subject=subject,
            text=text,
            key=f"advisory-{row.id}-{citizen.id}",
        )
        notify.enqueue(db, message)
        out.append(message)
    return out


# ---------------------------------------------------------------------------- following


def _country(code: str) -> str:
    value = (code or "").upper()
    if value not in countries.codes():
        raise Invalid(Problem("country_code", BAD_COUNTRY))
    return value


def follows(db: Session, citizen_id: int) -> list[str]:
    """Return the countries a citizen follows, by code."""
    return list(
        db.scalars(
            select(AdvisorySubscription.country_code)
            .where(AdvisorySubscription.citizen_id == citizen_id)
            .order_by(AdvisorySubscription.country_code)
        )
    )


def follow(db: Session, citizen_id: int, country_code: str) -> bool:
    """Follow a country's advisories; return False when the citizen already did."""
    code = _country(country_code)
    if code in follows(db, citizen_id):
        return False
    db.add(AdvisorySubscription(citizen_id=citizen_id, country_code=code, created_at=utcnow()))
    db.flush()
    return True


def unfollow(db: Session, citizen_id: int, country_code: str) -> bool:
    """Stop following a country; return False when the citizen did not follow it."""
    code = _country(country_code)
    row = db.scalars(
        select(AdvisorySubscription).where(
            AdvisorySubscription.citizen_id == citizen_id,
            AdvisorySubscription.country_code == code,
        )
    ).first()
    if row is None:
        return False
    db.delete(row)
    db.flush()
    return True


# ---------------------------------------------------------------------------- Atom feed

ATOM = "http://www.w3.org/2005/Atom"
FEED_TITLE = N_("Travel advisories: %(country)s")


def atom(db: Session, *, settings: Settings, country_code: str, lang: str) -> bytes:
    """Return the Atom feed of a country's advisories (every publication, newest first)."""
    if country_code not in countries.codes():
        raise NotFound("country")
    rows = history(db, country_code)
    country = countries.name(country_code, lang)
    page = settings.base_url + page_path(country_code)
    ET.register_namespace("", ATOM)

    def sub(parent: ET.Element, tag: str, text: str = "", **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text:
            el.text = text
        return el

    feed = ET.Element(f"{{{ATOM}}}feed", {"xml:lang": lang})
    sub(feed, "title", i18n.gettext(lang, FEED_TITLE) % {"country": country})
    sub(feed, "id", f"{page}/feed.atom")
    sub(feed, "link", rel="alternate", type="text/html", href=f"{page}?lang={lang}")
    sub(feed, "link", rel="self", href=f"{page}/feed.atom?lang={lang}")
    updated = rows[0].published_at if rows else utcnow()
    sub(feed, "updated", updated.isoformat())
    author = sub(feed, "author")
    sub(author, "name", "elshi")
    for row in rows:
        entry = sub(feed, "entry")
        area = f"{country}, {row.region}" if row.region else country
        level_name = i18n.gettext(lang, LEVEL_NAMES[row.level])
        sub(entry, "title", f"{area}: {row.level} · {level_name}")
        sub(entry, "id", f"{page}#advisory-{row.id}")
        sub(entry, "link", rel="alternate", type="text/html", href=f"{page}?lang={lang}")
        sub(entry, "updated", row.published_at.isoformat())
        sub(entry, "published", row.published_at.isoformat())
        sub(entry, "category", term=str(row.level), label=level_name)
        sub(entry, "content", row.texts.get(lang) or row.texts.get("en", ""), type="text")
    return bytes(ET.tostring(feed, encoding="utf-8", xml_declaration=True))
