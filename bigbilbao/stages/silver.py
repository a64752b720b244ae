"""Bronze -> silver: judge by the contract, quarantine, count duplicates, pseudonymise, locate; nothing lost.

Per feed, one Delta stream over the bronze table. Each micro-batch lands in exactly one place per row:
silver (valid, first occurrence), quarantine (failed a quarantine rule, with raw payload and Kafka
coordinates), or a counted duplicate (dq_metrics, rule `duplicate`). The writes are ordered so that a
replayed batch is a no-op: quarantine and metrics first, silver last, all with Delta's idempotent
transaction ids, and duplicates are judged against silver, which only the last write changes. The batch's
figures come from one aggregate (`quality.summarise`), dq_metrics rows are appended from the driver with
delta-rs, and an empty quarantine or silver write is skipped: each Spark job or commit is a fixed cost
that every micro-batch pays whatever its size.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery

from bigbilbao.config.settings import Settings
from bigbilbao.contracts.model import Contract
from bigbilbao.stages import ingest, locate, quality, sinks, stopping
from bigbilbao.stages.stopping import StopRequest
from bigbilbao.tables.read import is_table, table_path

log = logging.getLogger(__name__)

EVENT_TIME = "event_time"
SCHEMA_ONLY_KEY = b"\0" * 32  # shapes an empty table's pseudonym columns; never hashes a value
Enricher = Callable[[DataFrame, Contract], DataFrame]


def dedup_columns(contract: Contract) -> list[str]:
    """Silver columns that identify one reading: the contract's dedup key with the id as entity_id."""
    return ["entity_id" if name == contract.id_field else name for name in contract.dedup_key]


def first_occurrences(valid: DataFrame, key: list[str]) -> DataFrame:
    """Within a batch keep the first-sent Kafka message of each key, as a stream cut into smaller batches would.

    Ordering by Kafka timestamp first (then topic, partition, offset) keeps the kept copy independent of where
    restarts cut the stream: a duplicate in another partition no longer wins just by its partition number.
    """
    order = Window.partitionBy(*key).orderBy(F.col("kafka_timestamp"), F.col("topic"), F.col("partition"),
                                             F.col("offset"))
    return (
        valid.withColumn("_occurrence", F.row_number().over(order))
        .filter(F.col("_occurrence") == 1)
        .drop("_occurrence")
    )


def not_yet_in_silver(spark: SparkSession, rows: DataFrame, silver_path: Path, key: list[str],
                      bounds: tuple[datetime | None, datetime | None] | None = None,
                      version: int | None = None) -> DataFrame:
    """Drop rows whose key is already in silver, looking only at silver rows in the batch's event-time range.

    `bounds` (earliest, latest event time of `rows`) saves a Spark job when the caller already knows them.
    `version` judges against silver as it was at that table version (a replayed batch: silver before its own write).
    """
    if not is_table(silver_path):
        return rows
    if bounds is None:
        found = rows.agg(F.min(EVENT_TIME), F.max(EVENT_TIME)).first()
        bounds = (found[0], found[1])
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    existing = reader.load(str(silver_path)).select(*key)
    if bounds[0] is not None:
        existing = existing.filter(F.col(EVENT_TIME).between(bounds[0], bounds[1]))
    return rows.join(existing, on=[rows[k].eqNullSafe(existing[k]) for k in key], how="left_anti")


class Downstream(Protocol):
    """What a fused round does with a feed's batch once silver holds it (`bigbilbao.stages.fused`)."""

    def landed(self, rows: DataFrame, batch_id: int) -> None:
        """The batch's rows that silver took (persisted; the same rows when the batch is replayed)."""

    def quarantined(self, rows: DataFrame, batch_id: int) -> None:
        """The batch's quarantined rows."""


class SilverWriter:
    """foreachBatch sink of one feed: quarantine + metrics first, silver last, each exactly once
    (empty writes skipped); a `downstream` then gets the rows silver took and the quarantined ones."""

    def __init__(self, settings: Settings, contract: Contract, checkpoint: Path, key: bytes,
                 enricher: Enricher | None = None, downstream: Downstream | None = None) -> None:
        self.settings = settings
        self.contract = contract
        self.checkpoint = checkpoint
        self.key = key
        self.enricher = enricher
        self.downstream = downstream
        self.feed = contract.feed

    def _path(self, layer: str, name: str) -> Path:
        return table_path(self.settings.lakehouse_path, layer, name)

    def _app_id(self, table: str) -> str:
        query_id = json.loads((self.checkpoint / "metadata").read_text())["id"]
        return f"{table}-{self.feed}-{query_id}"

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        judged = quality.judge(batch, self.contract).persist()
        try:
            self._write(batch.sparkSession, judged, batch_id)
        finally:
            judged.unpersist()

    def _write(self, spark: SparkSession, judged: DataFrame, batch_id: int) -> None:
        summary = quality.summarise(judged, self.contract)
        if summary.failed:
            quality.raise_on_fail(judged)
        valid, quarantined = quality.split(judged)
        silver = quality.to_silver(valid, self.contract, self.key)
        key = dedup_columns(self.contract)
        silver_path = self._path("silver", self.feed)
        # Pinned to a version: a read of silver's latest state would see this batch's own rows once they are
        # written (when Spark recomputes a cached frame, or when the batch is replayed after a crash).
        before = sinks.version_before(silver_path, (self._app_id("silver"), batch_id))
        before = sinks.latest_version(silver_path) if before is None else before
        first = not_yet_in_silver(spark, first_occurrences(silver, key), silver_path, key,
                                  bounds=summary.event_times, version=before).persist()
        # A local checkpoint cuts the judge's long plan: later steps (gold in a round) would re-analyse it per action.
        fresh = (self.enricher(first, self.contract) if self.enricher is not None else first).localCheckpoint()
        try:
            landed = fresh.count() if summary.valid else 0  # cheap: the checkpoint is materialised
            dropped = summary.valid - landed
            if summary.quarantined:
                sinks.idempotent_append(quarantined, self._path("quality", "quarantine"), self._app_id("quarantine"),
                                        batch_id)
            sinks.small_append(self._path("quality", "dq_metrics"), metrics_rows(self.feed, summary, batch_id, dropped),
                               (self._app_id("dq_metrics"), batch_id))
            if landed:
                sinks.idempotent_append(fresh, silver_path, self._app_id("silver"), batch_id)
            log.info("silver %s batch %d: %d rows -> %d silver, %d duplicates, %d quarantined",
                     self.feed, batch_id, summary.rows, landed, dropped, summary.quarantined)
            if self.downstream is not None and landed:
                self.downstream.landed(fresh, batch_id)
            if self.downstream is not None and summary.quarantined:
                self.downstream.quarantined(quarantined, batch_id)
        finally:
            fresh.unpersist()
            first.unpersist()


