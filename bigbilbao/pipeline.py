"""Wires the stages together; jobs/ and the CLI call only this module."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from bigbilbao import contracts, ingest, kafka_clients
from bigbilbao.errors import PipelineError
from bigbilbao.session import build_spark
from bigbilbao.settings import Settings

log = logging.getLogger(__name__)

STAGES = ("ingest",)


def feed_contracts(settings: Settings) -> dict[str, contracts.Contract]:
    """Contracts of the enabled feeds; a feed without a contract fails at start-up."""
    available = contracts.load_contracts()
    missing = [f.name for f in settings.enabled_feeds if f.name not in available]
    if missing:
        msg = f"Feeds {missing} have no contract in schemas/; known feeds: {sorted(available)}."
        raise PipelineError(msg)
    return {f.name: available[f.name] for f in settings.enabled_feeds}


def start_stage(spark: SparkSession, settings: Settings, stage: str, bootstrap: str,
                until_idle: bool) -> StreamingQuery:
    """Start one streaming stage and return its query."""
    if stage == "ingest":
        return ingest.start_ingest(spark, settings, feed_contracts(settings), bootstrap, until_idle)
    msg = f"Unknown stage '{stage}'; choose one of {', '.join(STAGES)} or 'all'."
    raise PipelineError(msg)


def run(settings: Settings, stage: str = "all", until_idle: bool = False, master: str | None = None,
        spark: SparkSession | None = None) -> None:
    """Run stages until Kafka is drained (until_idle) or until SIGTERM/Ctrl-C stops them gracefully."""
    stages = STAGES if stage == "all" else (stage,)
    with kafka_clients.bootstrap_servers(settings) as bootstrap:
        kafka_clients.ensure_topics(settings, bootstrap)
        spark = spark or build_spark(settings, master)
        for name in stages:
            query = start_stage(spark, settings, name, bootstrap, until_idle)
            log.info("stage %s started (query %s)", name, query.id)
            _await(query, until_idle)


def _await(query: StreamingQuery, until_idle: bool) -> None:
    """Wait for a query; on SIGTERM or Ctrl-C stop it between micro-batches and re-raise its failure."""
    with _stop_on_signal(query):
        query.awaitTermination()
    failure = query.exception()
    if failure is not None:
        msg = f"Streaming query {query.name} failed: {str(failure).splitlines()[0]}"
        raise PipelineError(msg)
    if not until_idle:
        log.info("query %s stopped", query.name)


@contextlib.contextmanager
def _stop_on_signal(query: StreamingQuery) -> Iterator[None]:
    """Turn SIGTERM into a graceful query.stop() while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %d received: stopping %s after the current micro-batch", signum, query.name)
        threading.Thread(target=query.stop, daemon=True).start()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
