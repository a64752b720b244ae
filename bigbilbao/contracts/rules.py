"""Data-quality rules of the feed contracts: their schema, validation, and a pure-Python reference evaluator.

Each rule names one `check`, its parameters and an `action` (`warn`: keep and flag, `quarantine`:
divert the event away from silver, `fail`: stop the stream). `check_event` is the reference
semantics: Spark expressions that implement the same rules must agree with it on the same events.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, cast

from bigbilbao.contracts.json_values import NUMBER as _NUMBER
from bigbilbao.contracts.json_values import holds
from bigbilbao.contracts.json_values import number as _number
from bigbilbao.contracts.json_values import present as _present
from bigbilbao.contracts.model import EVENT_TIME, Rule, RuleScope, Violation
from bigbilbao.contracts.ngsi import parse_datetime
from bigbilbao.errors import ContractError, SpecError

if TYPE_CHECKING:
    from bigbilbao.contracts.model import Contract


log = logging.getLogger(__name__)

ACTIONS = ("warn", "quarantine", "fail")
# Implicit rule of every contract: a present value its field's type cannot hold would reach silver as null.
WRONG_TYPE = "wrong_type"
IMPLICIT_RULES = ("parse_error", "unknown_unit", WRONG_TYPE)  # judged for every feed; no contract rule may reuse them
# check -> (parameters it needs, parameters it may have); every rule also has name, check, action, description.
CHECKS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "required": (frozenset({"field"}), frozenset()),
    "required_any": (frozenset({"fields"}), frozenset()),
    "not_all_zero": (frozenset({"fields"}), frozenset()),
    "range": (frozenset({"field"}), frozenset({"min", "max"})),
    "allowed": (frozenset({"field", "values"}), frozenset()),
    "pattern": (frozenset({"field", "regex"}), frozenset()),
    "bbox": (frozenset({"field", "bbox"}), frozenset()),
    "max_age": (frozenset({"field", "seconds"}), frozenset()),
    "not_future": (frozenset({"field"}), frozenset({"seconds"})),
    "not_before": (frozenset({"field", "other"}), frozenset()),
    "entity_type": (frozenset(), frozenset()),
}
PARAMETER_TYPES: dict[str, Any] = {"field": str, "fields": list, "min": _NUMBER, "max": _NUMBER, "values": list,
                                   "regex": str, "bbox": list, "seconds": _NUMBER, "other": str}
COMMON_KEYS: dict[str, tuple[Any, bool]] = {"name": (str, True), "check": (str, True), "action": (str, True),
                                            "description": (str, False)}


def check_keys(raw: Any, spec: Mapping[str, tuple[Any, bool]], prefix: str) -> None:
    """Reject non-mappings, unknown keys, missing required keys and values of the wrong type."""
    if not isinstance(raw, dict):
        raise SpecError(prefix.rstrip(".") or "<top level>", "must be a mapping")
    for key, value in raw.items():
        if key not in spec:
            raise SpecError(f"{prefix}{key}", f"unknown key (expected one of {', '.join(spec)})")
        kind = spec[key][0]
        wrong_bool = kind is not bool and isinstance(value, bool)
        if not isinstance(value, kind) or wrong_bool or (kind is str and not value.strip()):
            expected = "number" if kind == _NUMBER else kind.__name__
            raise SpecError(f"{prefix}{key}", f"must be a non-empty {expected}, got {value!r}")
    for key, (_, required) in spec.items():
        if required and key not in raw:
            raise SpecError(f"{prefix}{key}", "is required")


def parse_rule(raw: Any, key: str, scope: RuleScope) -> Rule:
    """Validate one rule: a known check, its parameters, an action, and references to declared fields."""
    check = raw.get("check") if isinstance(raw, dict) else None
    if check not in CHECKS:
        raise SpecError(f"{key}.check", f"unknown or missing check {check!r} (expected one of {', '.join(CHECKS)})")
    needed, optional = CHECKS[check]
    spec = {**COMMON_KEYS, **{name: (PARAMETER_TYPES[name], name in needed) for name in needed | optional}}
    check_keys(raw, spec, f"{key}.")
    if raw["action"] not in ACTIONS:
        raise SpecError(f"{key}.action", f"{raw['action']!r} is not one of {', '.join(ACTIONS)}")
    if check == "range" and not {"min", "max"} & set(raw):
        raise SpecError(f"{key}.min", "a range check needs min, max or both")
    if "fields" in raw and (not raw["fields"] or not all(isinstance(name, str) for name in raw["fields"])):
        raise SpecError(f"{key}.fields", "must be a non-empty list of field names")
    rule = Rule(
        name=raw["name"], check=check, action=raw["action"], field=raw.get("field"),
        fields=tuple(raw.get("fields", ())),
        min=raw.get("min"), max=raw.get("max"), values=tuple(raw.get("values", ())), regex=raw.get("regex"),
        bbox=tuple(raw["bbox"]) if "bbox" in raw else None, seconds=raw.get("seconds"), other=raw.get("other"),
        description=raw.get("description", ""),
    )
    _check_parameters(rule, key, scope)
    return rule


def _check_parameters(rule: Rule, key: str, scope: RuleScope) -> None:
    """Check that a rule's fields exist and fit its check (numbers for range, times for time checks)."""
    for name in (rule.field, rule.other, *rule.fields):
        if name is not None and name not in scope.known:
            raise SpecError(f"{key}.field", f"refers to {name!r}, which is not a declared field")
    referenced = {name for name in (rule.field, rule.other, *rule.fields) if name is not None}
    if rule.check in ("max_age", "not_future", "not_before") and not referenced <= scope.times:
        raise SpecError(f"{key}.field", f"{rule.check} needs time fields, got {sorted(referenced)}")
    if rule.check in ("range", "not_all_zero") and not referenced <= scope.numbers:
        raise SpecError(f"{key}.field", f"{rule.check} needs numeric fields, got {sorted(referenced)}")
    if rule.check == "allowed" and not rule.values:
        raise SpecError(f"{key}.values", "must list at least one value")
    if rule.check == "bbox":
        box: tuple[float, ...] = rule.bbox or ()
        numeric = len(box) == 4 and all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in box)
        if rule.field != scope.location_field or not numeric or not (box[0] < box[2] and box[1] < box[3]):
            raise SpecError(f"{key}.bbox", "needs the location field and [min_lon, min_lat, max_lon, max_lat]")
    if rule.check == "pattern":
        try:
            re.compile(rule.regex or "")
        except re.error as error:
            raise SpecError(f"{key}.regex", f"is not a regular expression: {error}") from None
    if rule.seconds is not None and rule.seconds <= 0:
        raise SpecError(f"{key}.seconds", "must be positive")


