"""KPI catalogue: the shipped one validates with the official figures; malformed ones are rejected by KPI and key."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml

from bigbilbao.contracts.loader import load_contracts
from bigbilbao.contracts.model import Contract
from bigbilbao.scorecard.catalogue import DEFAULT_CATALOGUE, CatalogueError, load_catalogue, parse_catalogue
from bigbilbao.scorecard.population import PopulationError, load_population, parse_population


@pytest.fixture(scope="module")
def contracts() -> dict[str, Contract]:
    return load_contracts()


@pytest.fixture(scope="module")
def shipped_raw() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_CATALOGUE.read_text(encoding="utf-8"))


def raw_kpi(raw: dict[str, Any], kpi_id: str) -> dict[str, Any]:
    return next(entry for entry in raw["kpis"] if entry["id"] == kpi_id)


def rejected(raw: dict[str, Any], contracts: dict[str, Contract]) -> str:
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue(raw, contracts, "kpis.yaml")
    return str(caught.value)


# ------------------------------------------------------------------------------------------ shipped catalogue

def test_shipped_catalogue_validates_and_covers_every_perspective(contracts: dict[str, Contract]) -> None:
    catalogue = load_catalogue(contracts=contracts)
    assert catalogue.version.startswith("sha256:") and len(catalogue.version) == len("sha256:") + 16
    assert dict(catalogue.perspectives) == {"sustainability": 0.35, "mobility": 0.25, "safety": 0.25,
                                            "service_data": 0.15}
    ids = {kpi.id for kpi in catalogue.kpis}
    assert {"no2_hourly_limit_exceedances", "no2_annual_mean", "pm10_daily_limit_exceedances", "pm10_annual_mean",
            "pm25_annual_mean", "pm25_daily_exceedances_2030", "o3_target_value_days", "o3_max_daily_8h_mean",
            "o3_information_threshold_hours", "o3_alert_threshold_hours", "eaqi_good_or_fair_share",
            "waste_containers_over_80pct", "electricity_per_inhabitant", "traffic_average_speed",
            "traffic_congestion_index", "traffic_intensity", "bike_station_availability", "parking_occupancy",
            "pedestrian_footfall", "incidents_per_100k", "road_accidents_per_100k", "emergency_response_p90",
            "noise_above_who_lden", "noise_above_who_lnight", "noise_above_eu_reporting",
            "data_capture_air_quality", "data_freshness", "quarantine_rate"} <= ids
    for perspective in catalogue.perspectives:
        assert any(kpi.perspective == perspective and kpi.weight > 0 for kpi in catalogue.kpis), perspective
    assert {f"eaqi_share_{band}" for band in catalogue.eaqi.bands} <= ids  # type: ignore[union-attr]


def test_shipped_catalogue_carries_the_official_figures(contracts: dict[str, Contract]) -> None:
    catalogue = load_catalogue(contracts=contracts)
    rule = {kpi.id: kpi.exceedance for kpi in catalogue.kpis}
    assert (rule["no2_hourly_limit_exceedances"].limit, rule["no2_hourly_limit_exceedances"].allowed_per_year) \
        == (200, 18)
    assert (rule["pm10_daily_limit_exceedances"].limit, rule["pm10_daily_limit_exceedances"].allowed_per_year) \
        == (50, 35)
    assert (rule["pm25_daily_exceedances_2030"].limit, rule["pm25_daily_exceedances_2030"].averaging_period) \
        == (25, "day")
    assert (rule["o3_target_value_days"].limit, rule["o3_target_value_days"].averaging_period,
            rule["o3_target_value_days"].allowed_per_year) == (120, "max_daily_8h_mean", 25)
    assert rule["o3_information_threshold_hours"].limit == 180 and rule["o3_alert_threshold_hours"].limit == 240
    benchmarks = {kpi.id: dict(kpi.benchmarks) for kpi in catalogue.kpis}
    assert benchmarks["no2_annual_mean"] == {"eu_2008_50_limit": 40, "eu_2024_2881_limit_2030": 20,
                                             "who_2021_guideline": 10}
    assert benchmarks["pm10_annual_mean"] == {"eu_2008_50_limit": 40, "eu_2024_2881_limit_2030": 20,
                                              "who_2021_guideline": 15}
    assert benchmarks["pm25_annual_mean"] == {"eu_2008_50_limit": 25, "eu_2024_2881_limit_2030": 10,
                                              "who_2021_guideline": 5}
    assert benchmarks["pm25_daily_exceedances_2030"] == {"who_2021_24h_guideline": 15}
    conditions = {kpi.id: kpi.aggregation.condition for kpi in catalogue.kpis}
    assert conditions["noise_above_who_lden"].value == 53 and conditions["noise_above_who_lnight"].value == 45
    assert conditions["noise_above_eu_reporting"].value == 55 and conditions["waste_containers_over_80pct"].value == 0.8
    assert catalogue.kpi("noise_above_who_lnight").aggregation.local_hours == (23, 7)
    assert catalogue.kpi("data_capture_air_quality").target == 0.9
    assert all(kpi.min_data_capture == 0.9 for kpi in catalogue.kpis if kpi.id.startswith(("no2", "pm", "o3")))
    assert catalogue.kpi("pedestrian_footfall").trend_only and catalogue.kpi("pedestrian_footfall").weight == 0


def test_version_is_a_hash_of_the_content_not_the_layout(shipped_raw: dict[str, Any],
                                                         contracts: dict[str, Contract], tmp_path: Path) -> None:
    reformatted = tmp_path / "kpis.yaml"
    reformatted.write_text(yaml.safe_dump(shipped_raw, sort_keys=False, width=200), encoding="utf-8")
    assert load_catalogue(reformatted, contracts).version == load_catalogue(contracts=contracts).version
    changed = copy.deepcopy(shipped_raw)
    raw_kpi(changed, "no2_annual_mean")["thresholds"]["amber"] = 39
    raw_kpi(changed, "no2_annual_mean")["thresholds"]["red"] = 39
    assert parse_catalogue(changed, contracts).version != load_catalogue(contracts=contracts).version


def test_bus_punctuality_counts_stop_events_within_minus_1_plus_5_minutes(
        shipped_raw: dict[str, Any], contracts: dict[str, Contract]) -> None:
    kpi = load_catalogue(contracts=contracts).kpi("bus_punctuality")
    assert (kpi.source.feed, kpi.source.field, kpi.aggregation.window) == (
        "bus_positions", "scheduleDeviation", "event")
    assert (kpi.aggregation.condition.op, kpi.aggregation.condition.value, kpi.aggregation.condition.high) == (
        "between", -60, 300)
    assert contracts["bus_positions"].spec("scheduleDeviation").unit == "s"
    bus = contracts["bus_positions"]
    without = {**contracts, "bus_positions": dataclasses.replace(
        bus, fields=MappingProxyType({k: v for k, v in bus.fields.items() if k != "scheduleDeviation"}))}
    assert "'scheduleDeviation' is not a field of feed 'bus_positions'" in rejected(shipped_raw, without)


# ------------------------------------------------------------------------------------------ malformed catalogues

MALFORMED = [
    # (kpi id, change, words the error must contain)
    ("no2_annual_mean", lambda k: k["thresholds"].update(green=45),
     ["KPI 'no2_annual_mean'", "key 'thresholds'", "target <= green <= amber <= red", "green=45"]),
    ("bike_station_availability", lambda k: k["thresholds"].update(amber=0.95),
     ["KPI 'bike_station_availability'", "key 'thresholds'", "target >= green >= amber >= red", "amber=0.95"]),
    ("o3_information_threshold_hours", lambda k: k["thresholds"].update(red=0),
     ["KPI 'o3_information_threshold_hours'", "key 'thresholds'", "green != red"]),
    ("waste_containers_over_80pct", lambda k: k.update(target=0.2),
     ["KPI 'waste_containers_over_80pct'", "key 'target'"]),
    ("no2_annual_mean", lambda k: k["source"].update(field="no3"),
     ["KPI 'no2_annual_mean'", "key 'source.field'", "'no3' is not a field of feed 'air_quality'"]),
    ("parking_occupancy", lambda k: k["source"].update(feed="car_parks"),
     ["KPI 'parking_occupancy'", "key 'source.feed'", "'car_parks' is not a feed with a contract"]),
    ("noise_above_who_lden", lambda k: k.pop("reference"),
     ["KPI 'noise_above_who_lden'", "key 'reference'", "is required"]),
    ("incidents_per_100k", lambda k: k.update(colour="red"),
     ["KPI 'incidents_per_100k'", "key 'colour'", "unknown key"]),
    ("incidents_per_100k", lambda k: k["aggregation"].update(window="hour"),
     ["KPI 'incidents_per_100k'", "key 'aggregation.window'", "statistic 'count' needs window event"]),
    ("emergency_response_p90", lambda k: k["source"].update(field="category"),
     ["KPI 'emergency_response_p90'", "key 'source.field'", "'category' is string"]),
    ("no2_annual_mean", lambda k: k.update(unit="mg/m3"),
     ["KPI 'no2_annual_mean'", "key 'unit'", "is in 'ug/m3', not 'mg/m3'"]),
    ("pm10_daily_limit_exceedances", lambda k: k["exceedance"].update(averaging_period="hour"),
     ["KPI 'pm10_daily_limit_exceedances'", "key 'exceedance.averaging_period'"]),
    ("no2_hourly_limit_exceedances", lambda k: k.pop("exceedance"),
     ["KPI 'no2_hourly_limit_exceedances'", "key 'exceedance'", "is required"]),
    ("pedestrian_footfall", lambda k: k.update(weight=1),
     ["KPI 'pedestrian_footfall'", "key 'weight'", "trend-only"]),
    ("traffic_intensity", lambda k: k.update(target=100),
     ["KPI 'traffic_intensity'", "key 'thresholds'", "both target and thresholds"]),
    ("parking_occupancy", lambda k: k.update(min_data_capture=1.5),
     ["KPI 'parking_occupancy'", "key 'min_data_capture'", "0..1"]),
    ("road_accidents_per_100k", lambda k: k.update(min_data_capture=0.5),
     ["KPI 'road_accidents_per_100k'", "key 'min_data_capture'", "must be 0"]),
    ("eaqi_good_or_fair_share", lambda k: k["aggregation"].update(bands=["great"]),
     ["KPI 'eaqi_good_or_fair_share'", "key 'aggregation.bands'", "'great' is not one of"]),
    ("waste_containers_over_80pct", lambda k: k["aggregation"]["condition"].update(op="between"),
     ["KPI 'waste_containers_over_80pct'", "key 'aggregation.condition.value'"]),
    ("waste_containers_over_80pct", lambda k: k["aggregation"].pop("condition"),
     ["KPI 'waste_containers_over_80pct'", "key 'aggregation.condition'", "required by share_of_time"]),
    ("data_freshness", lambda k: k["aggregation"].update(statistic="mean"),
     ["KPI 'data_freshness'", "key 'source.feed'", "feed '*' only fits freshness, quarantine_rate"]),
    ("parking_occupancy", lambda k: k["aggregation"].update(statistic="median"),
     ["KPI 'parking_occupancy'", "key 'aggregation.statistic'", "'median' is not one of"]),
    ("noise_above_who_lnight", lambda k: k["aggregation"].update(local_hours=[23, 24]),
     ["KPI 'noise_above_who_lnight'", "key 'aggregation.local_hours'"]),
    ("parking_occupancy", lambda k: k.update(direction="up"),
     ["KPI 'parking_occupancy'", "key 'direction'", "'up' is not one of"]),
    ("parking_occupancy", lambda k: k.update(perspective="economy"),
     ["KPI 'parking_occupancy'", "key 'perspective'", "'economy' is not one of"]),
]


@pytest.mark.parametrize(("kpi_id", "change", "words"), MALFORMED,
                         ids=[f"{case[0]}-{case[2][1]}" for case in MALFORMED])
def test_malformed_kpi_is_rejected_naming_kpi_and_key(shipped_raw: dict[str, Any], contracts: dict[str, Contract],
                                                      kpi_id: str, change: Any, words: list[str]) -> None:
    raw = copy.deepcopy(shipped_raw)
    change(raw_kpi(raw, kpi_id))
    message = rejected(raw, contracts)
    assert message.startswith("kpis.yaml: ")
    for word in words:
        assert word in message, message


def test_catalogue_level_mistakes_are_rejected(shipped_raw: dict[str, Any], contracts: dict[str, Contract]) -> None:
    raw = copy.deepcopy(shipped_raw)
    raw["kpis"].append(copy.deepcopy(raw["kpis"][0]))
    assert "KPI 'no2_hourly_limit_exceedances': key 'id': is used by two KPIs" in rejected(raw, contracts)
    raw = copy.deepcopy(shipped_raw)
    del raw["perspectives"]["safety"]
    assert "key 'perspectives.safety': is required" in rejected(raw, contracts)
    raw = copy.deepcopy(shipped_raw)
    raw["scorecard"] = {}
    assert "key 'scorecard': unknown key" in rejected(raw, contracts)
    raw = copy.deepcopy(shipped_raw)
    raw["eaqi"]["upper_bounds"]["no2"] = [10, 25, 20, 100, 150]
    assert "key 'eaqi.upper_bounds.no2'" in rejected(raw, contracts)
    raw = copy.deepcopy(shipped_raw)
    raw["kpis"][3]["id"] = "PM10 annual"
    assert "key 'kpis[3].id'" in rejected(raw, contracts)


def test_unreadable_catalogue_file_is_one_clear_error(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    broken = tmp_path / "mine.yaml"
    broken.write_text("kpis: [\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match="mine.yaml: cannot be read as YAML"):
        load_catalogue(broken, contracts)


# ------------------------------------------------------------------------------------------ population

def test_population_reference_is_sourced_dated_and_complete() -> None:
    population = load_population()
    assert population.districts == {"1": 49733, "2": 35930, "3": 25543, "4": 41670, "5": 63062, "6": 51897,
                                    "7": 50520, "8": 33567}
    assert population.of("city", "48020") == 351922  # 49733+35930+25543+41670+63062+51897+50520+33567
    assert population.of("barrio", "101") is None and population.of("district", "9") is None
    assert str(population.reference_date) == "2025-01-01" and not population.verified
    assert "Ayuntamiento de Bilbao" in population.source


def test_malformed_population_is_rejected() -> None:
    good = {"source": "x", "reference_date": load_population().reference_date, "municipality": {"code": "48020"},
            "districts": [{"district_code": 1, "name": "Deusto", "population": 10}]}
    assert parse_population(good).of("district", "1") == 10
    for change, words in ((lambda r: r["districts"].append(dict(r["districts"][0])), "unique district_code"),
                          (lambda r: r["districts"][0].update(population=-3), "positive whole population"),
                          (lambda r: r.update(reference_date="soon"), "must be a date"),
                          (lambda r: r.update(extra=1), "unknown key 'extra'")):
        raw = copy.deepcopy(good)
        change(raw)
        with pytest.raises(PopulationError, match=words):
            parse_population(raw)
