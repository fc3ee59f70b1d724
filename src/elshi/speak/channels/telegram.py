"""Telegram channel through the Bot API (sendMessage, editMessageText, deleteMessage)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from elshi.plugins import hookimpl
from elshi.speak.channels.base import (
    Channel,
    ChannelContext,
    ChannelError,
    Metrics,
    Outgoing,
    Sent,
    classify,
    json_body,
    request,
)
from elshi.speak.text import Limit

API_BASE = "https://api.telegram.org"
PREVIEW_BASE = "https://t.me"


class TelegramConfig(BaseModel):
    """Where to post."""

    chat_id: str = Field(
        description="The channel: @username for a public channel, or its numeric id "
        "(-100...). The bot must be an administrator allowed to post."
    )
    api_base: str = Field(
        default=API_BASE,
        description="Bot API server; change only for a local Bot API server or a test server.",
    )
    preview_base: str = Field(
        default=PREVIEW_BASE,
        description="Where public channel previews (view counts) are read from.",
    )
    languages: list[str] = Field(
        default_factory=list,
        description="Languages posted to this account (e.g. kk,ru); empty means every language.",
    )


class TelegramSecrets(BaseModel):
    """Credentials."""

    bot_token: str = Field(description="Bot token from @BotFather (123456:ABC...).")


class TelegramChannel(Channel):
    """A Telegram channel, posted to by a bot through the Bot API.

    Telegram has no idempotency key and a bot cannot read its channel's history, so a post
    interrupted mid-send is marked "unknown" for a person to check instead of being sent
    again. Views are read from the public web preview (t.me/s/<channel>) when the channel
    has a username.
    """

    slug = "telegram"
    title = "Telegram channel (Bot API)"
    Config = TelegramConfig
    Secrets = TelegramSecrets
    can_edit = True
    can_delete = True

    def limit(self, config: Any) -> Limit:
        """Telegram allows 4,096 characters (UTF-16 code units) per message."""
        return Limit(4096, "utf16")

    def _call(
        self, ctx: ChannelContext, config: TelegramConfig, token: str, method: str, **body: Any
    ) -> Any:
        url = f"{config.api_base.rstrip('/')}/bot{token}/{method}"
        resp = request(ctx, "POST", url, json=body)
        data = json_body(resp)
        if resp.status_code == 200 and isinstance(data, dict) and data.get("ok"):
            return data.get("result")
        description = (data.get("description") if isinstance(data, dict) else None) or resp.text
        message = f"Telegram {method}: {description}"[:500]
        params = data.get("parameters") if isinstance(data, dict) else None
        retry_after = params.get("retry_after") if isinstance(params, dict) else None
        if resp.status_code == 400 and "too long" in description.lower():
            raise ChannelError("too_long", message, status=400)
        if resp.status_code == 404 and "not found" in description.lower():
            # The Bot API answers 404 Not Found for an unknown or revoked bot token.
            raise ChannelError("expired_token", message, status=404)
        raise classify(resp, message, retry_after=retry_after)

    def publish(
        self, ctx: ChannelContext, config: TelegramConfig, secrets: TelegramSecrets, post: Outgoing
    ) -> Sent:
        """Send the text as a message to the channel."""
        result = self._call(
            ctx, config, secrets.bot_token, "sendMessage", chat_id=config.chat_id, text=post.text
        )
        mid = str(result["message_id"])
        username = (result.get("chat") or {}).get("username") or (
            config.chat_id[1:] if config.chat_id.startswith("@") else None
        )
        url = f"{config.preview_base.rstrip('/')}/{username}/{mid}" if username else None
        return Sent(external_id=mid, url=url, extra={"username": username})

    def edit(
        self,
        ctx: ChannelContext,
        config: TelegramConfig,
        secrets: TelegramSecrets,
        external_id: str,
        text: str,
    ) -> None:
        """Replace a sent message's text."""
        self._call(
            ctx,
            config,
            secrets.bot_token,
            "editMessageText",
            chat_id=config.chat_id,
            message_id=int(external_id),
            text=text,
        )

    def delete(
        self,
        ctx: ChannelContext,
        config: TelegramConfig,
        secrets: TelegramSecrets,
        external_id: str,
    ) -> None:
        """Delete a sent message (Telegram allows it within 48 hours for bots)."""
        self._call(
            ctx,
            config,
            secrets.bot_token,
            "deleteMessage",
            chat_id=config.chat_id,
            message_id=int(external_id),
        )

    def metrics(
        self,
        ctx: ChannelContext,
        config: TelegramConfig,
        secrets: TelegramSecrets,
        sent: Sent,
        publication_id: int,
    ) -> Metrics | None:
        """Read views and reactions from the channel's public web preview."""
        from elshi.connectors.telegram import map_web_message, parse_preview_page

        username = sent.extra.get("username")
        if not username:
            return None
        url = f"{config.preview_base.rstrip('/')}/s/{username}"
        resp = request(ctx, "GET", url, params={"before": int(sent.external_id) + 1})
        if resp.status_code != 200:
            raise classify(resp, f"Telegram preview: HTTP {resp.status_code}")
        for mid, markup in parse_preview_page(resp.text).messages:
            if mid is not None and str(mid) == sent.external_id:
                mapped = map_web_message({"html": markup, "channel": username})
                if mapped is None:
                    return None
                m = mapped.metrics
                return Metrics(views=m.get("views"), reactions=m.get("reactions"), raw=m)
        return None


@hookimpl
def elshi_channels() -> list[type[Channel]]:
    """Register the Telegram channel."""
    return [TelegramChannel]
