"""The scorecard's Delta tables through delta-rs (no JVM): their schemas, keys, upsert and latest publication.

  gold/scorecard         KPI rows (`scorecard.KPI_COLUMNS`) + as_of, published_at;
                         key (kpi_id, area_level, area_code, period, period_start)
  gold/scorecard_scores  perspective and overall scores (`scoring.SCORE_COLUMNS`) + as_of, published_at;
                         key (area_level, area_code, period, period_start, perspective)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa

from bigbilbao.errors import ScorecardMissingError
from bigbilbao.tables.read import AsOf, is_table, open_table, table_path

log = logging.getLogger(__name__)

SCORECARD, SCORES = "scorecard", "scorecard_scores"
SCORECARD_KEY = ("kpi_id", "area_level", "area_code", "period", "period_start")
SCORES_KEY = ("area_level", "area_code", "period", "period_start", "perspective")
_UTC = pa.timestamp("us", tz="UTC")
_TEXT = ["kpi_id", "perspective", "area_level", "area_code", "period"]
SCORECARD_SCHEMA = pa.schema(
    [(name, pa.string()) for name in _TEXT] + [("period_start", _UTC), ("period_end", _UTC), ("value", pa.float64()),
     ("unit", pa.string()), ("target", pa.float64()), ("status", pa.string()), ("score", pa.float64()),
     ("trend", pa.string()), ("delta", pa.float64()), ("previous_value", pa.float64()),
     ("exceedances_used", pa.float64()), ("exceedances_allowed", pa.int64()), ("data_capture", pa.float64()),
     ("n", pa.float64()), ("suppressed", pa.bool_()), ("catalogue_version", pa.string()),
     ("boundary_version", pa.string()), ("as_of", _UTC), ("published_at", _UTC)])
SCORES_SCHEMA = pa.schema(
    [("area_level", pa.string()), ("area_code", pa.string()), ("period", pa.string()), ("period_start", _UTC),
     ("period_end", _UTC), ("perspective", pa.string()), ("score", pa.float64()), ("n_kpis", pa.int64()),
     ("catalogue_version", pa.string()), ("boundary_version", pa.string()), ("as_of", _UTC), ("published_at", _UTC)])



def merge_frame(path: Path, frame: pd.DataFrame, schema: pa.Schema, key: Sequence[str]) -> None:
    """Upsert a pandas frame into a Delta table on `key` (creating the table on first use), typed by `schema`."""
    from deltalake import DeltaTable, write_deltalake
    from deltalake.exceptions import TableNotFoundError

    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    try:
        target = DeltaTable(str(path))
    except TableNotFoundError:
        write_deltalake(str(path), table, mode="append")
        return
    predicate = " AND ".join(f"t.{name} = s.{name}" for name in key)
    (target.merge(source=table, predicate=predicate, source_alias="s", target_alias="t")
     .when_matched_update_all().when_not_matched_insert_all().execute())


def latest_publication(lake: Path, name: str = SCORECARD, as_of: AsOf = None) -> pd.DataFrame:
    """The rows of gold/<name> published for the latest as_of: one complete scorecard (every period).

    `as_of` (a table version or a time) reads the table as it was then: the scorecard published at that point.
    """
    path = table_path(lake, "gold", name)
    if not is_table(path):
        message = f"No scorecard at {path} yet; publish one with `bigbilbao run scorecard` (or `run all`) first."
        raise ScorecardMissingError(message)
    table = open_table(lake, "gold", name, as_of).to_pyarrow_table()
    frame = table.to_pandas()
    if frame.empty:
        return frame
    return frame[frame["as_of"] == frame["as_of"].max()].reset_index(drop=True)
