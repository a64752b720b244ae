"""The Kafka broker stopped and restarted under a running ingest: the stream recovers and loses nothing.

A separate embedded broker (own lakehouse, own broker home, so the session broker is untouched) serves
a `bigbilbao run ingest` subprocess. Mid-stream the broker is stopped for DOWN_S seconds and started
again on the same ports; more events follow. Either the query rides out the outage (Spark's Kafka source
retries; the job's log says it is waiting for Kafka and when it got through again), or it fails loudly
(non-zero exit, a one-sentence error naming Kafka) and a restart of the job recovers. Either way every
Kafka offset must end up in bronze exactly once.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bigbilbao.config.settings import FeedSettings, Settings, with_overrides
from bigbilbao.infra import broker
from tests.e2e.test_cluster import write_config
from tests.e2e.test_kafka_roundtrip import end_offsets, messages
from tests.faults import PacedProducer, bronze_keys, kill_group, start_app, wait_for_log

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

FEEDS = ("traffic_flow", "incidents")
DOWN_S = 75.0  # longer than the Kafka clients' default API timeout (60 s)
PER_PHASE = 150  # messages per feed before and after the outage


@pytest.fixture
def own_broker(base_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Settings of a fresh lakehouse with its own embedded broker, stopped at the end even on failure."""
    lake = with_overrides(base_settings, lakehouse={"path": str(tmp_path / "lakehouse")},
                          kafka={"bootstrap_servers": ()})
    info, _ = broker.start(lake)
    settings = with_overrides(lake, kafka={"bootstrap_servers": (info.bootstrap,)})
    feeds = tuple(FeedSettings(name=name, topic=f"restart.{name}") for name in FEEDS)
    try:
        yield dataclasses.replace(settings, feeds=feeds)
    finally:
        broker.stop(lake)


def landed(settings: Settings) -> int:
    """Bronze rows of every feed so far, duplicates included."""
    return sum(sum(bronze_keys(settings.lakehouse_path, f.name).values()) for f in settings.feeds)


def wait_landed(settings: Settings, count: int, proc, timeout_s: float) -> bool:
    """Wait until bronze holds `count` rows; False if the job ended or the time ran out first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if landed(settings) >= count:
            return True
        time.sleep(1)
    return landed(settings) >= count


def produce_now(settings: Settings, batch: list[tuple[str, bytes]]) -> None:
    """Send a batch and wait for every acknowledgement."""
    sender = PacedProducer(settings, batch, rate=0)
    sender.run()
    assert sender.error is None and sender.sent == len(batch), repr(sender.error)


@pytest.mark.timeout(1200)
def test_broker_restart_mid_stream_loses_nothing(own_broker: Settings, tmp_path: Path) -> None:
    settings = own_broker
    config = write_config(settings, tmp_path / "job.yaml")
    produce_now(settings, messages(settings, PER_PHASE))
    job_log = tmp_path / "ingest-0.log"
    job = start_app(config, job_log, stage="ingest")
    try:
        assert wait_landed(settings, PER_PHASE * len(FEEDS), job, 400), job_log.read_text(errors="replace")[-3000:]
        broker.stop(settings)
        time.sleep(DOWN_S)
        survived = job.poll() is None
        restarted = time.monotonic()
        broker.start(settings)
        produce_now(settings, messages(settings, PER_PHASE, start=PER_PHASE))
        total = 2 * PER_PHASE * len(FEEDS)
        caught_up = wait_landed(settings, total, job, 300)
        if job.poll() is None:
            assert caught_up, f"the job stayed up but did not catch up:\n{job_log.read_text(errors='replace')[-3000:]}"
            assert wait_for_log(job_log, "query bronze reached Kafka again", job, 60), "no log line about the outage"
            assert "query bronze has waited" in job_log.read_text(errors="replace")
        else:
            survived = False
            output = job_log.read_text(errors="replace")
            errors = [line for line in output.splitlines() if line.startswith("bigbilbao: error:")]
            assert job.returncode != 0 and errors and "Kafka was unreachable" in errors[-1], output[-3000:]
            job_log = tmp_path / "ingest-1.log"
            job = start_app(config, job_log, stage="ingest")
            assert wait_landed(settings, total, job, 400), job_log.read_text(errors="replace")[-3000:]
        recovery = time.monotonic() - restarted
        job.send_signal(signal.SIGTERM)
        assert wait_for_log(job_log, "stopping after the current micro-batch", job, 60)
        job.wait(timeout=300)
    finally:
        if job.poll() is None:
            kill_group(job)
    offsets = end_offsets(settings)
    for feed in settings.feeds:
        expected = {(t, p, o) for (t, p), end in offsets.items() if t == feed.topic_name for o in range(end)}
        keys = bronze_keys(settings.lakehouse_path, feed.name)
        assert set(keys) == expected and max(keys.values()) == 1, f"{feed.name}: lost or duplicated offsets"
        assert len(expected) == 2 * PER_PHASE
    log.warning("broker restart: down %.0f s, query %s, all %d messages in bronze %.1f s after the restart",
                DOWN_S, "survived" if survived else "failed loudly and was restarted", 4 * PER_PHASE, recovery)
