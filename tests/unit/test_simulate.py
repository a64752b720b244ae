"""Simulator: deterministic per seed, exact dirty share that independent checks confirm, city rhythms."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from bigbilbao.contracts.loader import load_contracts
from bigbilbao.contracts.model import Contract
from bigbilbao.contracts.ngsi import to_key_values
from bigbilbao.contracts.rules import check_event
from bigbilbao.errors import BigBilbaoError
from bigbilbao.feeds import sensors, simulator

START = datetime(2026, 2, 2, tzinfo=timezone.utc)  # a Monday, 01:00 in Bilbao
SPOILING_CHECKS = ("range", "bbox", "allowed", "not_before")


@pytest.fixture(scope="module")
def contracts() -> dict[str, Contract]:
    return load_contracts()


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    run = lambda seed: list(simulator.generate(None, 600, seed, 0.2, START))  # noqa: E731
    first = run(11)
    assert first == run(11)
    assert first != run(12)
    assert all(isinstance(feed, str) and isinstance(payload, bytes) for feed, payload in first)


@pytest.mark.parametrize(("count", "fraction"), [(0, 0.5), (1, 1.0), (120, 0.0), (997, 0.1), (1000, 0.333), (240, 1.0)])
def test_dirty_share_is_exact(count: int, fraction: float) -> None:
    messages = list(simulator.simulate(None, count, 3, fraction, START))
    assert len(messages) == count
    assert sum(m.kind != "clean" for m in messages) == round(count * fraction)


def _classify(messages: list[simulator.SimulatedMessage], contracts: dict[str, Contract]) -> list[str]:
    """Label each message by looking at it, without the simulator's label."""
    seen: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
    newest: dict[str, datetime] = {}  # each feed's watermark: its newest event time so far
    labels = []
    for message in messages:
        try:
            event = json.loads(message.payload)
        except ValueError:
            labels.append("bad_json")
            continue
        contract = contracts[message.feed]
        key, moment = contract.dedup_values(event), contract.event_time(event)
        broken = {v.rule for v in check_event(contract, event, moment)}
        spoilt = any(r.name in broken for r in contract.rules if r.check in SPOILING_CHECKS)
        if key in seen[message.feed]:
            labels.append("duplicate")
        elif spoilt:
            labels.append("out_of_range")
        elif moment < newest.get(message.feed, moment) - timedelta(minutes=30):
            labels.append("late")
        else:
            labels.append("clean")
        seen[message.feed].add(key)
        newest[message.feed] = max(moment, newest.get(message.feed, moment))
    return labels


def test_independent_checks_find_exactly_the_dirty_messages(contracts: dict[str, Contract]) -> None:
    messages = list(simulator.simulate(None, 3000, 5, 0.2, START))
    labels = _classify(messages, contracts)
    assert labels == [m.kind for m in messages]
    kinds = Counter(labels)
    assert sum(n for kind, n in kinds.items() if kind != "clean") == 600
    assert all(kinds[kind] > 100 for kind in simulator.DIRTY_KINDS), kinds


def test_clean_events_pass_every_rule_of_every_feed(contracts: dict[str, Contract]) -> None:
    messages = list(simulator.simulate(None, 6000, 9, 0.0, START))
    assert Counter(m.feed for m in messages) == {feed: 500 for feed in simulator.FEEDS}
    for message in messages:
        event = json.loads(message.payload)
        contract = contracts[message.feed]
        assert event["type"] == contract.entity_type
        assert all(name in contract.fields for name in event if name not in
                   {"id", "type", "location", *contract.time_fields, "dateObservedFrom", "validFrom"}), event
        assert check_event(contract, event, contract.event_time(event) + timedelta(minutes=1)) == [], event


def test_personal_fields_are_present_for_pseudonymisation(contracts: dict[str, Contract]) -> None:
    for feed in ("crowd_flow", "emergency_dispatches"):
        (field,) = contracts[feed].pseudonymised_fields()
        events = [json.loads(p) for _, p in simulator.generate([feed], 50, 1, 0.0, START)]
        assert len({e[field] for e in events}) == 50


def test_normalized_form_flattens_back_to_the_same_events() -> None:
    plain = [m.payload for m in simulator.simulate(None, 240, 4, 0.0, START)]
    normalized = [m.payload for m in simulator.simulate(None, 240, 4, 0.0, START, form="normalized")]
    assert plain != normalized
    assert [to_key_values(json.loads(p)) for p in normalized] == [json.loads(p) for p in plain]


def test_sensors_keep_their_places_across_seeds() -> None:
    def places(seed: int) -> dict[str, Any]:
        events = [json.loads(p) for _, p in simulator.generate(["noise", "air_quality"], 200, seed, 0.0, START)]
        return {e["id"]: e["location"]["coordinates"] for e in events}
    assert places(1) == places(2)
    lon_min, lat_min, lon_max, lat_max = sensors.BBOX
    assert all(lon_min <= lon <= lon_max and lat_min <= lat <= lat_max for lon, lat in places(1).values())


def _mean_by_hour(feed: str, field: str, start: datetime, days: int) -> dict[tuple[bool, int], float]:
    """Mean of a field per (weekend, local hour) over `days` days of one feed."""
    per_day = round(86400 / (sensors.MODELS[feed].period / sensors.MODELS[feed].sensors))
    contract = load_contracts()[feed]
    groups: dict[tuple[bool, int], list[float]] = defaultdict(list)
    for _, payload in simulator.generate([feed], per_day * days, 2, 0.0, start):
        event = json.loads(payload)
        local = contract.event_time(event).astimezone(sensors.MADRID)
        groups[(local.weekday() >= 5, local.hour)].append(event[field])
    return {key: sum(values) / len(values) for key, values in groups.items()}


def test_traffic_has_rush_hours_quiet_nights_and_calmer_weekends() -> None:
    means = _mean_by_hour("traffic_flow", "intensity", datetime(2026, 2, 6, tzinfo=timezone.utc), 2)  # Fri + Sat
    assert means[(False, 8)] > 4 * means[(False, 3)]
    assert means[(False, 18)] > 4 * means[(False, 3)]
    assert means[(False, 8)] > means[(False, 11)] * 1.2
    assert means[(True, 8)] < 0.7 * means[(False, 8)]


def test_without_start_every_feed_ends_now(contracts: dict[str, Contract]) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    messages = list(simulator.generate(None, 1200, 0, 0.0))
    after = datetime.now(timezone.utc)
    last: dict[str, datetime] = {}
    for feed, payload in messages:
        last[feed] = max(last.get(feed, START), contracts[feed].event_time(json.loads(payload)))
    for feed, moment in last.items():
        model = sensors.MODELS[feed]
        slack = timedelta(seconds=model.period / max(model.sensors, 1) * 30 + 60)
        assert before - slack <= moment <= after + timedelta(seconds=1), feed


def test_within_restricts_where_sensors_stand() -> None:
    east = lambda lon, lat: lon > -2.92  # noqa: E731
    events = [json.loads(p) for _, p in simulator.generate(["parking", "incidents"], 100, 1, 0.0, START, within=east)]
    assert all(e["location"]["coordinates"][0] > -2.92 for e in events)


@pytest.mark.parametrize("arguments", [
    {"feeds": ["teleporters"]}, {"count": -1}, {"dirty_fraction": 1.5}, {"form": "xml"}, {"dirty_kinds": ["typo"]},
])
def test_bad_arguments_are_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(BigBilbaoError, match="^Cannot simulate"):
        list(simulator.simulate(**arguments))
