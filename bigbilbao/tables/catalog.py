"""Data catalogue: governance fields from settings written onto every Delta table as table properties, and read back.

Properties: bigbilbao.owner, bigbilbao.steward, bigbilbao.classification, bigbilbao.retention and
bigbilbao.description (also the table's Delta description). Written with delta-rs, only when they
differ, so applying them again commits nothing.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bigbilbao.config.settings import Settings
from bigbilbao.errors import PipelineError
from bigbilbao.tables import read
from bigbilbao.tables.conflicts import retry_on_conflict

log = logging.getLogger(__name__)

PREFIX = "bigbilbao."
FIELDS = ("owner", "steward", "classification", "retention", "description")
ATTEMPTS = 3


@dataclass(frozen=True)
class TableEntry:
    """One table as the catalogue lists it."""

    layer: str
    name: str
    governance: dict[str, str | None]
    schema: list[dict[str, str]]
    rows: int
    version: int
    last_commit: datetime
    dq_pass_rate: float | None = None
    dq_measured_at: datetime | None = None

    @property
    def table(self) -> str:
        """'<layer>/<name>'."""
        return f"{self.layer}/{self.name}"


def governance_for(settings: Settings, layer: str, name: str) -> dict[str, str | None]:
    """The governance fields settings declare for one table (later matching entries win, field by field)."""
    merged: dict[str, str | None] = dict.fromkeys(FIELDS)
    for entry in settings.catalog.tables:
        if fnmatch.fnmatchcase(f"{layer}/{name}", entry.match):
            merged.update({key: getattr(entry, key) for key in FIELDS if getattr(entry, key) is not None})
    if merged["description"]:
        merged["description"] = merged["description"].replace("{name}", name)
    return merged


def apply_properties(lakehouse: Path, settings: Settings) -> int:
    """Write the declared governance fields onto every table of the lakehouse; returns how many tables changed."""
    changed = 0
    for layer, name in read.list_tables(Path(lakehouse)):
        wanted = {PREFIX + key: value for key, value in governance_for(settings, layer, name).items() if value}
        if wanted and _apply_one(Path(lakehouse), layer, name, wanted):
            changed += 1
    log.info("catalogue: governance properties written on %d table(s)", changed)
    return changed


def _apply_one(lakehouse: Path, layer: str, name: str, wanted: dict[str, str]) -> bool:
    """Set one table's properties (and description) when they differ; retries concurrent-commit conflicts."""
    from deltalake.exceptions import CommitFailedError

    def attempt() -> bool:
        table = read.open_table(lakehouse, layer, name)
        metadata = table.metadata()
        current = {k: v for k, v in metadata.configuration.items() if k.startswith(PREFIX)}
        description = wanted.get(PREFIX + "description")
        if current == wanted and (not description or metadata.description == description):
            return False
        if current != wanted:
            table.alter.set_table_properties(wanted, raise_if_not_exists=False)
        if description and metadata.description != description:
            table.alter.set_table_description(description)
        return True

    return retry_on_conflict(attempt, f"catalogue properties on {layer}/{name}", (CommitFailedError,), ATTEMPTS, 0.5,
                             lambda error: (f"Could not write catalogue properties on {layer}/{name} ({error}); "
                                            "run the command again."))


def describe(lakehouse: Path) -> list[TableEntry]:
    """Every table with its governance properties, schema, row count, last commit and latest DQ pass rate."""
    lakehouse = Path(lakehouse)
    rates = dq_pass_rates(lakehouse)
    entries = []
    for layer, name in read.list_tables(lakehouse):
        table = read.open_table(lakehouse, layer, name)
        config = table.metadata().configuration
        version, committed = read.last_commit(lakehouse, layer, name)
        rate, measured = rates.get(name, (None, None)) if layer in ("bronze", "silver") else (None, None)
        entries.append(TableEntry(
            layer=layer, name=name, governance={key: config.get(PREFIX + key) for key in FIELDS},
            schema=[{"name": f.name, "type": type_name(f.type)} for f in table.schema().fields],
            rows=row_count(table), version=version, last_commit=committed,
            dq_pass_rate=rate, dq_measured_at=measured))
    return entries


def type_name(dtype: Any) -> str:
    """A Delta column type in SQL-like spelling: string, array<string>, map<string,long>, struct<a:int>."""
    if hasattr(dtype, "element_type"):
        return f"array<{type_name(dtype.element_type)}>"
    if hasattr(dtype, "key_type"):
        return f"map<{type_name(dtype.key_type)},{type_name(dtype.value_type)}>"
    if hasattr(dtype, "fields"):
        return "struct<" + ",".join(f"{f.name}:{type_name(f.type)}" for f in dtype.fields) + ">"
    return str(getattr(dtype, "type", dtype))


def row_count(table: Any) -> int:
    """Rows of a Delta table from its file statistics, counting the data when a file has none."""
    actions = table.get_add_actions(flatten=True)
    counts = actions.column("num_records").to_pylist() if actions.num_rows else []
    if all(c is not None for c in counts):
        return int(sum(counts))
    return table.to_pyarrow_dataset().count_rows()


def dq_pass_rates(lakehouse: Path) -> dict[str, tuple[float, datetime]]:
    """Per feed, the share of its latest non-empty micro-batch that broke no quarantine rule, from quality/dq_metrics.

    A row breaking two rules counts twice, so the rate is a lower bound; duplicates are not failures.
    """
    try:
        metrics = read.read_pandas(lakehouse, "quality", "dq_metrics")
    except PipelineError:
        return {}
    rates: dict[str, tuple[float, datetime]] = {}
    for feed, rows in metrics[metrics["rows_in_batch"] > 0].groupby("feed"):
        latest = rows[rows["measured_at"] == rows["measured_at"].max()]
        size = int(latest["rows_in_batch"].max())
        broken = int(latest.loc[latest["action"] == "quarantine", "violations"].sum())
        rate = max(0.0, 1.0 - broken / size)
        rates[str(feed)] = (rate, latest["measured_at"].max().to_pydatetime())
    return rates
