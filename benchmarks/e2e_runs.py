"""The runs of the e2e benchmark: backlog drains (Big Bilbao and a plain copy) and paced live steps."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from pyspark.sql import SparkSession

from benchmarks.cpu import tree_cpu_seconds
from benchmarks.e2e_books import DeltaLog, gold_batches, latencies
from benchmarks.e2e_events import end_offsets
from bigbilbao.config.settings import FeedSettings, Settings, with_overrides
from bigbilbao.infra import jvm, kafka_clients
from bigbilbao.stages import fused, pipeline
from bigbilbao.tables.read import table_path

FEED = "traffic_flow"
ROOT = Path(__file__).resolve().parents[1]


def lake_settings(base: Settings, work: Path, name: str, bootstrap: str, topic: str | None = None) -> Settings:
    """Settings of one run: its own lakehouse folder and (unless given) its own topic on the benchmark's broker."""
    settings = with_overrides(base, lakehouse={"path": str(work / name)}, kafka={"bootstrap_servers": (bootstrap,)})
    return dataclasses.replace(settings, feeds=(FeedSettings(name=FEED, topic=topic or f"bench.{name}"),))


def plain_copy(spark: SparkSession, settings: Settings, bootstrap: str) -> tuple[float, float]:
    """Kafka -> Delta with no parsing, join or aggregate (availableNow over the backlog); (seconds, CPU seconds)."""
    target = settings.lakehouse_path / "plain_copy"
    reader = spark.readStream.format("kafka")
    for key, value in kafka_clients.spark_source_options(settings, bootstrap).items():
        reader = reader.option(key, value)
    began, cpu = time.perf_counter(), tree_cpu_seconds()
    query = (reader.load().writeStream.format("delta").queryName("plain-copy").trigger(availableNow=True)
             .option("checkpointLocation", str(settings.checkpoint_path / "plain_copy")).start(str(target)))
    query.awaitTermination()
    return time.perf_counter() - began, tree_cpu_seconds() - cpu


def drain(spark: SparkSession, settings: Settings, bootstrap: str, stages: tuple[str, ...]) -> dict[str, float]:
    """Run the stages one after the other until the backlog is drained; seconds and CPU seconds per stage."""
    timings: dict[str, float] = {}
    for stage in stages:
        began, cpu = time.perf_counter(), tree_cpu_seconds()
        for query in pipeline.start_stage(spark, settings, stage, bootstrap, until_idle=True):
            query.awaitTermination()
        timings[stage] = time.perf_counter() - began
        timings[f"{stage}_cpu"] = tree_cpu_seconds() - cpu
    return timings


class PacedProducer:
    """The JVM producer subprocess (`benchmarks.e2e_feed`): one paced step at a time."""

    def __init__(self, settings: Settings, bootstrap: str, topic: str, sensors: int, base: int, work: Path) -> None:
        jars = ",".join(str(j) for j in jvm.spark_extra_jars(settings.jars_path))
        work.mkdir(parents=True, exist_ok=True)
        log = open(work / "producer.log", "wb")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.e2e_feed", bootstrap, topic, str(sensors), str(base)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT, env=dict(os.environ))
        self.process.stdin.write(jars + "\n")
        self.process.stdin.flush()
        self._expect("ready")

    def step(self, first: int, rate: int, seconds: float) -> None:
        """Start a step; `wait` reads its end."""
        self.process.stdin.write(f"{first} {rate} {seconds}\n")
        self.process.stdin.flush()

    def wait(self) -> int:
        """Block until the step has been sent; returns how many events it sent."""
        return int(self._expect("done").split()[1])

    def _expect(self, word: str) -> str:
        line = self.process.stdout.readline()
        if not line.startswith(word):
            message = f"the paced producer answered {line!r} instead of {word!r}; see producer.log in the work folder"
            raise RuntimeError(message)
        return line

    def close(self) -> None:
        """Close stdin so it stops Spark and exits."""
        self.process.stdin.close()
        self.process.wait(timeout=120)


def live_steps(spark: SparkSession, settings: Settings, bootstrap: str, rates: list[int], seconds: float,
               sensors: int, base: int, drain_cap_s: float, progress, step_events: int) -> list[dict]:
    """Every stage streaming at once while the producer offers each rate; lag, catch-up, latency.

    A step lasts `seconds`, shortened so it offers at most `step_events`; afterwards the streams are
    stopped and whatever is left is drained with availableNow, so the books can be checked.
    """
    stages = live_stages(settings)
    queries = [q for stage in stages for q in pipeline.start_stage(spark, settings, stage, bootstrap, until_idle=False)]
    topic = settings.enabled_feeds[0].topic_name
    lake = settings.lakehouse_path
    bronze, silver = DeltaLog(table_path(lake, "bronze", FEED)), DeltaLog(table_path(lake, "silver", FEED))
    producer = PacedProducer(settings, bootstrap, topic, sensors, base, settings.lakehouse_path / "_producer")
    steps, first = [], 0
    try:
        for rate in rates:
            length = min(seconds, step_events / rate)
            steps.append(_step(producer, queries, topic, bootstrap, bronze, silver, first, rate, length,
                               drain_cap_s, settings))
            first = sum(end_offsets(bootstrap, topic).values())
            progress(f"live {rate:,}/s: {_describe(steps[-1])}")
    finally:
        producer.close()
        for query in queries:
            query.stop()
    progress("live: streams stopped; draining what is left (availableNow) for the books")
    drain(spark, settings, bootstrap, stages)
    return steps


