"""Routing a point to its grid cell (app/services/routing.py, app/coords.py, GET /api/v1/cells/locate)."""

from __future__ import annotations

import contextlib
import math
import random

import pytest
from geoalchemy2.shape import from_shape
from sqlalchemy import event, select

from app.dialect import spatial
from app.extensions import db
from app.lib import coords
from app.models import Cell
from app.services import versions
from app.services.grid import routing
from app.services.grid.routing import route, route_wgs84
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    DISTRICT,
    GRID_BOXES,
    STREET,
    auth_header,
    make_cell,
    make_test_grid,
    make_user,
    square,
)

LOCATE = "/api/v1/cells/locate"
SW, SE, NW, NE = sorted(GRID_BOXES)  # 11010500100101 .. 04
GRID_EAST_EDGE = 116.42
GRID_NORTH_EDGE = 39.92

# WGS-84 ellipsoid, for metre offsets independent of the code under test.
_A = 6_378_137.0
_E2 = 6.69437999014e-3


def metres_per_degree(lat: float) -> tuple[float, float]:
    """(metres per degree of longitude, metres per degree of latitude) at this latitude."""
    phi = math.radians(lat)
    w = math.sqrt(1 - _E2 * math.sin(phi) ** 2)
    n = _A / w  # prime vertical radius of curvature
    m = _A * (1 - _E2) / w**3  # meridian radius of curvature
    return math.pi / 180 * n * math.cos(phi), math.pi / 180 * m


