"""Silver -> gold as pure DataFrame transforms: the scorecard's gold inputs and the EU threshold alerts.

Every function takes silver-shaped rows (see `bigbilbao.stages.silver`) and returns exactly the columns of
the gold input contract in `bigbilbao.scorecard.compute` (module docstring), in contract order, typed by the
`*_SCHEMA` constants; gold_hourly and gold_events add `boundary_version` (lineage; the scorecard
ignores extra columns). Conventions:

- Area codes: silver's 'outside' (no polygon) and 'unlocated' (no usable coordinates) become null,
  which the scorecard counts for the city only; so do all rows of a silver table written without
  spatial enrichment (no district_code, barrio_code, boundary_version columns).
- Stale rows (rule `stale` in dq_warnings: a sensor repeating a years-old reading) are not KPI
  inputs: they are left out of gold_hourly and gold_events. gold_quality still counts them, because
  they are silver rows and data-quality KPIs measure the data itself.
- Hours are UTC hours of event_time, computed from epoch seconds, so the session time zone never matters.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from bigbilbao.contracts.model import EVENT_TIME, Contract
from bigbilbao.scorecard.inputs import required_sources
from bigbilbao.scorecard.kpi_model import Catalogue

log = logging.getLogger(__name__)

STALE_RULE = "stale"
NOT_AN_AREA = ("outside", "unlocated")
NUMERIC_TYPES = ("double", "long")
AREA_COLUMNS = ("district_code", "barrio_code", "boundary_version")
_AREA = [T.StructField("district_code", T.StringType()), T.StructField("barrio_code", T.StringType())]
HOURLY_SCHEMA = T.StructType([
    T.StructField("feed", T.StringType()), T.StructField("field", T.StringType()),
    T.StructField("sensor_id", T.StringType()), *_AREA, T.StructField("hour_start", T.TimestampType()),
    T.StructField("n", T.LongType()), *[T.StructField(c, T.DoubleType()) for c in ("sum", "mean", "min", "max")],
    T.StructField("boundary_version", T.StringType()),
])
EVENTS_SCHEMA = T.StructType([
    T.StructField("feed", T.StringType()), T.StructField("field", T.StringType()),
    T.StructField("event_id", T.StringType()), *_AREA, T.StructField("event_time", T.TimestampType()),
    T.StructField("value", T.DoubleType()), T.StructField("boundary_version", T.StringType()),
])
QUALITY_SCHEMA = T.StructType([
    T.StructField("feed", T.StringType()), *_AREA, T.StructField("hour_start", T.TimestampType()),
    T.StructField("n_valid", T.LongType()), T.StructField("n_quarantined", T.LongType()),
    T.StructField("lag_sum_s", T.DoubleType()),
])
ALERTS_SCHEMA = T.StructType([
    T.StructField("alert_id", T.StringType()), T.StructField("feed", T.StringType()),
    T.StructField("field", T.StringType()), T.StructField("sensor_id", T.StringType()), *_AREA,
    T.StructField("level", T.StringType()), T.StructField("threshold", T.DoubleType()),
    T.StructField("hours", T.IntegerType()), T.StructField("hour_start", T.TimestampType()),
    T.StructField("value", T.DoubleType()), T.StructField("reference", T.StringType()),
])


@dataclass(frozen=True)
class AlertRule:
    """An EU information or alert threshold: the hourly mean of `field` above `threshold` for `hours` hours in a row."""

    feed: str
    field: str
    level: str
    threshold: float
    hours: int
    reference: str


_ANNEX_XII = "Directive 2008/50/EC, Annex XII"
ALERT_RULES = (
    AlertRule("air_quality", "o3", "information", 180.0, 1, f"{_ANNEX_XII} B (O3 information threshold, 1 hour)"),
    AlertRule("air_quality", "o3", "alert", 240.0, 1, f"{_ANNEX_XII} B (O3 alert threshold, 1 hour)"),
    AlertRule("air_quality", "no2", "alert", 400.0, 3, f"{_ANNEX_XII} A (NO2 alert threshold, 3 consecutive hours)"),
    AlertRule("air_quality", "so2", "alert", 500.0, 3, f"{_ANNEX_XII} A (SO2 alert threshold, 3 consecutive hours)"),
)


def gold_fields(catalogue: Catalogue, feed: str,
                rules: Iterable[AlertRule] = ALERT_RULES) -> dict[str, tuple[str, ...]]:
    """Fields of one feed that gold must carry: the catalogue's hourly and event sources plus the alert fields."""
    needed = required_sources(catalogue)
    hourly = {name for source, name in needed["hourly"] if source == feed}
    hourly.update(rule.field for rule in rules if rule.feed == feed)
    events = {name for source, name in needed["events"] if source == feed}
    return {"hourly": tuple(sorted(hourly)), "events": tuple(sorted(events))}


