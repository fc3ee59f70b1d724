"""create_app(settings) -> FastAPI: mounts each domain's views."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from elshi import __version__
from elshi.db import Database
from elshi.settings import Settings


def create_app(settings: Settings, *, db: Database | None = None, runtime: Any = None) -> FastAPI:
    """Build the web app for these settings."""
    from elshi.listen.views import router as listen_router

    app = FastAPI(
        title="elshi",
        version=__version__,
        description="Digital diplomacy for a ministry and its missions: listen, speak, serve, analyse.",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db or Database(settings)
    app.state.runtime = runtime

    @app.get("/health", tags=["ops"], summary="Liveness and database check")
    def health() -> dict[str, str]:
        from sqlalchemy import text

        with app.state.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    app.include_router(listen_router)
    return app
