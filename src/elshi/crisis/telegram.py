"""Link a citizen's Telegram chat to their e-consulate account, for crisis alerts.

The citizen's page shows a t.me link to the mission's bot whose start parameter is a short
signed token (citizen id, expiry, HMAC; only the characters Telegram allows). When they press
Start, Telegram sends "/start <token>" to elshi's webhook, which checks Telegram's secret
header and the token, then keeps the chat id. "/stop" unlinks the chat.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import struct
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from elshi import crypto, notify
from elshi.consulate.models import Citizen
from elshi.notify import Message
from elshi.settings import Settings

log = logging.getLogger(__name__)

LINK_DAYS = 2
_MAC_BYTES = 16

REPLIES = {
    "linked": {
        "en": "Done: the consulate's emergency alerts will reach you here. Send /stop to end this.",
        "ru": "Готово: экстренные оповещения консульства будут приходить сюда. "
        "Отправьте /stop, чтобы отключить.",
        "kk": "Дайын: консулдықтың шұғыл хабарламалары осында келеді. "
        "Тоқтату үшін /stop жіберіңіз.",
    },
    "stopped": {
        "en": "This chat no longer receives the consulate's emergency alerts.",
        "ru": "Этот чат больше не получает экстренные оповещения консульства.",
        "kk": "Бұл чат енді консулдықтың шұғыл хабарламаларын алмайды.",
    },
    "bad_link": {
        "en": "This link is not valid or has expired: open your e-consulate page and press "
        "the Telegram link again.",
        "ru": "Ссылка недействительна или устарела: откройте свою страницу электронного "
        "консульства и снова нажмите ссылку на Telegram.",
        "kk": "Сілтеме жарамсыз немесе ескірген: электрондық консулдықтағы бетіңізді ашып, "
        "Telegram сілтемесін қайта басыңыз.",
    },
}


def _key(settings: Settings) -> bytes:
    return crypto.purpose_key(settings, crypto.TELEGRAM_LINK)


def link_token(settings: Settings, citizen_id: int, *, now: float | None = None) -> str:
    """A start parameter for t.me/<bot>?start=...: 32 characters of A-Z, a-z, 0-9, _ and -."""
    expires = int((now if now is not None else time.time()) + LINK_DAYS * 86400)
    body = struct.pack(">II", citizen_id, expires)
    mac = hmac.new(_key(settings), body, hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")


def read_token(settings: Settings, token: str, *, now: float | None = None) -> int | None:
    """The citizen id in a valid, unexpired token; None for anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) != 8 + _MAC_BYTES:
        return None
    body, mac = raw[:8], raw[8:]
    keys = crypto.verify_keys(settings, crypto.TELEGRAM_LINK)
    if not any(
        hmac.compare_digest(mac, hmac.new(k, body, hashlib.sha256).digest()[:_MAC_BYTES])
        for k in keys
    ):
        return None
    citizen_id, expires = struct.unpack(">II", body)
    if expires < (now if now is not None else time.time()):
        return None
    return int(citizen_id)


def link_url(settings: Settings, citizen_id: int) -> str | None:
    """The t.me link a citizen presses, or None when no bot is set up."""
    if not (settings.telegram_bot_username and settings.telegram_webhook_secret):
        return None
    name = settings.telegram_bot_username.lstrip("@")
    return f"https://t.me/{name}?start={link_token(settings, citizen_id)}"


@dataclass(frozen=True)
class Handled:
    """What an update did: linked, stopped, bad_link or ignored; the chat to answer."""

    outcome: str
    chat_id: str = ""
    lang: str = "en"


def _field(message: dict[str, Any], name: str, kind: type) -> Any:
    value = message.get(name)
    return value if isinstance(value, kind) else None


def handle_update(db: Session, settings: Settings, update_: dict[str, Any]) -> Handled:
    """Apply one Bot API update: /start <token> links the chat, /stop unlinks it."""
    message = update_.get("message") if isinstance(update_, dict) else None
    if not isinstance(message, dict):
        return Handled("ignored")
    chat: dict[str, Any] = _field(message, "chat", dict) or {}
    chat_id = str(chat.get("id", "")) if chat.get("type", "private") == "private" else ""
    text: str = _field(message, "text", str) or ""
    if not chat_id or not text.startswith("/"):
        return Handled("ignored")
    user: dict[str, Any] = _field(message, "from", dict) or {}
    lang = str(user.get("language_code") or "en")[:2]
    lang = lang if lang in ("kk", "ru", "en") else "en"
    command, _, arg = text.partition(" ")
    if command in ("/stop", "/stop@" + settings.telegram_bot_username.lstrip("@")):
        db.execute(
            update(Citizen).where(Citizen.telegram_chat_id == chat_id).values(telegram_chat_id="")
        )
        return Handled("stopped", chat_id, lang)
    if command != "/start":
        return Handled("ignored")
    citizen_id = read_token(settings, arg.strip())
    citizen = db.get(Citizen, citizen_id) if citizen_id is not None else None
    if citizen is None or not citizen.is_active:
        return Handled("bad_link", chat_id, lang)
    # One chat belongs to one account: a chat linked before to someone else moves here.
    db.execute(
        update(Citizen).where(Citizen.telegram_chat_id == chat_id).values(telegram_chat_id="")
    )
    citizen.telegram_chat_id = chat_id
    return Handled("linked", chat_id, citizen.lang if citizen.lang in REPLIES["linked"] else lang)


def reply(db: Session, settings: Settings, handled: Handled) -> None:
    """Tell the chat what happened: the reply goes into the outbox with the change it reports,
    so it is sent (and retried) after the commit, and not at all when the change rolls back."""
    if handled.outcome not in REPLIES or not handled.chat_id or not settings.telegram_bot_token:
        return
    text = REPLIES[handled.outcome].get(handled.lang, REPLIES[handled.outcome]["en"])
    notify.enqueue(db, Message(medium="telegram", to=handled.chat_id, text=text))
