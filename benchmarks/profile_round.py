"""Where one round's time goes: a one-feed backlog drained by the round, with wall time per step and Spark jobs.

Not a benchmark with targets: a profile to read before optimising the round (`docs/performance.md`). It drains a
traffic_flow backlog twice (a warm-up, then the measured one, each beside a plain Kafka -> Delta copy of the same
topic) and prints, for the measured drain, the wall seconds spent inside each step of the round (bronze, silver,
gold and the Delta writes they make; steps nest, so the rows do not add up) and the Spark jobs and Delta commits.
`--jobs FILE` also writes every Spark job of the measured drain (id, tasks, seconds, description) as JSON, from
the Spark UI's REST API. Extra Spark settings to try: `--conf key=value` (repeatable).

Run from the repository root inside .venv: `python -m benchmarks.profile_round [--events 3000]`.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from benchmarks import harness
from benchmarks.e2e_feed import backlog
from benchmarks.e2e_runs import lake_settings, plain_copy
from benchmarks.e2e_scaling import import_boundaries
from benchmarks.topology import last_job_id, timed_drain
from bigbilbao.config.settings import Settings
from bigbilbao.infra import kafka_clients
from bigbilbao.stages import fused, gold, gold_restate, ingest, quality, silver, sinks

STEPS: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
_LOCK = threading.Lock()
FUNCTIONS = [(sinks, "idempotent_append"), (sinks, "small_append"), (quality, "summarise"), (gold, "batch_stats"),
             (gold, "merge_into"), (gold, "refresh_quality"), (gold_restate, "merge_into"),
             (gold, "restated_hours"), (gold, "restated_windows"), (gold, "record_watermark")]
METHODS = [(ingest.BronzeWriter, "__call__"), (ingest.BronzeWriter, "_append"), (silver.SilverWriter, "_write"),
           (fused.GoldOfFeed, "landed"), (fused.GoldOfFeed, "quarantined"), (gold.FeedWriter, "write_kpi_inputs"),
           (gold.FeedWriter, "raise_alerts")]


def timed(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, adding its calls and wall seconds to STEPS[label]."""
    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            with _LOCK:
                STEPS[label][0] += 1
                STEPS[label][1] += time.perf_counter() - began
    return run


def instrument() -> None:
    """Time the round's steps (module functions where their callers look them up, and writer methods)."""
    for module, name in FUNCTIONS:
        setattr(module, name, timed(f"{module.__name__.rsplit('.', 1)[-1]}.{name}", getattr(module, name)))
    for owner, name in METHODS:
        setattr(owner, name, timed(f"{owner.__name__}.{name}", getattr(owner, name)))


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3_000, help="events in the measured backlog (one batch)")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="an extra Spark setting")
    parser.add_argument("--jobs", type=Path, help="write the measured drain's Spark jobs to this JSON file")
    return parser.parse_args()


def measure(args: argparse.Namespace, spark: SparkSession, base: Settings, bootstrap: str, work: Path) -> dict:
    origin = int(time.time()) - 6 * 3600
    result: dict = {}
    for name, count in (("warm-up", 3_000), ("measured", args.events)):
        settings = lake_settings(base, work, name, bootstrap)
        kafka_clients.ensure_topics(settings, bootstrap)
        topic = settings.enabled_feeds[0].topic_name
        backlog(spark, bootstrap, topic, 0, count, 1000, origin)
        plain_s, plain_cpu = plain_copy(spark, lake_settings(base, work, f"{name}_plain", bootstrap, topic=topic),
                                        bootstrap)
        import_boundaries(settings.lakehouse_path, "barrios_46", work)
        STEPS.clear()
        first_job = last_job_id(spark)
        drained = timed_drain(spark, settings, bootstrap, ("round",))
        result = {"events": count, "plain_copy": {"s": plain_s, "cpu_s": plain_cpu}, "round": drained,
                  "steps": {label: {"calls": calls, "s": round(s, 3)} for label, (calls, s) in STEPS.items()}}
        print(f"{name}: {count:,} events; plain copy {plain_s:.1f} s; round {drained['s']:.1f} s, "
              f"{drained['spark_jobs']} Spark jobs, {drained['delta_commits']} Delta commits", flush=True)
    for label, (calls, seconds) in sorted(STEPS.items(), key=lambda item: -item[1][1]):
        print(f"  {label:36s} {int(calls):4d} call(s) {seconds:7.2f} s", flush=True)
    if args.jobs:
        context = spark.sparkContext
        url = f"{context.uiWebUrl}/api/v1/applications/{context.applicationId}/jobs"
        with urllib.request.urlopen(url) as answer:  # noqa: S310 - the local Spark UI
            jobs = [job for job in json.load(answer) if job["jobId"] > first_job]
        args.jobs.write_text(json.dumps(jobs, indent=1) + "\n")
    return result


def main() -> None:
    args = arguments()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    extra = dict(item.split("=", 1) for item in args.conf)
    overrides = harness.with_overrides

    def with_ui(settings: Settings, **sections: Any) -> Settings:  # the harness's Spark, with its UI and --conf
        if "spark" in sections:
            sections["spark"] = {**sections["spark"], "ui": bool(args.jobs), "conf": extra}
        return overrides(settings, **sections)

    harness.with_overrides = with_ui
    instrument()
    harness.run_on_embedded_stack("profile-round", args, measure, print)


if __name__ == "__main__":
    main()
