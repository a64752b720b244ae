"""Spatial enrichment in Spark: district and barrio of every row from its lon/lat, exact and mostly in the JVM.

Both layers are indexed on one shared grid (`CityIndex`), which becomes a small DataFrame (blocks of cell
classes: polygon index, -1 empty, -2 border) broadcast-hash-joined on a cell id computed with DOUBLE
column arithmetic, the exact formula of `GridArrays`. Rows in interior or empty cells never leave the JVM;
only rows in border cells (about 2 % of the city) go to Python (`mapInArrow`), where `PolygonIndex.assign`
resolves them with shapely. The result equals `spatial.reference_assign` row for row. The input is
evaluated twice (an interior and a border branch), so it must be deterministic; persist it first when it
is expensive to compute. Streams call `current_index` per micro-batch to pick up newly imported
boundaries; sensors with a shape are placed once by `bigbilbao.spatial.sensor_registry`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark import Broadcast
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from bigbilbao.errors import BoundaryError
from bigbilbao.spatial import boundary_store
from bigbilbao.spatial.city_index import OUTSIDE_CODE, UNLOCATED_CODE, CityIndex
from bigbilbao.spatial.index import BORDER, OUTSIDE, GridArrays

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = ("district_code", "district_name", "barrio_code", "barrio_name", "boundary_version")
_PREFIX = "_bb_enrich_"
BLOCK_BITS = 6
BLOCK_CELLS = 1 << BLOCK_BITS  # grid cells per row of the broadcast table
_GRID_FRAMES: dict[tuple[str, str], DataFrame] = {}


def enrich(df: DataFrame, index_bc: Broadcast, lon: str = "lon", lat: str = "lat") -> DataFrame:
    """Add district_code/_name, barrio_code/_name and boundary_version; rows are never dropped or duplicated.

    A row outside a layer gets code and name 'outside', one without usable coordinates (null, NaN or
    infinite) 'unlocated'; barrio columns are null while no barrio layer is imported. Existing columns of
    those names are replaced.
    """
    missing = [name for name in (lon, lat) if name not in df.columns]
    if missing:
        message = f"enrich needs coordinate columns {missing} but the data has {df.columns}"
        raise BoundaryError(message)
    city: CityIndex = index_bc.value
    x, y = F.col(lon).try_cast(T.DoubleType()), F.col(lat).try_cast(T.DoubleType())
    infinity = F.lit(float("inf"))
    located = F.coalesce(~F.isnan(x) & ~F.isnan(y) & (F.abs(x) != infinity) & (F.abs(y) != infinity), F.lit(False))
    kept = [c for c in df.columns if c not in OUTPUT_COLUMNS]
    looked_up = df.select(*[F.col(c) for c in kept], x.alias(f"{_PREFIX}x"), y.alias(f"{_PREFIX}y"),
                          located.alias(f"{_PREFIX}located"))
    for grids in _shared_grids(city).values():
        looked_up = _grid_lookup(looked_up, grids)
    positions = [f"{_PREFIX}{name}" for name in city.indexes()]
    border = F.lit(False)
    for position in positions:
        border = border | (F.col(position) == F.lit(BORDER))
    interior = looked_up.filter(~border).select(*kept, f"{_PREFIX}located", *positions)
    resolved = _border_branch(looked_up.filter(border), index_bc, kept, positions, (lon, lat))
    both = interior.unionByName(resolved)
    return both.select(*[F.col(c) for c in kept], *_labels(city, F.col(f"{_PREFIX}located")))


def _border_branch(df: DataFrame, index_bc: Broadcast, kept: list[str], positions: list[str],
                   lonlat: tuple[str, str]) -> DataFrame:
    """Send border-cell rows to Python with as few columns as possible: coordinates once, no constant flags."""
    doubles = all(isinstance(df.schema[name].dataType, T.DoubleType) for name in lonlat)
    coordinates = list(lonlat) if doubles else [f"{_PREFIX}x", f"{_PREFIX}y"]
    sent = df.select(*kept, *[c for c in coordinates if c not in kept], *positions)
    out = T.StructType([sent.schema[c] for c in (*kept, *positions)])
    resolved = sent.mapInArrow(partial(_resolve_border, index_bc, tuple(coordinates), tuple(out.names)), out)
    return resolved.withColumn(f"{_PREFIX}located", F.lit(True))


def _shared_grids(city: CityIndex) -> dict[tuple[float, float, float, int, int], dict[str, GridArrays]]:
    """Group layers whose grids coincide (districts dissolved from barrios do), so one join serves both."""
    groups: dict[tuple[float, float, float, int, int], dict[str, GridArrays]] = {}
    for name, index in city.indexes().items():
        grid = index.grid_arrays()
        groups.setdefault((grid.origin_lon, grid.origin_lat, grid.cell_size, grid.nx, grid.ny), {})[name] = grid
    return groups


def _grid_lookup(df: DataFrame, grids: dict[str, GridArrays]) -> DataFrame:
    """Broadcast-hash-join each layer's cell classes (-1 outside, -2 border) on the shared grid's block id.

    Cells are stored in blocks of BLOCK_CELLS consecutive ids, one array per layer, so the broadcast table
    has a few thousand small rows: it ships quickly and its hash table stays in the CPU cache.
    """
    grid = next(iter(grids.values()))
    x, y = F.col(f"{_PREFIX}x"), F.col(f"{_PREFIX}y")
    fx = (x - F.lit(float(grid.origin_lon))) / F.lit(float(grid.cell_size))  # DOUBLE literals, never DECIMAL
    fy = (y - F.lit(float(grid.origin_lat))) / F.lit(float(grid.cell_size))
    on_grid = (fx >= F.lit(0.0)) & (fx < F.lit(float(grid.nx))) & (fy >= F.lit(0.0)) & (fy < F.lit(float(grid.ny)))
    cell = F.when(F.col(f"{_PREFIX}located") & on_grid, F.floor(fy) * F.lit(grid.nx) + F.floor(fx))
    key = f"{_PREFIX}{'_'.join(grids)}_cell"
    with_cell = df.withColumn(key, cell.cast(T.LongType()))
    arrays = [f"{_PREFIX}{name}_block" for name in grids]
    table = F.broadcast(_grid_frame(df.sparkSession, grids).toDF(f"{key}_block", *arrays))
    joined = with_cell.join(table, on=F.shiftright(with_cell[key], BLOCK_BITS) == table[f"{key}_block"], how="left")
    offset = F.col(key).bitwiseAND(F.lit(BLOCK_CELLS - 1)).cast(T.IntegerType())
    return joined.select(
        *[F.col(c) for c in with_cell.columns if c != key],
        *[F.coalesce(F.get(F.col(array), offset).cast(T.IntegerType()), F.lit(OUTSIDE)).alias(f"{_PREFIX}{name}")
          for name, array in zip(grids, arrays)],
    )


def _grid_frame(spark: SparkSession, grids: dict[str, GridArrays]) -> DataFrame:
    """Blocks holding a non-empty cell, with each layer's cell classes as an array; built once per version."""
    key = (spark.sparkContext.applicationId,
           "/".join(f"{name}:{grid.version}:{grid.cell_size!r}" for name, grid in grids.items()))
    if key not in _GRID_FRAMES:
        count = next(iter(grids.values())).cells.size
        padded = np.full((len(grids), -(-count // BLOCK_CELLS) * BLOCK_CELLS), OUTSIDE, dtype=np.int32)
        for n, grid in enumerate(grids.values()):
            padded[n, :count] = grid.cells
        blocks = padded.reshape(len(grids), -1, BLOCK_CELLS)
        used = np.flatnonzero((blocks != OUTSIDE).any(axis=(0, 2)))
        narrow = max(len(grid.codes) for grid in grids.values()) < np.iinfo(np.int16).max
        kind, arrow = (np.int16, pa.int16()) if narrow else (np.int32, pa.int32())
        columns = {"block": pa.array(used.astype(np.int64))}
        for n, name in enumerate(grids):
            columns[name] = pa.array(list(blocks[n, used].astype(kind)), type=pa.list_(arrow))
        while len(_GRID_FRAMES) >= 8:  # a long stream sees few versions; keep memory bounded anyway
            _GRID_FRAMES.pop(next(iter(_GRID_FRAMES)))
        _GRID_FRAMES[key] = spark.createDataFrame(pa.table(columns))
    return _GRID_FRAMES[key]


def _resolve_border(index_bc: Broadcast, coordinates: tuple[str, str], names: tuple[str, ...],
                    batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Runs in the Python worker, on border-cell rows only: replace -2 by the exact polygon of each layer."""
    city: CityIndex = index_bc.value
    for batch in batches:
        x = batch.column(coordinates[0]).to_numpy(zero_copy_only=False)
        y = batch.column(coordinates[1]).to_numpy(zero_copy_only=False)
        columns = {name: batch.column(name) for name in names if name in batch.schema.names}
        for name, index in city.indexes().items():
            columns[f"{_PREFIX}{name}"] = pa.array(index.assign(x, y), type=pa.int32())
        yield pa.RecordBatch.from_arrays([columns[name] for name in names], names=list(names))


def _labels(city: CityIndex, located: Any) -> list[Any]:
    """Turn polygon indexes into codes and names with literal lookups; the output contract's columns."""
    result = []
    for name, prefix in (("districts", "district"), ("barrios", "barrio")):
        index = city.indexes().get(name)
        if index is None:
            result += [F.lit(None).cast(T.StringType()).alias(f"{prefix}_code"),
                       F.lit(None).cast(T.StringType()).alias(f"{prefix}_name")]
            continue
        position = F.col(f"{_PREFIX}{name}")
        for field, values in (("code", index.layer.codes), ("name", index.layer.names)):
            label = F.when(~located, F.lit(UNLOCATED_CODE)).when(position < F.lit(0), F.lit(OUTSIDE_CODE))
            label = label.otherwise(F.get(F.array(*[F.lit(v) for v in values]), position))
            result.append(label.alias(f"{prefix}_{field}"))
    result.append(F.lit(city.version).alias("boundary_version"))
    return result


class BoundaryCache:
    """The current `CityIndex` of a lakehouse as a Spark broadcast, rebuilt only when a new version lands.

    Call `current()` at the start of every foreachBatch: it costs one Delta log check while nothing changes,
    and a newly imported layer is used from the next micro-batch on, without restarting the stream.
    """

    def __init__(self, spark: SparkSession, lakehouse: Path, seed_demo: bool = True) -> None:
        self.spark, self.lakehouse, self.seed_demo = spark, Path(lakehouse), seed_demo
        self._table_version: int | None = None
        self._versions: dict[str, str] = {}
        self._broadcast: Broadcast | None = None

    def current(self) -> Broadcast:
        """The broadcast index for the boundaries valid now."""
        table_version = boundary_store.table_version(self.lakehouse)
        if self._broadcast is not None and table_version == self._table_version:
            return self._broadcast
        versions = boundary_store.current_versions(self.lakehouse)
        if "districts" not in versions and self.seed_demo:
            boundary_store.seed_demo_districts(self.lakehouse)
            table_version = boundary_store.table_version(self.lakehouse)
            versions = boundary_store.current_versions(self.lakehouse)
        if "districts" not in versions:
            message = "no districts in the lakehouse; import them with `bigbilbao boundaries import PATH`"
            raise BoundaryError(message)
        if self._broadcast is None or versions != self._versions:
            city = CityIndex.from_lakehouse(self.lakehouse)
            old, self._broadcast = self._broadcast, self.spark.sparkContext.broadcast(city)
            versions = {name: index.layer.version for name, index in city.indexes().items()}
            log.info("spatial enrichment now uses %s", city.version)
            if old is not None:
                old.unpersist()  # the previous micro-batch has finished; executors drop the stale copy
        self._table_version, self._versions = table_version, versions  # read before the rows: races re-check
        return self._broadcast


_CACHES: dict[tuple[str, str], BoundaryCache] = {}


def current_index(spark: SparkSession, lakehouse: Path, seed_demo: bool = True) -> Broadcast:
    """The current boundaries of `lakehouse` as a broadcast `CityIndex`, cached by version; call per micro-batch."""
    key = (spark.sparkContext.applicationId, str(Path(lakehouse).resolve()))
    if key not in _CACHES:
        _CACHES[key] = BoundaryCache(spark, lakehouse, seed_demo)
    return _CACHES[key].current()
