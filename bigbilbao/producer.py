"""Publishing events to Kafka with kafka-python: acknowledged sends and progress on long runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bigbilbao import kafka_clients
from bigbilbao.errors import BrokerError
from bigbilbao.settings import Settings

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


def publish(settings: Settings, bootstrap: str, messages: Iterable[tuple[str, bytes]],
            rate: float | None = None, progress_every_s: float = 2.0) -> PublishReport:
    """Send (feed, payload) pairs to each feed's topic, optionally paced at `rate` messages/s."""
    topics: Mapping[str, str] = {f.name: f.topic_name for f in settings.feeds}
    client = kafka_clients.producer(settings, bootstrap)
    report = PublishReport()
    start = last = time.monotonic()
    futures = []
    try:
        for sent, (feed, payload) in enumerate(messages, start=1):
            if feed not in topics:
                msg = f"Feed '{feed}' is not configured; add it under 'feeds' in the settings."
                raise BrokerError(msg)
            futures.append(client.send(topics[feed], value=payload))
            if len(futures) >= CHECK_EVERY:
                _confirm(client, futures)
            report.per_feed[feed] = report.per_feed.get(feed, 0) + 1
            if rate:
                _pace(start, sent, rate)
            now = time.monotonic()
            if now - last >= progress_every_s:
                log.info("produced %d messages (%.0f/s)", sent, sent / (now - start))
                last = now
        _confirm(client, futures)
    finally:
        client.close()
    report.seconds = time.monotonic() - start
    log.info("produced %d messages in %.1f s", report.total, report.seconds)
    return report


def _confirm(client: object, futures: list) -> None:
    """Flush and raise if Kafka refused any message sent so far; keeps memory bounded on long runs."""
    client.flush()  # type: ignore[attr-defined]
    for future in futures:
        future.get(timeout=60)
    futures.clear()


def _pace(start: float, sent: int, rate: float) -> None:
    """Sleep just enough to keep the average send rate at `rate`."""
    ahead = sent / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
