"""Silver semantics in Spark equal the Python reference on every row: rule verdicts, event time, units, pseudonyms."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import math
import random
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from bigbilbao.columns.datetimes import with_timestamps
from bigbilbao.columns.pseudonyms import hmac_sha256_hex
from bigbilbao.contracts.loader import load_contracts
from bigbilbao.contracts.model import Contract
from bigbilbao.contracts.ngsi import parse_datetime, to_key_values, unit_codes
from bigbilbao.contracts.rules import check_event
from bigbilbao.errors import PipelineError
from bigbilbao.feeds import simulator
from bigbilbao.stages import ingest, quality
from tests import quality_cases as cases
from tests.conftest import SHARED_DATA

KAFKA_SCHEMA = T.StructType([
    T.StructField("topic", T.StringType()), T.StructField("partition", T.IntegerType()),
    T.StructField("offset", T.LongType()), T.StructField("timestamp", T.TimestampType()),
    T.StructField("value", T.BinaryType()),
])
KEY = bytes(range(7, 39))
ODD_PER_FEED = 60
RAW = [b"", b"\xff\xfe{}", b'{"id": "x", "no2": ', b"[1, 2]", b'{"type": "X", "no2": 1}', b'{"id": "a", "id": "b"}',
       b'\n{"id": "ws", "type": "X"}', b'{"id": "n", "no2": NaN}', None]


@pytest.fixture(scope="module")
def contracts() -> dict[str, Contract]:
    return load_contracts()


def _messages(contracts: dict[str, Contract]) -> dict[str, list[bytes | None]]:
    """Per feed: simulated (30 % dirty, three forms), odd values in every NGSI shape, raw junk, FIWARE examples."""
    by_feed: dict[str, list[bytes | None]] = dict(cases.simulated())
    clean = cases.simulated(seed=99, per_feed=10)
    fiware = cases.fiware_examples(SHARED_DATA / "fiware_smart_data_models")
    for feed, contract in contracts.items():
        events = [to_key_values(e) for e in (cases.strict_json(p) for p in clean[feed]) if e and "location" in e]
        by_feed[feed] += [*cases.odd_messages(contract, events, ODD_PER_FEED, 1), *RAW, *fiware]
    return by_feed


@pytest.fixture(scope="module")
def judged(spark, contracts):
    """Every message of every feed through bronze and judge; rows carry the Python oracle's inputs."""
    rng = random.Random(5)
    frames, inputs = [], {}
    for feed, payloads in _messages(contracts).items():
        contract = contracts[feed]
        rows = [(feed, 0, i, cases.arrival(contract, p, rng), p) for i, p in enumerate(payloads)]
        inputs |= {(feed, offset): (payload, when) for _, _, offset, when, payload in rows}
        bronze = ingest.bronze(spark.createDataFrame(rows, KAFKA_SCHEMA), feed, contract)
        result = quality.judge(bronze, contract).persist()
        silver = quality.to_silver(quality.split(result)[0], contract, KEY)
        frames.append((feed, result, silver))
    yield frames, inputs
    for _, result, _ in frames:
        result.unpersist()


@pytest.fixture(scope="module")
def verdicts(judged):
    """Per (feed, offset): parse status, broken rule names per action, reason and event time, in one Spark job."""
    frames, _ = judged
    columns = ["feed", "offset", "parse_ok", "dq_quarantine", "dq_warnings", "dq_fail", "dq_reason",
               F.unix_micros("event_time").alias("event_micros")]
    union = None
    for _, result, _ in frames:
        part = result.select(*columns)
        union = part if union is None else union.unionByName(part)
    return {(r["feed"], r["offset"]): r for r in union.collect()}


def test_rule_verdicts_equal_the_reference_on_every_row(verdicts, judged, contracts) -> None:
    _, inputs = judged
    mismatches = []
    for (feed, offset), row in sorted(verdicts.items()):
        payload, now = inputs[(feed, offset)]
        expected = cases.expected_verdicts(contracts[feed], payload, now, row["parse_ok"])
        got = {"quarantine": row["dq_quarantine"], "warn": row["dq_warnings"], "fail": row["dq_fail"]}
        if got != expected:
            mismatches.append((feed, offset, payload, got, expected))
    assert not mismatches, f"{len(mismatches)} of {len(verdicts)} rows differ, first: {mismatches[:3]}"
    assert len(verdicts) > 12 * 150


