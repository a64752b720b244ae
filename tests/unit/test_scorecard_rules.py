"""Scorecard rules beyond the golden set: data-quality KPIs, local night hours, input checks, gold requirements."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from bigbilbao.contracts.loader import load_contracts
from bigbilbao.scorecard.catalogue import load_catalogue, parse_catalogue
from bigbilbao.scorecard.compute import Scorecard, compute_scorecard, required_sources
from bigbilbao.scorecard.inputs import GoldInputError
from bigbilbao.scorecard.population import Population

AS_OF = dt.datetime(2025, 3, 8, tzinfo=dt.timezone.utc)
CITY = "48020"
POPULATION = Population("test", dt.date(2025, 1, 1), CITY, {"1": 50_000, "4": 40_000})


def check(card: Scorecard, kpi: str, level: str, code: str, **expected: Any) -> None:
    found = card.kpis[(card.kpis["kpi_id"] == kpi) & (card.kpis["area_level"] == level)
                      & (card.kpis["area_code"] == code) & (card.kpis["period"] == "day")]
    assert len(found) == 1, (kpi, level, code)
    got = {key: (None if isinstance(v, float) and np.isnan(v) else v) for key, v in found.iloc[0].items()}
    for key, want in expected.items():
        if isinstance(want, float):
            assert got[key] == pytest.approx(want, abs=1e-4), (kpi, level, code, key, got[key])
        else:
            assert got[key] == want, (kpi, level, code, key, got[key])


def test_freshness_and_quarantine_rate_from_gold_quality() -> None:
    shipped = yaml.safe_load(load_catalogue().path.read_text(encoding="utf-8"))  # type: ignore[union-attr]
    raw = {**shipped, "kpis": [k for k in shipped["kpis"] if k["id"] in ("data_freshness", "quarantine_rate")]}
    stamp = pd.Timestamp(2025, 3, 7, 9, tz="UTC")
    quality = pd.DataFrame([
        {"feed": "noise", "district_code": 1, "barrio_code": "101", "hour_start": stamp, "n_valid": 10,
         "n_quarantined": 0, "lag_sum_s": 600.0},
        {"feed": "parking", "district_code": 1, "barrio_code": "101", "hour_start": stamp, "n_valid": 30,
         "n_quarantined": 2, "lag_sum_s": 9000.0},
        {"feed": "parking", "district_code": None, "barrio_code": None, "hour_start": stamp, "n_valid": 0,
         "n_quarantined": 8, "lag_sum_s": 0.0}])
    card = compute_scorecard(parse_catalogue(raw, load_contracts()), None, gold_quality=quality, as_of=AS_OF,
                             boundary_version="b", population=POPULATION)
    # district 1: (600 + 9000) / (10 + 30) = 240 s -> amber (120 < 240 <= 600); 100*(1800-240)/(1800-60) = 89.6552
    check(card, "data_freshness", "district", "1", value=240.0, status="amber", score=89.6552)
    # quarantine: district 1 2/42 = 0.047619 -> amber; city (2 + 8)/(40 + 10) = 0.2 -> red, score 0
    check(card, "quarantine_rate", "district", "1", value=0.047619, status="amber")
    check(card, "quarantine_rate", "city", CITY, value=0.2, status="red", score=0.0)


def test_night_noise_counts_bilbao_night_hours_only() -> None:
    catalogue = load_catalogue()
    # 7 March is CET (UTC+1): local 23:00-07:00 = UTC 22:00-06:00, 8 hours. LAeq 50 all day, 40 at UTC 05:00.
    values = {hour: 40.0 if hour == 5 else 50.0 for hour in range(24)}
    hourly = pd.DataFrame([{"feed": "noise", "field": "LAeq", "sensor_id": "N1", "district_code": 4,
                            "barrio_code": "402", "hour_start": pd.Timestamp(2025, 3, 7, h, tz="UTC"), "n": 12,
                            "sum": 12 * v, "mean": v, "min": v, "max": v} for h, v in values.items()])
    card = compute_scorecard(catalogue, hourly, as_of=AS_OF, boundary_version="b", population=POPULATION,
                             periods=("day",))
    # night hours UTC 22, 23 (7 March) and 00..05 (7 March) are in the day: 0,1,2,3,4,5,22,23 = 8 hours;
    # 7 of them above 45 -> 7/8 = 0.875 -> red (> 0.5); capture 8/8
    check(card, "noise_above_who_lnight", "district", "4", value=0.875, n=8.0, data_capture=1.0, status="red")
    # all 24 hours against 53 dB: 50 and 40 are not above -> 0/24
    check(card, "noise_above_who_lden", "district", "4", value=0.0, n=24.0, status="green")


def test_gold_inputs_are_checked() -> None:
    catalogue = load_catalogue()
    hourly = pd.DataFrame([{"feed": "air_quality", "field": "no2", "sensor_id": "A", "district_code": 1,
                            "barrio_code": "101", "hour_start": pd.Timestamp(2025, 3, 7, h, tz="UTC"), "n": 1,
                            "sum": 30.0, "mean": 30.0, "min": 30.0, "max": 30.0} for h in range(24)])
    card = compute_scorecard(catalogue, hourly, as_of=AS_OF, boundary_version="b", periods=("day",))
    check(card, "no2_annual_mean", "district", "1", value=30.0, status="amber", data_capture=1.0)
    with pytest.raises(GoldInputError, match="gold_hourly lacks column"):
        compute_scorecard(catalogue, hourly.drop(columns=["n"]), as_of=AS_OF, boundary_version="b")
    naive = hourly.assign(hour_start=hourly["hour_start"].dt.tz_localize(None))
    with pytest.raises(GoldInputError, match="timezone-aware"):
        compute_scorecard(catalogue, naive, as_of=AS_OF, boundary_version="b")
    shifted = hourly.assign(hour_start=hourly["hour_start"] + pd.Timedelta(minutes=5))
    with pytest.raises(GoldInputError, match="start of an hour"):
        compute_scorecard(catalogue, shifted, as_of=AS_OF, boundary_version="b")


def test_required_sources_tell_gold_what_to_produce() -> None:
    needed = required_sources(load_catalogue())
    assert {("air_quality", "no2"), ("air_quality", "o3"), ("waste_containers", "fillingLevel"),
            ("bike_stations", "freeSlotNumber"), ("energy_meters", "totalConsumption")} <= needed["hourly"]
    assert needed["events"] == {("incidents", "id"), ("road_accidents", "id"),
                                ("emergency_dispatches", "arrivalTime"), ("bus_positions", "scheduleDeviation")}


def test_bus_punctuality_is_the_share_of_stop_events_within_minus_1_plus_5_minutes() -> None:
    deviations = {"1": [-90, -60, 0, 120, 300, 301, 600, 30], "4": [10, 20, 400]}
    events = pd.DataFrame([
        {"feed": "bus_positions", "field": "scheduleDeviation", "event_id": f"bus-{district}-{i}",
         "district_code": district, "barrio_code": None,
         "event_time": pd.Timestamp(2025, 3, 7, 8, i, tz="UTC"), "value": float(seconds)}
        for district, values in deviations.items() for i, seconds in enumerate(values)])
    card = compute_scorecard(load_catalogue(), None, gold_events=events, as_of=AS_OF, boundary_version="b",
                             population=POPULATION)
    # district 1: -60, 0, 120, 300 and 30 lie in [-60, 300] (bounds included): 5 of 8 = 0.625 -> below amber 0.75
    # -> red; higher is better: 100 * (0.625 - 0.6) / (0.9 - 0.6) = 8.3333
    check(card, "bus_punctuality", "district", "1", value=0.625, status="red", score=8.3333, n=8.0)
    # city: 5 + 2 of 11 = 0.636364 -> red; 100 * (0.636364 - 0.6) / 0.3 = 12.1212
    check(card, "bus_punctuality", "city", CITY, value=0.636364, status="red", score=12.1212, n=11.0)
    # district 4: 3 stop events (< 5): published suppressed, status from 2/3 = 0.6667 -> red
    check(card, "bus_punctuality", "district", "4", value=None, suppressed=True, status="red")
