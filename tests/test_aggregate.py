"""Silver -> gold -> scorecard without Kafka: hand-computed aggregates, late rows, replays, EU alerts, publication.

Silver rows are built directly in the silver table contract (`bigbilbao.silver`) in a temporary lakehouse;
every expected number is worked out by hand in the comment next to it.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from bigbilbao import aggregate, gold, publish
from bigbilbao.contracts import Contract, load_contracts
from bigbilbao.gold_tables import TABLES, gold_path
from bigbilbao.kpis import load_catalogue
from bigbilbao.read import read_table, table_path
from bigbilbao.settings import FeedSettings, Settings, with_overrides

pytestmark = pytest.mark.integration
UTC = timezone.utc
DAY = datetime(2025, 6, 10, tzinfo=UTC)
SPARK_TYPES = {"string": T.StringType(), "double": T.DoubleType(), "bigint": T.LongType(),
               "boolean": T.BooleanType(), "timestamp": T.TimestampType()}
FEEDS = ("air_quality", "emergency_dispatches", "incidents")


@pytest.fixture(scope="module")
def contracts() -> dict[str, Contract]:
    return load_contracts()


@pytest.fixture
def settings(base_settings: Settings, tmp_path: Path) -> Settings:
    configured = with_overrides(base_settings, lakehouse={"path": str(tmp_path / "lakehouse")})
    return dataclasses.replace(configured, feeds=tuple(FeedSettings(name) for name in FEEDS))


def at(hour: int, minute: int = 0, second: int = 0, day: datetime = DAY) -> datetime:
    return day + timedelta(hours=hour, minutes=minute, seconds=second)


def silver_schema(contract: Contract) -> T.StructType:
    """The silver table contract of one feed."""
    stamp, text = T.TimestampType(), T.StringType()
    head = [("feed", text), ("entity_id", text), ("entity_type", text), ("event_time", stamp), ("lon", T.DoubleType()),
            ("lat", T.DoubleType()), ("location_geojson", text)]
    fields = [(name, SPARK_TYPES[kind]) for name, kind in contract.spark_type_names().items()]
    tail = [("dq_warnings", T.ArrayType(text)), ("topic", text), ("partition", T.IntegerType()),
            ("offset", T.LongType()),
            ("kafka_timestamp", stamp), ("ingested_at", stamp), ("district_code", text), ("district_name", text),
            ("barrio_code", text), ("barrio_name", text), ("boundary_version", text)]
    return T.StructType([T.StructField(name, kind) for name, kind in head + fields + tail])


def silver(spark: SparkSession, contract: Contract, rows: list[dict[str, Any]], first_offset: int = 0) -> DataFrame:
    """Silver rows with defaults: district 1, no warnings, arrival one minute and silver two minutes after the event."""
    schema = silver_schema(contract)
    full = []
    for index, row in enumerate(rows):
        when = row["event_time"]
        defaults = {"feed": contract.feed, "entity_type": contract.entity_type, "lon": -2.93, "lat": 43.26,
                    "dq_warnings": [], "topic": contract.feed, "partition": 0, "offset": first_offset + index,
                    "kafka_timestamp": when + timedelta(minutes=1), "ingested_at": when + timedelta(minutes=2),
                    "district_code": "1", "district_name": "Deusto", "boundary_version": "districts:test"}
        full.append({**defaults, **row})
    return spark.createDataFrame([tuple(r.get(name) for name in schema.fieldNames()) for r in full], schema)


def append_silver(settings: Settings, frame: DataFrame) -> DataFrame:
    """Append to <lakehouse>/silver/<feed> and return the rows, as the silver stream would hand them to gold."""
    feed = frame.first()["feed"]
    frame.write.format("delta").mode("append").save(str(table_path(settings.lakehouse_path, "silver", feed)))
    return frame


def rows_of(frame: DataFrame, *columns: str) -> list[tuple]:
    """Sorted rows; timestamps as aware UTC datetimes (collect() alone gives naive local times)."""
    stamps = {f.name for f in frame.schema.fields if isinstance(f.dataType, T.TimestampType)}
    picked = [F.unix_micros(c).alias(c) if c in stamps else F.col(c) for c in columns]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rows = [tuple(epoch + timedelta(microseconds=v) if c in stamps and v is not None else v
                  for c, v in zip(columns, row)) for row in frame.select(*picked).collect()]
    return sorted(rows, key=repr)


def snapshot(settings: Settings) -> dict[str, tuple[int, list[str]]]:
    """Every gold table's Delta version and rows (read with delta-rs), to prove a replay changes nothing."""
    found = {}
    for table in TABLES:
        delta = DeltaTable(str(gold_path(settings, table)))
        found[table.name] = (delta.version(), sorted(map(repr, delta.to_pyarrow_table().to_pylist())))
    return found


