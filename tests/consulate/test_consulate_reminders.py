"""Stay reminders: one e-mail per reason, over real SMTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from elshi import jobs
from elshi.consulate import service
from elshi.consulate.models import Citizen, Registration
from elshi.db import Database, utcnow
from elshi.settings import Settings
from tests.consulate.support import Sink, World, add_stay, citizen, link_in, world


@pytest.fixture
def w(db: Database) -> World:
    return world(db)


# ---------------------------------------------------------------------------- stay reminders


def test_stay_reminders_go_once_per_reason_over_smtp(
    db: Database, w: World, settings: Settings, smtp: Sink
) -> None:
    long_ago = utcnow() - timedelta(days=40)
    with db.session() as s:
        carol = citizen(s, "carol@example.org", "Carol Confirmed")
        dana = citizen(s, "dana@example.org", "Dana Gone")
        s.get(Citizen, w.bob).lang = "ru"  # type: ignore[union-attr]
        ending = add_stay(s, w.alice, w.a, 2, city="Potsdam")
        stale = add_stay(s, w.bob, w.b, 60, city="Lyon", created_at=long_ago)
        add_stay(s, carol, w.a, 60, created_at=long_ago, confirmed_at=utcnow() - timedelta(days=1))
        add_stay(s, dana, w.a, 2, status="cancelled")
    # The job queues each e-mail; the queue runs here at once and sends it over real SMTP.
    immediate = settings.model_copy(update={"queue_url": "memory://", "queue_immediate": True})
    rt = jobs.bind(immediate, db)
    assert rt.tasks["remind_stays"].call_local() == 2

    [alice_mail] = smtp.texts("alice@example.org")
    assert "Potsdam" in alice_mail and "confirm" in alice_mail
    assert link_in(alice_mail, "/consulate/home").endswith("/consulate/home#stays")
    [bob_mail] = smtp.texts("bob@example.org")
    assert "Lyon" in bob_mail and "Подтвердите" in bob_mail  # in the citizen's language
    assert smtp.texts("carol@example.org") == smtp.texts("dana@example.org") == []

    # Nothing new happened: no second e-mail for the same reason.
    assert rt.tasks["remind_stays"].call_local() == 0
    assert len(smtp.messages) == 2
    with db.session() as s:
        assert s.get(Registration, ending).reminded_at is not None  # type: ignore[union-attr]
        service.confirm_stay(db=s, citizen_id=w.bob, registration_id=stale)
    # Bob confirmed: he is asked again only after another unconfirmed period.
    with db.session() as s:
        later = utcnow() + timedelta(days=29)
        assert stale not in {r.id for r in _due(s, settings, later)}
        assert stale in {r.id for r in _due(s, settings, later + timedelta(days=2))}


def _due(s: Any, settings: Settings, now: Any) -> list[Registration]:
    return service.stays_to_remind(
        db=s,
        ending_days=settings.stay_reminder_ending_days,
        unconfirmed_days=settings.stay_reminder_unconfirmed_days,
        now=now,
    )


def test_ending_reminder_follows_an_earlier_unconfirmed_one(
    db: Database, w: World, settings: Settings
) -> None:
    now = utcnow()
    with db.session() as s:
        stay = add_stay(s, w.alice, w.a, 40, created_at=now - timedelta(days=31))
        assert [r.id for r in _due(s, settings, now)] == [stay]
        s.get(Registration, stay).reminded_at = now  # type: ignore[union-attr]
        assert _due(s, settings, now) == []
        # Three days before the end the citizen hears once more, then not again.
        near_end = now + timedelta(days=38)
        assert [r.id for r in _due(s, settings, near_end)] == [stay]
        s.get(Registration, stay).reminded_at = near_end  # type: ignore[union-attr]
        assert _due(s, settings, near_end + timedelta(days=1)) == []
        # A stay already over is left to expire.
        assert _due(s, settings, now + timedelta(days=41)) == []
