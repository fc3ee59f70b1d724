"""`elshi crisis ...`: preview, create, approve (a second officer), send, status, export, stop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from elshi.cli.common import Exit, console, database, fail, get_settings

app = typer.Typer(
    help="Crisis mode: reach every citizen in an area and know who is safe.",
    no_args_is_help=True,
)

AsOpt = Annotated[
    str,
    typer.Option(
        "--as",
        help="E-mail of the officer acting (their roles apply; the approver must be another "
        "officer than the author).",
    ),
]
CrisisArg = Annotated[int, typer.Argument(help="Crisis id (see: elshi crisis status).")]
BroadcastArg = Annotated[int, typer.Argument(help="Broadcast id (see: elshi crisis status ID).")]


def _db() -> Any:
    settings = get_settings()
    return settings, database(settings)


def _actor(s: Any, email: str) -> Any:
    from elshi.accounts import service as accounts

    user = accounts.get_user(db=s, email=email)
    principal = accounts.load_principal(db=s, user_id=user.id, via="cli") if user else None
    if principal is None:
        raise fail(f"no staff user {email!r} (see: elshi users list)", Exit.NOT_FOUND)
    return principal


def _problem(exc: Exception) -> typer.Exit:
    from elshi.errors import Invalid

    if isinstance(exc, Invalid):
        return fail("; ".join(str(p) for p in exc.problems), Exit.USAGE)
    return fail(str(exc), Exit.NOT_FOUND)


def _messages(path: Path | None, text: list[str], sms: list[str], settings: Any) -> Any:
    from elshi.crisis import service

    raw: dict[str, str] = {}
    if path is not None:
        data = json.loads(path.read_text(encoding="utf-8"))
        for lang, m in data.items():
            for key in ("subject", "text", "sms"):
                raw[f"{key}_{lang}"] = str(m.get(key, ""))
    for item in text:
        lang, _, value = item.partition(":")
        raw[f"text_{lang.strip()}"] = value.strip()
    for item in sms:
        lang, _, value = item.partition(":")
        raw[f"sms_{lang.strip()}"] = value.strip()
    return service.parse_messages(
        raw, max_segments=settings.crisis_sms_max_segments, base_url=settings.base_url
    )


@app.command("create")
def create(
    mission: Annotated[str, typer.Argument(help="Mission slug.")],
    title: Annotated[str, typer.Argument(help="Title of the crisis.")],
    as_: AsOpt,
    countries: Annotated[str, typer.Option(help="Country codes, comma-separated.")] = "",
    regions: Annotated[str, typer.Option(help="Regions, comma-separated.")] = "",
    cities: Annotated[str, typer.Option(help="Cities, comma-separated.")] = "",
    polygon: Annotated[str, typer.Option(help="Polygon 'lat lon; lat lon; ...'.")] = "",
    circle: Annotated[str, typer.Option(help="Circle 'lat lon km'.")] = "",
    audience: Annotated[
        str, typer.Option(help="present (registration dates cover today) or everyone.")
    ] = "present",
    messages: Annotated[
        Path | None,
        typer.Option(help='JSON file {"kk": {"subject": .., "text": .., "sms": ..}, ...}.'),
    ] = None,
    text: Annotated[
        list[str], typer.Option(help="A message as LANG:TEXT (repeat per language).")
    ] = [],  # noqa: B006
    sms: Annotated[
        list[str], typer.Option(help="An SMS text as LANG:TEXT (else the message is used).")
    ] = [],  # noqa: B006
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show who would be reached.")
    ] = False,
) -> None:
    """Show who would be reached, then save a broadcast awaiting a second officer's approval."""
    from elshi.accounts.service import Principal
    from elshi.crisis import service
    from elshi.errors import Invalid, NotFound
    from elshi.missions import service as missions

    settings, db = _db()
    with db.session() as s:
        actor = _actor(s, as_)
        m = missions.get_mission(db=s, slug=mission)
        if m is None:
            raise _problem(NotFound(f"no mission {mission!r}"))
        try:
            area = service.parse_area(
                {
                    "countries": countries,
                    "regions": regions,
                    "cities": cities,
                    "polygon": polygon,
                    "circle": circle,
                }
            )
            msgs = _messages(messages, text, sms, settings)
            seen = service.preview(
                db=s,
                actor=Principal.system(),
                mission_id=m.id,
                area=area,
                audience=audience,
                messages=msgs,
                base_url=settings.base_url,
            )
            console.print(
                f"{seen.people:,} people ({seen.present_by_dates:,} present by their dates); "
                f"e-mail {seen.channels['email']:,}, Telegram {seen.channels['telegram']:,}, "
                f"SMS {seen.channels['sms']:,}",
                highlight=False,
            )
            for lang, seg in seen.segments.items():
                console.print(
                    f"SMS {lang}: {seg.segments} segment(s), {seg.units} characters, "
                    f"{seg.encoding}",
                    highlight=False,
                )
            if dry_run:
                return
            b = service.create_crisis(
                db=s,
                actor=actor,
                mission_id=m.id,
                title=title,
                area=area,
                audience=audience,
                messages=msgs,
            )
        except (Invalid, NotFound) as exc:
            raise _problem(exc) from None
        console.print(
            f"crisis {b.crisis_id}, broadcast {b.id}: waiting for a second officer "
            f"(elshi crisis approve {b.id} --as OTHER@...)",
            highlight=False,
        )


def _as_officer(as_: str, step: str, **ids: int) -> Any:
    """Run the crisis service's `step` as the officer `as_`; a refusal ends the command."""
    from elshi.crisis import service
    from elshi.errors import Invalid, NotFound

    _, db = _db()
    try:
        with db.session() as s:
            return getattr(service, step)(db=s, actor=_actor(s, as_), **ids)
    except (Invalid, NotFound) as exc:
        raise _problem(exc) from None


