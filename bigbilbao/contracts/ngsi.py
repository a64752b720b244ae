"""Flatten NGSI-v2 and NGSI-LD entities into keyValues form, so every feed reaches bronze in one shape.

FIWARE brokers send the same entity in four shapes: NGSI-v2 keyValues, NGSI-v2 normalized
(`{"type": "Number", "value": 5, "metadata": {...}}`), NGSI-LD keyValues (with `@context`) and
NGSI-LD normalized (`Property`, `GeoProperty`, `Relationship`, ... with `observedAt`, `unitCode`
and sub-properties). `to_key_values` turns any of them, or a mix, into the keyValues shape the
contracts in `schemas/` describe; `unit_codes` and `latest_observed_at` keep the two pieces of
normalized metadata the pipeline can use before they are dropped. `parse_datetime` reads NGSI
DateTime values (instants or ISO 8601 intervals) into aware UTC datetimes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

# NGSI-LD attribute types and, for each, the member holding the attribute's keyValues value.
LD_VALUE_MEMBER = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
    "JsonProperty": "json",
}
# Members an NGSI-LD attribute may carry besides its value; anything else is a sub-attribute.
LD_META_MEMBERS = frozenset(
    {"type", "observedAt", "unitCode", "datasetId", "createdAt", "modifiedAt", "deletedAt",
     "instanceId", "objectType", "lang", "expiresAt", "previousValue"}
) | frozenset(LD_VALUE_MEMBER.values())
V2_MEMBERS = frozenset({"type", "value", "metadata"})
ENTITY_MEMBERS = frozenset({"id", "type"})
DROPPED_MEMBERS = frozenset({"@context"})
_ISO_INSTANT = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def to_key_values(entity: Mapping[str, Any], *, observed_at_field: str | None = None) -> dict[str, Any]:
    """Return the keyValues form of an NGSI entity in any of the four shapes, so ingest reads `$.name`."""
    if not isinstance(entity, Mapping):
        message = f"an NGSI entity must be a JSON object, got {type(entity).__name__}"
        raise TypeError(message)
    flat: dict[str, Any] = {}
    for name, attribute in entity.items():
        if name in DROPPED_MEMBERS:
            continue
        flat[name] = attribute if name in ENTITY_MEMBERS else attribute_value(attribute)
    if observed_at_field and observed_at_field not in flat:
        latest = latest_observed_at(entity)
        if latest is not None:
            flat[observed_at_field] = latest
    return flat


def attribute_value(attribute: Any) -> Any:
    """Return the plain value of one attribute, normalized or not, so callers need not know the shape."""
    if isinstance(attribute, list) and attribute and all(is_normalized(item) for item in attribute):
        return attribute_value(_default_instance(attribute))
    if not is_normalized(attribute):
        return attribute
    kind = attribute.get("type")
    if kind in LD_VALUE_MEMBER:
        return _plain(attribute.get(LD_VALUE_MEMBER[kind]))
    if "object" in attribute and "value" not in attribute:
        return attribute["object"]
    value = _plain(attribute.get("value"))
    if kind == "geo:point" and isinstance(value, str):
        return _geo_point(value)
    return value


def is_normalized(attribute: Any) -> bool:
    """Tell a normalized attribute from a keyValues object value (GeoJSON, PostalAddress, ...)."""
    if not isinstance(attribute, Mapping):
        return False
    kind = attribute.get("type")
    if kind in LD_VALUE_MEMBER:
        return True
    keys = set(attribute)
    if "value" in keys and keys <= V2_MEMBERS and (kind is None or isinstance(kind, str)):
        return True
    return kind is None and bool(keys & {"value", "object"}) and keys <= LD_META_MEMBERS


def unit_codes(entity: Mapping[str, Any]) -> dict[str, str]:
    """Return attribute -> UN/CEFACT unit code declared in a normalized entity, for unit conversion."""
    codes: dict[str, str] = {}
    for name, attribute in entity.items():
        if name in ENTITY_MEMBERS or not is_normalized(attribute):
            continue
        code = attribute.get("unitCode")
        metadata = attribute.get("metadata")
        if code is None and isinstance(metadata, Mapping):
            code = _plain(metadata.get("unitCode"))
            code = code.get("value") if isinstance(code, Mapping) else code
        if isinstance(code, str):
            codes[name] = code
    return codes


def latest_observed_at(entity: Mapping[str, Any]) -> str | None:
    """Return the latest NGSI-LD `observedAt` (or v2 `timestamp` metadata) as sent: a fallback event time."""
    stamps = []
    for name, attribute in entity.items():
        if name in ENTITY_MEMBERS or not is_normalized(attribute):
            continue
        stamp = attribute.get("observedAt")
        metadata = attribute.get("metadata")
        if stamp is None and isinstance(metadata, Mapping):
            stamp = attribute_value(metadata.get("timestamp"))
        moment = parse_datetime(stamp) if isinstance(stamp, str) else None
        if moment is not None:
            stamps.append((moment, stamp))
    return max(stamps)[1] if stamps else None


def to_normalized_v2(entity: Mapping[str, Any]) -> dict[str, Any]:
    """Return the NGSI-v2 normalized form of a keyValues entity, so simulated feeds exercise both shapes."""
    normalized: dict[str, Any] = {}
    for name, value in entity.items():
        if name in ENTITY_MEMBERS:
            normalized[name] = value
        else:
            normalized[name] = {"type": _v2_type(name, value), "value": value}
    return normalized


def _v2_type(name: str, value: Any) -> str:
    """Pick the NGSI-v2 attribute type a broker would give this keyValues value."""
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, Mapping) and "coordinates" in value:
        return "geo:json"
    if isinstance(value, (Mapping, list)):
        return "StructuredValue"
    if name.startswith("date") or name.endswith("Time") or name.endswith("DateTime"):
        return "DateTime"
    return "Text"


def _plain(value: Any) -> Any:
    """Unwrap JSON-LD typed literals (`{"@type": "DateTime", "@value": ...}`) to the literal, at any depth."""
    if isinstance(value, Mapping):
        if "@value" in value:
            return value["@value"]
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _default_instance(instances: list[Mapping[str, Any]]) -> Mapping[str, Any]:
    """Pick the default instance of an NGSI-LD multi-attribute: the one without datasetId, else the first."""
    for instance in instances:
        if "datasetId" not in instance:
            return instance
    return instances[0]


def _geo_point(text: str) -> dict[str, Any] | str:
    """Turn an NGSI-v2 `geo:point` ("lat, lon") into a GeoJSON Point, as contracts expect GeoJSON."""
    parts = text.split(",")
    try:
        lat, lon = (float(part) for part in parts)
    except ValueError:
        log.debug("geo:point %r is not 'lat, lon'; kept as text", text)
        return text
    return {"type": "Point", "coordinates": [lon, lat]}


def parse_datetime(value: Any, naive_timezone: str = "UTC") -> datetime | None:
    """Parse an NGSI DateTime (ISO 8601 instant, or interval -> its end) to aware UTC; None if unparseable."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        match = _ISO_INSTANT.match(value.strip().split("/")[-1])
        if match is None:
            return None
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        micros = int((fraction or "0")[:6].ljust(6, "0"))
        try:
            moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                              int(second or 0), micros, tzinfo=_fixed_zone(zone) if zone else None)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(naive_timezone))
    return moment.astimezone(timezone.utc)


def format_datetime(moment: datetime) -> str:
    """Write an aware datetime as ISO 8601 UTC with 'Z' (milliseconds only when present), as events carry it."""
    utc = moment.astimezone(timezone.utc)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def _fixed_zone(text: str) -> timezone:
    """Turn 'Z', '+0530' or '-03:00' into a fixed-offset timezone."""
    if text == "Z":
        return timezone.utc
    sign = -1 if text.startswith("-") else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
