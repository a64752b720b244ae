"""Delta writers: idempotent appends from foreachBatch, so a replayed micro-batch never lands twice."""

from __future__ import annotations

import logging
from pathlib import Path

from pyspark.sql import DataFrame

from bigbilbao.read import table_path

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
