"""Table maintenance while the streams write: OPTIMIZE (compaction) and VACUUM with delta-rs, no Spark needed.

Compaction commits change no data (`dataChange: false`), so the Delta streaming sources of silver and gold skip
them; a maintenance commit that collides with a stream's commit is retried on a fresh snapshot, never fatal.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bigbilbao.config.maintenance import MaintenanceSettings
from bigbilbao.tables import read
from bigbilbao.tables.conflicts import retry_on_conflict

log = logging.getLogger(__name__)

Result = TypeVar("Result")
MB = 1024 * 1024


@dataclass(frozen=True)
class TableMaintenance:
    """What one table's maintenance did, for the command's report."""

    table: str
    files_before: int
    files_after: int
    files_compacted: int
    files_written: int
    files_vacuumed: int
    retries: int
    seconds: float


def selected_tables(lakehouse: Path, globs: tuple[str, ...]) -> list[tuple[str, str]]:
    """(layer, name) of the lakehouse tables matching any of the '<layer>/<name>' globs."""
    return [(layer, name) for layer, name in read.list_tables(lakehouse)
            if any(fnmatch.fnmatchcase(f"{layer}/{name}", glob) for glob in globs)]


def maintain(lakehouse: Path, settings: MaintenanceSettings,
             report: Callable[[TableMaintenance], None] | None = None) -> list[TableMaintenance]:
    """Compact and vacuum every selected table in turn; `report` hears about each table as it finishes."""
    done = []
    for layer, name in selected_tables(Path(lakehouse), settings.tables):
        result = maintain_table(Path(lakehouse), layer, name, settings)
        log.debug("%s: %d -> %d files (%d compacted into %d), %d vacuumed, %d retries, %.1f s",
                 result.table, result.files_before, result.files_after, result.files_compacted,
                 result.files_written, result.files_vacuumed, result.retries, result.seconds)
        if report:
            report(result)
        done.append(result)
    return done


def maintain_table(lakehouse: Path, layer: str, name: str, settings: MaintenanceSettings) -> TableMaintenance:
    """OPTIMIZE then VACUUM one table, each retried on concurrent-commit conflicts."""
    started = time.monotonic()
    retries = [0]
    what = f"{layer}/{name}"
    before = len(read.open_table(lakehouse, layer, name).file_uris())
    compacted = written = vacuumed = 0
    if settings.optimize:
        metrics = _retrying(lambda: read.open_table(lakehouse, layer, name).optimize.compact(
            target_size=settings.target_file_mb * MB), f"OPTIMIZE {what}", settings.conflict_retries, retries)
        compacted, written = int(metrics["numFilesRemoved"]), int(metrics["numFilesAdded"])
    if settings.vacuum:
        deleted = _retrying(lambda: read.open_table(lakehouse, layer, name).vacuum(
            retention_hours=settings.vacuum_retention_hours, dry_run=False,
            enforce_retention_duration=settings.retention_check), f"VACUUM {what}", settings.conflict_retries, retries)
        vacuumed = len(deleted)
    after = len(read.open_table(lakehouse, layer, name).file_uris())
    return TableMaintenance(what, before, after, compacted, written, vacuumed, retries[0],
                            round(time.monotonic() - started, 2))


def _retrying(action: Callable[[], Result], what: str, attempts: int, retries: list[int]) -> Result:
    """Run a maintenance commit, retrying Delta's optimistic-concurrency conflicts with a growing pause."""
    from deltalake.exceptions import CommitFailedError

    return retry_on_conflict(action, what, (CommitFailedError,), attempts, 0.5, lambda error: (
        f"{what} conflicted with concurrent writes {attempts} times ({error}); run `bigbilbao maintain` "
        "again, or raise maintenance.conflict_retries."), retries)
