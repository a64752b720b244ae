"""Bronze -> silver on the real broker: every message lands in exactly one place, poison never stops it."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from bigbilbao.config.settings import Settings
from bigbilbao.contracts.loader import load_contracts
from bigbilbao.feeds import simulator
from bigbilbao.spatial import sensor_registry
from bigbilbao.stages import pipeline
from bigbilbao.tables import read
from bigbilbao.tables.ledger import feed_ledger
from tests.conftest import SHARED_DATA
from tests.e2e.test_kafka_roundtrip import produce

pytestmark = pytest.mark.integration
FIWARE = SHARED_DATA / "fiware_smart_data_models"


def ledger(settings: Settings, feed: str) -> dict[str, int]:
    """Where a feed's messages went: bronze total, silver rows, quarantined rows, counted duplicates."""
    book = feed_ledger(settings.lakehouse_path, feed)
    return {"bronze": book.bronze, "silver": book.silver, "quarantine": book.quarantined,
            "duplicates": book.duplicates}


def assert_nothing_lost(settings: Settings, produced: Counter) -> dict[str, dict[str, int]]:
    books = {}
    for feed, count in produced.items():
        book = ledger(settings, feed)
        assert book["bronze"] == count, (feed, book)
        assert book["silver"] + book["quarantine"] + book["duplicates"] == count, (feed, book)
        books[feed] = book
    return books


def run_ingest_and_silver(settings: Settings, spark) -> None:
    """Kafka -> bronze, then bronze -> silver, each until Kafka and bronze are drained."""
    pipeline.run(settings, "ingest", until_idle=True, spark=spark)
    pipeline.run(settings, "silver", until_idle=True, spark=spark)


def fiware_examples() -> list[tuple[str, bytes]]:
    """Every upstream FIWARE example payload of an entity type a contract reads, as (feed, message)."""
    by_type = {c.entity_type: c.feed for c in load_contracts().values()}
    examples = []
    for path in sorted(FIWARE.glob("dataModel.*/*/examples/example*.json")):
        entity = json.loads(path.read_text())
        entity = entity[0] if isinstance(entity, list) else entity
        if entity.get("type") in by_type:
            examples.append((by_type[entity["type"]], json.dumps(entity).encode()))
    return examples


@pytest.mark.skipif(not FIWARE.is_dir(), reason="../shared/data is not beside the checkout")
def test_every_feed_balances_and_fiware_examples_reach_silver(make_settings, spark) -> None:
    settings = make_settings(feeds=sorted(load_contracts()))
    examples = fiware_examples()
    simulated = list(simulator.generate([f.name for f in settings.feeds], count=600, seed=11, dirty_fraction=0.25))
    produce(settings, examples + simulated)
    run_ingest_and_silver(settings, spark)
    books = assert_nothing_lost(settings, Counter(feed for feed, _ in examples + simulated))
    assert len(books) == 12
    assert sum(b["duplicates"] for b in books.values()) > 0, "the simulator's duplicates should be counted"
    for feed in books:
        silver = read.read_table(settings.lakehouse_path, "silver", feed, ["entity_id", "event_time"]).to_pylist()
        keys = Counter((r["entity_id"], r["event_time"]) for r in silver)
        assert max(keys.values()) == 1, f"{feed}: a duplicate reached silver"
    quarantine = read.read_table(settings.lakehouse_path, "quality", "quarantine").to_pylist()
    assert all(r["failed_rules"] and r["reason"] and r["topic"] and r["offset"] is not None for r in quarantine)
    # Upstream's RoadAccident examples put the point at latitude 168 (and the normalized one sends
    # Booleans as casualty counts): impossible data is quarantined with its reason, every other example flows.
    upstream = {payload.decode() for _, payload in examples}
    rejected = [r for r in quarantine if r["payload"] in upstream]
    assert {(r["feed"], "coordinates_valid" in r["failed_rules"]) for r in rejected} == {("road_accidents", True)}
    assert len(rejected) == 2
    located = read.read_table(settings.lakehouse_path, "silver", "air_quality",
                              ["lon", "lat", "district_code", "district_name", "boundary_version"]).to_pylist()
    assert all(r["district_code"] and r["district_name"] and r["boundary_version"] for r in located)
    assert {r["district_code"] for r in located if r["lon"] is None} <= {"unlocated"}


def test_restart_of_silver_changes_nothing(make_settings, spark) -> None:
    settings = make_settings(feeds=["air_quality"])
    messages = list(simulator.generate(["air_quality"], count=200, seed=5, dirty_fraction=0.2))
    produce(settings, messages)
    run_ingest_and_silver(settings, spark)
    before = ledger(settings, "air_quality")
    run_ingest_and_silver(settings, spark)
    assert ledger(settings, "air_quality") == before


