"""X (Twitter) through API v2: POST /2/tweets, DELETE /2/tweets/:id, public metrics."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from elshi.plugins import hookimpl
from elshi.speak.channels.base import (
    Channel,
    ChannelConfig,
    ChannelContext,
    ChannelError,
    Engager,
    Metrics,
    NotSupported,
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

#: The t.co link X appends to the text of a post that carries pictures.
_MEDIA_LINK = re.compile(r"(?:\s+https://t\.co/\w+)+$")


class XConfig(ChannelConfig):
    """Which account."""

    username: str = Field(description="The account's username, without @ (for post links).")
    user_id: str = Field(
        default="",
        description="The account's numeric id; lets elshi check, after an interrupted try, "
        "whether the post was made.",
    )
    api_base: str = Field(
        default="https://api.x.com", description="API server; change only for a test server."
    )


class XSecrets(BaseModel):
    """Credentials."""

    access_token: str = Field(
        description="OAuth 2.0 user access token with tweet.read, tweet.write and users.read."
    )


class XChannel(Channel):
    """An X account. X has no idempotency key; after an interrupted try elshi reads the
    account's recent posts for the same text before trying again (and X itself refuses
    duplicate text)."""

    slug = "x"
    title = "X (API v2)"
    Config = XConfig
    Secrets = XSecrets
    can_delete = True

    audience = (
        "liking_users and retweeted_by (every page up to ELSHI_AUDIENCE_MAX_PAGES); repliers "
        "are not listed (they need the search API)."
    )
    images = (
        "POST /2/media/upload (tweet_image) and /2/media/metadata (alt text), then "
        "media.media_ids on the post; the media ids are kept for retries."
    )

    #: 280 weighted characters (CJK and emoji count double, links 23).
    length = Limit(280, "x_weighted")

    def _call(
        self,
        ctx: ChannelContext,
        config: XConfig,
        secrets: XSecrets,
        method: str,
        path: str,
        **kwargs: Any,
    ) -> Any:
        resp = request(
            ctx,
            method,
            config.api_base.rstrip("/") + path,
            headers={"Authorization": f"Bearer {secrets.access_token}"},
            **kwargs,
        )
        data = json_body(resp)
        if resp.status_code < 300:
            return data
        detail = ""
        if isinstance(data, dict):
            detail = str(data.get("detail") or data.get("title") or "")
            for err in data.get("errors") or []:
                if isinstance(err, dict) and err.get("message"):
                    detail += f" {err['message']}"
        message = f"X: {detail or resp.text}"[:500]
        retry = None
        if resp.status_code == 429:
            retry = retry_after_seconds(resp.headers.get("x-rate-limit-reset"), epoch=True)
        if resp.status_code == 403 and "duplicate" in detail.lower():
            raise ChannelError("rejected", message, status=403)
        if "too long" in detail.lower():
            raise ChannelError("too_long", message, status=resp.status_code)
        raise classify(resp, message, retry_after=retry)

    def _url(self, config: XConfig, tweet_id: str) -> str:
        return f"https://x.com/{config.username}/status/{tweet_id}"

    def publish(
        self, ctx: ChannelContext, config: XConfig, secrets: XSecrets, post: Outgoing
    ) -> Sent:
        """Upload the images (once: their media ids are kept) with their alt text, then create
        the post with media.media_ids."""

        def upload(image: ImageFile) -> str:
            try:
                uploaded = self._call(
                    ctx,
                    config,
                    secrets,
                    "POST",
                    "/2/media/upload",
                    files={"media": (image.filename, image.data, image.content_type)},
                    data={"media_category": "tweet_image", "media_type": image.content_type},
                )
                media_id = str(uploaded["data"]["id"])
                self._call(
                    ctx,
                    config,
                    secrets,
                    "POST",
                    "/2/media/metadata",
                    json={"id": media_id, "metadata": {"alt_text": {"text": image.alt[:1000]}}},
                )
            except ChannelError as exc:
                raise media_refused("X", image, exc) from None
            return media_id

        media_ids = post.upload_each("media_ids", upload)
        body: dict[str, Any] = {"text": post.text}
        if media_ids:
            body["media"] = {"media_ids": media_ids}
        data = self._call(ctx, config, secrets, "POST", "/2/tweets", json=body)
        tweet_id = str(data["data"]["id"])
        return Sent(external_id=tweet_id, url=self._url(config, tweet_id))

    def find(
        self, ctx: ChannelContext, config: XConfig, secrets: XSecrets, post: Outgoing
    ) -> Sent | None:
        """Look for the same text among the account's recent posts (X ends the text of a post
        with pictures with a t.co link to them, which is left out of the comparison)."""
        if not config.user_id:
            raise NotSupported(self.slug)
        data = self._call(
            ctx,
            config,
            secrets,
            "GET",
            f"/2/users/{config.user_id}/tweets",
            params={"max_results": 20},
        )
        for tweet in data.get("data") or []:
            if _MEDIA_LINK.sub("", str(tweet.get("text") or "")) == post.text.rstrip():
                return Sent(external_id=str(tweet["id"]), url=self._url(config, str(tweet["id"])))
        return None

    def delete(
        self, ctx: ChannelContext, config: XConfig, secrets: XSecrets, external_id: str
    ) -> None:
        """Delete a post."""
        self._call(ctx, config, secrets, "DELETE", f"/2/tweets/{external_id}")

    def metrics(
        self,
        ctx: ChannelContext,
        config: XConfig,
        secrets: XSecrets,
        sent: Sent,
        publication_id: int,
    ) -> Metrics:
        """Impressions, likes, reposts and quotes, replies (public_metrics)."""
        data = self._call(
            ctx,
            config,
            secrets,
            "GET",
            f"/2/tweets/{sent.external_id}",
            params={"tweet.fields": "public_metrics"},
        )
        m = (data.get("data") or {}).get("public_metrics") or {}
        return Metrics(
            views=m.get("impression_count"),
            reactions=m.get("like_count"),
            reposts=(m.get("retweet_count") or 0) + (m.get("quote_count") or 0),
            replies=m.get("reply_count"),
            raw=m,
        )

    def engagers(
        self, ctx: ChannelContext, config: XConfig, secrets: XSecrets, sent: Sent, max_pages: int
    ) -> list[Engager]:
        """Likers (liking_users) and reposters (retweeted_by), following next_token. X lists
        no repliers without the search API, which elshi does not use."""
        out: list[Engager] = []
        for what, kind in (("liking_users", "like"), ("retweeted_by", "repost")):
            token = None
            for _ in range(max_pages):
                params: dict[str, Any] = {"max_results": 100}
                if token:
                    params["pagination_token"] = token
                data = self._call(
                    ctx,
                    config,
                    secrets,
                    "GET",
                    f"/2/tweets/{sent.external_id}/{what}",
                    params=params,
                )
                for user in data.get("data") or []:
                    if isinstance(user, dict) and user.get("username"):
                        out.append(
                            Engager(str(user["username"]), kind, str(user.get("name") or ""))
                        )
                token = (data.get("meta") or {}).get("next_token")
                if not token:
                    break
        return out


@hookimpl
def elshi_channels() -> list[type[Channel]]:
    """Register the X channel."""
    return [XChannel]
