"""Recompute gold rows from silver: the sensor-hours, area windows and quality hours a micro-batch touches.

Gold never adds a batch's deltas to what it holds: every touched row is recomputed from all silver
rows behind it and MERGEd whole (`bigbilbao.stages.gold_tables.merge_into`), so partial windows, late rows
and replayed batches all end in the same state. Spans are epoch microseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bigbilbao.config.settings import Settings
from bigbilbao.contracts.model import EVENT_TIME, Contract
from bigbilbao.stages import gold_aggregate, gold_windows
from bigbilbao.stages.gold_aggregate import area_code, hour_of, kpi_rows, located
from bigbilbao.stages.gold_tables import QUALITY, Span, exists, gold_path, in_span, merge_into
from bigbilbao.tables.read import table_path

log = logging.getLogger(__name__)

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
_EMPTY_SILVER = ("feed string, entity_id string, event_time timestamp, district_code string, barrio_code string, "
                 "ingested_at timestamp")
_EMPTY_QUARANTINE = "feed string, kafka_timestamp timestamp, ingested_at timestamp"


def silver_between(spark: SparkSession, settings: Settings, feed: str, lo: int, hi: int) -> DataFrame:
    """A feed's silver rows with event_time in [lo, hi) (epoch µs); empty when the table does not exist."""
    path = table_path(settings.lakehouse_path, "silver", feed)
    if not exists(path):
        return spark.createDataFrame([], _EMPTY_SILVER)
    return spark.read.format("delta").load(str(path)).filter(in_span(F.col(EVENT_TIME), lo, hi))


def restated_hours(spark: SparkSession, settings: Settings, contract: Contract, fields: Mapping[str, tuple[str, ...]],
                   keys: DataFrame, span: tuple[int, int], late: DataFrame) -> DataFrame:
    """The touched (sensor, hour) rows recomputed from silver, flagged 'late' where a late row touched them."""
    silver = silver_between(spark, settings, contract.feed, span[0], span[1] + HOUR_US)
    touched = (silver.withColumn("_hour", hour_of(F.col(EVENT_TIME)))
               .join(F.broadcast(keys.withColumnRenamed("hour_start", "_hour")), on=["entity_id", "_hour"],
                     how="left_semi")
               .drop("_hour"))
    flagged = late.select(F.col("entity_id").alias("sensor_id"), "hour_start",
                          F.lit("late").alias("restated_reason")).distinct()
    return (gold_aggregate.hourly(touched, contract, fields["hourly"])
            .join(flagged, on=["sensor_id", "hour_start"], how="left")
            .withColumn("updated_at", F.current_timestamp()))


def restated_windows(spark: SparkSession, settings: Settings, contract: Contract, fields: tuple[str, ...],
                     batch: DataFrame, span: tuple[int, int], late_us: int | None, city_code: str) -> DataFrame:
    """Every 15-minute, hourly and daily area window the batch touches, recomputed from the silver days behind it."""
    first_day = span[0] - span[0] % DAY_US
    silver = silver_between(spark, settings, contract.feed, first_day, span[1] - span[1] % DAY_US + DAY_US)
    rows = kpi_rows(located(batch))
    touched = F.broadcast(gold_windows.window_keys(rows))
    late_rows = rows.filter(F.lit(False) if late_us is None else F.unix_micros(F.col(EVENT_TIME)) < F.lit(late_us))
    flagged = gold_windows.late_window_keys(
        late_rows.select(EVENT_TIME, area_code("district_code").alias("district_code"),
                         area_code("barrio_code").alias("barrio_code")), city_code)
    return (gold_windows.windows(silver, contract, fields, city_code)
            .join(touched, on=["grain", "window_start"], how="left_semi")
            .join(flagged, on=["grain", "area_level", "area_code", "window_start"], how="left")
            .withColumn("updated_at", F.current_timestamp()))


def refresh_quality(spark: SparkSession, settings: Settings, feed: str, hours: DataFrame,
                    span: tuple[int | None, int | None], txn: tuple[str, int] | None = None) -> None:
    """Recompute gold/quality of one feed's hours (first and last in `span`) from silver and quarantine."""
    lo, hi = span
    if lo is None or hi is None:
        return
    wanted = F.broadcast(hours.filter(F.col("hour_start").isNotNull()).distinct())
    quarantine_path = table_path(settings.lakehouse_path, "quality", "quarantine")
    arrived = (in_span(F.col("kafka_timestamp"), lo, hi + HOUR_US)
               | (F.col("kafka_timestamp").isNull() & in_span(F.col("ingested_at"), lo, hi + HOUR_US)))
    quarantine = (spark.read.format("delta").load(str(quarantine_path)).filter((F.col("feed") == feed) & arrived)
                  if exists(quarantine_path) else spark.createDataFrame([], _EMPTY_QUARANTINE))
    silver = (silver_between(spark, settings, feed, lo, hi + HOUR_US)
              .withColumn("hour_start", hour_of(F.col(EVENT_TIME))).join(wanted, on="hour_start", how="left_semi"))
    quarantine = quarantine.withColumn("hour_start", gold_aggregate.arrival_hour()).join(wanted, on="hour_start",
                                                                                   how="left_semi")
    rows = (gold_aggregate.quality(silver.withColumn("feed", F.lit(feed)), quarantine)
            .withColumn("updated_at", F.current_timestamp()))
    merge_into(spark, QUALITY, gold_path(settings, QUALITY), rows, [feed], txn, Span("hour_start", lo, hi + HOUR_US))
