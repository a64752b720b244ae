"""The KPI catalogue's typed model: what `bigbilbao.scorecard.catalogue` builds from YAML and
`bigbilbao.scorecard.compute` reads.

Kept apart from the loader so the scorecard, the loader and the tests share one definition of
every key's meaning. The YAML format is described in the header of `bigbilbao/resources/kpis.yaml`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bigbilbao.errors import CatalogueError

PERSPECTIVES = ("sustainability", "mobility", "safety", "service_data")
DIRECTIONS = ("higher_is_better", "lower_is_better")
ALL_FEEDS = "*"
# Units a KPI is computed from: one event, one sensor-hour, one sensor-day (valid with >= 18 hours),
# one 8-hour rolling mean per sensor and hour (valid with >= 6 hours), or one value per sensor over the period.
WINDOWS = ("event", "hour", "day", "8h_rolling", "period")
_VALUES = frozenset(WINDOWS)
# statistic -> windows it accepts
STATISTICS: Mapping[str, frozenset[str]] = {
    "mean": _VALUES, "max": _VALUES, "p90": _VALUES,
    "count": frozenset({"event"}),
    "sum": frozenset({"event", "hour"}),
    "share_of_time": frozenset({"event", "hour", "day", "8h_rolling"}),
    "exceedance_count": frozenset({"hour", "day", "8h_rolling"}),
    "max_daily_8h_mean": frozenset({"8h_rolling"}),
    "counter_increase": frozenset({"period"}),
    "eaqi_share": frozenset({"hour"}),
    "data_capture": frozenset({"hour"}),
    "freshness": frozenset({"period"}),
    "quarantine_rate": frozenset({"period"}),
}
QUALITY_STATISTICS = frozenset({"freshness", "quarantine_rate"})  # read gold_quality, not gold_hourly
RATE_STATISTICS = frozenset({"count", "sum", "counter_increase"})  # may be normalised and turned into rates
AVERAGING_PERIODS = {"hour": "hour", "day": "day", "max_daily_8h_mean": "8h_rolling"}  # -> matching window
OPERATORS = ("gt", "ge", "lt", "le", "between")
HOUR_VALUES = ("mean", "min", "max", "sum")  # which column of gold_hourly a sensor-hour takes
NORMALISE = ("per_100k", "per_inhabitant")
RATES = ("per_day", "per_year")



@dataclass(frozen=True)
class Source:
    """Where a KPI's values come from: one feed (or '*' for every feed) and one or more of its fields."""

    feed: str
    fields: tuple[str, ...]

    @property
    def field(self) -> str:
        """The first field, the one single-field statistics read."""
        return self.fields[0]


@dataclass(frozen=True)
class Condition:
    """A per-unit test such as 'above 0.8' (or 'between value and high', both inclusive), used by share_of_time."""

    op: str
    value: float
    high: float | None = None


@dataclass(frozen=True)
class Aggregation:
    """How units are formed and reduced to one value per area and period."""

    window: str
    statistic: str
    hour_value: str = "mean"
    condition: Condition | None = None
    bands: tuple[str, ...] = ()
    normalise: str | None = None
    rate: str | None = None
    local_hours: tuple[int, int] | None = None


@dataclass(frozen=True)
class Thresholds:
    """RAG edges: at least as good as `green` is green, as `amber` is amber; `red` is where the score hits 0."""

    green: float
    amber: float
    red: float


@dataclass(frozen=True)
class Exceedance:
    """An EU-style rule: `limit` over `averaging_period` may be exceeded `allowed_per_year` times a calendar year."""

    limit: float
    averaging_period: str
    allowed_per_year: int


@dataclass(frozen=True)
class Kpi:
    """One indicator of the balanced scorecard, fully validated."""

    id: str
    perspective: str
    objective: str
    definition: str
    unit: str
    source: Source
    aggregation: Aggregation
    direction: str
    target: float | None
    thresholds: Thresholds | None
    min_data_capture: float
    reference: str
    weight: float
    exceedance: Exceedance | None = None
    benchmarks: Mapping[str, float] = field(default_factory=dict, hash=False)
    notes: str = ""

    @property
    def trend_only(self) -> bool:
        """True for indicators published for their trend only (no target, no colour, no score)."""
        return self.target is None

    @property
    def uses_capture(self) -> bool:
        """True when the KPI reads sensor-hours, whose data capture gates its status."""
        quality = self.aggregation.statistic in QUALITY_STATISTICS
        return self.aggregation.window != "event" and not quality


@dataclass(frozen=True)
class EaqiBands:
    """European Air Quality Index band table: per pollutant, the inclusive upper bound of every band but the last."""

    bands: tuple[str, ...]
    upper_bounds: Mapping[str, tuple[float, ...]] = field(hash=False)
    running_24h: frozenset[str] = frozenset()
    reference: str = ""


@dataclass(frozen=True)
class Catalogue:
    """A validated KPI catalogue with its content hash, which every scorecard row records."""

    version: str
    perspectives: Mapping[str, float] = field(hash=False)
    kpis: tuple[Kpi, ...] = ()
    eaqi: EaqiBands | None = None
    path: Path | None = field(default=None, compare=False)

    def kpi(self, kpi_id: str) -> Kpi:
        """Return one KPI by id, so a misspelt id fails loudly."""
        for kpi in self.kpis:
            if kpi.id == kpi_id:
                return kpi
        message = f"the catalogue has no KPI {kpi_id!r}"
        raise CatalogueError(message)
