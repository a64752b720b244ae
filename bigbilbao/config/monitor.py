"""Settings of `bigbilbao status` and of `run all`'s Prometheus endpoint: the alert thresholds and the port."""

from __future__ import annotations

from dataclasses import dataclass

from bigbilbao.errors import SettingsError


@dataclass(frozen=True)
class MonitorSettings:
    """When `bigbilbao status` exits non-zero, and where `run all` serves metrics (None: nowhere).

    Lag is per feed, in Kafka messages not yet in bronze. The age limits apply to a feed only while Kafka holds
    messages of it that the pipeline has not read: a quiet feed is not a stale one. None switches a check off.
    """

    max_lag_messages: int | None = 50_000
    max_bronze_age_s: float | None = 120.0
    max_silver_age_s: float | None = 120.0
    max_gold_age_s: float | None = 300.0
    max_scorecard_age_s: float | None = None  # `run all` republishes every minute; set it to alert on a stop
    metrics_port: int | None = None  # `run all` serves Prometheus metrics on this port (0: a free port)
    metrics_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        """Negative limits or ports are typing mistakes, said at start-up rather than found at alert time."""
        limits = {"max_lag_messages": self.max_lag_messages, "max_bronze_age_s": self.max_bronze_age_s,
                  "max_silver_age_s": self.max_silver_age_s, "max_gold_age_s": self.max_gold_age_s,
                  "max_scorecard_age_s": self.max_scorecard_age_s}
        wrong = [key for key, value in limits.items() if value is not None and value < 0]
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            wrong.append("metrics_port")
        if wrong:
            msg = (f"Settings keys {', '.join(f'monitor.{key}' for key in wrong)} must be null or a number >= 0 "
                   "(a port is at most 65535).")
            raise SettingsError(msg)
