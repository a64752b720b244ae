"""`bigbilbao` command line: thin argument parsing over pipeline, broker and demo."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bigbilbao import __version__, logs
from bigbilbao.cli import analyst, boundaries, maintain, scorecard, status
from bigbilbao.cli.exiting import exit_process
from bigbilbao.config.settings import Settings, load_settings, with_overrides
from bigbilbao.errors import BigBilbaoError, SettingsError
from bigbilbao.infra import broker, jvm

log = logging.getLogger(__name__)


def pipeline_stages() -> tuple[str, ...]:
    """The stage names, without importing Spark for `--help`."""
    return ("ingest", "silver", "gold", "scorecard")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bigbilbao", description=(
        "Big Bilbao: city sensor feeds from Kafka to Delta Lake tables and a balanced scorecard."))
    parser.add_argument("--version", action="version", version=f"bigbilbao {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="settings YAML (default: the packaged bigbilbao.yaml)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", parents=[common], help="run the embedded-default demo end to end",
                          description="Start the embedded broker, produce synthetic events of every enabled "
                                      "feed, run ingest, silver, gold and the scorecard until Kafka is drained "
                                      "and print where every message went.")
    demo.add_argument("--events", type=int, default=3000, help="messages to produce (default 3000)")
    demo.add_argument("--dirty-fraction", type=float, default=0.02,
                      help="share of malformed messages (default 0.02)")
    demo.add_argument("--seed", type=int, default=7, help="random seed of the simulator (default 7)")
    demo.add_argument("--feeds", default="traffic_flow,incidents,air_quality",
                      help="comma-separated feeds, or 'all' (default: one per domain)")

    run = sub.add_parser("run", parents=[common], help="run streaming stages",
                         description="Run a streaming stage (or all) against the configured Kafka.")
    run.add_argument("stage", nargs="?", default="all", choices=[*pipeline_stages(), "all"],
                     help="ingest (Kafka -> bronze), silver (validate, quarantine, de-duplicate, locate), gold "
                          "(windowed aggregates, alerts), scorecard (publish once), or all (default)")
    run.add_argument("--until-idle", action="store_true", help="process what Kafka holds now, then stop")
    run.add_argument("--master", help="Spark master URL, overriding spark.master (e.g. spark://host:7077)")
    run.add_argument("--metrics-port", type=int, metavar="PORT",
                     help="serve Prometheus metrics (the figures of `bigbilbao status`) on this port while running "
                          "(0: a free port, logged; default: monitor.metrics_port)")

    brk = sub.add_parser("broker", parents=[common], help="control the embedded Kafka broker",
                         description="Start, stop or inspect the embedded single-node KRaft broker.")
    brk.add_argument("action", choices=["start", "stop", "status"])

    sim = sub.add_parser("simulate", parents=[common], help="produce realistic synthetic sensor events",
                         description="Produce synthetic events (fixed sensors over every district, daily and "
                                     "weekly patterns, optional dirty records) into each feed's Kafka topic.")
    sim.add_argument("--feeds", default="all", help="'all' or a comma-separated list of feeds (default all)")
    sim.add_argument("--rate", type=float, help="messages per second (default: as fast as possible)")
    amount = sim.add_mutually_exclusive_group(required=True)
    amount.add_argument("--count", type=int, help="number of messages")
    amount.add_argument("--duration", type=float, help="seconds to run at --rate")
    sim.add_argument("--seed", type=int, default=0, help="random seed: same seed, same messages (default 0)")
    sim.add_argument("--dirty-fraction", type=float, default=0.0, help="share of dirty records (default 0)")
    sim.add_argument("--form", choices=["keyValues", "normalized", "mixed"], default="keyValues",
                     help="FIWARE message form (default keyValues)")

    rep = sub.add_parser("replay", parents=[common], help="publish a real open-data file into Kafka as a feed",
                         description="Publish Bilbao traffic-section GeoJSON/CSV, noise-meter CSV or Euskadi "
                                     "air-quality CSV files into a feed's topic with their original timestamps.")
    rep.add_argument("feed", help="traffic_flow, noise or air_quality")
    rep.add_argument("path", type=Path, help="the file to replay")
    rep.add_argument("--speedup", type=float, help="keep the original spacing, sped up X times (default: no waits)")
    rep.add_argument("--shift-to-now", action="store_true", help="shift timestamps so the latest one is now")
    rep.add_argument("--stations", type=Path, help="air quality: the Euskadi station list CSV, for coordinates")
    rep.add_argument("--station", help="air quality: station name (default: from the file name)")
    rep.add_argument("--sections", type=Path, help="traffic CSV: a section GeoJSON snapshot, for geometries")

    sub.add_parser("setup", parents=[common], help="check Java and resolve the JVM jars",
                   description="Check for Java 17+ and download the Spark/Delta/Kafka jars into the cache.")
    boundaries.add_parser(sub, common)  # `bigbilbao boundaries import|list`
    scorecard.add_parser(sub, common)  # `bigbilbao scorecard show`
    analyst.add_parsers(sub, common)  # `bigbilbao report`, `bigbilbao catalog`
    maintain.add_parser(sub, common)  # `bigbilbao maintain`
    status.add_parser(sub, common)  # `bigbilbao status`
    return parser


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from bigbilbao.cli import demo

    settings = only_feeds(settings, args.feeds)
    summaries = demo.run_demo(settings, args.events, args.dirty_fraction, args.seed)
    print(demo.format_summary(settings, summaries))
    return 0 if all(s.contiguous for s in summaries) else 1


def only_feeds(settings: Settings, feeds: str) -> Settings:
    """Settings restricted to the named feeds ('all' keeps the enabled ones)."""
    if feeds == "all":
        return settings
    wanted = [f.strip() for f in feeds.split(",") if f.strip()]
    known = {f.name: f for f in settings.feeds}
    unknown = [f for f in wanted if f not in known]
    if unknown:
        msg = f"Unknown feeds {unknown}; configured feeds: {', '.join(known)}."
        raise SettingsError(msg)
    return dataclasses.replace(settings, feeds=tuple(dataclasses.replace(known[f], enabled=True) for f in wanted))


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from bigbilbao.feeds import sources

    settings = only_feeds(settings, args.feeds)
    if args.duration is not None and not args.rate:
        msg = "--duration needs --rate (messages per second); or give --count instead."
        raise SettingsError(msg)
    count = args.count if args.count is not None else int(args.rate * args.duration)
    feeds = [f.name for f in settings.enabled_feeds]
    report = sources.run_simulation(settings, feeds, count, args.rate, args.seed, args.dirty_fraction, args.form)
    print(json.dumps({"produced": report.per_feed, "seconds": round(report.seconds, 2)}))
    return 0


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from bigbilbao.feeds import sources

    report = sources.run_replay(settings, args.feed, args.path, args.speedup, args.shift_to_now,
                                stations=args.stations, station=args.station, sections=args.sections)
    print(json.dumps({"produced": report.per_feed, "seconds": round(report.seconds, 2)}))
    return 0


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from bigbilbao.stages import pipeline

    if args.metrics_port is not None:
        settings = with_overrides(settings, monitor={"metrics_port": args.metrics_port})
    pipeline.run(settings, args.stage, until_idle=args.until_idle, master=args.master)
    return 0


def _broker(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.kafka.embedded:
        print(f"kafka.bootstrap_servers is set ({', '.join(settings.kafka.bootstrap_servers)}); "
              "the embedded broker is not used.")
        return 0
    if args.action == "start":
        info, started = broker.start(settings)
        print(f"{'started' if started else 'already running'}: {info.bootstrap} (pid {info.pid}, log {info.log_file})")
    elif args.action == "stop":
        print("stopped" if broker.stop(settings) else "not running")
    else:
        info = broker.status(settings)
        print(json.dumps({"running": True, "bootstrap": info.bootstrap, "pid": info.pid,
                          "log": info.log_file}) if info else json.dumps({"running": False}))
    return 0


def _setup(settings: Settings, _args: argparse.Namespace) -> int:
    java = jvm.require_java()
    print(f"Java {jvm.java_version(java)} at {java}")
    for bundle in jvm.BUNDLES:
        jars = jvm.ensure_jars(settings.jars_path, bundle)
        print(f"{bundle}: {len(jars)} jars in {jvm.jar_dir(settings.jars_path, bundle)}")
    return 0


COMMANDS = {"demo": _demo, "run": _run, "broker": _broker, "setup": _setup, "simulate": _simulate,
            "replay": _replay}
COMMANDS["boundaries"] = boundaries.run
COMMANDS["scorecard"] = scorecard.run
COMMANDS["report"] = analyst.run_report
COMMANDS["catalog"] = analyst.run_catalog
COMMANDS["maintain"] = maintain.run
COMMANDS["status"] = status.run


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bigbilbao` console script."""
    args = _parser().parse_args(argv)
    logs.configure(args.verbose)
    try:
        settings = load_settings(args.config)
        return COMMANDS[args.command](settings, args)
    except BigBilbaoError as exc:
        print(f"bigbilbao: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bigbilbao: interrupted", file=sys.stderr)
        return 130


def console() -> None:
    """Console-script wrapper: `main`, then an exit that native libraries cannot turn into SIGABRT."""
    exit_process(main())


if __name__ == "__main__":
    console()
