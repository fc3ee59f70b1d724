"""`elshi consulate ...`: what an administrator needs for the e-consulate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter, ValidationError

from elshi.cli.common import Exit, console, database, fail, get_settings
from elshi.consulate.schemas import DEFAULT_CATALOGUE, ServiceSpec

app = typer.Typer(
    help="The e-consulate: service catalogues, retention purge, virus scanner.",
    no_args_is_help=True,
)

MissionArg = Annotated[str, typer.Argument(help="Mission slug (see: elshi missions list).")]


def _mission_id(session: Any, slug: str) -> int:
    from elshi.missions import service as missions

    mission = missions.get_mission(db=session, slug=slug)
    if mission is None:
        raise fail(f"no mission {slug!r} (see: elshi missions list)", Exit.NOT_FOUND)
    if mission.kind == "hq":
        raise fail("headquarters serves no citizens: choose an embassy or consulate", Exit.USAGE)
    return mission.id


def _store(slug: str, specs: list[ServiceSpec]) -> int:
    from elshi.accounts.service import audit
    from elshi.consulate import service

    db = database(get_settings())
    with db.session() as s:
        mission_id = _mission_id(s, slug)
        for spec in specs:
            service.upsert_service(db=s, mission_id=mission_id, spec=spec.model_dump())
        audit(
            db=s,
            action="consulate.catalogue",
            object_type="mission",
            object_id=mission_id,
            actor_label="cli",
            mission_id=mission_id,
            detail={"services": [x.slug for x in specs]},
        )
    return len(specs)


@app.command("seed")
def seed(mission: MissionArg) -> None:
    """Give a mission the default catalogue (visa, passport, certificate, legalisation, return)."""

    n = _store(mission, DEFAULT_CATALOGUE)
    console.print(f"{mission}: {n} services in the catalogue", highlight=False)


@app.command("import")
def import_catalogue(
    mission: MissionArg,
    file: Annotated[Path, typer.Argument(help="JSON file: a list of services.")],
) -> None:
    """Add or replace services of a mission from a JSON file (same shape as `export`)."""

    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise fail(f"{file}: no such file", Exit.NOT_FOUND) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise fail(f"{file}: not JSON: {exc}", Exit.USAGE) from None
    try:
        specs = TypeAdapter(list[ServiceSpec]).validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise fail(
            f"{file}: entry {where}: {first['msg']} ({exc.error_count()} problems, nothing stored)",
            Exit.USAGE,
        ) from None
    n = _store(mission, specs)
    console.print(f"{mission}: {n} services imported", highlight=False)


@app.command("export")
def export_catalogue(mission: MissionArg) -> None:
    """Print a mission's catalogue as JSON (edit it and `import` it back)."""
    from elshi.consulate import service

    db = database(get_settings())
    with db.session() as s:
        rows = service.services(db=s, mission_id=_mission_id(s, mission), active_only=False)
        data = [
            ServiceSpec.model_validate(
                {
                    "slug": r.slug,
                    "names": r.names,
                    "fields": r.fields,
                    "documents": r.documents,
                    "steps": r.steps,
                    "fee_cents": r.fee_cents,
                    "currency": r.currency,
                    "needs_appointment": r.needs_appointment,
                    "active": r.active,
                }
            ).model_dump()
            for r in rows
        ]
    print(json.dumps(data, ensure_ascii=False, indent=2))


@app.command("purge")
def purge() -> None:
    """Expire ended stays and delete what is past its retention period (also runs nightly)."""
    from elshi.consulate.flows import purge_expired

    settings = get_settings()
    db = database(settings)
    with db.session() as s:
        counts = purge_expired(db=s, settings=settings)
    for key, value in counts.items():
        console.print(f"{key}: {value}", highlight=False)


@app.command("scanner")
def scanner() -> None:
    """Show which virus scanner checks uploads (exit 1 when the configured one is missing)."""
    from elshi.plugins import UnknownPlugin, pick_scanner, virus_scanners

    settings = get_settings()
    try:
        active = pick_scanner(settings)
    except UnknownPlugin as exc:
        raise fail(str(exc.args[0]), Exit.USAGE) from None
    for slug, cls in virus_scanners().items():
        mark = "*" if slug == active.slug else " "
        here = "available" if cls.available(settings) else "not available here"
        console.print(f"{mark} {slug}: {cls.title} ({here})", highlight=False)
    if not active.available(settings):
        raise fail(f"ELSHI_VIRUS_SCANNER={settings.virus_scanner}: {active.title} is not available")