def hour_of(column: Column) -> Column:
    """Start of the UTC hour a timestamp falls in, independent of the session time zone."""
    return F.timestamp_seconds(F.floor(F.unix_micros(column) / F.lit(3_600_000_000)) * F.lit(3600))


def located(silver: DataFrame) -> DataFrame:
    """Silver rows with the enrichment's area columns, null where the table was written without enrichment."""
    missing = [name for name in AREA_COLUMNS if name not in silver.columns]
    return silver.withColumns({name: F.lit(None).cast("string") for name in missing}) if missing else silver


def area_code(name: str) -> Column:
    """A silver area code as a gold one: 'outside' and 'unlocated' are no area (null)."""
    return F.when(F.col(name).isin(*NOT_AN_AREA), F.lit(None).cast("string")).otherwise(F.col(name).cast("string"))


def not_stale() -> Column:
    """True for a silver row that may feed a KPI: its dq_warnings do not include the `stale` rule."""
    return ~F.coalesce(F.array_contains(F.col("dq_warnings"), F.lit(STALE_RULE)), F.lit(False))


def kpi_rows(silver: DataFrame) -> DataFrame:
    """Silver rows that may feed a KPI: every row not flagged stale."""
    return silver.filter(not_stale())


def arrival_hour() -> Column:
    """The hour a quarantined row arrived (Kafka timestamp, else ingestion time): it has no trusted event time."""
    return hour_of(F.coalesce(F.col("kafka_timestamp"), F.col("ingested_at")))


def field_value(contract: Contract, name: str) -> tuple[Column, Column]:
    """(present, value) of one field: numbers as doubles, timestamps as seconds after event_time, else no value."""
    if name in (contract.id_field, EVENT_TIME):
        column = F.col("entity_id") if name == contract.id_field else F.col(EVENT_TIME)
        return column.isNotNull(), F.lit(None).cast("double")
    kind = contract.spec(name).type
    column = F.col(name)
    if kind in NUMERIC_TYPES:
        number = column.cast("double")
        return number.isNotNull() & ~F.isnan(number), number
    if kind == "timestamp":
        seconds = (F.unix_micros(column) - F.unix_micros(F.col(EVENT_TIME))) / F.lit(1e6)
        return column.isNotNull(), seconds.cast("double")
    return column.isNotNull(), F.lit(None).cast("double")


def field_values(silver: DataFrame, contract: Contract, fields: Iterable[str]) -> DataFrame:
    """One row per non-stale silver row and present field: the long form both gold grains start from."""
    cells = [F.struct(F.lit(name).alias("field"), present.alias("present"), value.alias("value"))
             for name in fields for present, value in [field_value(contract, name)]]
    if not cells:
        cells = [F.struct(F.lit(None).cast("string").alias("field"), F.lit(False).alias("present"),
                          F.lit(None).cast("double").alias("value"))]
    return (
        kpi_rows(located(silver))
        .select(F.lit(contract.feed).alias("feed"), F.col("entity_id"), F.col(EVENT_TIME),
                area_code("district_code").alias("district_code"), area_code("barrio_code").alias("barrio_code"),
                F.col("boundary_version").cast("string").alias("boundary_version"),
                F.col("partition").cast("long").alias("partition"), F.col("offset").cast("long").alias("offset"),
                F.explode(F.array(*cells)).alias("cell"))
        .filter(F.col("cell.present"))
        .select("feed", "cell.field", "entity_id", EVENT_TIME, "district_code", "barrio_code", "boundary_version",
                "partition", "offset", "cell.value")
    )


def hourly(silver: DataFrame, contract: Contract, fields: Iterable[str]) -> DataFrame:
    """gold_hourly: n, sum, mean, min, max per feed x field x sensor x UTC hour; area of the hour's last reading."""
    last = F.max(F.struct(EVENT_TIME, "partition", "offset", "district_code", "barrio_code", "boundary_version"))
    return (
        field_values(silver, contract, fields)
        .groupBy("feed", "field", F.col("entity_id").alias("sensor_id"), hour_of(F.col(EVENT_TIME)).alias("hour_start"))
        .agg(F.count(F.lit(1)).alias("n"), F.sum("value").alias("sum"), F.avg("value").alias("mean"),
             F.min("value").alias("min"), F.max("value").alias("max"), last.alias("last"))
        .select(
            F.col("feed").cast("string"), F.col("field").cast("string"), F.col("sensor_id").cast("string"),
            F.col("last.district_code").alias("district_code"), F.col("last.barrio_code").alias("barrio_code"),
            F.col("hour_start").cast("timestamp"), F.col("n").cast("long"),
            *[F.col(c).cast("double").alias(c) for c in ("sum", "mean", "min", "max")],
            F.col("last.boundary_version").alias("boundary_version"),
        )
    )


