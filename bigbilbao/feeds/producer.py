"""Publishing events to Kafka with kafka-python: acknowledged sends, pacing, and progress on long runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bigbilbao.config.settings import Settings
from bigbilbao.errors import BrokerError
from bigbilbao.infra import kafka_clients

log = logging.getLogger(__name__)

CHECK_EVERY = 50_000


@dataclass
class PublishReport:
    """How many messages were acknowledged by Kafka, per feed."""

    per_feed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        """All acknowledged messages."""
        return sum(self.per_feed.values())


class Publisher:
    """Sends (feed, payload) to each feed's topic; `close()` waits for every acknowledgement."""

    def __init__(self, settings: Settings, bootstrap: str, progress_every_s: float = 2.0) -> None:
        self.topics = {f.name: f.topic_name for f in settings.feeds}
        self.client = kafka_clients.producer(settings, bootstrap)
        self.report = PublishReport()
        self.progress_every_s = progress_every_s
        self.started = self.last_progress = time.monotonic()
        self.pending: list[Any] = []

    def send(self, feed: str, payload: bytes) -> None:
        """Queue one message; raises if the feed is not configured."""
        if feed not in self.topics:
            msg = f"Feed '{feed}' is not configured; add it under 'feeds' in the settings."
            raise BrokerError(msg)
        self.pending.append(self.client.send(self.topics[feed], value=payload))
        self.report.per_feed[feed] = self.report.per_feed.get(feed, 0) + 1
        if len(self.pending) >= CHECK_EVERY:
            self._confirm()
        now = time.monotonic()
        if now - self.last_progress >= self.progress_every_s:
            sent = self.report.total
            log.info("produced %d messages (%.0f/s)", sent, sent / (now - self.started))
            self.last_progress = now

    def close(self) -> PublishReport:
        """Wait for Kafka to acknowledge everything sent, then release the client."""
        try:
            self._confirm()
        finally:
            self.client.close()
        self.report.seconds = time.monotonic() - self.started
        log.info("produced %d messages in %.1f s", self.report.total, self.report.seconds)
        return self.report

    def _confirm(self) -> None:
        """Flush and raise if Kafka refused any message sent so far; keeps memory bounded."""
        self.client.flush()
        for future in self.pending:
            future.get(timeout=60)
        self.pending.clear()


def publish(settings: Settings, bootstrap: str, messages: Iterable[tuple[str, bytes]],
            rate: float | None = None) -> PublishReport:
    """Send (feed, payload) pairs, optionally paced at `rate` messages/s; returns the acknowledged counts."""
    publisher = Publisher(settings, bootstrap)
    try:
        for sent, (feed, payload) in enumerate(messages, start=1):
            publisher.send(feed, payload)
            if rate:
                _pace(publisher.started, sent, rate)
    except BaseException:
        publisher.client.close()
        raise
    return publisher.close()


def _pace(start: float, sent: int, rate: float) -> None:
    """Sleep just enough to keep the average send rate at `rate`."""
    ahead = sent / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
