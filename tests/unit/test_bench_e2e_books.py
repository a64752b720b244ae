"""The e2e benchmark's books: lost and duplicated events are counted from real Delta tables (no Spark needed)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from benchmarks.e2e_books import books, summary

FEED = "traffic_flow"
START = datetime(2026, 11, 24, tzinfo=timezone.utc)


def _write(lake: Path, bronze: list[tuple[int, int]], silver: list[tuple[int, int, str]], duplicates: int = 0) -> None:
    """Bronze/silver rows as (partition, offset[, entity]) plus empty quarantine and a duplicate metric."""
    write_deltalake(str(lake / "bronze" / FEED), pa.table({
        "partition": pa.array([p for p, _ in bronze], pa.int32()), "offset": pa.array([o for _, o in bronze])}))
    write_deltalake(str(lake / "silver" / FEED), pa.table({
        "partition": pa.array([p for p, _, _ in silver], pa.int32()), "offset": pa.array([o for _, o, _ in silver]),
        "entity_id": [e for _, _, e in silver],
        "event_time": [START + timedelta(seconds=o) for _, o, _ in silver]}))
    write_deltalake(str(lake / "quality" / "quarantine"), pa.table({"feed": pa.array([], pa.string())}))
    write_deltalake(str(lake / "quality" / "dq_metrics"), pa.table({
        "feed": [FEED], "rule": ["duplicate"], "violations": pa.array([duplicates], pa.int64())}))


def test_every_event_once_balances(tmp_path: Path) -> None:
    rows = [(p, o) for p in (0, 1) for o in range(3)]
    _write(tmp_path, rows, [(p, o, f"s{p}") for p, o in rows])
    result = books(tmp_path, FEED, {0: 3, 1: 3})
    assert (result["lost"], result["duplicated"], result["ledger"]["balanced"]) == (0, 0, True)


def test_a_missing_and_a_repeated_event_are_counted(tmp_path: Path) -> None:
    bronze = [(0, 0), (0, 1), (0, 1), (1, 0)]  # offset 0/2 and 1/1 never landed, 0/1 landed twice
    _write(tmp_path, bronze, [(0, 0, "a"), (0, 1, "b"), (1, 0, "c")], duplicates=1)
    result = books(tmp_path, FEED, {0: 3, 1: 2})
    assert result["bronze"] == {"rows": 4, "lost": 2, "duplicated": 1, "outside_kafka": 0}
    assert result["silver"]["lost"] == 2
    assert result["lost"] == 2
    assert result["duplicated"] == 1


def test_silver_rows_repeating_a_key_are_duplicates(tmp_path: Path) -> None:
    _write(tmp_path, [(0, 0), (0, 1)], [(0, 0, "a"), (0, 0, "a")])
    result = books(tmp_path, FEED, {0: 2})
    assert result["silver"]["duplicated"] == 1
    assert result["silver_duplicate_keys"] == 1
    assert result["silver"]["lost"] == 1
    assert result["duplicated"] == 2


def test_latency_percentiles_count_invisible_events_as_late() -> None:
    seen = summary([np.array([0.5, 1.0, 1.5])], expected=4)
    assert seen["not_visible"] == 1
    assert seen["p50"] == pytest.approx(1.25)
    assert seen["p99"] is None
