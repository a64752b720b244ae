"""Balanced scorecard GOLDEN test: the hand-made set in tests/golden_scorecard.py, whose KPI values, statuses,
exceedances and scores were computed by hand; the arithmetic is in the comments next to each literal."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from golden_scorecard import (
    AS_OF,
    CATALOGUE,
    CITY,
    POPULATION,
    golden_events,
    golden_hourly,
    golden_sensors,
)

from bigbilbao.contracts.loader import load_contracts
from bigbilbao.scorecard.catalogue import load_catalogue, parse_catalogue
from bigbilbao.scorecard.compute import KPI_COLUMNS, Scorecard, compute_scorecard


@pytest.fixture(scope="module")
def golden() -> Scorecard:
    catalogue = parse_catalogue(CATALOGUE, load_contracts(), "golden")
    return compute_scorecard(catalogue, golden_hourly(), gold_events=golden_events(), sensors=golden_sensors(),
                             as_of=AS_OF, boundary_version="test-boundaries-v1", population=POPULATION)


def row(card: Scorecard, kpi: str, level: str, code: str, period: str = "day") -> dict[str, Any]:
    found = card.kpis[(card.kpis["kpi_id"] == kpi) & (card.kpis["area_level"] == level)
                      & (card.kpis["area_code"] == code) & (card.kpis["period"] == period)]
    assert len(found) == 1, (kpi, level, code, period)
    return {key: (None if isinstance(v, float) and np.isnan(v) else v) for key, v in found.iloc[0].items()}


def score(card: Scorecard, level: str, code: str, perspective: str, period: str = "day") -> Any:
    found = card.scores[(card.scores["area_level"] == level) & (card.scores["area_code"] == code)
                        & (card.scores["period"] == period) & (card.scores["perspective"] == perspective)]
    assert len(found) == 1
    value = found.iloc[0]["score"]
    return None if np.isnan(value) else value


def check(card: Scorecard, kpi: str, level: str, code: str, **expected: Any) -> None:
    got = row(card, kpi, level, code)
    for key, want in expected.items():
        if isinstance(want, float):
            assert got[key] == pytest.approx(want, abs=1e-4), (kpi, level, code, key, got[key])
        else:
            assert got[key] == want, (kpi, level, code, key, got[key])


# ------------------------------------------------------------------------------------------ golden: air quality

def test_golden_no2_exceedances_follow_the_eu_rule(golden: Scorecard) -> None:
    # AQ-A: 10 (10 Feb) + 9 (7 Mar) = 19 hours above 200 since 1 January > 18 allowed -> red, score 0
    # (without the breach the score would be 100 * (36 - 19) / (36 - 0) = 47.2). Capture 24/24 = 1.0.
    # 6 March: AQ-A has no hour -> previous span invalid -> no trend.
    check(golden, "no2_hourly_exceedances", "district", "1", value=19.0, exceedances_used=19.0,
          exceedances_allowed=18, status="red", score=0.0, data_capture=1.0, trend=None, previous_value=None)
    check(golden, "no2_hourly_exceedances", "barrio", "101", value=19.0, status="red", score=0.0)
    # AQ-B: 0 exceedances, 0 the day before (capture 24/24) -> green, 100, flat 0
    check(golden, "no2_hourly_exceedances", "district", "2", value=0.0, status="green", score=100.0,
          trend="flat", delta=0.0, previous_value=0.0, data_capture=1.0)
    # AQ-C: 12 of 24 hours -> capture 0.5 < 0.75 -> no_data, no score (value 0 still published)
    check(golden, "no2_hourly_exceedances", "district", "3", value=0.0, status="no_data", score=None,
          data_capture=0.5)
    # city: worst station AQ-A -> 19; capture (24 + 24 + 12) / (3 * 24) = 60/72 = 0.833333;
    # 6 March: 24/72 = 0.333 < 0.75 -> no trend
    check(golden, "no2_hourly_exceedances", "city", CITY, value=19.0, status="red", score=0.0,
          data_capture=0.833333, trend=None)


def test_golden_no2_period_mean_is_the_worst_station(golden: Scorecard) -> None:
    # AQ-A: (9 * 250 + 15 * 40) / 24 = (2250 + 600) / 24 = 118.75 -> red; (40 - 118.75) / (40 - 20) < 0 -> 0
    check(golden, "no2_mean", "district", "1", value=118.75, status="red", score=0.0, n=1.0)
    # AQ-B: (12 * 20 + 12 * 30) / 24 = 25 -> amber (20 < 25 <= 40); 100 * (40 - 25) / (40 - 20) = 75
    # 6 March: 35 -> delta 25 - 35 = -10, down
    check(golden, "no2_mean", "district", "2", value=25.0, status="amber", score=75.0, trend="down", delta=-10.0,
          previous_value=35.0)
    # AQ-C: 12 of 24 hours (0.5 < 0.75): not a valid period mean for the station -> no value, no_data
    check(golden, "no2_mean", "district", "3", value=None, status="no_data", score=None, data_capture=0.5)
    # city: worst valid station max(118.75, 25) = 118.75, from n = 2 stations (AQ-C left out)
    check(golden, "no2_mean", "city", CITY, value=118.75, status="red", score=0.0, n=2.0)


def test_golden_data_capture_kpi(golden: Scorecard) -> None:
    # higher is better, target 1.0, red 0.5: score = 100 * (capture - 0.5) / (1.0 - 0.5)
    check(golden, "aq_capture", "district", "1", value=1.0, status="green", score=100.0, trend="up", delta=1.0,
          previous_value=0.0)                                             # 6 March: 0/24
    check(golden, "aq_capture", "district", "2", value=1.0, status="green", score=100.0, trend="flat")
    check(golden, "aq_capture", "district", "3", value=0.5, status="red", score=0.0)     # 0.5 < amber 0.75
    check(golden, "aq_capture", "city", CITY, value=0.833333, status="amber", score=66.6667,  # (0.8333-0.5)/0.5
          trend="up", delta=0.5, previous_value=0.333333)                 # 60/72 - 24/72 = 36/72 = 0.5


# ------------------------------------------------------------------------------------------ golden: waste, footfall

def test_golden_waste_share_of_container_hours(golden: Scorecard) -> None:
    # district 1: W1 6 + W2 0 hours above 0.8 out of 48 -> 6/48 = 0.125 -> amber (0.10 < 0.125 <= 0.20)
    # score 100 * (0.50 - 0.125) / (0.50 - 0.05) = 100 * 0.375 / 0.45 = 83.3333; 6 March: 0/48 -> up 0.125
    check(golden, "waste_full", "district", "1", value=0.125, status="amber", score=83.3333, n=48.0,
          trend="up", delta=0.125, previous_value=0.0, data_capture=1.0)
    # barrio 101 (W1): 6/24 = 0.25 -> red (> 0.20) but score 100 * (0.5 - 0.25) / 0.45 = 55.5556
    check(golden, "waste_full", "barrio", "101", value=0.25, status="red", score=55.5556)
    # barrio 102 (W2): 0 -> green, better than target -> 100
    check(golden, "waste_full", "barrio", "102", value=0.0, status="green", score=100.0)
    # district 2 (W3): 2/24 = 0.083333 -> green; 100 * (0.5 - 0.083333) / 0.45 = 92.5926; 6 March capture 0
    check(golden, "waste_full", "district", "2", value=0.083333, status="green", score=92.5926, trend=None)
    # district 3: no container expected -> no capture -> no_data, no value
    check(golden, "waste_full", "district", "3", value=None, status="no_data", data_capture=None)
    # city: 8/72 = 0.111111 -> amber; 100 * (0.5 - 0.111111) / 0.45 = 86.4198;
    # 6 March: 0/48 with capture 48/72 = 0.667 >= 0.5 -> previous 0, up 0.111111
    check(golden, "waste_full", "city", CITY, value=0.111111, status="amber", score=86.4198, trend="up",
          delta=0.111111, previous_value=0.0, data_capture=1.0)


def test_golden_trend_only_footfall(golden: Scorecard) -> None:
    # 24 hours x 100 = 2400 people; 6 March 24 x 90 = 2160 -> up 240; no colour, no score
    check(golden, "footfall", "district", "1", value=2400.0, status=None, score=None, trend="up", delta=240.0,
          previous_value=2160.0, data_capture=1.0)
    check(golden, "footfall", "district", "2", value=None, status="no_data")  # no counter there


# ------------------------------------------------------------------------------------------ golden: safety events

def test_golden_incidents_per_100k_with_small_count_suppression(golden: Scorecard) -> None:
    # district 1: 6 incidents / 50,000 * 100,000 = 12.0 -> amber (10 < 12 <= 20); 100 * (40 - 12) / 40 = 70
    # 6 March: 3 incidents (< 5, suppressed) -> no previous value or delta, trend direction kept
    check(golden, "incidents_per_100k", "district", "1", value=12.0, status="amber", score=70.0, n=6.0,
          suppressed=False, trend="up", delta=None, previous_value=None)
    # district 2: 2 incidents (< 5) -> value, n, score hidden; status from 2/40,000*1e5 = 5.0 -> green
    check(golden, "incidents_per_100k", "district", "2", value=None, n=None, score=None, suppressed=True,
          status="green", trend="up", delta=None)
    # district 3: 0 incidents -> published 0 -> green, 100
    check(golden, "incidents_per_100k", "district", "3", value=0.0, n=0.0, status="green", score=100.0,
          suppressed=False, trend="flat", delta=0.0)
    # city: 8 / 115,000 * 100,000 = 6.956522 -> green; 100 * (40 - 6.956522) / 40 = 82.6087
    check(golden, "incidents_per_100k", "city", CITY, value=6.956522, status="green", score=82.6087, n=8.0)
    # barrio 101: 4 incidents -> suppressed; no barrio population -> no_data
    check(golden, "incidents_per_100k", "barrio", "101", value=None, suppressed=True, status="no_data")


def test_golden_emergency_response_p90(golden: Scorecard) -> None:
    # district 1 sorted [300, 420, 480, 600, 900, 1200]: rank (6-1)*0.9 = 4.5 -> 900 + 0.5*(1200-900) = 1050
    # -> red (> 900); score 100 * (1200 - 1050) / (1200 - 480) = 100 * 150 / 720 = 20.8333
    check(golden, "response_p90", "district", "1", value=1050.0, status="red", score=20.8333, n=6.0,
          suppressed=False, trend=None)
    # district 2: 3 dispatches -> suppressed; p90 = 400 + 0.8*(500-400) = 480 -> green
    check(golden, "response_p90", "district", "2", value=None, status="green", score=None, suppressed=True)
    check(golden, "response_p90", "district", "3", value=None, status="no_data", score=None, suppressed=False)
    # city [300,300,400,420,480,500,600,900,1200]: rank 8*0.9 = 7.2 -> 900 + 0.2*300 = 960 -> red;
    # 100 * (1200 - 960) / 720 = 33.3333
    check(golden, "response_p90", "city", CITY, value=960.0, status="red", score=33.3333)


# ------------------------------------------------------------------------------------------ golden: roll-up

def test_golden_perspective_and_overall_scores(golden: Scorecard) -> None:
    # district 1 sustainability: (2*0 + 1*0 + 1*83.3333) / 4 = 20.8333; safety (70 + 20.8333)/2 = 45.4167;
    # service 100; mobility: only a trend-only KPI -> none.
    # overall (0.4*20.8333 + 0.2*45.4167 + 0.1*100) / (0.4 + 0.2 + 0.1) = 27.4167 / 0.7 = 39.1667
    assert score(golden, "district", "1", "sustainability") == pytest.approx(20.8333, abs=1e-3)
    assert score(golden, "district", "1", "safety") == pytest.approx(45.4167, abs=1e-3)
    assert score(golden, "district", "1", "service_data") == pytest.approx(100.0)
    assert score(golden, "district", "1", "mobility") is None
    assert score(golden, "district", "1", "overall") == pytest.approx(39.1667, abs=1e-3)
    # district 2: sustainability (2*100 + 75 + 92.5926) / 4 = 91.8981; safety: all suppressed -> none;
    # overall (0.4*91.8981 + 0.1*100) / 0.5 = 46.7593 / 0.5 = 93.5185
    assert score(golden, "district", "2", "sustainability") == pytest.approx(91.8981, abs=1e-3)
    assert score(golden, "district", "2", "safety") is None
    assert score(golden, "district", "2", "overall") == pytest.approx(93.5185, abs=1e-3)
    # district 3: sustainability all no_data -> none; safety 100 (incidents; response no_data); service 0
    # overall (0.2*100 + 0.1*0) / 0.3 = 66.6667
    assert score(golden, "district", "3", "sustainability") is None
    assert score(golden, "district", "3", "overall") == pytest.approx(66.6667, abs=1e-3)
    # city: sustainability (0 + 0 + 86.4198)/4 = 21.6049; safety (82.6087 + 33.3333)/2 = 57.9710; service 66.6667
    # overall (0.4*21.6049 + 0.2*57.9710 + 0.1*66.6667)/0.7 = (8.6420 + 11.5942 + 6.6667)/0.7 = 38.4326
    assert score(golden, "city", CITY, "sustainability") == pytest.approx(21.6049, abs=1e-3)
    assert score(golden, "city", CITY, "safety") == pytest.approx(57.9710, abs=1e-3)
    assert score(golden, "city", CITY, "overall") == pytest.approx(38.4326, abs=1e-3)
    n_kpis = golden.scores.set_index(["area_level", "area_code", "period", "perspective"])["n_kpis"]
    assert n_kpis[("district", "1", "day", "overall")] == 6


def test_golden_longer_periods_and_row_grid(golden: Scorecard) -> None:
    # year to date: still 19 exceedances at AQ-A, but 34 of 66*24 = 1584 hours -> capture 0.0215 -> no_data
    ytd = row(golden, "no2_hourly_exceedances", "district", "1", "year_to_date")
    assert (ytd["value"], ytd["exceedances_used"], ytd["status"]) == (19.0, 19.0, "no_data")
    assert ytd["data_capture"] == pytest.approx(34 / 1584)
    assert ytd["period_start"] == pd.Timestamp(2025, 1, 1, tz="UTC") and ytd["period_end"] == pd.Timestamp(AS_OF)
    assert row(golden, "waste_full", "city", CITY, "week")["period_start"] == pd.Timestamp(2025, 3, 3, tz="UTC")
    # 7 KPIs x (city + 3 districts + 4 barrios) x 4 periods, every row versioned
    assert len(golden.kpis) == 7 * 8 * 4 and list(golden.kpis.columns) == KPI_COLUMNS
    assert set(golden.kpis["boundary_version"]) == {"test-boundaries-v1"}
    assert golden.kpis["catalogue_version"].str.startswith("sha256:").all()
    assert set(golden.kpis["status"].dropna()) <= {"green", "amber", "red", "no_data"}


def test_18_exceedances_are_allowed_19_are_not() -> None:
    hourly = golden_hourly()
    first = hourly.index[(hourly["sensor_id"] == "AQ-A") & (hourly["mean"] == 210.0)][0]
    card = compute_scorecard(parse_catalogue(CATALOGUE, load_contracts()), hourly.drop(index=first),
                             sensors=golden_sensors(), as_of=AS_OF, boundary_version="b", population=POPULATION)
    # 18 = allowed -> no breach; amber (0 < 18 <= 18); score 100 * (36 - 18) / 36 = 50
    check(card, "no2_hourly_exceedances", "district", "1", value=18.0, status="amber", score=50.0)


def test_suppression_threshold_and_zero_policy() -> None:
    catalogue = parse_catalogue(CATALOGUE, load_contracts())
    loose = compute_scorecard(catalogue, golden_hourly(), gold_events=golden_events(), as_of=AS_OF,
                              boundary_version="b", population=POPULATION, k=2)
    # k = 2: district 2's 2 incidents are published: 2/40,000*1e5 = 5 -> green, 100*(40-5)/40 = 87.5
    check(loose, "incidents_per_100k", "district", "2", value=5.0, suppressed=False, score=87.5)
    strict = compute_scorecard(catalogue, golden_hourly(), gold_events=golden_events(), as_of=AS_OF,
                               boundary_version="b", population=POPULATION, suppress_zero=True)
    check(strict, "incidents_per_100k", "district", "3", value=None, suppressed=True, score=None)


def test_shipped_catalogue_scores_the_golden_data() -> None:
    card = compute_scorecard(load_catalogue(), golden_hourly(), gold_events=golden_events(),
                             sensors=golden_sensors(), as_of=AS_OF, boundary_version="b")
    # packaged population: 8 districts; areas = city + 8 districts + 4 barrios; 43 KPIs x 13 areas x 4 periods
    assert len(card.kpis) == 43 * 13 * 4
    assert set(card.kpis["status"].dropna()) <= {"green", "amber", "red", "no_data"}
    # EU rule with the official figures: 19 hourly NO2 exceedances vs 18 allowed, capture 24/24 >= 0.9
    check(card, "no2_hourly_limit_exceedances", "district", "1", value=19.0, status="red", score=0.0)
    # a feed without a single event in the input is no data, not "0 accidents" scoring 100
    check(card, "road_accidents_per_100k", "district", "1", value=None, status="no_data", score=None)
    check(card, "incidents_per_100k", "district", "3", value=0.0, status="green")
    overall = card.scores[card.scores["perspective"] == "overall"]
    assert overall["score"].dropna().between(0, 100).all()
