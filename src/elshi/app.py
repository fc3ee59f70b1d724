"""create_app(settings) -> FastAPI: mounts each domain's views."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse

from elshi import __version__
from elshi.accounts.service import LoginPolicy, install_log_masking
from elshi.db import Database
from elshi.settings import Settings
from elshi.web.bounds import install as install_bounds
from elshi.web.deps import LoginRequired
from elshi.web.observe import install as install_observe
from elshi.web.outage import install as install_outage
from elshi.web.policy import check_routes
from elshi.web.security import SecurityHeaders, ServerTiming


def open_alerts(db: Database, principal: Any) -> int:
    """Count the open alerts a user may see (shown in the navigation)."""
    from elshi.alerts.service import open_count

    with db.session() as s:
        return open_count(db=s, principal=principal)


def app_from_environment() -> FastAPI:
    """Build the web app from ELSHI_* settings: one per process of `elshi web --workers N`."""
    from elshi import jobs
    from elshi.settings import hide_secrets, load_settings

    hide_secrets()  # the keys leave os.environ, so nothing this process starts inherits them
    settings = load_settings()
    from elshi import logs

    logs.apply(settings)  # this process's log lines: format and level of the settings
    db = Database(settings)
    return create_app(settings, db=db, runtime=jobs.bind(settings, db))


def create_app(settings: Settings, *, db: Database | None = None, runtime: Any = None) -> FastAPI:
    """Build the web app for these settings."""
    from elshi.accounts.views import api as accounts_api
    from elshi.accounts.views import router as accounts_router
    from elshi.actors.views import router as actor_pages
    from elshi.admin.views import router as admin_router
    from elshi.alerts.views import api as alerts_api
    from elshi.alerts.views import router as alerts_router
    from elshi.consulate.views import install as install_consulate
    from elshi.coordination.views import router as coordination_pages
    from elshi.crisis.views import public as crisis_public
    from elshi.crisis.views import router as crisis_router
    from elshi.digest.views import router as digest_router
    from elshi.listen.views import api as listen_api
    from elshi.listen.views import explore as listen_explore
    from elshi.listen.views import pages as listen_pages
    from elshi.nlp.views import pages as narrative_pages
    from elshi.nlp.views import router as narratives_router
    from elshi.speak.views import api as speak_api
    from elshi.speak.views import public as speak_public
    from elshi.speak.views import router as speak_router
    from elshi.watch.views import router as watch_router
    from elshi.web.views import mount_static
    from elshi.web.views import router as web_router

    app = FastAPI(
        title="elshi",
        version=__version__,
        description="Digital diplomacy for a ministry and its missions: listen, speak, serve, "
        "analyse. Send an API token (`elshi users token EMAIL`) as `Authorization: Bearer ...`.",
        docs_url=None,
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db or Database(settings)
    app.state.runtime = runtime
    app.state.login_policy = LoginPolicy.from_settings(settings)
    install_log_masking()
    app.add_middleware(SecurityHeaders)
    if settings.server_timing:
        app.add_middleware(ServerTiming)

    install_bounds(app)
    # The database unreachable: 503 with Retry-After (JSON or a page needing no database).
    install_outage(app)
    # Request ids, one log line per request, /healthz, /readyz and /metrics.
    install_observe(app)

    @app.exception_handler(LoginRequired)
    def to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse("/login?" + urlencode({"next": exc.next_url}), status_code=303)

    @app.get(
        "/health",
        tags=["ops"],
        summary="Liveness and database check",
        responses={503: {"description": "The database cannot be reached; see Retry-After."}},
    )
    def health() -> dict[str, str]:
        from sqlalchemy import text

        with app.state.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    app.include_router(listen_api)
    app.include_router(narratives_router)
    app.include_router(accounts_api)
    app.include_router(speak_api)
    app.include_router(speak_router)
    app.include_router(speak_public)
    app.include_router(accounts_router)
    app.include_router(listen_pages)
    app.include_router(web_router)
    install_consulate(app)
    app.include_router(watch_router)
    app.include_router(narrative_pages)
    app.include_router(coordination_pages)
    app.include_router(actor_pages)
    app.include_router(listen_explore)
    app.include_router(alerts_router)
    app.include_router(alerts_api)
    app.include_router(digest_router)
    app.include_router(crisis_public)  # first: /crisis/sms/inbound is not an officer page
    app.include_router(crisis_router)
    app.include_router(admin_router)
    app.state.open_alerts = open_alerts
    mount_static(app)
    # Every route says who may call it (elshi.web.policy): an undeclared one stops start-up.
    check_routes(app.routes)
    return app
