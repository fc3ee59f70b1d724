"""What a publishing channel is: its settings, length rule, and the calls it makes.

A channel does I/O only. The publish flow writes the publication row (with its idempotency
key) before calling `publish`, records the outcome, retries, and reconciles after a crash.
"""

from __future__ import annotations

import email.utils
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, Field

from elshi.db import Database
from elshi.notify import SendError
from elshi.settings import Settings
from elshi.speak.text import Limit, graphemes

if TYPE_CHECKING:
    from elshi.speak.media import ImageFile

ErrorKind = Literal[
    "expired_token",
    "rate_limited",
    "too_long",
    "server_error",
    "rejected",
    "media_rejected",
    "network",
    "unsure",
]
#: Kinds a worker retries by itself; the others wait for a person.
RETRYABLE: frozenset[str] = frozenset({"rate_limited", "server_error", "network"})


class ChannelError(Exception):
    """The platform refused or failed; `kind` says what a person (or elshi) should do."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after


class NotSupported(Exception):
    """The platform does not allow this (e.g. editing a post)."""


@dataclass
class Outgoing:
    """What to publish: one language version on one account."""

    publication_id: int
    idempotency_key: str
    text: str
    lang: str
    headline: str = ""
    media: list[dict[str, Any]] = field(default_factory=list)
    mission_id: int = 0
    #: Facts the channel saved on an earlier try (kept on the publication row).
    extra: dict[str, Any] = field(default_factory=dict)
    #: The version's stored images, read back with their alt text.
    images: list[ImageFile] = field(default_factory=list)
    #: Saves facts on the publication row at once (e.g. the id of an uploaded image), so a
    #: retry after a failure or a crash reuses them instead of uploading again.
    saver: Callable[[dict[str, Any]], None] | None = None

    def remember(self, **facts: Any) -> None:
        """Keep facts in `extra` and on the publication row before going on."""
        self.extra.update(facts)
        if self.saver is not None:
            self.saver(facts)

    def upload_each(self, key: str, upload: Callable[[ImageFile], Any]) -> list[Any]:
        """Upload the images an earlier try has not, keeping each result under `key` at once
        (so a retry reuses them), and return the results for every image in order."""
        done: list[Any] = list(self.extra.get(key) or [])
        for image in self.images[len(done) :]:
            done.append(upload(image))
            self.remember(**{key: list(done)})
        return done


@dataclass(frozen=True)
class Preview:
    """What a channel would post from one language version, and how long it is there."""

    text: str
    #: The subject line or title the post carries (e-mail, news page); empty for none.
    subject: str
    length: int
    #: The channel's limit; None when it has none (the length is then in graphemes).
    limit: int | None

    @property
    def ok(self) -> bool:
        """Return whether the text fits (and is not empty)."""
        return self.length > 0 and (self.limit is None or self.length <= self.limit)

    @property
    def over(self) -> int:
        """Return by how much the text is too long (0 if it fits)."""
        return 0 if self.limit is None else max(0, self.length - self.limit)


def posted_text(text: str) -> str:
    """Return a text as it is stored and sent (line ends made plain, outer spaces cut)."""
    return text.replace("\r\n", "\n").strip()


@dataclass
class Sent:
    """Where the post now lives."""

    external_id: str
    url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Metrics:
    """Engagement as the platform reports it; None where it reports nothing."""

    views: int | None = None
    reactions: int | None = None
    reposts: int | None = None
    replies: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Engager:
    """An account that engaged with a post: `kind` is reply, repost or like."""

    handle: str
    kind: str
    name: str = ""


@dataclass
class ChannelContext:
    """What a channel's calls may use: settings, the database (own-site channels), HTTP."""

    settings: Settings
    db: Database | None = None
    http: httpx.Client | None = None

    def client(self) -> httpx.Client:
        """Return a shared HTTP client with elshi's timeout and User-Agent."""
        if self.http is None:
            self.http = httpx.Client(
                timeout=self.settings.http_timeout,
                headers={"User-Agent": self.settings.user_agent},
            )
        return self.http

    def close(self) -> None:
        """Close the HTTP client if one was opened."""
        if self.http is not None:
            self.http.close()
            self.http = None


class ChannelConfig(BaseModel):
    """Settings every channel account has: the languages it carries."""

    languages: list[str] = Field(
        default_factory=list,
        description="Languages posted to this account (e.g. kk,ru); empty means every language.",
    )


