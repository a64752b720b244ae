"""KPI catalogue loader: validate the scorecard's indicators, so a wrong threshold or field fails before scoring.

The catalogue is YAML (the packaged `bigbilbao/resources/kpis.yaml`, or a user's own file of the
same shape, whose header documents every key). Each KPI must name a field the feed contracts
declare (`bigbilbao.contracts.loader.load_contracts`), use a statistic that fits its window and field
type, and order its thresholds consistently with its direction; unknown keys are rejected. Every
problem is a `CatalogueError` naming the file, the KPI id and the key, e.g.
`kpis.yaml: KPI 'no2_annual_mean': key 'source.field': 'no3' is not a field of feed 'air_quality'`.
The catalogue version is a hash of the parsed content, so comments and layout do not change it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bigbilbao.config.loader import read_yaml
from bigbilbao.contracts.loader import load_contracts
from bigbilbao.contracts.model import EVENT_TIME, Contract
from bigbilbao.scorecard.kpi_checks import (
    KINDS,
    CatalogueSpecError,
    check_fit,
    check_mapping,
    check_unit,
    one_of,
    parse_exceedance,
    parse_targets,
)
from bigbilbao.scorecard.kpi_model import (
    ALL_FEEDS,
    DIRECTIONS,
    HOUR_VALUES,
    NORMALISE,
    OPERATORS,
    PERSPECTIVES,
    QUALITY_STATISTICS,
    RATE_STATISTICS,
    RATES,
    STATISTICS,
    WINDOWS,
    Aggregation,
    Catalogue,
    CatalogueError,
    Condition,
    EaqiBands,
    Kpi,
    Source,
)

__all__ = ["Catalogue", "CatalogueError", "Kpi", "catalogue_version", "load_catalogue", "parse_catalogue"]

log = logging.getLogger(__name__)

DEFAULT_CATALOGUE = Path(__file__).resolve().parents[1] / "resources" / "kpis.yaml"
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
TOP_KEYS = {"description": ("str", False), "perspectives": ("dict", True), "eaqi": ("dict", False),
            "kpis": ("list", True)}
KPI_KEYS = {
    "id": ("str", True), "perspective": ("str", True), "objective": ("str", True), "definition": ("str", True),
    "unit": ("str", True), "source": ("dict", True), "aggregation": ("dict", True), "direction": ("str", True),
    "target": ("number?", True), "thresholds": ("dict?", True), "exceedance": ("dict", False),
    "min_data_capture": ("number", True), "reference": ("str", True), "weight": ("number", True),
    "benchmarks": ("dict", False), "notes": ("str", False),
}
AGGREGATION_KEYS = {"window": ("str", True), "statistic": ("str", True), "hour_value": ("str", False),
                    "condition": ("dict", False), "bands": ("list", False), "normalise": ("str", False),
                    "rate": ("str", False), "local_hours": ("list", False)}
EAQI_KEYS = {"bands": ("list", True), "upper_bounds": ("dict", True), "running_24h": ("list", False),
             "reference": ("str", True)}


def load_catalogue(path: Path | str | None = None, contracts: Mapping[str, Contract] | None = None) -> Catalogue:
    """Load and validate a catalogue file (default: the packaged one) against the feed contracts."""
    path = Path(path) if path is not None else DEFAULT_CATALOGUE
    raw = read_yaml(path, CatalogueError)
    parsed = parse_catalogue(raw, contracts if contracts is not None else load_contracts(), path.name)
    log.debug("loaded %d KPIs from %s (version %s)", len(parsed.kpis), path, parsed.version)
    return Catalogue(parsed.version, parsed.perspectives, parsed.kpis, parsed.eaqi, path)


def parse_catalogue(raw: Any, contracts: Mapping[str, Contract], name: str = "<catalogue>") -> Catalogue:
    """Validate an already-parsed catalogue; `name` (the file name) starts every error message."""
    try:
        return _build(raw, contracts)
    except CatalogueSpecError as problem:
        where = f"KPI {problem.kpi!r}: " if problem.kpi else ""
        message = f"{name}: {where}key {problem.key!r}: {problem.reason}"
        raise CatalogueError(message) from None


def catalogue_version(raw: Any) -> str:
    """Hash the parsed content with sorted keys, so only a change of meaning changes the version."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _build(raw: Any, contracts: Mapping[str, Contract]) -> Catalogue:
    """Check the top level, the perspectives and the EAQI table, then every KPI."""
    if not isinstance(raw, dict):
        raise CatalogueSpecError("<top level>", "must be a mapping with 'perspectives' and 'kpis'")
    check_mapping(raw, TOP_KEYS, "", None)
    perspectives = _perspectives(raw["perspectives"])
    eaqi = _eaqi(raw["eaqi"]) if "eaqi" in raw else None
    kpis: list[Kpi] = []
    for index, entry in enumerate(raw["kpis"]):
        kpi_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(kpi_id, str) or not _ID.match(kpi_id):
            raise CatalogueSpecError(f"kpis[{index}].id", f"missing or not lower_snake_case: {kpi_id!r}")
        if any(kpi.id == kpi_id for kpi in kpis):
            raise CatalogueSpecError("id", "is used by two KPIs", kpi_id)
        kpis.append(_kpi(entry, contracts, eaqi))
    return Catalogue(catalogue_version(raw), MappingProxyType(perspectives), tuple(kpis), eaqi)


