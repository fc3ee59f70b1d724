"""The evacuation list: one row per person to move (each citizen, then the companions of their
stay), with the stay's address, in the CSV and in the PDF printed by Chromium."""

from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from elshi.accounts.models import AuditEvent
from elshi.consulate.models import Registration
from elshi.crisis import service
from elshi.crisis.export import EXPORT_COLUMNS
from elshi.crisis.models import Recipient
from elshi.db import Database
from elshi.settings import Settings
from tests.crisis.support import officer_client, pdf_text, populate, sent, staff_login, team

FAMILY = [
    {"name": "Айгерім Нұрланқызы", "relation": "daughter"},
    {"name": "Marat Nurlanov", "relation": ""},
]


def _crisis_with_companions(db: Database) -> tuple[int, list[Recipient]]:
    """Four citizens in Istanbul: the first travels with two companions, the second with one
    (and has left the area), the others alone; each stay has an address."""
    t = team(db)
    populate(db, t.mission_id, 4)
    _, cid = sent(db, t)
    with db.session() as s:
        people = list(
            s.scalars(select(Recipient).where(Recipient.crisis_id == cid).order_by(Recipient.id))
        )
        for n, person in enumerate(people):
            stay = s.get(Registration, person.registration_id)
            assert stay is not None
            stay.address = f"Barbaros Bulvarı {n + 10}, Beşiktaş"
            stay.companions = {0: FAMILY, 1: [{"name": "Left Behind", "relation": "spouse"}]}.get(
                n, []
            )
        for rid, answer, note in ((people[0].id, "help", "Need a car"), (people[1].id, "left", "")):
            service.record_checkin(
                s, crisis_id=cid, recipient_id=rid, answer=answer, note=note, nonce=f"n{rid:08d}"
            )
        s.flush()
        s.expunge_all()
    return cid, people


def test_the_csv_has_a_row_per_person_with_companions_and_addresses(
    db: Database, settings: Settings, cli: Any, tmp_path: Path
) -> None:
    cid, people = _crisis_with_companions(db)
    client = officer_client(settings, db)
    staff_login(client, "duty1@mfa.example")
    got = client.get(f"/crisis/{cid}/evacuation.csv")
    assert got.status_code == 200
    reader = csv.DictReader(io.StringIO(got.text.lstrip("\ufeff")))
    assert tuple(reader.fieldnames or ()) == EXPORT_COLUMNS
    rows = list(reader)
    first, other, alone = people[0], people[2], people[3]
    # The one who left is not on it, nor their companion: 3 citizens + 2 companions.
    assert len(rows) == 5
    assert [(r["group"], r["role"], r["name"]) for r in rows] == [
        ("1", "citizen", first.name),
        ("1", "companion", "Айгерім Нұрланқызы"),
        ("1", "companion", "Marat Nurlanov"),
        ("2", "citizen", other.name),
        ("3", "citizen", alone.name),
    ]
    assert [r["relation"] for r in rows[:3]] == ["", "daughter", ""]
    assert [r["companion_of"] for r in rows] == ["", first.name, first.name, "", ""]
    # The stay's address and the citizen's phone reach the whole group.
    assert {r["address"] for r in rows[:3]} == {"Barbaros Bulvarı 10, Beşiktaş"}
    assert rows[3]["address"] == "Barbaros Bulvarı 12, Beşiktaş"
    assert {r["phone"] for r in rows[:3]} == {first.phone} and first.phone
    # The group's answer is the citizen's; the note and e-mail are the citizen's own.
    assert [r["answer"] for r in rows[:3]] == ["help"] * 3
    assert [r["note"] for r in rows[:3]] == ["Need a car", "", ""]
    assert rows[1]["email"] == "" and rows[0]["email"] == first.email
    assert "Left Behind" not in got.text
    with db.session() as s:
        log = s.scalars(select(AuditEvent).where(AuditEvent.action == "crisis.export")).one()
        assert {"registration.address", "registration.companions"} <= set(log.detail["fields"])
    # The command line writes the same file.
    out = tmp_path / "list.csv"
    assert cli("crisis", "export", str(cid), str(out)).exit_code == 0
    assert out.read_bytes() == got.content


@pytest.mark.browser
def test_the_pdf_lists_companions_under_their_citizen_with_the_address(
    db: Database, settings: Settings
) -> None:
    assert shutil.which(settings.chromium_path), "chromium prints the evacuation list"
    cid, people = _crisis_with_companions(db)
    client = officer_client(settings, db)
    client.headers["accept-language"] = "ru"
    staff_login(client, "duty1@mfa.example")
    got = client.get(f"/crisis/{cid}/evacuation.pdf?lang=ru")
    assert got.status_code == 200 and got.content[:4] == b"%PDF"
    # Words come in pieces (a font change splits them): compare without white space.
    text = re.sub(r"\s+", "", pdf_text(got.content))

    def at(words: str) -> int:
        where = text.find(re.sub(r"\s+", "", words))
        assert where >= 0, words
        return where

    # The headcount counts the companions; the groups are the citizens.
    assert at("Список на эвакуацию") < at("5 человек") < at("3 группы") < at(people[0].name)
    # Each companion follows their citizen, marked as such, before the next citizen.
    first, following = at(people[0].name + "+90"), at(people[2].name + "+90")
    assert first < at("Barbaros Bulvarı 10, Beşiktaş") < at("нужна помощь") < following
    assert at("Need a car") < at("↳ Айгерім Нұрланқызы daughter группа: " + people[0].name)
    assert at("↳ Айгерім Нұрланқызы") < at("↳ Marat Nurlanov спутник") < following
    assert at("Barbaros Bulvarı 12, Beşiktaş") > following
    assert "LeftBehind" not in text
