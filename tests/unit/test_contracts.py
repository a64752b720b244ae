"""Feed contracts: all of them load, mistakes are rejected by file and key, rules judge events as documented."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from bigbilbao.contracts.loader import default_directory, load_contract, load_contracts
from bigbilbao.contracts.model import Contract
from bigbilbao.contracts.rules import check_event
from bigbilbao.errors import ContractError

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
PACKAGED = REPO / "bigbilbao" / "resources" / "schemas"
FEEDS = {"traffic_flow", "bus_positions", "bike_stations", "parking", "crowd_flow", "incidents", "road_accidents",
         "emergency_dispatches", "noise", "air_quality", "waste_containers", "energy_meters"}
NOW = datetime(2026, 2, 3, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def contracts() -> dict[str, Contract]:
    return load_contracts()


def test_every_contract_loads(contracts: dict[str, Contract]) -> None:
    assert set(contracts) == FEEDS
    for feed, contract in contracts.items():
        assert contract.path is not None and contract.path.name == f"{feed}.yaml"
        assert contract.domain in ("mobility", "safety", "sustainability")
        # a dispatch is re-sent on each status change: the update that brings arrivalTime is its own reading
        extra = ("status",) if feed == "emergency_dispatches" else ()
        assert contract.dedup_key == (contract.id_field, "event_time", *extra)
        actions = {rule.action for rule in contract.rules}
        assert {"warn", "quarantine"} <= actions, feed  # `fail` stops the stream: left to operators who want it
        assert any(rule.check == "bbox" for rule in contract.rules), feed


def test_default_directory_is_the_checkout_and_the_packaged_copy_is_identical() -> None:
    assert default_directory() == SCHEMAS
    repo_files = sorted(path.name for path in SCHEMAS.glob("*.yaml"))
    assert repo_files == sorted(path.name for path in PACKAGED.glob("*.yaml"))
    for name in repo_files:
        assert (PACKAGED / name).read_bytes() == (SCHEMAS / name).read_bytes(), (
            f"bigbilbao/resources/schemas/{name} differs: it must be a symlink to schemas/")
    assert load_contracts(PACKAGED) == load_contracts(SCHEMAS)


def test_spark_types_personal_fields_and_units(contracts: dict[str, Contract]) -> None:
    assert contracts["traffic_flow"].spark_type_names() == {
        "intensity": "double", "occupancy": "double", "averageVehicleSpeed": "double",
        "laneId": "bigint", "refRoadSegment": "string"}
    assert contracts["emergency_dispatches"].spark_type_names()["dispatchTime"] == "timestamp"
    personal = {feed: c.pseudonymised_fields() for feed, c in contracts.items() if c.pseudonymised_fields()}
    assert personal == {"crowd_flow": ("detectedDeviceId",), "emergency_dispatches": ("callerNumber",),
                        "bus_positions": ("vehiclePlateIdentifier",)}
    assert contracts["air_quality"].spec("co").unit == "mg/m3"


def test_unit_conversions_follow_the_declarations(contracts: dict[str, Contract]) -> None:
    air, traffic = contracts["air_quality"], contracts["traffic_flow"]
    converted = air.to_canonical({"co": 500, "no2": 0.04, "temperature": 283.15, "pm10": 12, "label": "x"},
                                 {"co": "µg/m³", "no2": "GP", "temperature": "K", "pm10": "ug/m3", "label": "%"})
    assert converted == pytest.approx({"co": 0.5, "no2": 40.0, "temperature": 10.0, "pm10": 12, "label": "x"})
    assert traffic.to_canonical({"occupancy": 45}, {"occupancy": "%"}) == {"occupancy": 0.45}
    speed = traffic.to_canonical({"averageVehicleSpeed": 10}, {"averageVehicleSpeed": "m/s"})
    assert speed == {"averageVehicleSpeed": 36.0}
    with pytest.raises(ContractError, match="no conversion from 'ppm'"):
        air.to_canonical({"co": 1.0}, {"co": "ppm"})


def test_event_time_and_dedup_key(contracts: dict[str, Contract]) -> None:
    traffic = contracts["traffic_flow"]
    event = {"id": "s1", "dateObserved": "2016-12-07T11:10:00/2016-12-07T11:15:00"}
    assert traffic.event_time(event) == datetime(2016, 12, 7, 10, 15, tzinfo=timezone.utc)  # naive = Madrid
    event["dateObservedTo"] = "2016-12-07T11:15:00Z"
    assert traffic.event_time(event) == datetime(2016, 12, 7, 11, 15, tzinfo=timezone.utc)  # first field wins
    assert traffic.dedup_values(event) == ("s1", datetime(2016, 12, 7, 11, 15, tzinfo=timezone.utc))
    assert traffic.event_time({"id": "s1"}) is None


# --- malformed contracts -------------------------------------------------------------------------

def _valid() -> dict[str, Any]:
    return yaml.safe_load((SCHEMAS / "traffic_flow.yaml").read_text(encoding="utf-8"))


def _rule(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(rule for rule in raw["rules"] if rule["name"] == name)


def _index(raw: dict[str, Any], name: str) -> int:
    return [rule["name"] for rule in raw["rules"]].index(name)


BREAKAGES = [
    ("unknown top key", lambda r: r.update(colour="red"), "'colour'"),
    ("missing key", lambda r: r.pop("entity_type"), "'entity_type'"),
    ("wrong type", lambda r: r.update(time_fields="dateObserved"), "'time_fields'"),
    ("empty string", lambda r: r.update(id_field=" "), "'id_field'"),
    ("bad domain", lambda r: r.update(domain="health"), "'domain'"),
    ("bad time zone", lambda r: r.update(naive_timezone="Europe/Bilbao"), "'naive_timezone'"),
    ("unknown field type", lambda r: r["fields"]["intensity"].update(type="float"), "'fields.intensity.type'"),
    ("unknown field key", lambda r: r["fields"]["intensity"].update(units="x"), "'fields.intensity.units'"),
    ("unquoted comma", lambda r: r["fields"]["intensity"].update({"per hour": None}), "'fields.intensity.per hour'"),
    ("time field redeclared", lambda r: r["fields"].update(dateObserved={"type": "timestamp"}),
     "'fields.dateObserved'"),
    ("units on a string", lambda r: r["fields"]["refRoadSegment"].update(unit="x", source_units={"y": 2}),
     "'fields.refRoadSegment.source_units'"),
    ("zero factor", lambda r: r["fields"]["occupancy"]["source_units"].update({"%": 0}),
     "'fields.occupancy.source_units.%'"),
    ("pseudonymise a number", lambda r: r["fields"]["intensity"].update(pseudonymise=True),
     "'fields.intensity.pseudonymise'"),
    ("dedup on a missing field", lambda r: r.update(dedup_key=["id", "sensor"]), "'dedup_key'"),
    ("YAML no is false", lambda r: r["fields"].update({False: {"type": "double"}}), "'fields.False'"),
]


def _rule_breakages() -> list[tuple[str, Any, str]]:
    raw = _valid()
    i = _index(raw, "intensity_not_negative")
    stale = _index(raw, "stale")
    return [
        ("rule on a missing field", lambda r: _rule(r, "intensity_not_negative").update(field="intensty"),
         f"'rules[{i}].field'"),
        ("unknown check", lambda r: _rule(r, "intensity_not_negative").update(check="positive"), f"'rules[{i}].check'"),
        ("unknown action", lambda r: _rule(r, "intensity_not_negative").update(action="drop"), f"'rules[{i}].action'"),
        ("parameter of another check", lambda r: _rule(r, "intensity_not_negative").update(seconds=3),
         f"'rules[{i}].seconds'"),
        ("range without bounds", lambda r: _rule(r, "intensity_not_negative").pop("min"), f"'rules[{i}].min'"),
        ("range on a string", lambda r: _rule(r, "intensity_not_negative").update(field="refRoadSegment"),
         f"'rules[{i}].field'"),
        ("time check on a number", lambda r: _rule(r, "stale").update(field="intensity"), f"'rules[{stale}].field'"),
        ("negative age", lambda r: _rule(r, "stale").update(seconds=-5), f"'rules[{stale}].seconds'"),
        ("duplicate rule name", lambda r: _rule(r, "stale").update(name="late"), f"'rules[{stale}].name'"),
        ("implicit rule name", lambda r: _rule(r, "stale").update(name="wrong_type"), f"'rules[{stale}].name'"),
        ("bbox upside down", lambda r: _rule(r, "in_bilbao").update(bbox=[-2.87, 43.30, -3.00, 43.20]),
         f"'rules[{_index(raw, 'in_bilbao')}].bbox'"),
        ("bad regex", lambda r: r["rules"].append({"name": "x", "check": "pattern", "field": "refRoadSegment",
                                                   "regex": "(", "action": "warn"}),
         f"'rules[{len(raw['rules'])}].regex'"),
    ]


@pytest.mark.parametrize(("label", "breakage", "key"), BREAKAGES + _rule_breakages(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_malformed_contract_is_rejected_naming_file_and_key(tmp_path: Path, label: str, breakage: Any,
                                                            key: str) -> None:
    raw = copy.deepcopy(_valid())
    breakage(raw)
    path = tmp_path / "broken_feed.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    with pytest.raises(ContractError) as caught:
        load_contract(path)
    assert str(caught.value).startswith(f"broken_feed.yaml: key {key}:"), str(caught.value)


def test_unreadable_yaml_and_duplicate_feeds_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("feed: [unclosed\n", encoding="utf-8")
    with pytest.raises(ContractError, match="^bad.yaml: cannot be read as YAML"):
        load_contracts(tmp_path)
    (tmp_path / "bad.yaml").unlink()
    for name in ("one.yaml", "two.yaml"):
        (tmp_path / name).write_text((SCHEMAS / "noise.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ContractError, match="^two.yaml: key 'feed': feed 'noise' is already defined"):
        load_contracts(tmp_path)
    with pytest.raises(ContractError, match="no feed contracts"):
        load_contracts(tmp_path / "empty")


# --- rule semantics (the reference the Spark rules must match) -------------------------------------

def _broken(contract: Contract, event: dict[str, Any], now: datetime = NOW) -> dict[str, str]:
    return {violation.rule: violation.action for violation in check_event(contract, event, now)}


def _traffic_event(**changes: Any) -> dict[str, Any]:
    event = {"id": "urn:ngsi-ld:TrafficFlowObserved:bilbao:248", "type": "TrafficFlowObserved",
             "dateObserved": "2026-02-03T12:55:00",  # naive Madrid = 11:55 UTC, 5 min before NOW
             "intensity": 640.0, "occupancy": 0.12, "averageVehicleSpeed": 31.0,
             "location": {"type": "Polygon", "coordinates": [[[-2.93, 43.26], [-2.92, 43.26], [-2.93, 43.27]]]}}
    event.update(changes)
    return {key: value for key, value in event.items() if value is not None}


@pytest.mark.parametrize(("feed", "name", "value", "held"), [
    ("traffic_flow", "laneId", 3, True), ("traffic_flow", "laneId", 3.0, True), ("traffic_flow", "laneId", " 3 ", True),
    ("traffic_flow", "laneId", "1e3", True), ("traffic_flow", "laneId", -(2**63), True),
    ("traffic_flow", "laneId", -(2**63) - 1, True),  # rounds to -2**63 as a double, as Spark reads it
    ("traffic_flow", "laneId", 2.5, False), ("traffic_flow", "laneId", 2**63, False),
    ("traffic_flow", "laneId", "nan", False), ("traffic_flow", "laneId", True, False),
    ("traffic_flow", "laneId", "two", False), ("traffic_flow", "intensity", "12.5", True),
    ("traffic_flow", "intensity", "nan", True), ("traffic_flow", "intensity", [1, 2], False),
    ("traffic_flow", "intensity", {"value": 3}, False), ("traffic_flow", "refRoadSegment", {"a": 1}, True),
    ("crowd_flow", "congested", False, True), ("crowd_flow", "congested", "true", False),
    ("crowd_flow", "congested", 1, False), ("emergency_dispatches", "dispatchTime", "2026-02-03T11:50:00Z", True),
    ("emergency_dispatches", "dispatchTime", "not a time", False),
    ("emergency_dispatches", "dispatchTime", 20260203, False),
])
def test_a_value_its_field_cannot_hold_breaks_wrong_type(contracts: dict[str, Contract], feed: str, name: str,
                                                        value: Any, held: bool) -> None:
    broken = check_event(contracts[feed], {"id": "x", name: value}, NOW)
    wrong = [v.detail for v in broken if v.rule == "wrong_type"]
    assert wrong == ([] if held else [f"{name} is not a {contracts[feed].fields[name].type}"])
    assert all(v.action == "quarantine" for v in broken if v.rule == "wrong_type")


def test_a_number_in_an_undeclared_unit_is_unknown_unit_not_wrong_type(contracts: dict[str, Contract]) -> None:
    traffic = contracts["traffic_flow"]
    assert "wrong_type" not in {v.rule for v in check_event(traffic, {"laneId": 2.5}, NOW, units={"laneId": "XYZ"})}
    assert "wrong_type" in {v.rule for v in check_event(traffic, {"laneId": "two"}, NOW, units={"laneId": "XYZ"})}
    speed = {"averageVehicleSpeed": "fast"}
    assert "wrong_type" in {v.rule for v in check_event(traffic, speed, NOW, units={"averageVehicleSpeed": "m/s"})}


def test_a_clean_reading_breaks_nothing(contracts: dict[str, Contract]) -> None:
    assert _broken(contracts["traffic_flow"], _traffic_event()) == {}


@pytest.mark.parametrize(("changes", "expected"), [
    ({"intensity": -447.0}, {"intensity_not_negative": "quarantine"}),
    ({"intensity": 7000.0}, {"intensity_plausible": "warn"}),
    ({"occupancy": 45.0}, {"occupancy_is_fraction": "quarantine"}),
    ({"occupancy": "high"}, {"occupancy_is_fraction": "quarantine", "wrong_type": "quarantine"}),
    ({"intensity": 0, "occupancy": 0, "averageVehicleSpeed": 0}, {"detector_silent": "warn"}),
    ({"dateObserved": "2016-04-11 14:35:00.0"}, {"late": "warn", "stale": "warn"}),
    ({"dateObserved": "2026-02-03T14:00:00"}, {"not_in_future": "quarantine"}),
    ({"dateObserved": "not a time"}, {"late": "warn", "stale": "warn", "not_in_future": "quarantine"}),
    ({"dateObserved": None}, {"time_present": "quarantine"}),
    ({"id": ""}, {"id_present": "quarantine"}),
    ({"type": "NoiseLevelObserved"}, {"wrong_entity_type": "quarantine"}),
    ({"location": {"type": "Point", "coordinates": [43.26, -2.93]}}, {"in_bilbao": "warn"}),
    ({"location": {"type": "Point", "coordinates": [-200.0, 43.26]}},
     {"coordinates_valid": "quarantine", "in_bilbao": "warn"}),
    ({"location": '{"type": "Point", "coordinates": [-2.93, 43.26]}'}, {}),
    ({"location": {"type": "Point"}}, {"coordinates_valid": "quarantine", "in_bilbao": "warn"}),
    ({"laneId": 0}, {"lane_positive": "warn"}),
])
def test_traffic_rules(contracts: dict[str, Contract], changes: dict[str, Any], expected: dict[str, str]) -> None:
    assert _broken(contracts["traffic_flow"], _traffic_event(**changes)) == expected


def test_dispatch_order_and_pattern_rules(contracts: dict[str, Contract]) -> None:
    dispatches = contracts["emergency_dispatches"]
    event = {"id": "d1", "type": "EmergencyDispatch", "callTime": "2026-02-03T11:50:00Z",
             "dispatchTime": "2026-02-03T11:51:00Z", "arrivalTime": "2026-02-03T11:58:00Z", "category": "medical",
             "priority": 1, "unitType": "ambulance", "status": "closed", "callerNumber": "+34612345678",
             "location": {"type": "Point", "coordinates": [-2.93, 43.26]}}
    assert _broken(dispatches, event) == {}
    early_arrival = {**event, "arrivalTime": "2026-02-03T11:50:30Z"}
    assert _broken(dispatches, early_arrival) == {"arrived_after_dispatch": "quarantine"}
    early_dispatch = {**event, "dispatchTime": "2026-02-03T11:49:00Z"}
    assert _broken(dispatches, early_dispatch) == {"dispatched_after_call": "quarantine"}
    assert _broken(dispatches, {**event, "callerNumber": "unknown"}) == {"caller_number_shape": "warn"}
    assert _broken(dispatches, {**event, "priority": 9, "category": "ufo"}) == {
        "priority_1_to_4": "quarantine", "known_category": "quarantine"}
    del event["arrivalTime"]
    assert _broken(dispatches, event) == {}


def test_required_any_and_staleness_use_the_reference_time(contracts: dict[str, Contract]) -> None:
    air = contracts["air_quality"]
    day = {"id": "a", "type": "AirQualityObserved", "dateObserved": "2026-02-03T11:00:00Z",
           "location": {"type": "Point", "coordinates": [-2.935, 43.2675]}}
    assert _broken(air, day) == {"some_pollutant": "warn"}
    assert _broken(air, {**day, "pm10": 12.0}) == {}
    assert _broken(air, {**day, "pm10": 12.0}, now=NOW + timedelta(hours=4)) == {"late": "warn"}
