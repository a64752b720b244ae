"""A streaming query's progress read from its checkpoint folder, without Spark.

Spark writes `offsets/<batch>` when it plans a micro-batch (a version line, the batch's metadata with
`batchTimestampMs`, then one JSON line per source: for Kafka, topic -> partition -> the next offset to read)
and `commits/<batch>` once the batch is done. The newest batch with both is the last one that counts.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

from bigbilbao.monitor.model import QueryStatus

log = logging.getLogger(__name__)


def query_folders(root: Path) -> list[Path]:
    """Every checkpoint folder under `root` (the round's, or the staged queries' nested per feed)."""
    if not root.is_dir():
        return []
    return sorted({offsets.parent for depth in ("*/offsets", "*/*/offsets") for offsets in root.glob(depth)
                   if offsets.is_dir()})


def _batches(folder: Path) -> list[int]:
    return [int(path.name) for path in folder.glob("[0-9]*") if path.name.isdigit()] if folder.is_dir() else []


def read_query(root: Path, folder: Path) -> QueryStatus:
    """The last committed micro-batch of the query checkpointed in `folder`."""
    name = folder.relative_to(root).as_posix()
    committed = sorted(set(_batches(folder / "commits")) & set(_batches(folder / "offsets")))
    if not committed:
        return QueryStatus(name)
    batch = committed[-1]
    lines = (folder / "offsets" / str(batch)).read_text(encoding="utf-8").splitlines()
    started = finished = None
    offsets: dict[str, dict[int, int]] = {}
    try:
        metadata = json.loads(lines[1])
        started = datetime.fromtimestamp(int(metadata["batchTimestampMs"]) / 1000, tz=timezone.utc)
        for line in lines[2:]:
            source = json.loads(line) if line.strip().startswith("{") else None
            if isinstance(source, dict) and all(isinstance(v, dict) for v in source.values()):
                for topic, partitions in source.items():
                    offsets[topic] = {int(p): int(o) for p, o in partitions.items()}
    except (IndexError, KeyError, ValueError) as exc:  # a format Spark may change: say so, keep the rest
        log.warning("checkpoint %s batch %d: offsets not understood (%s)", folder, batch, exc)
    commit = folder / "commits" / str(batch)
    finished = datetime.fromtimestamp(commit.stat().st_mtime, tz=timezone.utc)
    return QueryStatus(name, batch, started, finished, offsets)


def read_queries(root: Path) -> tuple[QueryStatus, ...]:
    """Every query checkpointed under `root`, by name."""
    return tuple(read_query(root, folder) for folder in query_folders(root))


def committed_offsets(queries: tuple[QueryStatus, ...]) -> dict[str, dict[int, int]]:
    """Topic -> partition -> next offset the pipeline will read: the furthest any Kafka-reading query got."""
    reached: dict[str, dict[int, int]] = {}
    for query in queries:
        for topic, partitions in query.committed_offsets.items():
            mine = reached.setdefault(topic, {})
            for partition, offset in partitions.items():
                mine[partition] = max(offset, mine.get(partition, offset))
    return reached
