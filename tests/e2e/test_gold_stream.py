"""Silver -> gold -> scorecard, streaming, without Kafka in the data path: the GOLDEN scorecard through gold
(a late event restating its windows, a district below min_data_capture), replays, start_gold, alerts on Kafka.

Every expected number is worked out by hand in the comment next to it, never recomputed by the code under test.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from gold_rows import (  # noqa: F401  (contracts, settings and small_delta_snapshots are fixtures)
    FEEDS,
    UTC,
    append_silver,
    at,
    contracts,
    feed_writer,
    settings,
    silver,
    small_delta_snapshots,
    snapshot,
)

from bigbilbao.infra import kafka_clients
from bigbilbao.scorecard.catalogue import parse_catalogue
from bigbilbao.scorecard.population import Population
from bigbilbao.stages import gold, publish
from bigbilbao.tables.read import read_table, table_path

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("small_delta_snapshots")]
CITY = "48020"
AS_OF = dt.datetime(2025, 6, 11, tzinfo=UTC)  # reports the day 2025-06-10, the day of gold_rows.at()
POPULATION = Population("test", dt.date(2025, 1, 1), CITY, {"1": 50_000, "2": 40_000, "3": 25_000})
K = dict(objective="o", definition="d", reference="r", weight=1)
AQ = {"feed": "air_quality"}
GOLDEN = {
    "perspectives": {"sustainability": {"weight": 0.5}, "mobility": {"weight": 0.1}, "safety": {"weight": 0.1},
                     "service_data": {"weight": 0.3}},
    "kpis": [
        {"id": "no2_hour_exceedances", "perspective": "sustainability", "unit": "hours",
         "source": {**AQ, "field": "no2"}, "aggregation": {"window": "hour", "statistic": "exceedance_count"},
         "direction": "lower_is_better", "target": 0, "thresholds": {"green": 0, "amber": 18, "red": 36},
         "exceedance": {"limit": 200, "averaging_period": "hour", "allowed_per_year": 18}, "min_data_capture": 0.9,
         **K},
        {"id": "no2_mean", "perspective": "sustainability", "unit": "ug/m3", "source": {**AQ, "field": "no2"},
         "aggregation": {"window": "period", "statistic": "max"}, "direction": "lower_is_better", "target": 20,
         "thresholds": {"green": 20, "amber": 40, "red": 40}, "min_data_capture": 0.9, **K},
        {"id": "o3_info_hours", "perspective": "sustainability", "unit": "hours", "source": {**AQ, "field": "o3"},
         "aggregation": {"window": "hour", "statistic": "exceedance_count"}, "direction": "lower_is_better",
         "target": 0, "thresholds": {"green": 0, "amber": 0, "red": 1},
         "exceedance": {"limit": 180, "averaging_period": "hour", "allowed_per_year": 0}, "min_data_capture": 0.9,
         **K},
        {"id": "aq_capture", "perspective": "service_data", "unit": "fraction", "source": {**AQ, "field": "no2"},
         "aggregation": {"window": "hour", "statistic": "data_capture"}, "direction": "higher_is_better",
         "target": 1.0, "thresholds": {"green": 0.9, "amber": 0.75, "red": 0.5}, "min_data_capture": 0, **K},
    ],
}
D1, D2, D3 = ({"district_code": d, "barrio_code": f"{d}01"} for d in "123")


def golden_day() -> list[dict[str, Any]]:
    """S1 (district 1) every hour, O3 190 at 14:00; S2 (district 2) every hour but 05:00; S3 (district 3) 10 hours."""
    rows = [{"entity_id": "S1", "event_time": at(h, 30), "no2": 30.0, "o3": 190.0 if h == 14 else 100.0, **D1}
            for h in range(24)]
    rows += [{"entity_id": "S2", "event_time": at(h, 30), "no2": 20.0, "o3": 100.0, **D2} for h in range(24) if h != 5]
    rows += [{"entity_id": "S3", "event_time": at(h, 30), "no2": 40.0, "o3": 100.0, **D3} for h in range(10)]
    return rows


def kpi(kpis: pd.DataFrame, kpi_id: str, level: str, code: str) -> dict[str, Any]:
    found = kpis[(kpis["kpi_id"] == kpi_id) & (kpis["area_level"] == level) & (kpis["area_code"] == code)
                 & (kpis["period"] == "day")]
    assert len(found) == 1, (kpi_id, level, code)
    return {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in found.iloc[0].items()}


def check(kpis: pd.DataFrame, kpi_id: str, level: str, code: str, **expected: Any) -> None:
    got = kpi(kpis, kpi_id, level, code)
    for key, want in expected.items():
        ok = got[key] == pytest.approx(want, abs=1e-4) if isinstance(want, float) else got[key] == want
        assert ok, (kpi_id, level, code, key, got[key], want)


def overall(scores: pd.DataFrame, level: str, code: str, perspective: str = "overall") -> float | None:
    found = scores[(scores["area_level"] == level) & (scores["area_code"] == code) & (scores["period"] == "day")
                   & (scores["perspective"] == perspective)]
    value = found.iloc[0]["score"]
    return None if np.isnan(value) else float(value)


def check_late_restatement(lake: Path) -> None:
    """The late 05:30 row of S2 is in late_events and restated its sensor-hour and every window holding it."""
    late = read_table(lake, "gold", "late_events").to_pylist()
    assert [(r["entity_id"], r["event_time"], r["watermark"]) for r in late] == [("S2", at(5, 30), at(21, 30))]
    hourly = {(r["sensor_id"], r["field"], r["hour_start"]): r for r in read_table(lake, "gold", "hourly").to_pylist()}
    assert (hourly["S2", "no2", at(5)]["mean"], hourly["S2", "no2", at(5)]["restated_reason"]) == (250.0, "late")
    assert (hourly["S1", "no2", at(23)]["n"], hourly["S1", "no2", at(23)]["restated_reason"]) == (2, None)
    windows = {(r["field"], r["grain"], r["area_level"], r["area_code"], r["window_start"]): r
               for r in read_table(lake, "gold", "windows").to_pylist()}
    day2 = windows["no2", "day", "district", "2", at(0)]  # 23 x 20 + 250 = 710 over 24 -> 29.583333
    assert (day2["n"], day2["sum"], day2["mean"], day2["restated_reason"]) == (24, 710.0, pytest.approx(29.583333),
                                                                              "late")
    assert (windows["no2", "hour", "district", "2", at(5)]["n"], windows["no2", "15min", "barrio", "201", at(5, 30)]
            ["max"]) == (1, 250.0)
    city = windows["no2", "day", "city", CITY, at(0)]  # S1 25 readings of 30 = 750, S2 710, S3 10 x 40 = 400
    assert (city["n"], city["sum"], city["entities"], city["restated_reason"]) == (59, 1860.0, 3, "late")
    assert windows["no2", "day", "district", "1", at(0)]["restated_reason"] is None  # in order: no late row there
    assert windows["o3", "hour", "city", CITY, at(14)]["mean"] == 145.0  # (190 + 100) / 2: S3 stops at 09:30


def check_golden_scorecard(kpis: pd.DataFrame, scores: pd.DataFrame) -> None:
    """The hand-computed KPI rows and scores of the golden day once the late hour is in."""
    # district 2 after the late hour: one hour above 200 (18 allowed) -> amber; 100 * (36 - 1) / 36 = 97.2222
    check(kpis, "no2_hour_exceedances", "district", "2", value=1.0, exceedances_used=1.0, exceedances_allowed=18,
          status="amber", score=97.2222, data_capture=1.0)
    # S2's mean 710 / 24 = 29.583333 -> amber; 100 * (40 - 29.583333) / (40 - 20) = 52.0833
    check(kpis, "no2_mean", "district", "2", value=29.583333, status="amber", score=52.0833)
    check(kpis, "aq_capture", "district", "2", value=1.0, status="green", score=100.0)
    # district 1: S1's 14:00 O3 of 190 > 180 with none allowed -> red, 0; NO2 mean 30 -> amber, 50
    check(kpis, "o3_info_hours", "district", "1", value=1.0, status="red", score=0.0, data_capture=1.0)
    check(kpis, "no2_mean", "district", "1", value=30.0, status="amber", score=50.0)
    # district 3: S3 has 10 of 24 hours -> capture 0.416667 < 0.9 -> no_data; no valid station mean
    check(kpis, "no2_hour_exceedances", "district", "3", value=0.0, status="no_data", score=None,
          data_capture=0.416667)
    check(kpis, "no2_mean", "district", "3", value=None, status="no_data", score=None)
    check(kpis, "aq_capture", "district", "3", value=0.416667, status="red", score=0.0)  # below red 0.5
    # city: (24 + 24 + 10) / 72 = 0.805556 < 0.9 -> no_data though its worst station has 1 exceedance
    check(kpis, "no2_hour_exceedances", "city", CITY, value=1.0, status="no_data", data_capture=0.805556)
    check(kpis, "aq_capture", "city", CITY, value=0.805556, status="amber", score=61.1111)  # (0.805556-0.5)/0.5
    # sustainability d1 (100 + 50 + 0) / 3 = 50, d2 (97.2222 + 52.0833 + 100) / 3 = 83.1019; service 100;
    # overall over the perspectives with a score: d1 (0.5*50 + 0.3*100) / 0.8 = 68.75,
    # d2 (0.5*83.1019 + 0.3*100) / 0.8 = 89.4387; d3: only service_data, 0
    assert overall(scores, "district", "1", "sustainability") == pytest.approx(50.0)
    assert overall(scores, "district", "1") == pytest.approx(68.75)
    assert overall(scores, "district", "2") == pytest.approx(89.4387, abs=1e-3)
    assert overall(scores, "district", "3", "sustainability") is None
    assert overall(scores, "district", "3") == pytest.approx(0.0)


def test_golden_scorecard_through_gold_with_a_late_restatement(spark, settings, contracts) -> None:
    aq, catalogue = contracts["air_quality"], parse_catalogue(GOLDEN, contracts, "golden-gold")
    gold.ensure_gold_tables(spark, settings)
    raised: list[dict[str, Any]] = []
    writer = feed_writer(settings, aq, "query-1", raised, catalogue)
    writer(append_silver(settings, silver(spark, aq, golden_day())), 0)
    assert [(r["sensor_id"], r["level"], r["value"]) for r in raised] == [("S1", "information", 190.0)]
    before, _ = publish.publish_scorecard(None, settings, AS_OF, catalogue=catalogue, population=POPULATION)
    # without 05:00, S2 has 23 of 24 hours (0.958333 >= 0.9), all at NO2 20: no exceedance, mean 20 = target
    check(before, "no2_hour_exceedances", "district", "2", value=0.0, status="green", score=100.0)
    check(before, "no2_mean", "district", "2", value=20.0, status="green", score=100.0)
    check(before, "aq_capture", "district", "2", value=0.958333, score=91.6667)  # 100 * (0.958333 - 0.5) / 0.5

    second = append_silver(settings, silver(spark, aq, [
        {"entity_id": "S2", "event_time": at(5, 30), "no2": 250.0, "o3": 100.0, **D2},  # watermark 23:30 - 2 h: late
        {"entity_id": "S1", "event_time": at(23, 45), "no2": 30.0, "o3": 100.0, **D1},  # on time
    ], first_offset=100))
    writer(second, 1)
    check_late_restatement(settings.lakehouse_path)

    replayed = snapshot(settings)
    writer(second, 1)  # the same micro-batch again, as after a crash: Delta skips every write
    assert snapshot(settings) == replayed
    feed_writer(settings, aq, "query-2", raised, catalogue)(second, 1)  # reset checkpoint: recomputed, same rows
    for name in ("hourly", "windows", "quality", "alerts"):
        assert snapshot(settings)[name][1] == replayed[name][1], f"gold/{name} changed on recomputation"
    assert len(raised) == 1, "the 14:00 alert is raised once, though its hour was recomputed"

    kpis, scores = publish.publish_scorecard(None, settings, AS_OF, catalogue=catalogue, population=POPULATION)
    assert len(read_table(settings.lakehouse_path, "gold", "scorecard")) == len(kpis) == len(before)  # restated
    check_golden_scorecard(kpis, scores)


def quarantine_one_row(spark, settings, day: dt.datetime) -> None:
    """quality/quarantine with one air-quality message that arrived at 09:01 on `day`."""
    quarantine = spark.createDataFrame(
        [("air_quality", "air_quality", 0, 99, at(9, 1, day=day), "{}", ["no2_not_negative"], "r", at(9, 2, day=day),
          at(9, 3, day=day))],
        "feed string, topic string, partition int, offset long, kafka_timestamp timestamp, payload string, "
        "failed_rules array<string>, reason string, ingested_at timestamp, quarantined_at timestamp")
    quarantine.write.format("delta").save(str(table_path(settings.lakehouse_path, "quality", "quarantine")))


def test_stream_until_idle_then_publish_the_shipped_scorecard(spark, settings, contracts) -> None:
    aq, inc = contracts["air_quality"], contracts["incidents"]
    day = dt.datetime(2025, 6, 9, tzinfo=UTC)
    append_silver(settings, silver(spark, aq, [
        {"entity_id": f"S{d}", "event_time": at(h, 30, day=day), "no2": 20.0 + d, "district_code": str(d),
         "o3": 190.0 if (d, h) == (1, 14) else 90.0} for d in range(1, 9) for h in range(24)]))
    append_silver(settings, silver(spark, inc, [
        {"entity_id": f"I{n}", "event_time": at(9, n, day=day), "district_code": str(1 + n % 8)} for n in range(12)]))
    quarantine_one_row(spark, settings, day)

    raised: list[dict[str, Any]] = []
    queries = gold.start_gold(spark, settings, {f: contracts[f] for f in FEEDS}, until_idle=True,
                              on_alerts=raised.extend)
    assert [q.name for q in queries] == ["gold-air_quality", "gold-incidents", "gold-quarantine"]
    for query in queries:
        query.awaitTermination(300)
        assert query.exception() is None
    assert [(r["sensor_id"], r["level"]) for r in raised] == [("S1", "information")]
    message = json.loads(publish.alert_message(raised[0]))  # what publish_alerts sends to Kafka
    assert (message["hour_start"], message["value"], message["threshold"]) == ("2025-06-09T14:00:00Z", 190.0, 180.0)
    lake = settings.lakehouse_path
    assert len(read_table(lake, "gold", "alerts")) == 1
    hourly = read_table(lake, "gold", "hourly").to_pandas()
    assert len(hourly[hourly["field"] == "no2"]) == 8 * 24
    quality = read_table(lake, "gold", "quality").to_pandas()
    assert quality["n_quarantined"].sum() == 1 and quality["n_valid"].sum() == 8 * 24 + 12
    windows = read_table(lake, "gold", "windows").to_pandas()
    incidents = windows[(windows["feed"] == "incidents") & (windows["grain"] == "day")]
    # 12 incidents I0..I11 in district 1 + n % 8: districts 1-4 get two each, 5-8 one each
    assert dict(zip(incidents["area_code"], incidents["n"])) == {CITY: 12, "1": 2, "2": 2, "3": 2, "4": 2, "5": 1,
                                                                  "6": 1, "7": 1, "8": 1}

    kpis, scores = publish.publish_scorecard(None, settings, as_of=dt.datetime(2025, 6, 10, tzinfo=UTC))
    areas = set(map(tuple, kpis[["area_level", "area_code"]].drop_duplicates().to_numpy()))
    assert {("district", str(d)) for d in range(1, 9)} | {("city", CITY)} <= areas
    day_rows = kpis[(kpis["kpi_id"] == "o3_information_threshold_hours") & (kpis["period"] == "day")]
    values = dict(zip(day_rows["area_code"], day_rows["value"]))
    assert (values[CITY], values["1"], values["2"]) == (1.0, 1.0, 0.0)  # S1's 14:00 hour, in district 1
    capture = kpis[(kpis["kpi_id"] == "data_capture_air_quality") & (kpis["period"] == "day")]
    assert set(capture["value"]) == {1.0}  # 24 of 24 hours for every station
    assert not scores.empty and set(scores["perspective"]) >= {"overall", "sustainability"}
    script = ("import sys; from pathlib import Path; from bigbilbao.tables.read import duckdb_connection; "
              "con = duckdb_connection(Path(sys.argv[1])); "
              "print(con.execute('SELECT count(*) FROM gold_scorecard').fetchone()[0])")
    counted = subprocess.run([sys.executable, "-c", script, str(lake)], capture_output=True, text=True, check=True)
    assert int(counted.stdout.strip()) == len(kpis)


def test_alerts_reach_their_kafka_topic(settings, kafka_bootstrap) -> None:
    from kafka import KafkaConsumer

    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    row = {"alert_id": "a1", "feed": "air_quality", "field": "o3", "sensor_id": "S1", "district_code": "1",
           "barrio_code": None, "level": "alert", "threshold": 240.0, "hours": 1, "hour_start": at(12),
           "value": 250.0, "reference": "Directive 2008/50/EC, Annex XII B", "raised_at": at(12, 5)}
    assert publish.publish_alerts(settings, kafka_bootstrap, [row], topic=topic) == 1
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=20_000,
                             **kafka_clients.python_client_options(settings, kafka_bootstrap))
    try:
        first = next(consumer)  # waits up to 20 s for the alert
        more = consumer.poll(timeout_ms=1000)  # and briefly for anything else (there must be nothing)
    finally:
        consumer.close()
    received = [(m.key, json.loads(m.value)) for m in [first, *(m for ms in more.values() for m in ms)]]
    assert [(key, body["level"], body["value"], body["hour_start"]) for key, body in received] == [
        (b"a1", "alert", 250.0, "2025-06-10T12:00:00Z")]
