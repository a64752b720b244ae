"""Spatial core: boundary layers in EPSG:4326 and an exact, grid-accelerated point-in-polygon index.

Border rule, stated once by `reference_assign` and obeyed by every function here: a point gets the
polygon with the LOWEST INDEX among the polygons that COVER it (interior or boundary), and -1 when no
polygon covers it. A layer keeps its features sorted by code (all-digit codes numerically), so lowest
index means lowest code. Strictly inside a polygon this is exactly shapely's `contains`. On an edge or
vertex shared by several polygons, where `contains` is False for all of them, the point goes to the
lowest code. On the outer boundary of the layer the point goes to the polygon it lies on, not outside.

This is the only module that imports shapely; `bigbilbao.spatial.boundary_formats` reads the files.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape

from bigbilbao.errors import BoundaryError
from bigbilbao.spatial.boundary_formats import (
    RawFeature,
    code_of,
    code_sort_key,
    read_raw_layer,
    reproject_features,
    select_features,
)

log = logging.getLogger(__name__)

DEFAULT_CELLS_ON_LONG_SIDE = 512
MAX_CELLS = 4_000_000
OUTSIDE = -1
BORDER = -2
RULES = ("representative_point", "largest_overlap")
ParentSpec = str | Callable[[Mapping[str, Any]], Any] | None


@dataclass(frozen=True)
class BoundaryFeature:
    """One polygon of a layer: code and name for joins and display, parent code for roll-ups."""

    code: str
    name: str
    parent: str | None
    geometry: shapely.Geometry


@dataclass(frozen=True)
class BoundaryLayer:
    """A validated polygon layer in EPSG:4326, sorted by code; `version` is a content hash for lineage."""

    name: str
    features: tuple[BoundaryFeature, ...]
    version: str

    def __len__(self) -> int:
        return len(self.features)

    @property
    def codes(self) -> tuple[str, ...]:
        """Codes in index order: polygon index i in every array result means codes[i]."""
        return tuple(feature.code for feature in self.features)

    @property
    def names(self) -> tuple[str, ...]:
        """Display names in index order, for scorecards and logs."""
        return tuple(feature.name for feature in self.features)

    @property
    def parents(self) -> tuple[str | None, ...]:
        """Parent codes in index order (a barrio's district), for rolling results up."""
        return tuple(feature.parent for feature in self.features)

    @cached_property
    def geometries(self) -> np.ndarray:
        """Geometries as a numpy object array, because shapely's vectorised calls want one."""
        return np.array([feature.geometry for feature in self.features], dtype=object)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(min lon, min lat, max lon, max lat) of the whole layer."""
        x0, y0, x1, y1 = (float(v) for v in shapely.total_bounds(self.geometries))
        return x0, y0, x1, y1


def load_layer(
    path: str | Path,
    *,
    id_field: str,
    name_field: str,
    parent_field: ParentSpec = None,
    where: Mapping[str, Any] | None = None,
    crs: str | None = None,
    name: str | None = None,
) -> BoundaryLayer:
    """Load a GeoJSON or Shapefile in any CRS as a repaired EPSG:4326 layer; `where` keeps matching features only."""
    raw = read_raw_layer(path, crs=crs)
    chosen = select_features(raw.features, where)
    if not chosen:
        message = f"no feature of {Path(path).name!r} matches {dict(where or {})}"
        raise BoundaryError(message)
    return build_layer(name or raw.name, chosen, id_field=id_field, name_field=name_field,
                       parent_field=parent_field, source_crs=raw.crs)


def build_layer(
    name: str,
    features: Sequence[RawFeature],
    *,
    id_field: str,
    name_field: str,
    parent_field: ParentSpec = None,
    source_crs: str = "EPSG:4326",
) -> BoundaryLayer:
    """Turn raw records into a layer: reproject, repair or reject each geometry, sort by code, hash."""
    items = [_feature(raw, id_field, name_field, parent_field) for raw in reproject_features(features, source_crs)]
    if not items:
        message = f"layer {name!r} has no features"
        raise BoundaryError(message)
    items.sort(key=lambda item: code_sort_key(item.code))
    codes = [item.code for item in items]
    duplicates = sorted({code for code in codes if codes.count(code) > 1})
    if duplicates:
        message = f"layer {name!r} has duplicate codes in {id_field!r}: {duplicates}"
        raise BoundaryError(message)
    return BoundaryLayer(name=name, features=tuple(items), version=_content_hash(items))


def load_demo_districts() -> BoundaryLayer:
    """Load the packaged approximate 8-district layer so demos run before the official EUSTAT import."""
    resource = resources.files("bigbilbao") / "resources" / "demo_districts.geojson"
    with resources.as_file(resource) as path:
        return load_layer(path, id_field="district_code", name_field="district_name", name="demo_districts")


def _feature(raw: RawFeature, id_field: str, name_field: str, parent_field: ParentSpec) -> BoundaryFeature:
    """Read code, name and parent of one record and make its geometry a valid polygon, naming it on failure."""
    props = raw.properties
    label = f"{raw.label} ({id_field}={props.get(id_field)!r}, {name_field}={props.get(name_field)!r})"
    code = code_of(props.get(id_field), label)
    title = props.get(name_field)
    parent = parent_field(props) if callable(parent_field) else props.get(parent_field) if parent_field else None
    return BoundaryFeature(
        code=code,
        name=str(title).strip() if title not in (None, "") else code,
        parent=None if parent in (None, "") else code_of(parent, label),
        geometry=_polygonal(_geometry(raw, label), label),
    )


def _geometry(feature: RawFeature, label: str) -> shapely.Geometry:
    """Build the shapely geometry, naming the feature when the mapping is malformed."""
    if not feature.geometry:
        message = f"{label} has no geometry"
        raise BoundaryError(message)
    try:
        return shape(feature.geometry)
    except (shapely.errors.ShapelyError, ValueError, TypeError, KeyError, IndexError) as exc:
        message = f"{label} has an unreadable geometry: {exc}"
        raise BoundaryError(message) from exc


def _polygonal(geometry: shapely.Geometry, label: str) -> shapely.Geometry:
    """Keep a valid polygonal geometry; repair an invalid one with make_valid, or reject it by name."""
    repaired = not geometry.is_valid
    if repaired:
        reason = shapely.is_valid_reason(geometry)
        geometry = shapely.make_valid(geometry)
        log.warning("repaired invalid geometry of %s: %s", label, reason)
    polygons = [part for part in _polygon_parts(geometry) if part.area > 0]
    if not polygons:
        kind = geometry.geom_type
        message = f"{label} has no polygonal area{' after repair' if repaired else ''} (it is a {kind})"
        raise BoundaryError(message)
    result = polygons[0] if len(polygons) == 1 else shapely.union_all(polygons)
    if not result.is_valid:
        message = f"{label} cannot be repaired: {shapely.is_valid_reason(result)}"
        raise BoundaryError(message)
    return shapely.force_2d(shapely.normalize(result))


def _polygon_parts(geometry: shapely.Geometry) -> list[shapely.Geometry]:
    """Flatten multi-geometries and collections down to their Polygons, dropping lines and points."""
    parts: list[shapely.Geometry] = []
    for part in shapely.get_parts(geometry):
        if part.geom_type == "Polygon":
            parts.append(part)
        elif part.geom_type in ("MultiPolygon", "GeometryCollection"):
            parts.extend(_polygon_parts(part))
    return parts


def _content_hash(features: Iterable[BoundaryFeature]) -> str:
    """Hash codes, names, parents and exact geometry, so any change to the layer changes its version."""
    digest = hashlib.sha256()
    for feature in features:
        digest.update(json.dumps([feature.code, feature.name, feature.parent]).encode("utf-8"))
        digest.update(shapely.to_wkb(feature.geometry, byte_order=1, output_dimension=2))
    return digest.hexdigest()[:16]


def _coordinates(lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
    """Coerce lon/lat to equal-shaped float64 arrays, the only input the assigners accept."""
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    if x.shape != y.shape:
        message = f"lon and lat differ in shape: {x.shape} vs {y.shape}"
        raise BoundaryError(message)
    return x, y


def reference_assign(layer: BoundaryLayer, lon: Any, lat: Any) -> np.ndarray:
    """State the border rule directly with shapely `covers` (slow) so the fast index can be checked against it."""
    x, y = _coordinates(lon, lat)
    points = shapely.points(x, y)
    result = np.full(x.shape, OUTSIDE, dtype=np.int32)
    for position in range(len(layer) - 1, -1, -1):
        result[shapely.covers(layer.features[position].geometry, points)] = position
    return result


@dataclass(frozen=True, eq=False)
class GridArrays:
    """The index grid as plain arrays, so Spark can do the same lookup in the JVM with a broadcast join.

    A point (lon, lat) falls in column ix = floor((lon - origin_lon) / cell_size) and row
    iy = floor((lat - origin_lat) / cell_size), computed in IEEE double exactly in that order (subtract,
    then divide; not a multiplication by the reciprocal). If 0 <= ix < nx and 0 <= iy < ny its cell id is
    iy * nx + ix, else the point is outside the layer. cells[cell id] is the polygon index (>= 0) when the
    whole cell lies strictly inside that single polygon, -1 when no polygon touches the cell, and -2 for a
    border cell. For a border cell, (border_cells, border_polygons) lists, in ascending polygon order, the
    only polygons that can cover a point of it: the answer is the first one whose `covers` is true, else -1.
    codes[polygon index] is the layer code; version is the layer's content hash. In Spark, keep every operand
    a DoubleType (a SQL literal such as 0.0002 is a DECIMAL and would round differently).
    """

    origin_lon: float
    origin_lat: float
    cell_size: float
    nx: int
    ny: int
    cells: np.ndarray
    border_cells: np.ndarray
    border_polygons: np.ndarray
    codes: tuple[str, ...]
    version: str

    def cell_ids(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Apply the documented cell formula; -1 for points off the grid (or NaN)."""
        fx = np.floor((lon - self.origin_lon) / self.cell_size)
        fy = np.floor((lat - self.origin_lat) / self.cell_size)
        inside = (fx >= 0) & (fx < self.nx) & (fy >= 0) & (fy < self.ny)
        return np.where(inside, fy * self.nx + fx, -1).astype(np.int64)


@dataclass(frozen=True, eq=False)
class PolygonIndex:
    """Exact point-in-polygon under the module's border rule: a grid answers most points, shapely the rest."""

    layer: BoundaryLayer
    grid: GridArrays
    _offsets: np.ndarray  # border-cell rank -> start of its candidates in grid.border_polygons
    _rank: np.ndarray  # cell id -> rank among border cells, -1 for other cells

    @classmethod
    def build(cls, layer: BoundaryLayer, cell_size: float | None = None) -> PolygonIndex:
        """Classify every grid cell as interior of one polygon, outside all, or border; size in degrees."""
        size = _auto_cell_size(layer) if cell_size is None else float(cell_size)
        if not (np.isfinite(size) and size > 0):
            message = f"cell size must be a positive number of degrees, not {cell_size!r}"
            raise BoundaryError(message)
        minx, miny, maxx, maxy = layer.bounds
        margin = max(size * 1e-6, 64 * float(np.spacing(max(abs(minx), abs(maxx), abs(miny), abs(maxy)))))
        x0, y0 = minx - 2 * margin, miny - 2 * margin
        nx = int(np.floor((maxx + 2 * margin - x0) / size)) + 1
        ny = int(np.floor((maxy + 2 * margin - y0) / size)) + 1
        if nx * ny > MAX_CELLS:
            message = f"cell size {size} gives {nx}x{ny} cells for layer {layer.name!r}; use a larger cell size"
            raise BoundaryError(message)
        shapely.prepare(layer.geometries)
        cells, pair_cells, pair_polys = _classify(layer.geometries, x0, y0, size, nx, ny, margin)
        border = cells[pair_cells] == BORDER
        order = np.lexsort((pair_polys[border], pair_cells[border]))
        border_cells, border_polys = pair_cells[border][order], pair_polys[border][order].astype(np.int32)
        for array in (cells, border_cells, border_polys):
            array.setflags(write=False)
        grid = GridArrays(x0, y0, size, nx, ny, cells, border_cells, border_polys, layer.codes, layer.version)
        unique, counts = np.unique(border_cells, return_counts=True)
        rank = np.full(nx * ny, -1, dtype=np.int32)
        rank[unique] = np.arange(unique.size, dtype=np.int32)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        log.info("indexed %s: %dx%d cells of %.6f deg, %.1f%% border", layer.name, nx, ny, size,
                 100.0 * unique.size / (nx * ny))
        return cls(layer=layer, grid=grid, _offsets=offsets, _rank=rank)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Prepare the geometries again after unpickling (e.g. on a Spark worker): prepared state does not travel."""
        self.__dict__.update(state)
        shapely.prepare(self.layer.geometries)

    def grid_arrays(self) -> GridArrays:
        """Expose the grid (origin, cell size, shape, cell -> polygon, border candidates) for the JVM lookup."""
        return self.grid

    def assign(self, lon: Any, lat: Any) -> np.ndarray:
        """Give each point its polygon index (int32) or -1, exactly as `reference_assign` would."""
        x, y = _coordinates(lon, lat)
        x, y = x.ravel(), y.ravel()
        cell = self.grid.cell_ids(x, y)
        result = np.where(cell >= 0, self.grid.cells.take(np.maximum(cell, 0)), OUTSIDE).astype(np.int32)
        border = np.flatnonzero(result == BORDER)
        if border.size:
            result[border] = self._resolve(cell[border], x[border], y[border])
        return result.reshape(np.shape(lon))

    def _resolve(self, cell: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Test border points against their cell's candidates in ascending order; the first cover wins."""
        rank = self._rank[cell]
        start = self._offsets[rank]
        count = self._offsets[rank + 1] - start
        point = np.repeat(np.arange(cell.size), count)
        position = np.arange(point.size) + np.repeat(start - (np.cumsum(count) - count), count)
        polygon = self.grid.border_polygons[position]
        hit = shapely.intersects_xy(self.layer.geometries[polygon], x[point], y[point])
        result = np.full(cell.size, OUTSIDE, dtype=np.int32)
        hit_point, hit_polygon = point[hit], polygon[hit]
        first = np.ones(hit_point.size, dtype=bool)
        first[1:] = hit_point[1:] != hit_point[:-1]
        result[hit_point[first]] = hit_polygon[first]
        return result


def _auto_cell_size(layer: BoundaryLayer) -> float:
    """Pick a cell size giving DEFAULT_CELLS_ON_LONG_SIDE cells along the layer's longer side."""
    minx, miny, maxx, maxy = layer.bounds
    return max(maxx - minx, maxy - miny) / DEFAULT_CELLS_ON_LONG_SIDE


def _cell_range(low: float, high: float, origin: float, size: float, count: int, margin: float) -> np.ndarray:
    """Column (or row) numbers whose grown cells can meet [low, high], with one spare cell on each side."""
    first = int(np.floor((low - margin - origin) / size)) - 1
    last = int(np.floor((high + margin - origin) / size)) + 1
    return np.arange(max(first, 0), min(last + 1, count))


def _classify(
    geometries: np.ndarray, x0: float, y0: float, size: float, nx: int, ny: int, margin: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return cell classes and the (cell, polygon) pairs that touch, testing each cell grown by `margin`.

    Growing the cell makes the classes safe against the rounding of the cell formula: a point binned into
    an interior cell is strictly inside that polygon and touches no other.
    """
    pair_cells, pair_polys, proper = [], [], []
    for position, geometry in enumerate(geometries):
        gx0, gy0, gx1, gy1 = shapely.bounds(geometry)
        ix, iy = _cell_range(gx0, gx1, x0, size, nx, margin), _cell_range(gy0, gy1, y0, size, ny, margin)
        gx, gy = (a.ravel() for a in np.meshgrid(ix, iy))
        left, bottom = x0 + gx * size, y0 + gy * size
        boxes = shapely.box(left - margin, bottom - margin, left + size + margin, bottom + size + margin)
        touching = shapely.intersects(geometry, boxes)
        pair_cells.append((gy * nx + gx)[touching])
        pair_polys.append(np.full(int(touching.sum()), position, dtype=np.int64))
        proper.append(shapely.contains_properly(geometry, boxes[touching]))
    pair_cells_all, pair_polys_all = np.concatenate(pair_cells), np.concatenate(pair_polys)
    proper_all = np.concatenate(proper)
    touches = np.bincount(pair_cells_all, minlength=nx * ny)
    cells = np.full(nx * ny, OUTSIDE, dtype=np.int32)
    cells[touches > 0] = BORDER
    interior = proper_all & (touches[pair_cells_all] == 1)
    cells[pair_cells_all[interior]] = pair_polys_all[interior]
    return cells, pair_cells_all, pair_polys_all


def assign_geometry(target: PolygonIndex | BoundaryLayer, geom: Any, rule: str = "representative_point") -> int:
    """Give a line or polygon sensor (e.g. a traffic section) one polygon index, or -1; see `assign_geometries`."""
    return int(assign_geometries(target, [geom], rule)[0])


def assign_geometries(
    target: PolygonIndex | BoundaryLayer, geoms: Iterable[Any], rule: str = "representative_point"
) -> np.ndarray:
    """Give each sensor geometry (shapely, GeoJSON mapping or WKT) one polygon index, or -1.

    "representative_point": the polygon that gets shapely's point_on_surface of the sensor under the
    border rule; that point always lies on the sensor, so the answer is a polygon the sensor touches.
    "largest_overlap": the polygon sharing the largest area (length for lines) with the sensor, ties to
    the lowest index; measured in lon/lat, whose distortion is uniform across a sensor so the ranking
    holds. Points, and sensors overlapping nothing with positive measure, fall back to the first rule.
    """
    if rule not in RULES:
        message = f"unknown assignment rule {rule!r}; choose one of {RULES}"
        raise BoundaryError(message)
    shapes = np.array([_sensor_geometry(geom) for geom in geoms], dtype=object)
    if shapes.size == 0:
        return np.zeros(0, dtype=np.int32)
    points = shapely.point_on_surface(shapes)
    result = _assign_points(target, shapely.get_x(points), shapely.get_y(points))
    if rule == "largest_overlap":
        layer = target.layer if isinstance(target, PolygonIndex) else target
        for position, sensor in enumerate(shapes):
            result[position] = _largest_overlap(layer, sensor, int(result[position]))
    return result


def _assign_points(target: PolygonIndex | BoundaryLayer, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Use the fast index when given one, else the reference rule; both give the same answer."""
    return target.assign(x, y) if isinstance(target, PolygonIndex) else reference_assign(target, x, y)


def _sensor_geometry(geom: Any) -> shapely.Geometry:
    """Accept shapely, a GeoJSON geometry mapping or WKT, and make it valid so overlay cannot fail."""
    try:
        if isinstance(geom, shapely.Geometry):
            result = geom
        elif isinstance(geom, Mapping):
            result = shape(geom)
        else:
            result = shapely.from_wkt(str(geom))
    except (shapely.errors.ShapelyError, ValueError, TypeError, KeyError, IndexError) as exc:
        message = f"sensor geometry {str(geom)[:80]!r} is unreadable: {exc}"
        raise BoundaryError(message) from exc
    return result if result.is_valid else shapely.make_valid(result)


def _largest_overlap(layer: BoundaryLayer, sensor: shapely.Geometry, fallback: int) -> int:
    """Return the polygon with the largest shared area or length, lowest index on ties, else `fallback`."""
    dimension = shapely.get_dimensions(sensor)
    if dimension == 0 or sensor.is_empty:
        return fallback
    measure = shapely.area if dimension == 2 else shapely.length
    candidates = np.flatnonzero(shapely.intersects(layer.geometries, sensor))
    if candidates.size == 0:
        return fallback
    shared = measure(shapely.intersection(layer.geometries[candidates], sensor))
    return int(candidates[int(np.argmax(shared))]) if shared.max() > 0 else fallback


def to_wkt(geoms: Iterable[Any]) -> list[str]:
    """Full-precision WKT of geometries (shapely, GeoJSON mapping or WKT), so a stored copy rebuilds bit for bit."""
    shapes = np.array([_sensor_geometry(geom) for geom in geoms], dtype=object)
    return shapely.to_wkt(shapes, rounding_precision=-1).tolist() if shapes.size else []


def layer_from_wkt(
    name: str, codes: Sequence[str], names: Sequence[str], parents: Sequence[str | None], wkts: Sequence[str]
) -> BoundaryLayer:
    """Rebuild a stored layer from WKT rows through `build_layer`, so it is validated and hashed like a file."""
    raws = []
    for position, (code, title, parent, wkt) in enumerate(zip(codes, names, parents, wkts, strict=True)):
        try:
            geometry = shapely.geometry.mapping(shapely.from_wkt(wkt))
        except (shapely.errors.ShapelyError, ValueError, TypeError) as exc:
            message = f"stored geometry of {name!r} code {code!r} is unreadable WKT: {exc}"
            raise BoundaryError(message) from exc
        raws.append(RawFeature(f"row #{position}", {"code": code, "name": title, "parent": parent}, geometry))
    return build_layer(name, raws, id_field="code", name_field="name", parent_field="parent")
