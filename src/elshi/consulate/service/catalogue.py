"""The service catalogue of a mission: services, the officers' catalogue form, answers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, load_only

from elshi.accounts import service as accounts
from elshi.accounts.service import PermissionDenied, Principal
from elshi.consulate.models import (
    ServiceType,
)
from elshi.consulate.schemas import LANGS, ServiceSpec
from elshi.consulate.service import (
    ALL_LANGUAGES,
    BAD_CHOICE,
    BAD_CURRENCY,
    BAD_FEE,
    BAD_FIELD_MAX,
    BAD_FIELD_TYPE,
    BAD_NUMBER,
    BAD_SLUG,
    NEED_OPTIONS,
    SLUG_TAKEN,
    USED_TWICE,
    Invalid,
    NotFound,
    Problem,
    _gather,
    _invalid,
    _parse_date,
    clean_text,
)


def services(*, db: Session, mission_id: int, active_only: bool = True) -> list[ServiceType]:
    """Return a mission's service catalogue."""
    q = select(ServiceType).where(ServiceType.mission_id == mission_id)
    if active_only:
        q = q.where(ServiceType.active.is_(True))
    return list(db.scalars(q.order_by(ServiceType.id)))


def service_types(*, db: Session, ids: Iterable[int]) -> dict[int, ServiceType]:
    """Return the service types with these ids, by id."""
    wanted = set(ids)
    if not wanted:
        return {}
    return {t.id: t for t in db.scalars(select(ServiceType).where(ServiceType.id.in_(wanted)))}


def service_names(*, db: Session, mission_ids: Iterable[int] | None) -> dict[int, ServiceType]:
    """Return the service types of some missions (all for None) with only their names loaded."""
    q = select(ServiceType).options(
        load_only(ServiceType.id, ServiceType.mission_id, ServiceType.slug, ServiceType.names)
    )
    if mission_ids is not None:
        q = q.where(ServiceType.mission_id.in_(list(mission_ids)))
    return {t.id: t for t in db.scalars(q.order_by(ServiceType.mission_id, ServiceType.id))}


def get_service(*, db: Session, service_type_id: int) -> ServiceType:
    """Return an active service type, or raise NotFound."""
    row = db.get(ServiceType, service_type_id)
    if row is None or not row.active:
        raise NotFound(f"service {service_type_id}")
    return row


def upsert_service(*, db: Session, mission_id: int, spec: Mapping[str, Any]) -> ServiceType:
    """Create or replace a service type of a mission from a checked catalogue entry."""
    row = db.scalar(
        select(ServiceType).where(
            ServiceType.mission_id == mission_id, ServiceType.slug == spec["slug"]
        )
    )
    if row is None:
        row = ServiceType(mission_id=mission_id, slug=spec["slug"])
        db.add(row)
    for key in ("names", "fields", "documents", "steps", "fee_cents", "currency"):
        setattr(row, key, spec[key])
    row.needs_appointment = bool(spec.get("needs_appointment", True))
    row.active = bool(spec.get("active", True))
    db.flush()
    return row


FIELD_TYPES = ("text", "textarea", "date", "number", "select")
#: Empty rows the catalogue form offers for new fields, documents and steps.
BLANK_ROWS = 3
_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_FEE = re.compile(r"^\d{1,6}([.,]\d{1,2})?$")


def catalogue(*, db: Session, actor: Principal, mission_id: int) -> list[ServiceType]:
    """Return every service of a mission, the inactive ones too, for an editor of it."""
    if not actor.can("consulate.act", mission_id):
        raise PermissionDenied("consulate.act: needs role consular or admin at the mission")
    return services(db=db, mission_id=mission_id, active_only=False)


def _labels(raw: Mapping[str, Any], prefix: str, *, required: bool) -> dict[str, str] | None:
    """Read the kk/ru/en texts `<prefix>kk`...; None when all are empty and none is needed."""
    texts = {lang: clean_text(prefix + lang, raw.get(prefix + lang), max_len=200) for lang in LANGS}
    if not any(texts.values()) and not required:
        return None
    missing = [lang for lang, text in texts.items() if not text]
    if missing:
        raise _invalid(prefix + missing[0], ALL_LANGUAGES)
    return texts


def _rows(raw: Mapping[str, Any], letter: str) -> list[int]:
    """Return the row numbers of a repeated group (f0_..., f1_...) present in a form."""
    found = set()
    for key in raw:
        head, _, _rest = key.partition("_")
        if head[:1] == letter and head[1:].isdigit() and len(head) <= 4:
            found.add(int(head[1:]))
    return sorted(found)


def _blank(raw: Mapping[str, Any], prefix: str, keys: Iterable[str]) -> bool:
    return not any(str(raw.get(prefix + k) or "").strip() for k in keys)


