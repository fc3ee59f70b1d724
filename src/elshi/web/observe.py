"""Operations endpoints and request bookkeeping: /healthz, /readyz, /metrics, request ids.

- /healthz: the process answers (liveness; touches nothing else).
- /readyz: the database, the task queue and the free disk are fine (readiness: a load
  balancer sends traffic here only then).
- /metrics: Prometheus text format; a bearer token (ELSHI_METRICS_TOKEN) or, without one,
  requests from this machine that came through no proxy. Never open to the world by default.

Every request gets an id (an incoming X-Request-ID that looks like one, else a new one), sent
back in X-Request-ID and written on every log line of the request. One log line per request
names the route template, never the path (paths carry secret link tokens).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from elshi import logs, metrics

log = logging.getLogger("elshi.request")

#: Headers a reverse proxy adds: a request carrying one did not come from this machine.
PROXY_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip")


def route_of(scope: Scope) -> str:
    """The route template a request matched (`/posts/{post_id}`), or `<unmatched>`."""
    route = scope.get("route")
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    return str(path) if path else "<unmatched>"


class RequestIds:
    """Give each request an id, log one line for it and count it under its route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = given if logs.REQUEST_ID.match(given) else uuid.uuid4().hex
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = route_of(scope)
            method = str(scope.get("method", ""))
            metrics.observe_request(method, route, status, seconds)
            log.info(
                "%s %s %d %.1f ms",
                method,
                route,
                status,
                seconds * 1000,
                extra={"method": method, "route": route, "status": status, "ms": seconds * 1000},
            )
            logs.request_id.reset(token)


def _loopback_direct(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
    proxied = any(name in PROXY_HEADERS for name, _ in request.scope.get("headers") or [])
    return loopback and not proxied


def metrics_allowed(request: Request, token: str) -> bool:
    """Whether this request may read /metrics (see the module's doc)."""
    if token:
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    return _loopback_direct(request)


def _queue(app: FastAPI) -> Any:
    runtime = app.state.runtime
    if runtime is not None:
        return runtime.huey
    queue = getattr(app.state, "ready_queue", None)
    if queue is None:
        from elshi.jobs import build_huey

        queue = app.state.ready_queue = build_huey(app.state.settings)
    return queue


def readiness(app: FastAPI) -> tuple[bool, dict[str, str]]:
    """Check the database, the queue and the free disk; return (ready, what each says)."""
    from sqlalchemy import text

    settings = app.state.settings
    checks: dict[str, str] = {}
    try:
        with app.state.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
    try:
        queue = _queue(app)
        queue.pending_count()
        checks["queue"] = "ok"
    except Exception as exc:
        checks["queue"] = f"unreachable ({type(exc).__name__})"
    least = settings.ready_min_free_mb
    for name, folder in (("disk", Path(settings.home)), ("uploads disk", settings.uploads_path)):
        probe = folder
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            free_mb = shutil.disk_usage(probe).free // 1_000_000
        except OSError as exc:
            checks[name] = f"cannot be read ({exc.strerror})"
            continue
        checks[name] = (
            f"ok ({free_mb} MB free)"
            if free_mb >= least
            else f"low: {free_mb} MB free, {least} MB needed (ELSHI_READY_MIN_FREE_MB)"
        )
    return all(v.startswith("ok") for v in checks.values()), checks


def install(app: FastAPI) -> None:
    """Add the request ids and the /healthz, /readyz and /metrics endpoints."""
    app.add_middleware(RequestIds)

    @app.get("/healthz", tags=["ops"], summary="Liveness: the process answers")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="Readiness: database, queue and free disk",
        responses={503: {"description": "Not ready; the body says which check failed."}},
    )
    def readyz() -> Response:
        ready, checks = readiness(app)
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
            headers={} if ready else {"Retry-After": "10"},
        )

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics (bearer token or loopback)",
        responses={403: {"description": "No token, a wrong token, or not from this machine."}},
    )
    def prometheus(request: Request) -> Response:
        if not metrics_allowed(request, app.state.settings.metrics_token):
            return PlainTextResponse(
                "metrics: send Authorization: Bearer ELSHI_METRICS_TOKEN, or ask from this "
                "machine when no token is set\n",
                status_code=403,
            )
        queue: Any = None
        try:
            queue = _queue(app)
        except Exception as exc:
            log.warning("metrics: no queue: %s", type(exc).__name__)
        return Response(
            metrics.exposition(app.state.db, queue),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )
