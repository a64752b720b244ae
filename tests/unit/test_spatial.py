"""Spatial core: loading real boundary layers, the exact grid index against the reference rule, sensors."""

from __future__ import annotations

import collections
import csv
import itertools
import json
import logging
from pathlib import Path

import numpy as np
import pyproj
import pytest
import shapefile
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import mapping, shape

from bigbilbao.errors import BoundaryError
from bigbilbao.spatial.boundary_formats import EUSTAT_BILBAO_WHERE, RawFeature, eustat_district_code, read_raw_layer
from bigbilbao.spatial.index import (
    PolygonIndex,
    assign_geometries,
    assign_geometry,
    build_layer,
    load_demo_districts,
    load_layer,
    reference_assign,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BOUNDARIES = DATA / "bilbao_boundaries"
TRAFFIC_NOISE = DATA / "bilbao_traffic_noise"
DISTRICT_NAMES = ("Deusto", "Uribarri", "Otxarkoaga-Txurdinaga", "Begoña", "Ibaiondo", "Abando", "Errekalde",
                  "Basurtu-Zorrotza")


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test data {path.name} is not present beside the repository")
    return path


@pytest.fixture(scope="module")
def districts():
    path = _need(BOUNDARIES / "bilbao_distritos_from_eustat_barrios_epsg4326.geojson")
    return load_layer(path, id_field="district_code", name_field="district_name")


@pytest.fixture(scope="module")
def barrios():
    path = _need(BOUNDARIES / "bilbao_barrios_eustat_epsg4326.geojson")
    return load_layer(path, id_field="barrio_code", name_field="barrio_name", parent_field="district_code")


@pytest.fixture(scope="module")
def barrio_index(barrios):
    return PolygonIndex.build(barrios)


@pytest.fixture(scope="module")
def district_index(districts):
    return PolygonIndex.build(districts)


def _layer(polygons, codes=None, name="synthetic"):
    codes = codes or [str(n) for n in range(len(polygons))]
    raws = [RawFeature(f"feature #{n}", {"code": code, "name": f"P{code}"}, mapping(polygon))
            for n, (code, polygon) in enumerate(zip(codes, polygons))]
    return build_layer(name, raws, id_field="code", name_field="name")


def _write_geojson(path: Path, features, **top) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", **top, "features": features}), encoding="utf-8")
    return path


def _feature(code, name, geometry):
    return {"type": "Feature", "properties": {"code": code, "name": name}, "geometry": geometry}


def test_real_district_and_barrio_layers_load(districts, barrios):
    assert districts.codes == tuple(str(n) for n in range(1, 9))
    assert districts.names == DISTRICT_NAMES
    assert len(barrios) == 46 and barrios.codes[0] == "101" and barrios.names[0] == "San Ignacio"
    assert all(parent == code[0] for code, parent in zip(barrios.codes, barrios.parents))
    assert all(g.is_valid and g.area > 0 for g in [*districts.geometries, *barrios.geometries])
    lon0, lat0, lon1, lat1 = barrios.bounds
    assert -2.99 < lon0 < lon1 < -2.87 and 43.21 < lat0 < lat1 < 43.30


def test_eustat_shapefile_reprojects_onto_the_geojson_barrios(barrios):
    path = _need(BOUNDARIES / "eustat_barrios_euskadi_shp" / "BARRIOS_EUSTAT_5000_ETRS89.shp")
    raw = read_raw_layer(path)
    assert len(raw.features) == 416 and pyproj.CRS(raw.crs).to_epsg() == 25830
    layer = load_layer(path, id_field="BAR_BARR", name_field="BAR_DS_O", parent_field=eustat_district_code,
                       where=EUSTAT_BILBAO_WHERE)
    assert layer.codes == barrios.codes and layer.names == barrios.names and layer.parents == barrios.parents
    distances = [a.hausdorff_distance(b) for a, b in zip(layer.geometries, barrios.geometries)]
    assert max(distances) < 1e-6  # the GeoJSON is the same data rounded to 1e-7 degrees
    with pytest.raises(BoundaryError, match="duplicate codes"):
        load_layer(path, id_field="BAR_BARR", name_field="BAR_DS_O")  # codes repeat across municipalities


def test_bow_tie_is_repaired_and_hopeless_geometry_is_rejected_by_name(tmp_path, caplog):
    bow_tie = {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]}
    square = {"type": "Polygon", "coordinates": [[[3, 0], [4, 0], [4, 1], [3, 1], [3, 0]]]}
    with caplog.at_level(logging.WARNING, logger="bigbilbao.spatial.index"):
        layer = load_layer(_write_geojson(tmp_path / "ok.geojson", [_feature("B", "Bow", bow_tie),
                                                                   _feature("A", "Sq", square)]),
                           id_field="code", name_field="name")
    assert layer.codes == ("A", "B") and layer.features[1].geometry.is_valid
    assert layer.features[1].geometry.area == pytest.approx(2.0)
    assert "'B'" in caplog.text and "repaired" in caplog.text
    flat = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}
    point = {"type": "Point", "coordinates": [0, 0]}
    for geometry, reason in ((flat, "no polygonal area"), (point, "no polygonal area"), (None, "no geometry")):
        bad = _write_geojson(tmp_path / "bad.geojson", [_feature("A", "Sq", square), _feature("Z9", "Ruin", geometry)])
        with pytest.raises(BoundaryError, match=reason) as caught:
            load_layer(bad, id_field="code", name_field="name")
        assert "feature #1" in str(caught.value) and "'Z9'" in str(caught.value) and "'Ruin'" in str(caught.value)


def test_crs_is_read_from_geojson_member_and_prj_and_can_be_overridden(tmp_path):
    ring = [[505000, 4790000], [505100, 4790000], [505100, 4790100], [505000, 4790100], [505000, 4790000]]
    expected = pyproj.Transformer.from_crs(25830, 4326, always_xy=True).transform(505000, 4790000)
    legacy = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::25830"}}
    path = _write_geojson(tmp_path / "utm.geojson", [_feature("1", "x", {"type": "Polygon", "coordinates": [ring]})],
                          crs=legacy)
    corners = shapely.get_coordinates(load_layer(path, id_field="code", name_field="name").geometries)
    assert np.abs(corners - expected).sum(axis=1).min() < 1e-9 and np.abs(corners - expected).max() < 0.002
    with shapefile.Writer(str(tmp_path / "noprj"), shapeType=shapefile.POLYGON) as writer:
        writer.field("CODE", "C")
        writer.poly([ring[::-1]])
        writer.record("7")
    with pytest.raises(BoundaryError, match="CRS"):
        load_layer(tmp_path / "noprj.shp", id_field="CODE", name_field="CODE")
    layer = load_layer(tmp_path / "noprj.shp", id_field="CODE", name_field="CODE", crs="EPSG:25830")
    assert np.abs(shapely.get_coordinates(layer.geometries) - expected).sum(axis=1).min() < 1e-9
    assert layer.codes == ("7",)


def test_codes_sort_numerically_and_version_tracks_content():
    squares = [shapely.box(n, 0, n + 1, 1) for n in range(3)]
    layer = _layer(squares, ["10", "9", "x"])
    assert layer.codes == ("9", "10", "x")
    assert _layer(squares[::-1], ["x", "9", "10"]).version == layer.version  # file order does not matter
    assert _layer(squares, ["9", "10", "x"]).version != layer.version  # same codes, swapped shapes
    moved = [shapely.box(0, 0, 1, 1 + 1e-9), *squares[1:]]
    assert _layer(moved, ["10", "9", "x"]).version != layer.version


def test_border_rule_on_exact_shared_edges_vertices_and_outer_boundary():
    # codes 9 | 10 side by side over [0,2]x[0,1], and 3 on top over [0,2]x[1,2]; "9" sorts before "10".
    layer = _layer([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(0, 1, 2, 2)], ["9", "10", "3"])
    assert layer.codes == ("3", "9", "10")
    lon = np.array([0.5, 1.5, 1.0, 1.0, 1.0, 0.0, 2.0, 1.5, 2.0 + 1e-12, np.nan, 0.5])
    lat = np.array([0.5, 0.5, 0.5, 1.0, 0.0, 0.5, 2.0, 1.0, 1.0, 0.5, -1e-300])
    expected = np.array([1, 2, 1, 0, 1, 1, 0, 0, -1, -1, -1])
    np.testing.assert_array_equal(reference_assign(layer, lon, lat), expected)
    for cell_size in (None, 0.5, 0.3, 1.0, 2.5):
        np.testing.assert_array_equal(PolygonIndex.build(layer, cell_size).assign(lon, lat), expected)


def test_index_matches_reference_on_a_million_random_points(barrios, barrio_index):
    lon0, lat0, lon1, lat1 = barrios.bounds
    rng = np.random.default_rng(20260211)
    lon = rng.uniform(lon0 - 0.002, lon1 + 0.002, 1_000_000)
    lat = rng.uniform(lat0 - 0.002, lat1 + 0.002, 1_000_000)
    got = barrio_index.assign(lon, lat)
    assert got.dtype == np.int32 and set(np.unique(got)) == set(range(-1, 46))
    np.testing.assert_array_equal(got, reference_assign(barrios, lon, lat))
    border = barrio_index.grid_arrays().cells == -2
    assert 0 < border.mean() < 0.15 and (barrio_index.grid_arrays().cells >= 0).mean() > 0.3  # the fast path is used


@pytest.mark.parametrize(("layer_name", "index_name"), [("barrios", "barrio_index"), ("districts", "district_index")])
def test_index_matches_reference_on_vertices_and_edges(layer_name, index_name, request):
    layer, index = request.getfixturevalue(layer_name), request.getfixturevalue(index_name)
    vertices = np.unique(shapely.get_coordinates(layer.geometries), axis=0)
    ahead, behind = np.nextafter(vertices, np.inf), np.nextafter(vertices, -np.inf)
    rings = [shapely.get_coordinates(ring) for ring in shapely.get_rings(shapely.get_parts(layer.geometries))]
    edges = [ring[:-1] + t * (ring[1:] - ring[:-1]) for ring in rings for t in (0.5, 1 / 3, 0.9)]
    points = np.concatenate([vertices, ahead, behind, ahead * [1, 0] + behind * [0, 1], *edges])
    got = index.assign(points[:, 0], points[:, 1])
    np.testing.assert_array_equal(got, reference_assign(layer, points[:, 0], points[:, 1]))
    on_vertex = got[: len(vertices)]
    assert (on_vertex >= 0).all()  # a vertex is covered by its polygon, so it is never outside
    for position, geometry in enumerate(layer.geometries):
        own = shapely.get_coordinates(geometry)
        assert (index.assign(own[:, 0], own[:, 1]) <= position).all()  # lowest covering index wins


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 5), cells=st.sampled_from([None, 0.05, 0.13, 0.5, 1.7]))
def test_index_matches_reference_on_random_overlapping_polygons(seed, count, cells):
    rng = np.random.default_rng(seed)
    hulls = [shapely.convex_hull(shapely.multipoints(np.round(rng.uniform(0, 2, (5, 2)), 1))) for _ in range(count)]
    hulls = [h for h in hulls if h.geom_type == "Polygon"] or [shapely.box(0, 0, 1, 1)]
    layer = _layer(hulls)
    corners = shapely.get_coordinates(layer.geometries)
    points = np.concatenate([corners, rng.uniform(-0.1, 2.1, (400, 2)), np.round(rng.uniform(0, 2, (400, 2)), 1),
                             np.nextafter(corners, rng.choice([-np.inf, np.inf], corners.shape))])
    got = PolygonIndex.build(layer, cells).assign(points[:, 0], points[:, 1])
    np.testing.assert_array_equal(got, reference_assign(layer, points[:, 0], points[:, 1]))


def test_grid_arrays_reproduce_assign_with_the_documented_formula(barrios, barrio_index):
    grid = barrio_index.grid_arrays()
    assert grid.cells.shape == (grid.nx * grid.ny,) and grid.codes == barrios.codes and grid.version == barrios.version
    assert grid.origin_lon < barrios.bounds[0] and grid.origin_lat < barrios.bounds[1]
    rng = np.random.default_rng(7)
    lon = rng.uniform(grid.origin_lon - 0.01, grid.origin_lon + grid.nx * grid.cell_size + 0.01, 200_000)
    lat = rng.uniform(grid.origin_lat - 0.01, grid.origin_lat + grid.ny * grid.cell_size + 0.01, 200_000)
    ix, iy = np.floor((lon - grid.origin_lon) / grid.cell_size), np.floor((lat - grid.origin_lat) / grid.cell_size)
    on_grid = (ix >= 0) & (ix < grid.nx) & (iy >= 0) & (iy < grid.ny)
    cell = (iy * grid.nx + ix).astype(np.int64)
    result = np.where(on_grid, grid.cells[np.where(on_grid, cell, 0)], -1)
    candidates = collections.defaultdict(list)
    for border_cell, polygon in zip(grid.border_cells.tolist(), grid.border_polygons.tolist()):
        candidates[border_cell].append(polygon)
    assert all(polygons == sorted(polygons) for polygons in candidates.values())
    for n in np.flatnonzero(result == -2):
        covering = [p for p in candidates[cell[n]] if barrios.geometries[p].covers(shapely.Point(lon[n], lat[n]))]
        result[n] = covering[0] if covering else -1
    np.testing.assert_array_equal(result, barrio_index.assign(lon, lat))


def test_noise_meters_and_air_stations_land_in_their_districts(districts, district_index, barrios, barrio_index):
    meters = json.loads(_need(TRAFFIC_NOISE / "bilbao_sonometros_ubicacion_20260127.geojson").read_text("utf-8"))
    xy = np.array([f["geometry"]["coordinates"] for f in meters["features"]])
    got = district_index.assign(xy[:, 0], xy[:, 1])
    np.testing.assert_array_equal(got, reference_assign(districts, xy[:, 0], xy[:, 1]))
    by_barrio = barrio_index.assign(xy[:, 0], xy[:, 1])
    np.testing.assert_array_equal(by_barrio, reference_assign(barrios, xy[:, 0], xy[:, 1]))
    assert [barrios.parents[i] for i in by_barrio] == [districts.codes[i] for i in got]  # barrios nest in districts
    assert collections.Counter(districts.names[i] for i in got) == {
        "Abando": 32, "Ibaiondo": 19, "Deusto": 4, "Basurtu-Zorrotza": 4, "Uribarri": 4, "Begoña": 3, "Errekalde": 3,
        "Otxarkoaga-Txurdinaga": 1}
    stations = _need(DATA / "air_quality_euskadi" / "estaciones_calidad_aire_euskadi_2017.csv")
    with stations.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    number = lambda text: float(text.replace(",", "."))  # noqa: E731 - decimal commas
    lon0, lat0, lon1, lat1 = districts.bounds
    near = [r for r in rows if lon0 <= number(r["Longitude"]) <= lon1 and lat0 <= number(r["Latitude"]) <= lat1]
    lon, lat = np.array([number(r["Longitude"]) for r in near]), np.array([number(r["Latitude"]) for r in near])
    got = district_index.assign(lon, lat)
    np.testing.assert_array_equal(got, reference_assign(districts, lon, lat))
    utm = pyproj.Transformer.from_crs(25830, 4326, always_xy=True).transform(
        [number(r["Coordenates X (ETRS89)"]) for r in near], [number(r["Coordenates Y (ETRS89)"]) for r in near])
    np.testing.assert_array_equal(district_index.assign(*utm), got)
    found = {r["Name"]: districts.names[i] if i >= 0 else None for r, i in zip(near, got)}
    assert {name: district for name, district in found.items() if district} == {
        "MAZARREDO": "Abando", "Mª DIAZ HARO": "Abando", "EUROPA": "Otxarkoaga-Txurdinaga",
        "ARRAIZ (Monte)": "Errekalde", "FERIA (meteo)": "Basurtu-Zorrotza", "BANDERAS (meteo)": "Deusto"}
    assert len(found) > 6  # Basauri and Barakaldo stations inside the bounding box come out as -1


def test_traffic_sections_by_representative_point_and_largest_overlap(districts, district_index):
    path = _need(TRAFFIC_NOISE / "traffic_snapshots" / "bilbao_trafico_secciones_20260127T1500.geojson")
    geometries = [f["geometry"] for f in json.loads(path.read_text("utf-8"))["features"]]
    by_point = assign_geometries(district_index, geometries)
    np.testing.assert_array_equal(by_point, assign_geometries(districts, geometries))
    assert collections.Counter(districts.names[i] for i in by_point) == {
        "Abando": 41, "Ibaiondo": 10, "Basurtu-Zorrotza": 9, "Deusto": 9, "Begoña": 8, "Errekalde": 2, "Uribarri": 2}
    by_overlap = assign_geometries(district_index, geometries, "largest_overlap")
    straddling = 0
    for n, section in enumerate(shapely.make_valid(shape(g)) for g in geometries):
        shared = shapely.area(shapely.intersection(districts.geometries, section))
        straddling += int((shared > 0).sum() > 1)
        assert by_overlap[n] == int(np.argmax(shared)) and shared[by_point[n]] > 0
    assert straddling == 16 and (by_point != by_overlap).sum() > 0


def test_assign_geometry_rules_on_a_synthetic_straddle():
    layer = _layer([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)])
    index = PolygonIndex.build(layer, 0.25)
    sensor = shapely.box(0.2, 0.4, 1.1, 0.6)  # 80 % in polygon 0
    assert assign_geometry(index, mapping(sensor), "largest_overlap") == 0
    assert assign_geometry(layer, shapely.box(0.9, 0.4, 1.8, 0.6).wkt, "largest_overlap") == 1
    assert assign_geometry(index, "LINESTRING (1 0.1, 1 0.9)", "largest_overlap") == 0  # on the shared edge: lowest
    assert assign_geometry(index, "LINESTRING (0.5 0.5, 1.9 0.5)", "largest_overlap") == 1
    assert assign_geometry(index, "POINT (1.5 0.5)", "largest_overlap") == 1
    assert assign_geometry(index, "LINESTRING (5 5, 6 6)") == -1
    inside = sensor.representative_point()
    assert assign_geometry(index, sensor) == reference_assign(layer, [inside.x], [inside.y])[0] == 0
    with pytest.raises(BoundaryError, match="unknown assignment rule"):
        assign_geometry(index, sensor, "centroid")
    with pytest.raises(BoundaryError, match="use a larger cell size"):
        PolygonIndex.build(layer, 1e-5)
    with pytest.raises(BoundaryError, match="differ in shape"):
        index.assign([0.5, 0.5], [0.5])
    with pytest.raises(BoundaryError, match="positive number"):
        PolygonIndex.build(layer, 0.0)
    grid_lon, grid_lat = np.meshgrid(np.linspace(-0.5, 2.5, 31), np.linspace(-0.5, 1.5, 21))
    assert index.assign(grid_lon, grid_lat).shape == (21, 31)
    np.testing.assert_array_equal(index.assign(grid_lon, grid_lat), reference_assign(layer, grid_lon, grid_lat))


def test_demo_districts_are_eight_named_non_overlapping_approximations():
    demo = load_demo_districts()
    assert demo.codes == tuple(str(n) for n in range(1, 9)) and demo.names == DISTRICT_NAMES
    assert all(g.is_valid and g.geom_type == "Polygon" for g in demo.geometries)
    assert all(4 <= len(shapely.get_coordinates(g)) <= 21 for g in demo.geometries)  # hand-drawn, not simplified
    assert all(a.intersection(b).area == 0 for a, b in itertools.combinations(demo.geometries, 2))
    assert shapely.union_all(demo.geometries).geom_type == "Polygon"  # a tiling without gaps
    raw = read_raw_layer(Path(__file__).resolve().parents[2] / "bigbilbao" / "resources" / "demo_districts.geojson")
    assert all(f.properties["approximate"] is True for f in raw.features)
    description = json.loads(
        (Path(__file__).resolve().parents[2] / "bigbilbao" / "resources" / "demo_districts.geojson").read_text("utf-8")
    )["description"]
    assert "not official" in description and "bigbilbao boundaries import" in description
    real = BOUNDARIES / "bilbao_distritos_from_eustat_barrios_epsg4326.geojson"
    if real.exists():
        official = load_layer(real, id_field="district_code", name_field="district_name")
        assert official.names == demo.names
        assert all(a.intersects(b) for a, b in zip(demo.geometries, official.geometries))
        ratio = shapely.union_all(demo.geometries).area / shapely.union_all(official.geometries).area
        assert 0.7 < ratio < 1.4
