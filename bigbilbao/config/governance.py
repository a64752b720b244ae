"""Settings of the data catalogue: governance fields per table, by glob over '<layer>/<name>' (see catalog.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import yaml

from bigbilbao.config.loader import DEFAULT_CONFIG, build_dataclass
from bigbilbao.errors import SettingsError

log = logging.getLogger(__name__)

CLASSIFICATIONS = ("public", "internal", "personal-pseudonymised", "personal")


@dataclass(frozen=True)
class TableGovernance:
    """Governance fields for the tables whose '<layer>/<name>' matches the glob `match`; unset fields inherit."""

    match: str = "*"
    owner: str | None = None
    steward: str | None = None
    classification: str | None = None
    retention: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        """Reject a classification outside the known ones."""
        if self.classification is not None and self.classification not in CLASSIFICATIONS:
            msg = (f"Settings key 'catalog.tables' entry '{self.match}' has classification "
                   f"'{self.classification}'; use one of {', '.join(CLASSIFICATIONS)}.")
            raise SettingsError(msg)


def _packaged_governance() -> tuple[TableGovernance, ...]:
    """The `catalog.tables` entries of the packaged settings file: the defaults when a file has no catalog section."""
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8")) or {}
    return tuple(build_dataclass(TableGovernance, entry, f"catalog.tables[{i}]")
                 for i, entry in enumerate(raw.get("catalog", {}).get("tables", [])))


@dataclass(frozen=True)
class CatalogSettings:
    """Data catalogue: governance entries applied in order, a later matching entry overriding earlier fields."""

    tables: tuple[TableGovernance, ...] = field(default_factory=_packaged_governance)
