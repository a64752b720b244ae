"""Read boundary files (GeoJSON, Shapefile) into plain records and reproject them, without a geometry library.

This module knows file formats, codes and CRSs: it turns a file into `RawFeature` records whose geometry
is a GeoJSON-like mapping, says which CRS the coordinates are in, and moves them to EPSG:4326 with
pyproj. Building, repairing and querying shapely geometries happens in `bigbilbao.spatial.index`, the only
module that imports shapely.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pyproj
import shapefile

from bigbilbao.errors import BoundaryError

log = logging.getLogger(__name__)

GEOJSON_DEFAULT_CRS = "EPSG:4326"
WGS84 = pyproj.CRS.from_epsg(4326)
EUSTAT_BILBAO_WHERE = MappingProxyType({"BAR_PROV": "48", "BAR_MUNI": "020"})  # Bizkaia 48, Bilbao 020
GEOJSON_SUFFIXES = frozenset({".geojson", ".json"})
SHAPEFILE_SUFFIXES = frozenset({".shp"})


@dataclass(frozen=True)
class RawFeature:
    """One feature as read from the file, kept apart from shapely so format code stays geometry-free."""

    label: str
    properties: Mapping[str, Any]
    geometry: Mapping[str, Any] | None


@dataclass(frozen=True)
class RawLayer:
    """The features of one file and the CRS its coordinates are written in, before reprojection."""

    name: str
    crs: str
    features: tuple[RawFeature, ...]


def read_raw_layer(path: str | Path, *, crs: str | None = None) -> RawLayer:
    """Read a GeoJSON or Shapefile by suffix so callers need not know the format; `crs` overrides the file's."""
    source = Path(path)
    if not source.exists():
        message = f"boundary file {source.name!r} does not exist"
        raise BoundaryError(message)
    suffix = source.suffix.lower()
    if suffix in GEOJSON_SUFFIXES:
        layer = _read_geojson(source)
    elif suffix in SHAPEFILE_SUFFIXES:
        layer = _read_shapefile(source)
    else:
        message = f"boundary file {source.name!r} is neither GeoJSON (.geojson/.json) nor Shapefile (.shp)"
        raise BoundaryError(message)
    if crs is not None:
        layer = RawLayer(name=layer.name, crs=crs, features=layer.features)
    if not layer.crs:
        message = f"boundary file {source.name!r} does not say its CRS; give it with --crs (e.g. EPSG:25830)"
        raise BoundaryError(message)
    log.debug("read %d features from %s (crs %s)", len(layer.features), source.name, layer.crs[:40])
    return layer


def select_features(features: Iterable[RawFeature], where: Mapping[str, Any] | None) -> tuple[RawFeature, ...]:
    """Keep features whose properties equal every `where` value (compared as text), e.g. one municipality."""
    chosen = tuple(features)
    if not where:
        return chosen
    wanted = {key: str(value) for key, value in where.items()}
    return tuple(
        feature
        for feature in chosen
        if all(key in feature.properties and str(feature.properties[key]) == value for key, value in wanted.items())
    )


