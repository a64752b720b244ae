"""End-to-end speed: Kafka -> bronze -> silver (spatial enrichment) -> gold against a plain Kafka -> Delta copy.

Everything runs on this machine: an embedded broker of its own and Spark local[2], each run in its own
lakehouse and topic under a temporary folder. Measured in one run:
  producer_ceiling  kafka-python (2 processes) and Spark's Kafka sink writing as fast as they can
  drains            a pre-produced backlog through ingest, silver and gold (availableNow, one stage after the
                    other), and the same backlog copied by a plain Kafka -> Delta stream: the machine's ceiling;
                    once more at the scaling size ("main_small"), which splits each stage's time into a fixed
                    part and a cost per event (cost_model); repeated for 8 / 46 / 1,000 polygons and 100 / 1,000 /
                    10,000 sensors (scaling, compared with main_small)
  live              every stage streaming at once while a paced JVM producer offers each rate: lag, catch-up,
                    and per-event latency produce -> bronze / silver / gold (p50/p95/p99)
  cold_start        `bigbilbao demo` in a fresh lakehouse to its first scorecard row (jars cached)
Every run's events are checked against Kafka's offsets: a lost or duplicated event makes the exit code 1.
Run from the repository root inside .venv: `python -m benchmarks.e2e [--quick]`; writes benchmarks/results/e2e.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from benchmarks.e2e_books import books
from benchmarks.e2e_events import Feed, end_offsets, produce
from benchmarks.e2e_feed import backlog
from benchmarks.e2e_report import document, markdown
from benchmarks.e2e_runs import FEED, drain, lake_settings, live_steps, plain_copy
from benchmarks.e2e_scaling import cold_start, import_boundaries
from benchmarks.harness import run_on_embedded_stack
from bigbilbao.config.settings import with_overrides
from bigbilbao.infra import kafka_clients

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "e2e.json"
STAGES = ("ingest", "silver", "gold")
# name -> (sensors, boundary layer); "main" is the configuration compared with the plain copy and run live;
# "main_small" is main at the scaling drains' size: with main it gives the cost model, beside them the baseline
# "warmup" runs first and is not reported: the JVM compiles its hot code there, not inside a timed drain
CONFIGS = {"warmup": (1000, "barrios_46"), "main": (1000, "barrios_46"), "main_small": (1000, "barrios_46"),
           "districts_8": (1000, "districts_8"), "grid_1000": (1000, "grid_1000"),
           "sensors_10000": (10000, "barrios_46")}
WARMUP_EVENTS = 5_000
PLAIN_COPIED = ("main", "main_small")
_START = time.perf_counter()


def progress(message: str) -> None:
    """One line per stage, so a long run shows where it is."""
    print(f"[e2e {time.perf_counter() - _START:7.1f}s] {message}", flush=True)


def arguments() -> argparse.Namespace:
    """Command-line options; --quick shrinks every size to finish in a few minutes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, no scaling or cold start (a few minutes)")
    parser.add_argument("--events", type=int, default=300_000, help="backlog of the main drain and plain copy")
    parser.add_argument("--scaling-events", type=int, default=20_000, help="backlog of each scaling drain")
    parser.add_argument("--python-events", type=int, default=20_000, help="events of the kafka-python ceiling")
    parser.add_argument("--rates", default="100,300,600,1000,10000,50000", help="offered rates of the live steps")
    parser.add_argument("--step-seconds", type=float, default=150.0, help="how long each rate is offered")
    parser.add_argument("--step-events", type=int, default=90_000, help="a live step offers at most this many")
    parser.add_argument("--catch-up-cap", type=float, default=60.0, help="max seconds to wait for a step to drain")
    parser.add_argument("--triggers", default="5,10,30",
                        help="live steps' streaming.{ingest,silver,gold}_trigger_s (shipped defaults: 2,5,5)")
    parser.add_argument("--skip", default="",
                        help="comma-separated parts to leave out: cost_model,scaling,live,cold_start")
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args()
    if args.quick:
        args.events, args.scaling_events, args.python_events = 30_000, 3_000, 20_000
        args.rates, args.step_seconds, args.catch_up_cap, args.step_events = "1000,10000,50000", 5.0, 45.0, 20_000
        args.skip = ",".join(filter(None, [args.skip, "scaling", "cold_start"]))
    args.skip = set(filter(None, args.skip.split(",")))
    return args


def main() -> None:
    """Start a broker and Spark of its own, run every part, write the JSON, exit 1 on any lost/duplicated event."""
    args = arguments()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = run_on_embedded_stack("e2e", args, measure, progress)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result), flush=True)
    progress(f"wrote {args.output}: max sustained {result['max_sustained_events_per_s']} events/s, plain copy "
             f"{result['plain_copy_events_per_s']:,.0f}/s, lost {result['lost']}, duplicated {result['duplicated']}")
    if result["lost"] or result["duplicated"]:
        progress("FAILED: the pipeline lost or duplicated events; see 'books' in the JSON")
        sys.exit(1)
    if result["errors"]:
        progress(f"FAILED: parts of the benchmark did not run: {result['errors']}")
        sys.exit(2)


