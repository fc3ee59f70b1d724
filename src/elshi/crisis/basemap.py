"""The base map of a crisis: country outlines shipped with elshi, decoded and projected here.

The outlines are Natural Earth's 1:50m Admin 0 countries (public domain) as TopoJSON, from the
world-atlas package (ISC), in `crisis/data/`. Nothing is downloaded at run time. TopoJSON
stores each shared border once as an "arc" of quantized, delta-encoded points; a country is a
list of rings, each a list of arc indexes (a negative index ~i is arc i reversed).

The projection is Web Mercator, the one map tiles use, so that tiles of an operator's tile
server (ELSHI_CRISIS_MAP_TILES_URL) line up beneath the outlines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from babel.core import get_global

#: The shipped outlines (a file inside the package).
DATA_FILE = "countries-50m.json"
#: Web Mercator stops short of the poles.
MAX_LAT = 85.05112878

Point = tuple[float, float]
#: A ring of (longitude, latitude) points, closed (the last point repeats the first).
Ring = tuple[Point, ...]


class TopologyError(ValueError):
    """A TopoJSON document that cannot be read; the message says where."""


@dataclass(frozen=True)
class Country:
    """One country's outline: polygons of rings (the first ring outer, the others holes)."""

    id: str
    code: str
    name: str
    polygons: tuple[tuple[Ring, ...], ...]
    #: (min longitude, min latitude, max longitude, max latitude) of all its rings.
    bbox: tuple[float, float, float, float]

    def main_bbox(self) -> tuple[float, float, float, float]:
        """The box of the largest polygon only (mainland France, not French Guiana)."""
        best = max(self.polygons, key=lambda p: _area(_ring_bbox(p[0])))
        return _ring_bbox(best[0])


def _ring_bbox(ring: Sequence[Point]) -> tuple[float, float, float, float]:
    xs = [p[0] for p in ring]
    ys = [p[1] for p in ring]
    return min(xs), min(ys), max(xs), max(ys)


def _area(box: tuple[float, float, float, float]) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def decode_arcs(topology: Mapping[str, Any]) -> list[list[Point]]:
    """Return every arc as absolute (longitude, latitude) points.

    A quantized topology (one with a "transform") stores each arc's first position as an
    integer and the others as differences from the previous one; the transform's scale and
    translate turn the running sum into degrees.
    """
    arcs = topology.get("arcs")
    if not isinstance(arcs, list):
        raise TopologyError("arcs: missing or not a list")
    transform = topology.get("transform")
    out: list[list[Point]] = []
    for n, arc in enumerate(arcs):
        if not isinstance(arc, list) or not arc:
            raise TopologyError(f"arcs[{n}]: not a list of positions")
        try:
            if transform is None:
                out.append([(float(p[0]), float(p[1])) for p in arc])
                continue
            (sx, sy), (tx, ty) = transform["scale"], transform["translate"]
            x = y = 0
            points: list[Point] = []
            for dx, dy, *_ in arc:
                x += dx
                y += dy
                points.append((x * sx + tx, y * sy + ty))
            out.append(points)
        except (KeyError, TypeError, ValueError) as exc:
            raise TopologyError(f"arcs[{n}]: {exc}") from None
    return out


def stitch(arcs: Sequence[Sequence[Point]], indexes: Iterable[int]) -> Ring:
    """Join the arcs of one ring; each arc after the first starts where the last ended."""
    points: list[Point] = []
    for i in indexes:
        arc = list(arcs[i]) if i >= 0 else list(arcs[~i])[::-1]
        points.extend(arc[1:] if points else arc)
    return tuple(points)


def _polygons(geometry: Mapping[str, Any], arcs: Sequence[Sequence[Point]]) -> list[list[Ring]]:
    kind = geometry.get("type")
    if kind == "Polygon":
        groups = [geometry["arcs"]]
    elif kind == "MultiPolygon":
        groups = geometry["arcs"]
    else:
        return []
    return [[stitch(arcs, ring) for ring in polygon] for polygon in groups]


@lru_cache(maxsize=1)
def _numeric_to_alpha2() -> dict[str, str]:
    aliases: Mapping[str, Sequence[str]] = get_global("territory_aliases")
    return {k: v[0] for k, v in aliases.items() if k.isdigit() and len(v) == 1}


def countries(topology: Mapping[str, Any], name: str = "countries") -> list[Country]:
    """Return the countries of one geometry collection of a topology."""
    arcs = decode_arcs(topology)
    try:
        geometries = topology["objects"][name]["geometries"]
    except (KeyError, TypeError):
        raise TopologyError(f"objects.{name}.geometries: missing") from None
    alpha2 = _numeric_to_alpha2()
    out = []
    for n, g in enumerate(geometries):
        try:
            polygons = _polygons(g, arcs)
        except (IndexError, KeyError, TypeError) as exc:
            raise TopologyError(f"objects.{name}.geometries[{n}]: {exc}") from None
        if not polygons:
            continue
        boxes = [_ring_bbox(p[0]) for p in polygons]
        cid = str(g.get("id") or "")
        out.append(
            Country(
                id=cid,
                code=alpha2.get(cid, ""),
                name=str((g.get("properties") or {}).get("name", "")),
                polygons=tuple(tuple(p) for p in polygons),
                bbox=(
                    min(b[0] for b in boxes),
                    min(b[1] for b in boxes),
                    max(b[2] for b in boxes),
                    max(b[3] for b in boxes),
                ),
            )
        )
    return out


