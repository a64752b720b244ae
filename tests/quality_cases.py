"""Test payloads for silver semantics (simulated feeds, odd values in every NGSI shape) and the Python oracle.

The oracle is the reference: `rules.check_event(contract, ngsi.to_key_values(doc), now, ngsi.unit_codes(doc))`,
plus `parse_error` for what bronze could not parse and `unknown_unit` for units the contract does not
declare (`FieldSpec.conversion` raises).
"""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bigbilbao.contracts.model import Contract, FieldSpec
from bigbilbao.contracts.ngsi import parse_datetime, to_key_values, to_normalized_v2, unit_codes
from bigbilbao.contracts.rules import _number, _positions, check_event
from bigbilbao.errors import ContractError
from bigbilbao.feeds import simulator

BASE = datetime(2026, 3, 28, 22, 0, tzinfo=timezone.utc)  # the streams cross Madrid's switch to summer time
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ODD_VALUES: list[Any] = [
    "", None, "12", " 7.5 ", "1_000", "nan", "-inf", "abc", True, False, [1, 2], {"a": 1}, "١٢", -0.0, 0, 0.0,
    1e308, 12.5, -3, 250, 1e-5, 34600123456, "AA:BB:CC:DD:EE:FF", "+34600123456", "working", "onRoute", "medical",
    "2026-03-29T02:30:00", "2026-03-29 01:30:00.123456789", "2026-03-28T23:59:59.5+01:00", "2026-03-28",
    "2026-03-28T20:00:00Z/2026-03-28T21:00:00+0100", "2026-02-30T10:00:00Z", "2026-03-28T24:00:00",
    " 2026-03-28T21:00Z ", "2026-03-28T22:00:00+01:99", 20260328, "2016-05-01T10:00:00",
    2**63, -(2**63) - 1, "true",  # just past int64 either way: 2**63 is no long, the other rounds to -2**63
]
ODD_LOCATIONS: list[Any] = [
    {"type": "LineString", "coordinates": [[-2.93, 43.26], [-2.94, 43.27]]},
    {"type": "LineString", "coordinates": [[-2.93, 43.26], [-3.7, 40.4]]},
    {"type": "Polygon", "coordinates": [[[-2.95, 43.25], [-2.94, 43.25], [-2.94, 43.26], [-2.95, 43.25]]]},
    {"type": "MultiPolygon", "coordinates": [[[[-2.95, 43.25], [-2.94, 43.25], [-2.95, 43.25]]], [[[0, 0], [1, 1]]]]},
    {"type": "Point", "coordinates": [-2.93, 43.26, 12.0]}, {"type": "Point", "coordinates": ["-2.93", "43.26"]},
    {"type": "Point", "coordinates": [True, 43.26]}, {"type": "Point"}, {}, [], "43.26, -2.93",
    '{"type": "Point", "coordinates": [-2.93, 43.26]}', "not json", {"type": "GeometryCollection", "geometries": []},
    {"type": "Point", "coordinates": [[-2.93, 43.26]]}, {"type": "Point", "coordinates": [-2.87, 43.30]},
]
ODD_UNITS = ["GQ", "GP", "mg/m3", "µg/m³", " u g / m 3", "KMH", "m/s", "P1", "%", "K", "CEL", "Wh", "MWH", "XYZ", "",
             5]