def feed_writer(settings: Settings, contract: Contract, query_id: str, raised: list) -> gold.FeedWriter:
    """A feed's foreachBatch sink as start_gold builds it, with a checkpoint that names the query."""
    checkpoint = settings.checkpoint_path / "gold" / contract.feed
    checkpoint.mkdir(parents=True, exist_ok=True)
    (checkpoint / "metadata").write_text(json.dumps({"id": query_id}))
    fields = aggregate.gold_fields(load_catalogue(), contract.feed)
    return gold.FeedWriter(settings, contract, checkpoint, fields, on_alerts=raised.extend)


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
    got = rows_of(aggregate.hourly(frame, aq, ("no2", "o3")), "sensor_id", "field", "hour_start", "district_code",
                  "n", "sum", "mean", "min", "max")
    assert got == sorted([
        # A 10:00 no2: 10, 20, 30 -> n 3, sum 60, mean 20; the hour's last reading (10:59:59) is in district 2
        ("A", "no2", at(10), "2", 3, 60.0, 20.0, 10.0, 30.0),
        ("A", "no2", at(11), "1", 1, 40.0, 40.0, 40.0, 40.0),
        ("A", "o3", at(10), "2", 2, 220.0, 110.0, 100.0, 120.0),  # 100 + 120
        ("B", "o3", at(10), None, 1, 50.0, 50.0, 50.0, 50.0),  # NaN no2 is no value; 'outside' -> null
    ], key=repr)
    assert aggregate.hourly(frame, aq, ("no2",)).columns == [*aggregate.HOURLY_SCHEMA.fieldNames()]


def test_events_and_quality_by_hand(spark, contracts) -> None:
    em = contracts["emergency_dispatches"]
    frame = silver(spark, em, [
        {"entity_id": "E1", "event_time": at(9), "arrivalTime": at(9, 8), "district_code": "3"},  # 480 s
        {"entity_id": "E2", "event_time": at(9, 30), "district_code": "3"},  # still on its way: no arrivalTime row
        {"entity_id": "E3", "event_time": at(9, 40), "arrivalTime": at(9, 50), "dq_warnings": ["stale"]},  # stale: out
    ])
    got = rows_of(aggregate.events(frame, em, ("arrivalTime", "id")), "field", "event_id", "district_code",
                  "event_time", "value")
    assert got == sorted([("arrivalTime", "E1", "3", at(9), 480.0), ("id", "E1", "3", at(9), None),
                          ("id", "E2", "3", at(9, 30), None)], key=repr)

    quarantine = spark.createDataFrame(
        [("emergency_dispatches", at(9, 15), at(9, 16)), ("emergency_dispatches", None, at(9, 45))],
        "feed string, kafka_timestamp timestamp, ingested_at timestamp")
    quality = {(r["district_code"], r["n_valid"], r["n_quarantined"], r["lag_sum_s"])
               for r in aggregate.quality(frame, quarantine).collect()}
    # district 3: E1 and E2, each written 120 s after its event -> lag 240; E3 (district 1) counts: it is in silver.
    # Two quarantined rows arriving 09:15 and (no Kafka time) 09:45 -> the city-only row of 09:00.
    assert quality == {("3", 2, 0, 240.0), ("1", 1, 0, 120.0), (None, 0, 2, 0.0)}
    bare = frame.drop("district_code", "district_name", "barrio_code", "barrio_name", "boundary_version")
    columns = ("district_code", "n_valid", "n_quarantined", "lag_sum_s")
    unlocated = [tuple(r) for r in aggregate.quality(bare, quarantine).select(*columns).collect()]
    assert unlocated == [(None, 3, 2, 360.0)]  # silver without spatial enrichment: every row counts for the city only


