"""Poison input: >= 10,000 hypothesis-made malformed messages among valid ones never stop the stream.

Every malformed message (invalid UTF-8 or JSON, wrong types, missing fields, NaN/Infinity, huge strings and
arrays, deep nesting, impossible coordinates, unreadable or future timestamps) must sit in quarantine with its
rules and a reason, found by its Kafka topic/partition/offset; every valid message must be a silver row.
Readings dated far in the past are valid by the contracts (replays of old open data): kept and flagged `late`.
The corpus is drawn by hypothesis with derandomize=True, so every run sends the same bytes.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bigbilbao.config.settings import Settings
from bigbilbao.feeds import simulator
from bigbilbao.infra import kafka_clients
from bigbilbao.stages import pipeline
from bigbilbao.tables import read
from bigbilbao.tables.ledger import feed_ledger

pytestmark = pytest.mark.integration
FEEDS = ("air_quality", "crowd_flow")
BAD_EXAMPLES = 10_400  # hypothesis examples, one malformed message each
CHECKED_NUMBERS = {"air_quality": ["no2", "pm10", "o3", "co", "relativeHumidity", "temperature"],
                   "crowd_flow": ["peopleCount", "occupancy", "averageCrowdSpeed"]}
TIME_FIELD = {"air_quality": "dateObserved", "crowd_flow": "dateObservedTo"}  # the first of the time_fields
TYPES = {"air_quality": "AirQualityObserved", "crowd_flow": "CrowdFlowObserved"}


def templates() -> dict[str, list[dict[str, Any]]]:
    """Valid simulated events of each feed, the material the mutations start from."""
    out: dict[str, list[dict[str, Any]]] = {feed: [] for feed in FEEDS}
    for feed, payload in simulator.generate(list(FEEDS), count=60, seed=3):
        out[feed].append(json.loads(payload))
    return out


def _dumps(event: Any) -> bytes:
    """Python's json.dumps, which writes NaN and Infinity as bare tokens, as many producers do."""
    return json.dumps(event, allow_nan=True).encode("utf-8")


junk_values = st.one_of(st.text(max_size=20).filter(lambda s: s.strip() and not _numeric(s)), st.booleans(),
                        st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                                             min_size=1, max_size=2))
far_future = st.integers(2100, 9999).map(lambda y: f"{y}-06-01T00:00:00Z")
unreadable_times = st.one_of(
    st.sampled_from(["0000-01-01T00:00:00Z", "-0044-03-15T12:00:00Z", "10000-01-01T00:00:00Z", "yesterday",
                     "2026-02-30T10:00:00Z", "2026-13-01T00:00:00Z", "", "T", "1e20"]),
    st.integers(-(2**63), 2**63 - 1), st.booleans(), st.lists(st.integers(), min_size=1, max_size=2),
    st.text(alphabet="0123456789-:TZ", min_size=1, max_size=12).filter(lambda s: not _readable_time(s)))


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _readable_time(text: str) -> bool:
    from bigbilbao.contracts.ngsi import parse_datetime

    return not text.strip() or parse_datetime(text, "Europe/Madrid") is not None


@st.composite
def malformed(draw: st.DrawFn, base: dict[str, list[dict[str, Any]]]) -> tuple[str, str, bytes]:
    """(feed, category, payload) of one message that must be quarantined."""
    feed = draw(st.sampled_from(FEEDS))
    event = dict(draw(st.sampled_from(base[feed])))
    category = draw(st.sampled_from(CATEGORIES))
    return feed, category, MUTATIONS[category](draw, feed, event)


def _invalid_utf8(draw: st.DrawFn, _feed: str, event: dict[str, Any]) -> bytes:
    raw = bytearray(_dumps(event))
    at = draw(st.integers(0, len(raw)))
    bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]))
    return bytes(raw[:at] + bad + raw[at:])


def _invalid_json(draw: st.DrawFn, _feed: str, event: dict[str, Any]) -> bytes:
    text = _dumps(event).decode()
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return text[: draw(st.integers(0, len(text) - 1))].encode()
    if kind == 1:
        return repr(event).encode()
    if kind == 2:
        return draw(st.binary(max_size=60).filter(lambda b: not _json_object(b)))
    return (text[:-1] + draw(st.sampled_from([",", ",}", "]", "}}", ',"x":}']))).encode()


def _json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw.decode("utf-8")), dict)
    except ValueError:
        return False


