"""Wires the stages together; jobs/ and the CLI call only this module."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from bigbilbao import contracts
from bigbilbao.config.settings import Settings
from bigbilbao.errors import PipelineError
from bigbilbao.infra import kafka_clients
from bigbilbao.infra.spark_session import build_spark
from bigbilbao.stages import fused, gold, ingest, progress, publish, silver, stopping
from bigbilbao.tables import catalog

log = logging.getLogger(__name__)

STAGES = ("ingest", "silver", "gold", "scorecard")
STREAMING_STAGES = ("ingest", "silver", "gold")
PUBLISH_EVERY_S = 60.0  # how often a continuous run republishes the scorecard
REPORT_EVERY_S = 60.0  # how often a continuous run logs one progress line per query
STALL_WARN_S = 30.0  # a trigger this long getting Kafka offsets means the broker is unreachable
STALL_CHECK_S = 5.0


def feed_contracts(settings: Settings) -> dict[str, contracts.Contract]:
    """Contracts of the enabled feeds; a feed without a contract fails at start-up."""
    available = contracts.load_contracts()
    missing = [f.name for f in settings.enabled_feeds if f.name not in available]
    if missing:
        msg = f"Feeds {missing} have no contract in schemas/; known feeds: {sorted(available)}."
        raise PipelineError(msg)
    return {f.name: available[f.name] for f in settings.enabled_feeds}


def start_stage(spark: SparkSession, settings: Settings, stage: str, bootstrap: str,
                until_idle: bool, stop: stopping.StopRequest | None = None) -> list[StreamingQuery]:
    """Start one streaming stage ("round" is every stage in one query) and return its queries.

    Every writer watches `stop`: none starts a micro-batch once a stop is asked for, and the round's also ends
    its running one early, between feeds.
    """
    feeds = feed_contracts(settings)
    if stage == "round":
        alerts = lambda rows: publish.publish_alerts(settings, bootstrap, rows)  # noqa: E731
        return [fused.start_round(spark, settings, feeds, bootstrap, until_idle, on_alerts=alerts,
                                  starting_offsets=_offsets_after_staged(spark, settings, bootstrap), stop=stop)]
    if stage == "ingest":
        return [ingest.start_ingest(spark, settings, feeds, bootstrap, until_idle, stop=stop)]
    if stage == "silver":
        ingest.ensure_bronze_tables(spark, settings, feeds)
        return silver.start_silver(spark, settings, feeds, until_idle, stop=stop)
    if stage == "gold":
        ingest.ensure_bronze_tables(spark, settings, feeds)
        silver.ensure_silver_tables(spark, settings, feeds)
        alerts = lambda rows: publish.publish_alerts(settings, bootstrap, rows)  # noqa: E731
        return gold.start_gold(spark, settings, feeds, until_idle, on_alerts=alerts, stop=stop)
    msg = f"Unknown stage '{stage}'; choose one of {', '.join(STAGES)} or 'all'."
    raise PipelineError(msg)


def check_before_start(settings: Settings, streams: list[str]) -> None:
    """Every setting the streams need that Spark would otherwise find missing only after ~15 s of start-up."""
    feeds = feed_contracts(settings)
    if {"silver", "round"} & set(streams) and any(contract.pseudonymised_fields() for contract in feeds.values()):
        settings.pseudonym_key()


def publish_scorecard(settings: Settings) -> None:
    """The scorecard stage: a batch step over gold, as of now."""
    publish.publish_scorecard(None, settings, as_of=datetime.now(timezone.utc))


def run(settings: Settings, stage: str = "all", until_idle: bool = False, master: str | None = None,
        spark: SparkSession | None = None) -> None:
    """Run stages until Kafka is drained (until_idle) or until SIGTERM/Ctrl-C stops them gracefully."""
    if stage not in (*STAGES, "all"):
        msg = f"Unknown stage '{stage}'; choose one of {', '.join(STAGES)} or 'all'."
        raise PipelineError(msg)
    stages = STAGES if stage == "all" else (stage,)
    streams = [name for name in stages if name in STREAMING_STAGES]
    if not streams:
        publish_scorecard(settings)
        return
    check_before_start(settings, streams)
    fused.refuse_mixed_topologies(settings, stage)
    if stage == "all" and settings.streaming.topology == "round":
        streams = ["round"]
    with kafka_clients.bootstrap_servers(settings) as bootstrap:
        kafka_clients.ensure_topics(settings, bootstrap)
        spark = spark or build_spark(settings, master)
        stop = stopping.StopRequest()
        if until_idle:
            for name in streams:
                if stop.requested:  # a signal stopped the previous stage: start no other
                    break
                queries = start_stage(spark, settings, name, bootstrap, until_idle=True, stop=stop)
                _await(queries, stop=stop)
                if stop.requested:
                    stopping.report(queries, stop, settings.checkpoint_path)
        else:
            stop_metrics = _serve_metrics(settings, bootstrap)
            queries = [q for name in streams
                       for q in start_stage(spark, settings, name, bootstrap, until_idle=False, stop=stop)]
            log.info("running %d streaming quer%s (%s) over %d feed(s); SIGTERM or Ctrl-C stops at a "
                     "micro-batch boundary", len(queries), "y" if len(queries) == 1 else "ies",
                     ", ".join(q.name or str(q.id) for q in queries), len(settings.enabled_feeds))
            tick = (lambda: publish_scorecard(settings)) if "scorecard" in stages else None
            try:
                _await(queries, tick, stop)
            finally:
                stop_metrics()
            if stop.requested:
                stopping.report(queries, stop, settings.checkpoint_path)
    if "scorecard" in stages:
        publish_scorecard(settings)
    catalog.apply_properties(settings.lakehouse_path, settings)


def _serve_metrics(settings: Settings, bootstrap: str) -> Callable[[], None]:
    """Serve the operator's figures as Prometheus metrics on `monitor.metrics_port`; returns how to stop."""
    port = settings.monitor.metrics_port
    if port is None:
        return lambda: None
    from bigbilbao.monitor import collect, metrics
    from bigbilbao.monitor.model import Status

    def snapshot() -> Status:
        return collect.collect(settings, kafka_clients.topic_offsets(settings, bootstrap), f"asked {bootstrap}")

    stop, bound = metrics.serve_metrics(snapshot, port, settings.monitor.metrics_host)
    log.info("Prometheus metrics at http://%s:%d/metrics", settings.monitor.metrics_host, bound)
    return stop


