"""Gathers the operator's view from the lakehouse (delta-rs) and the checkpoints; Kafka's offsets are passed in.

Cheap enough to run every few seconds: only the newest commits of bronze, silver and the scorecard are read,
and gold's per-feed freshness is the newest entry of `gold/watermarks`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bigbilbao.config.settings import Settings
from bigbilbao.monitor import checkpoints
from bigbilbao.monitor.model import FeedStatus, Status, breaches
from bigbilbao.spatial import boundary_store
from bigbilbao.tables.read import METADATA_OPERATIONS, is_table, table_path

log = logging.getLogger(__name__)

RATE_WINDOW = timedelta(minutes=1)
HISTORY_LIMIT = 200  # newest commits read for the last minute's rate and the newest write
KafkaOffsets = Mapping[str, Mapping[int, tuple[int, int]]]  # topic -> partition -> (first offset, end offset)


def collect(settings: Settings, kafka: KafkaOffsets | None, kafka_note: str,
            now: datetime | None = None) -> Status:
    """The status of every enabled feed; `kafka` None means Kafka could not be asked (`kafka_note` says why)."""
    now = now or datetime.now(timezone.utc)
    lake = settings.lakehouse_path
    queries = checkpoints.read_queries(settings.checkpoint_path)
    reached = checkpoints.committed_offsets(queries)
    gold_at = _gold_watermarks(lake)
    feeds = []
    for feed in settings.enabled_feeds:
        bronze_at, rows = _writes(table_path(lake, "bronze", feed.name), now)
        silver_at, _ = _writes(table_path(lake, "silver", feed.name), now)
        end, lag = _lag(kafka, reached, feed.topic_name)
        feeds.append(FeedStatus(feed.name, feed.topic_name, end, lag, rows,
                                {"bronze": bronze_at, "silver": silver_at, "gold": gold_at.get(feed.name)}))
    scorecard_at, _ = _writes(table_path(lake, "gold", "scorecard"), now)
    scorecard_age = None if scorecard_at is None else (now - scorecard_at).total_seconds()
    found = breaches(tuple(feeds), scorecard_age, now, settings.monitor)
    return Status(now, kafka_note, queries, tuple(feeds), scorecard_at, _boundaries(lake), found)


def _lag(kafka: KafkaOffsets | None, reached: Mapping[str, Mapping[int, int]],
         topic: str) -> tuple[int | None, int | None]:
    """(messages the topic holds, of which not yet read) over all partitions; (None, None) without Kafka."""
    if kafka is None or topic not in kafka:
        return None, None
    held = waiting = 0
    for partition, (first, end) in kafka[topic].items():
        held += end - first
        waiting += end - max(first, reached.get(topic, {}).get(partition, first))
    return held, max(0, waiting)


def _writes(path: Path, now: datetime) -> tuple[datetime | None, int]:
    """(time of the newest data write, rows written in the last minute) of one table; (None, 0) if none yet."""
    if not is_table(path):
        return None, 0
    from deltalake import DeltaTable

    history = DeltaTable(str(path)).history(HISTORY_LIMIT)
    data = [entry for entry in history if entry.get("operation") not in METADATA_OPERATIONS]
    if not data:
        return None, 0
    newest = max(_commit_time(entry) for entry in data)
    rows = sum(_rows_added(entry) for entry in data
               if entry.get("operation") in ("WRITE", "STREAMING UPDATE") and now - _commit_time(entry) <= RATE_WINDOW)
    return newest, rows


def _rows_added(entry: Mapping[str, Any]) -> int:
    """Rows a write added: Spark says numOutputRows, delta-rs num_added_rows."""
    metrics = entry.get("operationMetrics") or {}
    return int(metrics.get("numOutputRows") or metrics.get("num_added_rows") or 0)


def _commit_time(entry: Mapping[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(entry["timestamp"]) / 1000, tz=timezone.utc)


def _gold_watermarks(lake: Path) -> dict[str, datetime]:
    """Feed -> when gold last recorded a batch of it (`gold/watermarks.recorded_at`)."""
    path = table_path(lake, "gold", "watermarks")
    if not is_table(path):
        return {}
    from deltalake import DeltaTable

    table = DeltaTable(str(path)).to_pyarrow_table(columns=["feed", "recorded_at"])
    if table.num_rows == 0:
        return {}
    newest = table.group_by("feed").aggregate([("recorded_at", "max")])
    return {feed: _utc(moment) for feed, moment in zip(newest["feed"].to_pylist(),
                                                       newest["recorded_at_max"].to_pylist(), strict=True)
            if feed is not None and moment is not None}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _boundaries(lake: Path) -> dict[str, str]:
    """Layer -> the boundary version in use; empty before the first run seeds or imports one."""
    if boundary_store.table_version(lake) is None:
        return {}
    return boundary_store.current_versions(lake)