def _field_row(raw: Mapping[str, Any], i: int) -> dict[str, Any] | None:
    p = f"f{i}_"
    if _blank(raw, p, ("name", "kk", "ru", "en", "options")):
        return None
    out, problems = _gather(
        [
            ("names", lambda: _labels(raw, p, required=True)),
            ("name", lambda: _identifier(p + "name", raw.get(p + "name"), _NAME)),
            ("type", lambda: _choice(p + "type", raw.get(p + "type") or "text", FIELD_TYPES)),
            ("max", lambda: _whole(p + "max", raw.get(p + "max") or "200", 1, 5000)),
        ]
    )
    options = [o.strip() for o in str(raw.get(p + "options") or "").split(",") if o.strip()]
    if out.get("type") == "select" and not options:
        problems.append(Problem(p + "options", NEED_OPTIONS))
    if problems:
        raise Invalid(*problems)
    return out | {"required": bool(raw.get(p + "required")), "options": options}


def _document_row(raw: Mapping[str, Any], i: int) -> dict[str, Any] | None:
    p = f"d{i}_"
    if _blank(raw, p, ("slug", "kk", "ru", "en")):
        return None
    out, problems = _gather(
        [
            ("names", lambda: _labels(raw, p, required=True)),
            ("slug", lambda: _identifier(p + "slug", raw.get(p + "slug"), _NAME)),
        ]
    )
    if problems:
        raise Invalid(*problems)
    return out | {"required": bool(raw.get(p + "required"))}


def _identifier(name: str, value: Any, pattern: re.Pattern[str]) -> str:
    text = clean_text(name, value, max_len=64, required=True)
    if not pattern.match(text):
        raise _invalid(name, BAD_SLUG)
    return text


def _choice(name: str, value: Any, choices: Iterable[str]) -> str:
    text = str(value).strip()
    if text not in choices:
        raise _invalid(name, BAD_FIELD_TYPE)
    return text


def _whole(name: str, value: Any, low: int, high: int) -> int:
    text = str(value).strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise _invalid(name, BAD_FIELD_MAX)
    return int(text)


def _fee(value: Any) -> int:
    text = str(value or "0").strip()
    if not _FEE.match(text):
        raise _invalid("fee", BAD_FEE)
    units, _, cents = text.replace(",", ".").partition(".")
    return int(units) * 100 + int((cents + "00")[:2])


