"""Speak's pages: statements for staff, the public news pages with their feeds, a JSON API.

One module per part: editor (list, new statement, editor and its buttons), planning (approval
queue, calendar, reach, rebuttal), news (public pages, feeds, newsletter) and json_api; common
holds the routers and the helpers they share. Importing the parts registers their routes;
editor comes before planning so that /speak/media/{key} is matched before /speak/{n}/reach.
"""

from __future__ import annotations

from elshi.speak.views import editor, json_api, news, planning
from elshi.speak.views.common import STATUS_NAMES, advice, api, public, router

__all__ = [
    "STATUS_NAMES",
    "advice",
    "api",
    "editor",
    "json_api",
    "news",
    "planning",
    "public",
    "router",
]