def test_the_rows_exercise_every_check_both_ways(verdicts, contracts) -> None:
    broken = Counter((feed, name) for (feed, _), row in verdicts.items()
                     for name in (*row["dq_quarantine"], *row["dq_warnings"], *row["dq_fail"]))
    rows = Counter(feed for feed, _ in verdicts)
    rules = [(feed, rule) for feed, contract in contracts.items() for rule in contract.rules]
    assert all(broken[(feed, rule.name)] < rows[feed] for feed, rule in rules)
    assert {rule.check for feed, rule in rules if broken[(feed, rule.name)]} == {rule.check for _, rule in rules}
    assert sum(broken[(feed, rule.name)] > 0 for feed, rule in rules) > 0.8 * len(rules)
    assert all(broken[(feed, name)] > 0 for feed in contracts for name in ("parse_error", "unknown_unit"))
    typed = [feed for feed, contract in contracts.items() if any(s.type != "string" for s in contract.fields.values())]
    assert len(typed) == 11 and all(broken[(feed, "wrong_type")] > 0 for feed in typed)  # incidents: strings only


def test_event_time_equals_parse_datetime(verdicts, judged, contracts) -> None:
    _, inputs = judged
    checked = 0
    for (feed, offset), row in verdicts.items():
        doc = cases.strict_json(inputs[(feed, offset)][0])
        expected = contracts[feed].event_time(to_key_values(doc)) if doc is not None else None
        assert row["event_micros"] == cases.micros(expected), (feed, inputs[(feed, offset)][0])
        checked += expected is not None
    assert checked > len(verdicts) / 2


def _silver_json(frames: list, contracts: dict[str, Contract]):
    """Every feed's silver rows as (feed, offset, JSON of the values), in one Spark job; times as epoch micros."""
    union = None
    for feed, _, silver in frames:
        values = [F.unix_micros(n).alias(n) if spec.type == "timestamp" else F.col(n)
                  for n, spec in contracts[feed].fields.items()]
        located = [F.unix_micros("event_time").alias("event_micros"), "lon", "lat", "location_geojson"]
        part = silver.select("feed", "offset", F.to_json(F.struct(*values, *located)).alias("json"))
        union = part if union is None else union.unionByName(part)
    return [(r["feed"], r["offset"], json.loads(r["json"])) for r in union.collect()]


def _same(got: Any, want: Any) -> bool:
    """Equal, or both NaN (Spark's to_json writes NaN as the string "NaN"), or floats equal to 12 significant digits."""
    if isinstance(want, float) and math.isnan(want) and got == "NaN":
        return True
    if isinstance(want, float) and isinstance(got, (int, float)):
        return math.isclose(got, want, rel_tol=1e-12) or (math.isnan(want) and math.isnan(got))
    return got == want


def test_silver_values_are_typed_canonical_and_pseudonymised(judged, contracts) -> None:
    frames, inputs = judged
    compared = Counter()
    for feed, offset, row in _silver_json(frames, contracts):
        contract = contracts[feed]
        doc = cases.strict_json(inputs[(feed, offset)][0])
        event, units = to_key_values(doc), unit_codes(doc)
        assert row.get("event_micros") == cases.micros(contract.event_time(event))
        for name, spec in contract.fields.items():
            comparable, want = cases.expected_value(spec, event.get(name), units.get(name), contract.naive_timezone)
            if spec.pseudonymise and isinstance(want, str):
                want = hmac.new(KEY, want.encode(), hashlib.sha256).hexdigest()
            if comparable:
                assert _same(row.get(name), want), (feed, name, event.get(name), units.get(name), row.get(name), want)
                compared["pseudonym" if spec.pseudonymise else spec.type] += want is not None
        geometry, point = cases.expected_location(event.get(contract.location_field))
        located = json.loads(row["location_geojson"]) if "location_geojson" in row else None
        assert located == geometry and (row.get("lon"), row.get("lat")) == point, (feed, event.get("location"))
        compared["location"] += point != (None, None)
    assert min(compared.values()) > 10, compared
    assert set(compared) == {"double", "long", "string", "boolean", "timestamp", "location", "pseudonym"}


