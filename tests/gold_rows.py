"""Helpers of the gold tests: silver rows in the silver table contract, a temporary lakehouse, readable results."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from bigbilbao.config.settings import FeedSettings, Settings, with_overrides
from bigbilbao.contracts.loader import load_contracts
from bigbilbao.contracts.model import Contract
from bigbilbao.scorecard.catalogue import load_catalogue
from bigbilbao.scorecard.kpi_model import Catalogue
from bigbilbao.stages import gold, gold_aggregate
from bigbilbao.stages.gold_tables import TABLES, gold_path
from bigbilbao.tables.read import table_path

UTC = timezone.utc
DAY = datetime(2025, 6, 10, tzinfo=UTC)
SPARK_TYPES = {"string": T.StringType(), "double": T.DoubleType(), "bigint": T.LongType(),
               "boolean": T.BooleanType(), "timestamp": T.TimestampType()}
FEEDS = ("air_quality", "emergency_dispatches", "incidents")
SNAPSHOT_PARTITIONS = "spark.databricks.delta.snapshotPartitions"


@pytest.fixture(scope="module")
def contracts() -> dict[str, Contract]:
    return load_contracts()


@pytest.fixture
def settings(base_settings: Settings, tmp_path: Path) -> Settings:
    configured = with_overrides(base_settings, lakehouse={"path": str(tmp_path / "lakehouse")})
    return dataclasses.replace(configured, feeds=tuple(FeedSettings(name) for name in FEEDS))


@pytest.fixture(scope="module")
def small_delta_snapshots(spark: SparkSession):
    """Delta rebuilds a table's state in 50 tasks by default; two suit these tiny tables (restored afterwards)."""
    before = spark.conf.get(SNAPSHOT_PARTITIONS, None)
    spark.conf.set(SNAPSHOT_PARTITIONS, "2")
    yield
    if before is None:
        spark.conf.unset(SNAPSHOT_PARTITIONS)
    else:
        spark.conf.set(SNAPSHOT_PARTITIONS, before)


def at(hour: int, minute: int = 0, second: int = 0, day: datetime = DAY) -> datetime:
    return day + timedelta(hours=hour, minutes=minute, seconds=second)


def silver_schema(contract: Contract) -> T.StructType:
    """The silver table contract of one feed."""
    stamp, text = T.TimestampType(), T.StringType()
    head = [("feed", text), ("entity_id", text), ("entity_type", text), ("event_time", stamp), ("lon", T.DoubleType()),
            ("lat", T.DoubleType()), ("location_geojson", text)]
    fields = [(name, SPARK_TYPES[kind]) for name, kind in contract.spark_type_names().items()]
    tail = [("dq_warnings", T.ArrayType(text)), ("topic", text), ("partition", T.IntegerType()),
            ("offset", T.LongType()),
            ("kafka_timestamp", stamp), ("ingested_at", stamp), ("district_code", text), ("district_name", text),
            ("barrio_code", text), ("barrio_name", text), ("boundary_version", text)]
    return T.StructType([T.StructField(name, kind) for name, kind in head + fields + tail])


def silver(spark: SparkSession, contract: Contract, rows: list[dict[str, Any]], first_offset: int = 0) -> DataFrame:
    """Silver rows with defaults: district 1, no warnings, arrival one minute and silver two minutes after the event."""
    schema = silver_schema(contract)
    full = []
    for index, row in enumerate(rows):
        when = row["event_time"]
        defaults = {"feed": contract.feed, "entity_type": contract.entity_type, "lon": -2.93, "lat": 43.26,
                    "dq_warnings": [], "topic": contract.feed, "partition": 0, "offset": first_offset + index,
                    "kafka_timestamp": when + timedelta(minutes=1), "ingested_at": when + timedelta(minutes=2),
                    "district_code": "1", "district_name": "Deusto", "boundary_version": "districts:test"}
        full.append({**defaults, **row})
    return spark.createDataFrame([tuple(r.get(name) for name in schema.fieldNames()) for r in full], schema)


def append_silver(settings: Settings, frame: DataFrame) -> DataFrame:
    """Append to <lakehouse>/silver/<feed> and return the rows, as the silver stream would hand them to gold."""
    feed = frame.first()["feed"]
    frame.write.format("delta").mode("append").save(str(table_path(settings.lakehouse_path, "silver", feed)))
    return frame


def rows_of(frame: DataFrame, *columns: str) -> list[tuple]:
    """Sorted rows; timestamps as aware UTC datetimes (collect() alone gives naive local times)."""
    stamps = {f.name for f in frame.schema.fields if isinstance(f.dataType, T.TimestampType)}
    picked = [F.unix_micros(c).alias(c) if c in stamps else F.col(c) for c in columns]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rows = [tuple(epoch + timedelta(microseconds=v) if c in stamps and v is not None else v
                  for c, v in zip(columns, row)) for row in frame.select(*picked).collect()]
    return sorted(rows, key=repr)


def snapshot(settings: Settings) -> dict[str, tuple[int, list[str]]]:
    """Every gold table's Delta version and rows (read with delta-rs), to prove a replay changes nothing."""
    found = {}
    for table in TABLES:
        delta = DeltaTable(str(gold_path(settings, table)))
        found[table.name] = (delta.version(), sorted(map(repr, delta.to_pyarrow_table().to_pylist())))
    return found


def feed_writer(settings: Settings, contract: Contract, query_id: str, raised: list,
                catalogue: Catalogue | None = None) -> gold.FeedWriter:
    """A feed's foreachBatch sink as start_gold builds it, with a checkpoint that names the query."""
    checkpoint = settings.checkpoint_path / "gold" / contract.feed
    checkpoint.mkdir(parents=True, exist_ok=True)
    (checkpoint / "metadata").write_text(json.dumps({"id": query_id}))
    fields = gold_aggregate.gold_fields(catalogue or load_catalogue(), contract.feed)
    return gold.FeedWriter(settings, contract, checkpoint, fields, on_alerts=raised.extend)
