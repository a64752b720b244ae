"""Each contract rule as a Spark "violated" expression plus a readable detail, with `rules.check_event` semantics.

Rules read values that `quality.judge` stages first, through `fact(role, name)`: per attribute (in
ATTRIBUTES) `kv` (the keyValues value as VARIANT), `kind` (its JSON type), `present`, `num`
(`rules._number`), `text` (Python's str()), `ts` (the time in UTC, null when unparseable); for the
location `positions` and `geojson_ok`; and the pseudo-names EVENT (the event time) and NOW (the Kafka
timestamp in microseconds). Only presence checks fire on a missing value; a present time that cannot be
parsed breaks every time check that reads it.
"""

from __future__ import annotations

import functools
import logging
from datetime import timedelta

from pyspark.sql import Column
from pyspark.sql import functions as F

from bigbilbao.columns.ngsi import ATTRIBUTES, ref
from bigbilbao.columns.units import convert
from bigbilbao.columns.variant import NUMERIC_KIND
from bigbilbao.contracts.model import EVENT_TIME, Contract, Rule
from bigbilbao.errors import ContractError

log = logging.getLogger(__name__)

EVENT = "@event_time"  # column-name key of the event time (cannot clash with a field name)
NOW = "@now"  # column-name key of the reference time in microseconds (the Kafka timestamp)
TIME_CHECKS = ("max_age", "not_future", "not_before")
LOCATION_ROLES = ("geom", "positions", "geojson_ok")  # top-level columns of the location, not in ATTRIBUTES
QUOTE_CHARS = 200


@functools.lru_cache(maxsize=4096)
def fact(role: str, name: str) -> Column:
    """A staged value of an attribute (from ATTRIBUTES; a missing attribute is not present), or of EVENT/NOW."""
    if name in (EVENT, NOW) or role in LOCATION_ROLES:
        return ref(role, name)
    value = F.try_element_at(F.col(ATTRIBUTES), F.lit(name))[role]
    return F.coalesce(value, F.lit(False)) if role == "present" else value


def _quoted(name: str) -> Column:
    """The value as a reason quotes it: at most QUOTE_CHARS characters, so a huge value does not bloat quarantine."""
    text = fact("text", name)
    shortened = F.concat(F.substring(text, 1, QUOTE_CHARS), F.lit("…"))
    return F.when(F.length(text) > QUOTE_CHARS, shortened).otherwise(text)


def _fmt(value: object) -> str:
    """A rule parameter as it reads in a reason."""
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _required(rule: Rule) -> tuple[Column, Column]:
    """The value is missing, null or ""; for event_time, no time field is present."""
    name = EVENT if rule.field == EVENT_TIME else rule.field or ""
    return ~fact("present", name), F.lit(f"{rule.field} is missing")


def _required_any(rule: Rule) -> tuple[Column, Column]:
    """None of the fields is present."""
    present = [fact("present", name) for name in rule.fields]
    anything = F.greatest(*present) if len(present) > 1 else present[0]
    return ~anything, F.lit(f"none of {list(rule.fields)} present")


def _not_all_zero(rule: Rule) -> tuple[Column, Column]:
    """Every field reads as the number 0 (missing or non-numeric values count as not zero)."""
    zero = [F.coalesce(fact("num", name) == 0, F.lit(False)) for name in rule.fields]
    return F.least(*zero) if len(zero) > 1 else zero[0], F.lit(f"{list(rule.fields)} are all zero")


def _range(rule: Rule, contract: Contract) -> tuple[Column, Column]:
    """Not a number, not finite (NaN, ±Infinity: no reading), or outside [min, max] in the canonical unit."""
    name = rule.field or ""
    raw = fact("num", name)
    number = convert(contract.fields[name], raw, fact("unit", name), raw) if name in contract.fields else raw
    outside = F.lit(False)
    if rule.min is not None:
        outside = outside | (number < F.lit(float(rule.min)))
    if rule.max is not None:
        outside = outside | (number > F.lit(float(rule.max)))
    infinite = F.isnan(number) | number.isin(float("inf"), float("-inf"))
    violated = number.isNull() | infinite | outside
    value = F.concat(F.lit(f"{name}="), _quoted(name))
    detail = (F.when(number.isNull(), F.concat(value, F.lit(" is not a number")))
              .when(infinite, F.concat(value, F.lit(" is not a finite number")))
              .otherwise(F.concat(value, F.lit(f" outside [{_fmt(rule.min)}, {_fmt(rule.max)}]"))))
    return fact("present", name) & violated, detail


def _allowed(rule: Rule) -> tuple[Column, Column]:
    """Not one of the values, with Python's equality: strings match strings; numbers and booleans match by value."""
    name = rule.field or ""
    strings = [v for v in rule.values if isinstance(v, str)]
    numbers = [float(v) for v in rule.values if isinstance(v, (bool, int, float))]
    if len(strings) + len(numbers) + sum(v is None for v in rule.values) != len(rule.values):
        message = f"rule {rule.name!r}: 'allowed' values must be strings, numbers or booleans"
        raise ContractError(message)
    value, value_kind = fact("kv", name), fact("kind", name)
    matched = F.lit(False)
    if strings:
        matched = matched | ((value_kind == "STRING") & F.try_variant_get(value, "$", "string").isin(strings))
    if numbers:
        numeric = value_kind.rlike(NUMERIC_KIND) | (value_kind == "BOOLEAN")
        matched = matched | (numeric & F.try_variant_get(value, "$", "double").isin(numbers))
    detail = F.concat(F.lit(f"{name}="), _quoted(name), F.lit(f" not in {list(rule.values)}"))
    return fact("present", name) & ~F.coalesce(matched, F.lit(False)), detail


