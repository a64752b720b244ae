"""EU averaging rules on sensor-hour values: daily means, 8-hour rolling means, MD8, exceedances, EAQI bands.

Every function takes and returns *units*: a DataFrame with `sensor_id`, `district_code`,
`barrio_code`, `time` (UTC, tz-aware) and `value`. Hourly units have `time` = the hour's start.

Validity follows the 75 % rule of Directive 2008/50/EC (Annex VII and XI): a daily mean needs at
least 18 hourly values; an 8-hour mean at least 6 of its 8 hours; a maximum daily 8-hour mean (MD8)
at least 18 valid 8-hour means in the day; a 24-hour running mean (EAQI particles) at least 18
hours. An 8-hour mean is stamped with the start of its last hour and belongs to the day that hour
is in, so a day's means are those ending 01:00 .. 24:00, as in Annex VII. Days are UTC days.
An exceedance is a value strictly above the limit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bigbilbao.scorecard.kpi_model import EaqiBands

UNIT_COLUMNS = ["sensor_id", "district_code", "barrio_code", "time", "value"]
MIN_HOURS_PER_DAY = 18
MIN_HOURS_PER_8H = 6
MIN_8H_MEANS_PER_DAY = 18
MIN_HOURS_PER_24H = 18


def empty_units() -> pd.DataFrame:
    """A units frame with no rows and the right columns."""
    frame = pd.DataFrame({column: pd.Series(dtype="object") for column in UNIT_COLUMNS})
    frame["time"] = pd.Series(dtype="datetime64[ns, UTC]")
    frame["value"] = pd.Series(dtype="float64")
    return frame


def locate(units: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Attach each sensor's district and barrio (its latest known ones) to a frame of sensor_id/time/value."""
    if frame.empty:
        return empty_units()
    where = units.sort_values("time").groupby("sensor_id")[["district_code", "barrio_code"]].last()
    located = frame.join(where, on="sensor_id")
    return located[UNIT_COLUMNS].reset_index(drop=True)


def daily_means(units: pd.DataFrame) -> pd.DataFrame:
    """Mean of each sensor's hourly values per UTC day, kept when at least 18 hours are present."""
    if units.empty:
        return empty_units()
    days = units.assign(time=units["time"].dt.floor("D"))
    stats = days.groupby(["sensor_id", "time"])["value"].agg(["mean", "count"]).reset_index()
    stats = stats[stats["count"] >= MIN_HOURS_PER_DAY].rename(columns={"mean": "value"})
    return locate(units, stats[["sensor_id", "time", "value"]])


def rolling_means(units: pd.DataFrame, hours: int, min_hours: int) -> pd.DataFrame:
    """Per sensor, the mean of the `hours` hours ending with each hour, kept with at least `min_hours` values."""
    if units.empty:
        return empty_units()
    wide = units.pivot_table(index="time", columns="sensor_id", values="value", aggfunc="mean")
    index = pd.date_range(wide.index.min(), wide.index.max() + pd.Timedelta(hours=hours - 1), freq="h")
    rolled = wide.reindex(index).rolling(hours, min_periods=min_hours).mean()
    long = rolled.stack().rename("value").reset_index()
    long.columns = ["time", "sensor_id", "value"]
    return locate(units, long[["sensor_id", "time", "value"]])


def max_daily_8h_means(units: pd.DataFrame) -> pd.DataFrame:
    """Per sensor and UTC day, the highest 8-hour rolling mean, kept with at least 18 valid 8-hour means."""
    rolled = rolling_means(units, 8, MIN_HOURS_PER_8H)
    if rolled.empty:
        return rolled
    days = rolled.assign(time=rolled["time"].dt.floor("D"))
    stats = days.groupby(["sensor_id", "time"])["value"].agg(["max", "count"]).reset_index()
    stats = stats[stats["count"] >= MIN_8H_MEANS_PER_DAY].rename(columns={"max": "value"})
    return locate(units, stats[["sensor_id", "time", "value"]])


def averaged(units: pd.DataFrame, window: str) -> pd.DataFrame:
    """Turn hourly units into the units of a window: hour (as is), day, 8h_rolling or max_daily_8h_mean."""
    if window in ("hour", "period"):
        return units
    if window == "day":
        return daily_means(units)
    if window == "8h_rolling":
        return rolling_means(units, 8, MIN_HOURS_PER_8H)
    if window == "max_daily_8h_mean":
        return max_daily_8h_means(units)
    message = f"no averaging rule for window {window!r}"
    raise ValueError(message)


def exceedance_flags(units: pd.DataFrame, limit: float) -> pd.DataFrame:
    """Units whose value is 1.0 where the limit is exceeded (strictly above) and 0.0 elsewhere."""
    return units.assign(value=(units["value"] > limit).astype("float64"))


def eaqi_bands(pollutants: dict[str, pd.DataFrame], table: EaqiBands) -> pd.DataFrame:
    """Band index (0 = first band) of each sensor-hour: the worst band of the pollutants it has.

    Particles listed in `table.running_24h` are judged on their 24-hour running mean; the others on the
    hourly value. A value belongs to the first band whose upper bound it does not exceed.
    """
    banded = []
    for name, units in pollutants.items():
        if units.empty or name not in table.upper_bounds:
            continue
        if name in table.running_24h:
            units = rolling_means(units, 24, MIN_HOURS_PER_24H)
        bounds = np.asarray(table.upper_bounds[name], dtype="float64")
        banded.append(units.assign(value=np.searchsorted(bounds, units["value"].to_numpy(), side="left")
                                   .astype("float64")))
    if not banded:
        return empty_units()
    stacked = pd.concat(banded, ignore_index=True)
    worst = stacked.groupby(["sensor_id", "time"])["value"].max().reset_index()
    return locate(stacked, worst)
