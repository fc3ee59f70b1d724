"""Bluesky through the AT Protocol: createSession, then createRecord / deleteRecord."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime
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

POST = "app.bsky.feed.post"
#: app.bsky.embed.images takes image blobs of at most this many bytes (its lexicon's maxSize).
BLOB_LIMIT = 1_000_000
_B32 = "234567abcdefghijklmnopqrstuvwxyz"


def new_tid(now_us: int | None = None) -> str:
    """Return a record key in the AT Protocol TID form (13 base32-sortable characters)."""
    micros = now_us if now_us is not None else time.time_ns() // 1000
    value = (micros << 10) | random.getrandbits(10)
    out = ""
    for _ in range(13):
        out = _B32[value & 31] + out
        value >>= 5
    return out


class BlueskyConfig(ChannelConfig):
    """Which account on which server."""

    handle: str = Field(description="The account's handle, e.g. kazembassy.bsky.social.")
    service: str = Field(
        default="https://bsky.social",
        description="The account's PDS (or a test server). Reads of engagement go here too.",
    )


class BlueskySecrets(BaseModel):
    """Credentials."""

    app_password: str = Field(description="An app password (Settings → App passwords).")


_SESSIONS: dict[tuple[str, str], dict[str, str]] = {}
_LOCK = threading.Lock()


class BlueskyChannel(Channel):
    """A Bluesky account. Each post's record key is chosen and saved before the first try, so
    a retry writes the same record: the server refuses a second record with that key."""

    slug = "bluesky"
    title = "Bluesky (AT Protocol)"
    Config = BlueskyConfig
    Secrets = BlueskySecrets
    retry_safe = True
    can_delete = True

    audience = (
        "app.bsky.feed.getLikes and getRepostedBy (every page up to ELSHI_AUDIENCE_MAX_PAGES) "
        "and the authors of direct replies (getPostThread)."
    )
    images = (
        "com.atproto.repo.uploadBlob, then an app.bsky.embed.images embed with alt text and "
        "aspect ratio; at most 1 MB a picture; the blob references are kept for retries."
    )

    #: Bluesky allows 300 graphemes.
    length = Limit(300, "graphemes")

    def _error(self, resp: Any, what: str) -> ChannelError:
        data = json_body(resp)
        name = data.get("error", "") if isinstance(data, dict) else ""
        detail = (data.get("message") if isinstance(data, dict) else None) or resp.text
        message = f"Bluesky {what}: {name} {detail}".strip()[:500]
        if name in ("ExpiredToken", "InvalidToken", "AuthenticationRequired", "AccountTakedown"):
            return ChannelError("expired_token", message, status=resp.status_code)
        retry = None
        if resp.status_code == 429:
            retry = retry_after_seconds(resp.headers.get("retry-after")) or retry_after_seconds(
                resp.headers.get("ratelimit-reset"), epoch=True
            )
        if "grapheme" in str(detail).lower() or "too long" in str(detail).lower():
            return ChannelError("too_long", message, status=resp.status_code)
        return classify(resp, message, retry_after=retry)

    def _session(
        self, ctx: ChannelContext, config: BlueskyConfig, secrets: BlueskySecrets, fresh: bool
    ) -> dict[str, str]:
        key = (config.service, config.handle)
        with _LOCK:
            if not fresh and key in _SESSIONS:
                return _SESSIONS[key]
        resp = request(
            ctx,
            "POST",
            config.service.rstrip("/") + "/xrpc/com.atproto.server.createSession",
            json={"identifier": config.handle, "password": secrets.app_password},
            sent_body=False,
        )
        if resp.status_code != 200:
            raise self._error(resp, "sign-in")
        data = resp.json()
        session = {"did": data["did"], "jwt": data["accessJwt"]}
        with _LOCK:
            _SESSIONS[key] = session
        return session

    def _xrpc(
        self,
        ctx: ChannelContext,
        config: BlueskyConfig,
        secrets: BlueskySecrets,
        method: str,
        nsid: str,
        **kwargs: Any,
    ) -> tuple[dict[str, str], Any]:
        url = config.service.rstrip("/") + "/xrpc/" + nsid
        for fresh in (False, True):
            session = self._session(ctx, config, secrets, fresh)
            body = kwargs.get("json")
            if isinstance(body, dict) and body.get("repo") == "":
                kwargs["json"] = {**body, "repo": session["did"]}
            headers = {"Authorization": f"Bearer {session['jwt']}", **kwargs.pop("headers", {})}
            resp = request(ctx, method, url, headers=headers, **kwargs)
            kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
            if resp.status_code == 200:
                return session, resp.json()
            err = self._error(resp, nsid.rsplit(".", 1)[-1])
            if err.kind == "expired_token" and not fresh:
                continue  # the access token expired: sign in again once
            raise err
        raise AssertionError("unreachable")

    def publish(
        self, ctx: ChannelContext, config: BlueskyConfig, secrets: BlueskySecrets, post: Outgoing
    ) -> Sent:
        """Upload the images as blobs (once: the blob references are kept), then create the
        post record, with an app.bsky.embed.images embed, under the record key saved before
        the first try."""
        rkey = post.extra["rkey"]
        record: dict[str, Any] = {
            "$type": POST,
            "text": post.text,
            "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "langs": [post.lang],
        }

        def upload(image: ImageFile) -> Any:
            if len(image.data) > BLOB_LIMIT:
                raise ChannelError(
                    "media_rejected",
                    f"Bluesky takes images up to {BLOB_LIMIT / 1e6:g} MB; {image.filename} "
                    f"has {len(image.data) / 1e6:.1f} MB",
                )
            try:
                _, uploaded = self._xrpc(
                    ctx,
                    config,
                    secrets,
                    "POST",
                    "com.atproto.repo.uploadBlob",
                    content=image.data,
                    headers={"Content-Type": image.content_type},
                )
            except ChannelError as exc:
                raise media_refused("Bluesky", image, exc) from None
            return uploaded["blob"]

        blobs = post.upload_each("blobs", upload)
        if blobs:
            images = []
            for blob, image in zip(blobs, post.images, strict=False):
                item: dict[str, Any] = {"alt": image.alt, "image": blob}
                if image.width and image.height:
                    item["aspectRatio"] = {"width": image.width, "height": image.height}
                images.append(item)
            record["embed"] = {"$type": "app.bsky.embed.images", "images": images}
        try:
            _session, data = self._xrpc(
                ctx,
                config,
                secrets,
                "POST",
                "com.atproto.repo.createRecord",
                json={"repo": "", "collection": POST, "rkey": rkey, "record": record},
            )
        except ChannelError as exc:
            found = self.find(ctx, config, secrets, post) if exc.kind == "rejected" else None
            if found is None:
                raise
            return found  # the record exists: an earlier, interrupted try made it
        return Sent(external_id=data["uri"], url=self._web_url(config, rkey), extra={"rkey": rkey})

    def _web_url(self, config: BlueskyConfig, rkey: str) -> str:
        return f"https://bsky.app/profile/{config.handle}/post/{rkey}"

    def prepare(self, post: Outgoing) -> dict[str, Any]:
        """Choose the record key before the first try."""
        return {"rkey": post.extra.get("rkey") or new_tid()}

    def find(
        self, ctx: ChannelContext, config: BlueskyConfig, secrets: BlueskySecrets, post: Outgoing
    ) -> Sent | None:
        """Look the record up by its saved key."""
        rkey = post.extra.get("rkey")
        if not rkey:
            return None
        session = self._session(ctx, config, secrets, False)
        resp = request(
            ctx,
            "GET",
            config.service.rstrip("/") + "/xrpc/com.atproto.repo.getRecord",
            params={"repo": session["did"], "collection": POST, "rkey": rkey},
        )
        if resp.status_code != 200:
            return None
        return Sent(
            external_id=resp.json()["uri"], url=self._web_url(config, rkey), extra={"rkey": rkey}
        )

    def delete(
        self, ctx: ChannelContext, config: BlueskyConfig, secrets: BlueskySecrets, external_id: str
    ) -> None:
        """Delete the post record."""
        rkey = external_id.rsplit("/", 1)[-1]
        self._xrpc(
            ctx,
            config,
            secrets,
            "POST",
            "com.atproto.repo.deleteRecord",
            json={"repo": "", "collection": POST, "rkey": rkey},
        )

    def metrics(
        self,
        ctx: ChannelContext,
        config: BlueskyConfig,
        secrets: BlueskySecrets,
        sent: Sent,
        publication_id: int,
    ) -> Metrics | None:
        """Likes, reposts (and quotes) and replies from app.bsky.feed.getPosts."""
        _, data = self._xrpc(
            ctx, config, secrets, "GET", "app.bsky.feed.getPosts", params={"uris": sent.external_id}
        )
        posts = data.get("posts") or []
        if not posts:
            return None
        p = posts[0]
        return Metrics(
            reactions=p.get("likeCount"),
            reposts=(p.get("repostCount") or 0) + (p.get("quoteCount") or 0),
            replies=p.get("replyCount"),
            raw={k: p.get(k) for k in ("likeCount", "repostCount", "quoteCount", "replyCount")},
        )

    def engagers(
        self,
        ctx: ChannelContext,
        config: BlueskyConfig,
        secrets: BlueskySecrets,
        sent: Sent,
        max_pages: int,
    ) -> list[Engager]:
        """Likers (app.bsky.feed.getLikes), reposters (getRepostedBy), following the cursor,
        and the authors of direct replies (getPostThread)."""

        def engager(actor: Any, kind: str) -> Engager | None:
            if not isinstance(actor, dict):
                return None
            handle = str(actor.get("handle") or "")
            key = handle if handle and handle != "handle.invalid" else str(actor.get("did") or "")
            return Engager(key, kind, str(actor.get("displayName") or "")) if key else None

        found: list[Engager | None] = []
        for nsid, field, kind in (
            ("app.bsky.feed.getLikes", "likes", "like"),
            ("app.bsky.feed.getRepostedBy", "repostedBy", "repost"),
        ):
            cursor = None
            for _ in range(max_pages):
                params = {"uri": sent.external_id, "limit": 100}
                if cursor:
                    params["cursor"] = cursor
                _, data = self._xrpc(ctx, config, secrets, "GET", nsid, params=params)
                for item in data.get(field) or []:
                    actor = item.get("actor") if field == "likes" else item
                    found.append(engager(actor, kind))
                cursor = data.get("cursor")
                if not cursor:
                    break
        _, data = self._xrpc(
            ctx,
            config,
            secrets,
            "GET",
            "app.bsky.feed.getPostThread",
            params={"uri": sent.external_id, "depth": 1, "parentHeight": 0},
        )
        for reply in (data.get("thread") or {}).get("replies") or []:
            post = reply.get("post") if isinstance(reply, dict) else None
            if isinstance(post, dict):
                found.append(engager(post.get("author"), "reply"))
        return [e for e in found if e is not None]


@hookimpl
def elshi_channels() -> list[type[Channel]]:
    """Register the Bluesky channel."""
    return [BlueskyChannel]
