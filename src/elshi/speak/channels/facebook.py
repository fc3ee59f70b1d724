"""A Facebook page through the Graph API: POST /{page-id}/feed, edit, delete, engagement."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from elshi.plugins import hookimpl
from elshi.speak.channels.base import (
    Channel,
    ChannelConfig,
    ChannelContext,
    ChannelError,
    Metrics,
    Outgoing,
    Sent,
    classify,
    json_body,
    media_refused,
    request,
)
from elshi.speak.media import ImageFile
from elshi.speak.text import Limit

#: Graph API error codes: 190 invalid or expired token; 4, 17, 32, 613 rate limits.
_TOKEN_CODES = {190, 102, 10, 200}
_RATE_CODES = {4, 17, 32, 613}


class FacebookConfig(ChannelConfig):
    """Which page."""

    page_id: str = Field(description="The page's numeric id.")
    graph_base: str = Field(
        default="https://graph.facebook.com/v21.0",
        description="Graph API base with its version; change only for a test server.",
    )


class FacebookSecrets(BaseModel):
    """Credentials."""

    page_token: str = Field(
        description="A page access token with pages_manage_posts and pages_read_engagement."
    )


class FacebookChannel(Channel):
    """A Facebook page. After an interrupted try elshi reads the page's recent posts for the
    same message before trying again."""

    slug = "facebook"
    title = "Facebook page (Graph API)"
    Config = FacebookConfig
    Secrets = FacebookSecrets
    can_edit = True
    can_delete = True

    images = (
        "POST /{page-id}/photos unpublished (with alt_text_custom), then the feed post with "
        "attached_media; the photo ids are kept for retries."
    )

    #: A page post may have 63,206 characters.
    length = Limit(63_206, "codepoints")

    def _call(
        self,
        ctx: ChannelContext,
        config: FacebookConfig,
        secrets: FacebookSecrets,
        method: str,
        path: str,
        **kwargs: Any,
    ) -> Any:
        params = {**kwargs.pop("params", {}), "access_token": secrets.page_token}
        resp = request(ctx, method, config.graph_base.rstrip("/") + path, params=params, **kwargs)
        data = json_body(resp)
        if resp.status_code < 300 and not (isinstance(data, dict) and "error" in data):
            return data
        err = data.get("error", {}) if isinstance(data, dict) else {}
        code = err.get("code")
        message = f"Facebook: {err.get('message') or resp.text}"[:500]
        if code in _TOKEN_CODES:
            raise ChannelError("expired_token", message, status=resp.status_code)
        if code in _RATE_CODES:
            raise ChannelError("rate_limited", message, status=resp.status_code, retry_after=3600)
        raise classify(resp, message)

    def publish(
        self,
        ctx: ChannelContext,
        config: FacebookConfig,
        secrets: FacebookSecrets,
        post: Outgoing,
    ) -> Sent:
        """Upload the images to the page's photos unpublished (once: their ids are kept), then
        post the message on the page's feed with them attached."""

        def upload(image: ImageFile) -> str:
            try:
                uploaded = self._call(
                    ctx,
                    config,
                    secrets,
                    "POST",
                    f"/{config.page_id}/photos",
                    files={"source": (image.filename, image.data, image.content_type)},
                    data={"published": "false", "alt_text_custom": image.alt},
                )
            except ChannelError as exc:
                raise media_refused("Facebook", image, exc) from None
            return str(uploaded["id"])

        photo_ids = post.upload_each("photo_ids", upload)
        form = {"message": post.text}
        for i, photo_id in enumerate(photo_ids):
            form[f"attached_media[{i}]"] = json.dumps({"media_fbid": photo_id})
        data = self._call(ctx, config, secrets, "POST", f"/{config.page_id}/feed", data=form)
        post_id = str(data["id"])
        return Sent(external_id=post_id, url=f"https://www.facebook.com/{post_id}")

    def find(
        self,
        ctx: ChannelContext,
        config: FacebookConfig,
        secrets: FacebookSecrets,
        post: Outgoing,
    ) -> Sent | None:
        """Look for the same message among the page's recent posts."""
        data = self._call(
            ctx,
            config,
            secrets,
            "GET",
            f"/{config.page_id}/feed",
            params={"fields": "id,message", "limit": 25},
        )
        for item in data.get("data") or []:
            if item.get("message") == post.text:
                return Sent(
                    external_id=str(item["id"]), url=f"https://www.facebook.com/{item['id']}"
                )
        return None

    def edit(
        self,
        ctx: ChannelContext,
        config: FacebookConfig,
        secrets: FacebookSecrets,
        external_id: str,
        text: str,
    ) -> None:
        """Change a page post's message."""
        self._call(ctx, config, secrets, "POST", f"/{external_id}", data={"message": text})

    def delete(
        self,
        ctx: ChannelContext,
        config: FacebookConfig,
        secrets: FacebookSecrets,
        external_id: str,
    ) -> None:
        """Delete a page post."""
        self._call(ctx, config, secrets, "DELETE", f"/{external_id}")

    def metrics(
        self,
        ctx: ChannelContext,
        config: FacebookConfig,
        secrets: FacebookSecrets,
        sent: Sent,
        publication_id: int,
    ) -> Metrics:
        """Reactions, shares and comments of the post, and its impressions (insights)."""
        data = self._call(
            ctx,
            config,
            secrets,
            "GET",
            f"/{sent.external_id}",
            params={
                "fields": "shares,reactions.summary(total_count).limit(0),"
                "comments.summary(total_count).limit(0)"
            },
        )
        views = None
        try:
            insights = self._call(
                ctx,
                config,
                secrets,
                "GET",
                f"/{sent.external_id}/insights",
                params={"metric": "post_impressions"},
            )
            values = (insights.get("data") or [{}])[0].get("values") or [{}]
            views = values[0].get("value")
        except ChannelError:
            views = None  # insights need a page with enough followers; the rest still counts
        return Metrics(
            views=views,
            reactions=((data.get("reactions") or {}).get("summary") or {}).get("total_count"),
            reposts=(data.get("shares") or {}).get("count", 0),
            replies=((data.get("comments") or {}).get("summary") or {}).get("total_count"),
            raw=data,
        )


@hookimpl
def elshi_channels() -> list[type[Channel]]:
    """Register the Facebook page channel."""
    return [FacebookChannel]
