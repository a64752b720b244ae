"""The operator's figures as Prometheus metrics, collected when scraped (prometheus_client's custom collector).

`run all` serves them on `monitor.metrics_port`. A scrape reads the checkpoints and tables and asks Kafka,
so a collection is cached for `min_interval_s` to bound the cost of frequent scrapers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from bigbilbao.errors import PipelineError
from bigbilbao.monitor.model import LAYERS, Status

log = logging.getLogger(__name__)


class StatusCollector(Collector):
    """Turns a `Status` (from `snapshot()`) into gauges; a failing snapshot yields `bigbilbao_up 0` only."""

    def __init__(self, snapshot: Callable[[], Status], min_interval_s: float = 5.0) -> None:
        self.snapshot = snapshot
        self.min_interval_s = min_interval_s
        self._cached: tuple[float, Status] | None = None
        self._lock = threading.Lock()

    def _status(self) -> Status | None:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] >= self.min_interval_s:
                try:
                    self._cached = (time.monotonic(), self.snapshot())
                except Exception as exc:  # noqa: BLE001 - a scrape reports failure as a metric, never a trace
                    log.warning("metrics: collecting the status failed: %s", exc)
                    return None
            return self._cached[1]

    def collect(self) -> Iterator[Any]:
        """One family per figure, labelled by feed, layer or query."""
        status = self._status()
        up = GaugeMetricFamily("bigbilbao_up", "1 when the status could be collected")
        up.add_metric([], 0 if status is None else 1)
        yield up
        if status is None:
            return
        yield from _feed_metrics(status)
        yield from _query_metrics(status)
        scorecard = GaugeMetricFamily("bigbilbao_scorecard_age_seconds", "seconds since the scorecard was published")
        if status.scorecard_at is not None:
            scorecard.add_metric([], status.age_s(status.scorecard_at) or 0.0)
        yield scorecard
        boundary = GaugeMetricFamily("bigbilbao_boundary_info", "boundary version in use", labels=["layer", "version"])
        for layer, version in sorted(status.boundaries.items()):
            boundary.add_metric([layer, version], 1)
        yield boundary
        healthy = GaugeMetricFamily("bigbilbao_limits_breached", "limits of the settings' monitor section broken")
        healthy.add_metric([], len(status.breaches))
        yield healthy


def _feed_metrics(status: Status) -> Iterator[GaugeMetricFamily]:
    lag = GaugeMetricFamily("bigbilbao_kafka_lag_messages", "Kafka messages not yet in bronze", labels=["feed"])
    rate = GaugeMetricFamily("bigbilbao_events_per_second", "bronze rows per second over the last minute",
                             labels=["feed"])
    age = GaugeMetricFamily("bigbilbao_table_age_seconds", "seconds since a feed's newest write to a layer",
                            labels=["feed", "layer"])
    for feed in status.feeds:
        if feed.lag is not None:
            lag.add_metric([feed.feed], feed.lag)
        rate.add_metric([feed.feed], feed.events_per_s)
        for layer in LAYERS:
            seconds = status.age_s(feed.written_at.get(layer))
            if seconds is not None:
                age.add_metric([feed.feed, layer], seconds)
    return iter((lag, rate, age))


def _query_metrics(status: Status) -> Iterator[GaugeMetricFamily]:
    batch = GaugeMetricFamily("bigbilbao_last_batch", "id of the last committed micro-batch", labels=["query"])
    took = GaugeMetricFamily("bigbilbao_last_batch_duration_seconds", "wall seconds of the last micro-batch",
                             labels=["query"])
    ago = GaugeMetricFamily("bigbilbao_last_batch_age_seconds", "seconds since the last micro-batch committed",
                            labels=["query"])
    for query in status.queries:
        if query.last_batch is None:
            continue
        batch.add_metric([query.name], query.last_batch)
        if query.duration_s is not None:
            took.add_metric([query.name], query.duration_s)
        ago.add_metric([query.name], status.age_s(query.finished_at) or 0.0)
    return iter((batch, took, ago))


def serve_metrics(snapshot: Callable[[], Status], port: int, host: str = "127.0.0.1") -> tuple[Callable[[], None], int]:
    """Serve the metrics over HTTP on host:port (0: a free port); returns (stop, bound port)."""
    registry = CollectorRegistry()
    registry.register(StatusCollector(snapshot))
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        msg = (f"Cannot serve metrics on {host}:{port} ({exc.strerror or exc}); choose another "
               "monitor.metrics_port or --metrics-port (0 picks a free one).")
        raise PipelineError(msg) from exc
    bound = server.server_address[1]

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop, int(bound)
