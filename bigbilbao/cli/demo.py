"""The embedded-default demo: broker, synthetic events, every stage until idle, and a summary of what landed."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pyarrow.compute as pc

from bigbilbao.config.settings import Settings
from bigbilbao.feeds import producer, simulator
from bigbilbao.infra import kafka_clients
from bigbilbao.stages import pipeline
from bigbilbao.tables import read
from bigbilbao.tables.ledger import Ledger, feed_ledger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedSummary:
    """What one feed's tables hold after the demo."""

    ledger: Ledger
    parse_errors: int
    contiguous: bool
    districts: int


def run_demo(settings: Settings, events: int, dirty_fraction: float, seed: int) -> list[FeedSummary]:
    """Produce `events` messages over the enabled feeds, run every stage until Kafka is drained, summarise."""
    feeds = [f.name for f in settings.enabled_feeds]
    started = time.monotonic()
    with kafka_clients.bootstrap_servers(settings) as bootstrap:
        kafka_clients.ensure_topics(settings, bootstrap)
        messages = simulator.generate(feeds, count=events, seed=seed, dirty_fraction=dirty_fraction)
        producer.publish(settings, bootstrap, messages)
        log.info("starting Spark: ingest, silver, gold and the scorecard (until Kafka is drained)...")
        pipeline.run(settings, "all", until_idle=True)
    log.info("demo finished in %.1f s", time.monotonic() - started)
    return summarise(settings)


def summarise(settings: Settings) -> list[FeedSummary]:
    """Per feed: the ledger, parse errors, gap-free offsets per partition and districts seen in silver."""
    lake = settings.lakehouse_path
    summaries = []
    for feed in settings.enabled_feeds:
        table = read.read_table(lake, "bronze", feed.name, ["partition", "offset", "parse_ok"])
        contiguous = True
        for partition in pc.unique(table["partition"]).to_pylist():
            offsets = table.filter(pc.equal(table["partition"], partition))["offset"]
            low, high = pc.min(offsets).as_py(), pc.max(offsets).as_py()
            contiguous &= (high - low + 1 == len(offsets) == pc.count_distinct(offsets).as_py())
        errors = len(table) - (pc.sum(table["parse_ok"]).as_py() or 0)
        codes = read.read_table(lake, "silver", feed.name, ["district_code"])["district_code"]
        districts = len({c for c in codes.to_pylist() if c not in (None, "outside", "unlocated")})
        summaries.append(FeedSummary(feed_ledger(lake, feed.name), errors, contiguous, districts))
    return summaries


def format_summary(settings: Settings, summaries: list[FeedSummary]) -> str:
    """Plain-text table of where every message went, and the scorecard's size."""
    lake = settings.lakehouse_path
    lines = [f"Lakehouse {lake}:",
             f"  {'feed':<16}{'bronze':>8}{'silver':>8}{'quarantine':>12}{'duplicates':>12}{'districts':>11}  books"]
    for s in summaries:
        book = s.ledger
        state = "balanced" if book.balanced and s.contiguous else "UNBALANCED"
        lines.append(f"  {book.feed:<16}{book.bronze:>8}{book.silver:>8}{book.quarantined:>12}"
                     f"{book.duplicates:>12}{s.districts:>11}  {state}")
    if read.is_table(lake / "gold" / "scorecard"):
        card = read.read_table(lake, "gold", "scorecard", ["kpi_id", "area_code"])
        lines.append(f"Scorecard: {card.num_rows} rows, {len(pc.unique(card['kpi_id']))} KPIs, "
                     f"{len(pc.unique(card['area_code']))} areas (gold/scorecard).")
    lines.append("Read any table without Spark: python -c \"import deltalake; "
                 f"print(deltalake.DeltaTable('{lake / 'silver' / summaries[0].ledger.feed}').to_pandas())\"")
    return "\n".join(lines)
