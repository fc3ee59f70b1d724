"""Telegram channel through the Bot API (sendMessage, editMessageText, deleteMessage)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from elshi.notify import SendError
from elshi.notify import telegram as bot
from elshi.plugins import hookimpl
from elshi.speak.channels.base import (
    Channel,
    ChannelConfig,
    ChannelContext,
    ChannelError,
    Metrics,
    NotSupported,
    Outgoing,
    Sent,
    classify,
    from_send_error,
    media_refused,
    request,
)
from elshi.speak.media import ImageFile
from elshi.speak.text import Limit

API_BASE = "https://api.telegram.org"
#: A photo's caption may have 1,024 characters; a longer text goes in a message after it.
CAPTION_LIMIT = 1024
PREVIEW_BASE = "https://t.me"


class TelegramConfig(ChannelConfig):
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


class TelegramSecrets(BaseModel):
    """Credentials."""

    bot_token: str = Field(description="Bot token from @BotFather (123456:ABC...).")


class TelegramChannel(Channel):
    """A Telegram channel, posted to by a bot through the Bot API.

    Telegram has no idempotency key and a bot cannot read its channel's history. A post
    interrupted mid-send is looked for on the public web preview (t.me/s/<channel>) when the
    channel has a username; a private channel's is marked "unknown" for a person to check
    instead of being sent again. Views are read from the same preview.
    """

    slug = "telegram"
    title = "Telegram channel (Bot API)"
    Config = TelegramConfig
    Secrets = TelegramSecrets
    can_edit = True
    can_delete = True

    images = (
        "one picture by sendPhoto (multipart) with the text as its caption; several as an "
        "album by sendMediaGroup; a text over 1,024 characters follows in its own message."
    )

    #: Telegram allows 4,096 characters (UTF-16 code units) per message.
    length = Limit(4096, "utf16")

    def _call(
        self,
        ctx: ChannelContext,
        config: TelegramConfig,
        token: str,
        method: str,
        files: dict[str, Any] | None = None,
        **body: Any,
    ) -> Any:
        try:
            return bot.call(
                ctx.client(),
                api_url=config.api_base,
                token=token,
                method=method,
                files=files,
                **body,
            )
        except SendError as exc:
            raise from_send_error(exc) from exc

    def _photos(
        self,
        ctx: ChannelContext,
        config: TelegramConfig,
        token: str,
        images: list[ImageFile],
        caption: str | None,
    ) -> Any:
        """Send the images: one by sendPhoto, several as an album by sendMediaGroup."""
        extra = {"caption": caption} if caption else {}
        try:
            if len(images) == 1:
                image = images[0]
                files = {"photo": (image.filename, image.data, image.content_type)}
                return self._call(
                    ctx, config, token, "sendPhoto", files, chat_id=config.chat_id, **extra
                )
            group = [
                {"type": "photo", "media": f"attach://photo{i}", **(extra if i == 0 else {})}
                for i in range(len(images))
            ]
            files = {
                f"photo{i}": (im.filename, im.data, im.content_type) for i, im in enumerate(images)
            }
            return self._call(
                ctx, config, token, "sendMediaGroup", files, chat_id=config.chat_id, media=group
            )
        except ChannelError as exc:
            raise media_refused("Telegram", images[0], exc) from None

    def publish(
        self, ctx: ChannelContext, config: TelegramConfig, secrets: TelegramSecrets, post: Outgoing
    ) -> Sent:
        """Send the text as a message; with images, as their caption when it fits (1,024
        characters), else the images first and the text after them."""
        token = secrets.bot_token
        if post.images and "photo_message_ids" not in post.extra:
            fits = len(post.text.encode("utf-16-le")) // 2 <= CAPTION_LIMIT
            result = self._photos(ctx, config, token, post.images, post.text if fits else None)
            sent = result if isinstance(result, list) else [result]
            post.remember(photo_message_ids=[m["message_id"] for m in sent], captioned=fits)
            if fits:
                return self._sent(config, sent[0], post.extra)
        result = self._call(
            ctx, config, token, "sendMessage", chat_id=config.chat_id, text=post.text
        )
        return self._sent(config, result, post.extra)

    def find(
        self, ctx: ChannelContext, config: TelegramConfig, secrets: TelegramSecrets, post: Outgoing
    ) -> Sent | None:
        """Look for the same text among the latest messages of the channel's public web
        preview (t.me/s/<username>). A private channel (numeric chat id), a channel without
        a preview, or pictures sent without their text cannot be recognised there."""
        from elshi.connectors.base import MappingError
        from elshi.connectors.telegram import map_web_message, parse_preview_page

        if not config.chat_id.startswith("@"):
            raise NotSupported(self.slug)
        fits = len(post.text.encode("utf-16-le")) // 2 <= CAPTION_LIMIT
        photos_unsaved = bool(post.images) and "photo_message_ids" not in post.extra
        if photos_unsaved and not fits:
            raise NotSupported(self.slug)  # the pictures went (or not) without any text
        username = config.chat_id[1:]
        resp = request(ctx, "GET", f"{config.preview_base.rstrip('/')}/s/{username}")
        if resp.status_code != 200:
            raise classify(resp, f"Telegram preview: HTTP {resp.status_code}")
        page = parse_preview_page(resp.text)
        if not page.has_history:
            raise NotSupported(self.slug)  # no public preview: it cannot tell
        wanted = " ".join(post.text.split())
        for mid, markup in reversed(page.messages):
            try:
                mapped = map_web_message({"html": markup, "channel": username})
            except MappingError:
                continue
            if mid is None or mapped is None or " ".join(mapped.text.split()) != wanted:
                continue
            extra = dict(post.extra)
            if photos_unsaved:
                extra.update(photo_message_ids=[mid], captioned=True)
            return self._sent(config, {"message_id": mid, "chat": {"username": username}}, extra)
        return None

    def _sent(self, config: TelegramConfig, result: dict[str, Any], extra: dict[str, Any]) -> Sent:
        mid = str(result["message_id"])
        username = (result.get("chat") or {}).get("username") or (
            config.chat_id[1:] if config.chat_id.startswith("@") else None
        )
        url = f"{config.preview_base.rstrip('/')}/{username}/{mid}" if username else None
        kept: dict[str, Any] = {
            k: extra[k] for k in ("photo_message_ids", "captioned") if k in extra
        }
        return Sent(external_id=mid, url=url, extra={"username": username, **kept})

    def edit(
        self,
        ctx: ChannelContext,
        config: TelegramConfig,
        secrets: TelegramSecrets,
        external_id: str,
        text: str,
    ) -> None:
        """Replace a sent message's text (or, for a photo posted with its text, its caption)."""
        try:
            self._call(
                ctx,
                config,
                secrets.bot_token,
                "editMessageText",
                chat_id=config.chat_id,
                message_id=int(external_id),
                text=text,
            )
        except ChannelError as exc:
            if "no text in the message" not in exc.message:
                raise
            self._call(
                ctx,
                config,
                secrets.bot_token,
                "editMessageCaption",
                chat_id=config.chat_id,
                message_id=int(external_id),
                caption=text,
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

    def delete_parts(
        self, ctx: ChannelContext, config: TelegramConfig, secrets: TelegramSecrets, extra: Any
    ) -> None:
        """Delete the other pictures of an album, or the pictures sent before a text too long
        to be their caption."""
        photos = list(extra.get("photo_message_ids") or [])
        if extra.get("captioned"):
            photos = photos[1:]  # the first picture carried the text: delete() took it
        for mid in photos:
            self.delete(ctx, config, secrets, str(mid))

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
