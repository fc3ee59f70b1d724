"""Types by rule: what a platform's payload says of an account (its labels, avatar, age,
automation flag) and what an account's name says of it, pure.

Rules in order, first that applies wins (a type set by hand wins over all of them):
1. an imported list naming the account (the newest list first);
2. a platform label: X/Twitter's `verified_type` "government" (an official account),
   Telegram's "scam" and "fake" marks on a channel, Bluesky's "impersonation" label
   (suspected inauthentic);
3. a word of the display name or handle (embassy, ministry of foreign affairs, journalist,
   member of parliament, in English, Russian and Kazakh).

Inauthenticity signals never set a type: "suspected inauthentic" comes from a list or by hand.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from elshi.connectors.base import MappingError, parse_time


@dataclass(frozen=True)
class Profile:
    """What a platform's payload says of the account that wrote a post (None: not said)."""

    created_at: datetime | None = None
    default_avatar: bool | None = None
    automated: bool | None = None
    verified_type: str | None = None
    #: Labels the platform puts on the account (Telegram: scam, fake; Bluesky: label values).
    labels: tuple[str, ...] = ()


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return parse_time(str(value))
    except (MappingError, ValueError, TypeError):
        return None


def profile_of(platform: str, raw: Any) -> Profile:
    """Read the author's profile from a post's raw payload, as each connector keeps it:
    Mastodon statuses (`account`), Bluesky post views (`author`), X/Twitter API v2 tweets with
    the author embedded (`author`) and v1.1 tweets (`user`)."""
    raw = _obj(raw)
    if platform == "mastodon":
        # Stored as {instance, status} (API, saved statuses) or {instance, event} (stream).
        status = _obj(raw.get("status")) or raw
        event = _obj(raw.get("event"))
        if event:
            try:
                status = _obj(json.loads(str(event.get("payload") or "")))
            except ValueError:
                status = {}
        acc = _obj(status.get("account"))
        if not acc:
            return Profile()
        avatar = str(acc.get("avatar") or acc.get("avatar_static") or "")
        return Profile(
            created_at=_when(acc.get("created_at")),
            default_avatar=(avatar.endswith("missing.png") or not avatar)
            if "avatar" in acc
            else None,
            automated=bool(acc["bot"]) if "bot" in acc else None,
        )
    if platform == "bluesky":
        author = _obj(raw.get("author") or _obj(raw.get("post")).get("author"))
        if not author:
            return Profile()
        labels = [str(_obj(x).get("val")) for x in author.get("labels") or []]
        return Profile(
            created_at=_when(author.get("createdAt")),
            default_avatar=not author.get("avatar"),
            automated=True if "bot" in labels else None,
            labels=tuple(labels),
        )
    if platform == "telegram":
        found = raw.get("channel_labels")
        return Profile(labels=tuple(str(x) for x in found) if isinstance(found, list) else ())
    if platform == "twitter":
        author = _obj(raw.get("author"))
        if author:
            image = author.get("profile_image_url")
            return Profile(
                created_at=_when(author.get("created_at")),
                default_avatar=("default_profile_images" in str(image)) if image else None,
                verified_type=str(author["verified_type"]) if author.get("verified_type") else None,
            )
        user = _obj(raw.get("user"))
        if user:
            return Profile(
                created_at=_when(user.get("created_at")),
                default_avatar=bool(user["default_profile_image"])
                if "default_profile_image" in user
                else None,
            )
    return Profile()


#: Platform labels that name a type: (platform, label, value) -> type.
LABEL_TYPES: dict[tuple[str, str, str], str] = {
    ("twitter", "verified_type", "government"): "diplomat",
    # Telegram marks channels many users reported as scams or impersonations.
    ("telegram", "label", "scam"): "inauthentic",
    ("telegram", "label", "fake"): "inauthentic",
    # Bluesky's moderation service labels accounts that impersonate someone.
    ("bluesky", "label", "impersonation"): "inauthentic",
}

#: Words of a display name or handle that name a type, per type (lower case; a word of a
#: name must be whole, a handle only has to contain it).
NAME_WORDS: dict[str, tuple[str, ...]] = {
    "diplomat": (
        "embassy",
        "consulate",
        "ambassador",
        "ministry of foreign affairs",
        "foreign ministry",
        "mfa",
        "посольство",
        "консульство",
        "генконсульство",
        "посол",
        "мид",
        "министерство иностранных дел",
        "елшілігі",
        "елшісі",
        "консулдығы",
        "сыртқы істер министрлігі",
    ),
    "journalist": (
        "journalist",
        "reporter",
        "correspondent",
        "журналист",
        "журналистка",
        "корреспондент",
        "тілші",
    ),
    "politician": (
        "member of parliament",
        "senator",
        "депутат",
        "сенатор",
        "мәжіліс депутаты",
    ),
}
#: Handle fragments (no spaces in handles) per type.
HANDLE_WORDS: dict[str, tuple[str, ...]] = {
    "diplomat": ("embassy", "consulate", "mfa"),
}


def label_type(platform: str, profile: Profile) -> tuple[str, dict[str, Any]] | None:
    """Return the type a platform label gives, with the label; None when none does."""
    for label in profile.labels:
        found = LABEL_TYPES.get((platform, "label", label))
        if found:
            return found, {"rule": "label", "platform": platform, "label": "label", "value": label}
    if profile.verified_type:
        found = LABEL_TYPES.get((platform, "verified_type", profile.verified_type))
        if found:
            return found, {
                "rule": "label",
                "platform": platform,
                "label": "verified_type",
                "value": profile.verified_type,
            }
    return None


def name_type(name: str | None, handle: str) -> tuple[str, dict[str, Any]] | None:
    """Return the type a word of the name or handle gives, with the word; None otherwise."""
    text = " ".join(re.findall(r"\w+", (name or "").lower()))
    padded = f" {text} "
    for actor_type, words in NAME_WORDS.items():
        for word in words:
            if f" {word} " in padded:
                return actor_type, {"rule": "name", "field": "name", "word": word}
    low = handle.lower()
    for actor_type, words in HANDLE_WORDS.items():
        for word in words:
            if word in low:
                return actor_type, {"rule": "name", "field": "handle", "word": word}
    return None