def latest_readings(values: DataFrame, contract: Contract) -> DataFrame:
    """One value per (field, entity, event time): the last Kafka message, where the contract keeps several updates."""
    if set(contract.dedup_key) <= {contract.id_field, EVENT_TIME}:
        return values
    order = Window.partitionBy("feed", "field", "entity_id", EVENT_TIME).orderBy(
        F.col("partition").desc(), F.col("offset").desc())
    return values.withColumn("_rank", F.row_number().over(order)).filter(F.col("_rank") == 1).drop("_rank")


def events(silver: DataFrame, contract: Contract, fields: Iterable[str]) -> DataFrame:
    """gold_events: one row per non-stale event (its latest update) and field present (the id field: every event)."""
    return latest_readings(field_values(silver, contract, fields), contract).select(
        "feed", "field", F.col("entity_id").cast("string").alias("event_id"), "district_code", "barrio_code",
        F.col(EVENT_TIME).cast("timestamp"), F.col("value").cast("double"), "boundary_version",
    )


def quality(silver: DataFrame, quarantine: DataFrame) -> DataFrame:
    """gold_quality: valid rows and lag per event-time hour and area; quarantined rows per arrival hour, city only."""
    lag = (F.unix_micros(F.col("ingested_at")) - F.unix_micros(F.col(EVENT_TIME))) / F.lit(1e6)
    valid = located(silver).select(
        F.col("feed"), area_code("district_code").alias("district_code"), area_code("barrio_code").alias("barrio_code"),
        hour_of(F.col(EVENT_TIME)).alias("hour_start"), F.lit(1).alias("valid"), F.lit(0).alias("quarantined"),
        lag.cast("double").alias("lag"),
    )
    rejected = quarantine.select(
        F.col("feed"), F.lit(None).cast("string").alias("district_code"),
        F.lit(None).cast("string").alias("barrio_code"),
        arrival_hour().alias("hour_start"),
        F.lit(0).alias("valid"), F.lit(1).alias("quarantined"), F.lit(0.0).alias("lag"),
    )
    return (
        valid.unionByName(rejected)
        .groupBy("feed", "district_code", "barrio_code", "hour_start")
        .agg(F.sum("valid").alias("n_valid"), F.sum("quarantined").alias("n_quarantined"),
             F.sum("lag").alias("lag_sum_s"))
        .select(F.col("feed").cast("string"), "district_code", "barrio_code", F.col("hour_start").cast("timestamp"),
                F.col("n_valid").cast("long"), F.col("n_quarantined").cast("long"), F.col("lag_sum_s").cast("double"))
    )


def alerts(gold_hourly: DataFrame, rules: Iterable[AlertRule] = ALERT_RULES) -> DataFrame:
    """Breaches of the rules: one row per sensor, rule and hour that ends a run of `hours` hourly means above it."""
    parts = [_breaches(gold_hourly, rule) for rule in rules]
    if not parts:
        return gold_hourly.sparkSession.createDataFrame([], ALERTS_SCHEMA)
    found = parts[0]
    for part in parts[1:]:
        found = found.unionByName(part)
    return found


def _breaches(gold_hourly: DataFrame, rule: AlertRule) -> DataFrame:
    """Hours closing a run of `rule.hours` consecutive sensor-hours whose mean is above the threshold."""
    run = (Window.partitionBy("feed", "field", "sensor_id").orderBy(F.unix_seconds(F.col("hour_start")))
           .rangeBetween(-(rule.hours - 1) * 3600, 0))
    key = F.concat_ws("|", "feed", "field", "sensor_id", F.lit(rule.level),
                      F.unix_seconds(F.col("hour_start")).cast("string"))
    return (
        gold_hourly.filter((F.col("feed") == rule.feed) & (F.col("field") == rule.field) & (F.col("n") > 0))
        .filter(F.col("mean") > F.lit(rule.threshold))
        .withColumn("run_hours", F.count(F.lit(1)).over(run))
        .withColumn("run_low", F.min("mean").over(run))
        .filter(F.col("run_hours") == F.lit(rule.hours))
        .select(
            F.sha2(key, 256).substr(1, 32).alias("alert_id"),
            *[F.col(c).cast("string") for c in ("feed", "field", "sensor_id", "district_code", "barrio_code")],
            F.lit(rule.level).alias("level"), F.lit(rule.threshold).cast("double").alias("threshold"),
            F.lit(rule.hours).cast("int").alias("hours"), F.col("hour_start").cast("timestamp"),
            F.col("run_low").cast("double").alias("value"), F.lit(rule.reference).alias("reference"),
        )
    )
