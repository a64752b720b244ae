"""EU averaging rules, EAQI bands and reporting periods, on small hand-computed inputs."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import pytest

from bigbilbao.scorecard.catalogue import load_catalogue
from bigbilbao.scorecard.exceedances import daily_means, eaqi_bands, exceedance_flags, max_daily_8h_means, rolling_means
from bigbilbao.scorecard.periods import PeriodError, Span, reporting_periods

UTC = timezone.utc


def units(sensor: str, values: dict[int, float], day: int = 7) -> pd.DataFrame:
    """Hourly units of one sensor on 2025-03-<day>: {hour: value}."""
    return pd.DataFrame({"sensor_id": sensor, "district_code": "1", "barrio_code": "101",
                         "time": [pd.Timestamp(2025, 3, day, hour, tz="UTC") for hour in values],
                         "value": list(values.values())})


def test_daily_mean_needs_18_hours() -> None:
    enough = units("A", {hour: 10.0 + hour for hour in range(18)})  # hours 0..17: mean of 10..27 = 18.5
    short = units("B", {hour: 99.0 for hour in range(17)})          # 17 hours: not a valid day
    days = daily_means(pd.concat([enough, short], ignore_index=True))
    assert days["sensor_id"].tolist() == ["A"]
    assert days["value"].tolist() == [18.5]
    assert days["time"].tolist() == [pd.Timestamp(2025, 3, 7, tz="UTC")]
    assert days["district_code"].tolist() == ["1"]


def test_8_hour_mean_is_stamped_with_its_last_hour_and_needs_6_hours() -> None:
    rolled = rolling_means(units("A", {hour: float(hour + 1) for hour in range(8)}), 8, 6)  # values 1..8
    by_time = dict(zip(rolled["time"].dt.hour, rolled["value"]))
    assert by_time[7] == 4.5        # (1+2+...+8)/8 = 36/8
    assert by_time[5] == 3.5        # hours 0..5 only: (1+...+6)/6 = 21/6, 6 values is enough
    assert 4 not in by_time         # hours 0..4: 5 values, not enough
    assert by_time[9] == 5.5        # hours 2..9, data at 2..7: (3+4+5+6+7+8)/6 = 33/6
    assert 10 not in by_time        # hours 3..10, data at 3..7: 5 values, not enough


def test_max_daily_8h_mean_and_its_exceedance() -> None:
    values = {hour: 160.0 if 10 <= hour <= 17 else 100.0 for hour in range(24)}
    md8 = max_daily_8h_means(units("A", values))
    # the 8-hour mean ending with hour 17 covers hours 10..17, all 160; windows ending 05..23 are valid
    # (>= 6 hours of the day), 19 of them >= 18, so the day is valid.
    assert md8["value"].tolist() == [160.0]
    assert exceedance_flags(md8, 120)["value"].tolist() == [1.0]
    assert exceedance_flags(md8, 160)["value"].tolist() == [0.0]  # exceed = strictly above


def test_eaqi_band_is_the_worst_pollutant_with_inclusive_upper_bounds() -> None:
    table = load_catalogue().eaqi
    assert table is not None
    no2 = units("A", {0: 10.0, 1: 10.5, 2: 151.0, 17: 30.0})
    pm25 = units("A", {hour: 20.0 for hour in range(18)})  # 24-hour running mean valid from hour 17 (18 hours)
    bands = eaqi_bands({"no2": no2, "pm25": pm25}, table)
    by_hour = dict(zip(bands["time"].dt.hour, bands["value"]))
    assert by_hour[0] == 0.0   # NO2 10 <= 10: good
    assert by_hour[1] == 1.0   # NO2 10.5: fair
    assert by_hour[2] == 5.0   # NO2 151 > 150: extremely_poor
    assert by_hour[17] == 2.0  # NO2 30 moderate (25 < 30 <= 60); PM2.5 running mean 20 moderate (15 < 20 <= 50)
    assert 16 not in by_hour   # no NO2 and PM2.5 has only 17 hours


def test_reporting_periods_are_utc_calendar_periods_ending_at_as_of() -> None:
    periods = {p.name: p for p in reporting_periods(datetime(2025, 3, 8, 0, 30, tzinfo=UTC))}
    def at(day: int, month: int = 3, year: int = 2025) -> datetime:
        return datetime(year, month, day, tzinfo=UTC)
    assert periods["day"].current == Span(at(7), at(8)) and periods["day"].previous == Span(at(6), at(7))
    assert periods["week"].current == Span(at(3), at(8))                 # Monday 3 March
    assert periods["week"].previous == Span(at(24, 2), at(1))            # same 5 elapsed days a week earlier
    assert periods["month"].current == Span(at(1), at(8))
    assert periods["month"].previous == Span(at(1, 2), at(8, 2))
    assert periods["year_to_date"].current == Span(at(1, 1), at(8))
    assert periods["year_to_date"].previous == Span(at(1, 1, 2024), at(7, 3, 2024))  # 66 days; 2024 is leap
    assert periods["year_to_date"].current.year_start == at(1, 1)
    month_end = {p.name: p for p in reporting_periods(at(31), ("month",))}["month"]
    assert month_end.previous == Span(at(1, 2), at(1, 3))                # clipped to February
    with pytest.raises(PeriodError, match="timezone-aware"):
        reporting_periods(datetime(2025, 3, 8))