def _offsets_after_staged(spark: SparkSession, settings: Settings, bootstrap: str) -> str | None:
    """On a lakehouse the staged topology wrote, drain its queries once; the round then starts where they ended."""
    if fused.checkpoint_path(settings).is_dir() or not fused.staged_checkpoints(settings):
        return None
    log.info("this lakehouse was written by staged queries: draining them once before the round takes over")
    for name in STREAMING_STAGES:
        _await(start_stage(spark, settings, name, bootstrap, until_idle=True))
    return fused.staged_offsets(settings, kafka_clients.topic_partitions(settings, bootstrap))


def _await(queries: list[StreamingQuery], tick: Callable[[], None] | None = None,
           stop: stopping.StopRequest | None = None) -> None:
    """Wait for the queries, calling `tick` every PUBLISH_EVERY_S; a failure or SIGTERM/Ctrl-C stops them all.

    On a signal (which sets `stop`) each query ends or abandons its micro-batch and stops
    (`bigbilbao.stages.stopping`).
    """
    stop = stop or stopping.StopRequest()
    last = checked = reported = time.monotonic()
    watch = KafkaStallWatch()
    with stopping.on_signal(stop, stopping.quiet_loggers):
        while any(q.isActive for q in queries) and not _failures(queries, stop):
            if stop.requested:
                stopping.stop_queries(queries, stop)
                break
            time.sleep(0.5)
            if time.monotonic() - checked >= STALL_CHECK_S:
                watch.check(queries)
                checked = time.monotonic()
            if time.monotonic() - reported >= REPORT_EVERY_S:
                report_progress(queries)
                reported = time.monotonic()
            if tick is not None and time.monotonic() - last >= PUBLISH_EVERY_S:
                tick()
                last = time.monotonic()
    failures = _failures(queries, stop)
    for query in queries:
        if query.isActive:
            query.stop()
    if failures:
        query = failures[0]
        text = str(query.exception())
        hint = (" Kafka was unreachable; once it answers, run the stage again: it resumes from its checkpoint."
                if "org.apache.kafka" in text else "")
        msg = f"Streaming query {query.name} failed: {_first_line(text)}{hint}"
        raise PipelineError(msg)


def report_progress(queries: list[StreamingQuery]) -> None:
    """One INFO line per active query: rows in over the last minute, processing rate, lag, last batch."""
    now = datetime.now(timezone.utc)
    for query in queries:
        if not query.isActive:
            continue
        reports = [json.loads(p.json) if hasattr(p, "json") else dict(p) for p in query.recentProgress]
        line = progress.summary_line(query.name or str(query.id), reports, now)
        if line is not None:
            log.info("%s", line)


class KafkaStallWatch:
    """Says so in the log when a query waits for Kafka offsets (broker down) and when it gets them again."""

    def __init__(self) -> None:
        self.since: dict[str, float] = {}
        self.warned: set[str] = set()

    def check(self, queries: list[StreamingQuery]) -> None:
        """Look at each active query's status once; warn once per stall longer than STALL_WARN_S."""
        now = time.monotonic()
        for query in queries:
            name = query.name or str(query.id)
            waiting = query.isActive and str(query.status.get("message", "")).startswith("Getting offsets from Kafka")
            if not waiting:
                if name in self.warned:
                    log.warning("query %s reached Kafka again after %.0f s; catching up", name, now - self.since[name])
                self.since.pop(name, None)
                self.warned.discard(name)
                continue
            self.since.setdefault(name, now)
            if name not in self.warned and now - self.since[name] >= STALL_WARN_S:
                log.warning("query %s has waited %.0f s for Kafka; check that the broker is up (the query resumes "
                            "by itself once Kafka answers)", name, now - self.since[name])
                self.warned.add(name)


def _failures(queries: list[StreamingQuery], stop: stopping.StopRequest) -> list[StreamingQuery]:
    """Queries that terminated with an error, other than a micro-batch abandoned on a stop request."""
    return [q for q in queries
            if not q.isActive and q.exception() is not None and not stopping.stopped_on_purpose(q, stop)]


def _first_line(text: str) -> str:
    """The useful sentence of a JVM/Python exception text."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    useful = [ln for ln in lines if "PipelineError" in ln or "BigBilbaoError" in ln]
    return (useful or lines or ["unknown error"])[0][:500]
