"""The fused round: one streaming query over every feed topic writes bronze, silver and gold per micro-batch.

    Kafka (all feed topics) ── foreachBatch, per feed present in the batch:
        bronze.<feed>            append, txn (bronze-<feed>-<query>, batch)
        quarantine, dq_metrics   append, txn              (`bigbilbao.stages.silver.SilverWriter`)
        silver.<feed>            append, txn; duplicates judged against silver *before* this batch's write
        gold                     watermark, late rows, hourly, windows, events, quality, alerts
                                 (`bigbilbao.stages.gold.FeedWriter`), from the rows silver took

Feeds of one micro-batch run side by side, as many at once as Spark has cores (`BronzeWriter.parallel_feeds`):
one feed's many small jobs and commits would leave cores idle. Each event is read from Kafka once and parsed
once (bronze rows stay cached through silver), and the number of streaming queries is one whatever the number
of feeds: the staged topology started one Kafka query plus a silver and a gold query per feed, each paying its
own trigger and commit costs.

Exactly-once: every write carries a Delta transaction id scoped by this query's checkpoint id and the
batch id, so a batch replayed after a crash skips what it already wrote. Silver's de-duplication reads
silver as it was before the batch's own commit (`sinks.version_before`), so a replay computes the same
rows and hands gold the same input as the first attempt.

A lakehouse first written by the staged topology moves over once: its staged queries are drained, and the
round starts from the Kafka offsets the staged ingest had reached (`staged_offsets`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from bigbilbao.config.settings import Settings
from bigbilbao.contracts.model import Contract
from bigbilbao.errors import BatchAbandonedError, PipelineError
from bigbilbao.scorecard.catalogue import load_catalogue
from bigbilbao.scorecard.kpi_model import Catalogue
from bigbilbao.scorecard.population import load_population
from bigbilbao.stages import gold, gold_aggregate, ingest, silver, sinks, stopping
from bigbilbao.stages.gold_tables import ensure_gold_tables
from bigbilbao.stages.stopping import StopRequest

log = logging.getLogger(__name__)

QUERY_NAME = "round"


class GoldOfFeed:
    """A feed's gold step inside the round: the rows silver took go to its FeedWriter, quarantined rows refresh
    gold/quality for their arrival hours."""

    def __init__(self, feed_writer: gold.FeedWriter, quarantine_writer: gold.QuarantineWriter,
                 stop: StopRequest | None = None) -> None:
        self.feed_writer = feed_writer
        self.quarantine_writer = quarantine_writer
        self.stop = stop

    def _unless_stopping(self, batch_id: int) -> None:
        """Silver is written; on a stop request, leave gold to the restart's replay of this batch."""
        if self.stop is not None and self.stop.requested:
            raise BatchAbandonedError(batch_id)

    def landed(self, rows: DataFrame, batch_id: int) -> None:
        self._unless_stopping(batch_id)
        self.feed_writer(rows, batch_id)

    def quarantined(self, rows: DataFrame, batch_id: int) -> None:
        self._unless_stopping(batch_id)
        arrival = rows.select("feed", "kafka_timestamp", "ingested_at").localCheckpoint()  # a short plan to re-read
        self.quarantine_writer.write(rows.sparkSession, arrival, batch_id)


class RoundWriter:
    """foreachBatch sink of the round: bronze per feed, then that feed's silver and gold from the same rows."""

    def __init__(self, settings: Settings, contracts: Mapping[str, Contract], checkpoint: Path, key: bytes,
                 catalogue: Catalogue, watermark: timedelta = gold.DEFAULT_WATERMARK,
                 on_alerts: gold.AlertSink | None = None, enricher: silver.Enricher | None = None,
                 parallel_feeds: int = 1, stop: StopRequest | None = None) -> None:
        enricher = enricher or silver.spatial_enricher(settings)
        city_code = load_population().city_code
        quarantine = gold.QuarantineWriter(settings, contracts, checkpoint)
        self.silver = {}
        for feed, contract in contracts.items():
            fields = gold_aggregate.gold_fields(catalogue, feed)
            feed_gold = gold.FeedWriter(settings, contract, checkpoint, fields, watermark, on_alerts,
                                        city_code=city_code)
            self.silver[feed] = silver.SilverWriter(settings, contract, checkpoint, key, enricher,
                                                    downstream=GoldOfFeed(feed_gold, quarantine, stop))
        self.bronze = ingest.BronzeWriter(settings, contracts, checkpoint, downstream=self.feed_round,
                                          parallel_feeds=parallel_feeds, stop=stop)

    def feed_round(self, feed: str, bronze_rows: DataFrame, batch_id: int) -> None:
        """Silver and gold of one feed's bronze rows in this micro-batch."""
        self.silver[feed](bronze_rows, batch_id)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        self.bronze(batch, batch_id)


