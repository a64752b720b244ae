"""Sensor registry: line and polygon sensors (traffic sections...) assigned to a district and barrio once.

Point readings are placed per row by `bigbilbao.columns.enrich.enrich`; a sensor with a shape (a road section, a
zone) is placed once, by `spatial.assign_geometries` (default rule: the polygon holding shapely's
point_on_surface of the sensor; or "largest_overlap"), and streams join its readings on the sensor id.
The registry is the Delta table `<lakehouse>/reference/sensors`, written without Spark and readable by
Spark, deltalake and DuckDB; it keeps every assignment, so a new boundary version re-assigns without loss.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bigbilbao.spatial.city_index import OUTSIDE_CODE, CityIndex
from bigbilbao.spatial.index import PolygonIndex, assign_geometries, to_wkt
from bigbilbao.tables.read import table_path

log = logging.getLogger(__name__)

SENSOR_SCHEMA = pa.schema([
    pa.field("feed", pa.string(), nullable=False), pa.field("sensor_id", pa.string(), nullable=False),
    pa.field("rule", pa.string(), nullable=False), pa.field("geometry_wkt", pa.string(), nullable=False),
    pa.field("district_code", pa.string()), pa.field("district_name", pa.string()),
    pa.field("barrio_code", pa.string()), pa.field("barrio_name", pa.string()),
    pa.field("boundary_version", pa.string(), nullable=False),
    pa.field("registered_at", pa.timestamp("us", tz="UTC"), nullable=False),
])
_SENSOR_KEY = ("feed", "sensor_id", "rule", "geometry_wkt", "boundary_version")


def sensors_path(lakehouse: Path) -> Path:
    """Where the sensor registry lives, beside the boundaries."""
    return table_path(Path(lakehouse), "reference", "sensors")


def register_sensors(lakehouse: Path, feed: str, sensors: Mapping[str, Any], rule: str = "representative_point",
                     city: CityIndex | None = None) -> int:
    """Assign line/polygon sensors (id -> shapely, GeoJSON or WKT) once, so streams join on the id; new rows.

    A sensor is assigned again only when its geometry, the rule or the boundary version changed; the
    registry keeps every assignment, and `load_sensors` returns the latest one per sensor.
    """
    city = CityIndex.from_lakehouse(lakehouse) if city is None else city
    ids = [str(key) for key in sensors]
    wkts = to_wkt(sensors.values())
    columns: dict[str, list[Any]] = {"feed": [feed] * len(ids), "sensor_id": ids, "rule": [rule] * len(ids),
                                     "geometry_wkt": wkts}
    for name, prefix in (("districts", "district"), ("barrios", "barrio")):
        columns[f"{prefix}_code"], columns[f"{prefix}_name"] = _sensor_labels(city.indexes().get(name), wkts, rule)
    columns["boundary_version"] = [city.version] * len(ids)
    columns["registered_at"] = [datetime.now(timezone.utc)] * len(ids)
    rows = pa.table(columns, schema=SENSOR_SCHEMA)
    known = {tuple(row.values()) for row in _read_sensors(lakehouse).select(list(_SENSOR_KEY)).to_pylist()}
    fresh = [n for n, row in enumerate(rows.select(list(_SENSOR_KEY)).to_pylist()) if tuple(row.values()) not in known]
    if fresh:
        from deltalake import write_deltalake

        write_deltalake(str(sensors_path(lakehouse)), rows.take(fresh), mode="append")
    log.info("registered %d of %d %s sensors under %s", len(fresh), len(ids), feed, city.version)
    return len(fresh)


def _sensor_labels(index: PolygonIndex | None, wkts: list[str], rule: str) -> tuple[list[Any], list[Any]]:
    """Codes and names of each sensor's polygon ('outside' when none); nulls when the layer is absent."""
    if index is None:
        return [None] * len(wkts), [None] * len(wkts)
    found = assign_geometries(index, wkts, rule).tolist()
    codes = [index.layer.codes[i] if i >= 0 else OUTSIDE_CODE for i in found]
    names = [index.layer.names[i] if i >= 0 else OUTSIDE_CODE for i in found]
    return codes, names


def load_sensors(lakehouse: Path, feed: str | None = None) -> pa.Table:
    """The latest assignment of every registered sensor (of one feed, if given), without Spark."""
    table = _read_sensors(lakehouse)
    if feed is not None:
        table = table.filter(pc.equal(table["feed"], feed))
    ordered = table.sort_by([("feed", "ascending"), ("sensor_id", "ascending"), ("registered_at", "descending")])
    keys = list(zip(ordered["feed"].to_pylist(), ordered["sensor_id"].to_pylist()))
    first = [n for n, key in enumerate(keys) if n == 0 or key != keys[n - 1]]
    return ordered.take(first)


def _read_sensors(lakehouse: Path) -> pa.Table:
    """The whole registry as Arrow (small), or an empty table of the right schema."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(str(sensors_path(lakehouse))).to_pyarrow_table().cast(SENSOR_SCHEMA)
    except TableNotFoundError:
        return SENSOR_SCHEMA.empty_table()
