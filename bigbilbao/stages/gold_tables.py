"""Gold Delta tables: their keys, creation, and the idempotent MERGE every gold writer goes through.

Tables under <lakehouse>/gold (partitioned by feed unless noted; plain Delta, readable by delta-rs and DuckDB):
  hourly       key (feed, field, sensor_id, hour_start); contract columns + updated_at, restated_reason
  windows      key (feed, field, grain, area_level, area_code, window_start): 15min/hour/day per area
               (`bigbilbao.stages.gold_windows`); + updated_at, restated_reason
  events       key (feed, field, event_id, event_time); a later update of the event (e.g. a dispatch's
               arrival) rewrites the row; + updated_at
  quality      key (feed, district_code, barrio_code, hour_start), null-safe; + updated_at
  alerts       key alert_id; insert only: a published alert is never rewritten or withdrawn; + raised_at
  late_events  (not partitioned) silver rows older than their feed's watermark when gold first saw them
  watermarks   (not partitioned) per feed, query and micro-batch: the watermark used and the running max event time
A MERGE is idempotent twice over: Delta skips a (txnAppId, txnVersion) it has committed, and a matched
row is rewritten only when its values change, so recomputing the same rows changes nothing. Every MERGE
names its feeds' partitions and, where the key has a time, the time range the batch touched (`Span`), so
Delta reads only the files whose statistics overlap it: what a batch reads follows what it touched, not
the table's history. Per-feed writers never conflict; a conflict that still happens (the quarantine
writer and a feed writer on gold/quality) is retried, which is safe because sources are recomputed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from delta import exceptions as delta_errors
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from bigbilbao.config.settings import Settings
from bigbilbao.stages.gold_aggregate import ALERTS_SCHEMA, EVENTS_SCHEMA, HOURLY_SCHEMA, QUALITY_SCHEMA
from bigbilbao.stages.gold_windows import WINDOW_KEY, WINDOWS_SCHEMA
from bigbilbao.stages.sinks import committed, small_append
from bigbilbao.tables.conflicts import retry_on_conflict
from bigbilbao.tables.read import is_table, table_path

log = logging.getLogger(__name__)

TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
TXN_VERSION = "spark.databricks.delta.write.txnVersion"
MERGE_ATTEMPTS = 6
RELATIVE_TOLERANCE = 1e-9  # float sums recomputed in another order may differ in the last bits
CONFLICTS = (
    delta_errors.DeltaConcurrentModificationException, delta_errors.ConcurrentWriteException,
    delta_errors.MetadataChangedException, delta_errors.ProtocolChangedException,
    delta_errors.ConcurrentAppendException, delta_errors.ConcurrentDeleteReadException,
    delta_errors.ConcurrentDeleteDeleteException, delta_errors.ConcurrentTransactionException,
)
Result = TypeVar("Result")


def _with(schema: T.StructType, *extra: T.StructField) -> T.StructType:
    """A schema with lineage columns appended."""
    return T.StructType([*schema.fields, *extra])


UPDATED_AT = T.StructField("updated_at", T.TimestampType())
LATE_SCHEMA = T.StructType([
    T.StructField("feed", T.StringType()), T.StructField("entity_id", T.StringType()),
    T.StructField("event_time", T.TimestampType()), T.StructField("hour_start", T.TimestampType()),
    T.StructField("watermark", T.TimestampType()), T.StructField("topic", T.StringType()),
    T.StructField("partition", T.IntegerType()), T.StructField("offset", T.LongType()),
    T.StructField("kafka_timestamp", T.TimestampType()), T.StructField("ingested_at", T.TimestampType()),
    T.StructField("batch_id", T.LongType()), T.StructField("detected_at", T.TimestampType()),
])
WATERMARK_SCHEMA = T.StructType([
    T.StructField("feed", T.StringType()), T.StructField("query_id", T.StringType()),
    T.StructField("batch_id", T.LongType()), T.StructField("max_event_time", T.TimestampType()),
    T.StructField("watermark", T.TimestampType()), T.StructField("recorded_at", T.TimestampType()),
])


@dataclass(frozen=True)
class GoldTable:
    """One gold table: schema, MERGE key, and the columns whose change makes a matched row worth rewriting."""

    name: str
    schema: T.StructType
    key: tuple[str, ...] = ()
    exact: tuple[str, ...] = ()
    approx: tuple[str, ...] = ()
    partitioned: bool = True

    @property
    def columns(self) -> list[str]:
        """Column names in table order."""
        return self.schema.fieldNames()


RESTATED = T.StructField("restated_reason", T.StringType())
HOURLY = GoldTable("hourly", _with(HOURLY_SCHEMA, UPDATED_AT, RESTATED),
                   ("feed", "field", "sensor_id", "hour_start"),
                   exact=("n", "min", "max", "district_code", "barrio_code", "boundary_version"),
                   approx=("sum", "mean"))
WINDOWS = GoldTable("windows", _with(WINDOWS_SCHEMA, UPDATED_AT, RESTATED), WINDOW_KEY,
                    exact=("n", "min", "max", "entities", "boundary_version"), approx=("sum", "mean"))
EVENTS = GoldTable("events", _with(EVENTS_SCHEMA, UPDATED_AT), ("feed", "field", "event_id", "event_time"),
                   exact=("value", "district_code", "barrio_code", "boundary_version"))
QUALITY = GoldTable("quality", _with(QUALITY_SCHEMA, UPDATED_AT),
                    ("feed", "district_code", "barrio_code", "hour_start"),
                    exact=("n_valid", "n_quarantined"), approx=("lag_sum_s",))
ALERTS = GoldTable("alerts", _with(ALERTS_SCHEMA, T.StructField("raised_at", T.TimestampType())), ("alert_id",))
LATE_EVENTS = GoldTable("late_events", LATE_SCHEMA, partitioned=False)
WATERMARKS = GoldTable("watermarks", WATERMARK_SCHEMA, partitioned=False)
TABLES = (HOURLY, WINDOWS, EVENTS, QUALITY, ALERTS, LATE_EVENTS, WATERMARKS)


def gold_path(settings: Settings, table: GoldTable | str) -> Path:
    """Where a gold table lives: <lakehouse>/gold/<name>."""
    return table_path(settings.lakehouse_path, "gold", table if isinstance(table, str) else table.name)


def exists(path: Path) -> bool:
    """True when a Delta table has been created at `path`."""
    return is_table(path)


def ensure_gold_tables(spark: SparkSession, settings: Settings) -> None:
    """Create the empty gold tables up front (with delta-rs: no Spark job),
    so concurrent writers only MERGE or append."""
    from deltalake import DeltaTable as RustTable

    del spark  # the signature of a stage step; creating empty tables needs no JVM
    for table in TABLES:
        path = gold_path(settings, table)
        if exists(path):
            continue
        RustTable.create(str(path), arrow_schema(table.schema), mode="ignore",
                         partition_by=["feed"] if table.partitioned else None)
        log.info("created gold table %s", path)


def arrow_schema(schema: T.StructType) -> pa.Schema:
    """The Arrow schema delta-rs writes for a Spark schema of these tables (times as UTC microseconds)."""
    types = {T.StringType(): pa.string(), T.LongType(): pa.int64(), T.IntegerType(): pa.int32(),
             T.DoubleType(): pa.float64(), T.BooleanType(): pa.bool_(), T.TimestampType(): pa.timestamp("us", "UTC")}
    return pa.schema([pa.field(f.name, types[f.dataType], nullable=True) for f in schema.fields])


def merge_into(spark: SparkSession, table: GoldTable, path: Path, rows: DataFrame, feeds: Sequence[str],
               txn: tuple[str, int] | None = None, within: Span | None = None) -> None:
    """MERGE rows (of `feeds` only) on the table's key: insert new keys, rewrite matched rows whose values changed.

    `within` (a key column and an epoch-µs range [lo, hi) holding that column of every source row) confines
    the target side to those times, so Delta reads only the files whose statistics overlap them: a batch's
    cost follows what it touched, not the table's history. Target rows with a null there stay matchable.
    """
    if committed(path, txn):
        log.info("gold/%s: transaction %s already committed (a replayed batch); skipped", table.name, txn)
        return
    on = F.col("t.feed").isin(*feeds)
    if within is not None:
        on = on & (in_span(F.col(f"t.{within.column}"), within.lo, within.hi) | F.col(f"t.{within.column}").isNull())
    for key in table.key:
        on = on & F.col(f"t.{key}").eqNullSafe(F.col(f"s.{key}"))
    source = rows.select(*table.columns)

    def attempt() -> None:
        with transaction(spark, txn) as session:
            builder = DeltaTable.forPath(session, str(path)).alias("t").merge(source.alias("s"), on)
            if table.exact or table.approx:
                builder = builder.whenMatchedUpdateAll(condition=changed(table))
            builder.whenNotMatchedInsertAll().execute()

    retry_conflicts(attempt, f"MERGE into gold/{table.name}")


def changed(table: GoldTable) -> Column:
    """True when a matched source row differs from the target row (floats within a relative tolerance)."""
    same = F.lit(True)
    for name in table.exact:
        same = same & F.col(f"t.{name}").eqNullSafe(F.col(f"s.{name}"))
    for name in table.approx:
        old, new = F.col(f"t.{name}"), F.col(f"s.{name}")
        close = F.abs(old - new) <= F.lit(RELATIVE_TOLERANCE) * F.greatest(F.lit(1.0), F.abs(new))
        same = same & ((old.isNull() & new.isNull()) | F.coalesce(close, F.lit(False)))
    return ~same


@contextlib.contextmanager
def transaction(spark: SparkSession, txn: tuple[str, int] | None) -> Iterator[SparkSession]:
    """A session for one write with Delta's idempotent-DML confs set: Delta skips a version it already committed
    for the app id.

    The confs are set on the thread's own session (same SparkContext and cache, its own SQL confs): the fused round
    MERGEs several feeds at once from threads sharing the query's session, and confs set there would let one
    thread's MERGE commit under another's transaction id, which then skips its own MERGE as already done.
    """
    if txn is None:
        yield spark
        return
    session = _thread_session(spark)
    session.conf.set(TXN_APP_ID, txn[0])
    session.conf.set(TXN_VERSION, str(txn[1]))
    yield session


_SESSIONS: dict[tuple[str, int], SparkSession] = {}
_SESSIONS_LOCK = threading.Lock()


def _thread_session(spark: SparkSession) -> SparkSession:
    """This thread's own session of the SparkContext, made once and reused: a new session per write would leave
    the JVM one session state (SQL conf, catalog, listener) to collect per MERGE."""
    key = (spark.sparkContext.applicationId, threading.get_ident())
    with _SESSIONS_LOCK:
        if key not in _SESSIONS:
            _SESSIONS[key] = spark.newSession()
        return _SESSIONS[key]


def retry_conflicts(action: Callable[[], Result], what: str) -> Result:
    """Run a Delta write, retrying Delta's optimistic-concurrency conflicts a few times with a growing pause."""
    return retry_on_conflict(action, what, CONFLICTS, MERGE_ATTEMPTS, 0.25, lambda error: (
        f"{what} kept conflicting with concurrent writers ({type(error).__name__}); restart the stage."))