def ground_distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Local (tangent-plane) distance; exact to millimetres at the few-kilometre scale used here."""
    m_lon, m_lat = metres_per_degree((lat1 + lat2) / 2)
    return math.hypot((lon2 - lon1) * m_lon, (lat2 - lat1) * m_lat)


def east_of_grid(metres: float, lat: float = 39.905) -> tuple[float, float]:
    return GRID_EAST_EDGE + metres / metres_per_degree(lat)[0], lat


def north_of_grid(metres: float, lon: float = 116.415) -> tuple[float, float]:
    return lon, GRID_NORTH_EDGE + metres / metres_per_degree(GRID_NORTH_EDGE)[1]


@pytest.fixture(autouse=True, params=["index", "database"])
def routed_by(request, app, monkeypatch):
    """Every test here routes both ways: from the worker's own index of the cells, and, as for a grid too large to
    keep, from the database."""
    if request.param == "database":
        monkeypatch.setattr(routing, "INDEXED_LEAVES_UP_TO", -1)
    with app.app_context():
        versions.cache(versions.CELLS, "routing").clear()
    return request.param


@pytest.fixture()
def grid(db):
    return make_test_grid()


@pytest.fixture()
def headers(db):
    return auth_header(make_user("resident"))


def locate(client, headers, lon, lat, crs=None):
    query = {"lon": repr(lon), "lat": repr(lat)}
    if crs is not None:
        query["crs"] = crs
    return client.get(LOCATE, query_string=query, headers=headers)


# ---- inside a cell, shared edges and vertices --------------------------------------------------


def test_point_inside_a_cell_routes_to_it_with_its_ancestors(client, grid, headers):
    resp = locate(client, headers, 116.405, 39.905)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["cell"] == {"id": grid[SW].id, "code": SW, "name": grid[SW].name, "level": "grid"}
    assert [a["code"] for a in body["ancestors"]] == [DISTRICT, STREET, COMMUNITY]
    assert [a["level"] for a in body["ancestors"]] == ["district", "street", "community"]
    assert body["routed_by"] == "covers"
    assert body["distance_m"] == 0.0
    assert body["location"] == {"lon": 116.405, "lat": 39.905, "crs": "wgs84"}


@pytest.mark.parametrize(
    "lon,lat,expected",
    [
        (116.415, 39.915, NE),
        (116.405, 39.915, NW),
        (116.415, 39.905, SE),
    ],
)
def test_each_quadrant_routes_to_its_own_cell(client, grid, headers, lon, lat, expected):
    body = locate(client, headers, lon, lat).get_json()
    assert body["cell"]["code"] == expected
    assert body["routed_by"] == "covers"


@pytest.mark.parametrize(
    "lon,lat,expected",
    [
        (116.41, 39.905, SW),  # edge SW | SE
        (116.41, 39.915, NW),  # edge NW | NE
        (116.405, 39.91, SW),  # edge SW / NW
        (116.415, 39.91, SE),  # edge SE / NE
        (116.41, 39.91, SW),  # the vertex all four share
    ],
)
def test_shared_edge_or_vertex_goes_to_the_lowest_code_every_time(client, grid, headers, lon, lat, expected):
    seen = {locate(client, headers, lon, lat).get_json()["cell"]["code"] for _ in range(5)}
    assert seen == {expected}
    assert route_wgs84(lon, lat).cell.code == expected
    assert route_wgs84(lon, lat).routed_by == "covers"


def test_shared_vertex_ignores_insertion_order(client, db, headers):
    # Insert the grid cells highest code first, so storage order cannot be what picks the winner.
    district = make_cell(DISTRICT, "district", (116.40, 39.90, 116.42, 39.92))
    street = make_cell(STREET, "street", (116.40, 39.90, 116.42, 39.92), district)
    community = make_cell(COMMUNITY, "community", (116.40, 39.90, 116.42, 39.92), street)
    for code in sorted(GRID_BOXES, reverse=True):
        make_cell(code, "grid", GRID_BOXES[code], community)
    assert locate(client, headers, 116.41, 39.91).get_json()["cell"]["code"] == SW
    assert locate(client, headers, 116.415, 39.91).get_json()["cell"]["code"] == SE


# ---- nearest fallback, measured in metres ------------------------------------------------------


def test_point_150_m_east_goes_to_the_nearest_cell(client, grid, headers):
    lon, lat = east_of_grid(150)
    resp = locate(client, headers, lon, lat)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["cell"]["code"] == SE
    assert body["routed_by"] == "nearest"
    assert body["distance_m"] == pytest.approx(150, abs=1.0)
    assert [a["code"] for a in body["ancestors"]] == [DISTRICT, STREET, COMMUNITY]


def test_point_150_m_north_goes_to_the_nearest_cell(client, grid, headers):
    # A degree of latitude is ~30 % longer than one of longitude here: equal metres, unequal degrees.
    lon, lat = north_of_grid(150)
    body = locate(client, headers, lon, lat).get_json()
    assert body["cell"]["code"] == NE
    assert body["routed_by"] == "nearest"
    assert body["distance_m"] == pytest.approx(150, abs=1.0)


@pytest.mark.parametrize("offset", [east_of_grid, north_of_grid])
def test_fallback_limit_is_in_metres_in_both_directions(client, grid, headers, offset):
    inside = locate(client, headers, *offset(190))
    assert inside.status_code == 200
    assert inside.get_json()["routed_by"] == "nearest"
    assert inside.get_json()["distance_m"] == pytest.approx(190, abs=1.0)
    body = assert_problem(locate(client, headers, *offset(210)), 404, "unrouted")
    assert "200 米内" in body["detail"]


def test_point_250_m_away_is_unrouted(client, grid, headers):
    lon, lat = east_of_grid(250)
    body = assert_problem(locate(client, headers, lon, lat), 404, "unrouted")
    assert body["title"]
    assert route_wgs84(lon, lat).cell is None


def test_fallback_distance_follows_config(app, client, grid, headers, monkeypatch):
    lon, lat = east_of_grid(250)
    monkeypatch.setitem(app.config, "ROUTING_MAX_DISTANCE_M", 300)
    body = locate(client, headers, lon, lat).get_json()
    assert body["cell"]["code"] == SE
    assert body["distance_m"] == pytest.approx(250, abs=1.0)
    monkeypatch.setitem(app.config, "ROUTING_MAX_DISTANCE_M", 0)
    assert_problem(locate(client, headers, *east_of_grid(5)), 404, "unrouted")


def test_nearest_picks_the_closer_of_two_cells(client, grid, headers):
    # 40 m east of the grid, 30 m north of the SE/NE edge: NE is the nearest (40 m vs 50 m).
    m_lon, m_lat = metres_per_degree(39.91)
    body = locate(client, headers, GRID_EAST_EDGE + 40 / m_lon, 39.91 + 30 / m_lat).get_json()
    assert body["cell"]["code"] == NE
    assert body["distance_m"] == pytest.approx(40, abs=0.5)


@pytest.mark.parametrize("lon,lat", [(120.0, 39.0), (2.35, 48.85), (-73.98, 40.75), (116.405, -39.905)])
def test_far_outside_is_unrouted(client, grid, headers, lon, lat):
    body = assert_problem(locate(client, headers, lon, lat), 404, "unrouted")
    assert str(lon) in body["detail"]


def test_without_any_cells_everything_is_unrouted(client, headers):
    assert_problem(locate(client, headers, 116.405, 39.905), 404, "unrouted")


# ---- which cells may be chosen -----------------------------------------------------------------


def test_inactive_cells_are_not_routed_to(client, grid, headers):
    grid[SW].active = False
    db.session.commit()
    # The shared vertex now goes to the lowest active code.
    assert locate(client, headers, 116.41, 39.91).get_json()["cell"]["code"] == SE
    # Inside the inactive cell but ~85 m from SE: the fallback, never the inactive cell.
    m_lon = metres_per_degree(39.905)[0]
    body = locate(client, headers, 116.41 - 85 / m_lon, 39.905).get_json()
    assert body["cell"]["code"] == SE
    assert body["routed_by"] == "nearest"
    assert body["distance_m"] == pytest.approx(85, abs=1.0)
    # Deep inside it, nothing active is within 200 m.
    assert_problem(locate(client, headers, 116.405, 39.905), 404, "unrouted")


def test_a_cell_changed_after_routing_is_seen_by_the_next_routing(client, grid, headers):
    # The index, when kept, is read by the first routing; each change moves the cells version.
    assert locate(client, headers, 116.405, 39.905).get_json()["cell"]["code"] == SW
    grid[SW].active = False
    db.session.commit()
    assert locate(client, headers, 116.405, 39.905).status_code == 404
    grid[SW].active = True
    grid[SW].geom = from_shape(square(116.43, 39.90, 116.44, 39.91), srid=4326)
    db.session.commit()
    assert locate(client, headers, 116.435, 39.905).get_json()["cell"]["code"] == SW
    assert locate(client, headers, 116.405, 39.905).status_code == 404


def test_the_index_answers_as_the_database_on_edges_vertices_and_between(grid, routed_by):
    if routed_by == "database":
        pytest.skip("compares the index with the database")
    # A lattice over the grid and past it, on every shared edge and vertex (a 0.0025 degree step hits each).
    rng = random.Random(13)
    points = [(116.395 + rng.randint(0, 12) * 0.0025, 39.895 + rng.randint(0, 12) * 0.0025) for _ in range(150)]
    points += [(rng.uniform(116.395, 116.425), rng.uniform(39.895, 39.925)) for _ in range(150)]
    assert routing.leaf_index() is not None
    for lon, lat in points:
        assert routing.covering_leaf(lon, lat) == spatial.covering_leaf(lon, lat), (lon, lat)


def test_inactive_cells_are_not_nearest_either(client, grid, headers):
    grid[SE].active = False
    grid[NE].active = False
    db.session.commit()
    assert_problem(locate(client, headers, *east_of_grid(50)), 404, "unrouted")


def test_non_grid_cells_are_never_chosen(client, grid, headers):
    # A second community east of the grid, with no grid cells of its own.
    make_cell("110105001002", "community", (116.42, 39.90, 116.45, 39.92), grid[STREET])
    make_cell("110105002", "street", (116.42, 39.90, 116.45, 39.92), grid[DISTRICT])
    # Inside that community, 1.7 km from any grid cell: unrouted, not the community.
    assert_problem(locate(client, headers, 116.44, 39.91), 404, "unrouted")
    # Inside it but 100 m from the grid: the nearest grid cell, though the community covers the point.
    body = locate(client, headers, *east_of_grid(100)).get_json()
    assert body["cell"]["code"] == SE
    assert body["cell"]["level"] == "grid"
    assert body["routed_by"] == "nearest"
    # Inside the grid, the covering district/street/community never win over the grid cell.
    assert locate(client, headers, 116.415, 39.915).get_json()["cell"]["level"] == "grid"


# ---- coordinate systems ------------------------------------------------------------------------


def test_gcj02_input_routes_like_the_wgs84_point(client, grid, headers):
    wgs = (116.405, 39.905)
    gcj = coords.wgs84_to_gcj02(*wgs)
    # The datum shift is hundreds of metres: read as WGS-84 the GCJ-02 numbers would be elsewhere.
    assert ground_distance_m(*wgs, *gcj) > 300
    assert locate(client, headers, *gcj).get_json()["cell"]["code"] != SW

    body = locate(client, headers, *gcj, crs="gcj02").get_json()
    assert body["cell"]["code"] == SW
    assert body["routed_by"] == "covers"
    # The answer speaks the datum asked for: the routed point is the one sent, to 1 cm.
    assert body["location"] == {"lon": round(gcj[0], 7), "lat": round(gcj[1], 7), "crs": "gcj02"}
    wgs84_body = locate(client, headers, *wgs).get_json()
    assert wgs84_body["location"]["crs"] == "wgs84"
    assert ground_distance_m(wgs84_body["location"]["lon"], wgs84_body["location"]["lat"], *wgs) < 0.02


def test_bd09_input_routes_like_the_wgs84_point(client, grid, headers):
    wgs = (116.415, 39.915)
    bd = coords.gcj02_to_bd09(*coords.wgs84_to_gcj02(*wgs))
    assert ground_distance_m(*wgs, *bd) > 300
    body = locate(client, headers, *bd, crs="bd09").get_json()
    assert body["cell"]["code"] == NE
    assert body["location"] == {"lon": round(bd[0], 7), "lat": round(bd[1], 7), "crs": "bd09"}


def test_explicit_wgs84_is_the_default(client, grid, headers):
    explicit = locate(client, headers, 116.405, 39.915, crs="wgs84").get_json()
    default = locate(client, headers, 116.405, 39.915).get_json()
    assert explicit == default
    assert explicit["cell"]["code"] == NW


def test_service_route_converts_before_routing(grid):
    wgs = (116.415, 39.905)
    for crs, converted in (
        ("gcj02", coords.wgs84_to_gcj02(*wgs)),
        ("bd09", coords.gcj02_to_bd09(*coords.wgs84_to_gcj02(*wgs))),
    ):
        result = route(*converted, crs=crs)
        assert result.cell.code == SE
        assert ground_distance_m(result.lon, result.lat, *wgs) < 1.0


def _random_points_in_china(n: int, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    # The mainland's bulk, inside the GCJ-02 box with a margin.
    return [(rng.uniform(75.0, 134.0), rng.uniform(18.5, 53.0)) for _ in range(n)]


def test_gcj02_round_trip_is_better_than_a_metre():
    worst = 0.0
    for lon, lat in _random_points_in_china(2000, seed=2602):
        glon, glat = coords.wgs84_to_gcj02(lon, lat)
        assert ground_distance_m(lon, lat, glon, glat) > 1.0  # the shift is real inside China
        back = coords.gcj02_to_wgs84(glon, glat)
        assert back == coords.to_wgs84(glon, glat, "gcj02")
        worst = max(worst, ground_distance_m(lon, lat, *back))
    assert worst < 1.0


def test_bd09_round_trip_is_better_than_a_metre():
    worst = 0.0
    for lon, lat in _random_points_in_china(2000, seed=9):
        blon, blat = coords.gcj02_to_bd09(*coords.wgs84_to_gcj02(lon, lat))
        back = coords.to_wgs84(blon, blat, "bd09")
        assert back == coords.bd09_to_wgs84(blon, blat)
        worst = max(worst, ground_distance_m(lon, lat, *back))
    assert worst < 1.0


@pytest.mark.parametrize(
    "lon,lat",
    [(2.3522, 48.8566), (-74.006, 40.7128), (151.2093, -33.8688), (139.6917, 35.6895), (0.0, 0.0), (116.4, -39.9)],
)
def test_gcj02_leaves_points_outside_china_unchanged(lon, lat):
    assert coords.wgs84_to_gcj02(lon, lat) == (lon, lat)
    assert coords.gcj02_to_wgs84(lon, lat) == (lon, lat)
    assert coords.to_wgs84(lon, lat, "gcj02") == (lon, lat)


@pytest.mark.parametrize("lon,lat", [(0, 90), (0, -90), (180, 0), (-180, 0), (-180, -90), (179.999, -89.999)])
@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_converted_points_stay_within_the_wgs84_range(crs, lon, lat):
    """BD-09's offset near a pole or the antimeridian would step off the range: the pole, or the wrapped longitude."""
    wlon, wlat = coords.to_wgs84(lon, lat, crs)
    assert -180 <= wlon <= 180 and -90 <= wlat <= 90
    assert abs(wlat - lat) < 0.01
    assert min(abs(wlon - lon), 360 - abs(wlon - lon)) < 0.01


