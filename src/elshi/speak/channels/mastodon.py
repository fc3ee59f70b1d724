"""Mastodon through its statuses API, with an Idempotency-Key on every post."""

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
    retry_after_seconds,
)
from elshi.speak.text import Limit


class MastodonConfig(BaseModel):
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
    languages: list[str] = Field(
        default_factory=list,
        description="Languages posted to this account (e.g. kk,ru); empty means every language.",
    )


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

    def publish(
        self, ctx: ChannelContext, config: MastodonConfig, secrets: MastodonSecrets, post: Outgoing
    ) -> Sent:
        """Post a status."""
        data = self._call(
            ctx,
            config,
            secrets.access_token,
            "POST",
            "/api/v1/statuses",
            json={"status": post.text, "language": post.lang, "visibility": config.visibility},
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
        """Edit a status (Mastodon keeps the edit history visible)."""
        self._call(
            ctx,
            config,
            secrets.access_token,
            "PUT",
            f"/api/v1/statuses/{external_id}",
            json={"status": text},
        )

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


@hookimpl
def elshi_channels() -> list[type[Channel]]:
    """Register the Mastodon channel."""
    return [MastodonChannel]