class Channel(ABC):
    """A place statements are published. Built-ins register like third-party plugins."""

    slug: ClassVar[str]
    title: ClassVar[str]
    #: Non-secret settings, stored as JSON.
    Config: ClassVar[type[BaseModel]]
    #: Credentials, stored encrypted.
    Secrets: ClassVar[type[BaseModel]]
    #: True when sending again with the same idempotency key cannot make a second post.
    retry_safe: ClassVar[bool] = False
    #: True when a post goes to the public (the approval gate applies to every channel).
    can_edit: ClassVar[bool] = False
    can_delete: ClassVar[bool] = False
    #: How the channel carries a version's images (for the reference); empty: it does not.
    images: ClassVar[str] = ""
    #: Which accounts that engaged it can list (for the reference); empty: none.
    audience: ClassVar[str] = ""
    #: The length rule of every account, for a channel whose rule does not depend on the
    #: account's settings; None: no rule (or `limit` reads it from the settings).
    length: ClassVar[Limit | None] = None

    #: What the post carries as its subject or title when the version has no headline:
    #: "title" (the statement's title, e-mail) or "first-line" (the news page); empty: the
    #: post has no subject line at all.
    subject_fallback: ClassVar[str] = ""

    def preview(self, config: Any, *, text: str, headline: str, title: str) -> Preview:
        """Return what this account would post from a version's text (its channel variant, if
        any), headline and the statement's title: the same figures speak.js shows live."""
        text = posted_text(text)
        limit = self.limit(config)
        subject = ""
        if self.subject_fallback:
            fallback = title if self.subject_fallback == "title" else text.split("\n", 1)[0][:100]
            subject = posted_text(headline) or posted_text(fallback)
        return Preview(
            text=text,
            subject=subject,
            length=limit.length(text) if limit is not None else graphemes(text),
            limit=limit.max if limit is not None else None,
        )

    def prepare(self, post: Outgoing) -> dict[str, Any]:
        """Return facts to save on the publication before the first try (e.g. a record key)."""
        return {}

    def limit(self, config: Any) -> Limit | None:
        """Return the length rule for this account, or None when there is none."""
        return self.length

    @abstractmethod
    def publish(self, ctx: ChannelContext, config: Any, secrets: Any, post: Outgoing) -> Sent:
        """Post and return where the post lives; raise ChannelError on failure."""

    def find(self, ctx: ChannelContext, config: Any, secrets: Any, post: Outgoing) -> Sent | None:
        """Look for a post an interrupted try may have made; None when it cannot tell."""
        raise NotSupported(self.slug)

    def edit(
        self, ctx: ChannelContext, config: Any, secrets: Any, external_id: str, text: str
    ) -> None:
        """Replace the text of a published post."""
        raise NotSupported(self.slug)

    def delete(self, ctx: ChannelContext, config: Any, secrets: Any, external_id: str) -> None:
        """Take a published post down."""
        raise NotSupported(self.slug)

    def delete_parts(self, ctx: ChannelContext, config: Any, secrets: Any, extra: Any) -> None:
        """Take down what a post was made of besides itself (e.g. pictures sent before it)."""
        return None

    def metrics(
        self, ctx: ChannelContext, config: Any, secrets: Any, sent: Sent, publication_id: int
    ) -> Metrics | None:
        """Return the post's engagement, or None when the platform does not report it."""
        return None

    def engagers(
        self, ctx: ChannelContext, config: Any, secrets: Any, sent: Sent, max_pages: int
    ) -> list[Engager] | None:
        """Return the accounts that replied to, reposted or liked the post, or None when the
        platform does not tell."""
        return None


# ---------------------------------------------------------------------------- HTTP helpers


def retry_after_seconds(value: str | None, *, epoch: bool = False) -> float | None:
    """Parse Retry-After (seconds or an HTTP date) or a reset time in epoch seconds."""
    if not value:
        return None
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    if epoch or number > 10**9:
        return max(0.0, number - datetime.now(UTC).timestamp())
    return max(0.0, number)


def classify(
    response: httpx.Response, message: str, *, retry_after: float | None = None
) -> ChannelError:
    """Turn an HTTP failure into a ChannelError by its status code."""
    status = response.status_code
    if status == 429 and retry_after is None:
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
    return classify_status(status, message, retry_after=retry_after)


def classify_status(status: int, message: str, *, retry_after: float | None = None) -> ChannelError:
    """Turn an HTTP status (and the failure's message) into a ChannelError."""
    if status in (401, 403):
        return ChannelError("expired_token", message, status=status)
    if status == 429:
        return ChannelError("rate_limited", message, status=status, retry_after=retry_after)
    if status >= 500:
        return ChannelError("server_error", message, status=status)
    if status == 413 or "too long" in message.lower() or "character limit" in message.lower():
        return ChannelError("too_long", message, status=status)
    return ChannelError("rejected", message, status=status)


def request(
    ctx: ChannelContext, method: str, url: str, *, sent_body: bool = True, **kwargs: Any
) -> httpx.Response:
    """Make an HTTP call; network failures become ChannelError.

    A failure before the request left (connect) is safe to retry; one after it left
    (a read timeout, a dropped connection) may have posted, so it is "unsure".
    """
    try:
        return ctx.client().request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise ChannelError("network", f"cannot connect to {httpx.URL(url).host}: {exc}") from exc
    except httpx.HTTPError as exc:
        kind: ErrorKind = "unsure" if sent_body and method != "GET" else "network"
        raise ChannelError(kind, f"{httpx.URL(url).host}: {exc}") from exc


def from_send_error(exc: SendError) -> ChannelError:
    """Turn a failure of the delivery layer (elshi.notify) into a ChannelError."""
    message = str(exc)[:500]
    if exc.kind in ("network", "config"):
        return ChannelError("network", message)
    if exc.kind == "unsure":
        return ChannelError("unsure", message)
    if exc.kind == "auth" and exc.status is None:
        return ChannelError("expired_token", message)
    if exc.status is None:
        kind: ErrorKind = "server_error" if exc.retry else "rejected"
        return ChannelError(kind, message, retry_after=exc.retry_after)
    if exc.kind == "auth":
        return ChannelError("expired_token", message, status=exc.status)
    return classify_status(exc.status, message, retry_after=exc.retry_after)


def json_body(response: httpx.Response) -> Any:
    """Return the response's JSON, or {} when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return {}


def media_refused(platform: str, image: ImageFile, exc: ChannelError) -> ChannelError:
    """Name the image in a refused upload; a refused image waits for a person (not retried
    blindly), while server errors, rate limits and expired tokens keep their kind."""
    message = f"{platform} refused the image {image.filename}: {exc.message}"[:500]
    if exc.kind in ("rejected", "too_long"):
        return ChannelError("media_rejected", message, status=exc.status)
    return ChannelError(exc.kind, message, status=exc.status, retry_after=exc.retry_after)
