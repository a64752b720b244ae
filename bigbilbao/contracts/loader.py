"""Feed contracts: load and validate `schemas/*.yaml`, so a typo stops the pipeline before any data moves.

A contract tells bronze which JSON fields a feed carries and with what type, how to convert the
units a source may send, which fields hold personal data, how to de-duplicate, and which
data-quality rules judge each event. The format is described in `schemas/README.md`; the rules
themselves (schema and reference evaluator) are in `bigbilbao.contracts.rules`.

Where the contracts are read from by default: `schemas/` beside the package when the package runs
from a source checkout (editable install, tests, CI), else `bigbilbao/resources/schemas/`, a symlink
to `schemas/` that setuptools copies into wheels as package data.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bigbilbao.config.loader import read_yaml
from bigbilbao.contracts.model import (
    EVENT_TIME,
    FIELD_TYPES,
    Contract,
    FieldSpec,
    RuleScope,
    UnitConversion,
)
from bigbilbao.contracts.rules import IMPLICIT_RULES, check_keys, parse_rule
from bigbilbao.errors import ContractError, SpecError

log = logging.getLogger(__name__)

DOMAINS = ("mobility", "safety", "sustainability")
TOP_KEYS: dict[str, tuple[Any, bool]] = {
    "feed": (str, True), "domain": (str, True), "entity_type": (str, True), "description": (str, True),
    "id_field": (str, True), "time_fields": (list, True), "naive_timezone": (str, True),
    "location_field": (str, True), "fields": (dict, True), "dedup_key": (list, False), "rules": (list, False),
    "shape_rule": (str, False),
}
# How a sensor whose location is a line or polygon is placed in a district (see bigbilbao.spatial.index.RULES).
SHAPE_RULES = ("representative_point", "largest_overlap")
FIELD_KEYS: dict[str, tuple[Any, bool]] = {
    "type": (str, True), "unit": (str, False), "description": (str, False),
    "source_units": (dict, False), "pseudonymise": (bool, False),
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def default_directory() -> Path:
    """Find the contracts: `schemas/` of a source checkout first, else the copy shipped inside the package."""
    package = Path(__file__).resolve().parents[1]
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "schemas").is_dir():
        return checkout / "schemas"
    return package / "resources" / "schemas"


def load_contracts(directory: Path | str | None = None) -> dict[str, Contract]:
    """Load and validate every `*.yaml` contract, keyed by feed, so all feeds pass or fail together."""
    root = Path(directory) if directory is not None else default_directory()
    paths = sorted([*root.glob("*.yaml"), *root.glob("*.yml")])
    if not paths:
        message = f"no feed contracts (*.yaml) found in {root}"
        raise ContractError(message)
    contracts: dict[str, Contract] = {}
    for path in paths:
        contract = load_contract(path)
        if contract.feed in contracts:
            first = Path(contracts[contract.feed].path or "?").name
            message = f"{path.name}: key 'feed': feed {contract.feed!r} is already defined by {first}"
            raise ContractError(message)
        contracts[contract.feed] = contract
    log.debug("loaded %d feed contracts from %s", len(contracts), root)
    return contracts


def load_contract(path: Path | str) -> Contract:
    """Load and validate one contract file; every problem is a ContractError naming the file and key."""
    path = Path(path)
    raw = read_yaml(path, ContractError)
    try:
        return _build(raw, path)
    except SpecError as problem:
        message = f"{path.name}: key {problem.key!r}: {problem.reason}"
        raise ContractError(message) from None


def _build(raw: Any, path: Path) -> Contract:
    """Check the top level, then the fields, then dedup_key and rules, which refer to the fields."""
    check_keys(raw, TOP_KEYS, "")
    if raw["domain"] not in DOMAINS:
        raise SpecError("domain", f"{raw['domain']!r} is not one of {', '.join(DOMAINS)}")
    try:
        ZoneInfo(raw["naive_timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise SpecError("naive_timezone", f"{raw['naive_timezone']!r} is not an IANA time zone") from None
    time_fields = _names(raw["time_fields"], "time_fields")
    shape_rule = raw.get("shape_rule", SHAPE_RULES[0])
    if shape_rule not in SHAPE_RULES:
        raise SpecError("shape_rule", f"{shape_rule!r} is not one of {', '.join(SHAPE_RULES)}")
    reserved = {raw["id_field"], raw["location_field"], EVENT_TIME, *time_fields}
    contract = Contract(
        feed=raw["feed"], domain=raw["domain"], entity_type=raw["entity_type"], description=raw["description"],
        id_field=raw["id_field"], time_fields=time_fields, naive_timezone=raw["naive_timezone"],
        location_field=raw["location_field"], dedup_key=(), shape_rule=shape_rule, path=path,
        fields=MappingProxyType({name: _field(name, spec, reserved) for name, spec in raw["fields"].items()}),
    )
    scope = RuleScope(
        known=frozenset({contract.id_field, contract.location_field, *contract.time_like(), *contract.field_names}),
        times=contract.time_like(), location_field=contract.location_field,
        numbers=frozenset(name for name, spec in contract.fields.items() if spec.type in ("double", "long")),
    )
    dedup = _names(raw.get("dedup_key", [contract.id_field, EVENT_TIME]), "dedup_key")
    for name in dedup:
        if name not in scope.known:
            raise SpecError("dedup_key", f"refers to {name!r}, which is not a declared field")
    rules = tuple(parse_rule(spec, f"rules[{index}]", scope) for index, spec in enumerate(raw.get("rules", [])))
    names = [rule.name for rule in rules]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise SpecError(f"rules[{index}].name", f"rule name {name!r} is used twice")
        if name in IMPLICIT_RULES:
            raise SpecError(f"rules[{index}].name", f"rule name {name!r} is reserved for a rule silver always applies")
    return replace(contract, dedup_key=dedup, rules=rules)


def _names(raw: Any, key: str) -> tuple[str, ...]:
    """Validate a non-empty list of distinct field names."""
    if not isinstance(raw, list) or not raw:
        raise SpecError(key, f"must be a non-empty list of field names, got {raw!r}")
    for item in raw:
        if not isinstance(item, str) or not _NAME.match(item):
            raise SpecError(key, f"{item!r} is not a field name")
    if len(set(raw)) != len(raw):
        raise SpecError(key, "lists a name twice")
    return tuple(raw)


def _field(name: Any, raw: Any, reserved: set[str]) -> FieldSpec:
    """Validate one entry of `fields`, including its unit conversions and pseudonymise flag."""
    key = f"fields.{name}"
    if not isinstance(name, str) or not _NAME.match(name):
        hint = " (YAML reads no/yes/on/off as booleans: quote the name)" if isinstance(name, bool) else ""
        raise SpecError(key, f"is not a valid field name{hint}")
    if name in reserved:
        raise SpecError(key, "is already the id, location or a time field; declare it once")
    check_keys(raw, FIELD_KEYS, f"{key}.")
    if raw["type"] not in FIELD_TYPES:
        raise SpecError(f"{key}.type", f"unknown type {raw['type']!r} (expected one of {', '.join(FIELD_TYPES)})")
    if raw.get("pseudonymise") and raw["type"] != "string":
        raise SpecError(f"{key}.pseudonymise", "only string fields can be pseudonymised")
    conversions = tuple(_conversion(f"{key}.source_units.{unit}", unit, spec)
                        for unit, spec in raw.get("source_units", {}).items())
    if conversions and (raw["type"] not in ("double", "long") or "unit" not in raw):
        raise SpecError(f"{key}.source_units", "needs a numeric field with a canonical 'unit'")
    return FieldSpec(name=name, type=raw["type"], unit=raw.get("unit"), description=raw.get("description", ""),
                     source_units=conversions, pseudonymise=bool(raw.get("pseudonymise", False)))


def _conversion(key: str, unit: Any, raw: Any) -> UnitConversion:
    """Validate `unit: factor` or `unit: {factor: f, offset: o}`."""
    if isinstance(raw, dict) and "factor" in raw and set(raw) <= {"factor", "offset"}:
        factor, offset = raw["factor"], raw.get("offset", 0.0)
    else:
        factor, offset = raw, 0.0
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (factor, offset))
    if not numbers or factor == 0 or not str(unit).strip():
        raise SpecError(key, "must be a non-zero factor or {factor: f, offset: o}")
    return UnitConversion(unit=str(unit), factor=float(factor), offset=float(offset))
