"""Areas and data capture: fan rows out to city/district/barrio, and share the expected sensor-hours observed.

Data capture of a sensor KPI = sensor-hours with an observation / (expected sensors x hours of the
span), counting only `local_hours` (Bilbao clock hours) when the KPI restricts them. It is computed
per area from the expected sensors' own locations, so a sensor that reports nothing still counts.
"""

from __future__ import annotations

import pandas as pd

from bigbilbao.scorecard.periods import Span
from bigbilbao.scorecard.population import BARRIO, CITY, DISTRICT

AREA_KEYS = ["area_level", "area_code"]
TIME_ZONE = "Europe/Madrid"  # local_hours are Bilbao's clock hours


def by_area(frame: pd.DataFrame, city_code: str) -> pd.DataFrame:
    """Repeat each row for the city, its district and its barrio (when known), adding area_level/area_code."""
    parts = [frame.assign(area_level=CITY, area_code=city_code)]
    for level, column in ((DISTRICT, "district_code"), (BARRIO, "barrio_code")):
        located = frame[frame[column].notna()]
        parts.append(located.assign(area_level=level, area_code=located[column]))
    return pd.concat(parts, ignore_index=True)


def local_hour_mask(times: pd.Series, hours: tuple[int, int]) -> pd.Series:
    """True for times whose Bilbao clock hour lies in [start, end), wrapping past midnight."""
    local = times.dt.tz_convert(TIME_ZONE).dt.hour
    start, end = hours
    return (local >= start) & (local < end) if start < end else (local >= start) | (local < end)


def in_span(units: pd.DataFrame, span: Span) -> pd.DataFrame:
    """Units whose time lies in [span.start, span.end)."""
    times = units["time"]
    return units[(times >= pd.Timestamp(span.start)) & (times < pd.Timestamp(span.end))]


def captured_sensors(units: pd.DataFrame, span: Span, minimum: float) -> pd.DataFrame:
    """Keep the sensors that observed at least `minimum` of the span's hours, so one stray hour is no period mean."""
    hours = units.groupby("sensor_id")["time"].nunique()
    kept = hours[hours >= minimum * span.hours].index
    return units[units["sensor_id"].isin(kept)]


def capture_share(present: pd.DataFrame, expected: pd.DataFrame, span: Span, local_hours: tuple[int, int] | None,
                  city_code: str) -> pd.Series:
    """Per area: observed (sensor, hour) pairs / (expected sensors x expected hours); NaN where none is expected."""
    hours = pd.date_range(span.start, span.end, freq="h", inclusive="left")
    present = present[(present["hour_start"] >= pd.Timestamp(span.start))
                      & (present["hour_start"] < pd.Timestamp(span.end))]
    if local_hours is not None:
        hours = hours[local_hour_mask(pd.Series(hours), local_hours).to_numpy()]
        present = present[local_hour_mask(present["hour_start"], local_hours)]
    counts = present.groupby("sensor_id").size()
    sensors = expected.assign(present=expected["sensor_id"].map(counts).fillna(0.0), expected=float(len(hours)))
    totals = by_area(sensors, city_code).groupby(AREA_KEYS)[["present", "expected"]].sum()
    return (totals["present"] / totals["expected"].where(totals["expected"] > 0)).rename("capture")
