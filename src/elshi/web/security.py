"""Security headers on every response: CSP, no sniffing, no framing, no caching of data."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def csp_allowing_images(origin: str) -> str:
    """The CSP of a page that also shows images from `origin` (an operator's map tiles)."""
    return CSP.replace("img-src 'self' data:", f"img-src 'self' data: {origin}")


# Swagger UI sets style attributes from script; nothing else on that page is relaxed.
DOCS_CSP = CSP + "; style-src 'self' 'unsafe-inline'"
DOCS_PATH = "/api/docs"


class _ResponseStartMiddleware:
    """ASGI middleware that edits the headers of every HTTP response as it starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and let `on_request`'s editor change the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        edit = self.on_request(scope)

        async def send_edited(message: Message) -> None:
            if message["type"] == "http.response.start":
                edit(MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_edited)

    def on_request(self, scope: Scope) -> Callable[[MutableHeaders], None]:
        """Return what edits this request's response headers (called as the request comes)."""
        raise NotImplementedError


class SecurityHeaders(_ResponseStartMiddleware):
    """ASGI middleware adding security headers unless a response sets its own."""

    def on_request(self, scope: Scope) -> Callable[[MutableHeaders], None]:
        """Add the headers the response does not set itself."""
        path: str = scope.get("path", "")
        https = scope.get("scheme") == "https"

        def add_defaults(headers: MutableHeaders) -> None:
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

        return add_defaults


class ServerTiming(_ResponseStartMiddleware):
    """ASGI middleware adding `Server-Timing: app;dur=<ms>`: the time a request spent in elshi.

    Load tests read it to tell the server's own time from the queueing in front of it and
    the load generator's delays; it is off unless ELSHI_SERVER_TIMING is set.
    """

    def on_request(self, scope: Scope) -> Callable[[MutableHeaders], None]:
        """Stamp the time elapsed since the request came on the response start."""
        started = time.perf_counter()

        def add_timing(headers: MutableHeaders) -> None:
            elapsed = (time.perf_counter() - started) * 1000
            headers.append("Server-Timing", f"app;dur={elapsed:.1f}")

        return add_timing
