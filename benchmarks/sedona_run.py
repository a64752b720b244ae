"""Apache Sedona baseline for `benchmarks.spatial`, run by the Sedona venv's Python (its own pyspark).

Reads the benchmark's points (parquet) and polygons (JSON: index and WKT), times an ST_Contains broadcast
join (Sedona's BroadcastIndexJoin, left outer so no point is lost) into Spark's no-op sink, and writes the
best time plus the answers for a sample of points to a JSON/parquet pair for the agreement check.
Usage: python sedona_run.py POINTS_DIR POLYGONS_JSON JARS_DIR OUT_JSON SAMPLE_EVERY REPEATS
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from cpu import tree_cpu_seconds  # benchmarks/cpu.py; this script's folder is on sys.path
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def session(jars: list[str]) -> SparkSession:
    """A local[2] session with Sedona's SQL extension and Kryo registrator, as Sedona's docs set it up."""
    return (
        SparkSession.builder.master("local[2]")
        .appName("bigbilbao-bench-sedona")
        .config("spark.jars", ",".join(jars))
        .config("spark.driver.memory", "4g")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.serializer", "org.apache.spark.serializer.KryoSerializer")
        .config("spark.kryo.registrator", "org.apache.sedona.core.serde.SedonaKryoRegistrator")
        .config("spark.sql.extensions", "org.apache.sedona.sql.SedonaSqlExtensions")
        .getOrCreate()
    )


def assignment(spark: SparkSession, points: str, polygons: list[list]) -> DataFrame:
    """Each point joined to the polygon that ST_Contains it (null when none): the textbook Sedona query."""
    geoms = spark.createDataFrame(polygons, "idx INT, wkt STRING").select(
        "idx", F.expr("ST_GeomFromWKT(wkt)").alias("poly"))
    located = spark.read.parquet(points).select("id", F.expr("ST_Point(lon, lat)").alias("geom"))
    return located.join(F.broadcast(geoms), F.expr("ST_Contains(poly, geom)"), "left").select("id", "idx")


def main(argv: list[str]) -> None:
    points, polygons_json, jars_dir, out_json, every, repeats = argv
    spark = session(sorted(str(p) for p in Path(jars_dir).glob("*.jar")))
    from sedona.spark import SedonaContext

    SedonaContext.create(spark)
    joined = assignment(spark, points, json.loads(Path(polygons_json).read_text())["polygons"])
    plan = joined._jdf.queryExecution().executedPlan().toString()
    times, cpu = [], []
    for _ in range(int(repeats)):
        start, used = time.perf_counter(), tree_cpu_seconds()
        joined.write.format("noop").mode("overwrite").save()
        times.append(time.perf_counter() - start)
        cpu.append(tree_cpu_seconds() - used)
    sample = str(Path(out_json).with_suffix(".parquet"))
    joined.filter(F.col("id") % int(every) == 0).write.mode("overwrite").parquet(sample)
    import sedona

    result = {"times_s": times, "cpu_s": cpu, "spark": spark.version, "sedona_python": getattr(sedona, "version", "?"),
              "broadcast_index_join": "BroadcastIndexJoin" in plan, "sample": sample}
    Path(out_json).write_text(json.dumps(result))
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
