"""The evacuation list as a file: its rows, as CSV or as printable HTML (for a PDF).

One row per person who has to be moved: each citizen of the list, then the companions of their
stay (who came along, registered with the stay), so the number of rows is the headcount. The
rows of one stay share a group number, the stay's address and the citizen's phone; a
companion's answer and presence are the citizen's (one answer is given for the group).

Used by the officers' export page and by `elshi crisis export`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from elshi.consulate.models import Registration
from elshi.crisis import service
from elshi.crisis.models import Crisis
from elshi.crisis.welfare import Person
from elshi.web import i18n
from elshi.web.csv_export import to_csv
from elshi.web.templating import environment

EXPORT_COLUMNS = (
    "group",
    "role",
    "name",
    "relation",
    "companion_of",
    "email",
    "phone",
    "address",
    "city",
    "answer",
    "presence",
    "note",
    "latitude",
    "longitude",
    "via",
    "officer_note",
)
#: Stays read at a time (bound parameters of one query).
_CHUNK = 500


def _presence(p: Person) -> str:
    if p.answer in ("safe", "help"):
        return "confirmed"
    return "estimated" if p.recipient.dates_cover else "registered"


def stays_of(db: Session, people: Sequence[Person]) -> dict[int, Registration]:
    """Return the stays (registrations) the people of a list were found by, by id."""
    ids = sorted({p.recipient.registration_id for p in people if p.recipient.registration_id})
    out: dict[int, Registration] = {}
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        out.update(
            (r.id, r) for r in db.scalars(select(Registration).where(Registration.id.in_(chunk)))
        )
    return out


def export_rows(
    people: Sequence[Person], stays: dict[int, Registration] | None = None
) -> list[dict[str, Any]]:
    """Return the rows of the evacuation list: each person, then their stay's companions."""
    stays = stays or {}
    rows: list[dict[str, Any]] = []
    for group, p in enumerate(people, 1):
        stay = stays.get(p.recipient.registration_id or 0)
        person = {
            "group": group,
            "role": "citizen",
            "name": p.recipient.name,
            "relation": "",
            "companion_of": "",
            "email": p.recipient.email,
            "phone": p.recipient.phone,
            "address": stay.address if stay else "",
            "city": p.recipient.city,
            "answer": p.answer or "",
            "presence": _presence(p),
            "note": p.note,
            "latitude": "" if p.latitude is None else f"{p.latitude:.5f}",
            "longitude": "" if p.longitude is None else f"{p.longitude:.5f}",
            "via": p.via,
            "officer_note": p.recipient.officer_note,
        }
        rows.append(person)
        for companion in (stay.companions or []) if stay else []:
            rows.append(
                person
                | {
                    "role": "companion",
                    "name": str(companion.get("name") or ""),
                    "relation": str(companion.get("relation") or ""),
                    "companion_of": p.recipient.name,
                    "email": "",
                    "note": "",
                    "via": "",
                    "officer_note": "",
                }
            )
    return rows


def evacuation_rows(db: Session, people: Sequence[Person]) -> list[dict[str, Any]]:
    """Return the rows of the evacuation list of these people, with their stays' companions."""
    return export_rows(people, stays_of(db, people))


def evacuation_csv(rows: list[dict[str, Any]]) -> str:
    """Return the evacuation list as CSV (UTF-8 with a BOM so spreadsheets read Cyrillic)."""
    return to_csv(
        EXPORT_COLUMNS, ([row.get(k, "") for k in EXPORT_COLUMNS] for row in rows), bom=True
    )


def evacuation_html(crisis: Crisis, rows: list[dict[str, Any]], *, lang: str) -> str:
    """Return the printable evacuation list (also used by `elshi crisis export`)."""
    return (
        environment(lang)
        .get_template("crisis/evacuation.html")
        .render(
            lang=lang,
            crisis=crisis,
            rows=rows,
            groups=len({r["group"] for r in rows}),
            area=service.describe_area(crisis.area, lambda m: i18n.gettext(lang, m)),
        )
    )