def measure(args: argparse.Namespace, spark, base, bootstrap: str, work: Path) -> dict:
    """Run every part in order and collect the raw measurements."""
    started = time.time()
    python = lake_settings(base, work, "python", bootstrap)
    kafka_clients.ensure_topics(python, bootstrap)
    feed = Feed(bootstrap, python.enabled_feeds[0].topic_name, 1000, int(started) - 6 * 3600)
    progress(f"kafka-python ceiling: {args.python_events:,} events from 2 processes")
    python_rate = args.python_events / produce(feed, 0, args.python_events, None, workers=2)
    progress(f"kafka-python: {python_rate:,.0f} events/s")
    drains, all_books, errors = {}, {}, {}
    progress("warm-up drain (not reported)")
    _, all_books["warmup"] = run_drain(args, spark, base, bootstrap, work, "warmup", feed.base)
    drains["main"], all_books["main"] = run_drain(args, spark, base, bootstrap, work, "main", feed.base)
    others = [] if "cost_model" in args.skip else ["main_small"]
    others += [] if "scaling" in args.skip else [n for n in CONFIGS if n not in ("warmup", "main", "main_small")]
    for name in others:
        try:
            drains[name], all_books[name] = run_drain(args, spark, base, bootstrap, work, name, feed.base)
        except Exception as exc:  # noqa: BLE001 - recorded in the JSON; the other parts still count
            errors[name] = f"{type(exc).__name__}: {exc}"
            progress(f"{name} failed: {errors[name]}")
    live = []
    if "live" not in args.skip:
        try:
            live, all_books["live"] = run_live(args, spark, base, bootstrap, work, feed.base)
        except Exception as exc:  # noqa: BLE001 - recorded in the JSON; the other parts still count
            errors["live"] = f"{type(exc).__name__}: {exc}"
            progress(f"live failed: {errors['live']}")
    cold = None
    if "cold_start" not in args.skip:
        progress("cold start: `bigbilbao demo` in a fresh lakehouse")
        try:
            cold = cold_start(work, base.jars_path, 3000, 900)
            progress(f"cold start: first scorecard row after {cold['first_scorecard_row_s']} s")
        except Exception as exc:  # noqa: BLE001 - recorded in the JSON
            errors["cold_start"] = f"{type(exc).__name__}: {exc}"
    result = document(python_rate, drains, live, all_books, cold, started)
    result["errors"] = errors
    return result


def run_live(args: argparse.Namespace, spark, base, bootstrap: str, work: Path,
             origin: int) -> tuple[list[dict], dict]:
    """The live steps in their own lakehouse with the 46 barrios, then that lakehouse's books."""
    ingest_s, silver_s, gold_s = (float(x) for x in args.triggers.split(","))
    settings = with_overrides(lake_settings(base, work, "live", bootstrap), streaming={
        "ingest_trigger_s": ingest_s, "silver_trigger_s": silver_s, "gold_trigger_s": gold_s})
    kafka_clients.ensure_topics(settings, bootstrap)
    import_boundaries(settings.lakehouse_path, "barrios_46", work)
    rates = [int(r) for r in args.rates.split(",")]
    progress(f"live: every stage streaming, offered {rates} events/s for {args.step_seconds:.0f} s each")
    live = live_steps(spark, settings, bootstrap, rates, args.step_seconds, 1000, origin, args.catch_up_cap,
                      progress, args.step_events)
    return live, books(settings.lakehouse_path, FEED, end_offsets(bootstrap, settings.enabled_feeds[0].topic_name))


def run_drain(args: argparse.Namespace, spark, base, bootstrap: str, work: Path, name: str,
              origin: int) -> tuple[dict, dict]:
    """Pre-produce one configuration's backlog, (main only) copy it plainly, then drain it through the stages."""
    sensors, layer = CONFIGS[name]
    count = {"main": args.events, "warmup": WARMUP_EVENTS}.get(name, args.scaling_events)
    settings = lake_settings(base, work, name, bootstrap)
    kafka_clients.ensure_topics(settings, bootstrap)
    topic = settings.enabled_feeds[0].topic_name
    produced_s = backlog(spark, bootstrap, topic, 0, count, sensors, origin)
    result = {"events": count, "sensors": sensors, "boundaries": layer, "spark_producer_s": produced_s}
    progress(f"{name}: {count:,} events pre-produced by Spark in {produced_s:.1f} s ({count / produced_s:,.0f}/s)")
    if name in PLAIN_COPIED:
        plain = lake_settings(base, work, f"plain_{name}", bootstrap, topic=topic)
        result["plain_copy_s"], result["plain_copy_cpu"] = plain_copy(spark, plain, bootstrap)
        progress(f"plain copy: {count / result['plain_copy_s']:,.0f} events/s")
    import_boundaries(settings.lakehouse_path, layer, work)
    result.update(drain(spark, settings, bootstrap, STAGES))
    total = sum(result[s] for s in STAGES)
    progress(f"{name}: drained in {total:.1f} s ({count / total:,.0f} events/s; "
             + ", ".join(f"{s} {count / result[s]:,.0f}/s" for s in STAGES) + ")")
    ledger = books(settings.lakehouse_path, FEED, end_offsets(bootstrap, topic))
    progress(f"{name}: lost {ledger['lost']}, duplicated {ledger['duplicated']}")
    return result, ledger


if __name__ == "__main__":
    main()
