"""Measurements of the e2e benchmark read from the tables themselves: lost/duplicated events, lag, latency.

Latency per event: Kafka's record timestamp (CreateTime, set by the producer at send, kept in bronze and
silver as `kafka_timestamp`) against the time the Delta version that first holds the row became visible
(its `_delta_log` JSON file's modification time). Gold: the first gold micro-batch planned (offsets file
written) after that
silver commit must contain the row; the event is reflected in gold when that batch is committed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bigbilbao.tables import read
from bigbilbao.tables.ledger import feed_ledger

PERCENTILES = (50, 95, 99)


@dataclass
class DeltaLog:
    """Commits of one Delta table read incrementally from its JSON log: version -> (visible ms, added files, rows)."""

    path: Path
    commits: dict[int, tuple[int, list[str], int]] = field(default_factory=dict)

    def refresh(self) -> DeltaLog:
        """Read the commits not seen yet (a commit file is written atomically, so a listed one is complete)."""
        log = self.path / "_delta_log"
        if not log.is_dir():
            return self
        for entry in log.glob("*.json"):
            version = int(entry.stem)
            if version in self.commits:
                continue
            stamp, files, rows = int(entry.stat().st_mtime * 1000), [], 0
            for line in entry.read_text().splitlines():
                action = json.loads(line)
                if "add" in action and action["add"].get("dataChange", True):  # compaction re-adds old rows
                    files.append(action["add"]["path"])
                    rows += json.loads(action["add"].get("stats") or "{}").get("numRecords", 0)
            self.commits[version] = (stamp, files, rows)
        return self

    @property
    def rows(self) -> int:
        """Rows appended so far (these tables are append-only; compaction commits add no new rows)."""
        return sum(rows for _, _, rows in self.commits.values())


def books(lake: Path, feed: str, offsets: dict[int, int]) -> dict:
    """Kafka's records (every offset below the end offsets) against bronze rows and silver rows, exactly once each."""
    expected = sum(offsets.values())
    result = {"kafka_records": expected}
    for layer in ("bronze", "silver"):
        table = read.read_table(lake, layer, feed, ["partition", "offset"])
        part = table["partition"].cast("int64")
        key = pc.add(pc.multiply(part, 1 << 40), table["offset"])
        ends = pc.index_in(table["partition"].cast(pa.int64()), value_set=pa.array(list(offsets), pa.int64()))
        end = pc.take(pa.array(list(offsets.values()), pa.int64()), ends)
        inside = pc.filter(key, pc.less(table["offset"], end))
        distinct = pc.count_distinct(inside).as_py() if len(inside) else 0
        result[layer] = {"rows": table.num_rows, "lost": expected - distinct,
                         "duplicated": table.num_rows - pc.count_distinct(key).as_py() if table.num_rows else 0,
                         "outside_kafka": table.num_rows - len(inside)}
    keys = read.read_table(lake, "silver", feed, ["entity_id", "event_time"])
    unique_keys = keys.group_by(["entity_id", "event_time"]).aggregate([]).num_rows
    ledger = feed_ledger(lake, feed)
    result["silver_duplicate_keys"] = keys.num_rows - unique_keys
    result["ledger"] = {"bronze": ledger.bronze, "silver": ledger.silver, "quarantined": ledger.quarantined,
                        "duplicates": ledger.duplicates, "balanced": ledger.balanced}
    result["lost"] = max(result["bronze"]["lost"], result["silver"]["lost"]) + (0 if ledger.balanced else 1)
    result["duplicated"] = (result["bronze"]["duplicated"] + result["silver"]["duplicated"]
                            + result["silver"]["outside_kafka"] + result["silver_duplicate_keys"])
    return result


def gold_batches(checkpoint: Path) -> list[tuple[float, float]]:
    """(planned, committed) file times of every finished micro-batch of a streaming checkpoint, in order."""
    batches = []
    for commit in (checkpoint / "commits").glob("[0-9]*"):
        planned = checkpoint / "offsets" / commit.name
        if planned.is_file():
            batches.append((planned.stat().st_mtime, commit.stat().st_mtime))
    return sorted(batches)


def latencies(table: DeltaLog, window_ms: tuple[int, int], expected: int,
              gold: list[tuple[float, float]] | None = None, same_round: bool = False) -> dict:
    """Per event produced in `window_ms` (`expected` of them): seconds to its first commit in `table`, and to gold.

    Gold holds a silver commit once a gold micro-batch planned after it is committed; with `same_round` (the fused
    round writes silver and gold in one micro-batch) once the first micro-batch committed after it is.

    Events not visible yet count as infinitely late, so a percentile they reach is reported as null (censored).
    """
    visible, reflected = [], []
    for stamp, files, _ in table.refresh().commits.values():
        for name in files:
            sent = pq.read_table(table.path / name, columns=["kafka_timestamp"])["kafka_timestamp"]
            micros = sent.cast(pa.timestamp("us")).cast(pa.int64()).to_numpy(zero_copy_only=False)
            micros = micros[(micros >= window_ms[0] * 1000) & (micros <= window_ms[1] * 1000)]
            if not micros.size:
                continue
            visible.append(stamp / 1e3 - micros / 1e6)
            if gold is not None:
                done = next((committed for planned, committed in gold
                             if (committed if same_round else planned) >= stamp / 1e3), np.inf)
                reflected.append(done - micros / 1e6)
    result = {"to_table": summary(visible, expected)}
    if gold is not None:
        result["to_gold"] = summary(reflected, expected)
    return result


def summary(parts: list[np.ndarray], expected: int) -> dict:
    """p50/p95/p99/max in seconds over `expected` events; those without a value are infinitely late (null)."""
    values = np.concatenate(parts) if parts else np.zeros(0)
    missing = max(0, expected - int(np.isfinite(values).sum()))
    values = np.concatenate([values[np.isfinite(values)], np.full(missing, np.inf)])
    if not values.size:
        return {"events": 0, "not_visible": 0}
    with np.errstate(invalid="ignore"):  # a cut between a finite value and inf is nan: also not reached
        cuts = np.percentile(values, PERCENTILES)
    finite = values[np.isfinite(values)]
    return {"events": int(values.size), "not_visible": missing,
            "max": round(float(finite.max()), 3) if finite.size else None,
            **{f"p{p}": round(float(v), 3) if np.isfinite(v) else None for p, v in zip(PERCENTILES, cuts, strict=True)}}
