"""Silver -> gold streaming: per feed, recompute every sensor-hour and area window a micro-batch touches, and MERGE.

One Delta stream per feed over <lakehouse>/silver/<feed>, plus one over the quarantine table that keeps
quarantine counts current. A micro-batch never adds deltas to gold: it reads back from silver all rows
of each sensor-hour, each 15-minute/hourly/daily area window (`bigbilbao.stages.gold_windows`) and each hour (for
data quality) it touches and rewrites those gold rows whole (`bigbilbao.stages.gold_restate`), so partial
windows, late rows and replays all end in the same state (tables: `bigbilbao.stages.gold_tables`).

Watermark: micro-batch N of a feed judges lateness by (latest event_time of batches before N) minus the
watermark delay (default 2 hours). It is recorded in gold/watermarks before any other write, so a
replayed batch judges the same rows late. Late rows are not dropped: they are appended to
gold/late_events and their sensor-hours and windows are restated with restated_reason 'late' (null for
in-order updates) and a new updated_at. Stale rows are neither KPI inputs nor late (`bigbilbao.stages.gold_aggregate`).

Alerts (air quality): after each MERGE the touched sensors' hours are checked against
`gold_aggregate.ALERT_RULES`; alerts not yet in gold/alerts are handed to `on_alerts` (e.g. Kafka, see
`bigbilbao.stages.publish.publish_alerts`) before they are recorded, so a crash in between republishes
(at least once; consumers deduplicate on alert_id) and never loses one.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from bigbilbao.config.settings import Settings
from bigbilbao.contracts.model import EVENT_TIME, Contract
from bigbilbao.scorecard.catalogue import load_catalogue
from bigbilbao.scorecard.kpi_model import Catalogue
from bigbilbao.scorecard.population import load_population
from bigbilbao.stages import gold_aggregate, sinks, stopping
from bigbilbao.stages.gold_aggregate import hour_of, kpi_rows
from bigbilbao.stages.gold_restate import refresh_quality, restated_hours, restated_windows
from bigbilbao.stages.gold_tables import (
    ALERTS,
    EVENTS,
    HOURLY,
    LATE_EVENTS,
    WINDOWS,
    Span,
    collect_rows,
    committed,
    ensure_gold_tables,
    exists,
    gold_path,
    in_span,
    last_watermark,
    merge_into,
    micros_literal,
    record_watermark,
    utc,
)
from bigbilbao.stages.stopping import StopRequest
from bigbilbao.tables.read import table_path

log = logging.getLogger(__name__)

DEFAULT_WATERMARK = timedelta(hours=2)
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
AlertSink = Callable[[list[dict[str, Any]]], None]


def start_gold(spark: SparkSession, settings: Settings, contracts: Mapping[str, Contract], until_idle: bool = False,
               catalogue: Catalogue | None = None, watermark: timedelta = DEFAULT_WATERMARK,
               on_alerts: AlertSink | None = None, stop: StopRequest | None = None) -> list[StreamingQuery]:
    """One silver -> gold stream per feed with a silver table, and one over the quarantine table if it exists."""
    catalogue = catalogue or load_catalogue()
    city_code = load_population().city_code
    ensure_gold_tables(spark, settings)
    interval = settings.streaming.interval("gold")
    queries = []
    for feed, contract in contracts.items():
        source = table_path(settings.lakehouse_path, "silver", feed)
        if not exists(source):
            log.warning("gold: feed %s has no silver table yet; its gold stream starts with the next run", feed)
            continue
        checkpoint = settings.checkpoint_path / "gold" / feed
        fields = gold_aggregate.gold_fields(catalogue, feed)
        writer = FeedWriter(settings, contract, checkpoint, fields, watermark, on_alerts, city_code=city_code)
        queries.append(_start(spark, source, f"gold-{feed}", checkpoint, stopping.gated(writer, stop, f"gold-{feed}"),
                              until_idle, interval))
    quarantine = table_path(settings.lakehouse_path, "quality", "quarantine")
    if exists(quarantine):
        checkpoint = settings.checkpoint_path / "gold" / "_quarantine"
        queries.append(_start(spark, quarantine, "gold-quarantine", checkpoint,
                              stopping.gated(QuarantineWriter(settings, contracts, checkpoint), stop,
                                             "gold-quarantine"), until_idle, interval))
    return queries


def _start(spark: SparkSession, source: Path, name: str, checkpoint: Path,
           writer: Callable[[DataFrame, int], None], until_idle: bool, interval: str) -> StreamingQuery:
    """Start one Delta -> foreachBatch stream."""
    stream = (
        spark.readStream.format("delta").option("maxFilesPerTrigger", 1000).load(str(source))
        .writeStream.queryName(name).option("checkpointLocation", str(checkpoint)).foreachBatch(writer)
    )
    stream = sinks.triggered(stream, until_idle, interval)
    sinks.clear_dead_writes(checkpoint)
    return stream.start()


@dataclass(frozen=True)
class BatchStats:
    """What one aggregation tells about a micro-batch (times in epoch µs; KPI rows are the non-stale ones)."""

    rows: int
    oldest: int | None  # earliest KPI-row event time
    newest: int | None  # latest KPI-row event time
    kpi_hours: tuple[int | None, int | None]  # first and last hour of the KPI rows
    hours: tuple[int | None, int | None]  # first and last hour of every row


def batch_stats(batch: DataFrame) -> BatchStats:
    """Row count, event-time range and hour ranges of a batch, in one Spark job."""
    kpi = gold_aggregate.not_stale()
    micros, hour = F.unix_micros(F.col(EVENT_TIME)), F.unix_micros(hour_of(F.col(EVENT_TIME)))
    row = batch.agg(F.count(F.lit(1)), F.min(F.when(kpi, micros)), F.max(F.when(kpi, micros)),
                    F.min(F.when(kpi, hour)), F.max(F.when(kpi, hour)), F.min(hour), F.max(hour)).first()
    return BatchStats(row[0], row[1], row[2], (row[3], row[4]), (row[5], row[6]))


class _Writer(ABC):
    """What both foreachBatch sinks share: settings, checkpoint and Delta transaction ids."""

    def __init__(self, settings: Settings, checkpoint: Path) -> None:
        self.settings = settings
        self.checkpoint = checkpoint

    def query_id(self) -> str:
        """The query's id from its checkpoint: a reset checkpoint is a new query with new transaction ids."""
        return json.loads((self.checkpoint / "metadata").read_text())["id"]

    def txn(self, table: str, feed: str, batch_id: int) -> tuple[str, int]:
        """(txnAppId, txnVersion) of one write of one feed in one micro-batch."""
        return f"gold-{table}-{feed}-{self.query_id()}", batch_id

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        rows = batch.persist()
        try:
            self.write(rows.sparkSession, rows, batch_id)
        finally:
            rows.unpersist()

    @abstractmethod
    def write(self, spark: SparkSession, batch: DataFrame, batch_id: int) -> None:
        """Write one non-empty, persisted micro-batch."""