def _not_an_object(draw: st.DrawFn, _feed: str, event: dict[str, Any]) -> bytes:
    value = draw(st.one_of(st.just([event]), st.integers(), st.text(max_size=10), st.just(None), st.booleans()))
    return _dumps(value)


def _wrong_type(draw: st.DrawFn, feed: str, event: dict[str, Any]) -> bytes:
    target = draw(st.sampled_from(["id", "type", "time", "location", "number"]))
    if target == "id":
        event["id"] = draw(st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(),
                                     st.lists(st.integers(), min_size=1, max_size=2)))
    elif target == "type":
        event["type"] = draw(st.one_of(st.integers(), st.booleans(), st.lists(st.text(max_size=3), min_size=1)))
    elif target == "time":
        event[TIME_FIELD[feed]] = draw(unreadable_times)
    elif target == "location":
        event["location"] = draw(st.one_of(
            st.integers(), st.text(min_size=1, max_size=10), st.lists(st.floats(), max_size=1),
            st.just({"type": "Point"}), st.just({"type": "Point", "coordinates": "x"})))
    else:
        event[draw(st.sampled_from(CHECKED_NUMBERS[feed]))] = draw(junk_values)
    return _dumps(event)


def _missing_field(draw: st.DrawFn, feed: str, event: dict[str, Any]) -> bytes:
    for name in draw(st.sampled_from([["id"], ["time"], ["id", "time"]])):
        if name == "id":
            event.pop("id")
        else:
            _drop_times(event)
    if "id" in event and draw(st.booleans()):
        event["id"] = draw(st.sampled_from(["", None]))
    return _dumps(event)


def _nan_infinity(draw: st.DrawFn, feed: str, event: dict[str, Any]) -> bytes:
    name = draw(st.sampled_from(CHECKED_NUMBERS[feed] + ["location"]))
    value = draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
    event[name] = {"type": "Point", "coordinates": [value, 43.26]} if name == "location" else value
    return _dumps(event)


