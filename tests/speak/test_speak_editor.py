"""The statement editor as a press officer uses it: a preview and a counter in words for
every channel (the server's figures are the ones speak.js shows), the approver's word-level
diff against the last approved version, approvals marked superseded after an edit, and a
plain message when no translation model is configured."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from elshi.db import Database
from elshi.settings import Settings
from elshi.speak import service
from elshi.speak.diff import Piece, word_diff
from elshi.web import i18n
from tests.speak.platforms import (
    COUNTING_SAMPLES,
    PlatformServer,
    every_channel,
    server_figure,
    signed_in,
    staff,
)

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
COUNT = re.compile(r'<li data-account="(\d+)" data-count="(\d+)" class="(\w+)">')


@pytest.fixture
def team(db: Database, settings: Settings, platforms: PlatformServer) -> dict[str, Any]:
    team = staff(db)
    every_channel(db, team, settings, platforms)
    return team


def _client(settings: Settings, db: Database, who: str) -> TestClient:
    client: TestClient = signed_in(settings, db, who)
    return client


def _post(client: TestClient, path: str, action: str, **data: str) -> Any:
    """Post one of the editor's forms (with the page's CSRF token); do not follow."""
    found = CSRF.search(client.get(path).text)
    assert found
    return client.post(path + action, data={"csrf_token": found[1], **data}, follow_redirects=False)


def _statement(db: Database, team: dict[str, Any], text: str, title: str = "Culture days") -> int:
    with db.session() as s:
        return service.create_statement(
            db=s,
            actor=team["drafter"],
            mission_id=team["mission_id"],
            title=title,
            lang="kk",
            text=text,
        ).id


def test_every_channel_shows_a_preview_and_a_counter_in_words(
    db: Database, settings: Settings, team: dict[str, Any]
) -> None:
    client = _client(settings, db, "drafter")
    figures: dict[str, dict[str, int]] = {}
    for name, text in COUNTING_SAMPLES.items():
        sid = _statement(db, team, text)
        page = client.get(f"/speak/{sid}").text
        shown = {int(a): int(n) for a, n, _ in COUNT.findall(page)}
        channels = ("x", "bluesky", "mastodon", "telegram", "facebook", "email", "web")
        figures[name] = {ch: shown[team[ch]] for ch in channels}
        for ch in channels:  # the page shows the channel's own function's figure
            assert figures[name][ch] == server_figure(db, team, ch, text), (name, ch)
        assert page.count('class="preview fits"') == 7  # one preview per channel
        assert f'<p class="body" dir="auto">{html.escape(text, quote=False)}</p>' in page
    # the rules, checked by hand on the samples
    url = "https://example.org/news/2026/12/culture-days-in-berlin?lang=kk"
    assert figures["urls"]["x"] == len("Толығырақ: ") + 23 + len(" және ") + 23
    assert figures["urls"]["mastodon"] == figures["urls"]["x"]
    assert figures["urls"]["bluesky"] == len(COUNTING_SAMPLES["urls"]) > 23 + len(url)
    chinese = COUNTING_SAMPLES["chinese"]
    assert figures["chinese"]["x"] == 2 * len(chinese)  # CJK weighs 2 on X
    assert figures["chinese"]["bluesky"] == figures["chinese"]["telegram"] == len(chinese)
    for name in ("cyrillic", "kazakh", "arabic"):
        assert figures[name]["x"] == len(COUNTING_SAMPLES[name])  # 1 each on X
    # a flag, a ZWJ family and a thumb with a skin tone are one character each on Bluesky,
    # two on X, and their UTF-16 units on Telegram
    assert figures["emoji"]["telegram"] == len(COUNTING_SAMPLES["emoji"].encode("utf-16-le")) // 2
    assert figures["emoji"]["bluesky"] < figures["emoji"]["x"] < figures["emoji"]["telegram"]
    # the subject lines: the statement's title by e-mail, the first line on the news page
    lined = _statement(db, team, "Бірінші жол.\nЕкінші жол.", "Тақырып")
    page = client.get(f"/speak/{lined}")
    assert '<p class="subject" dir="auto">Тақырып</p>' in page.text
    assert '<p class="subject" dir="auto">Бірінші жол.</p>' in page.text


def test_over_the_limit_is_said_in_words(
    db: Database, settings: Settings, team: dict[str, Any]
) -> None:
    client = _client(settings, db, "drafter")
    text = "Посольство Казахстана проводит дни культуры. " * 7  # 315 characters after strip
    sid = _statement(db, team, text)
    page = client.get(f"/speak/{sid}").text
    n = len(text.strip())
    over = i18n.gettext("en", "%(n)s of %(max)s characters: too long by %(over)s")
    assert over % {"n": n, "max": "280", "over": n - 280} in page
    assert over % {"n": n, "max": "300", "over": n - 300} in page
    assert i18n.gettext("en", "%(n)s of %(max)s characters") % {"n": n, "max": "500"} in page
    states = {int(a): state for a, _, state in COUNT.findall(page)}
    assert states[team["x"]] == states[team["bluesky"]] == "over"
    assert states[team["mastodon"]] == states[team["telegram"]] == "fits"
    assert 'aria-live="polite"' in page


def test_word_diff_marks_added_and_removed_words() -> None:
    assert word_diff("Бүгін Берлинде кездесу", "Ертең Берлинде үлкен кездесу") == [
        Piece("removed", "Бүгін"),
        Piece("added", "Ертең"),
        Piece("same", " Берлинде "),
        Piece("added", "үлкен "),
        Piece("same", "кездесу"),
    ]
    # Chinese is compared character by character: it has no spaces between words
    assert word_diff("文化日", "文化周") == [
        Piece("same", "文化"),
        Piece("removed", "日"),
        Piece("added", "周"),
    ]


def test_approver_sees_the_changes_since_the_last_approved_version(
    db: Database, settings: Settings, team: dict[str, Any]
) -> None:
    drafter, approver = _client(settings, db, "drafter"), _client(settings, db, "approver")
    sid = _statement(db, team, "Елшілік жұма күні <b>концерт</b> өткізеді.")
    path = f"/speak/{sid}"
    assert _post(drafter, path, "/submit").status_code == 303
    first = approver.get(path).text
    nothing_before = (
        "There is no earlier approved version of this statement: everything here is new."
    )
    assert i18n.gettext("en", nothing_before) in first
    assert _post(approver, path, "/decide", decision="approve").status_code == 303
    assert "superseded" not in approver.get(path).text

    # the drafter edits the approved text: it needs approval again, the approval is superseded
    edited = "Елшілік сенбі күні <b>концерт</b> өткізеді."
    assert _post(drafter, path, "/versions/kk", text=edited, headline="").status_code == 303
    with db.session() as s:
        st = service.get_statement(db=s, actor=team["drafter"], statement_id=sid)
        assert st.status == "draft" and st.approved_revision is None
        with pytest.raises(service.NotApproved):
            service.assert_publishable(db=s, statement=st)
    page = drafter.get(path).text
    assert '<li class="superseded">' in page
    assert i18n.gettext("en", "superseded: the text was edited after this approval") in page
    assert 'id="changes"' not in page  # shown once it is submitted again
    assert _post(drafter, path, "/submit").status_code == 303

    page = approver.get(path).text
    start = page.index('id="changes"')
    changes = page[start : page.index("</section>", start)]
    removed, added = i18n.gettext("en", "removed:"), i18n.gettext("en", "added:")
    assert f'<del><span class="visually-hidden">{removed} </span>жұма<span' in changes
    assert f'<ins><span class="visually-hidden">{added} </span>сенбі<span' in changes
    assert "&lt;b&gt;концерт&lt;/b&gt;" in changes and "<b>" not in changes  # escaped
    # in Russian the hidden words are Russian
    ru = approver.get(path + "?lang=ru").text
    assert i18n.gettext("ru", "removed:") in ru and i18n.gettext("ru", "removed:") != removed
    # approved again: the first approval stays superseded, the new one is not
    assert _post(approver, path, "/decide", decision="approve").status_code == 303
    assert approver.get(path).text.count('<li class="superseded">') == 1


def test_without_a_translation_model_the_page_says_so_and_copies_nothing(
    db: Database, settings: Settings, team: dict[str, Any]
) -> None:
    sid = _statement(db, team, "Елшілік жұма күні концерт өткізеді.")
    client = _client(settings, db, "drafter")
    path = f"/speak/{sid}"
    page = client.get(path).text
    assert 'id="no-model"' in page and "No translation model is configured" in page
    assert 'name="backend"' not in page
    r = _post(client, path, "/translate", source="kk", target="ru")
    assert r.status_code == 400
    said = (
        "No translation model is configured, so elshi cannot draft a translation: write the "
        "translation in the box and press the button again."
    )
    assert i18n.gettext("en", said) in r.text
    with db.session() as s:
        assert "ru" not in service.versions_of(db=s, statement_id=sid)  # nothing copied
    ru_text = "Посольство проводит концерт в пятницу."
    r = _post(
        client, path, "/translate", source="kk", target="ru", headline="Концерт", text=ru_text
    )
    assert r.status_code == 303
    with db.session() as s:
        ru = service.versions_of(db=s, statement_id=sid)["ru"]
        assert (ru.text, ru.headline) == (ru_text, "Концерт")
        assert ru.source_lang == "kk" and ru.translated_with is None and ru.reviewed_at is None
