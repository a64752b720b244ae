"""KPI values per area for one time span: the exact meaning of every statistic in the catalogue.

Units (see `bigbilbao.scorecard.exceedances`) are built from gold: `window: event` -> one gold_events row;
`hour` -> one gold_hourly row (`hour_value` picks its mean, min, max or sum column); `day`,
`8h_rolling` -> EU averages of the hourly means; `period` -> one value per sensor (the mean of its
hourly means in the span). Units whose time lies in [span.start, span.end) are grouped per area
(the city, each district, each barrio) and reduced by the statistic:

- mean, max, sum: of the unit values; p90: 90th percentile with linear interpolation between
  the two nearest ranks (numpy's default); count: number of units (events; 0 in an area without
  any, provided the feed has events somewhere in the input, else no value: an absent feed is no
  data, not a perfect score). With `window: period` a sensor counts only when it observed at
  least min_data_capture of the span's hours.
- share_of_time: share of units whose every listed field meets the condition.
- exceedance_count: per sensor, averaging periods (hour, day or MD8 day) strictly above the limit
  from 1 January (UTC) of the span's year to the span's end; the area value is its worst sensor.
- max_daily_8h_mean: highest MD8 of any sensor-day in the span.
- counter_increase: per sensor, max(max) - min(min) of a cumulative counter in the span (negative
  -> meter reset, ignored), summed over the area's sensors.
- eaqi_share: share of sensor-hours whose EAQI band (worst pollutant) is one of `bands`.
- data_capture: sensor-hours with n > 0 in any listed field / (expected sensors x hours in the
  span, counting only `local_hours` if given). Expected sensors: the sensors registry for the feed
  when it lists any, else every sensor gold_hourly has for those fields. Every sensor KPI gets this
  capture, which gates its status.
- freshness: sum(lag_sum_s) / sum(n_valid); quarantine_rate: sum(n_quarantined) / sum(n_valid +
  n_quarantined), over gold_quality rows of the feed ('*': every feed).
`normalise` then divides by the area's population (per_inhabitant) or population / 100,000 (per_100k;
no population figure, no value); `rate` scales to a yearly (x 8766 h) or daily (x 24 h) rate per span hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bigbilbao.scorecard.capture import AREA_KEYS, by_area, capture_share, captured_sensors, in_span, local_hour_mask
from bigbilbao.scorecard.exceedances import averaged, eaqi_bands, exceedance_flags, locate
from bigbilbao.scorecard.inputs import GoldFrames
from bigbilbao.scorecard.kpi_model import ALL_FEEDS, QUALITY_STATISTICS, Condition, EaqiBands, Kpi
from bigbilbao.scorecard.periods import Span
from bigbilbao.scorecard.population import Population

MEASURE_COLUMNS = ["value", "n", "capture", "exceedances"]
HOURS_PER_YEAR = 8766.0  # 365.25 days


@dataclass(frozen=True, eq=False)
class Context:
    """Everything a measurement needs besides the KPI and span, plus a cache of units shared across spans."""

    gold: GoldFrames
    population: Population
    eaqi: EaqiBands | None
    areas: pd.MultiIndex
    cache: dict[tuple[object, ...], pd.DataFrame] = field(default_factory=dict)


def measure(kpi: Kpi, span: Span, ctx: Context) -> pd.DataFrame:
    """Value, unit count, data capture and exceedances used of one KPI for every area, over one span."""
    statistic = kpi.aggregation.statistic
    if statistic in QUALITY_STATISTICS:
        result = _quality(kpi, span, ctx)
    elif statistic == "data_capture":
        result = _capture(kpi, span, ctx).to_frame("value")
    elif statistic == "exceedance_count":
        result = _exceedances(kpi, span, ctx).to_frame("value")
    elif statistic == "counter_increase":
        result = _counter_increase(kpi, span, ctx)
    else:
        units = in_span(_units(kpi, ctx), span)
        if kpi.aggregation.window == "period":
            units = captured_sensors(units, span, kpi.min_data_capture)
        result = _reduce(kpi, by_area(units, ctx.population.city_code))
    result = result.reindex(index=ctx.areas, columns=MEASURE_COLUMNS).astype("float64")
    counted = statistic == "count" or (statistic == "sum" and kpi.aggregation.window == "event")
    if counted and not _units(kpi, ctx).empty:  # the feed delivers events: none in an area is a count of 0
        result[["value", "n"]] = result[["value", "n"]].fillna(0.0)
    if kpi.uses_capture:
        result["capture"] = _capture(kpi, span, ctx).reindex(ctx.areas)
    if kpi.exceedance is not None:
        result["exceedances"] = _exceedances(kpi, span, ctx).reindex(ctx.areas)
    return _normalise(kpi, result, span, ctx.population)


def _reduce(kpi: Kpi, long: pd.DataFrame) -> pd.DataFrame:
    """Apply the statistic to each area's units; n is how many units (events, sensor-hours...) it used."""
    if long.empty:
        return pd.DataFrame(columns=["value", "n"])
    if kpi.aggregation.window == "period":
        long = long.groupby([*AREA_KEYS, "sensor_id"], as_index=False)["value"].mean()
    grouped = long.groupby(AREA_KEYS)["value"]
    statistic = kpi.aggregation.statistic
    if statistic == "count":
        counts = grouped.size().astype("float64")
        return pd.DataFrame({"value": counts, "n": counts})
    reducers = {"mean": grouped.mean, "max": grouped.max, "max_daily_8h_mean": grouped.max,
                "share_of_time": grouped.mean, "eaqi_share": grouped.mean,
                "sum": lambda: grouped.sum(min_count=1), "p90": lambda: grouped.quantile(0.9)}
    return pd.DataFrame({"value": reducers[statistic](), "n": grouped.count().astype("float64")})