def test_locate_a_bd09_point_past_the_south_pole_is_a_clear_404(client, grid, headers):
    body = assert_problem(locate(client, headers, -180, -90, crs="bd09"), 404, "unrouted")
    assert "bd09" in body["detail"]


def test_wgs84_is_passed_through_and_unknown_crs_refused():
    assert coords.to_wgs84(116.4, 39.9, "wgs84") == (116.4, 39.9)
    with pytest.raises(ValueError):
        coords.to_wgs84(116.4, 39.9, "epsg3857")


# ---- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("crs", ["WGS84x", "epsg:4326", "gcj-02", "", "BD09 "])
def test_bad_crs_is_422(client, grid, headers, crs):
    body = assert_problem(locate(client, headers, 116.405, 39.905, crs=crs), 422, "validation_failed")
    assert list(body["errors"]) == ["crs"]


@pytest.mark.parametrize(
    "query,field",
    [
        ({"lon": "116.405", "lat": "91"}, "lat"),
        ({"lon": "116.405", "lat": "-90.5"}, "lat"),
        ({"lon": "181", "lat": "39.9"}, "lon"),
        ({"lon": "-180.01", "lat": "39.9"}, "lon"),
        ({"lon": "east", "lat": "39.9"}, "lon"),
        ({"lon": "116.4", "lat": "north"}, "lat"),
        ({"lon": "nan", "lat": "39.9"}, "lon"),
        ({"lat": "39.9"}, "lon"),
        ({"lon": "116.4"}, "lat"),
    ],
)
def test_bad_coordinates_are_422_naming_the_field(client, grid, headers, query, field):
    resp = client.get(LOCATE, query_string=query, headers=headers)
    body = assert_problem(resp, 422, "validation_failed")
    assert field in body["errors"], body


