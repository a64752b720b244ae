"""The gold tables the scorecard reads, checked and normalised once: columns, UTC times, area codes as text.

The column contract is documented in `bigbilbao.scorecard.compute` (module docstring) and spelled out in
the `*_COLUMNS` constants below; `required_sources` tells the gold stage which (feed, field) pairs
a catalogue needs in `gold_hourly` and in `gold_events`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from bigbilbao.errors import GoldInputError
from bigbilbao.scorecard.kpi_model import QUALITY_STATISTICS, Catalogue

HOURLY_COLUMNS = {"feed": "text", "field": "text", "sensor_id": "text", "district_code": "code",
                  "barrio_code": "code", "hour_start": "hour", "n": "number", "sum": "number", "mean": "number",
                  "min": "number", "max": "number"}
EVENT_COLUMNS = {"feed": "text", "field": "text", "event_id": "text", "district_code": "code",
                 "barrio_code": "code", "event_time": "time", "value": "number"}
QUALITY_COLUMNS = {"feed": "text", "district_code": "code", "barrio_code": "code", "hour_start": "hour",
                   "n_valid": "number", "n_quarantined": "number", "lag_sum_s": "number"}
SENSOR_COLUMNS = {"feed": "text", "sensor_id": "text", "district_code": "code", "barrio_code": "code"}



@dataclass(frozen=True, eq=False)
class GoldFrames:
    """The scorecard's inputs after `prepare_gold`: every table present (maybe empty), codes as text, UTC."""

    hourly: pd.DataFrame
    events: pd.DataFrame
    quality: pd.DataFrame
    sensors: pd.DataFrame


def prepare_gold(hourly: pd.DataFrame | None, events: pd.DataFrame | None = None,
                 quality: pd.DataFrame | None = None, sensors: pd.DataFrame | None = None) -> GoldFrames:
    """Check and normalise the gold tables; a missing table is an empty one."""
    return GoldFrames(_table(hourly, HOURLY_COLUMNS, "gold_hourly"), _table(events, EVENT_COLUMNS, "gold_events"),
                      _table(quality, QUALITY_COLUMNS, "gold_quality"), _table(sensors, SENSOR_COLUMNS, "sensors"))


def required_sources(catalogue: Catalogue) -> dict[str, set[tuple[str, str]]]:
    """The (feed, field) pairs each gold table must carry for this catalogue: {'hourly': ..., 'events': ...}."""
    needed: dict[str, set[tuple[str, str]]] = {"hourly": set(), "events": set()}
    for kpi in catalogue.kpis:
        if kpi.aggregation.statistic in QUALITY_STATISTICS:
            continue
        table = "events" if kpi.aggregation.window == "event" else "hourly"
        needed[table].update((kpi.source.feed, name) for name in kpi.source.fields)
    return needed


def _table(frame: pd.DataFrame | None, columns: Mapping[str, str], name: str) -> pd.DataFrame:
    """Keep the contract's columns in contract order, typed; reject what cannot be scored honestly."""
    if frame is None:
        frame = pd.DataFrame({column: [] for column in columns})
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        message = f"{name} lacks column(s) {', '.join(missing)} (expected {', '.join(columns)})"
        raise GoldInputError(message)
    out = pd.DataFrame(index=frame.index)
    for column, kind in columns.items():
        out[column] = _convert(frame[column], kind, f"{name}.{column}")
    return out.reset_index(drop=True)


def _convert(series: pd.Series, kind: str, where: str) -> pd.Series:
    """Type one column: text, area code (text or None), number, or a tz-aware UTC time (on the hour for 'hour')."""
    if kind == "number":
        return pd.to_numeric(series, errors="raise").astype("float64")
    if kind == "text":
        return series.astype("object").map(lambda v: None if pd.isna(v) else str(v))
    if kind == "code":
        return series.astype("object").map(_code)
    if series.empty:
        return pd.Series(dtype="datetime64[ns, UTC]", index=series.index)
    times = pd.to_datetime(series)
    if times.dt.tz is None:
        message = f"{where} must be timezone-aware (UTC); naive times are ambiguous"
        raise GoldInputError(message)
    times = times.dt.tz_convert("UTC")
    if kind == "hour" and bool((times != times.dt.floor("h")).any()):
        message = f"{where} must be the start of an hour"
        raise GoldInputError(message)
    return times.astype("datetime64[ns, UTC]")


def _code(value: object) -> str | None:
    """District 1, 1.0 and '1' are the same area: compare codes as text without a trailing '.0'."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