@lru_cache(maxsize=1)
def world() -> tuple[Country, ...]:
    """The shipped outlines, read once per process."""
    text = resources.files("elshi.crisis").joinpath("data", DATA_FILE).read_text("utf-8")
    return tuple(countries(json.loads(text)))


# ---------------------------------------------------------------------------- projection


def mercator(lat: float, lon: float) -> Point:
    """Return Web Mercator world coordinates: (0, 0) top left, (1, 1) bottom right."""
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2
    return (lon + 180) / 360, y


@dataclass(frozen=True)
class Projection:
    """Web Mercator fitted to a box of width x height pixels."""

    width: int
    height: int
    #: Pixels per world unit (the whole world is 1 x 1).
    scale: float
    #: World coordinates of the top left corner.
    x0: float
    y0: float

    @classmethod
    def fit(
        cls,
        box: tuple[float, float, float, float],
        width: int = 640,
        height: int = 400,
        *,
        margin: float = 0.15,
        min_degrees: float = 0.05,
    ) -> Projection:
        """Fit (min lat, max lat, min lon, max lon) with a margin on each side.

        A box smaller than `min_degrees` (one point) is widened so the map is not zoomed
        beyond the streets; the whole world fits at most.
        """
        lat0, lat1, lon0, lon1 = box
        left, bottom = mercator(lat0, lon0)
        right, top = mercator(lat1, lon1)
        least = min_degrees / 360
        cx, cy = (left + right) / 2, (top + bottom) / 2
        dx = max(right - left, least) * (1 + 2 * margin)
        dy = max(bottom - top, least) * (1 + 2 * margin)
        scale = max(min(width / dx, height / dy), min(width, height))
        return cls(width, height, scale, cx - width / 2 / scale, cy - height / 2 / scale)

    def xy(self, lat: float, lon: float) -> Point:
        """Return the pixel position of a point."""
        mx, my = mercator(lat, lon)
        return (mx - self.x0) * self.scale, (my - self.y0) * self.scale

    def sees(self, bbox: tuple[float, float, float, float]) -> bool:
        """True when a (min lon, min lat, max lon, max lat) box overlaps the map."""
        x0, y1 = self.xy(bbox[1], bbox[0])
        x1, y0 = self.xy(bbox[3], bbox[2])
        return x1 >= 0 and x0 <= self.width and y1 >= 0 and y0 <= self.height

    def zoom(self) -> int:
        """The tile zoom level whose 256-pixel tiles are closest to the map's scale (each tile
        is drawn 181 to 362 pixels wide: at most about 5 x 4 tiles on the map)."""
        return max(0, min(19, round(math.log2(max(self.scale, 256) / 256))))

    def tiles(self) -> list[tuple[int, int, int, float, float, float]]:
        """Return the tiles under the map: (z, x, y, left, top, size in pixels)."""
        z = self.zoom()
        n = 2**z
        size = self.scale / n
        first_x = math.floor(self.x0 * n)
        last_x = math.floor((self.x0 + self.width / self.scale) * n)
        first_y = max(0, math.floor(self.y0 * n))
        last_y = min(n - 1, math.floor((self.y0 + self.height / self.scale) * n))
        out = []
        for ty in range(first_y, last_y + 1):
            for tx in range(first_x, last_x + 1):
                left = (tx / n - self.x0) * self.scale
                top = (ty / n - self.y0) * self.scale
                out.append((z, tx % n, ty, left, top, size))
        return out


def clip(
    points: Sequence[Point], left: float, top: float, right: float, bottom: float
) -> list[Point]:
    """Clip a closed polygon to a rectangle (Sutherland-Hodgman; the rectangle is convex)."""
    edges = (
        (lambda p: p[0] >= left, lambda a, b: _cross_x(a, b, left)),
        (lambda p: p[0] <= right, lambda a, b: _cross_x(a, b, right)),
        (lambda p: p[1] >= top, lambda a, b: _cross_y(a, b, top)),
        (lambda p: p[1] <= bottom, lambda a, b: _cross_y(a, b, bottom)),
    )
    out = list(points)
    for inside, cross in edges:
        if not out:
            break
        given, out = out, []
        prev = given[-1]
        for p in given:
            if inside(p):
                if not inside(prev):
                    out.append(cross(prev, p))
                out.append(p)
            elif inside(prev):
                out.append(cross(prev, p))
            prev = p
    return out


def _cross_x(a: Point, b: Point, x: float) -> Point:
    t = (x - a[0]) / (b[0] - a[0])
    return x, a[1] + t * (b[1] - a[1])


def _cross_y(a: Point, b: Point, y: float) -> Point:
    t = (y - a[1]) / (b[1] - a[1])
    return a[0] + t * (b[0] - a[0]), y


def path_data(projection: Projection, rings: Iterable[Ring], *, pad: float = 8) -> str:
    """Return SVG path data of rings clipped to the map (and `pad` pixels around it), keeping
    a point only when it is a pixel or more from the last one kept."""
    parts = []
    w, h = projection.width, projection.height
    for ring in rings:
        pixels = clip([projection.xy(lat, lon) for lon, lat in ring], -pad, -pad, w + pad, h + pad)
        kept: list[Point] = []
        for x, y in pixels:
            if not kept or (x - kept[-1][0]) ** 2 + (y - kept[-1][1]) ** 2 >= 1:
                kept.append((x, y))
        if len(kept) >= 3:
            parts.append("M" + "L".join(f"{x:.1f} {y:.1f}" for x, y in kept) + "Z")
    return "".join(parts)


__all__ = [
    "Country",
    "Projection",
    "TopologyError",
    "clip",
    "countries",
    "decode_arcs",
    "mercator",
    "path_data",
    "stitch",
    "world",
]
