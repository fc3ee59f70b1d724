"""The evidence of a group as a PDF: its accounts, a timeline and the co-actions with both posts
and the seconds between them, in the reader's language, Cyrillic, Arabic and Chinese posts as
written; printed by Chromium, audited like the ZIP, seen only through the viewer's missions."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from elshi.accounts.models import AuditEvent
from elshi.app import create_app
from elshi.coordination import evidence, printout, service
from elshi.db import Database
from elshi.listen.models import Author
from elshi.settings import Settings, load_settings
from tests.conftest import service_missing
from tests.crisis.support import pdf_text
from tests.workspace_helpers import add_post, add_source, sign_in, three_missions

START = datetime(2026, 4, 2, 9, 0, tzinfo=UTC)
HANDLES = ("qazaq_one", "qazaq_two", "qazaq_three")
#: One round per script: each account posts the round's text two seconds after the other.
TEXTS = (
    ("ru", "Голосуйте за Қазақстан сегодня #выборы"),
    ("ar", "صوتوا الآن من أجل السلام"),
    ("zh", "现在就去投票支持和平"),
)


@pytest.fixture
def world(db: Database) -> dict[str, Any]:
    w: dict[str, Any] = {}
    with db.session() as s:
        w["missions"] = three_missions(s)
        src = add_source(s, "Alpha feed", w["missions"]["alpha"])
        authors = []
        for h in HANDLES:
            a = Author(platform="telegram", handle=h, name=h.replace("_", " ").title())
            s.add(a)
            s.flush()
            authors.append(a)
        for r, (lang, text) in enumerate(TEXTS):
            for i, a in enumerate(authors):
                add_post(
                    s,
                    text,
                    START + timedelta(days=r, seconds=2 * i),
                    lang=lang,
                    platform="telegram",
                    source_id=src.id,
                    author=a,
                )
    service.update(db, params=service.Params(window=60, narrow=5))
    with db.engine.connect() as conn:
        (group,) = service.groups(conn)
    w["group"] = group["id"]
    return w


def _client(settings: Settings, db: Database, **values: Any) -> TestClient:
    conf = load_settings(**{**settings.model_dump(), **values})
    return TestClient(create_app(conf, db=db))


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with _client(settings, db) as c:
        yield c


def _exports(db: Database) -> list[AuditEvent]:
    with db.session() as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "coordination.export")))
        s.expunge_all()
    return rows


def test_the_printout_has_accounts_timeline_and_pairs_in_every_script(
    db: Database, world: dict[str, Any]
) -> None:
    with db.session() as s:
        seen = evidence.seen_group(
            db=s, group_id=world["group"], mission_ids=frozenset({world["missions"]["alpha"]})
        )
        assert seen is not None
        html = printout.evidence_html(seen, lang="kk", now=START + timedelta(days=5))
    assert '<html lang="kk">' in html
    assert "Дәлелдер: үйлестірілген" in html  # the title in Kazakh
    for h in HANDLES:
        assert f"@{h}" in html
    for _, text in TEXTS:
        assert text in html
    # The fonts asked for cover Cyrillic, Arabic and Chinese.
    assert '"Noto Sans CJK SC"' in html and '"Noto Sans Arabic"' in html
    # The timeline: one day per round, three pairs of three accounts each.
    timeline = html.split('id="timeline"', 1)[1].split("</table>", 1)[0]
    for r in range(3):
        day = (START + timedelta(days=r)).date().isoformat()
        assert re.search(
            rf"<td>{day}</td><td class=\"num\">(\d+)</td><td class=\"num\">3</td>", timeline
        )
    rows = html.split('id="coactions"', 1)[1].split("</table>", 1)[0].count("<tr><td>")
    assert rows == len(seen.pairs) > 0
    # Every pair shows both posts and the seconds between them (2 or 4 here).
    gaps = re.findall(r'<td class="num">(\d+)</td></tr>', html.split('id="coactions"', 1)[1])
    assert sorted(set(gaps)) == ["2", "4"] and len(gaps) == len(seen.pairs)


def test_a_broken_printer_says_why_and_records_no_download(
    settings: Settings, db: Database, world: dict[str, Any], tmp_path: Path
) -> None:
    with _client(settings, db, chromium_path=str(tmp_path / "no-chromium")) as c:
        sign_in(c, "alpha@example.org")
        got = c.get(f"/coordination/groups/{world['group']}/evidence.pdf")
    assert got.status_code == 503 and "chromium not found" in got.text
    assert _exports(db) == []


def test_other_missions_get_no_pdf(client: TestClient, world: dict[str, Any]) -> None:
    sign_in(client, "bravo@example.org")
    assert client.get(f"/coordination/groups/{world['group']}/evidence.pdf").status_code == 404
    client.post("/logout")
    sign_in(client, "alpha@example.org")
    page = client.get(f"/coordination/groups/{world['group']}").text
    assert f'href="/coordination/groups/{world["group"]}/evidence.pdf"' in page


@pytest.mark.browser
def test_the_pdf_prints_every_script_and_is_audited(
    client: TestClient, db: Database, settings: Settings, world: dict[str, Any]
) -> None:
    if not Path(settings.chromium_path).is_file():
        service_missing("chromium", FileNotFoundError(settings.chromium_path))
    sign_in(client, "alpha@example.org")
    got = client.get(f"/coordination/groups/{world['group']}/evidence.pdf", params={"lang": "ru"})
    assert got.status_code == 200 and got.content[:4] == b"%PDF"
    assert got.headers["content-disposition"].endswith(
        f'filename="elshi-group-{world["group"]}-evidence.pdf"'
    )
    # The text as the PDF's fonts map their glyphs back: shaped Arabic comes as presentation
    # forms in visual order, and some glyphs as the compatibility characters they share
    # (NFKC folds both back); a glyph code the map leaves out is dropped. A script without a
    # font would print as empty boxes, which map to no letter.
    text = unicodedata.normalize("NFKC", pdf_text(got.content).replace("\ufffd", ""))
    flat = re.sub(r"\s+", "", text)
    assert "Доказательства" in flat and "qazaq_one" in flat
    assert re.sub(r"\s+", "", TEXTS[0][1]) in flat
    assert TEXTS[2][1] in flat
    assert set(TEXTS[1][1].replace(" ", "")) <= set(flat)
    (event,) = _exports(db)
    assert event.object_id == str(world["group"]) and event.detail["format"] == "pdf"
    assert event.detail["accounts"] == len(HANDLES)