def _perspectives(raw: dict[str, Any]) -> dict[str, float]:
    """Every perspective once, each with a non-negative weight; at least one weight above zero."""
    weights: dict[str, float] = {}
    for name in PERSPECTIVES:
        if name not in raw:
            raise CatalogueSpecError(f"perspectives.{name}", "is required")
    for name, entry in raw.items():
        one_of(name, PERSPECTIVES, f"perspectives.{name}", None)
        spec = {"weight": ("number", True), "description": ("str", False)}
        check_mapping(entry, spec, f"perspectives.{name}.", None)
        if entry["weight"] < 0:
            raise CatalogueSpecError(f"perspectives.{name}.weight", "must not be negative")
        weights[name] = float(entry["weight"])
    if not sum(weights.values()) > 0:
        raise CatalogueSpecError("perspectives", "at least one perspective needs a weight above 0")
    return weights


def _eaqi(raw: dict[str, Any]) -> EaqiBands:
    """Band names and, per pollutant, one increasing upper bound per band except the last (open-ended) one."""
    check_mapping(raw, EAQI_KEYS, "eaqi.", None)
    bands = tuple(str(band) for band in raw["bands"])
    bounds: dict[str, tuple[float, ...]] = {}
    for pollutant, values in raw["upper_bounds"].items():
        key = f"eaqi.upper_bounds.{pollutant}"
        numbers = isinstance(values, list) and all(KINDS["number"](v) for v in values)
        if not numbers or len(values) != len(bands) - 1 or list(values) != sorted(set(values)):
            raise CatalogueSpecError(key, f"needs {len(bands) - 1} strictly increasing numbers, got {values!r}")
        bounds[str(pollutant)] = tuple(float(v) for v in values)
    running = frozenset(raw.get("running_24h", []))
    if not running <= set(bounds):
        raise CatalogueSpecError("eaqi.running_24h", f"names pollutants without bands: {sorted(running - set(bounds))}")
    return EaqiBands(bands, MappingProxyType(bounds), running, raw["reference"])


def _kpi(raw: dict[str, Any], contracts: Mapping[str, Contract], eaqi: EaqiBands | None) -> Kpi:
    """Validate one KPI, key by key, then the rules that tie its keys together."""
    kpi_id = raw["id"]
    check_mapping(raw, KPI_KEYS, "", kpi_id)
    one_of(raw["perspective"], PERSPECTIVES, "perspective", kpi_id)
    one_of(raw["direction"], DIRECTIONS, "direction", kpi_id)
    source = _source(raw["source"], contracts, kpi_id)
    aggregation = _aggregation(raw["aggregation"], kpi_id)
    check_fit(source, aggregation, contracts, eaqi, kpi_id)
    target, thresholds = parse_targets(raw, kpi_id)
    exceedance = parse_exceedance(raw.get("exceedance"), aggregation, kpi_id)
    check_unit(raw["unit"], source, aggregation, contracts, kpi_id)
    capture, weight = raw["min_data_capture"], raw["weight"]
    if not 0 <= capture <= 1:
        raise CatalogueSpecError("min_data_capture", f"must lie in 0..1, got {capture!r}", kpi_id)
    if capture > 0 and (aggregation.window == "event" or aggregation.statistic in QUALITY_STATISTICS):
        raise CatalogueSpecError("min_data_capture", "must be 0: event and data-quality KPIs have no sensor-hours",
                                 kpi_id)
    if weight < 0 or (target is None and weight != 0):
        raise CatalogueSpecError("weight", f"must be >= 0, and 0 for a trend-only KPI, got {weight!r}", kpi_id)
    benchmarks = raw.get("benchmarks", {})
    if not all(KINDS["number"](v) for v in benchmarks.values()):
        raise CatalogueSpecError("benchmarks", "must map names to numbers", kpi_id)
    return Kpi(kpi_id, raw["perspective"], raw["objective"], raw["definition"], raw["unit"], source, aggregation,
               raw["direction"], target, thresholds, float(capture), raw["reference"], float(weight), exceedance,
               MappingProxyType({str(k): float(v) for k, v in benchmarks.items()}), raw.get("notes", ""))


