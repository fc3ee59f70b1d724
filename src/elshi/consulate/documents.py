"""Uploaded documents: type by content, images re-encoded without metadata, private storage."""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from elshi.consulate.service import Invalid, Problem
from elshi.web.i18n import N_

#: What may be uploaded, recognised by the first bytes of the file, never by its name.
MAGIC = (
    (b"%PDF-", "application/pdf", ".pdf"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
)
EXTENSIONS = {content_type: ext for _, content_type, ext in MAGIC}
#: PDF features that run code or carry other files; a consular form never needs them.
PDF_ACTIVE = re.compile(rb"/(JavaScript|JS(?![A-Za-z])|Launch|EmbeddedFile|RichMedia)")
MAX_PIXELS = 40_000_000

EMPTY = N_("The file is empty.")
TOO_BIG = N_("The file is larger than %(mb)s MB.")
BAD_TYPE = N_("Only PDF, JPEG and PNG files are accepted; this file is none of them.")
BAD_IMAGE = N_("The image could not be read; it may be damaged.")
BAD_PDF = N_("The PDF is damaged or contains scripts or attachments, which are not accepted.")
INFECTED = N_("The virus scanner refused this file.")
NO_SCANNER = N_("Files cannot be checked for viruses right now. Please try again later.")
TOO_MANY = N_("A request can hold at most %(n)s documents.")
BAD_KIND = N_("Choose which document this is from the list.")
NO_FILE = N_("Choose a file to upload.")


@dataclass(frozen=True)
class CheckedFile:
    """A file that passed the checks, ready to store."""

    data: bytes
    content_type: str
    filename: str
    sha256: str


def _refuse(message: str, **params: object) -> Invalid:
    return Invalid(Problem("file", message, dict(params)))


def sniff(data: bytes) -> str | None:
    """Return the content type recognised from the file's first bytes, or None."""
    for magic, content_type, _ in MAGIC:
        if data.startswith(magic):
            return content_type
    return None


def safe_filename(name: str, content_type: str) -> str:
    """Return a harmless display name with the extension that matches the content."""
    base = unicodedata.normalize("NFC", Path(name.replace("\\", "/")).name)
    stem = re.sub(r"[^\w.\- ]+", "_", base.rsplit(".", 1)[0]).strip(" ._")[:80] or "document"
    return stem + EXTENSIONS[content_type]


def _reencode(data: bytes, content_type: str) -> bytes:
    """Decode and re-encode an image: drops EXIF/GPS, comments and anything appended."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                if probe.width * probe.height > MAX_PIXELS:
                    raise _refuse(BAD_IMAGE)
                probe.verify()
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                upright = ImageOps.exif_transpose(img)
                out = io.BytesIO()
                if content_type == "image/jpeg":
                    clean = upright.convert("RGB")
                    clean.save(out, "JPEG", quality=90, optimize=True)
                else:
                    mode = (
                        upright.mode if upright.mode in ("RGB", "RGBA", "L", "LA", "P") else "RGBA"
                    )
                    clean = upright.convert(mode)
                    clean.save(out, "PNG", optimize=True)
                return out.getvalue()
    except Invalid:
        raise
    except Exception:  # any decoder error means a damaged or hostile image
        raise _refuse(BAD_IMAGE) from None


def _check_pdf(data: bytes) -> None:
    if b"%%EOF" not in data[-2048:]:
        raise _refuse(BAD_PDF)
    # Names may hide letters as #xx escapes; undo them before looking.
    plain = re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m[1], 16)]), data)
    if PDF_ACTIVE.search(plain):
        raise _refuse(BAD_PDF)


def check_upload(*, data: bytes, filename: str, max_bytes: int) -> CheckedFile:
    """Check size and type by content; re-encode images. Raise Invalid saying what is wrong."""
    if not data:
        raise _refuse(EMPTY)
    if len(data) > max_bytes:
        raise _refuse(TOO_BIG, mb=f"{max_bytes / 1_000_000:g}")
    content_type = sniff(data)
    if content_type is None:
        raise _refuse(BAD_TYPE)
    if content_type == "application/pdf":
        _check_pdf(data)
    else:
        data = _reencode(data, content_type)
    return CheckedFile(
        data=data,
        content_type=content_type,
        filename=safe_filename(filename, content_type),
        sha256=hashlib.sha256(data).hexdigest(),
    )


# ---------------------------------------------------------------------------- storage

_KEY = re.compile(r"^[0-9a-f]{32}$")


def file_path(root: Path, key: str) -> Path:
    """Return where a stored file lives; refuse anything but a key elshi made."""
    if not _KEY.match(key):
        raise ValueError(f"not a storage key: {key!r}")
    return root / key[:2] / key


def store(root: Path, data: bytes) -> str:
    """Write bytes under a new random name (atomically, owner-only) and return the key."""
    key = secrets.token_hex(16)
    path = file_path(root, key)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return key


def remove(root: Path, keys: list[str]) -> int:
    """Delete stored files; return how many existed."""
    gone = 0
    for key in keys:
        try:
            file_path(root, key).unlink()
            gone += 1
        except (FileNotFoundError, ValueError):
            pass
    return gone


def read(root: Path, key: str) -> bytes:
    """Return a stored file's bytes."""
    return file_path(root, key).read_bytes()