METRICS_SCHEMA = ("feed string, batch_id bigint, measured_at timestamp, rows_in_batch bigint, "
                  "rule string, action string, violations bigint")


METRICS_ARROW = pa.schema([("feed", pa.string()), ("batch_id", pa.int64()), ("measured_at", pa.timestamp("us", "UTC")),
                           ("rows_in_batch", pa.int64()), ("rule", pa.string()), ("action", pa.string()),
                           ("violations", pa.int64())])


def metrics_rows(feed: str, summary: quality.BatchSummary, batch_id: int, duplicates: int) -> pa.Table:
    """Per-rule violation counts of one micro-batch plus its duplicate count: the batch's dq_metrics rows."""
    now = datetime.now(timezone.utc)
    counted = [*summary.violations, ("duplicate", "drop_duplicate", duplicates)]
    return pa.Table.from_pylist([{"feed": feed, "batch_id": batch_id, "measured_at": now, "rows_in_batch": summary.rows,
                                  "rule": rule, "action": action, "violations": violations}
                                 for rule, action, violations in counted], schema=METRICS_ARROW)


def ensure_silver_tables(spark: SparkSession, settings: Settings, contracts: Mapping[str, Contract]) -> None:
    """Create empty silver tables, so gold streams can start beside silver on a new lakehouse."""
    empty = spark.createDataFrame([], ingest.KAFKA_SCHEMA)
    for feed, contract in contracts.items():
        path = table_path(settings.lakehouse_path, "silver", feed)
        if is_table(path):
            continue
        valid, _ = quality.split(quality.judge(ingest.bronze(empty, feed, contract), contract))
        schema = quality.to_silver(valid, contract, SCHEMA_ONLY_KEY).schema
        for name in locate.LABELS:
            schema = schema.add(name, T.StringType())
        spark.createDataFrame([], schema).write.format("delta").mode("append").save(str(path))


def ensure_quality_tables(spark: SparkSession, settings: Settings, contract: Contract) -> None:
    """Create the shared quarantine and dq_metrics tables before concurrent streams append to them."""
    lake = settings.lakehouse_path
    quarantine = table_path(lake, "quality", "quarantine")
    if not is_table(quarantine):
        empty = spark.createDataFrame([], ingest.KAFKA_SCHEMA)
        _, rows = quality.split(quality.judge(ingest.bronze(empty, contract.feed, contract), contract))
        rows.write.format("delta").mode("append").save(str(quarantine))
    metrics = table_path(lake, "quality", "dq_metrics")
    if not is_table(metrics):
        spark.createDataFrame([], METRICS_SCHEMA).write.format("delta").mode("append").save(str(metrics))


def spatial_enricher(settings: Settings) -> Enricher:
    """Silver's default enrichment: district, barrio and boundary version of every row (`bigbilbao.stages.locate`)."""
    lakehouse = settings.lakehouse_path
    return lambda rows, contract: locate.locate(rows, lakehouse, contract)


def start_silver(spark: SparkSession, settings: Settings, contracts: Mapping[str, Contract],
                 until_idle: bool = False, enricher: Enricher | None = None,
                 stop: StopRequest | None = None) -> list[StreamingQuery]:
    """One bronze -> silver stream per enabled feed; rows are located by `spatial_enricher` unless told otherwise."""
    private = any(c.pseudonymised_fields() for c in contracts.values())
    key = settings.pseudonym_key() if private else b""
    enricher = enricher or spatial_enricher(settings)
    queries = []
    ensure_quality_tables(spark, settings, next(iter(contracts.values())))
    ensure_silver_tables(spark, settings, contracts)
    for feed, contract in contracts.items():
        checkpoint = settings.checkpoint_path / "silver" / feed
        source = table_path(settings.lakehouse_path, "bronze", feed)
        stream = (
            spark.readStream.format("delta").option("maxFilesPerTrigger", 1000).load(str(source))
            .writeStream.queryName(f"silver-{feed}")
            .option("checkpointLocation", str(checkpoint))
            .foreachBatch(stopping.gated(SilverWriter(settings, contract, checkpoint, key, enricher), stop,
                                         f"silver-{feed}"))
        )
        stream = sinks.triggered(stream, until_idle, settings.streaming.interval("silver"))
        sinks.clear_dead_writes(checkpoint)
        queries.append(stream.start())
    return queries
