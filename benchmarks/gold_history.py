"""Gold's cost against silver history: the same gold micro-batch over a small and a large silver table.

A live gold batch touches the latest hours only; its cost should not grow with the days already in silver
(issue 19's "gold batch time with 10 M silver rows / with 0.3 M"). The benchmark builds one feed's silver
table with the real bronze -> silver transforms (simulated traffic readings, located with the demo
districts), grows it to `--small` rows of history by copies shifted back whole days, times `--rounds`
gold micro-batches of `--batch` new rows (each within one later hour, appended to silver first, as the
stream does), then grows the history to `--large` rows and times the same kind of batches again.

    python -m benchmarks.gold_history [--small 300000] [--large 10000000] [--batch 5000] [--rounds 3]

Writes benchmarks/results/gold_history.json: per round the wall and CPU seconds of the gold batch, the
Spark tasks the batch ran (about one per file read), and the ratio of the medians (large / small).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from benchmarks.cpu import tree_cpu_seconds
from bigbilbao import logs
from bigbilbao.config.settings import Settings, load_settings, with_overrides
from bigbilbao.contracts import load_contracts
from bigbilbao.feeds import simulator
from bigbilbao.infra.spark_session import build_spark
from bigbilbao.scorecard.catalogue import load_catalogue
from bigbilbao.stages import gold_aggregate, ingest, silver
from bigbilbao.stages.gold import FeedWriter
from bigbilbao.stages.gold_tables import ensure_gold_tables
from bigbilbao.tables.read import table_path

FEED = "traffic_flow"  # 40 sensors every few minutes: the densest simulated feed
ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "gold_history.json"
DAY_S = 86_400
SHIFTED = ("event_time", "kafka_timestamp", "ingested_at")


def progress(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def kafka_records(spark: SparkSession, count: int, start: datetime, first_offset: int) -> DataFrame:
    """Simulated clean messages of the feed as the Kafka source hands them to a micro-batch."""
    sent = datetime.now(timezone.utc)  # after every simulated reading: none is "in the future" of its message
    rows = [(FEED, 0, first_offset + i, sent, payload)
            for i, (_, payload) in enumerate(simulator.generate([FEED], count, seed=19, start=start))]
    return spark.createDataFrame(rows, ingest.KAFKA_SCHEMA)


def base_day(spark: SparkSession, settings: Settings, rows: int, start: datetime) -> DataFrame:
    """One day of silver rows made by the real bronze -> silver step (rules, units, pseudonyms, location)."""
    contract = load_contracts()[FEED]
    checkpoint = settings.checkpoint_path / "silver" / FEED
    checkpoint.mkdir(parents=True, exist_ok=True)
    (checkpoint / "metadata").write_text(json.dumps({"id": "bench-silver"}))
    silver.ensure_quality_tables(spark, settings, contract)
    silver.ensure_silver_tables(spark, settings, {FEED: contract})
    writer = silver.SilverWriter(settings, contract, checkpoint, settings.pseudonym_key() if
                                 contract.pseudonymised_fields() else b"", silver.spatial_enricher(settings))
    writer(ingest.bronze(kafka_records(spark, rows, start, 0), FEED, contract), 0)
    # localCheckpoint, not cache(): a cached Delta read would also answer later reads of the grown table
    return spark.read.format("delta").load(str(table_path(settings.lakehouse_path, "silver", FEED))).localCheckpoint()


def grow_history(settings: Settings, day: pa.Table, unit_days: int, have: int, want: int) -> int:
    """Append copies of the base span, each `unit_days` earlier, until silver holds `want` rows (delta-rs: Arrow
    in, Parquet out, one commit per ten copies so files cover days as a stream's do); returns the rows held."""
    path = str(table_path(settings.lakehouse_path, "silver", FEED))
    copies = have // day.num_rows
    while have < want:
        chunk = min(10, max(1, (want - have) // day.num_rows))
        tables = [shifted_arrow(day, -DAY_S * unit_days * (copies + k), 10_000_000 * (copies + k))
                  for k in range(1, chunk + 1)]
        write_deltalake(path, pa.concat_tables(tables), mode="append")
        copies += chunk
        have += chunk * day.num_rows
        if copies % 100 < chunk:
            progress(f"silver history: {have:,} rows ({(copies + 1) * unit_days} days)")
    DeltaTable(path).create_checkpoint()  # as Spark's writer does every ten commits: snapshots skip the JSON replay
    files = len(DeltaTable(path).file_uris())
    progress(f"silver history: {have:,} rows ({(copies + 1) * unit_days} days), {files} files")
    return have


def shifted_arrow(rows: pa.Table, seconds: int, offset_base: int) -> pa.Table:
    """`shifted` for an Arrow table: the same readings moved in time, with new Kafka offsets."""
    for name in SHIFTED:
        column = rows.column(name)
        moved = pc.add(column.cast(pa.int64()), seconds * 1_000_000).cast(column.type)
        rows = rows.set_column(rows.schema.get_field_index(name), name, moved)
    offsets = pc.add(rows.column("offset"), offset_base)
    return rows.set_column(rows.schema.get_field_index("offset"), "offset", offsets)


def gold_round(spark: SparkSession, settings: Settings, writer: FeedWriter, day: DataFrame, hour: datetime,
               batch_rows: int, batch_id: int) -> dict[str, Any]:
    """Append new rows within one hour to silver, then time gold's micro-batch over exactly those rows."""
    within = F.timestamp_seconds(F.lit(int(hour.timestamp())) + F.col("offset") % F.lit(3600))
    batch = day.limit(batch_rows)
    for name in SHIFTED:
        batch = batch.withColumn(name, within)
    batch = batch.withColumn("offset", F.col("offset") + F.lit(1_000_000_000 + 10_000_000 * batch_id))
    batch = batch.localCheckpoint()
    batch.write.format("delta").mode("append").save(str(table_path(settings.lakehouse_path, "silver", FEED)))
    spark.sparkContext.setJobGroup(f"gold-{batch_id}", "benchmarked gold batch")
    began, cpu = time.perf_counter(), tree_cpu_seconds()
    writer(batch, batch_id)
    wall, used = time.perf_counter() - began, tree_cpu_seconds() - cpu
    read = tasks_run(spark, f"gold-{batch_id}")
    progress(f"gold batch {batch_id}: {wall:.1f} s wall, {used:.1f} CPU s, read {read}")
    return {"batch_id": batch_id, "wall_s": round(wall, 2), "cpu_s": round(used, 2), **read}


def tasks_run(spark: SparkSession, group: str) -> dict[str, int]:
    """Jobs and tasks of one job group: a scan runs about one task per file it reads."""
    tracker = spark.sparkContext.statusTracker()
    jobs = [tracker.getJobInfo(job) for job in tracker.getJobIdsForGroup(group)]
    stages = [tracker.getStageInfo(stage) for job in jobs if job is not None for stage in job.stageIds]
    return {"jobs": len(jobs), "tasks": sum(stage.numTasks for stage in stages if stage is not None)}


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    os.environ.setdefault("BIGBILBAO_PSEUDONYM_KEY", "bench-" + "k" * 40)
    settings = with_overrides(load_settings(environ={"BIGBILBAO_PSEUDONYM_KEY": "bench-" + "k" * 40}),
                              lakehouse={"path": str(work / "lake")},
                              spark={"master": "local[2]", "shuffle_partitions": 2, "ui": False, "driver_memory": "4g"})
    spark = build_spark(settings)
    start = (datetime.now(timezone.utc) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    progress(f"one day of silver from {args.day_rows:,} simulated readings (bronze -> silver, located)")
    day = base_day(spark, settings, args.day_rows, start)
    day_rows = day.count()
    first, last = day.agg(F.min("event_time"), F.max("event_time")).first()
    unit_days = max(1, -(-int((last - first).total_seconds()) // DAY_S))  # whole days the base span covers
    first = first.replace(tzinfo=timezone.utc)  # collect() gives naive times in the session zone, UTC
    arrow_day = DeltaTable(str(table_path(settings.lakehouse_path, "silver", FEED))).to_pyarrow_table()
    have = grow_history(settings, arrow_day, unit_days, day_rows, args.small)
    ensure_gold_tables(spark, settings)
    checkpoint = settings.checkpoint_path / "gold" / FEED
    checkpoint.mkdir(parents=True, exist_ok=True)
    (checkpoint / "metadata").write_text(json.dumps({"id": "bench-gold"}))
    writer = FeedWriter(settings, load_contracts()[FEED], checkpoint,
                        gold_aggregate.gold_fields(load_catalogue(), FEED))
    after = (first + timedelta(days=unit_days)).replace(minute=0, second=0, microsecond=0)
    hour = [after + timedelta(hours=i) for i in range(2 * args.rounds + 1)]
    warm = gold_round(spark, settings, writer, day, hour[0], args.batch, 0)
    small = [gold_round(spark, settings, writer, day, hour[i], args.batch, i) for i in range(1, args.rounds + 1)]
    small_rows = have + args.batch * (args.rounds + 1)
    have = grow_history(settings, arrow_day, unit_days, have, args.large)
    large = [gold_round(spark, settings, writer, day, hour[i], args.batch, i)
             for i in range(args.rounds + 1, 2 * args.rounds + 1)]
    spark.stop()
    small_s = statistics.median(r["wall_s"] for r in small)
    large_s = statistics.median(r["wall_s"] for r in large)
    return {
        "benchmark": "gold_history", "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "feed": FEED, "spark_master": "local[2]", "batch_rows": args.batch, "rounds": args.rounds,
        "silver_rows_small": small_rows, "silver_rows_large": have + args.batch * args.rounds,
        "warm_up": warm, "small": small, "large": large,
        "median_wall_s": {"small": small_s, "large": large_s},
        "gold_history_ratio": round(large_s / small_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=300_000, help="silver rows of history for the first rounds")
    parser.add_argument("--large", type=int, default=10_000_000, help="silver rows of history for the last rounds")
    parser.add_argument("--batch", type=int, default=5_000, help="new silver rows per gold micro-batch")
    parser.add_argument("--day-rows", type=int, default=12_000, help="simulated readings in the base span (~1 day)")
    parser.add_argument("--rounds", type=int, default=3, help="timed gold batches at each history size")
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args()
    logs.configure()
    load_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bigbilbao-bench-gold-"))
    try:
        result = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_average"] = {"start": list(load_start), "end": list(os.getloadavg())}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    progress(f"wrote {args.output}: gold batch {result['median_wall_s']} s, ratio {result['gold_history_ratio']}")


if __name__ == "__main__":
    main()
