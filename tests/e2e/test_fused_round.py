"""The fused round: one query writes bronze, silver and gold per micro-batch, the same lakehouse the staged
queries write, exactly once across replays and a move from the staged topology."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bigbilbao.cli import status as status_cli
from bigbilbao.config.monitor import MonitorSettings
from bigbilbao.config.settings import Settings, with_overrides
from bigbilbao.errors import PipelineError
from bigbilbao.feeds import simulator
from bigbilbao.monitor.model import LAYERS
from bigbilbao.scorecard.catalogue import load_catalogue
from bigbilbao.stages import fused, gold, pipeline
from bigbilbao.tables import ledger, read
from tests.e2e.test_kafka_roundtrip import end_offsets, produce
from tests.faults import bronze_keys, differing_tables, rows

pytestmark = pytest.mark.integration
FEEDS = ("traffic_flow", "air_quality")
KAFKA_SCHEMA = "topic string, partition int, offset long, timestamp timestamp, value binary"


def events(count: int, seed: int) -> list[tuple[str, bytes]]:
    """Simulated events of the last hours, dirty ones (bad JSON, duplicates, out of range) included."""
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)
    return list(simulator.generate(list(FEEDS), count=count, seed=seed, dirty_fraction=0.15, start=start))


def assert_exactly_once(settings: Settings) -> None:
    """Every Kafka offset once in bronze, and every feed's books balance."""
    offsets = end_offsets(settings)
    for feed in settings.enabled_feeds:
        expected = Counter((t, p, o) for (t, p), end in offsets.items() if t == feed.topic_name for o in range(end))
        assert bronze_keys(settings.lakehouse_path, feed.name) == expected, feed.name
        books = ledger.feed_ledger(settings.lakehouse_path, feed.name)
        assert books.balanced and books.bronze == sum(expected.values()), books


def test_run_all_is_one_query_that_writes_what_the_staged_queries_write(make_settings, spark,
                                                                         tmp_path: Path) -> None:
    settings = make_settings(feeds=FEEDS)
    produce(settings, events(240, seed=11))
    pipeline.run(settings, "all", until_idle=True, spark=spark)
    assert_exactly_once(settings)
    checkpoints = {p.name for p in settings.checkpoint_path.iterdir()}
    assert checkpoints == {"round"}, "run all started a query other than the round"
    assert sum(rows(settings.lakehouse_path, "gold", "hourly").values()) > 0

    staged = with_overrides(settings, lakehouse={"path": str(tmp_path / "staged")},
                            streaming={"topology": "staged"})
    pipeline.run(staged, "all", until_idle=True, spark=spark)
    assert {p.name for p in staged.checkpoint_path.iterdir()} == {"bronze", "silver", "gold"}
    assert differing_tables(settings, staged) == {}
    assert_status_sees_the_round(settings)


def assert_status_sees_the_round(settings: Settings) -> None:
    """`bigbilbao status` on what the round wrote: real Kafka offsets against its checkpoint, every layer fresh."""
    status = status_cli.snapshot(settings)
    assert [(f.feed, f.lag) for f in status.feeds] == [(feed, 0) for feed in FEEDS]
    assert sum(f.kafka_end or 0 for f in status.feeds) == sum(end_offsets(settings).values())
    assert all(status.age_s(f.written_at[layer]) < 900 for f in status.feeds for layer in LAYERS), status.feeds
    assert [q.name for q in status.queries] == ["round"] and status.queries[0].duration_s is not None
    assert status.boundaries and status.breaches == ()
    produce(settings, [(feed, body) for feed, body in events(40, seed=12) if feed == "traffic_flow"][:7])
    waiting = status_cli.snapshot(dataclasses.replace(settings, monitor=MonitorSettings(max_lag_messages=5)))
    assert [(f.feed, f.lag) for f in waiting.feeds] == [("traffic_flow", 7), ("air_quality", 0)]
    assert waiting.breaches == ("traffic_flow: lag 7 messages > 5",)