def ensure_tables(spark: SparkSession, settings: Settings, contracts: Mapping[str, Contract]) -> None:
    """Every table the round writes, created up front so readers and concurrent writers find them."""
    ingest.ensure_bronze_tables(spark, settings, contracts)
    silver.ensure_quality_tables(spark, settings, next(iter(contracts.values())))
    silver.ensure_silver_tables(spark, settings, contracts)
    ensure_gold_tables(spark, settings)


def start_round(spark: SparkSession, settings: Settings, contracts: Mapping[str, Contract], bootstrap: str,
                until_idle: bool = False, on_alerts: gold.AlertSink | None = None,
                catalogue: Catalogue | None = None, starting_offsets: str | None = None,
                stop: StopRequest | None = None) -> StreamingQuery:
    """Start the one query of the round; with until_idle it processes what Kafka holds now and then stops.

    Its writer looks at `stop` between feeds and abandons the micro-batch once a stop is asked for
    (`bigbilbao.stages.stopping`)."""
    private = any(c.pseudonymised_fields() for c in contracts.values())
    key = settings.pseudonym_key() if private else b""
    ensure_tables(spark, settings, contracts)
    checkpoint = checkpoint_path(settings)
    parallel = settings.streaming.round_parallel_feeds or spark.sparkContext.defaultParallelism
    writer = RoundWriter(settings, contracts, checkpoint, key, catalogue or load_catalogue(), on_alerts=on_alerts,
                         parallel_feeds=parallel, stop=stop)
    source = ingest.read_kafka(spark, settings, bootstrap, starting_offsets)
    stream = (source.writeStream.queryName(QUERY_NAME).option("checkpointLocation", str(checkpoint))
              .foreachBatch(stopping.gated(writer, stop, QUERY_NAME)))
    stream = sinks.triggered(stream, until_idle, settings.streaming.interval("round"))
    sinks.clear_dead_writes(checkpoint)
    return stream.start()


def checkpoint_path(settings: Settings) -> Path:
    """Where the round's query keeps its Kafka offsets."""
    return settings.checkpoint_path / QUERY_NAME


def staged_checkpoints(settings: Settings) -> list[Path]:
    """Checkpoints of staged queries (ingest, silver, gold) that exist in this lakehouse."""
    root = settings.checkpoint_path
    return [path for path in (root / "bronze", root / "silver", root / "gold") if path.is_dir()]


def staged_offsets(settings: Settings, partitions: Mapping[str, list[int]]) -> str | None:
    """The Kafka offsets the staged ingest committed last, as the round's `startingOffsets` JSON; None if none.

    Partitions the staged query never saw start at the earliest offset (-2), as a new query's would.
    """
    checkpoint = settings.checkpoint_path / "bronze"
    commits = [int(p.name) for p in (checkpoint / "commits").glob("[0-9]*")] if checkpoint.is_dir() else []
    if not commits:
        return None
    last = max(commits)
    lines = (checkpoint / "offsets" / str(last)).read_text(encoding="utf-8").splitlines()
    reached: dict[str, dict[str, int]] = json.loads(lines[-1])
    offsets = {topic: {str(p): reached.get(topic, {}).get(str(p), -2) for p in sorted(parts)}
               for topic, parts in partitions.items()}
    return json.dumps(offsets, sort_keys=True)


def refuse_mixed_topologies(settings: Settings, stage: str) -> None:
    """A staged query on a lakehouse the round writes would read Kafka or bronze again from the start."""
    staged = stage != "all" or settings.streaming.topology == "staged"
    if staged and checkpoint_path(settings).is_dir():
        msg = (f"This lakehouse is written by the round topology ({checkpoint_path(settings)} exists), so "
               f"'run {stage}' with staged queries would process its data a second time; use 'run all' "
               "with streaming.topology: round.")
        raise PipelineError(msg)