def poison(rng: random.Random) -> bytes:
    """One malformed message of many kinds."""
    kinds = [
        lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))),
        lambda: b'{"id": "x", "type": "AirQualityObserved", "no2": ',
        lambda: json.dumps({"id": 7, "type": "AirQualityObserved", "no2": "lots"}).encode(),
        lambda: b'{"id": "p", "type": "AirQualityObserved", "dateObserved": "2026-01-01T00:00:00Z", "no2": NaN}',
        lambda: json.dumps({"id": "p", "type": "AirQualityObserved", "dateObserved": "yesterday"}).encode(),
        lambda: json.dumps({"id": "p", "type": "AirQualityObserved", "dateObserved": "1900-01-01T00:00:00Z",
                            "location": {"type": "Point", "coordinates": [200, 95]}}).encode(),
        lambda: json.dumps({"id": "p", "type": "Alert", "dateObserved": "2026-01-01T00:00:00Z"}).encode(),
        lambda: json.dumps([{"deep": [[[[[[1]]]]]]}]).encode(),
        lambda: ("{" * 500 + "}" * 500).encode(),
        lambda: json.dumps({"id": "p" * 100_000, "type": "AirQualityObserved"}).encode(),
        lambda: b"",
    ]
    return rng.choice(kinds)()


def test_poison_messages_are_quarantined_and_the_stream_goes_on(make_settings, spark) -> None:
    settings = make_settings(feeds=["air_quality"])
    rng = random.Random(1)
    good = list(simulator.generate(["air_quality"], count=500, seed=2))
    bad = [("air_quality", poison(rng)) for _ in range(1000)]
    mixed = good + bad
    rng.shuffle(mixed)
    produce(settings, mixed)
    run_ingest_and_silver(settings, spark)
    book = assert_nothing_lost(settings, Counter({"air_quality": 1500}))["air_quality"]
    assert book["quarantine"] >= 1000
    quarantine = read.read_table(settings.lakehouse_path, "quality", "quarantine").to_pylist()
    assert all(r["reason"] for r in quarantine)
    silver_ids = set(read.read_table(settings.lakehouse_path, "silver", "air_quality",
                                     ["entity_id"])["entity_id"].to_pylist())
    assert len(silver_ids) > 0 and not any(i.startswith("p") and len(i) > 50 for i in silver_ids)


TRAFFIC = SHARED_DATA / "bilbao_traffic_noise"
AIR = SHARED_DATA / "air_quality_euskadi"


@pytest.mark.skipif(not (TRAFFIC.is_dir() and AIR.is_dir()), reason="../shared/data is not beside the checkout")
def test_replayed_bilbao_traffic_and_euskadi_air_quality_balance(make_settings, spark) -> None:
    from bigbilbao.feeds import sources

    snapshot = TRAFFIC / "traffic_snapshots" / "bilbao_trafico_secciones_20260127T1500.geojson"
    history = TRAFFIC / "bilbao_trafico_historico_20260129_20260130.csv"
    events = [*sources.replay_events("traffic_flow", snapshot),
              *sources.replay_events("traffic_flow", history, sections=snapshot),
              *sources.replay_events("air_quality", AIR / "daily_2025" / "MAZARREDO_2025_daily.csv",
                                     stations=AIR / "estaciones_calidad_aire_euskadi_2017.csv")]
    messages = [(e.feed, json.dumps(e.event).encode()) for e in events]
    settings = make_settings(feeds=["traffic_flow", "air_quality"])
    produce(settings, messages)
    run_ingest_and_silver(settings, spark)
    books = assert_nothing_lost(settings, Counter(feed for feed, _ in messages))
    assert_traffic_rules_fired_and_sections_placed(settings, books["traffic_flow"])
    air = books["air_quality"]
    assert air["bronze"] == 365 and air["silver"] == 365 - air["quarantine"] and air["silver"] > 300
    silver = read.read_table(settings.lakehouse_path, "silver", "air_quality", ["event_time", "no2"]).to_pylist()
    assert all(r["event_time"].tzinfo is not None for r in silver)


def assert_traffic_rules_fired_and_sections_placed(settings: Settings, book: dict[str, int]) -> None:
    """Stale, negative and silent detectors are judged by declared rules; sections are placed once each."""
    assert book["duplicates"] > 0, "the polled history repeats readings"
    metrics = read.read_table(settings.lakehouse_path, "quality", "dq_metrics").to_pylist()
    fired = Counter()
    for row in metrics:
        if row["feed"] == "traffic_flow":
            fired[row["rule"]] += row["violations"]
    assert fired["intensity_not_negative"] >= 1 and fired["detector_silent"] > 0 and fired["stale"] > 0
    warned = read.read_table(settings.lakehouse_path, "silver", "traffic_flow", ["dq_warnings"])["dq_warnings"]
    assert any("detector_silent" in (w or []) for w in warned.to_pylist())
    placed = read.read_table(settings.lakehouse_path, "silver", "traffic_flow",
                             ["entity_id", "lon", "district_code", "boundary_version"]).to_pylist()
    registry = sensor_registry.load_sensors(settings.lakehouse_path, "traffic_flow").to_pylist()
    assert {r["rule"] for r in registry} == {"largest_overlap"}, "sections are placed by the contract's shape_rule"
    by_sensor = {r["sensor_id"]: r["district_code"] for r in registry}
    assert all(r["lon"] is None and r["district_code"] == by_sensor[r["entity_id"]] for r in placed)
    assert len({r["district_code"] for r in placed} - {"outside"}) >= 6, "Bilbao's sections cover most districts"
