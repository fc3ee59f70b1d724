"""App-wide pages: the offline API docs page, and the static files (CSS, Swagger UI)."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from elshi.web.templating import render

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).parent / "static"
#: Swagger UI's files as shipped in a PyPI package, so /api/docs needs no CDN.
SWAGGER_STATIC = Path(fastapi_offline.__file__).parent / "static"


def mount_static(app: FastAPI) -> None:
    """Serve elshi's CSS and the Swagger UI files from this package's installation."""
    app.mount("/static/swagger", StaticFiles(directory=SWAGGER_STATIC), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


@router.get("/api/docs")
def api_docs(request: Request) -> Response:
    """Swagger UI for /api/openapi.json, served from elshi itself."""
    return render(request, "api_docs.html", {"openapi_url": request.app.openapi_url})
