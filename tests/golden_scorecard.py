"""The GOLDEN hand-made data set of tests/test_scorecard.py: a small catalogue, sensors, hours and events.

Every value here is chosen so the expected KPI values can be worked out by hand; the expectations
and their arithmetic are written out in tests/test_scorecard.py, never recomputed by the code under test.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from bigbilbao.scorecard.population import Population

AS_OF = dt.datetime(2025, 3, 8, tzinfo=dt.timezone.utc)  # reports the day 2025-03-07 (UTC)
CITY = "48020"
POPULATION = Population("test", dt.date(2025, 1, 1), CITY, {"1": 50_000, "2": 40_000, "3": 25_000})
K = dict(objective="o", definition="d", reference="r")
CATALOGUE = {
    "perspectives": {"sustainability": {"weight": 0.4}, "mobility": {"weight": 0.3}, "safety": {"weight": 0.2},
                     "service_data": {"weight": 0.1}},
    "kpis": [
        {"id": "no2_hourly_exceedances", "perspective": "sustainability", "unit": "hours",
         "source": {"feed": "air_quality", "field": "no2"},
         "aggregation": {"window": "hour", "statistic": "exceedance_count"}, "direction": "lower_is_better",
         "target": 0, "thresholds": {"green": 0, "amber": 18, "red": 36},
         "exceedance": {"limit": 200, "averaging_period": "hour", "allowed_per_year": 18},
         "min_data_capture": 0.75, "weight": 2, **K},
        {"id": "no2_mean", "perspective": "sustainability", "unit": "ug/m3",
         "source": {"feed": "air_quality", "field": "no2"}, "aggregation": {"window": "period", "statistic": "max"},
         "direction": "lower_is_better", "target": 20, "thresholds": {"green": 20, "amber": 40, "red": 40},
         "min_data_capture": 0.75, "weight": 1, **K},
        {"id": "waste_full", "perspective": "sustainability", "unit": "fraction",
         "source": {"feed": "waste_containers", "field": "fillingLevel"},
         "aggregation": {"window": "hour", "statistic": "share_of_time", "condition": {"op": "gt", "value": 0.8}},
         "direction": "lower_is_better", "target": 0.05, "thresholds": {"green": 0.10, "amber": 0.20, "red": 0.50},
         "min_data_capture": 0.5, "weight": 1, **K},
        {"id": "footfall", "perspective": "mobility", "unit": "people",
         "source": {"feed": "crowd_flow", "field": "peopleCount"},
         "aggregation": {"window": "hour", "statistic": "sum", "hour_value": "sum"}, "direction": "higher_is_better",
         "target": None, "thresholds": None, "min_data_capture": 0.5, "weight": 0, **K},
        {"id": "incidents_per_100k", "perspective": "safety", "unit": "incidents/100k",
         "source": {"feed": "incidents", "field": "id"},
         "aggregation": {"window": "event", "statistic": "count", "normalise": "per_100k"},
         "direction": "lower_is_better", "target": 0, "thresholds": {"green": 10, "amber": 20, "red": 40},
         "min_data_capture": 0, "weight": 1, **K},
        {"id": "response_p90", "perspective": "safety", "unit": "s",
         "source": {"feed": "emergency_dispatches", "field": "arrivalTime"},
         "aggregation": {"window": "event", "statistic": "p90"}, "direction": "lower_is_better",
         "target": 480, "thresholds": {"green": 600, "amber": 900, "red": 1200}, "min_data_capture": 0,
         "weight": 1, **K},
        {"id": "aq_capture", "perspective": "service_data", "unit": "fraction",
         "source": {"feed": "air_quality", "field": "no2"},
         "aggregation": {"window": "hour", "statistic": "data_capture"}, "direction": "higher_is_better",
         "target": 1.0, "thresholds": {"green": 0.9, "amber": 0.75, "red": 0.5}, "min_data_capture": 0,
         "weight": 1, **K},
    ],
}
# Where each sensor stands: (feed, sensor, district, barrio)
SENSORS = [("air_quality", "AQ-A", 1, "101"), ("air_quality", "AQ-B", 2, "201"), ("air_quality", "AQ-C", 3, "301"),
           ("waste_containers", "W1", 1, "101"), ("waste_containers", "W2", 1, "102"),
           ("waste_containers", "W3", 2, "201")]  # crowd_flow is not registered: its sensors come from the data
WHERE = {sensor: (district, barrio) for _, sensor, district, barrio in SENSORS} | {"P1": (1, "101")}


def hours(feed: str, field: str, sensor: str, month: int, day: int, values: dict[range, float],
          n: int = 1, total: float | None = None) -> list[dict[str, Any]]:
    """gold_hourly rows: one per hour of each range, with mean = min = max = value and sum = n * value."""
    district, barrio = WHERE[sensor]
    return [{"feed": feed, "field": field, "sensor_id": sensor, "district_code": district, "barrio_code": barrio,
             "hour_start": pd.Timestamp(2025, month, day, hour, tz="UTC"), "n": n,
             "sum": value * n if total is None else total, "mean": value, "min": value, "max": value}
            for span, value in values.items() for hour in span]


def golden_hourly() -> pd.DataFrame:
    rows = [
        # AQ-A (district 1): 10 hours at 210 on 10 February and 9 hours at 250 on 7 March -> 19 hours above 200
        *hours("air_quality", "no2", "AQ-A", 2, 10, {range(0, 10): 210.0}),
        *hours("air_quality", "no2", "AQ-A", 3, 7, {range(0, 9): 250.0, range(9, 24): 40.0}),
        # AQ-B (district 2): full days on 6 and 7 March, never above 200
        *hours("air_quality", "no2", "AQ-B", 3, 6, {range(0, 24): 35.0}),
        *hours("air_quality", "no2", "AQ-B", 3, 7, {range(0, 12): 20.0, range(12, 24): 30.0}),
        # AQ-C (district 3): only 12 of 24 hours on 7 March -> capture 0.5 < 0.75 -> no_data
        *hours("air_quality", "no2", "AQ-C", 3, 7, {range(0, 12): 50.0}),
        # waste: W1 6 hours above 80 % on 7 March; W2 never; W3 2 hours (none on 6 March)
        *hours("waste_containers", "fillingLevel", "W1", 3, 6, {range(0, 24): 0.5}),
        *hours("waste_containers", "fillingLevel", "W1", 3, 7, {range(0, 6): 0.9, range(6, 24): 0.5}),
        *hours("waste_containers", "fillingLevel", "W2", 3, 6, {range(0, 24): 0.3}),
        *hours("waste_containers", "fillingLevel", "W2", 3, 7, {range(0, 24): 0.3}),
        *hours("waste_containers", "fillingLevel", "W3", 3, 7, {range(0, 2): 0.85, range(2, 24): 0.2}),
        # footfall: 90 then 100 people an hour (12 five-minute counts each)
        *hours("crowd_flow", "peopleCount", "P1", 3, 6, {range(0, 24): 7.5}, n=12, total=90.0),
        *hours("crowd_flow", "peopleCount", "P1", 3, 7, {range(0, 24): 100 / 12}, n=12, total=100.0),
    ]
    return pd.DataFrame(rows)


def event(feed: str, field: str, event_id: str, district: int, barrio: str, day: int, value: float) -> dict:
    return {"feed": feed, "field": field, "event_id": event_id, "district_code": district, "barrio_code": barrio,
            "event_time": pd.Timestamp(2025, 3, day, 10, tz="UTC"), "value": value}


def golden_events() -> pd.DataFrame:
    nan = float("nan")
    incidents = [event("incidents", "id", f"i{i}", 1, "101", 7, nan) for i in range(4)]        # d1/101: 4
    incidents += [event("incidents", "id", f"i{i}", 1, "102", 7, nan) for i in range(4, 6)]   # d1/102: 2
    incidents += [event("incidents", "id", f"i{i}", 2, "201", 7, nan) for i in range(6, 8)]   # d2/201: 2
    incidents += [event("incidents", "id", f"p{i}", 1, "101", 6, nan) for i in range(3)]      # 6 March: d1 3
    response = [event("emergency_dispatches", "arrivalTime", f"e{i}", 1, "101", 7, s)
                for i, s in enumerate([300, 420, 480, 600])]
    response += [event("emergency_dispatches", "arrivalTime", f"f{i}", 1, "102", 7, s)
                 for i, s in enumerate([900, 1200])]
    response += [event("emergency_dispatches", "arrivalTime", f"g{i}", 2, "201", 7, s)
                 for i, s in enumerate([300, 400, 500])]
    return pd.DataFrame(incidents + response)


def golden_sensors() -> pd.DataFrame:
    return pd.DataFrame(SENSORS, columns=["feed", "sensor_id", "district_code", "barrio_code"])
