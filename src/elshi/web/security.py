"""Security headers on every response: CSP, no sniffing, no framing, no caching of data."""

from __future__ import annotations

import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI sets style attributes from script; nothing else on that page is relaxed.
DOCS_CSP = CSP + "; style-src 'self' 'unsafe-inline'"
DOCS_PATH = "/api/docs"


class SecurityHeaders:
    """ASGI middleware adding security headers unless a response sets its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and add headers to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                defaults = {
                    "Content-Security-Policy": DOCS_CSP if path == DOCS_PATH else CSP,
                    "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "same-origin",
                    "X-Frame-Options": "DENY",
                    "Cross-Origin-Opener-Policy": "same-origin",
                    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
                }
                if not path.startswith("/static/"):
                    defaults["Cache-Control"] = "no-store"
                if https:
                    defaults["Strict-Transport-Security"] = "max-age=31536000"
                for name, value in defaults.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ServerTiming:
    """ASGI middleware adding `Server-Timing: app;dur=<ms>`: the time a request spent in elshi.

    Load tests read it to tell the server's own time from the queueing in front of it and
    the load generator's delays; it is off unless ELSHI_SERVER_TIMING is set.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and stamp the elapsed time on the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_with_timing(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1000
                MutableHeaders(scope=message).append("Server-Timing", f"app;dur={elapsed:.1f}")
            await send(message)

        await self.app(scope, receive, send_with_timing)
