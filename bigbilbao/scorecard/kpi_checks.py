"""Cross-key checks of a KPI catalogue entry: statistic vs field type, thresholds vs direction, units, EU rules.

Used by `bigbilbao.scorecard.catalogue`; each check raises `CatalogueSpecError` with the dotted key and the KPI id,
which the
loader turns into one `CatalogueError` sentence naming the file, the KPI and the key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bigbilbao.contracts.model import Contract, normalise_unit
from bigbilbao.errors import CatalogueSpecError
from bigbilbao.scorecard.kpi_model import (
    ALL_FEEDS,
    AVERAGING_PERIODS,
    QUALITY_STATISTICS,
    Aggregation,
    EaqiBands,
    Exceedance,
    Source,
    Thresholds,
)

KINDS: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str) and bool(v.strip()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "dict": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list) and bool(v),
    "names": lambda v: (isinstance(v, str) and bool(v)) or (isinstance(v, list) and bool(v)
                                                           and all(isinstance(x, str) for x in v)),
    "number?": lambda v: v is None or KINDS["number"](v),
    "dict?": lambda v: v is None or isinstance(v, dict),
    "number|pair": lambda v: KINDS["number"](v) or (isinstance(v, list) and len(v) == 2
                                                     and all(KINDS["number"](x) for x in v)),
}
_SAME_UNIT = frozenset({"mean", "max", "p90", "max_daily_8h_mean"})
_FRACTIONS = frozenset({"share_of_time", "eaqi_share", "data_capture", "quarantine_rate"})
_MULTI_FIELD = frozenset({"share_of_time", "eaqi_share", "data_capture"})



def check_mapping(raw: Any, spec: Mapping[str, tuple[str, bool]], prefix: str, kpi: str | None) -> None:
    """Reject a non-mapping, unknown keys, missing required keys and values of the wrong kind."""
    if not isinstance(raw, dict):
        raise CatalogueSpecError(prefix.rstrip(".") or "<top level>", "must be a mapping", kpi)
    for key, value in raw.items():
        if key not in spec:
            raise CatalogueSpecError(f"{prefix}{key}", f"unknown key (expected one of {', '.join(spec)})", kpi)
        if not KINDS[spec[key][0]](value):
            raise CatalogueSpecError(f"{prefix}{key}", f"must be a {spec[key][0].rstrip('?')}, got {value!r}", kpi)
    for key, (_, required) in spec.items():
        if required and key not in raw:
            raise CatalogueSpecError(f"{prefix}{key}", "is required", kpi)


def one_of(value: Any, allowed: tuple[str, ...] | Mapping[str, Any], key: str, kpi: str | None) -> None:
    """Reject a value outside a fixed vocabulary, listing the allowed words."""
    if value not in allowed:
        raise CatalogueSpecError(key, f"{value!r} is not one of {', '.join(allowed)}", kpi)


def check_fit(source: Source, aggregation: Aggregation, contracts: Mapping[str, Contract], eaqi: EaqiBands | None,
              kpi_id: str) -> None:
    """The statistic must suit the source: '*' only for data-quality KPIs, numbers where numbers are needed."""
    statistic = aggregation.statistic
    if source.feed == ALL_FEEDS and statistic not in QUALITY_STATISTICS:
        raise CatalogueSpecError("source.feed", f"feed '*' only fits {', '.join(sorted(QUALITY_STATISTICS))}", kpi_id)
    if len(source.fields) > 1 and statistic not in _MULTI_FIELD:
        raise CatalogueSpecError("source.field", f"statistic {statistic!r} reads one field, not {len(source.fields)}",
                                 kpi_id)
    if statistic == "eaqi_share":
        _fit_eaqi(source, aggregation, eaqi, kpi_id)
    if statistic in ("count", "data_capture") or statistic in QUALITY_STATISTICS:
        return
    contract = contracts[source.feed]
    numeric = ("double", "long", "timestamp") if aggregation.window == "event" else ("double", "long")
    for name in source.fields:
        kind = contract.fields[name].type if name in contract.fields else "string"
        if kind not in numeric:
            raise CatalogueSpecError("source.field", f"{statistic!r} on window {aggregation.window!r} needs a "
                                          f"{' or '.join(numeric)} field; {name!r} is {kind}", kpi_id)


def _fit_eaqi(source: Source, aggregation: Aggregation, eaqi: EaqiBands | None, kpi_id: str) -> None:
    """eaqi_share needs the catalogue's band table, known bands and pollutants that have bands."""
    if eaqi is None:
        raise CatalogueSpecError("aggregation.statistic", "eaqi_share needs the catalogue's 'eaqi' band table", kpi_id)
    for band in aggregation.bands:
        one_of(band, eaqi.bands, "aggregation.bands", kpi_id)
    for name in source.fields:
        one_of(name, tuple(eaqi.upper_bounds), "source.field", kpi_id)


