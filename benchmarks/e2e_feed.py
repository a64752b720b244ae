"""JVM producers for the e2e benchmark: a Spark batch write for backlogs, and a paced rate-source stream.

kafka-python tops out near 16 k events/s here (measured by `benchmarks.e2e` as `producer_ceiling`), so the
offered load comes from Spark's Kafka sink (the Java client). The paced producer is a separate Spark JVM
(`local[1]`, run as `python -m benchmarks.e2e_feed`) so it never takes task slots from the pipeline; it
reads one step per stdin line ("first rate seconds") and answers "done N" when the step has been sent: one
batch job per tick sends the events due by then (a slow tick makes the next batch bigger).
Events are the same as `benchmarks.e2e_events.payload`: one dedup key per event number.
"""

from __future__ import annotations

import argparse
import sys
import time

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from benchmarks.e2e_events import BOX

TICKS_PER_S = 5  # batch jobs per second of a paced step: each costs the producer JVM CPU the pipeline shares
SPARK_TEMPLATE = ('{"id":"urn:ngsi-ld:TrafficFlowObserved:bench:%05d","type":"TrafficFlowObserved",'
                  '"dateObservedTo":"%s","intensity":%d,"occupancy":0.25,"averageVehicleSpeed":42.5,'
                  '"laneId":1,"refRoadSegment":"urn:ngsi-ld:RoadSegment:bench:%05d",'
                  '"location":{"type":"Point","coordinates":[%.6f,%.6f]}}')


def event_values(seq: Column, sensors: int, base: int) -> Column:
    """The JSON payload of event `seq` as a Kafka `value` column (sensor position from its number)."""
    sensor = (seq % sensors).cast("int")
    at = F.date_format(F.timestamp_seconds(F.lit(base) + F.floor(seq / sensors)), "yyyy-MM-dd'T'HH:mm:ss'Z'")
    lon0, lat0, lon1, lat1 = BOX
    lon = F.lit(lon0) + (sensor * 7919 % 10007) / 10007.0 * (lon1 - lon0)
    lat = F.lit(lat0) + (sensor * 6271 % 10009) / 10009.0 * (lat1 - lat0)
    return F.format_string(SPARK_TEMPLATE, sensor, at, (seq % 3000).cast("int"), sensor, lon, lat).alias("value")


def backlog(spark: SparkSession, bootstrap: str, topic: str, first: int, count: int, sensors: int,
            base: int, partitions: int = 2) -> float:
    """Write events [first, first+count) to Kafka in one Spark batch job; returns its seconds."""
    frame = spark.range(first, first + count, numPartitions=partitions).select(event_values(F.col("id"), sensors, base))
    began = time.perf_counter()
    frame.write.format("kafka").option("kafka.bootstrap.servers", bootstrap).option("topic", topic) \
        .option("kafka.linger.ms", "5").option("kafka.batch.size", str(512 * 1024)).save()
    return time.perf_counter() - began


def paced(spark: SparkSession, args: argparse.Namespace, first: int, rate: int, seconds: float) -> int:
    """Offer `rate` events/s for `seconds`: each tick one batch job sends what is due; returns the count.

    Whatever is still due when the time is up is sent at once, so a step always offers rate x seconds events;
    when the jobs are slow (a loaded machine) the step takes longer and the achieved rate says so.
    """
    began, done, total = time.monotonic(), 0, int(rate * seconds)
    while done < total:
        due = min(total, int((time.monotonic() - began) * rate))
        if due - done < max(1, rate // TICKS_PER_S) and due < total:
            time.sleep(0.005)
            continue
        backlog(spark, args.bootstrap, args.topic, first + done, due - done, args.sensors, args.base, partitions=1)
        done = due
    return done


def main() -> None:
    """Serve steps from stdin until it closes; a step is paced batch writes of due events for its seconds."""
    parser = argparse.ArgumentParser(description="paced Kafka producer of the e2e benchmark (used by benchmarks.e2e)")
    for name in ("bootstrap", "topic"):
        parser.add_argument(name)
    parser.add_argument("sensors", type=int)
    parser.add_argument("base", type=int)
    args = parser.parse_args()
    spark = (SparkSession.builder.master("local[1]").appName("bigbilbao-bench-producer")
             .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.jars", sys.stdin.readline().strip()).getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    backlog(spark, args.bootstrap, args.topic, 0, 0, args.sensors, args.base, partitions=1)  # warm up the JVM
    print("ready", flush=True)
    for line in sys.stdin:
        first, rate, seconds = line.split()
        sent = paced(spark, args, int(first), int(rate), float(seconds))
        print(f"done {sent}", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
