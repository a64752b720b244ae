"""Silver -> gold transforms by hand: sensor-hours, area windows at three grains, events, quality, EU alerts.

Pure DataFrame transforms on silver rows built directly in the silver table contract (`bigbilbao.stages.silver`);
every expected number is worked out by hand in the comment next to it. The streaming stage itself
(late rows, replays, the golden scorecard through gold) is tested in tests/test_gold_stream.py.
"""

from __future__ import annotations

import pytest
from gold_rows import at, contracts, rows_of, silver  # noqa: F401  (contracts is a fixture)

from bigbilbao.scorecard.catalogue import load_catalogue
from bigbilbao.stages import gold_aggregate, gold_windows

pytestmark = pytest.mark.integration
CITY = "48020"


# ------------------------------------------------------------------------------------------------ pure transforms

def test_hourly_aggregates_by_hand(spark, contracts) -> None:
    aq = contracts["air_quality"]
    frame = silver(spark, aq, [
        {"entity_id": "A", "event_time": at(10, 5), "no2": 10.0, "o3": 100.0},
        {"entity_id": "A", "event_time": at(10, 25), "no2": 20.0},
        {"entity_id": "A", "event_time": at(10, 59, 59), "no2": 30.0, "o3": 120.0, "district_code": "2"},
        {"entity_id": "A", "event_time": at(10, 30), "no2": 999.0, "dq_warnings": ["late", "stale"]},  # stale: out
        {"entity_id": "A", "event_time": at(11), "no2": 40.0},  # the next hour
        {"entity_id": "B", "event_time": at(10, 10), "no2": float("nan"), "o3": 50.0, "district_code": "outside"},
    ])
    got = rows_of(gold_aggregate.hourly(frame, aq, ("no2", "o3")), "sensor_id", "field", "hour_start", "district_code",
                  "n", "sum", "mean", "min", "max")
    assert got == sorted([
        # A 10:00 no2: 10, 20, 30 -> n 3, sum 60, mean 20; the hour's last reading (10:59:59) is in district 2
        ("A", "no2", at(10), "2", 3, 60.0, 20.0, 10.0, 30.0),
        ("A", "no2", at(11), "1", 1, 40.0, 40.0, 40.0, 40.0),
        ("A", "o3", at(10), "2", 2, 220.0, 110.0, 100.0, 120.0),  # 100 + 120
        ("B", "o3", at(10), None, 1, 50.0, 50.0, 50.0, 50.0),  # NaN no2 is no value; 'outside' -> null
    ], key=repr)
    assert gold_aggregate.hourly(frame, aq, ("no2",)).columns == [*gold_aggregate.HOURLY_SCHEMA.fieldNames()]