@app.command("approve")
def approve(broadcast: BroadcastArg, as_: AsOpt) -> None:
    """Approve a broadcast as the second officer."""
    _as_officer(as_, "approve", broadcast_id=broadcast)
    console.print(f"broadcast {broadcast} approved; send it with: elshi crisis send {broadcast}")


@app.command("send")
def send(broadcast: BroadcastArg, as_: AsOpt) -> None:
    """Queue an approved broadcast for delivery (workers send it)."""
    from elshi import jobs

    counts = _as_officer(as_, "send", broadcast_id=broadcast)
    jobs.bind(get_settings())
    for channel, n in counts.items():
        if n:
            jobs.enqueue("crisis_deliver", broadcast, channel)
    console.print("queued: " + ", ".join(f"{c} {n:,}" for c, n in counts.items()), highlight=False)


@app.command("cancel")
def cancel(broadcast: BroadcastArg, as_: AsOpt) -> None:
    """Cancel a broadcast (after sending: its pending deliveries stop)."""
    n = _as_officer(as_, "cancel", broadcast_id=broadcast)
    console.print(f"broadcast {broadcast} cancelled; {n:,} pending deliveries stopped")


@app.command("kill")
def kill(crisis: CrisisArg, as_: AsOpt) -> None:
    """Kill switch: stop every pending delivery of a crisis and its escalation."""
    n = _as_officer(as_, "kill", crisis_id=crisis)
    console.print(f"crisis {crisis} halted; {n:,} pending deliveries stopped")


@app.command("close")
def close(crisis: CrisisArg, as_: AsOpt) -> None:
    """Close a crisis: check-in links then say it is over."""
    _as_officer(as_, "close", crisis_id=crisis)
    console.print(f"crisis {crisis} closed")


@app.command("status")
def status(
    crisis: Annotated[
        int | None, typer.Argument(help="Crisis id; none lists every crisis.")
    ] = None,
) -> None:
    """List crises, or show one crisis's welfare counts and deliveries."""
    from elshi.accounts.service import Principal
    from elshi.crisis import service
    from elshi.crisis.models import Broadcast

    _, db = _db()
    with db.session() as s:
        if crisis is None:
            for c in service.list_crises(db=s, actor=Principal.system()):
                console.print(
                    f"{c.id}\t{c.status}{' halted' if c.halted else ''}\t{c.title}\t"
                    f"{service.describe_area(c.area)}",
                    highlight=False,
                )
            return
        w = service.welfare(db=s, crisis_id=crisis)
        for b in s.query(Broadcast).filter(Broadcast.crisis_id == crisis).order_by(Broadcast.id):
            console.print(f"broadcast {b.id}: {b.status}", highlight=False)
    console.print(
        f"people {w.people:,}: safe {w.safe:,}, need help {w.help:,}, left {w.left:,}, "
        f"not answered {w.not_answered:,}, not reached {w.not_reached:,}, "
        f"call list {w.call_list:,}",
        highlight=False,
    )
    console.print(
        f"presence: confirmed {w.confirmed_present:,}, estimated {w.estimated_present:,} "
        f"(registration dates only), registered but dates elsewhere {w.registered_only:,}",
        highlight=False,
    )
    for ch, counts in w.deliveries.items():
        console.print(
            f"{ch}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())),
            highlight=False,
        )


@app.command("export")
def export(
    crisis: CrisisArg,
    out: Annotated[Path, typer.Argument(help="File to write: .csv or .pdf.")],
    lang: Annotated[str, typer.Option(help="Language of the PDF: kk, ru or en.")] = "en",
) -> None:
    """Write the evacuation list (everyone not known to have left) as CSV or PDF."""
    from elshi.accounts.service import audit
    from elshi.crisis import service
    from elshi.crisis.export import evacuation_csv, evacuation_html, evacuation_rows
    from elshi.crisis.models import Crisis

    settings, db = _db()
    with db.session() as s:
        c = s.get(Crisis, crisis)
        if c is None:
            raise fail(f"no crisis {crisis}", Exit.NOT_FOUND)
        people = service.people(db=s, crisis_id=crisis, kind="evacuation")
        rows = evacuation_rows(s, people)
        audit(
            db=s,
            action="crisis.export",
            object_type="crisis",
            object_id=crisis,
            actor_label="cli",
            detail={"file": out.suffix} | service.disclosure(people, "export"),
        )
        if out.suffix == ".csv":
            out.write_text(evacuation_csv(rows), encoding="utf-8")
        elif out.suffix == ".pdf":
            from elshi.digest.flows import PdfError, render_pdf

            try:
                out.write_bytes(render_pdf(evacuation_html(c, rows, lang=lang), settings=settings))
            except PdfError as exc:
                raise fail(str(exc)) from None
        else:
            raise fail("the file must end in .csv or .pdf", Exit.USAGE)
    console.print(f"wrote {out} ({len(rows):,} people)", highlight=False)


@app.command("tick")
def tick() -> None:
    """Reconcile, escalate and queue due deliveries now (the worker does this every minute)."""
    from elshi import jobs
    from elshi.crisis import flows

    settings, db = _db()
    found = flows.tick(db, settings)
    jobs.bind(get_settings())
    for broadcast_id, channel in found["due"]:
        jobs.enqueue("crisis_deliver", broadcast_id, channel)
    console.print(json.dumps({k: v for k, v in found.items() if k != "due"}), highlight=False)
