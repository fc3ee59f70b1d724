"""Images a statement version carries: checked by content with Pillow, re-encoded without
metadata, kept in private storage like consulate uploads, read back for each channel."""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from elshi.consulate import documents
from elshi.errors import InvalidRequest
from elshi.imaging import MAX_PIXELS, reencode
from elshi.settings import Settings
from elshi.web.i18n import N_

#: Pillow's format name -> (content type, extension). Only what every channel can show.
FORMATS = {
    "JPEG": ("image/jpeg", ".jpg"),
    "PNG": ("image/png", ".png"),
    "WEBP": ("image/webp", ".webp"),
}
MAX_ALT = 1500

EMPTY = N_("Image: the file is empty.")
TOO_BIG = N_("Image %(name)s: it has %(size)s MB; the most is %(mb)s MB.")
NOT_IMAGE = N_(
    "Image %(name)s: the file is not a JPEG, PNG or WebP image (its content was checked, "
    "not its name)."
)
DAMAGED = N_("Image %(name)s: the picture could not be read; it may be damaged.")
NO_ALT = N_(
    "Image %(name)s: describe the picture in a few words (alt text) for readers who cannot see it."
)
LONG_ALT = N_("Image %(name)s: the description has at most %(max)s characters.")
TOO_MANY = N_("A language version can carry at most %(n)s images.")


class MediaError(InvalidRequest):
    """An image was refused; the message template says what and where."""


@dataclass(frozen=True)
class CheckedImage:
    """An image that passed the checks, ready to store."""

    data: bytes
    content_type: str
    filename: str
    width: int
    height: int
    sha256: str


@dataclass(frozen=True)
class ImageFile:
    """A stored image read back for a channel."""

    key: str
    data: bytes
    content_type: str
    filename: str
    alt: str
    width: int
    height: int


def _display_name(name: str) -> str:
    base = unicodedata.normalize("NFC", Path(name.replace("\\", "/")).name)
    return re.sub(r"[^\w.\- ]+", "_", base).strip(" ._")[:80] or "image"


def check_image(
    *, data: bytes, filename: str, alt: str, max_bytes: int, size: int | None = None
) -> CheckedImage:
    """Check an uploaded image by its content; re-encode it without metadata.

    Raises MediaError naming the file and what is wrong.
    """
    name = _display_name(filename)
    alt = alt.strip()
    if not data:
        raise MediaError(EMPTY)
    size = max(size or 0, len(data))  # a caller may read only the first bytes of a big file
    if size > max_bytes:
        raise MediaError(
            TOO_BIG, name=name, size=f"{size / 1_000_000:.1f}", mb=f"{max_bytes / 1e6:g}"
        )
    if not alt:
        raise MediaError(NO_ALT, name=name)
    if len(alt) > MAX_ALT:
        raise MediaError(LONG_ALT, name=name, max=MAX_ALT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format or ""
                if fmt not in FORMATS:
                    raise MediaError(NOT_IMAGE, name=name)
                if probe.width * probe.height > MAX_PIXELS:
                    raise MediaError(DAMAGED, name=name)
                probe.verify()
            clean, width, height = reencode(data, fmt)
    except MediaError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaError(NOT_IMAGE, name=name) from None
    except Exception:  # any decoder error means a damaged or hostile image
        raise MediaError(DAMAGED, name=name) from None
    content_type, ext = FORMATS[fmt]
    return CheckedImage(
        data=clean,
        content_type=content_type,
        filename=name.rsplit(".", 1)[0][:76] + ext,
        width=width,
        height=height,
        sha256=hashlib.sha256(clean).hexdigest(),
    )


def root(settings: Settings) -> Path:
    """Return the folder statement images are kept in (beside the consulate's uploads)."""
    return settings.uploads_path / "speak"


def store(settings: Settings, checked: CheckedImage) -> str:
    """Write the image (owner-only, atomically) and return its storage key."""
    return documents.store(root(settings), checked.data)


def remove(settings: Settings, keys: list[str]) -> int:
    """Delete stored images; return how many existed."""
    return documents.remove(root(settings), keys)


def read(settings: Settings, key: str) -> bytes:
    """Return a stored image's bytes (raises FileNotFoundError or ValueError)."""
    return documents.read(root(settings), key)


def entry(key: str, checked: CheckedImage, alt: str) -> dict[str, Any]:
    """Return the media entry a version keeps for a stored image (part of what is approved)."""
    return {
        "key": key,
        "url": public_path(key),
        "alt": alt.strip(),
        "content_type": checked.content_type,
        "filename": checked.filename,
        "width": checked.width,
        "height": checked.height,
        "size": len(checked.data),
        "sha256": checked.sha256,
    }


def public_path(key: str) -> str:
    """Return the path elshi serves a published image at."""
    return f"/news-media/{key}"


def absolute(base: str, url: str) -> str:
    """Return a media address usable outside elshi (an uploaded image's path gets the base)."""
    return base.rstrip("/") + url if url.startswith("/") else url


def images_of(settings: Settings, media: list[dict[str, Any]]) -> list[ImageFile]:
    """Read back a version's stored images (links are left out) in their order.

    Raises MediaError when a stored file is missing or changed since it was approved.
    """
    out = []
    for item in media:
        key = item.get("key")
        if not key:
            continue
        try:
            data = read(settings, str(key))
        except (FileNotFoundError, ValueError):
            raise MediaError(
                N_("Image %(name)s is missing from storage; upload it again."),
                name=item.get("filename", key),
            ) from None
        if hashlib.sha256(data).hexdigest() != item.get("sha256"):
            raise MediaError(
                N_("Image %(name)s changed in storage since it was approved; upload it again."),
                name=item.get("filename", key),
            )
        out.append(
            ImageFile(
                key=str(key),
                data=data,
                content_type=str(item.get("content_type", "image/jpeg")),
                filename=str(item.get("filename", "image.jpg")),
                alt=str(item.get("alt", "")),
                width=int(item.get("width") or 0),
                height=int(item.get("height") or 0),
            )
        )
    return out