def test_units_convert_as_declared_and_rules_judge_canonical_values(spark, contracts) -> None:
    contract = contracts["air_quality"]
    base = {"id": "st", "type": "AirQualityObserved", "dateObserved": "2026-03-28T21:00:00Z",
            "location": {"type": "Point", "coordinates": [-2.93, 43.26]}}
    v2 = {**base, "no2": {"type": "Number", "value": 0.04, "metadata": {"unitCode": {"value": "GP"}}},
          "co": {"type": "Number", "value": 500, "metadata": {"unitCode": {"value": "µg/m³"}}},
          "temperature": {"type": "Number", "value": 290.15, "metadata": {"unitCode": {"value": "K"}}},
          "relativeHumidity": {"type": "Number", "value": 55, "metadata": {"unitCode": "P1"}}}
    ld = {**base, "no2": {"type": "Property", "value": 41, "unitCode": "GQ"},
          "pm10": {"type": "Property", "value": 0.02, "unitCode": "mg/m3"}}
    unknown = {**base, "no2": {"type": "Number", "value": 41, "metadata": {"unitCode": {"value": "ppb"}}}}
    payloads = [json.dumps(p).encode() for p in (v2, ld, unknown, {**base, "no2": 41})]
    now = datetime(2026, 3, 28, 21, 5, tzinfo=timezone.utc)
    records = spark.createDataFrame([("aq", 0, i, now, p) for i, p in enumerate(payloads)], KAFKA_SCHEMA)
    result = quality.judge(ingest.bronze(records, "air_quality", contract), contract)
    rows = {r["offset"]: r for r in result.select("offset", "dq_quarantine", "dq_warnings", "canonical.*").collect()}
    assert rows[0]["no2"] == pytest.approx(40.0) and rows[0]["co"] == pytest.approx(0.5)
    assert rows[0]["temperature"] == pytest.approx(17.0) and rows[0]["relativeHumidity"] == pytest.approx(0.55)
    # Range limits are written in canonical units: 55 % is 0.55, 290.15 K is 17 degC, 500 ug/m3 is 0.5 mg/m3.
    assert rows[0]["dq_quarantine"] == [] and rows[0]["dq_warnings"] == []
    hot = {**base, "temperature": {"type": "Number", "value": 330.15, "metadata": {"unitCode": "K"}},
           "relativeHumidity": {"type": "Number", "value": 0.9, "metadata": {"unitCode": "P1"}}}
    verdict = quality.judge(ingest.bronze(spark.createDataFrame(
        [("aq", 0, 9, now, json.dumps(hot).encode())], KAFKA_SCHEMA), "air_quality", contract), contract).first()
    assert verdict["dq_quarantine"] == ["temperature_plausible"], "57 degC is implausible, 0.9 % is a fraction"
    reference = check_event(contract, to_key_values(hot), now, unit_codes(hot))
    assert [v.rule for v in reference if v.action == "quarantine"] == ["temperature_plausible"]
    assert rows[1]["no2"] == pytest.approx(41.0) and rows[1]["pm10"] == pytest.approx(20.0)
    assert rows[2]["dq_quarantine"] == ["unknown_unit"] and rows[2]["no2"] is None
    assert rows[3]["no2"] == 41.0 and [rows[i]["dq_quarantine"] for i in (1, 3)] == [[], []]


def test_split_quarantine_rows_and_rule_counts(judged, verdicts, contracts) -> None:
    frames, _ = judged
    feed, result, silver = next(f for f in frames if f[0] == "traffic_flow")
    valid, quarantined = quality.split(result)
    assert quarantined.columns == quality.QUARANTINE_COLUMNS
    rows = quarantined.collect()
    mine = {k: v for k, v in verdicts.items() if k[0] == feed}
    bad = {k for k, v in mine.items() if v["dq_quarantine"] or v["dq_fail"]}
    assert {(feed, r["offset"]) for r in rows} == bad and valid.count() + len(rows) == len(mine)
    for r in rows:
        want = sorted(mine[(feed, r["offset"])]["dq_quarantine"] + mine[(feed, r["offset"])]["dq_fail"])
        assert r["failed_rules"] == want and all(f"{name} (" in r["reason"] for name in want)
        assert r["quarantined_at"] is not None and r["topic"] == feed
    counts = {r["rule"]: r for r in quality.rule_counts(result, contracts[feed]).collect()}
    broken = Counter(n for v in mine.values() for n in (*v["dq_quarantine"], *v["dq_warnings"], *v["dq_fail"]))
    assert {name: r["violations"] for name, r in counts.items() if r["violations"]} == dict(broken)
    assert {r["rows_in_batch"] for r in counts.values()} == {len(mine)}
    assert set(counts) == {"parse_error", "unknown_unit", "wrong_type", *(rule.name for rule in contracts[feed].rules)}
    summary = quality.summarise(result, contracts[feed])
    assert {name: n for name, _, n in summary.violations} == {name: r["violations"] for name, r in counts.items()}
    assert {name: a for name, a, _ in summary.violations} == {name: r["action"] for name, r in counts.items()}
    span = valid.agg(F.min("event_time"), F.max("event_time")).first()
    assert (summary.rows, summary.quarantined, summary.valid, summary.event_times) == (
        len(mine), len(rows), len(mine) - len(rows), (span[0], span[1]))
    assert silver.columns == ["feed", "entity_id", "entity_type", "event_time", "lon", "lat", "location_geojson",
                              *contracts[feed].field_names, "dq_warnings", "topic", "partition", "offset",
                              "kafka_timestamp", "ingested_at"]


