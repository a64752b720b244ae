"""Silver's spatial step: point readings are placed per row, shaped sensors (road sections) once per sensor.

Rows with a point get their district and barrio from `enrich.enrich` (exact, mostly in the JVM). Rows whose
location is a line or polygon (Bilbao's traffic sections) have no lon/lat; their sensor is assigned once by
the contract's `shape_rule` in the sensor registry (`bigbilbao.spatial.sensor_registry`) and the rows take the
registry's labels by entity id. Either way every row keeps one district, barrio and boundary version, or an
explicit 'outside' / 'unlocated' marker: nothing is dropped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from bigbilbao.columns import enrich
from bigbilbao.contracts.model import Contract
from bigbilbao.errors import BoundaryError
from bigbilbao.spatial import sensor_registry

log = logging.getLogger(__name__)

LABELS = enrich.OUTPUT_COLUMNS


def locate(df: DataFrame, lakehouse: Path, contract: Contract) -> DataFrame:
    """Add district_code/_name, barrio_code/_name and boundary_version to silver rows; persist `df` first."""
    index = enrich.current_index(df.sparkSession, lakehouse)
    placed = enrich.enrich(df, index)
    shapes = shaped_sensors(df)
    if not shapes:
        return placed
    _register(lakehouse, contract, shapes, index.value)
    registry = _registry_frame(df, lakehouse, contract.feed)
    shaped = F.col("lon").isNull() & F.col("location_geojson").isNotNull() & F.col("_bb_sensor").isNotNull()
    joined = placed.join(registry, on=placed["entity_id"] == registry["_bb_sensor"], how="left")
    return joined.select(
        *[c for c in placed.columns if c not in LABELS],
        *[F.when(shaped, F.col(f"_bb_{name}")).otherwise(F.col(name)).alias(name) for name in LABELS],
    )


def shaped_sensors(df: DataFrame) -> dict[str, Any]:
    """Entity id -> GeoJSON geometry of the rows located by a line or polygon instead of a point."""
    rows = (
        df.filter(F.col("lon").isNull() & F.col("location_geojson").isNotNull())
        .select("entity_id", "location_geojson")
        .dropDuplicates(["entity_id"])
        .collect()
    )
    return {row["entity_id"]: json.loads(row["location_geojson"]) for row in rows if row["entity_id"] is not None}


def _register(lakehouse: Path, contract: Contract, shapes: dict[str, Any], city: enrich.CityIndex) -> None:
    """Register the shapes; an unreadable one is skipped (its rows stay 'unlocated') instead of failing the batch."""
    try:
        sensor_registry.register_sensors(lakehouse, contract.feed, shapes, contract.shape_rule, city=city)
    except BoundaryError:
        for sensor, shape in shapes.items():
            try:
                sensor_registry.register_sensors(lakehouse, contract.feed, {sensor: shape}, contract.shape_rule,
                                                 city=city)
            except BoundaryError as problem:
                log.warning("%s sensor %s has an unusable shape and stays unlocated: %s",
                            contract.feed, sensor, problem)


def _registry_frame(df: DataFrame, lakehouse: Path, feed: str) -> DataFrame:
    """The feed's latest sensor assignments as a small DataFrame with prefixed label columns."""
    table = sensor_registry.load_sensors(lakehouse, feed).select(["sensor_id", *LABELS])
    schema = "_bb_sensor string, " + ", ".join(f"_bb_{name} string" for name in LABELS)
    return df.sparkSession.createDataFrame([tuple(row.values()) for row in table.to_pylist()], schema)
