"""Listen's pages and API: `pages` (overview, post search, sources), `explore` (the post
explorer, post and author pages, saved searches) and `api` (the JSON API under /api)."""

from __future__ import annotations

from elshi.listen.views.api import router as api
from elshi.listen.views.explore import router as explore
from elshi.listen.views.pages import router as pages

__all__ = ["api", "explore", "pages"]
