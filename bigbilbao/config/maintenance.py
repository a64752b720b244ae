"""Settings of `bigbilbao maintain`: which tables to compact and vacuum, and how long removed files are kept."""

from __future__ import annotations

from dataclasses import dataclass

from bigbilbao.errors import SettingsError

SAFE_RETENTION_HOURS = 168


@dataclass(frozen=True)
class MaintenanceSettings:
    """OPTIMIZE (bin-packing compaction) and VACUUM for every table whose '<layer>/<name>' matches `tables`."""

    tables: tuple[str, ...] = ("*",)
    optimize: bool = True
    vacuum: bool = True
    target_file_mb: int = 128
    vacuum_retention_hours: int = SAFE_RETENTION_HOURS
    retention_check: bool = True
    conflict_retries: int = 6

    def __post_init__(self) -> None:
        """A short retention can delete files a lagging stream or a time-travel reader still needs: opt in."""
        if self.vacuum_retention_hours < 0 or self.target_file_mb < 1 or self.conflict_retries < 1:
            msg = ("Settings keys 'maintenance.vacuum_retention_hours' (>= 0), 'maintenance.target_file_mb' (>= 1) and "
                   "'maintenance.conflict_retries' (>= 1) are out of range.")
            raise SettingsError(msg)
        if self.retention_check and self.vacuum_retention_hours < SAFE_RETENTION_HOURS:
            msg = (f"Settings key 'maintenance.vacuum_retention_hours' is {self.vacuum_retention_hours}, below the "
                   f"{SAFE_RETENTION_HOURS}-hour safety interval; streams or readers lagging more than that would lose "
                   "files. Raise it, or set 'maintenance.retention_check: false' if you are sure.")
            raise SettingsError(msg)
