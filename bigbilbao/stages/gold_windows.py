"""Area windows: per feed x field x area (city, district, barrio) at 15-minute, hourly and daily grain.

Pure DataFrame transforms over silver-shaped rows (see `bigbilbao.stages.gold_aggregate`). Every grain is derived
from the same quarter-hour partials (n, sum, min, max per sensor, area and quarter hour), so an
hour is exactly the sum of its four quarters and a day of its 96: the grains can never disagree.
Windows are UTC and half-open [window_start, window_end). Each reading counts in the area it was
located in when observed (a moving bus counts where it was); rows without an area count for the
city only. `entities` is the number of distinct sensors (or events, for event feeds) in the window.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from bigbilbao.contracts.model import EVENT_TIME, Contract
from bigbilbao.scorecard.population import BARRIO, CITY, DISTRICT
from bigbilbao.stages.gold_aggregate import field_values, latest_readings

log = logging.getLogger(__name__)

GRAINS = (("15min", 900), ("hour", 3600), ("day", 86400))
QUARTER_S = 900
WINDOWS_SCHEMA = T.StructType([
    T.StructField("feed", T.StringType()), T.StructField("field", T.StringType()),
    T.StructField("grain", T.StringType()), T.StructField("area_level", T.StringType()),
    T.StructField("area_code", T.StringType()), T.StructField("window_start", T.TimestampType()),
    T.StructField("window_end", T.TimestampType()), T.StructField("n", T.LongType()),
    *[T.StructField(c, T.DoubleType()) for c in ("sum", "mean", "min", "max")],
    T.StructField("entities", T.LongType()), T.StructField("boundary_version", T.StringType()),
])
WINDOW_KEY = ("feed", "field", "grain", "area_level", "area_code", "window_start")


def floor_to(column: Column, seconds: int) -> Column:
    """Start of the UTC window of `seconds` a timestamp falls in, independent of the session time zone."""
    return F.timestamp_seconds(F.floor(F.unix_micros(column) / F.lit(seconds * 1_000_000)) * F.lit(seconds))


def quarter_partials(silver: DataFrame, contract: Contract, fields: Iterable[str]) -> DataFrame:
    """n, sum, min, max per feed x field x sensor x area x UTC quarter hour: what every grain is built from."""
    values = latest_readings(field_values(silver, contract, fields), contract)
    return (
        values.groupBy("feed", "field", "entity_id", "district_code", "barrio_code",
                       floor_to(F.col(EVENT_TIME), QUARTER_S).alias("quarter_start"))
        .agg(F.count(F.lit(1)).alias("n"), F.sum("value").alias("sum"), F.min("value").alias("min"),
             F.max("value").alias("max"), F.max("boundary_version").alias("boundary_version"))
        .select("feed", "field", "entity_id", "district_code", "barrio_code", "quarter_start",
                F.col("n").cast("long"), *[F.col(c).cast("double") for c in ("sum", "min", "max")],
                "boundary_version")
    )


def window_keys(times: DataFrame, column: str = EVENT_TIME) -> DataFrame:
    """(grain, window_start) of every window the timestamps in `column` fall in."""
    return times.select(grain_windows(F.col(column)).alias("w")).select("w.grain", "w.window_start").distinct()


def grain_windows(time: Column) -> Column:
    """An array of (grain, window_start, seconds) structs: the windows of every grain a time falls in."""
    return F.explode(F.array(*[
        F.struct(F.lit(name).alias("grain"), floor_to(time, seconds).alias("window_start"),
                 F.lit(seconds).alias("seconds"))
        for name, seconds in GRAINS]))


def area_levels(city_code: str) -> Column:
    """An array of (area_level, area_code) structs: the city, the row's district and its barrio."""
    return F.explode(F.array(
        F.struct(F.lit(CITY).alias("area_level"), F.lit(city_code).alias("area_code")),
        F.struct(F.lit(DISTRICT).alias("area_level"), F.col("district_code").alias("area_code")),
        F.struct(F.lit(BARRIO).alias("area_level"), F.col("barrio_code").alias("area_code")),
    ))


def area_windows(partials: DataFrame, city_code: str) -> DataFrame:
    """gold/windows rows: the quarter partials rolled up to every grain and area (null areas: city only)."""
    spread = (partials.select("*", grain_windows(F.col("quarter_start")).alias("w"))
              .select("*", area_levels(city_code).alias("a"))
              .filter(F.col("a.area_code").isNotNull()))
    totals = spread.groupBy("feed", "field", "w.grain", "a.area_level", "a.area_code", "w.window_start",
                            "w.seconds").agg(
        F.sum("n").alias("n"), F.sum("sum").alias("sum"), F.min("min").alias("min"), F.max("max").alias("max"),
        F.countDistinct("entity_id").alias("entities"), F.max("boundary_version").alias("boundary_version"))
    return totals.select(
        F.col("feed").cast("string"), F.col("field").cast("string"), F.col("grain").cast("string"),
        F.col("area_level").cast("string"), F.col("area_code").cast("string"),
        F.col("window_start").cast("timestamp"),
        F.timestamp_seconds(F.unix_seconds("window_start") + F.col("seconds")).alias("window_end"),
        F.col("n").cast("long"), F.col("sum").cast("double"),
        (F.col("sum") / F.col("n")).cast("double").alias("mean"),
        F.col("min").cast("double"), F.col("max").cast("double"),
        F.col("entities").cast("long"), F.col("boundary_version").cast("string"),
    )


def windows(silver: DataFrame, contract: Contract, fields: Iterable[str], city_code: str) -> DataFrame:
    """gold/windows straight from silver rows: quarter partials, then every grain and area."""
    return area_windows(quarter_partials(silver, contract, fields), city_code)


def late_window_keys(late: DataFrame, city_code: str) -> DataFrame:
    """(grain, area_level, area_code, window_start) of the windows late silver rows fall in, flagged 'late'."""
    return (late.select(grain_windows(F.col(EVENT_TIME)).alias("w"), "district_code", "barrio_code")
            .select("w.grain", "w.window_start", area_levels(city_code).alias("a"))
            .filter(F.col("a.area_code").isNotNull())
            .select("grain", "a.area_level", "a.area_code", "window_start", F.lit("late").alias("restated_reason"))
            .distinct())
