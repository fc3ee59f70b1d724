"""Telegram through the Bot API: sendMessage for people's chats, and `call` for any method."""

from __future__ import annotations

import json
from typing import Any

import httpx

from elshi.notify.message import Message, Sender, SendError, retry_after_header
from elshi.settings import Settings


def call(
    http: httpx.Client,
    *,
    api_url: str,
    token: str,
    method: str,
    files: dict[str, Any] | None = None,
    **body: Any,
) -> Any:
    """Call one Bot API method and return its `result`; raise SendError on failure.

    With files the call is multipart/form-data (plain fields as strings, objects as JSON, as
    the Bot API asks), else JSON. A failure to connect sent nothing ("network"); one after
    the request left may have sent it ("unsure"). 429 and 5xx may be tried again, after
    `parameters.retry_after` when Telegram gives one.
    """
    url = f"{api_url.rstrip('/')}/bot{token}/{method}"
    host = httpx.URL(url).host
    try:
        if files:
            fields = {
                k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                for k, v in body.items()
            }
            resp = http.post(url, data=fields, files=files)
        else:
            resp = http.post(url, json=body)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise SendError(
            f"Telegram {method}: cannot connect to {host}: {exc}", retry=True, kind="network"
        ) from exc
    except httpx.HTTPError as exc:
        raise SendError(
            f"Telegram {method}: {host}: {type(exc).__name__}: {exc}", retry=False, kind="unsure"
        ) from exc
    try:
        data = resp.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    if resp.status_code == 200 and data.get("ok"):
        return data.get("result")
    description = str(data.get("description") or resp.text or f"HTTP {resp.status_code}")
    params = data.get("parameters")
    after = params.get("retry_after") if isinstance(params, dict) else None
    retry_after = float(after) if after else retry_after_header(resp.headers.get("retry-after"))
    status = resp.status_code
    if status == 429:
        kind = "rate"
    elif status in (401, 403) or (status == 404 and "not found" in description.lower()):
        kind = "auth"  # the Bot API answers 404 Not Found for an unknown or revoked token
    elif status >= 500:
        kind = "server"
    else:
        kind = "refused"
    raise SendError(
        f"Telegram {method}: {description}"[:500],
        retry=status == 429 or status >= 500,
        retry_after=retry_after,
        kind=kind,  # type: ignore[arg-type]
        status=status,
    )


class TelegramSender(Sender):
    """Sends to people's chats with elshi's bot (ELSHI_TELEGRAM_*) over one keep-alive client."""

    medium = "telegram"

    def __init__(self, settings: Settings, *, http: httpx.Client | None = None) -> None:
        self.settings = settings
        self.own = http is None
        self.http = http or httpx.Client(
            timeout=settings.http_timeout, headers={"User-Agent": settings.user_agent}
        )

    def send(self, message: Message) -> str:
        """Send the text to the chat `to`; return Telegram's message id."""
        token = self.settings.telegram_bot_token
        if not token:
            raise SendError(
                "Telegram: ELSHI_TELEGRAM_BOT_TOKEN is not set", retry=False, kind="config"
            )
        body: dict[str, Any] = {"chat_id": message.to, "text": message.text}
        if not message.preview_links:
            body["disable_web_page_preview"] = True
        result = call(
            self.http,
            api_url=self.settings.telegram_api_url,
            token=token,
            method="sendMessage",
            **body,
        )
        return str((result or {}).get("message_id", ""))

    def close(self) -> None:
        """Close the HTTP client (when this sender opened it)."""
        if self.own:
            self.http.close()


def send(message: Message, settings: Settings) -> str:
    """Send one Telegram message; raise SendError on failure."""
    with TelegramSender(settings) as sender:
        return sender.send(message)
