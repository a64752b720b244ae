"""Choosing and moving between topologies: settings, the staged ingest's last offsets, a replay's table version."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from deltalake.transaction import CommitProperties, Transaction

from bigbilbao.config.settings import load_settings, with_overrides
from bigbilbao.errors import PipelineError, SettingsError
from bigbilbao.stages import fused, sinks


def test_the_round_is_the_default_and_a_typo_is_named() -> None:
    settings = load_settings(environ={})
    assert settings.streaming.topology == "round"
    assert settings.streaming.interval("round") == "2 seconds"
    with pytest.raises(SettingsError, match=r"'streaming\.topology' must be one of \['round', 'staged'\]"):
        load_settings(environ={"BIGBILBAO__STREAMING__TOPOLOGY": "fused"})
    assert settings.streaming.round_parallel_feeds == 0
    with pytest.raises(SettingsError, match=r"'streaming\.round_parallel_feeds' must be 0"):
        load_settings(environ={"BIGBILBAO__STREAMING__ROUND_PARALLEL_FEEDS": "-1"})


def offsets_log(checkpoint: Path, batch: int, offsets: dict, committed: bool) -> None:
    """One entry of a Kafka query's offset log (as Spark writes it) and, if committed, of its commit log."""
    (checkpoint / "offsets").mkdir(parents=True, exist_ok=True)
    (checkpoint / "commits").mkdir(parents=True, exist_ok=True)
    metadata = {"batchWatermarkMs": 0, "batchTimestampMs": 1, "conf": {}}
    (checkpoint / "offsets" / str(batch)).write_text(f"v1\n{json.dumps(metadata)}\n{json.dumps(offsets)}")
    if committed:
        (checkpoint / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}')


def test_the_round_starts_where_the_staged_ingest_committed_last(tmp_path: Path) -> None:
    settings = with_overrides(load_settings(environ={}), lakehouse={"path": str(tmp_path)})
    partitions = {"bb.traffic_flow": [0, 1], "bb.noise": [0]}
    assert fused.staged_offsets(settings, partitions) is None, "no staged ingest: the setting's offsets apply"
    bronze = settings.checkpoint_path / "bronze"
    offsets_log(bronze, 0, {"bb.traffic_flow": {"0": 10, "1": 4}}, committed=True)
    offsets_log(bronze, 1, {"bb.traffic_flow": {"0": 25, "1": 9}}, committed=True)
    offsets_log(bronze, 2, {"bb.traffic_flow": {"0": 40, "1": 9}}, committed=False)  # planned, never committed
    started = json.loads(fused.staged_offsets(settings, partitions) or "")
    assert started == {"bb.traffic_flow": {"0": 25, "1": 9}, "bb.noise": {"0": -2}}


def test_staged_runs_are_refused_once_the_round_writes_the_lakehouse(tmp_path: Path) -> None:
    settings = with_overrides(load_settings(environ={}), lakehouse={"path": str(tmp_path)})
    fused.refuse_mixed_topologies(settings, "silver")  # nothing written yet: any topology may start
    fused.checkpoint_path(settings).mkdir(parents=True)
    fused.refuse_mixed_topologies(settings, "all")
    for stage in ("ingest", "silver", "gold"):
        with pytest.raises(PipelineError, match=f"'run {stage}' with staged queries would process its data"):
            fused.refuse_mixed_topologies(settings, stage)
    with pytest.raises(PipelineError, match="use 'run all' with streaming.topology: round"):
        fused.refuse_mixed_topologies(with_overrides(settings, streaming={"topology": "staged"}), "all")


def test_a_replayed_batch_reads_the_table_as_it_was_before_its_own_commit(tmp_path: Path) -> None:
    path = tmp_path / "silver"
    rows = pa.table({"n": [1, 2]})
    write_deltalake(str(path), rows)  # version 0, no transaction
    for batch in (0, 1, 2):  # versions 1, 2, 3
        write_deltalake(str(path), rows, mode="append",
                        commit_properties=CommitProperties(app_transactions=[Transaction("silver-x-q", batch)]))
    write_deltalake(str(path), rows, mode="append",  # another writer's commit: version 4
                    commit_properties=CommitProperties(app_transactions=[Transaction("silver-y-q", 7)]))
    assert sinks.version_before(path, ("silver-x-q", 2)) == 2
    assert sinks.version_before(path, ("silver-y-q", 7)) == 3
    assert sinks.version_before(path, ("silver-x-q", 3)) is None, "a batch not written yet judges the latest table"
    assert sinks.version_before(path, ("silver-z-q", 0)) is None
    assert sinks.version_before(tmp_path / "missing", ("silver-x-q", 0)) is None