def live_stages(settings: Settings) -> tuple[str, ...]:
    """The queries `run all` starts with these settings: the fused round, or each stage's."""
    return ("round",) if settings.streaming.topology == "round" else ("ingest", "silver", "gold")


def gold_checkpoint(settings: Settings) -> Path:
    """The checkpoint whose committed micro-batches have written gold: the round's, or the feed's gold query's."""
    if settings.streaming.topology == "round":
        return fused.checkpoint_path(settings)
    return settings.checkpoint_path / "gold" / FEED


def _step(producer: PacedProducer, queries: list, topic: str, bootstrap: str, bronze: DeltaLog, silver: DeltaLog,
          first: int, rate: int, seconds: float, drain_cap_s: float, settings: Settings) -> dict:
    """One offered rate: sample Kafka/bronze/silver lag every second while producing, then wait for catch-up."""
    cpu, producer_cpu = tree_cpu_seconds(), tree_cpu_seconds(producer.process.pid)
    began = time.time()
    producer.step(first, rate, seconds)
    sending = ThreadPoolExecutor(max_workers=1).submit(producer.wait)
    samples = []
    while not sending.done() or time.time() - began < seconds:  # lag while the events really arrive
        time.sleep(1.0)
        samples.append(_sample(bootstrap, topic, bronze, silver, began))
    sent = sending.result()
    ended = time.time()
    produced = sum(end_offsets(bootstrap, topic).values()) - first
    if produced != sent:
        message = f"the producer sent {sent} events but Kafka's end offsets grew by {produced}"
        raise RuntimeError(message)
    while silver.refresh().rows < first + produced and time.time() - ended < drain_cap_s:
        _raise_on_failure(queries)
        time.sleep(0.5)
    caught_up = time.time() - ended
    lag = np.array([s["behind_silver"] for s in samples[len(samples) // 2:]], dtype=float)
    times = np.array([s["t"] for s in samples[len(samples) // 2:]], dtype=float)
    slope = float(np.polyfit(times, lag, 1)[0]) if lag.size >= 3 else None  # too short a step for a verdict
    window = (int(began * 1000), int(ended * 1000) + 1000)
    checkpoint, same_round = gold_checkpoint(settings), settings.streaming.topology == "round"
    _wait_for_gold(silver, checkpoint, ended + drain_cap_s + settings.streaming.gold_trigger_s, queries, same_round)
    achieved = produced / (ended - began)
    to_silver = latencies(silver, window, produced, gold_batches(checkpoint), same_round)
    kept_up = (produced > 0 and silver.rows >= first + produced and slope is not None and slope <= 0.05 * achieved
               and caught_up <= 30)
    return {
        "offered_per_s": rate, "produced": produced, "produced_per_s": achieved, "seconds": ended - began,
        "caught_up_after_s": caught_up, "drained": silver.rows >= first + produced,
        "lag_growth_per_s": slope,
        "sustained": bool(kept_up and to_silver["to_table"].get("not_visible", 1) == 0),  # every event seen in silver
        "cpu_s": tree_cpu_seconds() - cpu, "producer_cpu_s": tree_cpu_seconds(producer.process.pid) - producer_cpu,
        "latency_bronze_s": latencies(bronze, window, produced)["to_table"],
        **{f"latency_{k}_s": v for k, v in to_silver.items()},
        "samples": samples,
    }


def _wait_for_gold(silver: DeltaLog, checkpoint: Path, deadline: float, queries: list, same_round: bool) -> None:
    """Wait (until `deadline`) for a committed gold micro-batch that holds silver's newest commit with rows:
    planned after it (staged), or committed after it (the round writes silver and gold in one batch)."""
    newest = max((stamp for stamp, files, _ in silver.refresh().commits.values() if files), default=0) / 1e3
    while time.time() < deadline and not any((done if same_round else planned) >= newest
                                             for planned, done in gold_batches(checkpoint)):
        _raise_on_failure(queries)
        time.sleep(0.5)


def _sample(bootstrap: str, topic: str, bronze: DeltaLog, silver: DeltaLog, began: float) -> dict:
    """Records in Kafka, bronze and silver now, and how far each layer is behind Kafka."""
    kafka = sum(end_offsets(bootstrap, topic).values())
    landed, judged = bronze.refresh().rows, silver.refresh().rows
    return {"t": round(time.time() - began, 2), "kafka": kafka, "bronze": landed, "silver": judged,
            "behind_bronze": kafka - landed, "behind_silver": kafka - judged}


def _raise_on_failure(queries: list) -> None:
    """Stop waiting when a streaming query died."""
    dead = [q for q in queries if not q.isActive]
    if dead:
        message = f"streaming query {dead[0].name} stopped: {dead[0].exception()}"
        raise RuntimeError(message)


def _describe(step: dict) -> str:
    """One progress line for a live step."""
    silver = step["latency_to_table_s"]
    return (f"produced {step['produced_per_s']:,.0f}/s, caught up {step['caught_up_after_s']:.1f} s after, "
            f"lag growth {_rate(step['lag_growth_per_s'])}, silver p95 {silver.get('p95')} s, "
            f"sustained={step['sustained']}")


def _rate(value: float | None) -> str:
    """A lag growth for the progress line; None when the step was too short to fit one."""
    return "n/a (step too short)" if value is None else f"{value:,.0f}/s"
