"""Topology benchmark: the fused round against the staged queries and a plain Kafka -> Delta copy, in one run.

Everything runs on this machine: an embedded broker and Spark local[2], each run in its own lakehouse.
  one_feed   traffic_flow backlogs of two sizes (JVM producer, 1,000 sensors, 46 real barrios): plain copy,
             round drain and (large size) staged drain; from the two sizes a cost model (fixed seconds and
             CPU µs per event) for the round and the plain copy
  all_feeds  every shipped feed mixed (simulator, kafka-python): plain copy over the 12 topics, round drain,
             staged drain; Spark jobs and Delta commits each needed, and how many streaming queries run
  live       `run all`'s round streaming with the shipped settings while a paced JVM producer offers each rate
             (one feed): lag, sustained or not, p95 produce -> silver / gold, CPU of broker + pipeline
Every run's books are checked: a lost or duplicated event makes the exit code 1.
Run from the repository root inside .venv: `python -m benchmarks.topology [--quick]`; writes
benchmarks/results/topology.json and the `topology` block of benchmarks/results/e2e.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pyspark.sql import SparkSession

from benchmarks.cpu import tree_cpu_seconds
from benchmarks.e2e_books import books
from benchmarks.e2e_events import end_offsets
from benchmarks.e2e_feed import backlog
from benchmarks.e2e_runs import FEED, lake_settings, live_steps, plain_copy
from benchmarks.e2e_scaling import import_boundaries
from benchmarks.harness import run_on_embedded_stack
from benchmarks.topology_report import topology_block
from bigbilbao.config.settings import FeedSettings, Settings, with_overrides
from bigbilbao.feeds import producer, simulator
from bigbilbao.infra import kafka_clients
from bigbilbao.stages import pipeline
from bigbilbao.tables import ledger

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "topology.json"
E2E = ROOT / "benchmarks" / "results" / "e2e.json"
STAGED = ("ingest", "silver", "gold")
_START = time.perf_counter()


def progress(message: str) -> None:
    print(f"[topology {time.perf_counter() - _START:7.1f}s] {message}", flush=True)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short live steps (a few minutes)")
    parser.add_argument("--events", type=int, default=200_000, help="one feed: the large backlog")
    parser.add_argument("--small-events", type=int, default=20_000, help="one feed: the small backlog")
    parser.add_argument("--mixed-events", type=int, default=60_000, help="all feeds: the mixed backlog")
    parser.add_argument("--rates", default="100,1000,3000,5000", help="live: offered rates, events/s")
    parser.add_argument("--step-seconds", type=float, default=90.0, help="live: how long each rate is offered")
    parser.add_argument("--round-threads", default="",
                        help="all feeds: also drain the round with these streaming.round_parallel_feeds, e.g. 4,6")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: staged,live")
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args()
    if args.quick:
        args.events, args.small_events, args.mixed_events = 30_000, 3_000, 6_000
        args.rates, args.step_seconds = "100,1000", 30.0
    args.skip = set(filter(None, args.skip.split(",")))
    return args


def main() -> None:
    args = arguments()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = run_on_embedded_stack("topology", args, measure, progress)
    result["topology"] = topology_block(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    if args.output == RESULT and E2E.is_file():
        e2e = json.loads(E2E.read_text())
        e2e["topology"] = {**result["topology"], "measured_by": "python -m benchmarks.topology",
                           "load_average": result["load_average"]}
        E2E.write_text(json.dumps(e2e, indent=2) + "\n")
    print(json.dumps(result["topology"], indent=2), flush=True)
    if result["lost"] or result["duplicated"]:
        progress("FAILED: a run lost or duplicated events; see 'books' in the JSON")
        sys.exit(1)


def measure(args: argparse.Namespace, spark: SparkSession, base: Settings, bootstrap: str, work: Path) -> dict:
    origin = int(time.time()) - 6 * 3600
    result: dict = {"books": {}}
    progress("warm-up: a 5,000-event round drain (not reported)")
    one_feed_drain(spark, base, bootstrap, work, "warmup", 5_000, origin, result, plain=False)
    result["one_feed"] = {
        "small": one_feed_drain(spark, base, bootstrap, work, "small", args.small_events, origin, result),
        "large": one_feed_drain(spark, base, bootstrap, work, "large", args.events, origin, result,
                                staged="staged" not in args.skip),
    }
    threads = [int(n) for n in args.round_threads.split(",") if n]
    result["all_feeds"] = all_feeds(spark, base, bootstrap, work, args.mixed_events, result,
                                    staged="staged" not in args.skip, threads=threads)
    if "live" not in args.skip:
        settings = lake_settings(base, work, "live", bootstrap)
        kafka_clients.ensure_topics(settings, bootstrap)
        import_boundaries(settings.lakehouse_path, "barrios_46", work)
        rates = [int(r) for r in args.rates.split(",")]
        progress(f"live: the round streaming, offered {rates} events/s for {args.step_seconds:.0f} s each")
        result["live"] = live_steps(spark, settings, bootstrap, rates, args.step_seconds, 1000, origin, 60.0,
                                    progress, 10**9)
        for step in result["live"]:
            step.pop("samples", None)
        topic = settings.enabled_feeds[0].topic_name
        result["books"]["live"] = books(settings.lakehouse_path, FEED, end_offsets(bootstrap, topic))
    result["lost"] = sum(b["lost"] for b in result["books"].values())
    result["duplicated"] = sum(b["duplicated"] for b in result["books"].values())
    return result


@dataclasses.dataclass
class Counters:
    """Spark jobs and Delta commits made since `start`, and CPU seconds of the process tree."""

    spark: SparkSession
    lake: Path
    jobs: int = 0
    commits: int = 0
    cpu: float = 0.0
    began: float = 0.0

    def start(self) -> Counters:
        self.jobs, self.commits = last_job_id(self.spark), delta_commits(self.lake)
        self.cpu, self.began = tree_cpu_seconds(), time.perf_counter()
        return self

    def stop(self) -> dict:
        seconds, cpu = time.perf_counter() - self.began, tree_cpu_seconds() - self.cpu
        jobs = last_job_id(self.spark) - self.jobs - 1  # the marker job itself
        commits = delta_commits(self.lake) - self.commits
        return {"s": seconds, "cpu_s": cpu, "spark_jobs": jobs, "delta_commits": commits}


def last_job_id(spark: SparkSession) -> int:
    """The id of a one-task marker job run now: job ids are sequential, so the difference counts the jobs between."""
    context = spark.sparkContext
    group = f"bench-marker-{time.monotonic_ns()}"
    context.setJobGroup(group, "benchmark marker")
    try:
        context.parallelize([1], 1).count()
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
    return max(context.statusTracker().getJobIdsForGroup(group))


def delta_commits(lake: Path) -> int:
    """Delta commit files in the lakehouse (every table's log)."""
    return sum(1 for _ in lake.glob("**/_delta_log/*.json")) if lake.is_dir() else 0


def timed_drain(spark: SparkSession, settings: Settings, bootstrap: str, stages: tuple[str, ...]) -> dict:
    """Drain the backlog through `stages` one after the other (availableNow), counting wall time, CPU, Spark jobs,
    Delta commits, streaming queries and the first query's micro-batches."""
    counters = Counters(spark, settings.lakehouse_path).start()
    queries = 0
    for stage in stages:
        started = pipeline.start_stage(spark, settings, stage, bootstrap, until_idle=True)
        queries += len(started)
        for query in started:
            query.awaitTermination()
    measured = counters.stop()
    first = settings.checkpoint_path / ("round" if stages[0] == "round" else "bronze")
    return {**measured, "queries": queries, "micro_batches": len(list(first.glob("commits/[0-9]*")))}


def one_feed_drain(spark: SparkSession, base: Settings, bootstrap: str, work: Path, name: str, count: int,
                   origin: int, result: dict, plain: bool = True, staged: bool = False) -> dict:
    """A traffic_flow backlog of `count` events: plain copy, round drain and (optionally) staged drain."""
    settings = lake_settings(base, work, name, bootstrap)
    kafka_clients.ensure_topics(settings, bootstrap)
    topic = settings.enabled_feeds[0].topic_name
    produced_s = backlog(spark, bootstrap, topic, 0, count, 1000, origin)
    out: dict = {"events": count, "spark_producer_s": produced_s}
    if plain:
        seconds, cpu = plain_copy(spark, lake_settings(base, work, f"{name}_plain", bootstrap, topic=topic), bootstrap)
        out["plain_copy"] = {"s": seconds, "cpu_s": cpu}
        progress(f"{name}: plain copy of {count:,} events in {seconds:.1f} s ({count / seconds:,.0f}/s)")
    import_boundaries(settings.lakehouse_path, "barrios_46", work)
    out["round"] = timed_drain(spark, settings, bootstrap, ("round",))
    result["books"][f"{name}_round"] = books(settings.lakehouse_path, FEED, end_offsets(bootstrap, topic))
    progress(f"{name}: round drain {out['round']['s']:.1f} s ({count / out['round']['s']:,.0f}/s), "
             f"{out['round']['spark_jobs']} jobs, {out['round']['delta_commits']} commits")
    if staged:
        staged_settings = with_overrides(lake_settings(base, work, f"{name}_staged", bootstrap, topic=topic),
                                         streaming={"topology": "staged"})
        import_boundaries(staged_settings.lakehouse_path, "barrios_46", work)
        out["staged"] = timed_drain(spark, staged_settings, bootstrap, STAGED)
        result["books"][f"{name}_staged"] = books(staged_settings.lakehouse_path, FEED, end_offsets(bootstrap, topic))
        progress(f"{name}: staged drain {out['staged']['s']:.1f} s ({count / out['staged']['s']:,.0f}/s)")
    return out


def mixed_settings(base: Settings, work: Path, name: str, bootstrap: str) -> Settings:
    """Every shipped feed enabled, on the benchmark's `mixed.<feed>` topics, in its own lakehouse."""
    settings = with_overrides(base, lakehouse={"path": str(work / name)}, kafka={"bootstrap_servers": (bootstrap,)})
    feeds = tuple(FeedSettings(name=feed, topic=f"mixed.{feed}") for feed in simulator.FEEDS)
    return dataclasses.replace(settings, feeds=feeds)


def all_feeds(spark: SparkSession, base: Settings, bootstrap: str, work: Path, count: int, result: dict,
              staged: bool, threads: list[int]) -> dict:
    """Every feed mixed: plain copy of the 12 topics, round drain (also with other numbers of feed threads),
    staged drain, each in its own lakehouse."""
    settings = mixed_settings(base, work, "mixed_round", bootstrap)
    kafka_clients.ensure_topics(settings, bootstrap)
    start = datetime.now(timezone.utc) - timedelta(hours=4)
    events = list(simulator.generate(None, count=count, seed=19, start=start))
    began = time.perf_counter()
    producer.publish(settings, bootstrap, events)
    out: dict = {"events": count, "feeds": len(settings.enabled_feeds),
                 "python_producer_s": time.perf_counter() - began}
    seconds, cpu = plain_copy(spark, mixed_settings(base, work, "mixed_plain", bootstrap), bootstrap)
    out["plain_copy"] = {"s": seconds, "cpu_s": cpu}
    progress(f"all feeds: plain copy of {count:,} events in {seconds:.1f} s ({count / seconds:,.0f}/s)")
    import_boundaries(settings.lakehouse_path, "barrios_46", work)
    out["round"] = timed_drain(spark, settings, bootstrap, ("round",))
    result["books"]["all_feeds_round"] = mixed_books(settings, bootstrap)
    progress(f"all feeds: round drain {out['round']['s']:.1f} s ({count / out['round']['s']:,.0f}/s), "
             f"{out['round']['spark_jobs']} jobs, {out['round']['delta_commits']} commits")
    for n in threads:
        other = with_overrides(mixed_settings(base, work, f"mixed_round_{n}", bootstrap),
                               streaming={"round_parallel_feeds": n})
        import_boundaries(other.lakehouse_path, "barrios_46", work)
        out[f"round_threads_{n}"] = timed_drain(spark, other, bootstrap, ("round",))
        result["books"][f"all_feeds_round_threads_{n}"] = mixed_books(other, bootstrap)
        progress(f"all feeds: round drain with {n} feed threads {out[f'round_threads_{n}']['s']:.1f} s")
    if staged:
        other = with_overrides(mixed_settings(base, work, "mixed_staged", bootstrap), streaming={"topology": "staged"})
        import_boundaries(other.lakehouse_path, "barrios_46", work)
        out["staged"] = timed_drain(spark, other, bootstrap, STAGED)
        result["books"]["all_feeds_staged"] = mixed_books(other, bootstrap)
        progress(f"all feeds: staged drain {out['staged']['s']:.1f} s ({count / out['staged']['s']:,.0f}/s), "
                 f"{out['staged']['queries']} queries")
    return out


def mixed_books(settings: Settings, bootstrap: str) -> dict:
    """Books of every feed in a mixed lakehouse: Kafka's records against bronze rows; a feed whose books do not
    balance (bronze = silver + quarantined + duplicates) counts as lost."""
    ledgers = [ledger.feed_ledger(settings.lakehouse_path, f.name) for f in settings.enabled_feeds]
    kafka = sum(sum(end_offsets(bootstrap, f.topic_name).values()) for f in settings.enabled_feeds)
    bronze = sum(b.bronze for b in ledgers)
    return {"kafka_records": kafka, "bronze": bronze, "unbalanced_feeds": sum(not b.balanced for b in ledgers),
            "lost": max(0, kafka - bronze) + sum(not b.balanced for b in ledgers), "duplicated": max(0, bronze - kafka)}


if __name__ == "__main__":
    main()
