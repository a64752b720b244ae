"""The embedded-default demo: broker, synthetic events, the streaming job, and a summary of what landed."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pyarrow.compute as pc

from bigbilbao import kafka_clients, pipeline, producer, read, simulate
from bigbilbao.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedSummary:
    """What one bronze table holds after the demo."""

    feed: str
    rows: int
    parse_errors: int
    partitions: int
    contiguous: bool


def run_demo(settings: Settings, events: int, dirty_fraction: float, seed: int) -> list[FeedSummary]:
    """Produce `events` messages over the enabled feeds, ingest them until idle, summarise bronze."""
    feeds = [f.name for f in settings.enabled_feeds]
    started = time.monotonic()
    with kafka_clients.bootstrap_servers(settings) as bootstrap:
        kafka_clients.ensure_topics(settings, bootstrap)
        messages = simulate.generate(feeds, count=events, seed=seed, dirty_fraction=dirty_fraction)
        producer.publish(settings, bootstrap, messages)
        log.info("starting Spark and the bronze ingest (until Kafka is drained)...")
        pipeline.run(settings, "ingest", until_idle=True)
    log.info("demo finished in %.1f s", time.monotonic() - started)
    return summarise(settings)


def summarise(settings: Settings) -> list[FeedSummary]:
    """Per feed: rows, parse errors, and whether each partition's offsets have no gaps (read without Spark)."""
    summaries = []
    for feed in settings.enabled_feeds:
        table = read.read_table(settings.lakehouse_path, "bronze", feed.name, ["partition", "offset", "parse_ok"])
        contiguous = True
        partitions = pc.unique(table["partition"]).to_pylist()
        for partition in partitions:
            offsets = table.filter(pc.equal(table["partition"], partition))["offset"]
            low, high = pc.min(offsets).as_py(), pc.max(offsets).as_py()
            contiguous &= (high - low + 1 == len(offsets) == pc.count_distinct(offsets).as_py())
        errors = len(table) - (pc.sum(table["parse_ok"]).as_py() or 0)
        summaries.append(FeedSummary(feed.name, len(table), errors, len(partitions), contiguous))
    return summaries


def format_summary(settings: Settings, summaries: list[FeedSummary]) -> str:
    """Plain-text table of the bronze tables."""
    lines = [f"Bronze tables in {settings.lakehouse_path / 'bronze'}:",
             f"  {'feed':<16}{'rows':>8}{'parse errors':>14}{'partitions':>12}  offsets"]
    for s in summaries:
        state = "contiguous" if s.contiguous else "GAPS OR DUPLICATES"
        lines.append(f"  {s.feed:<16}{s.rows:>8}{s.parse_errors:>14}{s.partitions:>12}  {state}")
    lines.append("Read them without Spark: python -c \"import deltalake; "
                 f"print(deltalake.DeltaTable('{settings.lakehouse_path / 'bronze' / summaries[0].feed}').to_pandas())\"")
    return "\n".join(lines)
