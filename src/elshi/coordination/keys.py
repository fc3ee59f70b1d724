"""What a post shares with others: the keys of each co-action kind.

Pure functions over the fields a stored post has (platform, text, repost_of, reply_to,
extra, content_hash). Nothing is fetched: a shortened link is replaced by its expanded
form only where the post itself carries it (extra["urls"] pairs as X/Twitter gives them).

Near-identical text is compared in one script (elshi.nlp.folding.one_script): the same
message in Kazakh Cyrillic and Latin, or in Russian Cyrillic and transliteration, has one
`near_text` key. An image shares the hash a connector gives for it (extra["image_hash"]).
Imports of anonymised data (CooRTweet's format) carry object ids instead of the objects:
extra["url_id"], ["hashtag_id"] and ["domain_id"] are then link, hashtag and domain keys.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from elshi.nlp.folding import one_script

#: The co-action kinds, in the order pages and reports list them.
KINDS = (
    "repost",
    "link",
    "domain",
    "hashtag",
    "hashtag_seq",
    "text",
    "near_text",
    "image",
    "reply",
)
#: Extra fields that hold anonymised object ids (CooRTweet's data sets), by the kind they key.
OBJECT_IDS = {"url_id": "link", "hashtag_id": "hashtag", "domain_id": "domain"}
#: The extra field of an image's hash (a perceptual hash, a content id): one or a list.
IMAGE_HASH = "image_hash"
#: Shortest folded text that has a near_text key: shorter ones are shared by chance.
MIN_NEAR_TEXT = 20
_EVERY_KIND = frozenset(KINDS)

#: Hosts that only redirect: their links are replaced by the expanded link a post carries.
SHORTENERS = frozenset(
    {
        "t.co",
        "bit.ly",
        "bitly.com",
        "goo.gl",
        "ow.ly",
        "tinyurl.com",
        "buff.ly",
        "dlvr.it",
        "ift.tt",
        "is.gd",
        "fb.me",
        "trib.al",
        "tiny.cc",
        "lnkd.in",
        "youtu.be",
        "vk.cc",
        "clck.ru",
        "t.ly",
        "rebrand.ly",
        "shorturl.at",
        "cutt.ly",
    }
)

#: Query parameters that only track who clicked where; utm_* is matched by its prefix.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "ref_src",
        "ref_url",
        "ref",
        "cmpid",
        "__twitter_impression",
        "s_cid",
        "mkt_tok",
        "si",
        "feature",
        "smid",
        "ncid",
        "ocid",
        "spm",
        "share",
        "from",
        "utm",
    }
)

#: A query that may hold a tracking parameter (then parsed to drop it).
_TRACKING = re.compile(
    r"(?:^|[&;])(?:utm_|" + "|".join(sorted(map(re.escape, TRACKING_PARAMS))) + r")",
    re.IGNORECASE,
)
_URL = re.compile(r"https?://[^\s<>\"'«»]+", re.IGNORECASE)
_URL_TAIL = ".,;:!?)]}”’…"
_HASHTAG = re.compile(r"(?<![\w&/])#(\w+)")
# The same mention pattern and folding as the QUT coordination-network-toolkit's
# message_preprocessor, so that co-text edges match the field's tool exactly.
_MENTION = re.compile(r"@.*?(?=(?:\s|$))")
_RETWEET = re.compile(r"^RT @\w+:")
_WEB = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)


def normalise_url(url: str, expansions: Mapping[str, str] | None = None) -> str | None:
    """Return the link's key: host lower-case without port 80/443, no scheme, fragment or
    tracking parameters, no trailing slash; None for what is not an http(s) link."""
    url = url.strip().rstrip(_URL_TAIL)
    if expansions and url in expansions:
        url = expansions[url]
    return _normalised(url)


#: Links normalised and remembered: shared links recur, and their key is what costs.
_URL_CACHE = 131_072


#: A link urlsplit would split plainly: http(s), a bare host name, no port or user, no
#: characters it strips or treats specially.
_PLAIN_URL = re.compile(
    r"(?i:https?)://([A-Za-z0-9.-]+)((?:/[^?#\x00-\x20\\]*)?)(?:\?([^#\x00-\x20\\]*))?(?:#.*)?"
)
#: A query urlencode(parse_qsl(query)) gives back as it is, once its tracking parts go.
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9_.~=&-]*")


@lru_cache(maxsize=_URL_CACHE)
def _normalised(url: str) -> str | None:
    plain = _PLAIN_URL.fullmatch(url)
    if plain is not None and plain.group(1).strip("."):
        host, path, query = plain.group(1).lower().rstrip("."), plain.group(2), plain.group(3)
        if query and _TRACKING.search(query):
            if _PLAIN_QUERY.fullmatch(query) is None or any(
                piece.count("=") > 1 for piece in query.split("&")
            ):
                return _parsed(url)
            query = "&".join(
                piece if "=" in piece else piece + "="
                for piece in query.split("&")
                if piece
                and not (
                    (name := piece.split("=", 1)[0].lower()).startswith("utm_")
                    or name in TRACKING_PARAMS
                )
            )
        path = path.rstrip("/")
        return f"{host}{path}" + (f"?{query}" if query else "")
    return _parsed(url)


def _parsed(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port if ":" in parts.netloc else None
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower().rstrip(".")
    if port not in (None, 80, 443):
        host = f"{host}:{port}"
    query = parts.query
    if query and _TRACKING.search(query):
        kept = [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS
        ]
        query = urlencode(kept)
    path = parts.path.rstrip("/")
    return f"{host}{path}" + (f"?{query}" if query else "")


def domain_of(link_key: str) -> str:
    """Return the domain of a link key, without a leading www."""
    host = link_key.split("/", 1)[0].split("?", 1)[0]
    return host.removeprefix("www.")


def _expansions(extra: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    urls = extra.get("urls")
    if isinstance(urls, list):
        for item in urls:
            if isinstance(item, dict):
                short, full = item.get("url"), item.get("expanded_url") or item.get("unwound_url")
                if isinstance(short, str) and isinstance(full, str):
                    out[short] = full
    return out


def _extra_links(extra: Mapping[str, Any]) -> Iterable[str]:
    for name in ("links", "link"):
        value = extra.get(name)
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield from (v for v in value if isinstance(v, str))


def links(text: str, extra: Mapping[str, Any] | None = None) -> list[str]:
    """Return the post's link keys, each once, in the order they first appear.

    A shortened link (SHORTENERS) in the text gives way to the expanded links the post
    carries (extra["urls"] pairs, extra["links"]); one the post carries no expansion for is
    kept as it is (the same short link is still the same destination). Nothing is fetched."""
    if not extra:
        if "://" not in text:
            return []
        # No links carried, no expansions: the links in the text as they are.
        plain: list[str] = []
        for raw in _URL.findall(text):
            key = _normalised(raw.rstrip(_URL_TAIL))
            if key is not None and key not in plain:
                plain.append(key)
        return plain
    expansions = _expansions(extra)
    found: list[str] = []
    carried = list(_extra_links(extra))
    in_text: list[str] = list(_URL.findall(text)) if "://" in text else []
    for raw in in_text + carried:
        key = normalise_url(raw, expansions)
        if key is None:
            continue
        if carried and raw in in_text and domain_of(key) in SHORTENERS:
            continue  # its expanded form is among the links the post carries
        if key not in found:
            found.append(key)
    return found


def hashtags(text: str) -> list[str]:
    """Return the hashtags in order of appearance, case-folded (repeats kept)."""
    if "#" not in text:
        return []
    return [h.casefold() for h in _HASHTAG.findall(text) if not h.isdigit()]


def normalise_text(text: str) -> str:
    """Return the text as co-text compares it: lower case, no @mentions, single spaces."""
    text = text.lower()
    return " ".join((_MENTION.sub("", text) if "@" in text else text).split())


def near_text_key(text: str) -> str | None:
    """Return the near_text key of a text: without links or an RT prefix, in one script
    (elshi.nlp.folding.one_script: lower case, no punctuation); None when that is shorter
    than MIN_NEAR_TEXT characters."""
    if text.startswith("RT @"):
        text = _RETWEET.sub("", text)
    if "://" in text or "www." in text:
        text = _WEB.sub(" ", text)
    folded = one_script(text)
    return folded if len(folded) >= MIN_NEAR_TEXT else None


def _values(value: Any) -> list[str]:
    """Return an extra value as a list of non-empty strings (one value or a list)."""
    items = value if isinstance(value, list) else [value]
    out = []
    for v in items:
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, str | int | float) and str(v).strip():
            out.append(str(v).strip())
    return out


def extra_keys(extra: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return the keys a post's extra carries: its image hashes and anonymised object ids."""
    out: list[tuple[str, str]] = []
    for name, kind in OBJECT_IDS.items():
        if name in extra:
            out.extend((kind, f"id:{v}") for v in dict.fromkeys(_values(extra[name])))
    if IMAGE_HASH in extra:
        out.extend(("image", v) for v in dict.fromkeys(_values(extra[IMAGE_HASH])))
    return out


