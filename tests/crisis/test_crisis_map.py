"""The crisis map: the shipped outlines (TopoJSON decoding), the projection, the SVG with its
outlines and need-help markers, the tiles setting, and the dashboard's map and list."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from importlib import resources
from typing import Any

import pytest
from sqlalchemy import select

from elshi.crisis import basemap, mapsvg, service
from elshi.crisis.area import _in_polygon
from elshi.crisis.models import Recipient
from elshi.db import Database
from elshi.settings import Settings
from elshi.web.security import CSP
from tests.crisis.support import officer_client, populate, sent, staff_login, team

SVG = "{http://www.w3.org/2000/svg}"


def _country(code: str) -> basemap.Country:
    (found,) = [c for c in basemap.world() if c.code == code]
    return found


def _inside(country: basemap.Country, lat: float, lon: float) -> bool:
    """Even-odd rule over every ring of the country (holes included)."""
    hits = 0
    for polygon in country.polygons:
        for ring in polygon:
            hits += _in_polygon(lat, lon, [[p[1], p[0]] for p in ring])
    return hits % 2 == 1


# ---------------------------------------------------------------------------- decoding


def test_arcs_are_delta_decoded_with_the_transform_and_reversed_by_negative_index() -> None:
    topology = {
        "type": "Topology",
        "transform": {"scale": [0.5, 2.0], "translate": [10.0, 20.0]},
        "arcs": [[[0, 0], [2, 0], [0, 2]], [[2, 2], [-2, -2]]],
        "objects": {
            "countries": {
                "type": "GeometryCollection",
                "geometries": [
                    {"type": "Polygon", "arcs": [[0, 1]], "id": "792", "properties": {"name": "A"}},
                    {"type": "Polygon", "arcs": [[~1, ~0]], "id": "", "properties": {"name": "B"}},
                    {"type": "LineString", "arcs": [0]},
                ],
            }
        },
    }
    assert basemap.decode_arcs(topology) == [
        [(10.0, 20.0), (11.0, 20.0), (11.0, 24.0)],
        [(11.0, 24.0), (10.0, 20.0)],
    ]
    a, b = basemap.countries(topology)
    assert a.polygons == (((((10.0, 20.0), (11.0, 20.0), (11.0, 24.0), (10.0, 20.0))),),)
    assert a.code == "TR" and a.name == "A" and a.bbox == (10.0, 20.0, 11.0, 24.0)
    # ~1 walks arc 1 backwards, ~0 arc 0 backwards: the same ring the other way round.
    assert b.polygons[0][0] == ((10.0, 20.0), (11.0, 24.0), (11.0, 20.0), (10.0, 20.0))
    assert b.code == ""


def test_a_topology_without_transform_and_broken_ones() -> None:
    plain = {"arcs": [[[1.5, 2.5], [3.0, 4.0]]]}
    assert basemap.decode_arcs(plain) == [[(1.5, 2.5), (3.0, 4.0)]]
    with pytest.raises(basemap.TopologyError, match="arcs: missing"):
        basemap.decode_arcs({})
    with pytest.raises(basemap.TopologyError, match=r"arcs\[1\]"):
        basemap.decode_arcs({"arcs": [[[0, 0]], "x"]})
    with pytest.raises(basemap.TopologyError, match=r"geometries\[0\]"):
        basemap.countries(
            {
                "arcs": [[[0, 0], [1, 1]]],
                "objects": {"countries": {"geometries": [{"type": "Polygon", "arcs": [[5]]}]}},
            }
        )


def test_the_shipped_outlines_decode_to_the_worlds_countries() -> None:
    raw = json.loads(
        resources.files("elshi.crisis").joinpath("data", basemap.DATA_FILE).read_text("utf-8")
    )
    assert "transform" in raw  # quantized: the decoder's delta path is what reads it
    world = basemap.world()
    assert len(world) == len(raw["objects"]["countries"]["geometries"]) > 200
    for country in world:
        for polygon in country.polygons:
            for ring in polygon:
                assert ring[0] == ring[-1] and len(ring) >= 4, country.name
                assert all(-180.0001 <= x <= 180.0001 and -90 <= y <= 90 for x, y in ring)
    turkey, kazakhstan, italy = _country("TR"), _country("KZ"), _country("IT")
    assert turkey.name == "Turkey" and kazakhstan.name == "Kazakhstan"
    # Cities are inside their own country's outline and not inside a neighbour's.
    assert _inside(turkey, 39.93, 32.86)  # Ankara
    assert _inside(turkey, 40.19, 29.06)  # Bursa
    assert _inside(kazakhstan, 51.17, 71.45)  # Astana
    assert _inside(italy, 41.9, 12.5)  # Rome
    # Lesotho is a hole in South Africa: Maseru is in the one, Bloemfontein in the other.
    assert _inside(_country("LS"), -29.4, 27.8) and not _inside(_country("ZA"), -29.4, 27.8)
    assert _inside(_country("ZA"), -29.12, 26.21)
    assert not _inside(turkey, 51.17, 71.45)
    # Mainland France, not its overseas departments, is its largest part.
    lon0, lat0, lon1, lat1 = _country("FR").main_bbox()
    assert -6 < lon0 < lon1 < 10 and 41 < lat0 < lat1 < 52
    assert _country("FR").bbox[0] < -50  # French Guiana is part of the whole


# ---------------------------------------------------------------------------- projection


def test_mercator_and_fitting_a_box_with_a_margin() -> None:
    assert basemap.mercator(0, 0) == pytest.approx((0.5, 0.5))
    assert basemap.mercator(basemap.MAX_LAT, 180) == pytest.approx((1.0, 0.0), abs=1e-9)
    assert basemap.mercator(89.9, -180) == basemap.mercator(basemap.MAX_LAT, -180)
    # Turkey: the box fills the map on one side less the margin, centred.
    box = (36.0, 42.0, 26.0, 45.0)
    p = basemap.Projection.fit(box, 640, 400, margin=0.1)
    (x0, y1), (x1, y0) = p.xy(36.0, 26.0), p.xy(42.0, 45.0)
    assert 0 < x0 < x1 < 640 and 0 < y0 < y1 < 400
    assert (x0 + x1) / 2 == pytest.approx(320) and (y0 + y1) / 2 == pytest.approx(200)
    assert x1 - x0 == pytest.approx(640 / 1.2) or y1 - y0 == pytest.approx(400 / 1.2)
    # East is right and north is up.
    assert p.xy(39, 40)[0] > p.xy(39, 30)[0] and p.xy(41, 35)[1] < p.xy(37, 35)[1]
    # One point: widened to min_degrees, so the map shows streets, not one house.
    one = basemap.Projection.fit((41.0, 41.0, 29.0, 29.0), 640, 400, min_degrees=0.05)
    west, east = one.xy(41.0, 28.975)[0], one.xy(41.0, 29.025)[0]
    assert east - west == pytest.approx(400 / 1.3, rel=1e-6)
    # The whole world at most.
    assert basemap.Projection.fit((-85, 85, -180, 180), 640, 400).scale == 400
    assert p.sees(_country("TR").bbox) and not p.sees(_country("BR").bbox)


def test_tiles_cover_the_map_at_a_sharp_enough_zoom() -> None:
    for box in ((36.0, 42.0, 26.0, 45.0), (41.0, 41.0, 29.0, 29.0), (-60, 75, -170, 180)):
        p = basemap.Projection.fit(box, 640, 400)
        tiles = p.tiles()
        z = p.zoom()
        assert all(t[0] == z for t in tiles)
        size = tiles[0][5]
        assert 256 / 2**0.5 <= size < 256 * 2**0.5 or z == 0
        assert all(0 <= t[1] < 2**z and 0 <= t[2] < 2**z for t in tiles)
        # Every pixel of the map (inside the Mercator world) is under a tile.
        for px, py in ((0.5, 0.5), (639.5, 0.5), (320, 200), (0.5, 399.5), (639.5, 399.5)):
            world_y = p.y0 + py / p.scale
            if not 0 <= world_y <= 1:
                continue
            assert any(t[3] <= px < t[3] + t[5] and t[4] <= py < t[4] + t[5] for t in tiles)
        assert len(tiles) <= 20


def test_clipping_and_path_data() -> None:
    square = [(-10.0, -10.0), (10.0, -10.0), (10.0, 10.0), (-10.0, 10.0)]
    clipped = basemap.clip(square, 0, 0, 5, 5)
    assert sorted(clipped) == [(0.0, 0.0), (0.0, 5.0), (5.0, 0.0), (5.0, 5.0)]
    assert basemap.clip(square, 20, 20, 30, 30) == []
    p = basemap.Projection.fit((40.0, 42.0, 27.0, 30.0), 640, 400)
    d = basemap.path_data(p, [ring for poly in _country("TR").polygons for ring in poly])
    numbers = [float(n) for n in re.findall(r"-?\d+\.\d", d)]
    assert d.startswith("M") and d.endswith("Z") and len(numbers) > 50
    assert all(-8.05 <= n <= 648.05 for n in numbers)  # clipped to the map and its pad


# ---------------------------------------------------------------------------- the SVG


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_the_map_has_outlines_area_and_named_markers() -> None:
    area = {"countries": ["TR"], "circle": {"lat": 41.0, "lon": 29.0, "km": 60}}
    markers = [
        mapsvg.Marker(41.02, 28.95, "Aida Nurlan: trapped <2nd floor> & hurt", "/crisis/3/p#1"),
        mapsvg.Marker(40.98, 29.1, "Бекжан", "/crisis/3/p#2"),
    ]
    svg = str(mapsvg.draw(area, markers, label="Map & reports"))
    root = _parse(svg)
    assert root.get("aria-label") == "Map & reports" and root.get("role") == "group"
    names = {p.get("data-country") for p in root.iter(SVG + "path")}
    assert "Turkey" in names and "Brazil" not in names
    assert len(names) < 10  # only the countries in view are drawn
    (turkey,) = [p for p in root.iter(SVG + "path") if p.get("data-country") == "Turkey"]
    assert "in-area" in (turkey.get("class") or "")
    assert len(list(root.iter(SVG + "polygon"))) == 1  # the circle
    links = list(root.iter(SVG + "a"))
    assert [a.get("aria-label") for a in links] == [m.label for m in markers]
    assert [a.get("href") for a in links] == ["/crisis/3/p#1", "/crisis/3/p#2"]
    assert [a.find(f"{SVG}circle/{SVG}title").text for a in links] == [m.label for m in markers]  # type: ignore[union-attr]
    # The markers sit where the projection puts them, inside the map.
    p = basemap.Projection.fit(
        mapsvg.extent(area, [(m.lat, m.lon) for m in markers]), mapsvg.WIDTH, mapsvg.HEIGHT
    )
    dot = links[0].find(SVG + "circle")
    assert dot is not None
    x, y = p.xy(41.02, 28.95)
    assert float(dot.get("cx") or 0) == pytest.approx(x, abs=0.06)
    assert float(dot.get("cy") or 0) == pytest.approx(y, abs=0.06)
    assert 0 < x < mapsvg.WIDTH and 0 < y < mapsvg.HEIGHT
    assert "<image" not in svg and len(svg) < 200_000


def test_the_extent_falls_back_to_the_countries_then_the_world() -> None:
    lat0, lat1, lon0, lon1 = mapsvg.extent({"countries": ["KZ"]}, [])
    assert 40 < lat0 < 41.5 and 55 < lat1 < 56 and 46 < lon0 < 47 and 87 < lon1 < 88
    assert mapsvg.extent({"cities": ["Nowhere"]}, []) == mapsvg.WORLD_BOX
    assert mapsvg.extent({"countries": ["TR"]}, [(41.0, 29.0)]) == (41.0, 41.0, 29.0, 29.0)
    poly = {"polygon": [[40.0, 28.0], [41.5, 28.0], [41.5, 30.0]]}
    assert mapsvg.extent(poly, [(39.0, 29.0)]) == (39.0, 41.5, 28.0, 30.0)
    assert len(str(mapsvg.draw({"countries": ["KZ"]}, [], label="m"))) < 120_000
    world = _parse(str(mapsvg.draw({"cities": ["Nowhere"]}, [], label="m")))
    assert len({p.get("data-country") for p in world.iter(SVG + "path")}) > 150


def test_tile_addresses_are_checked() -> None:
    good = "https://tiles.example.org/osm/{z}/{x}/{y}.png?key=abc"
    assert mapsvg.check_tiles_url(f"  {good} ") == good
    assert mapsvg.check_tiles_url("") == ""
    assert mapsvg.tiles_origin("http://10.1.2.3:8080/t/{z}/{x}/{y}") == "http://10.1.2.3:8080"
    bad = {
        "javascript:alert(1)//{z}/{x}/{y}": "http",
        "file:///srv/tiles/{z}/{x}/{y}.png": "http",
        "https:///{z}/{x}/{y}": "host",
        "https://tiles.example.org/{z}/{x}.png": "{z}, {x} and {y}",
        "https://tiles.example.org/{z}/{x}/{y}/{s}.png": "only",
        "https://{s}.tiles.example.org/{z}/{x}/{y}.png": "only",
        'https://t.example/{z}/{x}/{y}.png"onload="x': "quotes",
        "https://t.example/{z}/{x}/{y} .png": "spaces",
    }
    for url, why in bad.items():
        with pytest.raises(ValueError, match=re.escape(why)):
            mapsvg.check_tiles_url(url)


def test_the_tiles_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELSHI_CRISIS_MAP_TILES_URL", "ftp://tiles.example.org/{z}/{x}/{y}.png")
    with pytest.raises(Exception, match="crisis_map_tiles_url"):
        Settings()
    monkeypatch.setenv("ELSHI_CRISIS_MAP_TILES_URL", "https://tiles.example.org/{z}/{x}/{y}.png")
    assert Settings().crisis_map_tiles_url == "https://tiles.example.org/{z}/{x}/{y}.png"
    monkeypatch.delenv("ELSHI_CRISIS_MAP_TILES_URL")
    assert Settings().crisis_map_tiles_url == ""


def test_tiles_go_under_the_outlines() -> None:
    url = "https://tiles.example.org/{z}/{x}/{y}.png"
    root = _parse(str(mapsvg.draw({"countries": ["TR"]}, [], label="m", tiles_url=url)))
    children = [c.tag.removeprefix(SVG) + ":" + (c.get("class") or "") for c in root]
    assert children.index("g:tiles") < children.index("g:countries") < children.index("g:reports")
    hrefs = [i.get("href") or "" for i in root.iter(SVG + "image")]
    p = basemap.Projection.fit(mapsvg.extent({"countries": ["TR"]}, []))
    assert hrefs == [f"https://tiles.example.org/{z}/{x}/{y}.png" for z, x, y, *_ in p.tiles()]
    assert all(p.get("fill") == "none" for p in root.iter(SVG + "path"))  # the tiles show


# ---------------------------------------------------------------------------- the dashboard


def _client(settings: Settings, db: Database) -> Any:
    client = officer_client(settings, db)
    staff_login(client, "duty1@mfa.example")
    return client


def _open_crisis(db: Database, n: int) -> tuple[int, list[int]]:
    t = team(db)
    populate(db, t.mission_id, n)
    _, cid = sent(db, t, countries="TR", circle="41.01 28.97 40")
    with db.session() as s:
        ids = list(
            s.scalars(select(Recipient.id).where(Recipient.crisis_id == cid).order_by(Recipient.id))
        )
    return cid, ids


def test_dashboard_map_and_list_name_the_people_who_need_help(
    db: Database, settings: Settings
) -> None:
    cid, ids = _open_crisis(db, 4)
    with db.session() as s:
        for rid, (answer, note, where) in zip(
            ids,
            (
                ("help", "Trapped under <rubble>", (41.02, 28.95)),
                ("help", "", None),
                ("safe", "fine", (41.0, 29.0)),
                ("help", "Need insulin", (40.99, 29.03)),
            ),
            strict=True,
        ):
            service.record_checkin(
                s,
                crisis_id=cid,
                recipient_id=rid,
                answer=answer,
                note=note,
                latitude=where[0] if where else None,
                longitude=where[1] if where else None,
                nonce=f"n-{rid:08d}",
            )
        names = {
            r.id: r.name for r in s.scalars(select(Recipient).where(Recipient.crisis_id == cid))
        }
    client = _client(settings, db)
    page = client.get(f"/crisis/{cid}")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP  # no tiles: nothing from elsewhere
    svg = re.search(r"<svg class=\"crisis-map\".*?</svg>", page.text, re.S)
    assert svg
    root = _parse(svg[0])
    assert "Turkey" in {p.get("data-country") for p in root.iter(SVG + "path")}
    labels = [a.get("aria-label") for a in root.iter(SVG + "a")]
    assert labels == [
        f"{names[ids[0]]}: Trapped under <rubble>",
        f"{names[ids[3]]}: Need insulin",
    ]
    hrefs = [a.get("href") for a in root.iter(SVG + "a")]
    assert hrefs == [
        f"/crisis/{cid}/people/help#person-{ids[0]}",
        f"/crisis/{cid}/people/help#person-{ids[3]}",
    ]
    # The list beside the map has every need-help report, also the one without a position.
    listed = re.search(r'<ol class="reports" id="help-list">(.*?)</ol>', page.text, re.S)
    assert listed
    items = re.findall(r"<li>(.*?)</li>", listed[1], re.S)
    assert len(items) == 3
    assert names[ids[0]] in items[0] and "Trapped under &lt;rubble&gt;" in items[0]
    assert names[ids[1]] in items[1] and "no position given" in items[1]
    assert f'href="/crisis/{cid}/people/help#person-{ids[3]}"' in items[2]
    assert "Natural Earth" in page.text
    # The marker's link lands on the person's row of the need-help list.
    people = client.get(f"/crisis/{cid}/people/help")
    assert f'<tr id="person-{ids[0]}">' in people.text
    assert f'<tr id="person-{ids[2]}">' not in people.text  # safe: not on this list
    tabs = re.search(r'<nav class="crisis-tabs"[^>]*>(.*?)</nav>', people.text, re.S)
    assert tabs and tabs[1].count('aria-current="page"') == 1
    assert re.search(r'<a href="/crisis/\d+/people/help" aria-current="page">', tabs[1])


def test_a_tile_server_is_allowed_by_the_dashboards_csp_only(
    db: Database, settings: Settings
) -> None:
    cid, _ = _open_crisis(db, 2)
    settings.crisis_map_tiles_url = "https://tiles.example.org:8443/{z}/{x}/{y}.png"
    settings.crisis_map_tiles_attribution = "© OpenStreetMap contributors"
    client = _client(settings, db)
    page = client.get(f"/crisis/{cid}")
    csp = page.headers["content-security-policy"]
    assert "img-src 'self' data: https://tiles.example.org:8443;" in csp
    assert csp.replace(" https://tiles.example.org:8443", "") == CSP
    assert '<image href="https://tiles.example.org:8443/' in page.text
    assert "© OpenStreetMap contributors" in page.text
    assert client.get("/crisis").headers["content-security-policy"] == CSP
