"""Reading lakehouse tables without Spark or a JVM: delta-rs (deltalake) into Arrow/pandas, with time travel.

`as_of` everywhere is a table version (int, or digits as text) or a point in time (a datetime, or ISO 8601
text; naive means UTC): the table as it was at that version, or at its latest commit at or before that time.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from bigbilbao.errors import PipelineError

if TYPE_CHECKING:
    import pandas as pd
    from deltalake import DeltaTable

log = logging.getLogger(__name__)

AsOf = int | str | datetime | None
METADATA_OPERATIONS = frozenset({"SET TBLPROPERTIES", "UNSET TBLPROPERTIES", "UPDATE TABLE METADATA"})
HISTORY_LOOKBACK = 50  # commits searched for the latest data commit


def table_path(lakehouse: Path, layer: str, name: str) -> Path:
    """Where a table lives: <lakehouse>/<layer>/<name>."""
    return lakehouse / layer / name


def is_table(path: Path) -> bool:
    """A Delta table has at least one commit; a `_delta_log` folder alone is a first commit still being written."""
    log_dir = Path(path) / "_delta_log"
    return any(log_dir.glob("*.json")) or any(log_dir.glob("*.checkpoint*.parquet"))


def list_tables(lakehouse: Path) -> list[tuple[str, str]]:
    """(layer, name) of every Delta table in the lakehouse; one whose first commit is still being written is not yet."""
    found = []
    for log_dir in sorted(Path(lakehouse).glob("*/*/_delta_log")):
        table = log_dir.parent
        if is_table(table) and not table.parent.name.startswith("_"):
            found.append((table.parent.name, table.name))
    return found


def parse_as_of(value: AsOf) -> int | datetime | None:
    """A version number or an aware UTC datetime from `--as-of` style input (digits or ISO 8601 text)."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        msg = f"--as-of '{value}' is neither a table version nor an ISO 8601 time; use e.g. 3 or 2025-06-01T12:00Z."
        raise PipelineError(msg) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def open_table(lakehouse: Path, layer: str, name: str, as_of: AsOf = None) -> DeltaTable:
    """The Delta table at its latest version, or as of a version or time."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError, TableNotFoundError

    path = table_path(Path(lakehouse), layer, name)
    when = parse_as_of(as_of)
    try:
        table = DeltaTable(str(path))
    except TableNotFoundError as exc:
        msg = f"No Delta table at {path}; run the pipeline first (`bigbilbao run --until-idle`)."
        raise PipelineError(msg) from exc
    if when is None:
        return table
    try:
        if isinstance(when, datetime) and when.timestamp() * 1000 < _first_commit_ms(path):
            msg = "before the table's first commit"
            raise ValueError(msg)
        table.load_as_version(when)
    except (DeltaError, ValueError, OSError) as exc:
        shown = f"at or before {when.isoformat()}" if isinstance(when, datetime) else str(when)
        msg = (f"{layer}/{name} has no version {shown} (latest is {table.version()}); "
               "pick a version or time within its history.")
        raise PipelineError(msg) from exc
    return table


def _first_commit_ms(path: Path) -> float:
    """Epoch ms of the oldest commit file still in the log; like Spark, delta-rs dates commits by their files' times."""
    commits = sorted((path / "_delta_log").glob("*.json"))
    return commits[0].stat().st_mtime * 1000 if commits else float("-inf")


def read_table(lakehouse: Path, layer: str, name: str, columns: list[str] | None = None,
               version: int | None = None, as_of: AsOf = None) -> pa.Table:
    """One table as Arrow, optionally as of an older version or time (time travel)."""
    table = open_table(lakehouse, layer, name, version if version is not None else as_of)
    return table.to_pyarrow_table(columns=columns)


def read_pandas(lakehouse: Path, layer: str, name: str, columns: list[str] | None = None,
                as_of: AsOf = None) -> pd.DataFrame:
    """One table as pandas (timestamps stay timezone-aware UTC), optionally as of a version or time."""
    return read_table(lakehouse, layer, name, columns, as_of=as_of).to_pandas()


def last_commit(lakehouse: Path, layer: str, name: str) -> tuple[int, datetime]:
    """The version and time (UTC) of the table's latest data commit (property-only commits skipped): its freshness."""
    table = open_table(lakehouse, layer, name)
    history = table.history(HISTORY_LOOKBACK)
    data = [entry for entry in history if entry.get("operation") not in METADATA_OPERATIONS] or history[-1:]
    entry = data[0]
    return (int(entry.get("version", table.version())),
            datetime.fromtimestamp(entry["timestamp"] / 1000, tz=timezone.utc))


def duckdb_connection(lakehouse: Path):  # noqa: ANN201 - duckdb is imported lazily
    """A DuckDB connection with a view per lakehouse table (`bronze_traffic_flow`...), via DuckDB's delta extension."""
    import duckdb
    import duckdb_ext

    extension = next(Path(duckdb_ext.__path__[0]).rglob("delta.duckdb_extension"), None)
    if extension is None:
        msg = "DuckDB's delta extension is missing; reinstall the project (pip install -e .)."
        raise PipelineError(msg)
    con = duckdb.connect()
    con.execute(f"LOAD '{extension}'")
    for layer, name in list_tables(lakehouse):
        path = str(table_path(lakehouse, layer, name)).replace("'", "''")
        con.execute(f"CREATE VIEW {layer}_{name} AS SELECT * FROM delta_scan('{path}')")
    return con