def test_missing_both_coordinates_names_both(client, headers):
    body = assert_problem(client.get(LOCATE, headers=headers), 422, "validation_failed")
    assert {"lon", "lat"} <= set(body["errors"])


def test_unauthenticated_is_401(client, grid):
    resp = client.get(LOCATE, query_string={"lon": "116.405", "lat": "39.905"})
    assert_problem(resp, 401, "missing_token")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_garbage_token_is_401(client, grid):
    resp = client.get(
        LOCATE, query_string={"lon": "116.405", "lat": "39.905"}, headers={"Authorization": "Bearer not-a-token"}
    )
    assert_problem(resp, 401, "invalid_token")


# ---- the spatial index is used -----------------------------------------------------------------


@contextlib.contextmanager
def captured_sql():
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)


def _cells_statements(statements):
    return [(s, p) for s, p in statements if "FROM cells" in s and "ST_" in s.upper()]


def _routing_statements(lon: float, lat: float, expect_nearest: bool):
    route_wgs84(lon, lat)  # the index, when kept, is read first
    with captured_sql() as statements:
        result = route_wgs84(lon, lat)
    assert (result.routed_by == "nearest") is expect_nearest
    found = _cells_statements(statements)
    assert found, statements
    return found


def test_spatialite_covers_point_goes_through_the_rtree(grid, backend):
    if backend != "spatialite":
        pytest.skip("SpatiaLite's R*Tree")
    stmt = select(Cell.id).where(spatial.covers_point(Cell.geom, Cell.id, 116.41, 39.91))
    sql = str(stmt.compile(dialect=db.session.get_bind().dialect))
    assert "idx_cells_geom" in sql
    assert "xmin" in sql and "ymax" in sql
    # The same filter finds exactly the four grid cells and their three covering parents.
    assert len(db.session.scalars(stmt).all()) == 7


