"""Make and send digests: HTML from the page templates, PDF through headless Chromium, e-mail."""

from __future__ import annotations

import logging
import subprocess
import tempfile
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from elshi import notify
from elshi.db import Database
from elshi.digest import service
from elshi.digest.models import DigestRun
from elshi.notify import Attachment, Message, SendError, email

__all__ = ["PdfError", "SendError", "make_and_send", "render_html", "render_pdf"]
from elshi.settings import Settings
from elshi.web.i18n import gettext

log = logging.getLogger(__name__)
PDF_TIMEOUT = 120


class PdfError(RuntimeError):
    """Chromium is missing or could not print the digest; the message says which."""


def render_html(digest: service.Digest, *, standalone: bool = True) -> str:
    """Render a digest as a self-contained HTML document in its language."""
    from elshi.web.pages import entity_name
    from elshi.web.templating import environment

    template = environment(digest.lang).get_template("digest_doc.html")
    return template.render(
        d=digest,
        lang=digest.lang,
        standalone=standalone,
        entity_name=lambda e: entity_name(e, digest.lang),
    )


def render_pdf(html: str, *, settings: Settings) -> bytes:
    """Print HTML to PDF with headless Chromium (system fonts; no network)."""
    chromium = Path(settings.chromium_path)
    if not chromium.is_file():
        raise PdfError(f"chromium not found at {chromium} (set ELSHI_CHROMIUM_PATH)")
    with tempfile.TemporaryDirectory(prefix="elshi-digest-") as tmp:
        src, out = Path(tmp) / "digest.html", Path(tmp) / "digest.pdf"
        src.write_text(html, encoding="utf-8")
        cmd = [
            str(chromium),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp}/profile",
            "--no-pdf-header-footer",
            f"--print-to-pdf={out}",
            src.as_uri(),
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=PDF_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            raise PdfError(f"chromium did not finish within {PDF_TIMEOUT} s") from exc
        if not out.is_file() or out.stat().st_size == 0:
            tail = done.stderr.decode(errors="replace")[-300:]
            raise PdfError(f"chromium exited {done.returncode} without a PDF: {tail}")
        return out.read_bytes()


def subject(digest: service.Digest) -> str:
    """Return the e-mail subject of a digest."""
    title = gettext(digest.lang, "Daily digest")
    return f"[elshi] {title}: {digest.mission.name}, {digest.day.isoformat()}"


def digest_text(digest: service.Digest) -> str:
    """Return the plain-text part of the digest e-mail."""
    lines = [subject(digest), ""]
    for w in digest.watches:
        average = gettext(digest.lang, "week average")
        lines.append(f"- {w.watch.name}: {w.posts} ({average} {w.week_mean:.0f})")
    lines += ["", f"{gettext(digest.lang, 'Alerts')}: {len(digest.alerts)}"]
    return "\n".join(lines)


def digest_message(digest: service.Digest, *, to: list[str], pdf: bytes | None) -> Message:
    """Return the digest's e-mail (HTML body, PDF attached when given)."""
    name = f"elshi-digest-{digest.mission.slug}-{digest.day}-{digest.lang}.pdf"
    return Message(
        medium="email",
        to=", ".join(to),
        subject=subject(digest),
        text=digest_text(digest),
        html=render_html(digest),
        attachments=(Attachment(name, "application/pdf", pdf),) if pdf else (),
    )


def send_digest(
    digest: service.Digest, *, settings: Settings, to: list[str], pdf: bytes | None
) -> None:
    """E-mail a digest now (the `elshi digest` command; the daily task uses the outbox)."""
    email.send(digest_message(digest, to=to, pdf=pdf), settings)


def make_and_send(
    db: Database,
    *,
    settings: Settings,
    mission_slug: str,
    lang: str,
    day: date | None = None,
    pdf: bool = True,
) -> dict[str, object]:
    """Make one mission's digest for a day and e-mail it to the mission's readers, once.

    The e-mail goes into the outbox in the same transaction that records the digest as made,
    so it is sent (and retried) even when the queue or the mail server is down for a while. A
    digest whose PDF cannot be printed is not recorded: the next hour tries again.
    """
    with db.session() as s:
        mission = service.get_mission(db=s, slug=mission_slug)
        when = day or service.latest_day(db=s, mission_id=mission.id)
        out: dict[str, object] = {"mission": mission_slug, "lang": lang, "day": str(when)}
        made = s.scalar(
            select(DigestRun.id).where(
                DigestRun.mission_id == mission.id, DigestRun.lang == lang, DigestRun.day == when
            )
        )
        if made is not None:
            return out | {"skipped": "already made"}
        digest = service.build(db=s, mission=mission, day=when, lang=lang)
        to = service.readers(db=s, mission_id=mission.id)
        mission_id = mission.id
    try:
        attached = render_pdf(render_html(digest), settings=settings) if pdf and to else None
    except PdfError as exc:
        log.warning("digest %s/%s/%s failed: %s", mission_slug, lang, when, exc)
        return out | {"recipients": len(to), "error": str(exc)}
    with db.session() as s:
        try:
            with s.begin_nested():
                s.add(DigestRun(mission_id=mission_id, lang=lang, day=when, recipients=len(to)))
                s.flush()
        except IntegrityError:  # another worker made it meanwhile
            return out | {"skipped": "already made"}
        if to:
            notify.enqueue(s, digest_message(digest, to=to, pdf=attached), mission_id=mission_id)
    return out | {"recipients": len(to), "error": None}


def daily(db: Database, *, settings: Settings) -> list[dict[str, object]]:
    """Make and send the digests of every mission with watch lists in every configured language."""
    langs = [x.strip() for x in settings.digest_languages.split(",") if x.strip()]
    with db.session() as s:
        slugs = [m.slug for m in service.missions_with_watches(db=s)]
    return [
        make_and_send(db, settings=settings, mission_slug=slug, lang=lang)
        for slug in slugs
        for lang in langs
    ]


def runs(db: Database) -> list[DigestRun]:
    """Return the digests made, newest first."""
    with db.session() as s:
        return list(s.scalars(select(DigestRun).order_by(DigestRun.id.desc()).limit(100)))
