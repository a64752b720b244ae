"""Delta writers: idempotent appends from foreachBatch, so a replayed micro-batch never lands twice."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.streaming import DataStreamWriter

from bigbilbao.errors import PipelineError
from bigbilbao.infra.spark_session import AUTO_COMPACT_MIN_FILES
from bigbilbao.tables.read import is_table

log = logging.getLogger(__name__)


def idempotent_append(df: DataFrame, path: Path, app_id: str, batch_id: int) -> None:
    """Append once per (app_id, batch_id): Delta skips a transaction version it has already committed."""
    (
        df.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", batch_id)
        .option("mergeSchema", "true")
        .save(str(path))
    )


def clear_dead_writes(checkpoint: Path) -> list[Path]:
    """Delete the temporary files a killed query left in its offset and commit logs; call before starting it.

    Spark writes each log entry to a hidden `.N.<uuid>.tmp` and renames it. A process killed in between
    leaves the temporary file, and Spark then refuses to start a query that never finished batch 0
    (STATE_STORE_CHECKPOINT_LOCATION_NOT_EMPTY). Only this checkpoint's own query writes there, so
    before it starts such files are dead.
    """
    removed = []
    for log_dir in (checkpoint / "offsets", checkpoint / "commits"):
        for path in sorted(log_dir.glob(".*.tmp*")) if log_dir.is_dir() else []:
            if path.name.endswith((".tmp", ".tmp.crc")):
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        log.warning("removed %d unfinished log file(s) a stopped query left in %s", len(removed), checkpoint)
    return removed


def triggered(stream: DataStreamWriter, until_idle: bool, interval: str) -> DataStreamWriter:
    """availableNow (process what the source holds, then stop) or a micro-batch every `interval`."""
    return stream.trigger(availableNow=True) if until_idle else stream.trigger(processingTime=interval)


def committed(path: Path, txn: tuple[str, int] | None) -> bool:
    """True when the Delta table already holds this (txnAppId, txnVersion): a replayed batch's write happened."""
    from deltalake import DeltaTable as RustTable

    if txn is None or not is_table(path):
        return False
    version = RustTable(str(path)).transaction_version(txn[0])
    return version is not None and version >= txn[1]


def latest_version(path: Path) -> int | None:
    """The table's latest version, None when there is no table."""
    from deltalake import DeltaTable as RustTable

    return RustTable(str(path)).version() if is_table(path) else None


def version_before(path: Path, txn: tuple[str, int]) -> int | None:
    """The table version just before the commit that holds this (txnAppId, txnVersion); None when not committed.

    A replayed micro-batch judges its rows against the table as it was before its own write, so the replay
    computes the same rows as the first attempt. The commit is recent (the batch being replayed), so the
    newest JSON commit files are searched.
    """
    from deltalake import DeltaTable as RustTable

    if not is_table(path) or RustTable(str(path)).transaction_version(txn[0]) != txn[1]:
        return None
    needle = f'"appId":"{txn[0]}","version":{txn[1]}'
    for commit in sorted((path / "_delta_log").glob("*.json"), reverse=True):
        with commit.open(encoding="utf-8") as lines:
            if any('"txn"' in line and needle in line.replace(" ", "") for line in lines):
                return int(commit.stem) - 1
    msg = f"{path} holds transaction {txn} but no commit file names it; was its Delta log cleaned up?"
    raise PipelineError(msg)


def small_append(path: Path, rows: pa.Table, txn: tuple[str, int]) -> None:
    """Append a few driver-side rows once per (txnAppId, txnVersion) with delta-rs: no Spark job for a dozen rows."""
    from deltalake import write_deltalake
    from deltalake.transaction import CommitProperties, Transaction

    if committed(path, txn):
        return
    write_deltalake(str(path), rows, mode="append",
                    commit_properties=CommitProperties(app_transactions=[Transaction(txn[0], txn[1])]))
    compact_when_fragmented(path)


def compact_when_fragmented(path: Path, most: int = AUTO_COMPACT_MIN_FILES) -> None:
    """Compact a table delta-rs appends to (Spark's auto-compaction never sees it) once it holds `most` files."""
    from deltalake import DeltaTable as RustTable
    from deltalake.exceptions import CommitFailedError

    table = RustTable(str(path))
    if len(table.file_uris()) < most:
        return
    try:
        table.optimize.compact()
    except CommitFailedError as error:
        log.info("compaction of %s gave way to a concurrent write (%s); a later batch retries", path, error)
