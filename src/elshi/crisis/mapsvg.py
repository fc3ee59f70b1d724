"""The crisis map, drawn on the server as SVG: country outlines (and an operator's map tiles,
where set) under the crisis area and the need-help reports.

Each report is a link with an accessible name (the person and their note); the page lists the
same reports beside the map, so the map is never the only way to reach them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup, escape

from elshi.crisis.basemap import Projection, path_data, world

WIDTH, HEIGHT = 640, 400
#: When nothing places the map: the inhabited world.
WORLD_BOX = (-56.0, 75.0, -170.0, 180.0)
TILE_FIELDS = ("{z}", "{x}", "{y}")


@dataclass(frozen=True)
class Marker:
    """One need-help report on the map."""

    lat: float
    lon: float
    #: The accessible name: the person's name and their note.
    label: str
    href: str


def area_outline(area: Mapping[str, Any], steps: int = 48) -> list[tuple[float, float]]:
    """Return the area's polygon, or its circle as a polygon, as (lat, lon); [] for neither."""
    if area.get("polygon"):
        return [(float(p[0]), float(p[1])) for p in area["polygon"]]
    c = area.get("circle")
    if not c:
        return []
    dlat = c["km"] / 111.0
    dlon = c["km"] / max(1e-6, 111.0 * math.cos(math.radians(c["lat"])))
    return [
        (
            c["lat"] + dlat * math.sin(a / steps * 2 * math.pi),
            c["lon"] + dlon * math.cos(a / steps * 2 * math.pi),
        )
        for a in range(steps)
    ]


def extent(
    area: Mapping[str, Any], points: Sequence[tuple[float, float]]
) -> tuple[float, float, float, float]:
    """Return the box the map shows (min lat, max lat, min lon, max lon): the area's shape and
    the reports; else the area's countries (their largest part); else the world."""
    every = list(points) + area_outline(area)
    if every:
        lats = [p[0] for p in every]
        lons = [p[1] for p in every]
        return min(lats), max(lats), min(lons), max(lons)
    codes = set(area.get("countries") or ())
    boxes = [c.main_bbox() for c in world() if c.code and c.code in codes]
    if not boxes:
        return WORLD_BOX
    return (
        min(b[1] for b in boxes),
        max(b[3] for b in boxes),
        min(b[0] for b in boxes),
        max(b[2] for b in boxes),
    )


def check_tiles_url(url: str) -> str:
    """Return a tile address template, or raise ValueError saying what is wrong with it.

    It must be an http(s) address naming a host and holding {z}, {x} and {y} (and no other
    field); the page loads the tiles from there, so the operator chooses the server.
    """
    url = url.strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// address with a host")
    if any(ch in url for ch in " \"'<>\\"):
        raise ValueError("must not hold spaces, quotes, angle brackets or backslashes")
    rest = url
    for field in TILE_FIELDS:
        if field not in rest:
            raise ValueError(
                "must hold {z}, {x} and {y} (e.g. https://tiles.example/{z}/{x}/{y}.png)"
            )
        rest = rest.replace(field, "")
    if "{" in rest or "}" in rest or "{" in parts.netloc:
        raise ValueError("may hold only {z}, {x} and {y} in its path or query")
    return url


def tiles_origin(url: str) -> str:
    """Return scheme://host[:port] of a tile address (what the page's CSP must allow)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def draw(
    area: Mapping[str, Any],
    markers: Sequence[Marker],
    *,
    label: str,
    tiles_url: str = "",
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """Return the map as inline SVG (`label`: its accessible name)."""
    shape = area_outline(area)
    proj = Projection.fit(extent(area, [(m.lat, m.lon) for m in markers]), width, height)
    codes = set(area.get("countries") or ())
    land = "none" if tiles_url else "#eef0e4"
    parts = [
        f'<svg class="crisis-map" viewBox="0 0 {width} {height}" role="group" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect width="{width}" height="{height}" fill="#dbe7f0" aria-hidden="true"/>',
    ]
    if tiles_url:
        parts.append('<g class="tiles" aria-hidden="true">')
        for z, tx, ty, left, top, size in proj.tiles():
            href = tiles_url.replace("{z}", str(z)).replace("{x}", str(tx)).replace("{y}", str(ty))
            parts.append(
                f'<image href="{escape(href)}" x="{left:.1f}" y="{top:.1f}" '
                f'width="{size + 0.5:.1f}" height="{size + 0.5:.1f}" preserveAspectRatio="none"/>'
            )
        parts.append("</g>")
    parts.append('<g class="countries" aria-hidden="true">')
    for c in world():
        if not proj.sees(c.bbox):
            continue
        d = path_data(proj, (ring for polygon in c.polygons for ring in polygon))
        if d:
            mine = c.code in codes
            fill = land if not mine or tiles_url else "#e4dcc4"
            kind = "country in-area" if mine else "country"
            parts.append(
                f'<path class="{kind}" data-country="{escape(c.name)}" '
                f'd="{d}" fill="{fill}" fill-rule="evenodd" stroke="#7d8896" stroke-width="0.8"/>'
            )
    parts.append("</g>")
    if shape:
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (proj.xy(*p) for p in shape))
        parts.append(
            f'<polygon class="area" points="{points}" fill="#4a6f95" fill-opacity="0.18" '
            'stroke="#1f4e79" stroke-width="2" aria-hidden="true"/>'
        )
    parts.append('<g class="reports">')
    for m in markers:
        x, y = proj.xy(m.lat, m.lon)
        parts.append(
            f'<a class="report" href="{escape(m.href)}" aria-label="{escape(m.label)}">'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="#c62828" stroke="#ffffff" '
            f'stroke-width="2"><title>{escape(m.label)}</title></circle></a>'
        )
    parts.append("</g></svg>")
    return Markup("".join(parts))


__all__ = ["Marker", "area_outline", "check_tiles_url", "draw", "extent", "tiles_origin"]