def _huge(draw: st.DrawFn, feed: str, event: dict[str, Any]) -> bytes:
    size = draw(st.sampled_from([1_000, 20_000, 100_000]))
    kind = draw(st.integers(0, 3))
    if kind == 0:
        event[draw(st.sampled_from(CHECKED_NUMBERS[feed]))] = "9" * size + "x"
    elif kind == 1:
        event[draw(st.sampled_from(CHECKED_NUMBERS[feed]))] = list(range(size // 8))
    elif kind == 2:
        event[TIME_FIELD[feed]] = "2026-01-01T00:00:00Z" + " " * size + "x"
    else:
        event["id"] = "p" * size
        _drop_times(event)
    return _dumps(event)


def _deep(draw: st.DrawFn, feed: str, event: dict[str, Any]) -> bytes:
    depth = draw(st.sampled_from([10, 100, 1_000, 5_000, 20_000]))
    opener, closer = draw(st.sampled_from([('{"a":', "}"), ("[", "]")]))
    nested = opener * depth + "1" + closer * depth
    name = draw(st.sampled_from([*CHECKED_NUMBERS[feed], TIME_FIELD[feed]]))
    text = _dumps({**event, name: "__NESTED__"}).decode()
    return text.replace('"__NESTED__"', nested).encode()


def _out_of_range_coordinates(draw: st.DrawFn, _feed: str, event: dict[str, Any]) -> bytes:
    lon = draw(st.one_of(st.floats(180.0001, 1e300), st.floats(-1e300, -180.0001), st.floats(-180, 180)))
    lat = draw(st.floats(90.0001, 1e300) if -180 <= lon <= 180 else st.floats(-90, 90))
    if draw(st.booleans()):
        lat = -lat
    event["location"] = {"type": "Point", "coordinates": [lon, lat]}
    return _dumps(event)


def _drop_times(event: dict[str, Any]) -> None:
    for name in ("dateObserved", "dateObservedTo"):
        event.pop(name, None)


def _future(draw: st.DrawFn, feed: str, event: dict[str, Any]) -> bytes:
    event[TIME_FIELD[feed]] = draw(far_future)
    return _dumps(event)


MUTATIONS = {"invalid_utf8": _invalid_utf8, "invalid_json": _invalid_json, "not_an_object": _not_an_object,
             "wrong_type": _wrong_type, "missing_field": _missing_field, "nan_infinity": _nan_infinity,
             "huge": _huge, "deeply_nested": _deep, "coordinates_out_of_range": _out_of_range_coordinates,
             "far_future": _future}
CATEGORIES = sorted(MUTATIONS)


def corpus() -> tuple[list[tuple[str, str, bytes]], list[tuple[str, bytes]]]:
    """(malformed (feed, category, payload), valid (feed, payload)): the same lists on every run."""
    base = templates()
    bad: list[tuple[str, str, bytes]] = []
    old: list[tuple[str, bytes]] = []

    @settings(max_examples=BAD_EXAMPLES, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), deadline=None)
    @given(message=malformed(base),
           old_year=st.integers(1971, 1999), old_feed=st.sampled_from(FEEDS))
    def draw(message: tuple[str, str, bytes], old_year: int, old_feed: str) -> None:
        bad.append(message)
        if len(old) < 500:
            event = {**base[old_feed][len(old) % len(base[old_feed])], "id": f"old-{len(old)}",
                     TIME_FIELD[old_feed]: f"{old_year}-03-01T10:00:00Z"}
            old.append((old_feed, _dumps(event)))

    draw()
    clean = list(simulator.generate(list(FEEDS), count=1000, seed=4))
    return bad, clean + old


def produce(settings: Settings, messages: list[tuple[str, bytes]]) -> list[tuple[str, int, int]]:
    """Send the messages in order and return each one's (topic, partition, offset) as Kafka acknowledged it."""
    bootstrap = settings.kafka.bootstrap_servers[0]
    kafka_clients.ensure_topics(settings, bootstrap)
    topics = {f.name: f.topic_name for f in settings.feeds}
    producer = kafka_clients.producer(settings, bootstrap, max_request_size=4 * 1024 * 1024)
    try:
        futures = [producer.send(topics[feed], value=payload) for feed, payload in messages]
        producer.flush(timeout=300)
        metadata = [f.get(timeout=60) for f in futures]
    finally:
        producer.close()
    return [(m.topic, m.partition, m.offset) for m in metadata]


@pytest.mark.timeout(900)
def test_poison_corpus_is_quarantined_valid_messages_reach_silver(make_settings, spark) -> None:
    started = time.monotonic()
    bad, good = corpus()
    assert len(bad) >= 10_000
    categories = Counter(category for _, category, _ in bad)
    assert set(categories) == set(CATEGORIES) and min(categories.values()) >= 500, categories
    settings = make_settings(feeds=list(FEEDS))
    messages = [(feed, payload) for feed, _, payload in bad] + good
    # Interleave: the valid messages go out spread among the malformed ones, in a fixed order.
    order = sorted(range(len(messages)), key=lambda i: (i * 7919) % len(messages))
    coordinates = produce(settings, [messages[i] for i in order])
    where = {i: coordinates[rank] for rank, i in enumerate(order)}
    generated = time.monotonic()
    pipeline.run(settings, "ingest", until_idle=True, spark=spark)  # raises if a query stopped on a message
    pipeline.run(settings, "silver", until_idle=True, spark=spark)
    processed = time.monotonic()

    lake = settings.lakehouse_path
    quarantine = read.read_table(lake, "quality", "quarantine", ["topic", "partition", "offset", "failed_rules",
                                                                 "reason"]).to_pylist()
    quarantined = {(r["topic"], r["partition"], r["offset"]): r for r in quarantine}
    missing = [(bad[i][1], bad[i][2][:120]) for i in range(len(bad)) if where[i] not in quarantined]
    assert not missing, f"{len(missing)} malformed messages are not in quarantine, e.g. {missing[:5]}"
    assert all(r["reason"] and r["failed_rules"] for r in quarantine)
    in_silver = set()
    for feed in FEEDS:
        rows = read.read_table(lake, "silver", feed, ["topic", "partition", "offset", "dq_warnings"]).to_pylist()
        in_silver |= {(r["topic"], r["partition"], r["offset"]) for r in rows}
        old = [r for r in rows if "late" in (r["dq_warnings"] or [])]
        assert old, f"{feed}: readings from the past are kept and flagged late"
    lost = [good[i - len(bad)] for i in range(len(bad), len(messages)) if where[i] not in in_silver]
    assert not lost, f"{len(lost)} valid messages are not in silver, e.g. {lost[:3]}"
    for feed in FEEDS:
        book = feed_ledger(lake, feed)
        assert book.balanced and book.duplicates == 0, book
    rules = Counter(rule for r in quarantine for rule in r["failed_rules"])
    print(f"\nfuzz: {len(bad)} malformed + {len(good)} valid messages; categories {dict(sorted(categories.items()))}; "
          f"quarantine rules {dict(rules.most_common())}; corpus+produce {generated - started:.0f} s, "
          f"ingest+silver {processed - generated:.0f} s")
