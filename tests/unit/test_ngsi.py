"""NGSI flattening: every FIWARE example we rely on flattens to its keyValues twin (upstream errata listed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bigbilbao.contracts.ngsi import (
    attribute_value,
    format_datetime,
    is_normalized,
    latest_observed_at,
    parse_datetime,
    to_key_values,
    to_normalized_v2,
    unit_codes,
)

MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fiware_smart_data_models"
USED = {
    "TrafficFlowObserved": "dataModel.Transportation", "Vehicle": "dataModel.Transportation",
    "BikeHireDockingStation": "dataModel.Transportation", "CrowdFlowObserved": "dataModel.Transportation",
    "RoadAccident": "dataModel.Transportation", "ParkingSpot": "dataModel.Parking",
    "OffStreetParking": "dataModel.Parking", "Alert": "dataModel.Alert",
    "NoiseLevelObserved": "dataModel.Environment", "AirQualityObserved": "dataModel.Environment",
    "WasteContainer": "dataModel.WasteManagement",
}
PAIRS = (("example-normalized.json", "example.json"), ("example-normalized.jsonld", "example.jsonld"))
# Places where the upstream normalized example and its keyValues twin disagree in the data itself
# (different numbers, a Boolean where a count belongs, attributes present in one file only).
# Each entry is (path, "value" | "only_normalized" | "only_key_values"). Anything not listed must match.
ERRATA: dict[tuple[str, str], set[tuple[str, str]]] = {
    ("Alert", "example-normalized.json"): {("dateCreated", "only_normalized"), ("dateModified", "only_normalized")},
    ("AirQualityObserved", "example-normalized.json"): {
        ("precipitation", "value"), ("no2", "only_normalized"), ("co2", "only_key_values")},
    ("AirQualityObserved", "example-normalized.jsonld"): {
        ("windDirection", "value"), ("charge", "only_normalized"), ("pressure", "only_normalized"),
        ("tpc", "only_normalized"), ("pm4", "only_normalized"), ("tsp", "only_normalized")},
    ("OffStreetParking", "example-normalized.json"): {
        ("parkingSiteId", "only_key_values"), ("outOfServiceSlotNumber", "only_key_values")},
    ("OffStreetParking", "example-normalized.jsonld"): {
        ("address/streetAddress", "value"), ("outOfServiceSlotNumber", "only_key_values"),
        ("extCategory", "only_normalized")},
    ("CrowdFlowObserved", "example-normalized.json"): {("dateObserved", "value")},
    ("CrowdFlowObserved", "example-normalized.jsonld"): {("dateObserved", "value")},
    ("RoadAccident", "example-normalized.json"): {
        (name, "value") for name in (
            "numPassengersInjured", "numPassengersDead", "numPedestrianInjured", "numPedestrianDead",
            "totalDeadPeopleWithin24Hours", "totalDeadPeopleWithin30Days")},
    ("RoadAccident", "example-normalized.jsonld"): {("location/coordinates", "value")},
    ("TrafficFlowObserved", "example-normalized.jsonld"): {
        ("address/type", "only_key_values"), ("dateObserved", "value")},
    ("Vehicle", "example-normalized.json"): {("currentTripCount", "value")},
    ("Vehicle", "example-normalized.jsonld"): {("vehicleAltitude", "value"), ("deviceBatteryStatus", "value")},
    ("WasteContainer", "example-normalized.jsonld"): {("binLoggedTime", "value")},
}


def _models() -> Path:
    if not MODELS.is_dir():
        pytest.skip("shared/data/fiware_smart_data_models is not present beside the repository")
    return MODELS


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _differences(flat: Any, expected: Any, path: str = "") -> set[tuple[str, str]]:
    """Where two JSON values differ, as (slash path, kind); types matter (True is not 1)."""
    if isinstance(flat, dict) and isinstance(expected, dict):
        found: set[tuple[str, str]] = set()
        for key in set(flat) | set(expected):
            where = f"{path}/{key}" if path else key
            if key not in expected:
                found.add((where, "only_normalized"))
            elif key not in flat:
                found.add((where, "only_key_values"))
            else:
                found |= _differences(flat[key], expected[key], where)
        return found
    same = flat == expected and type(flat) is type(expected)
    return set() if same else {(path, "value")}


@pytest.mark.parametrize("entity", sorted(USED))
@pytest.mark.parametrize(("normalized", "key_values"), PAIRS)
def test_fiware_example_flattens_to_its_key_values_twin(entity: str, normalized: str, key_values: str) -> None:
    examples = _models() / USED[entity] / entity / "examples"
    expected = {k: v for k, v in _load(examples / key_values).items() if k != "@context"}
    flat = to_key_values(_load(examples / normalized))
    assert _differences(flat, expected) == ERRATA.get((entity, normalized), set())


def _all_examples(name: str) -> list[Path]:
    return sorted(_models().glob(f"*/*/examples/{name}"))


@pytest.mark.parametrize("name", ["example.json", "example.jsonld"])
def test_key_values_examples_pass_through_unchanged(name: str) -> None:
    examples = _all_examples(name)
    assert len(examples) == 17
    for path in examples:
        payload = _load(path)
        expected = {k: v for k, v in payload.items() if k != "@context"}
        assert to_key_values(payload) == expected, path


def _artefacts(value: Any) -> list[Any]:
    """NGSI or JSON-LD wrappers left inside a flattened value."""
    if isinstance(value, dict):
        own = [value] if is_normalized(value) or "@value" in value or "@context" in value else []
        return own + [item for inner in value.values() for item in _artefacts(inner)]
    if isinstance(value, list):
        return [item for inner in value for item in _artefacts(inner)]
    return []


@pytest.mark.parametrize("name", ["example-normalized.json", "example-normalized.jsonld"])
def test_no_ngsi_wrapper_survives_flattening(name: str) -> None:
    for path in _all_examples(name):
        flat = to_key_values(_load(path))
        leftovers = [item for key, value in flat.items() if key not in ("id", "type") for item in _artefacts(value)]
        assert leftovers == [], path


def test_unit_codes_read_from_v2_metadata_and_ld_unit_code() -> None:
    examples = _models() / "dataModel.Environment" / "AirQualityObserved" / "examples"
    for name in ("example-normalized.json", "example-normalized.jsonld"):
        codes = unit_codes(_load(examples / name))
        assert codes["co"] == "GP"
        assert codes["so2"] == "GQ"


def test_relationships_languages_lists_and_multi_attributes() -> None:
    entity = {
        "id": "urn:ngsi-ld:Thing:1", "type": "Thing", "@context": ["https://example.org/context.jsonld"],
        "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:7", "observedAt": "2024-01-01T00:00:00Z"},
        "name": {"type": "LanguageProperty", "languageMap": {"es": "Puente", "eu": "Zubia"}},
        "kind": {"type": "VocabProperty", "vocab": "bridge"},
        "path": {"type": "ListProperty", "valueList": [1, 2]},
        "speed": [{"type": "Property", "value": 3, "datasetId": "urn:a"}, {"type": "Property", "value": 5}],
        "spot": {"type": "geo:point", "value": "43.26, -2.93"},
        "since": {"type": "Property", "value": {"@type": "DateTime", "@value": "2024-01-01T00:00:00Z"}},
        "address": {"type": "PostalAddress", "streetAddress": "Gran Via 1"},
        "speedReading": {"value": 7, "observedAt": "2024-01-02T00:00:00+01:00"},
    }
    flat = to_key_values(entity, observed_at_field="dateObserved")
    assert flat == {
        "id": "urn:ngsi-ld:Thing:1", "type": "Thing", "owner": "urn:ngsi-ld:Person:7",
        "name": {"es": "Puente", "eu": "Zubia"}, "kind": "bridge", "path": [1, 2], "speed": 5,
        "spot": {"type": "Point", "coordinates": [-2.93, 43.26]}, "since": "2024-01-01T00:00:00Z",
        "address": {"type": "PostalAddress", "streetAddress": "Gran Via 1"}, "speedReading": 7,
        "dateObserved": "2024-01-02T00:00:00+01:00",
    }


def test_latest_observed_at_compares_instants_not_strings() -> None:
    entity = {"a": {"type": "Property", "value": 1, "observedAt": "2024-01-01T10:00:00+05:30"},
              "b": {"type": "Property", "value": 2, "observedAt": "2024-01-01T05:00:00Z"}}
    assert latest_observed_at(entity) == "2024-01-01T05:00:00Z"
    assert latest_observed_at({"id": "x", "a": 1}) is None


def test_vehicle_ld_observed_at_fills_a_missing_time_field() -> None:
    payload = _load(_models() / "dataModel.Transportation" / "Vehicle" / "examples" / "example-normalized.jsonld")
    del payload["observationDateTime"]
    flat = to_key_values(payload, observed_at_field="observationDateTime")
    assert flat["observationDateTime"] == "2021-03-11T15:51:02+05:30"


@pytest.mark.parametrize(("text", "zone", "expected"), [
    ("2017-01-02T09:25:55.00Z", "UTC", "2017-01-02T09:25:55Z"),
    ("2021-03-11T15:51:02+05:30", "UTC", "2021-03-11T10:21:02Z"),
    ("2016-12-07T11:10:00/2016-12-07T11:15:00", "UTC", "2016-12-07T11:15:00Z"),
    ("2026-02-03 16:40:00.0", "Europe/Madrid", "2026-02-03T15:40:00Z"),
    ("2025-07-01T12:00:00", "Europe/Madrid", "2025-07-01T10:00:00Z"),
    ("2026-01-27 17:07:45.71", "Europe/Madrid", "2026-01-27T16:07:45.710Z"),
    ("2025-03-04", "UTC", "2025-03-04T00:00:00Z"),
])
def test_parse_datetime(text: str, zone: str, expected: str) -> None:
    assert format_datetime(parse_datetime(text, zone)) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2025-02-30T00:00:00Z", "31/12/2025", 1700000000])
def test_parse_datetime_rejects_what_is_not_iso(text: Any) -> None:
    assert parse_datetime(text) is None


_names = st.text(alphabet=st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=8)
_numbers = st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
_scalars = st.none() | st.booleans() | _numbers | _names
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_names, inner, max_size=3),
                       max_leaves=8)


@given(st.dictionaries(_names.filter(lambda n: n not in ("id", "type")), _values, max_size=6))
def test_normalized_v2_round_trips(attributes: dict[str, Any]) -> None:
    entity = {"id": "urn:ngsi-ld:Thing:1", "type": "Thing", **attributes}
    assert to_key_values(json.loads(json.dumps(to_normalized_v2(entity)))) == entity


def test_attribute_value_leaves_geojson_alone() -> None:
    point = {"type": "Point", "coordinates": [-2.93, 43.26]}
    assert attribute_value(point) is point
    assert attribute_value({"type": "geo:json", "value": point}) == point
