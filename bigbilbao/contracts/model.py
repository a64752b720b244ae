"""The feed contract's typed model: fields, units, rules and the contract itself (pure, no Spark).

`loader` builds these from `schemas/*.yaml`; `rules` judges events against them; `json_values` reads values
for them. Keeping the model here lets each of those import it without importing one another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bigbilbao.contracts.ngsi import parse_datetime
from bigbilbao.errors import ContractError

# Contract field type -> Spark SQL type name (what `spark_type_names` returns).
FIELD_TYPES = {"string": "string", "double": "double", "long": "bigint", "boolean": "boolean", "timestamp": "timestamp"}
EVENT_TIME = "event_time"  # pseudo-field: the first present of a contract's time_fields, parsed to UTC



@dataclass(frozen=True)
class Rule:
    """One data-quality rule; which parameters matter depends on `check` (see schemas/README.md)."""

    name: str
    check: str
    action: str
    field: str | None = None
    fields: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    values: tuple[Any, ...] = ()
    regex: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    seconds: float | None = None
    other: str | None = None
    description: str = ""


@dataclass(frozen=True)
class RuleScope:
    """What a feed's rules may refer to, so a rule naming a missing field is rejected at load time."""

    known: frozenset[str]
    times: frozenset[str]
    numbers: frozenset[str]
    location_field: str


@dataclass(frozen=True)
class Violation:
    """One rule an event broke, with the action the pipeline must take."""

    rule: str
    action: str
    detail: str


@dataclass(frozen=True)
class UnitConversion:
    """How to turn a value sent in `unit` into the field's canonical unit: value * factor + offset."""

    unit: str
    factor: float
    offset: float = 0.0

    def apply(self, value: float) -> float:
        """Convert one value, so replay and silver share one declaration of each factor."""
        return value * self.factor + self.offset


@dataclass(frozen=True)
class FieldSpec:
    """One payload field of a feed: its type, canonical unit, accepted source units and privacy flag."""

    name: str
    type: str
    unit: str | None = None
    description: str = ""
    source_units: tuple[UnitConversion, ...] = ()
    pseudonymise: bool = False

    def conversion(self, unit: str) -> UnitConversion | None:
        """Return the conversion from `unit` (None when already canonical), so callers never guess factors."""
        wanted = normalise_unit(unit)
        if self.unit is not None and wanted == normalise_unit(self.unit):
            return None
        for conversion in self.source_units:
            if normalise_unit(conversion.unit) == wanted:
                return conversion
        message = f"field {self.name!r} (unit {self.unit!r}) declares no conversion from {unit!r}"
        raise ContractError(message)


@dataclass(frozen=True)
class Contract:
    """A validated feed contract: what bronze extracts and what silver checks, for one Kafka topic."""

    feed: str
    domain: str
    entity_type: str
    description: str
    id_field: str
    time_fields: tuple[str, ...]
    naive_timezone: str
    location_field: str
    fields: Mapping[str, FieldSpec] = field(hash=False)
    dedup_key: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    shape_rule: str = "representative_point"
    path: Path | None = field(default=None, compare=False)

    def spec(self, name: str) -> FieldSpec:
        """Return one declared field, so a misspelt name fails loudly instead of reading None."""
        if name in self.fields:
            return self.fields[name]
        message = f"feed {self.feed!r} has no field {name!r}"
        raise ContractError(message)

    def spark_type_names(self) -> dict[str, str]:
        """Return field name -> Spark SQL type name, in contract order, to build the bronze schema."""
        return {name: FIELD_TYPES[spec.type] for name, spec in self.fields.items()}

    def pseudonymised_fields(self) -> tuple[str, ...]:
        """Return the fields holding personal data, which must be keyed-hashed before silver."""
        return tuple(name for name, spec in self.fields.items() if spec.pseudonymise)

    def time_like(self) -> frozenset[str]:
        """Return every name a time rule may refer to: event_time, time_fields and timestamp fields."""
        stamps = {name for name, spec in self.fields.items() if spec.type == "timestamp"}
        return frozenset({EVENT_TIME, *self.time_fields, *stamps})

    def event_time(self, event: Mapping[str, Any]) -> datetime | None:
        """Return the event time (first present time field) in UTC, the one watermarks and windows use."""
        for name in self.time_fields:
            if event.get(name) not in (None, ""):
                return parse_datetime(event[name], self.naive_timezone)
        return None

    def dedup_values(self, event: Mapping[str, Any]) -> tuple[Any, ...]:
        """Return the de-duplication key of an event, so a re-sent reading is counted once."""
        return tuple(self.event_time(event) if name == EVENT_TIME else event.get(name) for name in self.dedup_key)

    def to_canonical(self, event: Mapping[str, Any], units: Mapping[str, str]) -> dict[str, Any]:
        """Return the event with each field sent in `units[field]` converted to the contract's unit."""
        converted = dict(event)
        for name, unit in units.items():
            value = converted.get(name)
            if name not in self.field_names or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            conversion = self.spec(name).conversion(unit)
            if conversion is not None:
                converted[name] = conversion.apply(float(value))
        return converted

    @property
    def field_names(self) -> tuple[str, ...]:
        """Declared field names in contract order."""
        return tuple(self.fields)


def normalise_unit(unit: str) -> str:
    """Spell a unit one way (µ/μ -> u, ³ -> 3, no spaces), so 'µg/m³' and 'ug/m3' match."""
    return unit.replace("µ", "u").replace("μ", "u").replace("³", "3").replace("²", "2").replace(" ", "")
