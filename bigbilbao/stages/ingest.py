"""Kafka -> bronze: every message kept with its lineage, parsed by its feed's contract, errors flagged."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pyspark import inheritable_thread_target
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from bigbilbao.config.settings import Settings
from bigbilbao.contracts.model import Contract
from bigbilbao.errors import BatchAbandonedError
from bigbilbao.infra import kafka_clients
from bigbilbao.stages import sinks, stopping
from bigbilbao.stages.stopping import StopRequest
from bigbilbao.tables.read import is_table, table_path

log = logging.getLogger(__name__)

LINEAGE_COLUMNS = ["feed", "topic", "partition", "offset", "kafka_timestamp", "ingested_at"]
PARSE_COLUMNS = ["payload", "payload_bytes", "parse_ok", "parse_error",
                 "entity_id", "entity_type", "observed_at_raw", "location_geojson", "lon", "lat"]


def read_kafka(spark: SparkSession, settings: Settings, bootstrap: str,
               starting_offsets: str | None = None) -> DataFrame:
    """Spark's Kafka source over every enabled feed topic; `starting_offsets` overrides the setting (a new
    checkpoint only: a query with a checkpoint resumes from it)."""
    reader = spark.readStream.format("kafka")
    options = kafka_clients.spark_source_options(settings, bootstrap)
    if starting_offsets is not None:
        options["startingOffsets"] = starting_offsets
    for key, value in options.items():
        reader = reader.option(key, value)
    return reader.load()


def strict_json(text: Column) -> Column:
    """try_parse_json without the leniency of Spark's parser, which ignores whatever follows the first value.

    `{"id": 1}}` or `{"id": 1} x` parse in Spark; RFC 8259 (and the reference) rejects them. The text is parsed
    inside `[...]` and inside `{"_": ...}`: anything after the first value either breaks one of the two or adds
    an element or a key, so the message is JSON only when the array has one element and the object one key.
    """
    in_array = F.try_parse_json(F.concat(F.lit("["), text, F.lit("]")))
    in_object = F.try_parse_json(F.concat(F.lit('{"_":'), text, F.lit("}")))
    elements = F.size(F.try_variant_get(in_array, "$", "array<variant>"))
    keys = F.size(F.map_keys(F.try_variant_get(in_object, "$", "map<string,variant>")))
    alone = F.coalesce((elements == 1) & (keys == 1), F.lit(False))
    return F.when(alone, F.try_variant_get(in_array, "$[0]", "variant"))


def _attribute(doc: Column, name: str, spark_type: str) -> Column:
    """A payload attribute in keyValues form (`$.name`) or NGSI normalized form (`$.name.value`)."""
    return F.coalesce(F.try_variant_get(doc, f"$.{name}.value", spark_type),
                      F.try_variant_get(doc, f"$.{name}", spark_type))


def _id_value(doc: Column, name: str) -> Column:
    """The entity id's VARIANT, in keyValues or normalized form."""
    return F.coalesce(F.try_variant_get(doc, f"$.{name}.value", "variant"),
                      F.try_variant_get(doc, f"$.{name}", "variant"))


def _entity_id(doc: Column, name: str) -> Column:
    """The entity id when it is a JSON string (NGSI ids are strings); a number, Boolean or list is no id."""
    value = _id_value(doc, name)
    return F.when(F.schema_of_variant(value) == "STRING", F.try_variant_get(value, "$", "string"))


def _parse_error(value: Column, doc: Column, entity_id: Column, id_field: str) -> Column:
    """Why a message could not be parsed, or null when it could."""
    return (
        F.when(value.isNull() | (F.length(value) == 0), F.lit("empty message"))
        .when(~F.is_valid_utf8(value), F.lit("invalid UTF-8"))
        .when(doc.isNull(), F.lit("invalid JSON"))
        .when(F.try_variant_get(doc, "$", "struct<>").isNull(), F.lit("JSON is not an object"))
        .when(entity_id.isNull() & ~F.schema_of_variant(_id_value(doc, id_field)).isin("VOID"),
              F.lit("entity id is not a string"))
        .when(entity_id.isNull(), F.lit("missing entity id"))
    )


