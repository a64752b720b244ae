"""Gold MERGEs from several threads of one session each commit under their own transaction id."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from deltalake import DeltaTable as RustTable
from pyspark.sql import functions as F

from bigbilbao.config.settings import Settings, with_overrides
from bigbilbao.stages.gold_tables import QUALITY, ensure_gold_tables, gold_path, merge_into

FEEDS = ("traffic_flow", "air_quality", "noise", "incidents")


def quality_rows(spark, feed: str):
    """Ten hours of one feed's gold/quality rows."""
    start = datetime(2026, 11, 30, tzinfo=timezone.utc)
    frame = spark.range(10).select(
        F.lit(feed).alias("feed"), F.lit("1").alias("district_code"), F.lit(None).cast("string").alias("barrio_code"),
        F.lit("districts:test").alias("boundary_version"),
        (F.lit(start) + F.make_interval(hours=F.col("id").cast("int"))).alias("hour_start"),
        F.col("id").alias("n_valid"), F.lit(0).cast("long").alias("n_quarantined"), F.lit(1.5).alias("lag_sum_s"),
        F.current_timestamp().alias("updated_at"),
    )
    return frame.select(*QUALITY.columns)


def test_concurrent_merges_sharing_a_session_each_land_under_their_own_txn(spark, base_settings: Settings,
                                                                           tmp_path: Path) -> None:
    settings = with_overrides(base_settings, lakehouse={"path": str(tmp_path / "lake")})
    ensure_gold_tables(spark, settings)
    path = gold_path(settings, QUALITY)

    def merge(feed: str) -> None:
        merge_into(spark, QUALITY, path, quality_rows(spark, feed), [feed], (f"gold-quality-{feed}-q", 7))

    with ThreadPoolExecutor(max_workers=len(FEEDS)) as pool:
        list(pool.map(merge, FEEDS))
    table = RustTable(str(path))
    landed = table.to_pyarrow_table(columns=["feed"]).column("feed").to_pylist()
    assert {feed: landed.count(feed) for feed in FEEDS} == dict.fromkeys(FEEDS, 10)
    assert {feed: table.transaction_version(f"gold-quality-{feed}-q") for feed in FEEDS} == dict.fromkeys(FEEDS, 7)
    assert spark.conf.get("spark.databricks.delta.write.txnAppId", None) is None, "a txn id leaked into the session"
