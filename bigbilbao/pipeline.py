"""Wires the stages together; jobs/ and the CLI call only this module."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from bigbilbao import contracts, ingest, kafka_clients, silver
from bigbilbao.errors import PipelineError
from bigbilbao.session import build_spark
from bigbilbao.settings import Settings

log = logging.getLogger(__name__)

STAGES = ("ingest",)
# Stages that run only when named: silver is being finished (see the issues) and is not yet part of `all`.
EXPERIMENTAL_STAGES = ("silver",)


def feed_contracts(settings: Settings) -> dict[str, contracts.Contract]:
    """Contracts of the enabled feeds; a feed without a contract fails at start-up."""
    available = contracts.load_contracts()
    missing = [f.name for f in settings.enabled_feeds if f.name not in available]
    if missing:
        msg = f"Feeds {missing} have no contract in schemas/; known feeds: {sorted(available)}."
        raise PipelineError(msg)
    return {f.name: available[f.name] for f in settings.enabled_feeds}


def start_stage(spark: SparkSession, settings: Settings, stage: str, bootstrap: str,
                until_idle: bool) -> list[StreamingQuery]:
    """Start one streaming stage and return its queries."""
    feeds = feed_contracts(settings)
    if stage == "ingest":
        return [ingest.start_ingest(spark, settings, feeds, bootstrap, until_idle)]
    if stage == "silver":
        ingest.ensure_bronze_tables(spark, settings, feeds)
        return silver.start_silver(spark, settings, feeds, until_idle)
    msg = f"Unknown stage '{stage}'; choose one of {', '.join(STAGES + EXPERIMENTAL_STAGES)} or 'all'."
    raise PipelineError(msg)


def run(settings: Settings, stage: str = "all", until_idle: bool = False, master: str | None = None,
        spark: SparkSession | None = None) -> None:
    """Run stages until Kafka is drained (until_idle) or until SIGTERM/Ctrl-C stops them gracefully."""
    stages = STAGES if stage == "all" else (stage,)
    with kafka_clients.bootstrap_servers(settings) as bootstrap:
        kafka_clients.ensure_topics(settings, bootstrap)
        spark = spark or build_spark(settings, master)
        if until_idle:
            for name in stages:
                _await(start_stage(spark, settings, name, bootstrap, until_idle=True))
        else:
            _await([q for name in stages for q in start_stage(spark, settings, name, bootstrap, until_idle=False)])


def _await(queries: list[StreamingQuery]) -> None:
    """Wait for the queries; a failure or SIGTERM/Ctrl-C stops them all between micro-batches."""
    with _stop_on_signal(queries):
        while any(q.isActive for q in queries) and not _failures(queries):
            time.sleep(0.5)
    failures = _failures(queries)
    for query in queries:
        if query.isActive:
            query.stop()
    if failures:
        query = failures[0]
        msg = f"Streaming query {query.name} failed: {_first_line(str(query.exception()))}"
        raise PipelineError(msg)


def _failures(queries: list[StreamingQuery]) -> list[StreamingQuery]:
    """Queries that terminated with an error."""
    return [q for q in queries if not q.isActive and q.exception() is not None]


def _first_line(text: str) -> str:
    """The useful sentence of a JVM/Python exception text."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    useful = [ln for ln in lines if "PipelineError" in ln or "BigBilbaoError" in ln]
    return (useful or lines or ["unknown error"])[0][:500]


@contextlib.contextmanager
def _stop_on_signal(queries: list[StreamingQuery]) -> Iterator[None]:
    """Turn SIGTERM into a graceful stop of every query while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %d received: stopping after the current micro-batch", signum)
        for query in queries:
            threading.Thread(target=query.stop, daemon=True).start()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
