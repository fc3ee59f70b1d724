"""Virus scanners for uploads, registered through the same plugin hook a third party would use.

ClamAV is reached through clamd's UNIX socket with the INSTREAM command
(https://docs.clamav.net/manual/Usage/Scanning.html#clamd): the client sends
`zINSTREAM\\0`, then chunks each prefixed by their length as a 4-byte big-endian
number, then a zero length; clamd answers `stream: OK\\0` or `stream: <name> FOUND\\0`.
"""

from __future__ import annotations

import socket
import struct
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from elshi.plugins import hookimpl
from elshi.settings import Settings


@dataclass(frozen=True)
class ScanResult:
    """The verdict on one file."""

    clean: bool
    detail: str = ""


class ScannerUnavailable(RuntimeError):
    """The configured scanner cannot be reached; uploads are refused rather than let through."""


class Scanner(ABC):
    """A virus scanner: `available` says whether it can run here, `scan` judges bytes."""

    slug: ClassVar[str]
    title: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    @abstractmethod
    def available(cls, settings: Settings) -> bool:
        """Return True when this scanner can run on this machine."""

    @abstractmethod
    def scan(self, data: bytes) -> ScanResult:
        """Judge one file."""


class NoScanner(Scanner):
    """No virus scanning: files pass, and each document records that nothing scanned it."""

    slug = "none"
    title = "No scanner (uploads are not scanned for viruses)"

    @classmethod
    def available(cls, settings: Settings) -> bool:
        """Always available."""
        return True

    def scan(self, data: bytes) -> ScanResult:
        """Let the file pass."""
        return ScanResult(True, "not scanned")


class ClamAV(Scanner):
    """ClamAV through the clamd daemon's UNIX socket (ELSHI_CLAMD_SOCKET)."""

    slug = "clamav"
    title = "ClamAV (clamd)"
    chunk = 64 * 1024

    @classmethod
    def available(cls, settings: Settings) -> bool:
        """Return True when clamd's socket exists."""
        return settings.clamd_socket.exists()

    def scan(self, data: bytes) -> ScanResult:
        """Stream the bytes to clamd and read its verdict."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(60)
                sock.connect(str(self.settings.clamd_socket))
                sock.sendall(b"zINSTREAM\0")
                for start in range(0, len(data), self.chunk):
                    part = data[start : start + self.chunk]
                    sock.sendall(struct.pack(">I", len(part)) + part)
                sock.sendall(struct.pack(">I", 0))
                reply = b""
                while not reply.endswith(b"\0"):
                    got = sock.recv(4096)
                    if not got:
                        break
                    reply += got
        except OSError as exc:
            raise ScannerUnavailable(f"clamd at {self.settings.clamd_socket}: {exc}") from exc
        text = reply.rstrip(b"\0").decode("utf-8", "replace")
        if text.endswith("FOUND"):
            return ScanResult(False, text.removeprefix("stream: ").removesuffix(" FOUND"))
        if text.endswith("OK"):
            return ScanResult(True, "clean")
        raise ScannerUnavailable(f"clamd answered {text!r}")


@hookimpl
def elshi_virus_scanners() -> list[type[Scanner]]:
    """Return the built-in scanners."""
    return [ClamAV, NoScanner]