def check_event(contract: Contract, event: Mapping[str, Any], now: datetime | None = None,
                units: Mapping[str, str] | None = None) -> list[Violation]:
    """Return every rule a keyValues event breaks; `now` is the arrival time that staleness is judged against.

    `units` (attribute -> unit code, as `ngsi.unit_codes` reads them) puts range checks in the contract's
    canonical unit, the unit its limits are written in: humidity sent as 55 % is checked as 0.55.
    """
    reference = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    numbers = canonical_numbers(contract, event, units or {})
    violations = []
    for rule in contract.rules:
        detail = _judge(rule, contract, event, reference, numbers)
        if detail is not None:
            violations.append(Violation(rule.name, rule.action, detail))
    wrong = [f"{name} is not a {spec.type}" for name, spec in contract.fields.items()
             if _present(event.get(name)) and not holds(spec, event[name], (units or {}).get(name),
                                                         contract.naive_timezone)]
    if wrong:
        violations.append(Violation(WRONG_TYPE, "quarantine", ", ".join(wrong)))
    return violations


def canonical_numbers(contract: Contract, event: Mapping[str, Any], units: Mapping[str, str]) -> dict[str, float]:
    """Numbers sent in a declared non-canonical unit, converted; values in undeclared units are left out."""
    converted = {}
    for name, unit in units.items():
        number = _number(event.get(name)) if name in contract.fields else None
        if number is None:
            continue
        try:
            conversion = contract.fields[name].conversion(unit)
        except ContractError:
            continue
        if conversion is not None:
            converted[name] = conversion.apply(number)
    return converted


