"""The bronze transform on in-memory Kafka records: parse status, lineage and contract fields."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from pyspark.sql import types as T

from bigbilbao.stages import ingest
from bigbilbao.stages.pipeline import feed_contracts

KAFKA_SCHEMA = T.StructType([
    T.StructField("topic", T.StringType()), T.StructField("partition", T.IntegerType()),
    T.StructField("offset", T.LongType()), T.StructField("timestamp", T.TimestampType()),
    T.StructField("value", T.BinaryType()),
])
KEY_VALUES = {"id": "tf-1", "type": "TrafficFlowObserved", "intensity": 420, "occupancy": 0.25,
              "dateObserved": "2026-01-27T15:00:00", "location": {"type": "Point", "coordinates": [-2.93, 43.26]}}
NORMALIZED = {"id": "tf-2", "type": "TrafficFlowObserved",
              "intensity": {"type": "Number", "value": 180},
              "dateObserved": {"type": "DateTime", "value": "2026-01-27T15:05:00"},
              "location": {"type": "geo:json", "value": {"type": "Point", "coordinates": [-2.95, 43.25]}}}
CASES = [
    (json.dumps(KEY_VALUES).encode(), None),
    (json.dumps(NORMALIZED).encode(), None),
    (None, "empty message"),
    (b"\xff\xfe{", "invalid UTF-8"),
    (b'{"id": "x", "intensity": ', "invalid JSON"),
    (b"[1, 2, 3]", "JSON is not an object"),
    (b"\n\t [1, 2]", "JSON is not an object"),
    (b'\n\t"just a string"', "JSON is not an object"),
    (b'\n\t{"id": "tf-3", "type": "TrafficFlowObserved"}', None),
    (b'{"type": "TrafficFlowObserved", "intensity": 3}', "missing entity id"),
]


@pytest.fixture(scope="module")
def bronze_rows(spark, base_settings):
    now = datetime(2026, 1, 27, 14, 0, tzinfo=timezone.utc)
    records = spark.createDataFrame(
        [("traffic_flow", 0, i, now, value) for i, (value, _) in enumerate(CASES)], KAFKA_SCHEMA)
    contract = feed_contracts(base_settings)["traffic_flow"]
    return {r["offset"]: r for r in ingest.bronze(records, "traffic_flow", contract).collect()}


def test_each_record_is_kept_with_its_parse_status(bronze_rows) -> None:
    assert sorted(bronze_rows) == list(range(len(CASES)))
    for offset, (_, reason) in enumerate(CASES):
        assert bronze_rows[offset]["parse_error"] == reason
        assert bronze_rows[offset]["parse_ok"] is (reason is None)


def test_key_values_and_normalized_forms_parse_alike(bronze_rows) -> None:
    kv, norm = bronze_rows[0], bronze_rows[1]
    assert (kv["entity_id"], kv["intensity"], kv["occupancy"]) == ("tf-1", 420.0, 0.25)
    assert (kv["lon"], kv["lat"], kv["observed_at_raw"]) == (-2.93, 43.26, "2026-01-27T15:00:00")
    assert (norm["entity_id"], norm["intensity"], norm["lon"]) == ("tf-2", 180.0, -2.95)
    assert norm["observed_at_raw"] == "2026-01-27T15:05:00"
    assert json.loads(kv["location_geojson"]) == KEY_VALUES["location"]


def test_raw_payload_and_lineage_are_kept(bronze_rows) -> None:
    assert bronze_rows[4]["payload"] == CASES[4][0].decode()
    assert bronze_rows[3]["payload_bytes"] == bytearray(CASES[3][0])
    assert bronze_rows[0]["payload_bytes"] is None
    assert {r["topic"] for r in bronze_rows.values()} == {"traffic_flow"}
    assert {r["feed"] for r in bronze_rows.values()} == {"traffic_flow"}