def test_fail_rules_stop_the_stream_and_never_reach_silver(spark, contracts) -> None:
    base = contracts["traffic_flow"]
    rules = tuple(dataclasses.replace(r, action="fail") if r.check == "entity_type" else r for r in base.rules)
    contract = dataclasses.replace(base, rules=rules)
    good = {"id": "tf", "type": "TrafficFlowObserved", "dateObserved": "2026-03-28T21:00:00Z", "intensity": 300,
            "location": {"type": "Point", "coordinates": [-2.93, 43.26]}}
    payloads = [json.dumps(good).encode(), json.dumps({**good, "type": "Vehicle"}).encode()]
    now = datetime(2026, 3, 28, 21, 5, tzinfo=timezone.utc)
    records = spark.createDataFrame([("tf", 0, i, now, p) for i, p in enumerate(payloads)], KAFKA_SCHEMA)
    result = quality.judge(ingest.bronze(records, "traffic_flow", contract), contract)
    valid, quarantined = quality.split(result)
    assert [r["offset"] for r in valid.collect()] == [0]
    assert [(r["offset"], r["failed_rules"]) for r in quarantined.collect()] == [(1, ["wrong_entity_type"])]
    assert (quality.summarise(result, contract).failed, quality.summarise(valid, contract).failed) == (1, 0)
    with pytest.raises(PipelineError, match="broke a fail rule.*offset 1"):
        quality.raise_on_fail(result)
    quality.raise_on_fail(valid)


def test_time_parsing_matches_parse_datetime_on_many_formats(spark) -> None:
    rng = random.Random(2)
    pieces = ["2026-03-29T02:30:00", "2026-10-25T02:30:00", "2026-01-27", "2026-01-27T15:00", "2026-01-27 15:00:00,5",
              "2026-01-27T15:00:00.123456789Z", "2026-01-27T15:00:00+01:00", "2026-01-27T15:00:00-0530", "garbage",
              "2026-01-27T15:00:00z", "2026-13-01", "0000-01-01", "2026-01-27T15:00:60", "2026-01-27T15:00:00+24:00",
              "2026-01-27T15:00:00 +23:59", "a/2026-01-27T15:00:00Z", "2026-01-27T15:00:00Z/", "\u3000٢٠٢٦-01-27\n"]
    texts = pieces + ["".join(rng.choice("0123456789-:T Z+./,") for _ in range(rng.randint(8, 26))) for _ in range(500)]
    zones = ["", "Z", "+02:00", "-1130"]
    texts += [f"{rng.randint(1, 9999):04d}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}T{rng.randint(0, 24):02d}:"
              f"{rng.randint(0, 60):02d}:{rng.randint(0, 60):02d}{rng.choice(zones)}" for _ in range(1500)]
    frame = spark.createDataFrame([(t,) for t in texts], "text string")
    for zone in ("Europe/Madrid", "America/Sao_Paulo", "UTC"):
        parsed = with_timestamps(frame, {"moment": F.col("text")}, zone).select("text", F.unix_micros("moment"))
        got = dict(parsed.collect())
        differ = [(t, got[t], cases.micros(parse_datetime(t, zone))) for t in texts
                  if got[t] != cases.micros(parse_datetime(t, zone))]
        assert not differ, (zone, differ[:5])
    assert sum(parse_datetime(t) is not None for t in texts) > 800


def test_hmac_in_the_jvm_equals_python_hmac(spark) -> None:
    messages = ["", "a", "+34600123456", "aa:bb:cc:dd:ee:ff", "ñandú €", "\U0001f600" * 40, "x" * 1000]
    frame = spark.createDataFrame([(m,) for m in messages], "m string")
    for key in (bytes(16), bytes(range(64)), bytes(range(65)), b"k" * 200, KEY):
        got = [r[1] for r in frame.select("m", hmac_sha256_hex(F.col("m"), key)).collect()]
        assert got == [hmac.new(key, m.encode(), hashlib.sha256).hexdigest() for m in messages]
    with pytest.raises(PipelineError, match="at least 16 bytes"):
        hmac_sha256_hex(F.col("m"), b"short")


def test_fiware_examples_of_other_types_break_the_entity_type_rule(verdicts, judged, contracts) -> None:
    models = SHARED_DATA / "fiware_smart_data_models"
    if not models.is_dir():
        pytest.skip("shared/data/fiware_smart_data_models is not present beside the repository")
    _, inputs = judged
    examples = set(cases.fiware_examples(models))
    checked = Counter()
    for (feed, offset), row in verdicts.items():
        payload = inputs[(feed, offset)][0]
        if payload in examples and json.loads(payload)["type"] != contracts[feed].entity_type:
            broken = row["dq_quarantine"] + row["dq_warnings"] + row["dq_fail"]
            assert "wrong_entity_type" in broken, (feed, payload[:80])
            checked[feed] += 1
    assert set(checked) == set(simulator.FEEDS) and min(checked.values()) >= 60