def round_writer(spark, settings: Settings, query_id: str) -> fused.RoundWriter:
    """The round's foreachBatch sink as start_round builds it, with a checkpoint that names the query."""
    checkpoint = fused.checkpoint_path(settings)
    checkpoint.mkdir(parents=True, exist_ok=True)
    (checkpoint / "metadata").write_text(json.dumps({"id": query_id}))
    contracts = pipeline.feed_contracts(settings)
    fused.ensure_tables(spark, settings, contracts)
    return fused.RoundWriter(settings, contracts, checkpoint, b"", load_catalogue(), parallel_feeds=2)


def kafka_batch(spark, settings: Settings, messages: list[tuple[str, bytes]]):
    """A Kafka source micro-batch of these messages: one partition per topic, offsets from 0."""
    topics = {f.name: f.topic_name for f in settings.enabled_feeds}
    seen: Counter = Counter()
    records = []
    for feed, payload in messages:
        records.append((topics[feed], 0, seen[feed], datetime.now(timezone.utc), payload))
        seen[feed] += 1
    return spark.createDataFrame(records, KAFKA_SCHEMA)


def test_a_round_replayed_after_a_crash_in_gold_writes_what_one_attempt_writes(make_settings, spark, tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(feeds=FEEDS)
    batch = kafka_batch(spark, settings, events(120, seed=5)).persist()
    once = with_overrides(settings, lakehouse={"path": str(tmp_path / "once")})
    round_writer(spark, once, "query-1")(batch, 0)

    crashed = with_overrides(settings, lakehouse={"path": str(tmp_path / "crashed")})
    writer = round_writer(spark, crashed, "query-1")
    real_write = gold.FeedWriter.write

    def crash_in_gold(self, spark_session, rows_df, batch_id):  # silver is committed, gold is not
        raise RuntimeError("killed between silver and gold")

    monkeypatch.setattr(gold.FeedWriter, "write", crash_in_gold)
    with pytest.raises(RuntimeError, match="killed between silver and gold"):
        writer(batch, 0)
    written = [feed for feed in FEEDS if sum(rows(crashed.lakehouse_path, "silver", feed).values())]
    assert written, "silver is written before gold, so the crash left silver rows gold has not seen"
    monkeypatch.setattr(gold.FeedWriter, "write", real_write)
    writer(batch, 0)  # the replay after the restart
    writer(batch, 0)  # and once more: nothing changes
    assert sum(rows(crashed.lakehouse_path, "gold", "hourly").values()) > 0
    assert differing_tables(once, crashed) == {}
    for feed in FEEDS:
        assert ledger.feed_ledger(crashed.lakehouse_path, feed) == ledger.feed_ledger(once.lakehouse_path, feed)
        assert ledger.feed_ledger(crashed.lakehouse_path, feed).balanced
    metrics = read.read_table(crashed.lakehouse_path, "quality", "dq_metrics").to_pylist()
    assert {r["batch_id"] for r in metrics} == {0} and len(metrics) == len(
        read.read_table(once.lakehouse_path, "quality", "dq_metrics"))


def test_a_staged_lakehouse_moves_to_the_round_once_and_then_refuses_staged_runs(make_settings, spark) -> None:
    settings = make_settings(feeds=FEEDS)
    produce(settings, events(120, seed=7))
    pipeline.run(settings, "ingest", until_idle=True, spark=spark)  # staged: bronze only so far
    produce(settings, events(120, seed=8))
    pipeline.run(settings, "all", until_idle=True, spark=spark)  # drains the staged queries, then the round
    produce(settings, events(60, seed=9))
    pipeline.run(settings, "all", until_idle=True, spark=spark)
    assert_exactly_once(settings)
    assert fused.checkpoint_path(settings).is_dir()
    with pytest.raises(PipelineError, match="written by the round topology"):
        pipeline.run(settings, "silver", until_idle=True, spark=spark)
    staged = with_overrides(settings, streaming={"topology": "staged"})
    with pytest.raises(PipelineError, match="would process its data a second time"):
        pipeline.run(staged, "all", until_idle=True, spark=spark)