def _units(kpi: Kpi, ctx: Context) -> pd.DataFrame:
    """The KPI's units over all time (cached: every span of every period reuses them)."""
    key = ("units", kpi.source, kpi.aggregation)
    if key not in ctx.cache:
        ctx.cache[key] = _build_units(kpi, ctx)
    return ctx.cache[key]


def _build_units(kpi: Kpi, ctx: Context) -> pd.DataFrame:
    """Events or averaged sensor values, then the condition (share_of_time) and local-hours filter."""
    agg, source = kpi.aggregation, kpi.source
    if agg.window == "event":
        per_field = [_event_units(ctx.gold.events, source.feed, source.field)]
    elif agg.statistic == "eaqi_share":
        assert ctx.eaqi is not None  # guaranteed by catalogue validation
        pollutants = {name: _hourly(ctx, source.feed, name, "mean") for name in source.fields}
        wanted = [float(ctx.eaqi.bands.index(band)) for band in agg.bands]
        bands = eaqi_bands(pollutants, ctx.eaqi)
        per_field = [bands.assign(value=bands["value"].isin(wanted).astype("float64"))]
    else:
        window = "max_daily_8h_mean" if agg.statistic == "max_daily_8h_mean" else agg.window
        per_field = [averaged(_hourly(ctx, source.feed, name, agg.hour_value), window) for name in source.fields]
    units = _all_meet(per_field, agg.condition) if agg.condition is not None else per_field[0]
    if agg.local_hours is not None:
        units = units[local_hour_mask(units["time"], agg.local_hours)]
    return units.reset_index(drop=True)


def _hourly(ctx: Context, feed: str, name: str, column: str) -> pd.DataFrame:
    """Sensor-hour units of one feed field (hours with n > 0), taking one gold_hourly column as the value."""
    key = ("hourly", feed, name, column)
    if key not in ctx.cache:
        rows = _hourly_rows(ctx, feed, (name,))
        units = rows.rename(columns={"hour_start": "time", column: "value"})
        ctx.cache[key] = units[["sensor_id", "district_code", "barrio_code", "time", "value"]].reset_index(drop=True)
    return ctx.cache[key]


def _hourly_rows(ctx: Context, feed: str, names: tuple[str, ...]) -> pd.DataFrame:
    """gold_hourly rows of a feed's fields that hold at least one observation (cached)."""
    key = ("rows", feed, names)
    if key not in ctx.cache:
        hourly = ctx.gold.hourly
        ctx.cache[key] = hourly[(hourly["feed"] == feed) & hourly["field"].isin(names) & (hourly["n"] > 0)]
    return ctx.cache[key]


def _event_units(events: pd.DataFrame, feed: str, name: str) -> pd.DataFrame:
    """One unit per gold_events row of the feed field (the event id stands in for the sensor)."""
    rows = events[(events["feed"] == feed) & (events["field"] == name)]
    units = rows.rename(columns={"event_id": "sensor_id", "event_time": "time"})
    return units[["sensor_id", "district_code", "barrio_code", "time", "value"]]


def _meets(values: pd.Series, condition: Condition) -> pd.Series:
    """Evaluate a condition on values (NaN never meets it)."""
    if condition.op == "between":
        return (values >= condition.value) & (values <= condition.high)
    compare = {"gt": values.gt, "ge": values.ge, "lt": values.lt, "le": values.le}[condition.op]
    return compare(condition.value)


def _all_meet(per_field: list[pd.DataFrame], condition: Condition) -> pd.DataFrame:
    """Units that have every field, valued 1.0 when all of them meet the condition and 0.0 otherwise."""
    flagged = [units.assign(value=_meets(units["value"], condition).astype("float64")) for units in per_field]
    if len(flagged) == 1:
        return flagged[0]
    stacked = pd.concat(flagged, ignore_index=True)
    stats = stacked.groupby(["sensor_id", "time"])["value"].agg(["min", "count"]).reset_index()
    stats = stats[stats["count"] == len(per_field)].rename(columns={"min": "value"})
    return locate(stacked, stats[["sensor_id", "time", "value"]])


def _capture(kpi: Kpi, span: Span, ctx: Context) -> pd.Series:
    """Per area: observed sensor-hours / (expected sensors x expected hours); NaN where nothing is expected."""
    return capture_share(_presence(kpi, ctx), _expected_sensors(kpi, ctx), span, kpi.aggregation.local_hours,
                         ctx.population.city_code)