def _source(raw: dict[str, Any], contracts: Mapping[str, Contract], kpi_id: str) -> Source:
    """The feed must have a contract and every field must be declared by it (or be its id or event_time)."""
    check_mapping(raw, {"feed": ("str", True), "field": ("names", True)}, "source.", kpi_id)
    fields = tuple(raw["field"]) if isinstance(raw["field"], list) else (raw["field"],)
    feed = raw["feed"]
    if feed == ALL_FEEDS:
        if fields != (EVENT_TIME,):
            raise CatalogueSpecError("source.field", f"feed '*' (every feed) only has {EVENT_TIME!r}", kpi_id)
        return Source(feed, fields)
    if feed not in contracts:
        known_feeds = ", ".join(sorted(contracts))
        raise CatalogueSpecError("source.feed", f"{feed!r} is not a feed with a contract ({known_feeds})", kpi_id)
    contract = contracts[feed]
    known = {*contract.field_names, contract.id_field, EVENT_TIME}
    for name in fields:
        if name not in known:
            raise CatalogueSpecError("source.field", f"{name!r} is not a field of feed {feed!r}", kpi_id)
    return Source(feed, fields)


def _aggregation(raw: dict[str, Any], kpi_id: str) -> Aggregation:
    """Window and statistic must fit each other; optional parameters only where they mean something."""
    check_mapping(raw, AGGREGATION_KEYS, "aggregation.", kpi_id)
    window, statistic = raw["window"], raw["statistic"]
    one_of(window, WINDOWS, "aggregation.window", kpi_id)
    one_of(statistic, STATISTICS, "aggregation.statistic", kpi_id)
    if window not in STATISTICS[statistic]:
        allowed = ", ".join(w for w in WINDOWS if w in STATISTICS[statistic])
        reason = f"statistic {statistic!r} needs window {allowed}, not {window!r}"
        raise CatalogueSpecError("aggregation.window", reason, kpi_id)
    condition = _condition(raw["condition"], kpi_id) if "condition" in raw else None
    if (condition is None) == (statistic == "share_of_time"):
        raise CatalogueSpecError("aggregation.condition", "is required by share_of_time and meaningless elsewhere",
                                 kpi_id)
    hour_value = raw.get("hour_value", "mean")
    one_of(hour_value, HOUR_VALUES, "aggregation.hour_value", kpi_id)
    if hour_value != "mean" and window != "hour":
        raise CatalogueSpecError("aggregation.hour_value", "only an hour window can use the hour's min, max or sum",
                                 kpi_id)
    if ("bands" in raw) != (statistic == "eaqi_share"):
        raise CatalogueSpecError("aggregation.bands", "is required by eaqi_share and meaningless elsewhere", kpi_id)
    choices: tuple[tuple[str, tuple[str, ...]], ...] = (("normalise", NORMALISE), ("rate", RATES))
    for key, names in choices:
        if key in raw:
            one_of(raw[key], names, f"aggregation.{key}", kpi_id)
            if statistic not in RATE_STATISTICS:
                reason = f"applies to {', '.join(sorted(RATE_STATISTICS))} only"
                raise CatalogueSpecError(f"aggregation.{key}", reason, kpi_id)
    bands = tuple(raw.get("bands", ()))
    return Aggregation(window, statistic, hour_value, condition, bands, raw.get("normalise"), raw.get("rate"),
                       _local_hours(raw.get("local_hours"), window, kpi_id))


def _condition(raw: Any, kpi_id: str) -> Condition:
    """{op: gt|ge|lt|le, value: x} or {op: between, value: [low, high]} (inclusive)."""
    check_mapping(raw, {"op": ("str", True), "value": ("number|pair", True)}, "aggregation.condition.", kpi_id)
    op, value = raw["op"], raw["value"]
    one_of(op, OPERATORS, "aggregation.condition.op", kpi_id)
    pair = isinstance(value, list)
    if pair != (op == "between") or (pair and value[0] > value[1]):
        raise CatalogueSpecError("aggregation.condition.value", f"'between' takes [low, high] (low <= high), the other "
                                                     f"operators one number; got {op} {value!r}", kpi_id)
    return Condition(op, float(value[0]), float(value[1])) if pair else Condition(op, float(value))


def _local_hours(raw: list[Any] | None, window: str, kpi_id: str) -> tuple[int, int] | None:
    """[start, end) local (Europe/Madrid) hours, e.g. [23, 7] for the night; hour windows only."""
    if raw is None:
        return None
    valid = len(raw) == 2 and all(KINDS["int"](h) and 0 <= h <= 23 for h in raw) and raw[0] != raw[1]
    if not valid or window != "hour":
        reason = f"must be [start, end] hours 0..23 on an hour window, got {raw!r}"
        raise CatalogueSpecError("aggregation.local_hours", reason, kpi_id)
    return int(raw[0]), int(raw[1])