def bronze(records: DataFrame, feed: str, contract: Contract) -> DataFrame:
    """One feed's Kafka records as bronze rows: raw payload, lineage, parse status and contract fields."""
    payload = F.make_valid_utf8(F.col("value").cast("string"))
    doc = strict_json(payload)
    entity_id = _entity_id(doc, contract.id_field)
    location = F.coalesce(F.try_variant_get(doc, f"$.{contract.location_field}.value", "variant"),
                          F.try_variant_get(doc, f"$.{contract.location_field}", "variant"))
    is_point = F.try_variant_get(location, "$.type", "string") == F.lit("Point")
    error = _parse_error(F.col("value"), doc, entity_id, contract.id_field)
    fields = [_attribute(doc, name, spark_type).alias(name) for name, spark_type in bronze_types(contract).items()]
    return records.select(
        F.lit(feed).alias("feed"),
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.current_timestamp().alias("ingested_at"),
        payload.alias("payload"),
        F.when(~F.is_valid_utf8(F.col("value")), F.col("value")).alias("payload_bytes"),
        error.isNull().alias("parse_ok"),
        error.alias("parse_error"),
        entity_id.alias("entity_id"),
        _attribute(doc, "type", "string").alias("entity_type"),
        F.coalesce(*[_attribute(doc, t, "string") for t in contract.time_fields]).alias("observed_at_raw"),
        F.to_json(location).alias("location_geojson"),
        F.when(is_point, F.try_variant_get(location, "$.coordinates[0]", "double")).alias("lon"),
        F.when(is_point, F.try_variant_get(location, "$.coordinates[1]", "double")).alias("lat"),
        *fields,
    )


def bronze_types(contract: Contract) -> dict[str, str]:
    """Spark type of each contract field in bronze; timestamps stay as sent until silver applies time zones."""
    return {name: "string" if kind == "timestamp" else kind for name, kind in contract.spark_type_names().items()}


FeedDownstream = Callable[[str, DataFrame, int], None]


