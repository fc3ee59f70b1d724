"""E-consulate pages: citizens on a phone (/consulate/...) and consular officers (/consular/...).

One module per part: account (sign-up, sign-in, app shell), citizen (the citizen's own pages),
officers, catalogue, api (JSON); common holds the routers and the helpers they share. Importing
the parts registers their routes (no two parts' paths overlap, so the order does not matter).
"""

from __future__ import annotations

from typing import Any

from elshi.consulate.views import account, advisories, api, catalogue, citizen, officers
from elshi.consulate.views.common import (
    CITIZEN_COOKIE,
    CitizenLoginRequired,
    NoMission,
    _serializer,
    current_citizen,
    no_mission,
    require_citizen,
    router,
    staff,
    to_citizen_login,
)
from elshi.consulate.views.common import (
    api as api_router,
)

__all__ = [
    "CITIZEN_COOKIE",
    "CitizenLoginRequired",
    "_serializer",
    "account",
    "advisories",
    "api",
    "api_router",
    "catalogue",
    "citizen",
    "current_citizen",
    "install",
    "officers",
    "require_citizen",
    "router",
    "staff",
    "to_citizen_login",
]


def install(app: Any) -> None:
    """Mount the e-consulate's pages, its JSON API and its sign-in redirect on the app."""
    app.add_exception_handler(CitizenLoginRequired, to_citizen_login)
    app.add_exception_handler(NoMission, no_mission)
    app.include_router(router)
    app.include_router(staff)
    app.include_router(api_router)
