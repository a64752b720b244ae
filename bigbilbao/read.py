"""Reading lakehouse tables without Spark or a JVM: delta-rs (deltalake) into Arrow/pandas."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa

from bigbilbao.errors import PipelineError

log = logging.getLogger(__name__)


def table_path(lakehouse: Path, layer: str, name: str) -> Path:
    """Where a table lives: <lakehouse>/<layer>/<name>."""
    return lakehouse / layer / name


def list_tables(lakehouse: Path) -> list[tuple[str, str]]:
    """(layer, name) of every Delta table in the lakehouse."""
    found = []
    for log_dir in sorted(lakehouse.glob("*/*/_delta_log")):
        table = log_dir.parent
        if not table.parent.name.startswith("_"):
            found.append((table.parent.name, table.name))
    return found


def read_table(lakehouse: Path, layer: str, name: str, columns: list[str] | None = None,
               version: int | None = None) -> pa.Table:
    """One table as Arrow, optionally at an older version (time travel)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    path = table_path(lakehouse, layer, name)
    try:
        table = DeltaTable(str(path), version=version)
    except TableNotFoundError as exc:
        msg = f"No Delta table at {path}; run the pipeline first (`bigbilbao run --until-idle`)."
        raise PipelineError(msg) from exc
    return table.to_pyarrow_table(columns=columns)


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