def test_spatialite_routing_queries_use_the_rtree(grid, backend, routed_by):
    if backend != "spatialite" or routed_by != "database":
        pytest.skip("SpatiaLite's R*Tree")
    conn = db.session.connection()
    for lon, lat, nearest in ((116.405, 39.905, False), (*east_of_grid(150), True)):
        for sql, params in _routing_statements(lon, lat, nearest):
            assert "idx_cells_geom" in sql, sql
            plan = " | ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
            assert "idx_cells_geom" in plan, plan
            assert "VIRTUAL TABLE INDEX" in plan, plan


def _pg_plan(conn, sql, params) -> str:
    return "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql, params))


def test_postgis_routing_queries_use_the_gist_index(grid, backend, routed_by):
    if backend != "postgis" or routed_by != "database":
        pytest.skip("PostGIS GiST")
    conn = db.session.connection()
    # Price sequential scans out: a filter the GiST index cannot serve would then show another path.
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    try:
        for lon, lat, nearest in ((116.405, 39.905, False), (*east_of_grid(150), True)):
            for sql, params in _routing_statements(lon, lat, nearest):
                plan = _pg_plan(conn, sql, params)
                assert "idx_cells_geom" in plan, plan
                assert "Seq Scan" not in plan, plan
    finally:
        conn.exec_driver_sql("RESET enable_seqscan")
