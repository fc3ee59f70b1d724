"""The evacuation list as a file: its rows, as CSV or as printable HTML (for a PDF).

Used by the officers' export page and by `elshi crisis export`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from elshi.crisis import service
from elshi.crisis.models import Crisis
from elshi.crisis.welfare import Person
from elshi.web.csv_export import to_csv
from elshi.web.templating import environment

EXPORT_COLUMNS = (
    "name",
    "email",
    "phone",
    "city",
    "answer",
    "presence",
    "note",
    "latitude",
    "longitude",
    "via",
    "officer_note",
)


def _presence(p: Person) -> str:
    if p.answer in ("safe", "help"):
        return "confirmed"
    return "estimated" if p.recipient.dates_cover else "registered"


def export_rows(people: Sequence[Person]) -> list[dict[str, Any]]:
    """Return one row per person of the evacuation list, with the file's columns."""
    return [
        {
            "name": p.recipient.name,
            "email": p.recipient.email,
            "phone": p.recipient.phone,
            "city": p.recipient.city,
            "answer": p.answer or "",
            "presence": _presence(p),
            "note": p.note,
            "latitude": "" if p.latitude is None else f"{p.latitude:.5f}",
            "longitude": "" if p.longitude is None else f"{p.longitude:.5f}",
            "via": p.via,
            "officer_note": p.recipient.officer_note,
        }
        for p in people
    ]


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
        .render(lang=lang, crisis=crisis, rows=rows, area=service.describe_area(crisis.area))
    )
