"""Citizens link their Telegram chat for crisis alerts: a signed start link, the bot's webhook
(checked by Telegram's secret header), /stop; forged, expired and foreign links are refused."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from elshi.app import create_app
from elshi.consulate.models import Citizen
from elshi.crisis import telegram
from elshi.db import Database
from elshi.settings import Settings
from tests.consulate.support import PASSWORD, citizen
from tests.speak.platforms import TOKENS, PlatformServer

SECRET = "webhook-secret-0123456789"


@pytest.fixture
def bot(settings: Settings) -> Iterator[PlatformServer]:
    server = PlatformServer().start()
    settings.telegram_bot_username = "@elshi_consulate_bot"
    settings.telegram_webhook_secret = SECRET
    settings.telegram_bot_token = TOKENS["telegram"]
    settings.telegram_api_url = f"{server.url}/telegram"
    yield server
    server.stop()


@pytest.fixture
def client(settings: Settings, db: Database, bot: PlatformServer) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=db)) as c:
        yield c


def _update(
    text: str, chat_id: int = 4242, lang: str = "ru", kind: str = "private"
) -> dict[str, Any]:
    return {
        "update_id": 1,
        "message": {
            "message_id": 7,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": kind},
            "from": {"id": chat_id, "is_bot": False, "first_name": "A", "language_code": lang},
            "text": text,
        },
    }


def _hook(client: TestClient, update: Any, secret: str = SECRET) -> Any:
    return client.post(
        "/c/telegram/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret}
    )


def _chat(db: Database, cid: int) -> str:
    with db.session() as s:
        row = s.get(Citizen, cid)
        assert row is not None
        return row.telegram_chat_id


def test_a_citizen_links_telegram_from_their_page_and_stops_it(
    client: TestClient, db: Database, bot: PlatformServer
) -> None:
    with db.session() as s:
        cid = citizen(s, "tg@example.org")
    page = client.get("/consulate/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    r = client.post(
        "/consulate/login",
        data={"email": "tg@example.org", "password": PASSWORD, "csrf_token": token[1]},
        follow_redirects=True,
    )
    assert r.status_code == 200
    link = re.search(
        r'id="telegram-link" href="https://t\.me/elshi_consulate_bot\?start=([\w-]+)"', r.text
    )
    assert link, r.text[:2000]
    start = link[1]
    assert len(start) <= 64 and re.fullmatch(r"[A-Za-z0-9_-]+", start)

    linked = _hook(client, _update(f"/start {start}"))
    assert linked.status_code == 200 and linked.json()["outcome"] == "linked"
    assert _chat(db, cid) == "4242"
    assert bot.posts["telegram"][-1]["chat_id"] == "4242"
    assert "/stop" in bot.posts["telegram"][-1]["text"]
    assert 'id="telegram-state"' in client.get("/consulate/home").text

    stopped = _hook(client, _update("/stop"))
    assert stopped.json()["outcome"] == "stopped" and _chat(db, cid) == ""
    assert "больше не получает" in bot.posts["telegram"][-1]["text"]


def test_bad_updates_and_links_change_nothing(
    client: TestClient, db: Database, settings: Settings, bot: PlatformServer
) -> None:
    with db.session() as s:
        cid = citizen(s, "tg2@example.org")
    good = telegram.link_token(settings, cid)
    assert _hook(client, _update(f"/start {good}"), secret="guess").status_code == 403
    assert client.post("/c/telegram/webhook", json=_update(f"/start {good}")).status_code == 403
    bad_json = client.post(
        "/c/telegram/webhook",
        content=b"{not json",
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"},
    )
    assert bad_json.status_code == 400
    assert _chat(db, cid) == ""

    forged = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    expired = telegram.link_token(settings, cid, now=time.time() - 3 * 86400)
    other_key = telegram.link_token(settings.model_copy(update={"secret_key": "x" * 40}), cid)
    for start in (forged, expired, other_key, "", "not-a-token", "A" * 300):
        r = _hook(client, _update(f"/start {start}".strip()))
        assert r.status_code == 200 and r.json()["outcome"] == "bad_link", start
        assert "недействительна" in bot.posts["telegram"][-1]["text"]
    assert _hook(client, _update(f"/start {good}", kind="group")).json()["outcome"] == "ignored"
    assert _hook(client, {"update_id": 2, "edited_message": {}}).json()["outcome"] == "ignored"
    assert _hook(client, [1, 2]).json()["outcome"] == "ignored"
    assert _chat(db, cid) == ""

    # One chat, one account: linking the chat to a second person moves it.
    with db.session() as s:
        cid2 = citizen(s, "tg3@example.org")
    assert _hook(client, _update(f"/start {good}")).json()["outcome"] == "linked"
    assert (
        _hook(client, _update(f"/start {telegram.link_token(settings, cid2)}")).json()["outcome"]
        == "linked"
    )
    with db.session() as s:
        chats = {i: c for i, c in s.execute(select(Citizen.id, Citizen.telegram_chat_id))}
    assert chats[cid] == "" and chats[cid2] == "4242"


def test_no_link_is_offered_without_a_bot(settings: Settings) -> None:
    assert telegram.link_url(settings.model_copy(update={"telegram_bot_username": ""}), 1) is None
    assert telegram.read_token(settings, telegram.link_token(settings, 77)) == 77


def test_a_reply_the_bot_api_refuses_waits_in_the_outbox(
    client: TestClient, db: Database, bot: PlatformServer, settings: Settings
) -> None:
    from datetime import timedelta

    from elshi.db import utcnow
    from elshi.notify.models import OutboxMessage
    from elshi.notify.outbox import deliver_due

    with db.session() as s:
        citizen(s, "tg2@example.org")
    bot.fail("telegram", "500")
    stopped = _hook(client, _update("/stop", chat_id=5151, lang="kk"))
    assert stopped.status_code == 200 and stopped.json()["outcome"] == "stopped"
    assert not [p for p in bot.posts["telegram"] if p["chat_id"] == "5151"]
    with db.session() as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.channel == "telegram")).one()
        assert row.status == "pending" and row.attempts == 1
        row.next_attempt_at = utcnow() - timedelta(seconds=1)
    assert deliver_due(db, settings=settings)["sent"] == 1
    (sent,) = [p for p in bot.posts["telegram"] if p["chat_id"] == "5151"]
    assert sent["text"] == telegram.REPLIES["stopped"]["kk"]