def test_alerts_for_o3_above_180_and_three_hours_of_no2_above_400(spark) -> None:
    def hour(field: str, sensor: str, h: int, mean: float) -> tuple:
        return ("air_quality", field, sensor, "1", None, at(h), 1, mean, mean, mean, mean, "v")

    hourly = spark.createDataFrame([
        hour("o3", "S1", 10, 180.0),  # at the threshold: no alert ("above")
        hour("o3", "S1", 11, 181.0),  # information
        hour("o3", "S1", 12, 250.0),  # information and alert
        hour("no2", "S2", 1, 401.0), hour("no2", "S2", 2, 402.0), hour("no2", "S2", 3, 403.0),  # 3 h: alert at 03:00
        hour("no2", "S2", 5, 410.0), hour("no2", "S2", 6, 410.0), hour("no2", "S2", 8, 410.0),  # gaps: no alert
    ], aggregate.HOURLY_SCHEMA)
    found = rows_of(aggregate.alerts(hourly), "field", "sensor_id", "level", "hour_start", "value")
    assert found == sorted([("no2", "S2", "alert", at(3), 401.0), ("o3", "S1", "information", at(11), 181.0),
                            ("o3", "S1", "information", at(12), 250.0), ("o3", "S1", "alert", at(12), 250.0)], key=repr)
    assert aggregate.alerts(hourly).columns == aggregate.ALERTS_SCHEMA.fieldNames()


def test_gold_fields_follow_the_catalogue() -> None:
    catalogue = load_catalogue()
    assert {"no2", "o3", "so2", "pm10", "pm25"} <= set(aggregate.gold_fields(catalogue, "air_quality")["hourly"])
    assert aggregate.gold_fields(catalogue, "emergency_dispatches")["events"] == ("arrivalTime",)
    assert aggregate.gold_fields(catalogue, "incidents") == {"hourly": (), "events": ("id",)}


# ----------------------------------------------------------------------------------------------- streaming gold

def test_late_row_restates_its_hour_and_a_replay_changes_nothing(spark, settings, contracts) -> None:
    aq = contracts["air_quality"]
    gold.ensure_gold_tables(spark, settings)
    raised: list[dict[str, Any]] = []
    writer = feed_writer(settings, aq, "query-1", raised)
    first = append_silver(settings, silver(spark, aq, [
        {"entity_id": "A", "event_time": at(8, 10), "o3": 60.0},
        {"entity_id": "A", "event_time": at(12, 10), "o3": 170.0},
        {"entity_id": "A", "event_time": at(12, 20), "o3": 200.0},
    ]))
    writer(first, 0)  # no watermark yet: nothing is late; 12:00 mean (170 + 200) / 2 = 185 > 180 -> information
    assert [(r["level"], r["value"], r["hour_start"]) for r in raised] == [("information", 185.0, at(12))]
    second = append_silver(settings, silver(spark, aq, [
        {"entity_id": "A", "event_time": at(8, 30), "o3": 80.0},  # watermark 12:20 - 2 h = 10:20: late
        {"entity_id": "A", "event_time": at(12, 40), "o3": 110.0},  # on time
    ], first_offset=3))
    second_started = datetime.now(UTC)
    writer(second, 1)

    late = read_table(settings.lakehouse_path, "gold", "late_events").to_pylist()
    assert [(r["entity_id"], r["event_time"], r["watermark"]) for r in late] == [("A", at(8, 30), at(10, 20))]
    hourly = {r["hour_start"]: r for r in read_table(settings.lakehouse_path, "gold", "hourly").to_pylist()
              if r["field"] == "o3"}
    assert (hourly[at(8)]["n"], hourly[at(8)]["mean"], hourly[at(8)]["restated_reason"]) == (2, 70.0, "late")
    assert hourly[at(8)]["updated_at"] >= second_started - timedelta(seconds=1)  # rewritten by the second batch
    assert (hourly[at(12)]["n"], hourly[at(12)]["mean"], hourly[at(12)]["restated_reason"]) == (3, 160.0, None)
    assert len(raised) == 1, "the 12:00 alert is raised once, though its hour was recomputed"

    before = snapshot(settings)
    writer(second, 1)  # the same micro-batch again, as after a crash: Delta skips every write
    assert snapshot(settings) == before
    feed_writer(settings, aq, "query-2", raised)(second, 1)  # a reset checkpoint: new transaction ids, recomputed
    after = snapshot(settings)
    for name in ("hourly", "events", "quality", "alerts"):
        assert after[name][1] == before[name][1], f"gold/{name} changed on recomputation"
    assert len(raised) == 1


