"""Real broker -> Spark's Kafka source -> bronze Delta -> read back without Spark; restarts are exactly-once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

import pyarrow as pa
import pytest

from bigbilbao.config.settings import Settings
from bigbilbao.feeds import producer
from bigbilbao.infra import kafka_clients
from bigbilbao.stages import ingest, pipeline
from bigbilbao.tables import read

pytestmark = pytest.mark.integration
MALFORMED = [b"{not json", b"\xc3\x28 invalid utf-8", b"[]", b'{"type": "NoId"}', b""]


def messages(settings: Settings, count: int, start: int = 0) -> list[tuple[str, bytes]]:
    """`count` messages per feed, every tenth one malformed, each with a unique id."""
    out = []
    for feed in settings.enabled_feeds:
        for i in range(start, start + count):
            if i % 10 == 9:
                out.append((feed.name, MALFORMED[(i // 10) % len(MALFORMED)]))
            else:
                event = {"id": f"{feed.name}-{i}", "type": "X", "dateObserved": "2026-01-27T15:00:00Z",
                         "location": {"type": "Point", "coordinates": [-2.93, 43.26]}}
                out.append((feed.name, json.dumps(event).encode()))
    return out


def end_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    """Kafka's own end offset of every partition of the test's topics."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**kafka_clients.python_client_options(settings, settings.kafka.bootstrap_servers[0]))
    try:
        parts = [TopicPartition(f.topic_name, p) for f in settings.enabled_feeds
                 for p in consumer.partitions_for_topic(f.topic_name)]
        return {(tp.topic, tp.partition): off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def bronze(settings: Settings, feed: str) -> pa.Table:
    return read.read_table(settings.lakehouse_path, "bronze", feed)


def produce(settings: Settings, batch: list[tuple[str, bytes]]) -> None:
    kafka_clients.ensure_topics(settings, settings.kafka.bootstrap_servers[0])
    report = producer.publish(settings, settings.kafka.bootstrap_servers[0], batch)
    assert report.total == len(batch)


def assert_exactly_once(settings: Settings, per_feed: int) -> None:
    """Every Kafka offset appears once in bronze, none is missing, and the counts match."""
    offsets = end_offsets(settings)
    for feed in settings.enabled_feeds:
        table = bronze(settings, feed.name)
        assert len(table) == per_feed, feed.name
        keys = Counter(zip(table["partition"].to_pylist(), table["offset"].to_pylist()))
        assert max(keys.values()) == 1, f"duplicated offsets in {feed.name}"
        expected = {(p, o) for (t, p), end in offsets.items() if t == feed.topic_name for o in range(end)}
        assert set(keys) == expected, f"offsets of {feed.name} are not contiguous"


def test_round_trip_counts_offsets_and_flags(make_settings, spark) -> None:
    settings = make_settings()
    produce(settings, messages(settings, 200))
    pipeline.run(settings, "ingest", until_idle=True, spark=spark)
    assert_exactly_once(settings, 200)
    for feed in settings.enabled_feeds:
        table = bronze(settings, feed.name).to_pylist()
        flagged = [r for r in table if not r["parse_ok"]]
        assert len(flagged) == 20
        assert {r["parse_error"] for r in flagged} == {
            "invalid JSON", "invalid UTF-8", "JSON is not an object", "missing entity id", "empty message"}
        good = {r["entity_id"] for r in table if r["parse_ok"]}
        assert good == {f"{feed.name}-{i}" for i in range(200) if i % 10 != 9}
        assert {r["topic"] for r in table} == {feed.topic_name}


def test_restart_from_checkpoint_is_exactly_once(make_settings, spark) -> None:
    settings = make_settings(max_offsets_per_trigger=400)
    produce(settings, messages(settings, 300))
    query = ingest.start_ingest(spark, settings, pipeline.feed_contracts(settings),
                                settings.kafka.bootstrap_servers[0], until_idle=False)
    deadline = time.monotonic() + 120
    while not query.recentProgress and time.monotonic() < deadline:
        time.sleep(0.2)
    query.stop()
    landed = sum(len(bronze(settings, f.name)) for f in settings.enabled_feeds
                 if (settings.lakehouse_path / "bronze" / f.name).exists())
    assert 0 < landed < 900, "the first run should have stopped mid-way"
    produce(settings, messages(settings, 100, start=300))
    pipeline.run(settings, "ingest", until_idle=True, spark=spark)
    assert_exactly_once(settings, 400)


def test_a_query_killed_while_logging_its_first_batch_starts_again(make_settings, spark) -> None:
    settings = make_settings()
    produce(settings, messages(settings, 60))
    offsets = settings.checkpoint_path / "bronze" / "offsets"
    offsets.mkdir(parents=True)
    dead = offsets / ".0.37936279-dd59-4110-bbdd-f6a5e687ba55.tmp"  # what a SIGKILL mid-rename leaves behind
    dead.touch()
    pipeline.run(settings, "ingest", until_idle=True, spark=spark)
    assert not dead.exists() and (offsets / "0").is_file()
    assert_exactly_once(settings, 60)


def test_replayed_micro_batch_is_not_written_twice(make_settings, spark) -> None:
    settings = make_settings()
    checkpoint = settings.checkpoint_path / "bronze"
    checkpoint.mkdir(parents=True)
    (checkpoint / "metadata").write_text(json.dumps({"id": "replay-test"}))
    writer = ingest.BronzeWriter(settings, pipeline.feed_contracts(settings), checkpoint)
    topic = settings.enabled_feeds[0].topic_name
    batch = spark.createDataFrame(
        [(topic, 0, i, None, b'{"id": "a"}') for i in range(5)],
        "topic string, partition int, offset long, timestamp timestamp, value binary")
    writer(batch, 0)
    writer(batch, 0)  # the same micro-batch again, as after a crash between the write and the checkpoint
    writer(batch, 1)
    assert len(bronze(settings, settings.enabled_feeds[0].name)) == 10


def test_bronze_tables_open_with_deltalake_and_duckdb(make_settings, spark) -> None:
    settings = make_settings()
    produce(settings, messages(settings, 30))
    pipeline.run(settings, "ingest", until_idle=True, spark=spark)
    expected = {f"bronze_{f.name}": len(bronze(settings, f.name)) for f in settings.enabled_feeds}
    script = ("import json, sys; from pathlib import Path; from bigbilbao.tables.read import duckdb_connection;"
              "con = duckdb_connection(Path(sys.argv[1]));"
              "names = [r[0] for r in con.sql('select table_name from information_schema.tables').fetchall()];"
              "print(json.dumps({n: con.sql(f'select count(*) from {n}').fetchone()[0] for n in names}))")
    proc = subprocess.run([sys.executable, "-c", script, str(settings.lakehouse_path)],
                          capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == expected
    assert all(count == 30 for count in expected.values())
