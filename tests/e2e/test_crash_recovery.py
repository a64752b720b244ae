"""The whole application SIGKILLed at random moments while events stream in loses and duplicates nothing.

A producer thread streams a fixed, seeded set of simulated events (dirty ones and exact duplicates
included, no late ones: lateness depends on where the stream is cut into micro-batches) into fresh
topics. `bigbilbao run all` runs as a subprocess and its process group (Python driver and Spark JVM)
is killed with SIGKILL at random moments, at least five times, and restarted each time; a last
`run all --until-idle` drains Kafka. Bronze must hold every Kafka offset exactly once, every feed's
books must balance, and silver, quarantine and gold must equal a clean single run on the same topics
(processing-time columns left out, floats to 10 digits: Spark may add a window's values in another order).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bigbilbao.config.settings import with_overrides
from bigbilbao.feeds import simulator
from bigbilbao.stages import pipeline
from bigbilbao.stages.silver import first_occurrences
from bigbilbao.tables import ledger
from tests.e2e.test_cluster import write_config
from tests.e2e.test_kafka_roundtrip import end_offsets
from tests.faults import (
    COMMITTED,
    PacedProducer,
    bronze_keys,
    differing_tables,
    kill_group,
    rule_totals,
    start_app,
    wait_for_log,
)

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

FEEDS = ("traffic_flow", "air_quality")
KILLS = 5
EVENTS = 900
RATE = 4.0  # messages/s: the producer streams for about 4 minutes, across the kills
WAIT_BATCH_S = 240.0
STAGE_ROTATION = ("ingest", "silver", "gold")  # ingest first, while the producer still streams
SEED = 20261124
DIRTY = ("bad_json", "out_of_range", "duplicate")


def crash_loop(config: Path, folder: Path, rng: random.Random, stream: PacedProducer) -> list[float | None]:
    """Start the application, kill it 0-10 s (random) after a stage commits a micro-batch, restart; KILLS times.

    The stage whose commit arms the kill goes round ingest, silver, gold, so kills land in every stage's
    batches; a run in which that stage commits nothing within WAIT_BATCH_S is killed then. Returns, per
    killed run, the seconds from its start to its first committed micro-batch, None if it committed none.
    """
    recoveries = []
    kills = 0
    while kills < KILLS or stream.is_alive():
        log_file = folder / f"run-{kills}.log"
        stage = STAGE_ROTATION[kills % len(STAGE_ROTATION)]
        started = time.monotonic()
        proc = start_app(config, log_file)
        try:
            armed = wait_for_log(log_file, re.compile(rf"INFO bigbilbao\.stages\.{stage}: .*batch \d+"), proc,
                                 WAIT_BATCH_S)
            if armed:
                time.sleep(rng.uniform(0.0, 10.0))
            assert proc.poll() is None, f"run {kills} died by itself:\n{log_file.read_text(errors='replace')[-3000:]}"
        finally:
            kill_group(proc)
        first = COMMITTED.search(log_file.read_text(errors="replace"))
        recoveries.append(first_commit_seconds(log_file) if first else None)
        kills += 1
        log.warning("crash test: kill %d after %.1f s (%s), producer %s", kills, time.monotonic() - started,
                    f"after a {stage} commit" if armed else f"no {stage} commit", "streaming" if stream.is_alive()
                    else "done")
    return recoveries


def first_commit_seconds(log_file: Path) -> float:
    """Seconds from a run's first log line to its first committed micro-batch (log times, 1 s resolution)."""
    lines = [ln for ln in log_file.read_text(errors="replace").splitlines() if re.match(r"\d\d:\d\d:\d\d ", ln)]
    commit = next(ln for ln in lines if COMMITTED.search(ln))
    first, done = (datetime.strptime(ln[:8], "%H:%M:%S") for ln in (lines[0], commit))
    return (done - first).total_seconds() % 86400


@pytest.mark.timeout(2400)
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(make_settings, spark,
                                                                 tmp_path: Path) -> None:
    settings = make_settings(feeds=FEEDS)
    produced = list(simulator.simulate(list(FEEDS), count=EVENTS, seed=SEED, dirty_fraction=0.15, dirty_kinds=DIRTY))
    crashed = with_overrides(settings, lakehouse={"path": str(tmp_path / "crashed")})
    config = write_config(crashed, tmp_path / "crashed.yaml")
    stream = PacedProducer(settings, [(m.feed, m.payload) for m in produced], RATE)
    stream.start()
    recoveries = crash_loop(config, tmp_path, random.Random(SEED), stream)
    stream.join(timeout=300)
    assert stream.error is None and stream.sent == EVENTS, f"producer failed: {stream.error!r}"

    final = start_app(config, tmp_path / "final.log", "--until-idle")
    assert final.wait(timeout=900) == 0, (tmp_path / "final.log").read_text(errors="replace")[-3000:]
    clean = with_overrides(settings, lakehouse={"path": str(tmp_path / "clean")})
    pipeline.run(clean, "all", until_idle=True, spark=spark)

    offsets = end_offsets(settings)
    for feed in settings.feeds:
        expected = Counter((t, p, o) for (t, p), end in offsets.items() if t == feed.topic_name for o in range(end))
        landed = bronze_keys(crashed.lakehouse_path, feed.name)
        assert landed == expected, f"{feed.name}: {sum((expected - landed).values())} lost, " \
                                   f"{sum((landed - expected).values())} duplicated in bronze"
        books = ledger.feed_ledger(crashed.lakehouse_path, feed.name)
        assert books.balanced and books.bronze == sum(expected.values()), books
        assert books == ledger.feed_ledger(clean.lakehouse_path, feed.name)
        assert rule_totals(crashed.lakehouse_path, feed.name) == rule_totals(clean.lakehouse_path, feed.name)
    totals = [ledger.feed_ledger(crashed.lakehouse_path, f.name) for f in settings.feeds]
    assert all(sum(getattr(b, part) for b in totals) > 0 for part in ("silver", "quarantined", "duplicates"))
    assert not differing_tables(clean, crashed), "crashed and clean runs differ"
    log.warning("crash test: %d kills, %d events, %s; first commit after start, per run %s s", len(recoveries), EVENTS,
                totals, [r and round(r, 1) for r in recoveries])


def test_a_duplicate_keeps_its_first_sent_copy_whatever_its_partition(spark) -> None:
    sent = [("t", 0, 105, datetime(2026, 11, 24, 15, 39, 2, tzinfo=timezone.utc)),
            ("t", 1, 78, datetime(2026, 11, 24, 15, 38, 56, tzinfo=timezone.utc))]
    schema = "topic string, partition int, offset long, kafka_timestamp timestamp, entity_id string"
    batch = spark.createDataFrame([(*row, "sensor-1") for row in sent], schema)
    kept = first_occurrences(batch, ["entity_id"]).collect()
    assert [(row["partition"], row["offset"]) for row in kept] == [(1, 78)]
