"""Uploaded documents: type by content, images re-encoded without metadata, PDFs rewritten
without scripts, attachments or forms, private storage."""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import unicodedata
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pikepdf
from PIL import Image

from elshi.errors import Invalid, Problem
from elshi.imaging import MAX_PIXELS, reencode
from elshi.web.i18n import N_

#: What may be uploaded, recognised by the first bytes of the file, never by its name.
MAGIC = (
    (b"%PDF-", "application/pdf", ".pdf"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
)
EXTENSIONS = {content_type: ext for _, content_type, ext in MAGIC}
#: Keys that run code, carry files or hold forms, wherever they appear in a PDF: document and
#: page actions (/OpenAction, /AA), scripts (/JS, the /JavaScript name tree), attachments
#: (/EmbeddedFiles, /EF, /AF), forms (/AcroForm with its /XFA) and rich media. A consular
#: document never needs them.
PDF_DROPPED_KEYS = (
    "/AA",
    "/OpenAction",
    "/JS",
    "/JavaScript",
    "/EmbeddedFiles",
    "/EF",
    "/AF",
    "/AcroForm",
    "/XFA",
    "/NeedsRendering",
    "/Collection",
    "/RichMediaContent",
    "/RichMediaSettings",
)
#: The one action a clean PDF keeps: a jump within the document (outlines, links). Launch, URI,
#: SubmitForm, ImportData, GoToR, GoToE, JavaScript and every other action are dropped.
PDF_SAFE_ACTION = "/GoTo"
#: Annotations that are form fields, attached files or media players.
PDF_DROPPED_ANNOTS = frozenset(
    {"/Widget", "/FileAttachment", "/Screen", "/Movie", "/Sound", "/RichMedia", "/3D"}
)

EMPTY = N_("The file is empty.")
TOO_BIG = N_("The file is larger than %(mb)s MB.")
BAD_TYPE = N_("Only PDF, JPEG and PNG files are accepted; this file is none of them.")
BAD_IMAGE = N_("The image could not be read; it may be damaged.")
BAD_PDF = N_("The PDF could not be read; it may be damaged. Save or print it to PDF again.")
LOCKED_PDF = N_("The PDF is protected by a password; upload a copy without the password.")
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
            return reencode(data, "JPEG" if content_type == "image/jpeg" else "PNG")[0]
    except Invalid:
        raise
    except Exception:  # any decoder error means a damaged or hostile image
        raise _refuse(BAD_IMAGE) from None


def _pdf_dicts(pdf: pikepdf.Pdf) -> Iterator[pikepdf.Object]:
    """Yield every dictionary (and stream) reachable from the trailer once, parents first.

    The caller may change a dictionary before its children are visited.
    """
    seen: set[tuple[int, int]] = set()
    stack: list[pikepdf.Object] = [pdf.trailer]
    while stack:
        obj = stack.pop()
        container = isinstance(obj, pikepdf.Dictionary | pikepdf.Stream | pikepdf.Array)
        if not container:
            continue  # numbers, names and strings hold nothing
        if obj.is_indirect:
            if obj.objgen in seen:
                continue
            seen.add(obj.objgen)
        if isinstance(obj, pikepdf.Array):
            stack.extend(obj)
        else:
            yield obj
            stack.extend(value for _, value in obj.items())


def _unsafe_action(value: pikepdf.Object) -> bool:
    return isinstance(value, pikepdf.Dictionary) and value.get("/S") != PDF_SAFE_ACTION


def _dropped_annot(value: pikepdf.Object) -> bool:
    if not isinstance(value, pikepdf.Dictionary):
        return False
    return str(value.get("/Subtype", "")) in PDF_DROPPED_ANNOTS


def _strip_pdf(pdf: pikepdf.Pdf) -> None:
    """Remove scripts, actions other than GoTo, attachments, forms and media, in place."""
    for obj in _pdf_dicts(pdf):
        for key in PDF_DROPPED_KEYS:
            if key in obj:
                del obj[key]
        action = obj.get("/A")
        if action is not None and _unsafe_action(action):
            del obj["/A"]
        elif isinstance(action, pikepdf.Dictionary) and "/Next" in action:
            del action["/Next"]  # a jump may chain to any other action
        if obj.get("/Type") == "/Action" and "/Next" in obj:
            del obj["/Next"]
        annots = obj.get("/Annots")
        if isinstance(annots, pikepdf.Array):
            obj["/Annots"] = pikepdf.Array([a for a in annots if not _dropped_annot(a)])


def _pdf_leftovers(pdf: pikepdf.Pdf) -> list[str]:
    """Return what active content a PDF still holds (empty when clean)."""
    found = []
    for obj in _pdf_dicts(pdf):
        found += [key for key in PDF_DROPPED_KEYS if key in obj]
        if obj.get("/Type") in ("/Action", "/EmbeddedFile") and obj.get("/S") != PDF_SAFE_ACTION:
            found.append(str(obj.get("/Type")))
        if "/A" in obj and _unsafe_action(obj["/A"]):
            found.append("/A")
        if _dropped_annot(obj) and "/Rect" in obj:
            found.append(str(obj["/Subtype"]))
    return found


def _open_pdf(data: bytes) -> pikepdf.Pdf:
    try:
        return pikepdf.open(io.BytesIO(data))
    except pikepdf.PasswordError:
        raise _refuse(LOCKED_PDF) from None
    except Exception:  # any parser error means a damaged or hostile file
        raise _refuse(BAD_PDF) from None


def normalise_pdf(data: bytes) -> bytes:
    """Rewrite a PDF without scripts, actions, attachments or forms; raise Invalid if unreadable.

    The file is parsed (object streams included), stripped, and written again with every
    object in plain view (no object streams), without encryption and without anything only
    the dropped parts referred to. The result is opened again and checked before it is kept.
    """
    try:
        with _open_pdf(data) as pdf:
            _strip_pdf(pdf)
            out = io.BytesIO()
            pdf.save(
                out,
                object_stream_mode=pikepdf.ObjectStreamMode.disable,
                stream_decode_level=pikepdf.StreamDecodeLevel.none,
                compress_streams=True,
                deterministic_id=True,
            )
        clean = out.getvalue()
        with _open_pdf(clean) as check:
            if _pdf_leftovers(check):
                raise _refuse(BAD_PDF)
    except Invalid:
        raise
    except Exception:  # qpdf refused to write it: damaged beyond repair
        raise _refuse(BAD_PDF) from None
    return clean


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
        data = normalise_pdf(data)
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