def test_stream_until_idle_then_publish_scorecard_for_8_districts_and_the_city(spark, settings, contracts) -> None:
    aq, inc = contracts["air_quality"], contracts["incidents"]
    day = datetime(2025, 6, 9, tzinfo=UTC)
    append_silver(settings, silver(spark, aq, [
        {"entity_id": f"S{d}", "event_time": at(h, 30, day=day), "no2": 20.0 + d, "district_code": str(d),
         "o3": 190.0 if (d, h) == (1, 14) else 90.0} for d in range(1, 9) for h in range(24)]))
    append_silver(settings, silver(spark, inc, [
        {"entity_id": f"I{n}", "event_time": at(9, n, day=day), "district_code": str(1 + n % 8)} for n in range(12)]))
    quarantine = spark.createDataFrame(
        [("air_quality", "air_quality", 0, 99, at(9, 1, day=day), "{}", ["no2_not_negative"], "r", at(9, 2, day=day),
          at(9, 3, day=day))],
        "feed string, topic string, partition int, offset long, kafka_timestamp timestamp, payload string, "
        "failed_rules array<string>, reason string, ingested_at timestamp, quarantined_at timestamp")
    quarantine.write.format("delta").save(str(table_path(settings.lakehouse_path, "quality", "quarantine")))

    raised: list[dict[str, Any]] = []
    queries = gold.start_gold(spark, settings, {f: contracts[f] for f in FEEDS}, until_idle=True,
                              on_alerts=raised.extend)
    assert [q.name for q in queries] == ["gold-air_quality", "gold-incidents", "gold-quarantine"]
    for query in queries:
        query.awaitTermination(120)
        assert query.exception() is None
    assert [(r["sensor_id"], r["level"]) for r in raised] == [("S1", "information")]
    message = json.loads(publish.alert_message(raised[0]))  # what publish_alerts sends to Kafka
    assert (message["hour_start"], message["value"], message["threshold"]) == ("2025-06-09T14:00:00Z", 190.0, 180.0)
    lake = settings.lakehouse_path
    hourly = read_table(lake, "gold", "hourly").to_pandas()
    assert len(hourly[hourly["field"] == "no2"]) == 8 * 24
    quality = read_table(lake, "gold", "quality").to_pandas()
    assert quality["n_quarantined"].sum() == 1 and quality["n_valid"].sum() == 8 * 24 + 12

    kpis, scores = publish.publish_scorecard(None, settings, as_of=datetime(2025, 6, 10, tzinfo=UTC))
    areas = set(map(tuple, kpis[["area_level", "area_code"]].drop_duplicates().to_numpy()))
    assert {("district", str(d)) for d in range(1, 9)} | {("city", "48020")} <= areas
    day_rows = kpis[(kpis["kpi_id"] == "o3_information_threshold_hours") & (kpis["period"] == "day")]
    values = dict(zip(day_rows["area_code"], day_rows["value"]))
    assert (values["48020"], values["1"], values["2"]) == (1.0, 1.0, 0.0)  # S1's 14:00 hour, in district 1
    capture = kpis[(kpis["kpi_id"] == "data_capture_air_quality") & (kpis["period"] == "day")]
    assert set(capture["value"]) == {1.0}  # 24 of 24 hours for every station
    assert not scores.empty and set(scores["perspective"]) >= {"overall", "sustainability"}

    publish.publish_scorecard(None, settings, as_of=datetime(2025, 6, 10, tzinfo=UTC))  # MERGE: same keys, same rows
    assert len(read_table(lake, "gold", "scorecard")) == len(kpis)
    script = ("import sys; from pathlib import Path; from bigbilbao.read import duckdb_connection; "
              "con = duckdb_connection(Path(sys.argv[1])); "
              "print(con.execute('SELECT count(*) FROM gold_scorecard').fetchone()[0])")
    counted = subprocess.run([sys.executable, "-c", script, str(lake)], capture_output=True, text=True, check=True)
    assert int(counted.stdout.strip()) == len(kpis)