def test_events_and_quality_by_hand(spark, contracts) -> None:
    em = contracts["emergency_dispatches"]
    frame = silver(spark, em, [
        {"entity_id": "E1", "event_time": at(9), "arrivalTime": at(9, 8), "district_code": "3"},  # 480 s
        {"entity_id": "E2", "event_time": at(9, 30), "district_code": "3"},  # still on its way: no arrivalTime row
        {"entity_id": "E3", "event_time": at(9, 40), "arrivalTime": at(9, 50), "dq_warnings": ["stale"]},  # stale: out
        # E4 sent twice, as the call's status changes: the onScene update brings the arrival (09:20 -> 09:32)
        {"entity_id": "E4", "event_time": at(9, 20), "status": "dispatched", "district_code": "4"},
        {"entity_id": "E4", "event_time": at(9, 20), "status": "onScene", "arrivalTime": at(9, 32),
         "district_code": "4"},
    ])
    got = rows_of(gold_aggregate.events(frame, em, ("arrivalTime", "id")), "field", "event_id", "district_code",
                  "event_time", "value")
    assert got == sorted([("arrivalTime", "E1", "3", at(9), 480.0), ("id", "E1", "3", at(9), None),
                          ("id", "E2", "3", at(9, 30), None),
                          ("arrivalTime", "E4", "4", at(9, 20), 720.0), ("id", "E4", "4", at(9, 20), None)], key=repr)
    call = {"id": "E4", "type": "EmergencyDispatch", "callTime": "2025-06-10T09:20:00Z", "status": "dispatched"}
    assert em.dedup_values(call) != em.dedup_values({**call, "status": "onScene"})  # silver keeps both updates

    quarantine = spark.createDataFrame(
        [("emergency_dispatches", at(9, 15), at(9, 16)), ("emergency_dispatches", None, at(9, 45))],
        "feed string, kafka_timestamp timestamp, ingested_at timestamp")
    quality = {(r["district_code"], r["n_valid"], r["n_quarantined"], r["lag_sum_s"])
               for r in gold_aggregate.quality(frame, quarantine).collect()}
    # district 3: E1 and E2, each written 120 s after its event -> lag 240; E3 (district 1) counts: it is in silver;
    # district 4: E4's two silver rows. Two quarantined rows arriving 09:15 and (no Kafka time) 09:45 -> city 09:00.
    assert quality == {("3", 2, 0, 240.0), ("1", 1, 0, 120.0), ("4", 2, 0, 240.0), (None, 0, 2, 0.0)}
    bare = frame.drop("district_code", "district_name", "barrio_code", "barrio_name", "boundary_version")
    columns = ("district_code", "n_valid", "n_quarantined", "lag_sum_s")
    unlocated = [tuple(r) for r in gold_aggregate.quality(bare, quarantine).select(*columns).collect()]
    assert unlocated == [(None, 5, 2, 600.0)]  # silver without spatial enrichment: every row counts for the city only


def test_area_windows_at_15_minutes_an_hour_and_a_day_by_hand(spark, contracts) -> None:
    aq = contracts["air_quality"]
    a, b = {"district_code": "1", "barrio_code": "101"}, {"district_code": "2", "barrio_code": "201"}
    frame = silver(spark, aq, [
        {"entity_id": "A", "event_time": at(10, 5), "no2": 10.0, **a},
        {"entity_id": "A", "event_time": at(10, 20), "no2": 20.0, **a},
        {"entity_id": "A", "event_time": at(10, 50), "no2": 30.0, **a},
        {"entity_id": "A", "event_time": at(10, 30), "no2": 999.0, "dq_warnings": ["stale"], **a},  # stale: out
        {"entity_id": "B", "event_time": at(10, 10), "no2": 40.0, **b},
        {"entity_id": "B", "event_time": at(11), "no2": 50.0, **b},
        {"entity_id": "C", "event_time": at(10, 40), "no2": 60.0, "district_code": "outside"},  # city only
    ])
    found = gold_windows.windows(frame, aq, ("no2",), CITY)
    assert found.columns == gold_windows.WINDOWS_SCHEMA.fieldNames()
    columns = ("grain", "area_level", "area_code", "window_start", "window_end", "n", "sum", "mean", "min", "max",
               "entities")
    got = rows_of(found.filter("area_level != 'barrio'"), *columns)
    q, h = 15, 60  # window lengths in minutes
    assert got == sorted([
        # quarter hours: 10:00 holds A's 10 and B's 40 in the city
        ("15min", "city", CITY, at(10), at(10, q), 2, 50.0, 25.0, 10.0, 40.0, 2),
        ("15min", "city", CITY, at(10, 15), at(10, 30), 1, 20.0, 20.0, 20.0, 20.0, 1),
        ("15min", "city", CITY, at(10, 30), at(10, 45), 1, 60.0, 60.0, 60.0, 60.0, 1),  # C, outside every district
        ("15min", "city", CITY, at(10, 45), at(11), 1, 30.0, 30.0, 30.0, 30.0, 1),
        ("15min", "city", CITY, at(11), at(11, q), 1, 50.0, 50.0, 50.0, 50.0, 1),
        ("15min", "district", "1", at(10), at(10, q), 1, 10.0, 10.0, 10.0, 10.0, 1),
        ("15min", "district", "1", at(10, 15), at(10, 30), 1, 20.0, 20.0, 20.0, 20.0, 1),
        ("15min", "district", "1", at(10, 45), at(11), 1, 30.0, 30.0, 30.0, 30.0, 1),
        ("15min", "district", "2", at(10), at(10, q), 1, 40.0, 40.0, 40.0, 40.0, 1),
        ("15min", "district", "2", at(11), at(11, q), 1, 50.0, 50.0, 50.0, 50.0, 1),
        # hours: city 10:00 = 10 + 20 + 30 + 40 + 60 = 160 over 5 -> 32, from A, B and C
        ("hour", "city", CITY, at(10), at(10, h), 5, 160.0, 32.0, 10.0, 60.0, 3),
        ("hour", "city", CITY, at(11), at(11, h), 1, 50.0, 50.0, 50.0, 50.0, 1),
        ("hour", "district", "1", at(10), at(10, h), 3, 60.0, 20.0, 10.0, 30.0, 1),
        ("hour", "district", "2", at(10), at(10, h), 1, 40.0, 40.0, 40.0, 40.0, 1),
        ("hour", "district", "2", at(11), at(11, h), 1, 50.0, 50.0, 50.0, 50.0, 1),
        # the UTC day: 160 + 50 = 210 over 6 -> 35
        ("day", "city", CITY, at(0), at(24), 6, 210.0, 35.0, 10.0, 60.0, 3),
        ("day", "district", "1", at(0), at(24), 3, 60.0, 20.0, 10.0, 30.0, 1),
        ("day", "district", "2", at(0), at(24), 2, 90.0, 45.0, 40.0, 50.0, 1),
    ], key=repr)
    barrios = rows_of(found.filter("area_level = 'barrio'"), "grain", "area_code", "window_start", "n", "sum")
    districts = rows_of(found.filter("area_level = 'district'"), "grain", "area_code", "window_start", "n", "sum")
    # each barrio holds exactly its district's readings here (barrio 101 in district 1, 201 in 2)
    assert [(g, c[0], w, n, s) for g, c, w, n, s in barrios] == [(g, c, w, n, s) for g, c, w, n, s in districts]


