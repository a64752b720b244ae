"""What `bigbilbao status` reports: the pipeline's queries, each feed's lag and freshness, and the alert rule.

Plain frozen dataclasses and pure functions, shared by the collector, the text/JSON rendering and the
Prometheus endpoint. Times are aware UTC datetimes; ages are seconds before `Status.now`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bigbilbao.config.monitor import MonitorSettings

LAYERS = ("bronze", "silver", "gold")


@dataclass(frozen=True)
class QueryStatus:
    """One streaming query's last committed micro-batch, from its checkpoint."""

    name: str
    last_batch: int | None = None
    started_at: datetime | None = None  # when Spark planned the batch
    finished_at: datetime | None = None  # when its commit was written
    committed_offsets: Mapping[str, Mapping[int, int]] = field(default_factory=dict)  # topic -> partition -> next

    @property
    def duration_s(self) -> float | None:
        """Wall seconds of the last batch, planning to commit."""
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, (self.finished_at - self.started_at).total_seconds())


@dataclass(frozen=True)
class FeedStatus:
    """One feed: Kafka offsets against what the pipeline committed, its write rate and its tables' freshness."""

    feed: str
    topic: str
    kafka_end: int | None = None  # messages the topic holds past its start, all partitions (None: Kafka unknown)
    lag: int | None = None  # of those, not yet in bronze
    rows_last_minute: int = 0  # rows bronze took in the last minute
    written_at: Mapping[str, datetime | None] = field(default_factory=dict)  # layer -> newest write

    @property
    def events_per_s(self) -> float:
        """Bronze rows per second over the last minute."""
        return self.rows_last_minute / 60.0


@dataclass(frozen=True)
class Status:
    """Everything the operator's view shows, at one moment."""

    now: datetime
    kafka: str  # where Kafka was asked, or why it could not be
    queries: tuple[QueryStatus, ...]
    feeds: tuple[FeedStatus, ...]
    scorecard_at: datetime | None
    boundaries: Mapping[str, str]
    breaches: tuple[str, ...] = ()

    def age_s(self, moment: datetime | None) -> float | None:
        """Seconds from `moment` to now (None stays None)."""
        return None if moment is None else max(0.0, (self.now - moment).total_seconds())


def breaches(feeds: tuple[FeedStatus, ...], scorecard_age_s: float | None, now: datetime,
             limits: MonitorSettings) -> tuple[str, ...]:
    """One sentence per limit a feed (or the scorecard) breaks; empty when all is well."""
    unknown = [feed.feed for feed in feeds if feed.lag is None]
    found = [f"Kafka could not be asked, so the lag of {', '.join(unknown)} is unknown"] if unknown else []
    for feed in feeds:
        if feed.lag is None:
            continue
        if limits.max_lag_messages is not None and feed.lag > limits.max_lag_messages:
            found.append(f"{feed.feed}: lag {feed.lag:,} messages > {limits.max_lag_messages:,}")
        if feed.lag == 0:
            continue
        for layer in LAYERS:
            limit = getattr(limits, f"max_{layer}_age_s")
            written = feed.written_at.get(layer)
            if limit is None:
                continue
            if written is None:
                found.append(f"{feed.feed}: {feed.lag:,} messages wait and {layer} has no row of this feed yet")
            elif (age := (now - written).total_seconds()) > limit:
                found.append(f"{feed.feed}: {feed.lag:,} messages wait and {layer} was last written {age:,.0f} s "
                             f"ago (> {limit:g} s)")
    if limits.max_scorecard_age_s is not None:
        if scorecard_age_s is None:
            found.append("the scorecard has never been published")
        elif scorecard_age_s > limits.max_scorecard_age_s:
            found.append(f"the scorecard was published {scorecard_age_s:,.0f} s ago "
                         f"(> {limits.max_scorecard_age_s:g} s)")
    return tuple(found)


def as_json(status: Status) -> dict[str, Any]:
    """The status as JSON-ready data: times in ISO 8601 UTC, ages in seconds."""
    def when(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat()

    return {
        "now": when(status.now), "kafka": status.kafka, "healthy": not status.breaches,
        "breaches": list(status.breaches),
        "queries": [{"name": q.name, "last_batch": q.last_batch, "started_at": when(q.started_at),
                     "finished_at": when(q.finished_at), "duration_s": q.duration_s,
                     "age_s": status.age_s(q.finished_at)} for q in status.queries],
        "feeds": [{"feed": f.feed, "topic": f.topic, "kafka_messages": f.kafka_end, "lag": f.lag,
                   "events_per_s_last_minute": round(f.events_per_s, 3),
                   "written_at": {layer: when(f.written_at.get(layer)) for layer in LAYERS},
                   "age_s": {layer: status.age_s(f.written_at.get(layer)) for layer in LAYERS}}
                  for f in status.feeds],
        "scorecard": {"published_at": when(status.scorecard_at), "age_s": status.age_s(status.scorecard_at)},
        "boundaries": dict(status.boundaries),
    }