def _presence(kpi: Kpi, ctx: Context) -> pd.DataFrame:
    """Distinct (sensor, hour) pairs with an observation in any of the KPI's fields, from expected sensors only."""
    key = ("presence", kpi.source)
    if key not in ctx.cache:
        rows = _hourly_rows(ctx, kpi.source.feed, kpi.source.fields)
        rows = rows[rows["sensor_id"].isin(_expected_sensors(kpi, ctx)["sensor_id"])]
        ctx.cache[key] = rows[["sensor_id", "hour_start"]].drop_duplicates()
    return ctx.cache[key]


def _expected_sensors(kpi: Kpi, ctx: Context) -> pd.DataFrame:
    """The sensors a feed should report from: the registry's, else those seen in gold_hourly for the fields."""
    key = ("expected", kpi.source)
    if key not in ctx.cache:
        registry = ctx.gold.sensors[ctx.gold.sensors["feed"] == kpi.source.feed]
        if registry.empty:
            rows = _hourly_rows(ctx, kpi.source.feed, kpi.source.fields).sort_values("hour_start")
            registry = rows.groupby("sensor_id")[["district_code", "barrio_code"]].last().reset_index()
        ctx.cache[key] = registry.drop_duplicates("sensor_id")[["sensor_id", "district_code", "barrio_code"]]
    return ctx.cache[key]


def _exceedances(kpi: Kpi, span: Span, ctx: Context) -> pd.Series:
    """Per area, the most exceedances any one sensor has from 1 January to the span's end."""
    rule = kpi.exceedance
    assert rule is not None  # guaranteed by catalogue validation
    key = ("averaged", kpi.source.feed, kpi.source.field, rule.averaging_period)
    if key not in ctx.cache:
        ctx.cache[key] = averaged(_hourly(ctx, kpi.source.feed, kpi.source.field, "mean"), rule.averaging_period)
    units = in_span(ctx.cache[key], Span(span.year_start, span.end))
    if units.empty:
        return pd.Series(dtype="float64", name="exceedances")
    flags = by_area(exceedance_flags(units, rule.limit), ctx.population.city_code)
    per_sensor = flags.groupby([*AREA_KEYS, "sensor_id"])["value"].sum()
    return per_sensor.groupby(level=AREA_KEYS).max().rename("exceedances")


def _counter_increase(kpi: Kpi, span: Span, ctx: Context) -> pd.DataFrame:
    """Sum over sensors of each cumulative counter's rise in the span (a fall means a reset and is ignored)."""
    rows = _hourly_rows(ctx, kpi.source.feed, (kpi.source.field,))
    rows = rows[(rows["hour_start"] >= pd.Timestamp(span.start)) & (rows["hour_start"] < pd.Timestamp(span.end))]
    if rows.empty:
        return pd.DataFrame(columns=["value", "n"])
    per_sensor = rows.groupby("sensor_id").agg(high=("max", "max"), low=("min", "min")).reset_index()
    rise = (per_sensor["high"] - per_sensor["low"]).where(lambda v: v >= 0)
    units = locate(rows.rename(columns={"hour_start": "time"}),
                   per_sensor.assign(time=pd.Timestamp(span.start), value=rise)[["sensor_id", "time", "value"]])
    grouped = by_area(units, ctx.population.city_code).groupby(AREA_KEYS)["value"]
    return pd.DataFrame({"value": grouped.sum(min_count=1), "n": grouped.count().astype("float64")})


def _quality(kpi: Kpi, span: Span, ctx: Context) -> pd.DataFrame:
    """Freshness (mean lag, s) or quarantine rate from gold_quality, for one feed or every feed."""
    quality = ctx.gold.quality
    if kpi.source.feed != ALL_FEEDS:
        quality = quality[quality["feed"] == kpi.source.feed]
    times = quality["hour_start"]
    quality = quality[(times >= pd.Timestamp(span.start)) & (times < pd.Timestamp(span.end))]
    sums = by_area(quality, ctx.population.city_code).groupby(AREA_KEYS)[["n_valid", "n_quarantined",
                                                                           "lag_sum_s"]].sum()
    judged = sums["n_valid"] + sums["n_quarantined"]
    if kpi.aggregation.statistic == "freshness":
        value = sums["lag_sum_s"] / sums["n_valid"].where(sums["n_valid"] > 0)
    else:
        value = sums["n_quarantined"] / judged.where(judged > 0)
    return pd.DataFrame({"value": value, "n": judged})


def _normalise(kpi: Kpi, result: pd.DataFrame, span: Span, population: Population) -> pd.DataFrame:
    """Divide by inhabitants (or per 100,000) and scale to a yearly or daily rate, as the KPI asks."""
    agg = kpi.aggregation
    if agg.normalise is not None:
        inhabitants = [population.of(level, code) for level, code in result.index]
        per = np.array([np.nan if p is None else float(p) for p in inhabitants])
        per = per / 100_000 if agg.normalise == "per_100k" else per
        result["value"] = result["value"] / per
    if agg.rate is not None and span.hours > 0:
        result["value"] = result["value"] * (HOURS_PER_YEAR if agg.rate == "per_year" else 24.0) / span.hours
    return result