def _read_geojson(path: Path) -> RawLayer:
    """Parse a FeatureCollection or a Feature; RFC 7946 means EPSG:4326 unless a legacy `crs` member differs."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        message = f"boundary file {path.name!r} is not readable GeoJSON: {exc}"
        raise BoundaryError(message) from exc
    if not isinstance(document, dict):
        message = f"boundary file {path.name!r} is not a GeoJSON object"
        raise BoundaryError(message)
    kind = document.get("type")
    if kind == "FeatureCollection":
        items = document.get("features") or []
    elif kind == "Feature":
        items = [document]
    else:
        message = f"boundary file {path.name!r} is GeoJSON of type {kind!r}, not a Feature or FeatureCollection"
        raise BoundaryError(message)
    features = tuple(
        RawFeature(
            label=f"feature #{position}",
            properties=dict(item.get("properties") or {}),
            geometry=item.get("geometry"),
        )
        for position, item in enumerate(items)
    )
    name = str(document.get("name") or path.stem)
    return RawLayer(name=name, crs=_geojson_crs(document), features=features)


def _geojson_crs(document: Mapping[str, Any]) -> str:
    """Honour the pre-RFC `crs` member (e.g. urn:ogc:def:crs:EPSG::25830) that QGIS and GDAL still write."""
    member = document.get("crs")
    if isinstance(member, dict):
        name = (member.get("properties") or {}).get("name")
        if name:
            return str(name)
    return GEOJSON_DEFAULT_CRS


def _read_shapefile(path: Path) -> RawLayer:
    """Read a polygon Shapefile with pyshp; the CRS is the .prj WKT and the encoding the .cpg, if present."""
    encoding = _sidecar_text(path, ".cpg") or "utf-8"
    try:
        with shapefile.Reader(str(path.with_suffix("")), encoding=encoding.strip()) as reader:
            names = [field[0] for field in reader.fields[1:]]
            features = tuple(
                RawFeature(
                    label=f"record #{position}",
                    properties=dict(zip(names, list(shape_record.record))),
                    geometry=_shape_geometry(shape_record.shape),
                )
                for position, shape_record in enumerate(reader.iterShapeRecords())
            )
    except (shapefile.ShapefileException, OSError, LookupError, UnicodeDecodeError) as exc:
        message = f"shapefile {path.name!r} cannot be read: {exc}"
        raise BoundaryError(message) from exc
    return RawLayer(name=path.stem, crs=(_sidecar_text(path, ".prj") or "").strip(), features=features)


def _shape_geometry(shape: Any) -> Mapping[str, Any] | None:
    """Turn a pyshp shape into a GeoJSON-like mapping; pyshp sorts rings into shells and holes by orientation."""
    if shape.shapeType == shapefile.NULL:
        return None
    return shape.__geo_interface__


def _sidecar_text(path: Path, suffix: str) -> str | None:
    """Return a shapefile sidecar's text (.prj, .cpg) whatever the case of its suffix, or None."""
    for candidate in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
        if candidate.exists():
            return candidate.read_text(encoding="ascii", errors="replace")
    return None


def eustat_district_code(properties: Mapping[str, Any]) -> str | None:
    """Derive a Bilbao barrio's district from EUSTAT's BAR_BARR, whose first digit is the district (1-8)."""
    code = str(properties.get("BAR_BARR") or "").strip()
    return code[0] if code[:1].isdigit() else None


def code_of(value: Any, label: str) -> str:
    """Normalise a code to text so 1, 1.0 and '1' are the same key."""
    if value is None or (isinstance(value, str) and not value.strip()):
        message = f"{label} has no code"
        raise BoundaryError(message)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def code_sort_key(code: str) -> tuple[int, int, str]:
    """Sort all-digit codes numerically and others as text, so '2' comes before '10'."""
    return (0, int(code), code) if code.isdigit() else (1, 0, code)


def reproject_features(features: Sequence[RawFeature], source_crs: str) -> tuple[RawFeature, ...]:
    """Reproject every coordinate to lon/lat EPSG:4326 (always_xy) with one vectorised pyproj call."""
    try:
        source = pyproj.CRS.from_user_input(source_crs)
    except pyproj.exceptions.CRSError as exc:
        message = f"CRS {source_crs[:80]!r} is not one pyproj knows ({exc}); give e.g. --crs EPSG:25830"
        raise BoundaryError(message) from exc
    chunks: list[np.ndarray] = []
    owners: list[int] = []
    for position, feature in enumerate(features):
        before = len(chunks)
        _collect_geometry(feature.geometry, chunks, feature.label)
        owners += [position] * (len(chunks) - before)
    if not chunks:
        return tuple(features)
    xy = np.concatenate(chunks)
    owner = np.repeat(owners, [len(chunk) for chunk in chunks])
    if source.equals(WGS84, ignore_axis_order=True):
        _check_lonlat(xy[:, 0], xy[:, 1], owner, features, source)
        return tuple(features)
    lon, lat = pyproj.Transformer.from_crs(source, WGS84, always_xy=True).transform(xy[:, 0], xy[:, 1])
    _check_lonlat(lon, lat, owner, features, source)
    lonlat = iter(np.column_stack([lon, lat]).tolist())
    return tuple(_with_coordinates(feature, lonlat) for feature in features)


