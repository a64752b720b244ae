"""Balanced scorecard: KPI values, RAG statuses, trends, EU exceedances and 0-100 scores per area and period.

Pure pandas/numpy; the Spark gold stage produces the input tables below and Delta stores the output.

Gold input contract (pandas DataFrames; extra columns are ignored; times tz-aware UTC)
-------------------------------------------------------------------------------------
gold_hourly -- one row per feed x field x sensor x hour, for the (feed, field) pairs that
`required_sources(catalogue)["hourly"]` lists:
    feed (str)             feed name as in schemas/, e.g. "air_quality"
    field (str)            contract field, e.g. "no2"
    sensor_id (str)        the sensor's entity id (the contract's id_field)
    district_code (int|str, null)  district from the spatial join; null = outside every district
    barrio_code (str, null)        barrio from the spatial join
    hour_start (timestamp UTC)     start of the hour the observations' event_time falls in
    n (long)               silver observations of the field in the hour with a non-null value
    sum, mean, min, max (double)   of those observations, in the contract's canonical unit
    (rows with n = 0 may be left out; data capture counts sensor-hours with n > 0)
gold_events -- one row per silver event and (feed, field) in `required_sources(...)["events"]`
where the field is present (for the contract's id field: every event):
    feed, field (str); event_id (str); district_code, barrio_code; event_time (timestamp UTC)
    value (double, null)   numeric field: its value; timestamp field: seconds from event_time to it
                           (arrivalTime -> the response time); any other field: null
gold_quality -- one row per feed x district x barrio x hour (of event_time, else of arrival):
    feed (str); district_code, barrio_code (null when not located: counted for the city only)
    hour_start (timestamp UTC); n_valid (rows written to silver); n_quarantined (rows quarantined)
    lag_sum_s (double)     sum over the silver rows of (silver write time - event_time) in seconds
sensors (optional registry) -- feed, sensor_id, district_code, barrio_code: the sensors expected to
report, the denominator of data capture (without it: every sensor gold_hourly has for the field).

Output
------
`Scorecard.kpis`: one row per KPI x area (city "48020", district, barrio) x period (day, week,
month, year_to_date; see `bigbilbao.scorecard.periods`): kpi_id, perspective, area_level, area_code, period,
period_start, period_end, value, unit, target, status, score, trend, delta, previous_value,
exceedances_used, exceedances_allowed, data_capture, n, suppressed, catalogue_version,
boundary_version. `Scorecard.scores`: per area x period x perspective (and "overall"): score, n_kpis.

Rules
-----
- status: `no_data` when there is no value or data_capture < min_data_capture (sensor KPIs; a
  sensor KPI with no expected sensor has no capture and is no_data); None for trend-only KPIs;
  `red` when exceedances_used > allowed_per_year; else green if the value is at least as good as
  thresholds.green, amber if at least as good as thresholds.amber, red otherwise. The value is
  published even when no_data, with its data_capture (exact statistics: `bigbilbao.scorecard.statistics`).
  Exceedances are counted from 1 January to the period's end, whatever the period.
- score (0-100): lower_is_better: 100 * (red - value) / (red - target); higher_is_better:
  100 * (value - red) / (target - red); clipped to [0, 100], so at or beyond target = 100 and at or
  beyond the red threshold = 0. A breached exceedance allowance scores 0. No score for no_data,
  trend-only or suppressed rows.
- trend: previous_value is the same KPI over the previous like-for-like span, used only when that
  span is valid too; delta = value - previous_value; trend 'flat' when |delta| <= 1 % of
  |previous_value| (exactly 0 when previous is 0), else 'up'/'down' (direction of the value, not
  of goodness).
- perspective score: weighted mean of its KPIs' scores with the KPI weights, over KPIs that have a
  score (weights renormalised); overall: weighted mean of the perspective scores with the
  catalogue's perspective weights, over perspectives that have a score.
- small-count suppression (event KPIs): when 1 <= n < k (also n = 0 if suppress_zero) value, n,
  delta and score are published as null and `suppressed` is True (a score or delta would give
  the count back); status and trend direction stay. A suppressed previous span hides
  previous_value and delta.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from bigbilbao.scorecard.capture import AREA_KEYS
from bigbilbao.scorecard.inputs import GoldFrames, prepare_gold, required_sources
from bigbilbao.scorecard.kpi_model import Catalogue, Kpi
from bigbilbao.scorecard.periods import PERIODS, ReportingPeriod, reporting_periods
from bigbilbao.scorecard.population import BARRIO, CITY, DISTRICT, Population, load_population
from bigbilbao.scorecard.scoring import judge, roll_up
from bigbilbao.scorecard.statistics import Context, measure

log = logging.getLogger(__name__)

KPI_COLUMNS = ["kpi_id", "perspective", "area_level", "area_code", "period", "period_start", "period_end", "value",
               "unit", "target", "status", "score", "trend", "delta", "previous_value", "exceedances_used",
               "exceedances_allowed", "data_capture", "n", "suppressed", "catalogue_version", "boundary_version"]
__all__ = ["KPI_COLUMNS", "Scorecard", "area_universe", "compute_scorecard", "required_sources"]


@dataclass(frozen=True, eq=False)
class Scorecard:
    """The scorecard of one run: KPI rows and the perspective/overall scores rolled up from them."""

    kpis: pd.DataFrame
    scores: pd.DataFrame


def compute_scorecard(catalogue: Catalogue, gold_hourly: pd.DataFrame | None, *, as_of: datetime,
                      boundary_version: str, gold_events: pd.DataFrame | None = None,
                      gold_quality: pd.DataFrame | None = None, sensors: pd.DataFrame | None = None,
                      population: Population | None = None, periods: Sequence[str] = PERIODS, k: int = 5,
                      suppress_zero: bool = False) -> Scorecard:
    """Compute every KPI for every area and period ending at `as_of`, then roll the scores up."""
    gold = prepare_gold(gold_hourly, gold_events, gold_quality, sensors)
    population = population if population is not None else load_population()
    ctx = Context(gold, population, catalogue.eaqi, area_universe(gold, population))
    rows = [row for period in reporting_periods(as_of, tuple(periods)) for kpi in catalogue.kpis
            for row in _kpi_rows(kpi, period, ctx, k, suppress_zero)]
    kpis = _typed(pd.DataFrame(rows, columns=KPI_COLUMNS).assign(catalogue_version=catalogue.version,
                                                                 boundary_version=boundary_version))
    log.info("scorecard: %d KPI rows for %d areas as of %s", len(kpis), len(ctx.areas), as_of.isoformat())
    return Scorecard(kpis, roll_up(kpis, catalogue))


def area_universe(gold: GoldFrames, population: Population) -> pd.MultiIndex:
    """Every area a row is published for: the city, known districts and barrios (reference or data)."""
    districts, barrios = set(population.districts), set(population.barrios)
    for frame in (gold.hourly, gold.events, gold.quality, gold.sensors):
        districts.update(frame["district_code"].dropna())
        barrios.update(frame["barrio_code"].dropna())
    areas = [(CITY, population.city_code)]
    areas += [(DISTRICT, code) for code in sorted(districts, key=_natural)]
    areas += [(BARRIO, code) for code in sorted(barrios, key=_natural)]
    return pd.MultiIndex.from_tuples(areas, names=AREA_KEYS)


def _natural(code: str) -> tuple[int, int, str]:
    """Sort '2' before '10' while keeping non-numeric codes stable."""
    return (0, int(code), code) if code.isdigit() else (1, 0, code)


def _kpi_rows(kpi: Kpi, period: ReportingPeriod, ctx: Context, k: int, suppress_zero: bool) -> list[dict[str, Any]]:
    """One KPI's rows for every area in one period: measure both spans, then judge each area."""
    current = measure(kpi, period.current, ctx)
    previous = measure(kpi, period.previous, ctx)
    rows = []
    for area, now in current.iterrows():
        verdict = judge(kpi, _clean(now), _clean(previous.loc[area]), k, suppress_zero)
        rows.append({"kpi_id": kpi.id, "perspective": kpi.perspective, "area_level": area[0], "area_code": area[1],
                     "period": period.name, "period_start": pd.Timestamp(period.current.start),
                     "period_end": pd.Timestamp(period.current.end), "unit": kpi.unit, "target": kpi.target,
                     "exceedances_allowed": kpi.exceedance.allowed_per_year if kpi.exceedance else None,
                     **verdict})
    return rows


def _typed(kpis: pd.DataFrame) -> pd.DataFrame:
    """Fix the column types (nullable where needed), so every run writes the same Delta schema."""
    numbers = ["value", "target", "score", "delta", "previous_value", "exceedances_used", "data_capture", "n"]
    kpis[numbers] = kpis[numbers].astype("float64")
    kpis["exceedances_allowed"] = kpis["exceedances_allowed"].astype("Int64")
    kpis["suppressed"] = kpis["suppressed"].astype("bool")
    for column in ("period_start", "period_end"):
        kpis[column] = pd.to_datetime(kpis[column], utc=True)
    for column in ("status", "trend"):
        kpis[column] = kpis[column].astype("object").where(kpis[column].notna(), None)
    return kpis


def _clean(row: pd.Series) -> dict[str, float | None]:
    """A measurement row with NaN turned into None."""
    return {key: None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
            for key, value in row.items()}