def test_alerts_for_o3_above_180_and_three_hours_of_no2_above_400(spark) -> None:
    def hour(field: str, sensor: str, h: int, mean: float) -> tuple:
        return ("air_quality", field, sensor, "1", None, at(h), 1, mean, mean, mean, mean, "v")

    hourly = spark.createDataFrame([
        hour("o3", "S1", 10, 180.0),  # at the threshold: no alert ("above")
        hour("o3", "S1", 11, 181.0),  # information
        hour("o3", "S1", 12, 250.0),  # information and alert
        hour("no2", "S2", 1, 401.0), hour("no2", "S2", 2, 402.0), hour("no2", "S2", 3, 403.0),  # 3 h: alert at 03:00
        hour("no2", "S2", 5, 410.0), hour("no2", "S2", 6, 410.0), hour("no2", "S2", 8, 410.0),  # gaps: no alert
    ], gold_aggregate.HOURLY_SCHEMA)
    found = rows_of(gold_aggregate.alerts(hourly), "field", "sensor_id", "level", "hour_start", "value")
    assert found == sorted([("no2", "S2", "alert", at(3), 401.0), ("o3", "S1", "information", at(11), 181.0),
                            ("o3", "S1", "information", at(12), 250.0), ("o3", "S1", "alert", at(12), 250.0)], key=repr)
    assert gold_aggregate.alerts(hourly).columns == gold_aggregate.ALERTS_SCHEMA.fieldNames()


def test_gold_fields_follow_the_catalogue() -> None:
    catalogue = load_catalogue()
    assert {"no2", "o3", "so2", "pm10", "pm25"} <= set(gold_aggregate.gold_fields(catalogue, "air_quality")["hourly"])
    assert gold_aggregate.gold_fields(catalogue, "emergency_dispatches")["events"] == ("arrivalTime",)
    assert gold_aggregate.gold_fields(catalogue, "incidents") == {"hourly": (), "events": ("id",)}
