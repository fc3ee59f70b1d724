"""Web push (RFC 8030, messages encrypted per RFC 8291, VAPID per RFC 8292) with pywebpush.

elshi makes its own VAPID key pair on first use and keeps it in <home>/vapid.pem; browsers
subscribe with the public key (GET /consulate/push/key) and the subscription is stored per
citizen (POST /consulate/push/subscribe).
"""

from __future__ import annotations

import base64
import threading
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02

from elshi.settings import Settings

_LOCK = threading.Lock()


def key_path(settings: Settings) -> Path:
    """Where the VAPID private key lives."""
    return Path(settings.home) / "vapid.pem"


def vapid(settings: Settings) -> Vapid02:
    """Return elshi's VAPID key, making and saving one (mode 600) the first time."""
    path = key_path(settings)
    with _LOCK:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = Vapid02()
            key.generate_keys()
            path.write_bytes(key.private_pem())
            path.chmod(0o600)
    return Vapid02.from_file(str(path))


def public_key(settings: Settings) -> str:
    """Return the applicationServerKey browsers subscribe with (base64url, uncompressed P-256)."""
    path = key_path(settings)
    if not path.exists():
        vapid(settings)
    return _public_key(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _public_key(path: str, mtime_ns: int) -> str:
    # Read and parsed once per key file (and again if the file is replaced), not per request.
    raw = Vapid02.from_file(path).public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