def _judge(rule: Rule, contract: Contract, event: Mapping[str, Any], now: datetime,
           numbers: Mapping[str, float]) -> str | None:
    """Apply one rule; return why the event breaks it, or None. Absent values pass all but presence checks."""
    if rule.check == "entity_type":
        sent = event.get("type")
        return None if sent in (None, contract.entity_type) else f"type {sent!r} is not {contract.entity_type!r}"
    if rule.check == "required_any":
        return None if any(_present(event.get(n)) for n in rule.fields) else f"none of {list(rule.fields)} present"
    if rule.check == "not_all_zero":
        read = [_number(event.get(n)) for n in rule.fields]
        return f"{list(rule.fields)} are all zero" if read and all(v == 0 for v in read) else None
    timed = rule.field == EVENT_TIME or rule.check in ("max_age", "not_future", "not_before")
    value = _time(contract, event, rule.field) if timed else _get(event, rule.field)
    if rule.check == "required":
        return None if _present(value) else f"{rule.field} is missing"
    if not _present(value):
        return None
    return _judge_value(rule, contract, event, value, now, numbers)


def _judge_value(rule: Rule, contract: Contract, event: Mapping[str, Any], value: Any, now: datetime,
                 numbers: Mapping[str, float]) -> str | None:
    """Apply a value check to a present value (range checks on the canonical number)."""
    if rule.check == "range":
        number = numbers.get(rule.field or "", _number(value))
        if number is None:
            return f"{rule.field}={value!r} is not a number"
        if not math.isfinite(number):
            return f"{rule.field}={value!r} is not a finite number"
        too_low = rule.min is not None and number < rule.min
        too_high = rule.max is not None and number > rule.max
        return f"{rule.field}={number} outside [{rule.min}, {rule.max}]" if too_low or too_high else None
    if rule.check == "allowed":
        return None if value in rule.values else f"{rule.field}={value!r} not in {list(rule.values)}"
    if rule.check == "pattern":
        return None if re.fullmatch(rule.regex or "", str(value)) else f"{rule.field} does not match {rule.regex!r}"
    if rule.check == "bbox":
        return _judge_bbox(rule, value)
    if value is _UNPARSEABLE:
        return f"{rule.field} is not a timestamp"
    if rule.check == "max_age":
        return (f"{rule.field} is older than {rule.seconds} s"
                if now - value > timedelta(seconds=cast(float, rule.seconds)) else None)
    if rule.check == "not_future":
        return f"{rule.field} is in the future" if value - now > timedelta(seconds=rule.seconds or 0) else None
    other = _time(contract, event, rule.other)
    earlier = isinstance(other, datetime) and value < other
    return f"{rule.field} is before {rule.other}" if earlier else None


def _judge_bbox(rule: Rule, geometry: Any) -> str | None:
    """Require every coordinate of a GeoJSON geometry to lie inside the rule's bounding box."""
    if isinstance(geometry, str):
        try:
            geometry = json.loads(geometry)
        except ValueError:
            return f"{rule.field} is not GeoJSON"
    points = list(_positions(geometry.get("coordinates") if isinstance(geometry, Mapping) else None))
    if not points:
        return f"{rule.field} has no coordinates"
    min_lon, min_lat, max_lon, max_lat = rule.bbox or (0, 0, 0, 0)
    outside = [p for p in points if not (min_lon <= p[0] <= max_lon and min_lat <= p[1] <= max_lat)]
    return f"{len(outside)} of {len(points)} positions outside {list(rule.bbox or ())}" if outside else None


def _positions(coordinates: Any) -> Iterator[tuple[float, float]]:
    """Yield every (lon, lat) of a GeoJSON coordinates array of any nesting depth."""
    if isinstance(coordinates, list) and len(coordinates) >= 2 and all(
        isinstance(c, _NUMBER) and not isinstance(c, bool) for c in coordinates[:2]
    ):
        yield float(coordinates[0]), float(coordinates[1])
    elif isinstance(coordinates, list):
        for item in coordinates:
            yield from _positions(item)


_UNPARSEABLE = object()


def _time(contract: Contract, event: Mapping[str, Any], name: str | None) -> Any:
    """Read a time-like field as aware UTC, None when absent, or a marker when it cannot be parsed."""
    raw = _get(event, name) if name != EVENT_TIME else next(
        (event[n] for n in contract.time_fields if _present(event.get(n))), None
    )
    if not _present(raw):
        return None
    parsed = parse_datetime(raw, contract.naive_timezone)
    return _UNPARSEABLE if parsed is None else parsed


def _get(event: Mapping[str, Any], name: str | None) -> Any:
    """The event's value of a field, None for a rule without one."""
    return None if name is None else event.get(name)