class FeedWriter(_Writer):
    """foreachBatch sink of one feed's silver stream: watermark, late rows, hourly, windows, events, quality, alerts."""

    def __init__(self, settings: Settings, contract: Contract, checkpoint: Path, fields: Mapping[str, tuple[str, ...]],
                 watermark: timedelta = DEFAULT_WATERMARK, on_alerts: AlertSink | None = None,
                 rules: tuple[gold_aggregate.AlertRule, ...] = gold_aggregate.ALERT_RULES,
                 city_code: str | None = None) -> None:
        super().__init__(settings, checkpoint)
        self.contract = contract
        self.feed = contract.feed
        self.fields = fields
        self.delay_us = int(watermark.total_seconds() * 1_000_000)
        self.on_alerts = on_alerts
        self.rules = tuple(rule for rule in rules if rule.feed == contract.feed)
        self.window_fields = tuple(sorted({*fields["hourly"], *fields["events"]}))
        self.city_code = city_code or load_population().city_code
        self.last: tuple[int, int | None, int | None] | None = None  # (batch id, seen, watermark) of the last batch

    def write(self, spark: SparkSession, batch: DataFrame, batch_id: int) -> None:
        stats = batch_stats(batch)
        if stats.rows == 0:
            return
        mark = self.watermark(stats, batch_id)
        late = self.late_rows(batch, mark, batch_id)
        path, txn = gold_path(self.settings, LATE_EVENTS), self.txn("late", self.feed, batch_id)
        if mark is not None and stats.oldest is not None and stats.oldest < mark and not committed(path, txn):
            sinks.idempotent_append(late, path, txn[0], batch_id)
        if stats.kpi_hours[0] is not None:
            self.write_kpi_inputs(spark, batch, batch_id, stats.kpi_hours, late, mark)
        hours = batch.select(hour_of(F.col(EVENT_TIME)).alias("hour_start")).distinct()
        refresh_quality(spark, self.settings, self.feed, hours, stats.hours, self.txn("quality", self.feed, batch_id))
        log.info("gold %s batch %d: %d rows merged (watermark %s)", self.feed, batch_id, stats.rows,
                 utc(mark).isoformat() if mark is not None else "none yet")

    def write_kpi_inputs(self, spark: SparkSession, batch: DataFrame, batch_id: int, span: tuple[int, int],
                         late: DataFrame, mark: int | None) -> None:
        """MERGE the touched sensor-hours (then check alerts), area windows and events of a batch's KPI rows."""
        keys = kpi_rows(batch).select("entity_id", hour_of(F.col(EVENT_TIME)).alias("hour_start")).distinct()
        if self.fields["hourly"]:
            hourly = restated_hours(spark, self.settings, self.contract, self.fields, keys, span, late).persist()
            try:
                merge_into(spark, HOURLY, gold_path(self.settings, HOURLY), hourly, [self.feed],
                           self.txn("hourly", self.feed, batch_id), Span("hour_start", span[0], span[1] + HOUR_US))
                if self.rules and not hourly.filter(self.above_a_threshold()).isEmpty():
                    self.raise_alerts(spark, keys, span, batch_id)
            finally:
                hourly.unpersist()
        if self.window_fields:
            rows = restated_windows(spark, self.settings, self.contract, self.window_fields, batch, span, mark,
                                    self.city_code)
            first_day = span[0] - span[0] % DAY_US  # a day window starts at most this early
            merge_into(spark, WINDOWS, gold_path(self.settings, WINDOWS), rows, [self.feed],
                       self.txn("windows", self.feed, batch_id), Span("window_start", first_day, span[1] + HOUR_US))
        if self.fields["events"]:
            rows = gold_aggregate.events(batch, self.contract, self.fields["events"])
            merge_into(spark, EVENTS, gold_path(self.settings, EVENTS), rows.withColumn("updated_at",
                       F.current_timestamp()), [self.feed], self.txn("events", self.feed, batch_id),
                       Span("event_time", span[0], span[1] + HOUR_US))

    def watermark(self, stats: BatchStats, batch_id: int) -> int | None:
        """This batch's watermark (epoch µs), recorded once with the running max event time; None before any data."""
        state = self.last if self.last is not None and self.last[0] == batch_id - 1 else self.recorded(batch_id)
        if state is not None and state[0] == batch_id:
            self.last = state
            return state[2]
        before = state[1] if state is not None else None
        mark = before - self.delay_us if before is not None else None
        seen = max((t for t in (before, stats.newest) if t is not None), default=None)
        row = {"feed": self.feed, "query_id": self.query_id(), "batch_id": batch_id, "max_event_time": utc(seen),
               "watermark": utc(mark), "recorded_at": datetime.now(timezone.utc)}
        record_watermark(self.settings, row, self.txn("watermarks", self.feed, batch_id))
        self.last = (batch_id, seen, mark)
        return mark

    def recorded(self, batch_id: int) -> tuple[int, int | None, int | None] | None:
        """(batch id, seen, watermark) of this batch if recorded (a replay), else of the latest batch before it."""
        return last_watermark(self.settings, self.feed, self.query_id(), batch_id)

    def late_rows(self, batch: DataFrame, mark: int | None, batch_id: int) -> DataFrame:
        """gold/late_events rows: the batch's non-stale rows whose event time is before the watermark."""
        late = F.lit(False) if mark is None else F.unix_micros(F.col(EVENT_TIME)) < F.lit(mark)
        return kpi_rows(batch).filter(late).select(
            F.lit(self.feed).alias("feed"), F.col("entity_id").cast("string"), F.col(EVENT_TIME),
            hour_of(F.col(EVENT_TIME)).alias("hour_start"), micros_literal(mark).alias("watermark"),
            F.col("topic").cast("string"), F.col("partition").cast("int"), F.col("offset").cast("long"),
            F.col("kafka_timestamp").cast("timestamp"), F.col("ingested_at").cast("timestamp"),
            F.lit(batch_id).cast("long").alias("batch_id"), F.current_timestamp().alias("detected_at"),
        )

    def above_a_threshold(self) -> Column:
        """True for a sensor-hour above some alert threshold: without one, no new alert can start or complete."""
        above = F.lit(False)
        for rule in self.rules:
            above = above | ((F.col("field") == rule.field) & (F.col("mean") > F.lit(rule.threshold)))
        return above

    def raise_alerts(self, spark: SparkSession, keys: DataFrame, span: tuple[int, int],
                     batch_id: int) -> list[dict[str, Any]]:
        """Alerts of the touched sensors' hours not raised before: hand them to on_alerts, then record them."""
        reach = (max(rule.hours for rule in self.rules) - 1) * HOUR_US
        sensors = keys.select(F.col("entity_id").alias("sensor_id")).distinct()
        near = (F.col("feed") == self.feed) & in_span(F.col("hour_start"), span[0] - reach, span[1] + reach + 1)
        hours = (spark.read.format("delta").load(str(gold_path(self.settings, HOURLY))).filter(near)
                 .join(F.broadcast(sensors), on="sensor_id", how="left_semi"))
        known = spark.read.format("delta").load(str(gold_path(self.settings, ALERTS))).filter(near).select("alert_id")
        fresh = gold_aggregate.alerts(hours, self.rules).join(F.broadcast(known), on="alert_id", how="left_anti")
        raised = collect_rows(fresh.withColumn("raised_at", F.current_timestamp()), ALERTS)
        if not raised:
            return []
        if self.on_alerts is not None:
            self.on_alerts(raised)
        rows = spark.createDataFrame(raised, ALERTS.schema)
        merge_into(spark, ALERTS, gold_path(self.settings, ALERTS), rows, [self.feed],
                   self.txn("alerts", self.feed, batch_id))
        log.warning("gold %s: %d new EU threshold alert(s)", self.feed, len(raised))
        return raised


class QuarantineWriter(_Writer):
    """foreachBatch sink of the quarantine stream: recompute gold/quality for the arrival hours it touches."""

    def __init__(self, settings: Settings, contracts: Mapping[str, Contract], checkpoint: Path) -> None:
        super().__init__(settings, checkpoint)
        self.feeds = tuple(contracts)

    def write(self, spark: SparkSession, batch: DataFrame, batch_id: int) -> None:
        arrival = F.unix_micros(gold_aggregate.arrival_hour())
        spans = batch.groupBy("feed").agg(F.min(arrival), F.max(arrival)).collect()
        for feed, first, last in sorted((r[0], r[1], r[2]) for r in spans if r[0] in self.feeds):
            hours = (batch.filter(F.col("feed") == feed)
                     .select(gold_aggregate.arrival_hour().alias("hour_start")).distinct())
            refresh_quality(spark, self.settings, feed, hours, (first, last),
                            self.txn("quality-quarantine", feed, batch_id))