def strict_json(payload: bytes | None) -> dict[str, Any] | None:
    """The JSON object a payload holds, as bronze reads JSON (RFC 8259: no NaN, no duplicate keys), else None."""
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in items}) != len(items):
            raise ValueError("duplicate key")
        return dict(items)

    def constant(name: str) -> None:
        raise ValueError(name)

    try:
        doc = json.loads((payload or b"").decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def micros(moment: datetime | None) -> int | None:
    """An aware datetime as microseconds since the epoch (what unix_micros returns)."""
    return None if moment is None else (moment - EPOCH) // timedelta(microseconds=1)


def unknown_unit(contract: Contract, doc: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether a numeric value came in a unit the contract does not declare for its field."""
    for name, code in unit_codes(doc).items():
        spec = contract.fields.get(name)
        value = event.get(name)
        if spec is None:
            continue
        numeric = (_number(value) is not None if spec.type in ("double", "long")
                   else isinstance(value, (int, float)) and not isinstance(value, bool))
        try:
            numeric and spec.conversion(code)
        except ContractError:
            return True
    return False


def expected_verdicts(contract: Contract, payload: bytes | None, now: datetime, parse_ok: bool) -> dict[str, list[str]]:
    """The oracle's broken rule names per action for one message."""
    doc = strict_json(payload)
    verdicts: dict[str, list[str]] = {"quarantine": [], "warn": [], "fail": []}
    if doc is None or not parse_ok:
        verdicts["quarantine"].append("parse_error")
    if doc is None:
        return verdicts
    event = to_key_values(doc)
    for violation in check_event(contract, event, now, units=unit_codes(doc)):
        verdicts[violation.action].append(violation.rule)
    if unknown_unit(contract, doc, event):
        verdicts["quarantine"].append("unknown_unit")
    return {action: sorted(names) for action, names in verdicts.items()}


def expected_value(spec: FieldSpec, value: Any, unit: str | None, naive_timezone: str) -> tuple[bool, Any]:
    """(comparable, silver value) of one field by the contract's rules; comparable is False where text forms differ."""
    if spec.type == "double":
        number = _number(value)
        conversion = spec.conversion(unit) if unit is not None and number is not None else None
        return True, number if conversion is None or number is None else conversion.apply(number)
    if spec.type == "long":
        if isinstance(value, int) and not isinstance(value, bool):
            return unit is None, value
        number = _number(value)
        whole = number is not None and math.isfinite(number) and number == math.floor(number)
        return unit is None, int(number) if whole and -(2**63) <= number < 2**63 else None
    if spec.type == "boolean":
        return True, value if isinstance(value, bool) else None
    if spec.type == "timestamp":
        return True, micros(parse_datetime(value, naive_timezone)) if isinstance(value, str) else None
    return isinstance(value, str) or value is None, value


def expected_location(value: Any) -> tuple[Any, tuple[float | None, float | None]]:
    """The silver geometry of a location value (a string holding JSON is parsed) and its point (lon, lat)."""
    geometry = value
    if isinstance(value, str):
        try:
            geometry = json.loads(value)
        except ValueError:
            return None, (None, None)
    coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
    points = list(_positions(coordinates))
    is_point = isinstance(geometry, dict) and geometry.get("type") == "Point" and points
    return geometry, points[0] if is_point else (None, None)


def _ld(event: dict[str, Any], rng: random.Random, units: dict[str, Any]) -> dict[str, Any]:
    """NGSI-LD normalized form: Property/GeoProperty/Relationship, DateTime literals, multi-attributes, unitCode."""
    entity: dict[str, Any] = {"@context": "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"}
    for name, value in event.items():
        if name in ("id", "type"):
            entity[name] = value
        elif name.startswith("ref") and rng.random() < 0.5:
            entity[name] = {"type": "Relationship", "object": value}
        elif name == "location":
            entity[name] = {"type": "GeoProperty", "value": value}
        else:
            literal = {"@type": "DateTime", "@value": value} if "ate" in name and rng.random() < 0.5 else value
            entity[name] = {"type": "Property", "value": literal}
            if name in units:
                entity[name]["unitCode"] = units[name]
            if rng.random() < 0.1:
                other = {"type": "Property", "value": "other", "datasetId": "urn:ngsi-ld:Dataset:b"}
                entity[name] = [other, entity[name]]
    return entity


def _v2(event: dict[str, Any], rng: random.Random, units: dict[str, Any]) -> dict[str, Any]:
    """NGSI-v2 normalized form with unitCode metadata, and geo:point strings for points."""
    entity = to_normalized_v2(event)
    for name, code in units.items():
        if name in entity:
            wrapped = {"value": code} if rng.random() < 0.7 else {"@value": code}
            entity[name]["metadata"] = {"unitCode": wrapped if rng.random() < 0.8 else code}
    location = event.get("location")
    coordinates = location.get("coordinates") if isinstance(location, dict) else None
    if isinstance(location, dict) and location.get("type") == "Point" and len(coordinates or ()) >= 2 \
            and rng.random() < 0.3:
        lon, lat = coordinates[:2]
        entity["location"] = {"type": "geo:point", "value": f"{lat}, {lon}"}
    return entity


def odd_messages(contract: Contract, events: list[dict[str, Any]], count: int, seed: int) -> list[bytes]:
    """Clean events with one to three attributes made odd, encoded as keyValues, NGSI-v2 or NGSI-LD."""
    rng = random.Random(f"odd:{contract.feed}:{seed}")
    names = [contract.id_field, "type", contract.location_field, *contract.time_fields, *contract.field_names]
    messages = []
    for _ in range(count):
        event = dict(rng.choice(events))
        for name in rng.sample(names, rng.randint(1, 3)):
            pool = ODD_LOCATIONS if name == contract.location_field else ODD_VALUES
            event[name] = rng.choice(pool)
            if event[name] is None and rng.random() < 0.5:
                del event[name]
        for rule in contract.rules:  # a silent detector: every field of not_all_zero reads 0
            if rule.check == "not_all_zero" and rng.random() < 0.2:
                event |= {name: rng.choice([0, 0.0, -0.0, "0", " 0.0 "]) for name in rule.fields}
        units = {n: rng.choice(ODD_UNITS) for n in contract.field_names if rng.random() < 0.3}
        form = rng.choice(["keyValues", "v2", "ld"])
        body = event if form == "keyValues" else _v2(event, rng, units) if form == "v2" else _ld(event, rng, units)
        messages.append(json.dumps(body, ensure_ascii=False).encode("utf-8"))
    return messages


def simulated(seed: int = 7, per_feed: int = 40) -> dict[str, list[bytes]]:
    """Simulated messages of all 12 feeds with 30 % dirt, in keyValues, normalized and mixed form."""
    by_feed: dict[str, list[bytes]] = {feed: [] for feed in simulator.FEEDS}
    for offset, form in enumerate(simulator.FORMS):
        for message in simulator.simulate(None, per_feed * len(by_feed), seed + offset, 0.3, BASE, form=form):
            by_feed[message.feed].append(message.payload)
    return by_feed


def fiware_examples(models: Path) -> list[bytes]:
    """Every FIWARE example payload (all entity types, all four shapes), or none when the data is absent."""
    return [path.read_bytes() for path in sorted(models.glob("*/*/examples/example*.json*"))]


def arrival(contract: Contract, payload: bytes | None, rng: random.Random) -> datetime:
    """A Kafka timestamp for a message: around its event time, often exactly on a time rule's limit (±1 µs)."""
    doc = strict_json(payload)
    moment = contract.event_time(to_key_values(doc)) if doc is not None else None
    limits = [0.0] + [r.seconds or 0.0 for r in contract.rules if r.check in ("max_age", "not_future")]
    lag = timedelta(seconds=rng.choice(limits)) * rng.choice([1, -1]) + timedelta(microseconds=rng.choice([-1, 0, 1]))
    return (moment or BASE) + lag if rng.random() < 0.7 else BASE + timedelta(minutes=rng.randint(-30, 30))