def collect_rows(frame: DataFrame, table: GoldTable) -> list[dict[str, Any]]:
    """Rows as dicts in the table's columns, times as aware UTC datetimes (collect() gives naive local ones)."""
    stamps = {f.name for f in table.schema.fields if isinstance(f.dataType, T.TimestampType)}
    rows = frame.select(*[F.unix_micros(c).alias(c) if c in stamps else F.col(c) for c in table.columns]).collect()
    return [{k: (utc(v) if k in stamps else v) for k, v in row.asDict().items()} for row in rows]


@dataclass(frozen=True)
class Span:
    """A time column and the epoch-µs range [lo, hi) its values fall in."""

    column: str
    lo: int
    hi: int


def in_span(column: Column, lo: int, hi: int) -> Column:
    """`lo <= column < hi` (epoch µs) as comparisons of the plain column with timestamp literals.

    A predicate on the column itself (not on a function of it, such as unix_micros) is what Delta's data
    skipping compares with each file's min/max statistics, so a read or MERGE skips the files outside it.
    """
    return (column >= F.lit(utc(lo))) & (column < F.lit(utc(hi)))


def micros_literal(value: int | None) -> Column:
    """A timestamp literal from epoch µs (null for None), exact whatever the session time zone."""
    return F.timestamp_micros(F.lit(value).cast("long"))