def repost_key(
    platform: str, text: str, repost_of: str | None, extra: Mapping[str, Any] | None = None
) -> str | None:
    """Return what the post reposts: the stored original; for an old-style retweet
    ("RT @name: ...") or a post its connector flags as a retweet without naming the original
    (extra["retweet"], as the IRA files have it), its text; None for an original post."""
    if repost_of:
        return f"{platform}|{repost_of}"
    if (text.startswith("RT @") and _RETWEET.match(text)) or (
        extra is not None and extra.get("retweet") is True
    ):
        return "rt|" + " ".join(text.lower().split())
    return None


def post_keys(
    *,
    platform: str,
    text: str | None,
    repost_of: str | None,
    reply_to: str | None,
    extra: Mapping[str, Any] | None,
    content_hash: int | None,
    kinds: Collection[str] = _EVERY_KIND,
) -> list[tuple[str, str]]:
    """Return (kind, key) for every co-action the post can take part in (of `kinds` only:
    the others are not worked out).

    A repost shares only its original (its links, hashtags and text are the original's);
    every other post shares its links and their domains, hashtags and their sequence, its
    normalised text, its text in one script (near_text), its images and what it replies to.
    `content_hash` (the stored near-duplicate hash, which also covers the title) stands in
    for near_text when the text alone is too short."""
    text = text or ""
    extra = extra if isinstance(extra, Mapping) else None
    repost = repost_key(platform, text, repost_of, extra)
    if repost is not None:
        return [("repost", repost)] if "repost" in kinds else []
    out: list[tuple[str, str]] = []
    found = links(text, extra) if "link" in kinds or "domain" in kinds else None
    if found:
        if "link" in kinds:
            out += [("link", k) for k in found]
        if "domain" in kinds:
            # A shortener's domain says nothing about where its links go.
            domains = dict.fromkeys(d for d in map(domain_of, found) if d not in SHORTENERS)
            out += [("domain", d) for d in domains]
    tags = hashtags(text) if "hashtag" in kinds or "hashtag_seq" in kinds else None
    if tags:
        if "hashtag" in kinds:
            out += [("hashtag", t) for t in dict.fromkeys(tags)]
        if len(tags) >= 2 and "hashtag_seq" in kinds:
            out.append(("hashtag_seq", " ".join(tags)))
    if extra:
        out += [(kind, key) for kind, key in extra_keys(extra) if kind in kinds]
    if "text" in kinds:
        norm = normalise_text(text)
        if norm:
            out.append(("text", norm))
    if "near_text" in kinds:
        near = near_text_key(text) if len(text) >= MIN_NEAR_TEXT else None
        if near is not None:
            out.append(("near_text", near))
        elif content_hash is not None:
            out.append(("near_text", f"hash:{content_hash}"))
    if reply_to and "reply" in kinds:
        out.append(("reply", f"{platform}|{reply_to}"))
    return out


def keys_of(
    post: Any, content_hash: int | None = None, kinds: Collection[str] = _EVERY_KIND
) -> list[tuple[str, str]]:
    """Return post_keys of anything with a post's fields (a stored post, a row, a PostIn);
    `content_hash` stands in where the object has none."""
    return post_keys(
        platform=post.platform,
        text=post.text,
        repost_of=post.repost_of,
        reply_to=post.reply_to,
        extra=post.extra,
        content_hash=getattr(post, "content_hash", content_hash),
        kinds=kinds,
    )
