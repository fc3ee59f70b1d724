"""The service catalogue on the web: create, edit, deactivate; bad input; access."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from elshi.accounts.models import AuditEvent
from elshi.consulate import service
from elshi.consulate.models import ServiceType
from elshi.db import Database
from elshi.missions import service as missions
from elshi.settings import Settings
from tests.consulate.support import World, _staff, world
from tests.consulate.test_consulate_web import (
    _citizen_login,
    _client,
    _csrf,
    _staff_login,
)


@pytest.fixture
def w(db: Database) -> World:
    return world(db)


# ---------------------------------------------------------------------------- catalogue on the web


NEW_SERVICE = {
    "slug": "apostille",
    "name_kk": "Апостиль",
    "name_ru": "Апостиль",
    "name_en": "Apostille",
    "fee": "12,50",
    "currency": "eur",
    "active": "on",
    "f0_name": "document_title",
    "f0_type": "text",
    "f0_max": "120",
    "f0_required": "on",
    "f0_kk": "Құжат атауы",
    "f0_ru": "Название документа",
    "f0_en": "Document title",
    "f1_name": "",  # an empty row is left out
    "d0_slug": "original",
    "d0_required": "on",
    "d0_kk": "Түпнұсқа",
    "d0_ru": "Оригинал",
    "d0_en": "Original",
    "s0_kk": "Тексеру",
    "s0_ru": "Проверка",
    "s0_en": "Check",
}


def _post_catalogue(client: Any, data: dict[str, str], path: str = "/consular/catalogue") -> Any:

    token = _csrf(client, "/consular/catalogue")
    return client.post(path, data={"csrf_token": token, **data}, follow_redirects=False)


def test_officer_creates_edits_and_deactivates_a_service(
    db: Database, w: World, settings: Settings
) -> None:

    client = _client(settings, db)
    _staff_login(client, "officer.a@mfa.example")
    page = client.get("/consular/catalogue")
    assert page.status_code == 200 and "/consular/catalogue/new" in page.text
    assert client.get("/consular/catalogue/new").status_code == 200

    r = _post_catalogue(client, {**NEW_SERVICE, "mission_id": str(w.a)})
    assert r.status_code == 303, r.text[:800]
    with db.session() as s:
        row = s.scalar(select(ServiceType).where(ServiceType.slug == "apostille"))
        assert row is not None and row.mission_id == w.a
        assert (row.fee_cents, row.currency, row.needs_appointment) == (1250, "EUR", False)
        assert [f["name"] for f in row.fields] == ["document_title"]
        assert row.fields[0]["max"] == 120 and row.fields[0]["names"]["ru"] == "Название документа"
        assert [d["slug"] for d in row.documents] == ["original"]
        assert row.steps == [{"kk": "Тексеру", "ru": "Проверка", "en": "Check"}]
        apostille = row.id
        assert s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.action == "consulate.catalogue", AuditEvent.object_id == str(apostille)
            )
        )

    # Edit: the form shows the stored values; a new fee and a second field are kept, the id
    # (slug) stays whatever the form says.
    form = client.get(f"/consular/catalogue/{apostille}").text
    assert 'value="12.50"' in form and 'value="document_title"' in form
    edited = NEW_SERVICE | {
        "slug": "renamed",
        "fee": "20",
        "f1_name": "copies",
        "f1_type": "select",
        "f1_options": "1, 2, 3",
        "f1_kk": "Көшірмелер",
        "f1_ru": "Копии",
        "f1_en": "Copies",
        "service_type_id": str(apostille),
    }
    assert _post_catalogue(client, edited).status_code == 303
    with db.session() as s:
        row = s.get(ServiceType, apostille)
        assert row is not None and row.slug == "apostille" and row.fee_cents == 2000
        assert row.fields[1] == {
            "name": "copies",
            "names": {"kk": "Көшірмелер", "ru": "Копии", "en": "Copies"},
            "type": "select",
            "required": False,
            "max": 200,
            "options": ["1", "2", "3"],
        }

    # Deactivated, it leaves the citizens' catalogue; activated, it comes back.
    r = _post_catalogue(client, {}, f"/consular/catalogue/{apostille}/deactivate")
    assert r.status_code == 303
    visitor = _client(settings, db)
    _citizen_login(visitor, "alice@example.org")
    assert "Apostille" not in visitor.get(f"/consulate/services?mission={w.a}").text
    assert (
        _post_catalogue(client, {}, f"/consular/catalogue/{apostille}/activate").status_code == 303
    )
    assert "Apostille" in visitor.get(f"/consulate/services?mission={w.a}").text


def test_catalogue_form_refuses_bad_input_whole(db: Database, w: World, settings: Settings) -> None:

    client = _client(settings, db)
    _staff_login(client, "officer.a@mfa.example")
    with db.session() as s:
        before = s.scalar(select(func.count()).select_from(ServiceType))
    bad = NEW_SERVICE | {
        "mission_id": str(w.a),
        "slug": "Bad Slug!",
        "name_ru": "",
        "fee": "ten euros",
        "currency": "EURO",
        "f1_name": "document_title",  # the same name twice
        "f1_kk": "a",
        "f1_ru": "b",
        "f1_en": "c",
        "f2_name": "choice",
        "f2_type": "select",  # a list without choices
        "f2_kk": "a",
        "f2_ru": "b",
        "f2_en": "c",
        "f3_name": "x",
        "f3_max": "99999",
        "f3_kk": "<script>\x07</script>",
        "f4_name": "y",
        "f4_type": "script",
        "f4_kk": "a",
        "f4_ru": "b",
        "f4_en": "c",
    }
    r = _post_catalogue(client, bad)
    assert r.status_code == 400
    for message in (
        service.BAD_SLUG,
        service.ALL_LANGUAGES,
        service.BAD_FEE,
        service.BAD_CURRENCY,
        service.BAD_FIELD_TYPE,
        service.USED_TWICE,
        service.NEED_OPTIONS,
        service.BAD_FIELD_MAX,
        service.CONTROL_CHARS,
    ):
        assert message.replace("'", "&#39;") in r.text, message
    for field in ("slug", "name_ru", "fee", "currency", "f4_type", "f1_name", "f2_options"):
        assert f'id="{field}-error"' in r.text or f'name="{field}"' in r.text
    assert 'value="ten euros"' in r.text  # what was typed is shown again
    # An id the mission already uses is refused rather than overwriting that service.
    r = _post_catalogue(client, NEW_SERVICE | {"mission_id": str(w.a), "slug": "visa"})
    assert r.status_code == 400 and service.SLUG_TAKEN in r.text
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ServiceType)) == before


def test_catalogue_access_by_role_and_mission(db: Database, w: World, settings: Settings) -> None:
    officer = _client(settings, db)
    _staff_login(officer, "officer.a@mfa.example")
    # Mission B's service: not found for an officer of A, and no creating at B either.
    assert officer.get(f"/consular/catalogue/{w.visa_b}").status_code == 404
    edit_b = NEW_SERVICE | {"service_type_id": str(w.visa_b)}
    assert _post_catalogue(officer, edit_b).status_code == 404
    assert _post_catalogue(officer, NEW_SERVICE | {"mission_id": str(w.b)}).status_code == 403
    r = _post_catalogue(officer, {}, f"/consular/catalogue/{w.visa_b}/deactivate")
    assert r.status_code == 404
    # No form token: refused.
    r = officer.post(f"/consular/catalogue/{w.visa_a}/deactivate", follow_redirects=False)
    assert r.status_code == 400
    # The ambassador reads requests but does not edit the catalogue.
    ambassador = _client(settings, db)
    _staff_login(ambassador, "ambassador.a@mfa.example")
    assert ambassador.get("/consular/catalogue").status_code == 403
    assert ambassador.get(f"/consular/catalogue/{w.visa_a}").status_code == 403
    r = _post_catalogue(ambassador, {}, f"/consular/catalogue/{w.visa_a}/deactivate")
    assert r.status_code == 403
    # HQ's admin edits any mission's catalogue.
    admin = _client(settings, db)
    _staff_login(admin, "admin@mfa.example")
    assert admin.get(f"/consular/catalogue?mission={w.b}").status_code == 200
    with db.session() as s:
        assert all(t.active for t in service.services(db=s, mission_id=w.a, active_only=False))


def test_officer_pages_without_a_consular_mission_answer_not_found(
    db: Database, settings: Settings
) -> None:
    # Only headquarters exists: the admin may see every mission, and none serves citizens.
    with db.session() as s:
        hq = missions.ensure_hq(db=s)
        _staff(s, "admin@mfa.example", hq.id, "admin")
    admin = _client(settings, db)
    _staff_login(admin, "admin@mfa.example")
    for path in ("/consular/catalogue", "/consular/catalogue/new", "/consular/slots"):
        r = admin.get(path)
        assert r.status_code == 404, path
        assert "Not found, or not yours to see." in r.text
    assert admin.get("/consular/appointments?day=2026-03-02").status_code == 404