def _check_lonlat(lon: np.ndarray, lat: np.ndarray, owner: np.ndarray, features: Sequence[RawFeature],
                  source: pyproj.CRS) -> None:
    """Reject positions that are not lon/lat after reprojection: the file's CRS is wrong or missing."""
    bad = np.flatnonzero(~(np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)))
    if bad.size:
        first = int(bad[0])
        message = (f"{features[int(owner[first])].label} has a position that is not longitude/latitude when read as "
                   f"{source.name!r} (it becomes {lon[first]:.6g}, {lat[first]:.6g}), so that CRS is wrong; "
                   "give the file's real CRS, e.g. --crs EPSG:25830")
        raise BoundaryError(message)


def _collect_geometry(geometry: Mapping[str, Any] | None, chunks: list[np.ndarray], label: str) -> None:
    """Walk a geometry mapping, GeometryCollections included, collecting its positions in document order."""
    if not geometry:
        return
    if "geometries" in geometry:
        for member in geometry["geometries"] or []:
            _collect_geometry(member, chunks, label)
    else:
        _collect_positions(geometry.get("coordinates"), chunks, label)


def _collect_positions(coordinates: Any, chunks: list[np.ndarray], label: str) -> None:
    """Append each innermost position list (a ring or line) as an (n, 2) array, in document order."""
    if not isinstance(coordinates, (list, tuple)) or not coordinates:
        return
    if isinstance(coordinates[0], (int, float)):
        chunks.append(_xy(coordinates, label).reshape(1, 2))
    elif isinstance(coordinates[0], (list, tuple)) and coordinates[0] and isinstance(coordinates[0][0], (int, float)):
        chunks.append(np.array([_xy(position, label) for position in coordinates]).reshape(-1, 2))
    else:
        for part in coordinates:
            _collect_positions(part, chunks, label)


def _xy(position: Any, label: str) -> np.ndarray:
    """Keep x and y of a position (dropping z), naming the feature if the position is malformed."""
    if len(position) < 2:
        message = f"{label} has a position with fewer than two numbers: {position!r}"
        raise BoundaryError(message)
    return np.array(position[:2], dtype=np.float64)


def _with_coordinates(feature: RawFeature, lonlat: Iterator[list[float]]) -> RawFeature:
    """Rebuild a feature's geometry with reprojected positions taken in the order they were collected."""
    return replace(feature, geometry=_rebuild_geometry(feature.geometry, lonlat))


def _rebuild_geometry(geometry: Mapping[str, Any] | None, lonlat: Iterator[list[float]]) -> Mapping[str, Any] | None:
    """Mirror `_collect_geometry` on one geometry mapping."""
    if not geometry:
        return geometry
    if "geometries" in geometry:
        return dict(geometry, geometries=[_rebuild_geometry(member, lonlat) for member in geometry["geometries"] or []])
    return dict(geometry, coordinates=_replace_positions(geometry.get("coordinates"), lonlat))


def _replace_positions(coordinates: Any, lonlat: Iterator[list[float]]) -> Any:
    """Mirror `_collect_positions`: swap each position for the next reprojected one."""
    if not isinstance(coordinates, (list, tuple)) or not coordinates:
        return coordinates
    if isinstance(coordinates[0], (int, float)):
        return next(lonlat)
    return [_replace_positions(part, lonlat) for part in coordinates]