def utc(micros: int | None) -> datetime | None:
    """Epoch µs as a timezone-aware UTC datetime."""
    return None if micros is None else datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros)


def last_watermark(settings: Settings, feed: str, query_id: str,
                   batch_id: int) -> tuple[int, int | None, int | None] | None:
    """(batch id, max event time, watermark) in epoch µs of the latest recorded batch <= batch_id (delta-rs)."""
    from deltalake import DeltaTable as RustTable

    wanted = (pc.field("feed") == feed) & (pc.field("query_id") == query_id) & (pc.field("batch_id") <= batch_id)
    rows = (RustTable(str(gold_path(settings, WATERMARKS))).to_pyarrow_dataset()
            .to_table(filter=wanted, columns=["batch_id", "max_event_time", "watermark"]).to_pylist())
    if not rows:
        return None
    row = max(rows, key=lambda r: r["batch_id"])
    return row["batch_id"], micros(row["max_event_time"]), micros(row["watermark"])


def record_watermark(settings: Settings, row: dict[str, Any], txn: tuple[str, int]) -> None:
    """Append one gold/watermarks row once per (txnAppId, txnVersion), with delta-rs (no Spark job)."""
    data = pa.Table.from_pylist([row], schema=arrow_schema(WATERMARKS.schema))
    small_append(gold_path(settings, WATERMARKS), data, txn)


def micros(value: datetime | None) -> int | None:
    """An aware datetime as epoch µs (None stays None)."""
    if value is None:
        return None
    return (value - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
