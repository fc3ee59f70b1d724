"""Mastodon through its statuses API, with an Idempotency-Key on every post."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from elshi.plugins import hookimpl
from elshi.speak.channels.base import (
    Channel,
    ChannelConfig,
    ChannelContext,
    ChannelError,
    Engager,
    Metrics,
    Outgoing,
    Sent,
    classify,
    json_body,
    media_refused,
    request,
    retry_after_seconds,
)
from elshi.speak.media import ImageFile
from elshi.speak.text import Limit


class MastodonConfig(ChannelConfig):
    """Which instance and what it allows."""

    base_url: str = Field(description="The instance, e.g. https://mastodon.social.")
    max_characters: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="The instance's post length limit (its /api/v2/instance "
        "configuration.statuses.max_characters); 500 on most instances.",
    )
    visibility: str = Field(default="public", description="public, unlisted, private or direct.")


class MastodonSecrets(BaseModel):
    """Credentials."""

    access_token: str = Field(description="An access token with the write:statuses scope.")


class MastodonChannel(Channel):
    """A Mastodon account. Posts carry an Idempotency-Key (the publication's key), which the
    instance keeps for an hour: a retry after a crash returns the first post instead of a
    second one."""

    slug = "mastodon"
    title = "Mastodon"
    Config = MastodonConfig
    Secrets = MastodonSecrets
    retry_safe = True
    can_edit = True
    can_delete = True

    audience = (
        "reblogged_by and favourited_by (every page up to ELSHI_AUDIENCE_MAX_PAGES) and the "
        "authors of direct replies (context)."
    )
    images = (
        "POST /api/v2/media (multipart, the alt text as description), then media_ids[] on "
        "the status; uploaded once, the ids are kept for retries."
    )

    def limit(self, config: Any) -> Limit:
        """Mastodon counts characters (graphemes) with every link as 23."""
        return Limit(config.max_characters, "graphemes", urls_as=23)

    def _call(
        self,
        ctx: ChannelContext,
        config: MastodonConfig,
        token: str,
        method: str,
        path: str,
        **kwargs: Any,
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        resp = request(ctx, method, config.base_url.rstrip("/") + path, headers=headers, **kwargs)
        data = json_body(resp)
        if resp.status_code < 300:
            return data
        error = (data.get("error") if isinstance(data, dict) else None) or resp.text
        message = f"Mastodon: {error}"[:500]
        retry = None
        if resp.status_code == 429:
            retry = retry_after_seconds(resp.headers.get("retry-after")) or retry_after_seconds(
                resp.headers.get("x-ratelimit-reset")
            )
        if resp.status_code == 422 and "character limit" in str(error).lower():
            raise ChannelError("too_long", message, status=422)
        raise classify(resp, message, retry_after=retry)

    def _upload(
        self, ctx: ChannelContext, config: MastodonConfig, token: str, image: ImageFile
    ) -> str:
        """Upload one image (POST /api/v2/media) and wait until the instance has processed it."""
        try:
            data = self._call(
                ctx,
                config,
                token,
                "POST",
                "/api/v2/media",
                files={"file": (image.filename, image.data, image.content_type)},
                data={"description": image.alt},
            )
        except ChannelError as exc:
            raise media_refused("Mastodon", image, exc) from None
        media_id = str(data["id"])
        # 202 Accepted: url stays null until processing ends; the status must wait for it.
        for wait in (0.2, 0.5, 1, 2, 4):
            if data.get("url"):
                break
            time.sleep(wait)
            data = self._call(ctx, config, token, "GET", f"/api/v1/media/{media_id}")
        return media_id

    def publish(
        self, ctx: ChannelContext, config: MastodonConfig, secrets: MastodonSecrets, post: Outgoing
    ) -> Sent:
        """Upload the images (once: their ids are kept), then post a status with them."""
        media_ids = post.upload_each(
            "media_ids", lambda image: self._upload(ctx, config, secrets.access_token, image)
        )
        body: dict[str, Any] = {
            "status": post.text,
            "language": post.lang,
            "visibility": config.visibility,
        }
        if media_ids:
            body["media_ids"] = media_ids
        data = self._call(
            ctx,
            config,
            secrets.access_token,
            "POST",
            "/api/v1/statuses",
            json=body,
            headers={"Idempotency-Key": post.idempotency_key},
        )
        return Sent(external_id=str(data["id"]), url=data.get("url"))

    def edit(
        self,
        ctx: ChannelContext,
        config: MastodonConfig,
        secrets: MastodonSecrets,
        external_id: str,
        text: str,
    ) -> None:
        """Edit a status (Mastodon keeps the edit history visible). An edit without media_ids
        drops the attachments, so the status's own are sent back with the new text."""
        path = f"/api/v1/statuses/{external_id}"
        current = self._call(ctx, config, secrets.access_token, "GET", path)
        body: dict[str, Any] = {"status": text}
        attached = [str(m["id"]) for m in current.get("media_attachments") or [] if m.get("id")]
        if attached:
            body["media_ids"] = attached
        self._call(ctx, config, secrets.access_token, "PUT", path, json=body)

    def delete(
        self,
        ctx: ChannelContext,
        config: MastodonConfig,
        secrets: MastodonSecrets,
        external_id: str,
    ) -> None:
        """Delete a status."""
        self._call(ctx, config, secrets.access_token, "DELETE", f"/api/v1/statuses/{external_id}")

    def metrics(
        self,
        ctx: ChannelContext,
        config: MastodonConfig,
        secrets: MastodonSecrets,
        sent: Sent,
        publication_id: int,
    ) -> Metrics:
        """Favourites, boosts and replies of the status (Mastodon counts no views)."""
        data = self._call(
            ctx, config, secrets.access_token, "GET", f"/api/v1/statuses/{sent.external_id}"
        )
        return Metrics(
            reactions=data.get("favourites_count"),
            reposts=data.get("reblogs_count"),
            replies=data.get("replies_count"),
            raw={k: data.get(k) for k in ("favourites_count", "reblogs_count", "replies_count")},
        )

    def engagers(
        self,
        ctx: ChannelContext,
        config: MastodonConfig,
        secrets: MastodonSecrets,
        sent: Sent,
        max_pages: int,
    ) -> list[Engager]:
        """Boosters and favouriters (reblogged_by, favourited_by, following the Link header's
        next page) and the authors of direct replies (context)."""
        host = urlsplit(config.base_url).hostname or ""
        token = secrets.access_token

        def handle(account: dict[str, Any]) -> str:
            acct = str(account.get("acct") or "")
            return acct if "@" in acct else f"{acct}@{host}"

        out: list[Engager] = []
        base = config.base_url.rstrip("/")
        for what, kind in (("reblogged_by", "repost"), ("favourited_by", "like")):
            url: str | None = f"{base}/api/v1/statuses/{sent.external_id}/{what}?limit=80"
            for _ in range(max_pages):
                if url is None:
                    break
                resp = request(ctx, "GET", url, headers={"Authorization": f"Bearer {token}"})
                if resp.status_code != 200:
                    raise classify(resp, f"Mastodon {what}: HTTP {resp.status_code}")
                for account in json_body(resp) or []:
                    if isinstance(account, dict) and account.get("acct"):
                        out.append(
                            Engager(handle(account), kind, str(account.get("display_name") or ""))
                        )
                url = resp.links.get("next", {}).get("url")
        data = self._call(ctx, config, token, "GET", f"/api/v1/statuses/{sent.external_id}/context")
        for status in data.get("descendants") or []:
            account = status.get("account") if isinstance(status, dict) else None
            if str(status.get("in_reply_to_id")) == sent.external_id and isinstance(account, dict):
                out.append(
                    Engager(handle(account), "reply", str(account.get("display_name") or ""))
                )
        return out


@hookimpl
def elshi_channels() -> list[type[Channel]]:
    """Register the Mastodon channel."""
    return [MastodonChannel]