class BronzeWriter:
    """foreachBatch sink: splits a micro-batch by topic and appends each feed's bronze rows exactly once.

    A `downstream` (the fused round, `bigbilbao.stages.fused`) gets each feed's bronze rows, persisted,
    right after their append: silver and gold are computed from the same micro-batch.
    """

    def __init__(self, settings: Settings, contracts: Mapping[str, Contract], checkpoint: Path,
                 downstream: FeedDownstream | None = None, parallel_feeds: int = 1,
                 stop: StopRequest | None = None) -> None:
        self.settings = settings
        self.stop = stop
        self.contracts = contracts
        self.checkpoint = checkpoint
        self.downstream = downstream
        self.parallel_feeds = parallel_feeds
        self.topics = {f.topic_name: f.name for f in settings.enabled_feeds}
        self.landed: dict[str, int] = {}

    def _query_id(self) -> str:
        """The checkpoint's query id: a deleted checkpoint starts a new idempotency scope."""
        return json.loads((self.checkpoint / "metadata").read_text())["id"]

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        batch.persist()
        try:
            counts = {row["topic"]: row["count"] for row in batch.groupBy("topic").count().collect()}
            feeds = [(self.topics[topic], topic) for topic in sorted(counts) if topic in self.topics]
            left = self._each_feed(feeds, batch, batch_id)
            if left:
                written = tuple(feed for feed, _ in feeds if feed not in left)
                raise BatchAbandonedError(batch_id, written, tuple(left))
            for feed, topic in feeds:
                self.landed[feed] = self.landed.get(feed, 0) + counts[topic]
            if counts:
                summary = ", ".join(f"{self.topics.get(t, t)} +{n}" for t, n in sorted(counts.items()))
                log.info("bronze batch %d committed: %s", batch_id, summary)
        finally:
            batch.unpersist()

    def _each_feed(self, feeds: list[tuple[str, str]], batch: DataFrame, batch_id: int) -> list[str]:
        """Append (and hand downstream) each feed's rows; up to `parallel_feeds` feeds at once, so that one feed's
        small Spark jobs and commits do not leave the other cores idle. The first failure is raised once all end.

        Returns the feeds left (not started, or ended early) because a stop was asked for.
        """
        if self.parallel_feeds <= 1 or len(feeds) <= 1:
            return [feed for feed, topic in feeds
                    if not self._append(feed, batch.filter(F.col("topic") == topic), batch_id)]
        with ThreadPoolExecutor(max_workers=min(self.parallel_feeds, len(feeds))) as pool:
            # inheritable_thread_target: the threads keep the query's job group, so stopping it cancels them
            inherit = inheritable_thread_target(batch.sparkSession)
            work = {feed: pool.submit(inherit(self._append), feed, batch.filter(F.col("topic") == topic),
                                      batch_id) for feed, topic in feeds}
        return [feed for feed, done in work.items() if not done.result()]

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.requested

    def _append(self, feed: str, records: DataFrame, batch_id: int) -> bool:
        """Write one feed's rows of the batch; False when a stop was asked for before it began or while it ran
        (whatever it wrote carries its transaction ids, so the restart's replay skips it)."""
        if self._stopping():
            return False
        try:
            self._write_feed(feed, records, batch_id)
        except Exception as exc:
            if not self._stopping():
                raise
            log.debug("feed %s left in micro-batch %d on the stop request: %s", feed, batch_id, exc)
            return False
        return True

    def _write_feed(self, feed: str, records: DataFrame, batch_id: int) -> None:
        rows = bronze(records, feed, self.contracts[feed])
        path = table_path(self.settings.lakehouse_path, "bronze", feed)
        if self.downstream is None:
            sinks.idempotent_append(rows, path, f"bronze-{feed}-{self._query_id()}", batch_id)
            return
        rows = rows.persist()
        try:
            sinks.idempotent_append(rows, path, f"bronze-{feed}-{self._query_id()}", batch_id)
            self.downstream(feed, rows, batch_id)
        finally:
            rows.unpersist()


KAFKA_SCHEMA = "topic string, partition int, offset long, timestamp timestamp, value binary"


def ensure_bronze_tables(spark: SparkSession, settings: Settings, contracts: Mapping[str, Contract]) -> None:
    """Create each feed's empty bronze table up front, so downstream streams can start before data arrives."""
    empty = spark.createDataFrame([], KAFKA_SCHEMA)
    for feed, contract in contracts.items():
        path = table_path(settings.lakehouse_path, "bronze", feed)
        if not is_table(path):
            bronze(empty, feed, contract).write.format("delta").mode("append").save(str(path))


def start_ingest(spark: SparkSession, settings: Settings, contracts: Mapping[str, Contract], bootstrap: str,
                 until_idle: bool = False, stop: StopRequest | None = None) -> StreamingQuery:
    """Start Kafka -> bronze; with until_idle it processes what Kafka holds now and then stops."""
    ensure_bronze_tables(spark, settings, contracts)
    checkpoint = settings.checkpoint_path / "bronze"
    writer = BronzeWriter(settings, contracts, checkpoint, stop=stop)
    stream = (
        read_kafka(spark, settings, bootstrap)
        .writeStream.queryName("bronze")
        .option("checkpointLocation", str(checkpoint))
        .foreachBatch(stopping.gated(writer, stop, "bronze"))
    )
    stream = sinks.triggered(stream, until_idle, settings.streaming.interval("ingest"))
    sinks.clear_dead_writes(checkpoint)
    return stream.start()