def parse_targets(raw: dict[str, Any], kpi_id: str) -> tuple[float | None, Thresholds | None]:
    """Target and thresholds: both or neither (trend-only); ordered consistently with the direction."""
    target, spec = raw["target"], raw["thresholds"]
    if (target is None) != (spec is None):
        raise CatalogueSpecError("thresholds" if spec is None else "target",
                      "give both target and thresholds, or neither for a trend-only KPI", kpi_id)
    if spec is None:
        return None, None
    check_mapping(spec, {"green": ("number", True), "amber": ("number", True), "red": ("number", True)},
                  "thresholds.", kpi_id)
    sign = 1.0 if raw["direction"] == "lower_is_better" else -1.0  # compare everything as 'lower is better'
    t, g, a, r = (sign * float(x) for x in (target, spec["green"], spec["amber"], spec["red"]))
    order = "target <= green <= amber <= red" if sign > 0 else "target >= green >= amber >= red"
    if not (t <= g <= a <= r and g < r):
        key = "target" if t > g else "thresholds"
        raise CatalogueSpecError(key, f"a {raw['direction']} KPI needs {order} with green != red, got target={target}, "
                           f"green={spec['green']}, amber={spec['amber']}, red={spec['red']}", kpi_id)
    return float(target), Thresholds(float(spec["green"]), float(spec["amber"]), float(spec["red"]))


def parse_exceedance(raw: dict[str, Any] | None, aggregation: Aggregation, kpi_id: str) -> Exceedance | None:
    """An EU exceedance rule: required by exceedance_count, whose window must match its averaging period."""
    statistic = aggregation.statistic
    if raw is None:
        if statistic == "exceedance_count":
            raise CatalogueSpecError("exceedance", "is required by statistic 'exceedance_count'", kpi_id)
        return None
    spec = {"limit": ("number", True), "averaging_period": ("str", True), "allowed_per_year": ("int", True)}
    check_mapping(raw, spec, "exceedance.", kpi_id)
    period = raw["averaging_period"]
    one_of(period, AVERAGING_PERIODS, "exceedance.averaging_period", kpi_id)
    if raw["allowed_per_year"] < 0:
        raise CatalogueSpecError("exceedance.allowed_per_year", "must not be negative", kpi_id)
    if aggregation.window == "event" or statistic in QUALITY_STATISTICS:
        raise CatalogueSpecError("exceedance", "needs a sensor KPI (gold_hourly), not events or data quality", kpi_id)
    if statistic == "exceedance_count" and AVERAGING_PERIODS[period] != aggregation.window:
        raise CatalogueSpecError("exceedance.averaging_period", f"{period!r} is counted on window "
                      f"{AVERAGING_PERIODS[period]!r}, but the KPI's window is {aggregation.window!r}", kpi_id)
    return Exceedance(float(raw["limit"]), period, int(raw["allowed_per_year"]))


def check_unit(unit: str, source: Source, aggregation: Aggregation, contracts: Mapping[str, Contract],
               kpi_id: str) -> None:
    """Statistics that keep the field's canonical unit must say so; shares are fractions; lags are seconds."""
    statistic, expected = aggregation.statistic, None
    if statistic in _FRACTIONS:
        expected = "fraction"
    elif statistic == "freshness":
        expected = "s"
    elif statistic in _SAME_UNIT and source.feed != ALL_FEEDS:
        spec = contracts[source.feed].fields.get(source.field)
        expected = "s" if spec is not None and spec.type == "timestamp" else getattr(spec, "unit", None)
    if expected is not None and normalise_unit(unit) != normalise_unit(expected):
        raise CatalogueSpecError("unit", f"{statistic} of {source.feed}.{source.field} is in {expected!r}, "
                                 f"not {unit!r}",
                      kpi_id)
