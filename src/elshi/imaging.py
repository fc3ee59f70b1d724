"""Images people upload (consular documents, statement pictures): encoded again before keeping."""

from __future__ import annotations

import io

from PIL import Image, ImageOps

#: The most pixels an uploaded image may have (a decompression bomb has far more).
MAX_PIXELS = 40_000_000


def reencode(data: bytes, fmt: str) -> tuple[bytes, int, int]:
    """Decode a checked image and encode it again, upright, as `fmt` (JPEG, PNG or WEBP): this
    drops EXIF/GPS, comments and anything appended. Return the bytes, width and height."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        upright = ImageOps.exif_transpose(img)
        out = io.BytesIO()
        if fmt == "JPEG":
            upright.convert("RGB").save(out, "JPEG", quality=90, optimize=True)
        elif fmt == "PNG":
            mode = upright.mode if upright.mode in ("RGB", "RGBA", "L", "LA", "P") else "RGBA"
            upright.convert(mode).save(out, "PNG", optimize=True)
        else:
            upright.save(out, "WEBP", quality=90)
        return out.getvalue(), upright.width, upright.height
