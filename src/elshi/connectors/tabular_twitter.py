"""X/Twitter API v2 pages (as twarc2 saves them) expanded into one record per tweet."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from elshi.connectors.base import (
    BadRecord,
    snippet,
)

# ---------------------------------------------------------------------------- twitter pages


def _tweet_page_kind(items: list[Any]) -> str | None:
    """Return what a page's data items are when they are not tweets."""
    first = next((i for i in items if isinstance(i, Mapping)), None)
    if first is None:
        return "empty data"
    if "text" in first and "id" in first:
        return None
    if "username" in first:
        return f"{len(items)} user objects"
    if "tweet_count" in first:
        return f"{len(items)} tweet-count buckets"
    if "member_count" in first or "owner_id" in first:
        return f"{len(items)} list objects"
    return f"{len(items)} objects without text"


def expand_twitter_v2(payload: Any, location: str) -> Iterator[tuple[Any, str] | BadRecord]:
    """Split a twarc2 page into one flattened tweet per `data` item, author from includes."""
    if not isinstance(payload, Mapping):
        yield BadRecord(
            location, f"not a tweet page: a JSON {type(payload).__name__}", snippet(payload)
        )
        return
    if "data" not in payload:
        if "errors" in payload and "text" not in payload:
            detail = "; ".join(
                str(e.get("detail") or e.get("title") or e)
                for e in payload["errors"][:3]
                if isinstance(e, Mapping)
            )
            yield BadRecord(
                location, f"API error page, no tweets: {detail}"[:500], snippet(payload)
            )
            return
        # A flattened tweet (author embedded) or a compliance event: map it as it is.
        yield payload, location
        return
    data = payload["data"]
    items = data if isinstance(data, list) else [data]
    kind = _tweet_page_kind(items)
    if kind is not None:
        yield BadRecord(
            location,
            f"not tweets: the page holds {kind} (the twitter-v2 profile imports tweets)",
            snippet(payload, 500),
        )
        return
    includes = payload.get("includes") or {}
    users = {u.get("id"): u for u in includes.get("users") or [] if isinstance(u, Mapping)}
    extra = {k: payload[k] for k in ("matching_rules",) if k in payload}
    many = len(items) > 1 or isinstance(data, list)
    for n, tweet in enumerate(items, 1):
        where = f"{location} item {n}" if many else location
        if not isinstance(tweet, Mapping):
            yield BadRecord(where, f"not a tweet: a JSON {type(tweet).__name__}", snippet(tweet))
            continue
        flat = dict(tweet)
        author = users.get(tweet.get("author_id"))
        if author is not None and "author" not in flat:
            flat["author"] = author
        flat.update(extra)
        yield flat, where


EXPANDERS: dict[str, Callable[[Any, str], Iterator[tuple[Any, str] | BadRecord]]] = {
    "twitter-v2": expand_twitter_v2,
}
