"""District population reference: the sourced, dated denominator of per-inhabitant KPIs.

The packaged `bigbilbao/resources/population.yaml` holds Bilbao's 8 districts (source, reference
date and a `verified` flag travel with the figures); a user's own file of the same shape replaces it.
Area codes are text, as in the scorecard: district "1".."8", barrio "101"..., city = the INE
municipality code "48020". The city's population is the sum of its districts.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bigbilbao.config.loader import read_yaml
from bigbilbao.errors import PopulationError

log = logging.getLogger(__name__)

DEFAULT_POPULATION = Path(__file__).resolve().parents[1] / "resources" / "population.yaml"
CITY, DISTRICT, BARRIO = "city", "district", "barrio"
_KEYS = {"source", "reference_date", "verified", "municipality", "districts", "barrios"}



@dataclass(frozen=True)
class Population:
    """Inhabitants per district (and optionally per barrio), with where and when the figures come from."""

    source: str
    reference_date: dt.date
    city_code: str
    districts: Mapping[str, int] = field(hash=False)
    barrios: Mapping[str, int] = field(default_factory=dict, hash=False)
    verified: bool = False
    names: Mapping[str, str] = field(default_factory=dict, hash=False)  # district and barrio code -> name

    def of(self, level: str, code: str) -> int | None:
        """Inhabitants of one area, or None when the reference has no figure for it."""
        if level == CITY:
            return sum(self.districts.values()) if code == self.city_code else None
        table = self.districts if level == DISTRICT else self.barrios
        return table.get(str(code))


def load_population(path: Path | str | None = None) -> Population:
    """Load and validate a population reference (default: the packaged Bilbao districts)."""
    path = Path(path) if path is not None else DEFAULT_POPULATION
    raw = read_yaml(path, PopulationError)
    population = parse_population(raw, path.name)
    if not population.verified:
        log.info("population figures from %s (%s) are not verified yet", path.name, population.reference_date)
    return population


def parse_population(raw: Any, name: str = "<population>") -> Population:
    """Validate the parsed YAML: source, date, municipality code, positive whole numbers per area."""
    if not isinstance(raw, dict) or not {"source", "reference_date", "municipality", "districts"} <= set(raw):
        message = f"{name}: needs source, reference_date, municipality and districts"
        raise PopulationError(message)
    unknown = set(raw) - _KEYS
    if unknown:
        message = f"{name}: unknown key {sorted(unknown)[0]!r} (expected one of {', '.join(sorted(_KEYS))})"
        raise PopulationError(message)
    if not isinstance(raw["reference_date"], dt.date):
        message = f"{name}: key 'reference_date' must be a date (YYYY-MM-DD), got {raw['reference_date']!r}"
        raise PopulationError(message)
    city = raw["municipality"].get("code") if isinstance(raw["municipality"], dict) else None
    if not isinstance(city, str) or not city:
        message = f"{name}: key 'municipality.code' must be the INE municipality code as text"
        raise PopulationError(message)
    return Population(str(raw["source"]), raw["reference_date"], city,
                      _table(raw["districts"], "district_code", f"{name}: districts"),
                      _table(raw.get("barrios", []), "barrio_code", f"{name}: barrios"), bool(raw.get("verified")),
                      _names([*raw["districts"], *raw.get("barrios", [])]))


def _names(rows: list[dict[str, Any]]) -> Mapping[str, str]:
    """Code -> name of the (already validated) district and barrio rows that carry a name."""
    codes = [str(row["barrio_code"] if "barrio_code" in row else row["district_code"]) for row in rows]
    return MappingProxyType({code: str(row["name"]) for code, row in zip(codes, rows) if row.get("name")})


def _table(rows: Any, code_key: str, where: str) -> Mapping[str, int]:
    """Turn [{<code_key>, name, population}] into code -> population, rejecting duplicates and non-positive counts."""
    if not isinstance(rows, list):
        message = f"{where}: must be a list of {{{code_key}, name, population}}"
        raise PopulationError(message)
    table: dict[str, int] = {}
    for index, row in enumerate(rows):
        ok = isinstance(row, dict) and code_key in row and isinstance(row.get("population"), int) \
            and not isinstance(row.get("population"), bool) and row["population"] > 0
        if not ok or str(row[code_key]) in table:
            message = f"{where}[{index}]: needs a unique {code_key} and a positive whole population, got {row!r}"
            raise PopulationError(message)
        table[str(row[code_key])] = int(row["population"])
    return MappingProxyType(table)