def _currency(value: Any) -> str:
    text = str(value or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", text):
        raise _invalid("currency", BAD_CURRENCY)
    return text


def _repeated(
    raw: Mapping[str, Any], letter: str, parse: Callable[[Mapping[str, Any], int], Any]
) -> tuple[list[tuple[int, Any]], list[Problem]]:
    rows: list[tuple[int, Any]] = []
    problems: list[Problem] = []
    for i in _rows(raw, letter):
        try:
            row = parse(raw, i)
        except Invalid as exc:
            problems.extend(exc.problems)
            continue
        if row is not None:
            rows.append((i, row))
    return rows, problems


def _twice(rows: list[tuple[int, Any]], letter: str, key: str) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for i, row in rows:
        if row[key] in seen:
            problems.append(Problem(f"{letter}{i}_{key}", USED_TWICE))
        seen.add(row[key])
    return problems


def parse_catalogue_form(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check a catalogue form and return a service spec; Invalid names every bad field.

    The form has slug, name_kk/ru/en, fee, currency, needs_appointment and active, then rows:
    f<i>_name/type/required/max/kk/ru/en/options for form fields, d<i>_slug/required/kk/ru/en
    for documents and s<i>_kk/ru/en for steps. Empty rows are left out.
    """
    out, problems = _gather(
        [
            ("slug", lambda: _identifier("slug", raw.get("slug"), _SLUG)),
            ("names", lambda: _labels(raw, "name_", required=True)),
            ("fee_cents", lambda: _fee(raw.get("fee"))),
            ("currency", lambda: _currency(raw.get("currency"))),
        ]
    )
    fields, bad = _repeated(raw, "f", _field_row)
    problems += bad + _twice(fields, "f", "name")
    docs, bad = _repeated(raw, "d", _document_row)
    problems += bad + _twice(docs, "d", "slug")
    steps, bad = _repeated(raw, "s", lambda r, i: _labels(r, f"s{i}_", required=False))
    problems += bad
    if problems:
        raise Invalid(*problems)
    spec = ServiceSpec(
        **out,
        fields=[row for _, row in fields],
        documents=[row for _, row in docs],
        steps=[row for _, row in steps],
        needs_appointment=bool(raw.get("needs_appointment")),
        active=bool(raw.get("active")),
    )
    return spec.model_dump()


def catalogue_values(row: ServiceType | None) -> dict[str, str]:
    """Return the catalogue form's values for a service (or a new one), with empty rows."""
    values: dict[str, str] = {"currency": "EUR", "fee": "0", "active": "on"}
    values["needs_appointment"] = "on"
    fields: list[dict[str, Any]] = []
    docs: list[dict[str, Any]] = []
    steps: list[dict[str, str]] = []
    if row is not None:
        values = {
            "slug": row.slug,
            "fee": f"{row.fee_cents // 100}.{row.fee_cents % 100:02d}",
            "currency": row.currency,
            "needs_appointment": "on" if row.needs_appointment else "",
            "active": "on" if row.active else "",
        }
        values |= {f"name_{lang}": row.names.get(lang, "") for lang in LANGS}
        fields, docs, steps = row.fields, row.documents, row.steps
    for i, f in enumerate([*fields, *[{"required": True}] * BLANK_ROWS]):
        values |= {f"f{i}_{lang}": f.get("names", {}).get(lang, "") for lang in LANGS}
        values |= {
            f"f{i}_name": f.get("name", ""),
            f"f{i}_type": f.get("type", "text"),
            f"f{i}_required": "on" if f.get("required") else "",
            f"f{i}_max": str(f.get("max", 200)),
            f"f{i}_options": ", ".join(f.get("options", [])),
        }
    for i, d in enumerate([*docs, *[{"required": True}] * BLANK_ROWS]):
        values |= {f"d{i}_{lang}": d.get("names", {}).get(lang, "") for lang in LANGS}
        values |= {
            f"d{i}_slug": d.get("slug", ""),
            f"d{i}_required": "on" if d.get("required") else "",
        }
    for i, st in enumerate([*steps, *[{}] * BLANK_ROWS]):
        values |= {f"s{i}_{lang}": st.get(lang, "") for lang in LANGS}
    return values


def save_catalogue_entry(
    *,
    db: Session,
    actor: Principal,
    mission_id: int,
    service_type_id: int | None,
    raw: Mapping[str, Any],
) -> ServiceType:
    """Create a service, or change one, from the catalogue form; audited."""
    if not actor.can("consulate.act", mission_id):
        raise PermissionDenied("consulate.act: needs role consular or admin at the mission")
    current = None
    if service_type_id is not None:
        current = db.get(ServiceType, service_type_id)
        if current is None or current.mission_id != mission_id:
            raise NotFound(f"service {service_type_id}")
        raw = {**raw, "slug": current.slug}  # the id in URLs and requests stays
    spec = parse_catalogue_form(raw)
    if current is None and db.scalar(
        select(ServiceType.id).where(
            ServiceType.mission_id == mission_id, ServiceType.slug == spec["slug"]
        )
    ):
        raise _invalid("slug", SLUG_TAKEN)
    row = upsert_service(db=db, mission_id=mission_id, spec=spec)
    _audit_catalogue(db, actor, row, "changed" if current else "created")
    return row


def set_service_active(
    *, db: Session, actor: Principal, service_type_id: int, active: bool
) -> ServiceType:
    """Offer a service to applicants again, or stop offering it (its requests stay)."""
    row = db.get(ServiceType, service_type_id)
    if row is None:
        raise NotFound(f"service {service_type_id}")
    if not actor.can("consulate.act", row.mission_id):
        raise PermissionDenied("consulate.act: needs role consular or admin at the mission")
    row.active = active
    db.flush()
    _audit_catalogue(db, actor, row, "activated" if active else "deactivated")
    return row


def _audit_catalogue(db: Session, actor: Principal, row: ServiceType, what: str) -> None:
    accounts.audit_by(
        actor,
        db,
        "consulate.catalogue",
        "service_type",
        row.id,
        mission_id=row.mission_id,
        slug=row.slug,
        change=what,
    )


def parse_answers(
    service: ServiceType, raw: Mapping[str, Any], *, complete: bool
) -> dict[str, str]:
    """Check form answers against the service's field definitions (all required if complete)."""
    answers: dict[str, str] = {}
    problems: list[Problem] = []
    for spec in service.fields:
        name = str(spec["name"])
        try:
            value = clean_text(
                name,
                raw.get(name),
                max_len=int(spec.get("max", 500)),
                required=complete and bool(spec.get("required")),
            )
            kind = spec.get("type", "text")
            if value and kind == "date":
                _parse_date(name, value)
            elif value and kind == "number" and not re.fullmatch(r"\d{1,9}", value):
                raise _invalid(name, BAD_NUMBER)
            elif value and kind == "select" and value not in spec.get("options", []):
                raise _invalid(name, BAD_CHOICE)
            answers[name] = value
        except Invalid as exc:
            problems.extend(exc.problems)
    if problems:
        raise Invalid(*problems)
    return answers