def java_regex(regex: str) -> str:
    """A Python `re.fullmatch` pattern for Java: Unicode classes and Python's line terminator, anchored at both ends."""
    return r"(?Ud)\A(?:" + regex.replace("(?P<", "(?<") + r")\z"


def _pattern(rule: Rule) -> tuple[Column, Column]:
    """str(value) does not fully match the regex."""
    name = rule.field or ""
    matched = F.coalesce(fact("text", name).rlike(java_regex(rule.regex or "")), F.lit(False))
    return fact("present", name) & ~matched, F.lit(f"{name} does not match {rule.regex!r}")


def _bbox(rule: Rule) -> tuple[Column, Column]:
    """Some position is outside the box, the geometry has no coordinates, or a string location is not JSON."""
    name = rule.field or ""
    min_lon, min_lat, max_lon, max_lat = (float(v) for v in rule.bbox or (0, 0, 0, 0))
    points = fact("positions", name)
    outside = F.size(F.filter(points, lambda p: ~(p["lon"].between(min_lon, max_lon)
                                                  & p["lat"].between(min_lat, max_lat))))
    box = list(rule.bbox or ())
    detail = (F.when(~fact("geojson_ok", name), F.lit(f"{name} is not GeoJSON"))
              .when(F.size(points) == 0, F.lit(f"{name} has no coordinates"))
              .otherwise(F.format_string(f"%d of %d positions outside {box}", outside, F.size(points))))
    violated = ~fact("geojson_ok", name) | (F.size(points) == 0) | (outside > 0)
    return fact("present", name) & violated, detail


def _timed(rule: Rule) -> tuple[Column, Column]:
    """max_age, not_future and not_before against the Kafka timestamp, in microseconds as Python compares them."""
    name = EVENT if rule.field == EVENT_TIME else rule.field or ""
    stamp = F.unix_micros(fact("ts", name))
    limit = F.lit(timedelta(seconds=rule.seconds or 0) // timedelta(microseconds=1))
    if rule.check == "max_age":
        broken, why = fact("num", NOW) - stamp > limit, f"{rule.field} is older than {_fmt(rule.seconds)} s"
    elif rule.check == "not_future":
        broken, why = stamp - fact("num", NOW) > limit, f"{rule.field} is in the future"
    else:
        other = F.unix_micros(fact("ts", EVENT if rule.other == EVENT_TIME else rule.other or ""))
        broken, why = F.coalesce(stamp < other, F.lit(False)), f"{rule.field} is before {rule.other}"
    unparseable = stamp.isNull()
    detail = F.when(unparseable, F.lit(f"{rule.field} is not a timestamp")).otherwise(F.lit(why))
    return fact("present", name) & (unparseable | broken), detail


def _entity_type(contract: Contract) -> tuple[Column, Column]:
    """The message's `type` is present (not null) and is not the contract's entity type."""
    sent, sent_kind = fact("kv", "type"), fact("kind", "type")
    matches = (sent_kind == "STRING") & (F.try_variant_get(sent, "$", "string") == contract.entity_type)
    detail = F.concat(F.lit("type "), F.to_json(sent), F.lit(f" is not {contract.entity_type!r}"))
    return sent.isNotNull() & ~F.coalesce(matches, F.lit(False)), detail


CHECKS = {"required": _required, "required_any": _required_any, "not_all_zero": _not_all_zero,
          "allowed": _allowed, "pattern": _pattern, "bbox": _bbox, "max_age": _timed, "not_future": _timed,
          "not_before": _timed}


def violation(rule: Rule, contract: Contract) -> tuple[Column, Column]:
    """(violated, detail) of one rule; violated is never null."""
    if rule.check == "entity_type":
        violated, detail = _entity_type(contract)
    elif rule.field == EVENT_TIME and rule.check not in ("required", *TIME_CHECKS):
        message = f"rule {rule.name!r}: check {rule.check!r} cannot read event_time"
        raise ContractError(message)
    else:
        violated, detail = _range(rule, contract) if rule.check == "range" else CHECKS[rule.check](rule)
    return F.coalesce(violated, F.lit(False)), detail


def value_names(contract: Contract) -> set[str]:
    """Attributes whose values rules read as they arrived (time checks read `time_names` instead).

    `rule.fields` are read literally, as the reference does: `event_time` there is an attribute of that name.
    """
    names = {contract.id_field, contract.location_field, "type", *contract.field_names}
    for rule in contract.rules:
        if rule.check not in TIME_CHECKS:
            names |= set(rule.fields)
            if rule.field not in (None, EVENT_TIME):
                names.add(rule.field)
    return names


def time_names(contract: Contract) -> set[str]:
    """Attributes read as times: the time fields, timestamp fields and those time checks name."""
    names = {*contract.time_fields, *(n for n, spec in contract.fields.items() if spec.type == "timestamp")}
    for rule in contract.rules:
        if rule.check in TIME_CHECKS:
            names |= {n for n in (rule.field, rule.other) if n is not None and n != EVENT_TIME}
    return names


def number_names(contract: Contract) -> set[str]:
    """Attributes read as numbers: numeric contract fields and the fields of range and not_all_zero rules."""
    names = {n for n, spec in contract.fields.items() if spec.type in ("double", "long")}
    for rule in contract.rules:
        if rule.check in ("range", "not_all_zero"):
            names |= {n for n in (rule.field, *rule.fields) if n is not None}
    return names


def text_names(contract: Contract) -> set[str]:
    """Attributes read as Python's str(): pattern fields and the fields that range and allowed details quote."""
    return {rule.field for rule in contract.rules if rule.check in ("range", "allowed", "pattern") and rule.field}
