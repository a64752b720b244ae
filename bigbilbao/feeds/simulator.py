"""Synthetic Bilbao sensor events for every feed, deterministic per seed, with city rhythms and dirty records.

Sensors sit at fixed positions (the same for every seed) inside lon -2.99..-2.88, lat 43.23..43.29
(air quality uses the six real Bilbao stations); readings follow weekday rush hours, quiet nights
and calmer weekends in Europe/Madrid time (see `bigbilbao.feeds.sensors` for the per-feed models).
`count` messages are split evenly over the feeds; each feed keeps its natural cadence (buses every
30 s, air quality hourly...), so rare feeds cover a longer stretch of time. Without `start` every
feed ends at the current second (a backfill reaching "now"); with `start` every feed begins there.

Exactly round(count * dirty_fraction) messages are dirty, spread over the stream: bad JSON
(truncated, Python repr, a CSV line, empty), out-of-range values (made from the feed contract's
quarantine rules, so each one breaks a rule), exact duplicates of an earlier message, and late
events (1-6 h older than the newest clean reading of their feed, with a sub-second part clean
readings never have, so a late event never takes the dedup key of a real reading).
"""

from __future__ import annotations

import heapq
import json
import logging
import random
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from bigbilbao.contracts.loader import load_contracts
from bigbilbao.contracts.model import Contract, Rule
from bigbilbao.contracts.ngsi import format_datetime, parse_datetime, to_normalized_v2
from bigbilbao.errors import BigBilbaoError
from bigbilbao.feeds import sensors

log = logging.getLogger(__name__)

FEEDS = tuple(sensors.MODELS)
DIRTY_KINDS = ("bad_json", "out_of_range", "duplicate", "late")
FORMS = ("keyValues", "normalized", "mixed")
OUT_OF_RANGE_CHECKS = ("range", "bbox", "allowed", "not_before")


@dataclass(frozen=True)
class SimulatedMessage:
    """One message as it goes to Kafka, labelled with what it is, so tests can check the dirty share."""

    feed: str
    payload: bytes
    kind: str  # "clean" or one of DIRTY_KINDS


def generate(feeds: Sequence[str] | None = None, count: int = 1000, seed: int = 0, dirty_fraction: float = 0.0,
             start: datetime | None = None, **options: Any) -> Iterator[tuple[str, bytes]]:
    """Yield (feed, message bytes) pairs ready for a producer; see `simulate` for the options."""
    for message in simulate(feeds, count, seed, dirty_fraction, start, **options):
        yield message.feed, message.payload


def simulate(feeds: Sequence[str] | None = None, count: int = 1000, seed: int = 0, dirty_fraction: float = 0.0,
             start: datetime | None = None, *, form: str = "keyValues", dirty_kinds: Sequence[str] = DIRTY_KINDS,
             contracts: Mapping[str, Contract] | None = None,
             within: Callable[[float, float], bool] | None = None) -> Iterator[SimulatedMessage]:
    """Yield `count` labelled messages over `feeds` in event-time order; same arguments, same bytes."""
    feeds = list(feeds or FEEDS)
    _check_arguments(feeds, count, dirty_fraction, form, dirty_kinds)
    contracts = contracts or load_contracts()
    quotas = {feed: count // len(feeds) + (1 if i < count % len(feeds) else 0) for i, feed in enumerate(feeds)}
    end = datetime.now(timezone.utc).replace(microsecond=0)
    streams = []
    for order, feed in enumerate(feeds):
        begin = start.astimezone(timezone.utc).replace(microsecond=0) if start else None
        events = sensors.feed_events(feed, quotas[feed], random.Random(f"{seed}:{feed}"), seed,
                                     start=begin, end=None if begin else end, within=within)
        streams.append(_keyed(events, order, feed))
    dirt = _Dirt(random.Random(f"{seed}:dirty"), round(count * dirty_fraction), count, dirty_kinds, contracts)
    shape = random.Random(f"{seed}:form")
    for moment, _, _, feed, event in heapq.merge(*streams):
        yield dirt.apply(feed, moment, event, lambda e: _encode(e, form, shape))


def _keyed(events: Iterator[tuple[datetime, dict[str, Any]]], order: int, feed: str) -> Iterator[tuple[Any, ...]]:
    """Key a feed's events for heapq.merge: time, then feed order, then position (never the dict)."""
    for position, (moment, event) in enumerate(events):
        yield moment, order, position, feed, event


def _check_arguments(feeds: list[str], count: int, fraction: float, form: str, kinds: Sequence[str]) -> None:
    """Reject unknown feeds, forms and dirty kinds, and impossible counts or fractions, up front."""
    unknown = [feed for feed in feeds if feed not in sensors.MODELS]
    problems = [
        f"unknown feeds {unknown}; known: {', '.join(FEEDS)}" if unknown else "",
        f"count must be >= 0, got {count}" if count < 0 else "",
        f"dirty_fraction must be within [0, 1], got {fraction}" if not 0 <= fraction <= 1 else "",
        f"form must be one of {FORMS}, got {form!r}" if form not in FORMS else "",
        f"dirty kinds must be a non-empty subset of {DIRTY_KINDS}"
        if not kinds or set(kinds) - set(DIRTY_KINDS) else "",
    ]
    message = "; ".join(problem for problem in problems if problem)
    if message:
        raise BigBilbaoError(f"Cannot simulate: {message}.")


def _encode(event: Mapping[str, Any], form: str, rng: random.Random) -> bytes:
    """Serialise one event as compact UTF-8 JSON, in keyValues or NGSI-v2 normalized form."""
    normalized = form == "normalized" or (form == "mixed" and rng.random() < 0.5)
    body = to_normalized_v2(event) if normalized else event
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class _Dirt:
    """Chooses exactly `total` of `count` positions to spoil (selection sampling) and spoils them."""

    def __init__(self, rng: random.Random, total: int, count: int, kinds: Sequence[str],
                 contracts: Mapping[str, Contract]) -> None:
        self.rng, self.left, self.remaining, self.kinds, self.contracts = rng, total, count, list(kinds), contracts
        self.recent: dict[str, deque[bytes]] = {}
        self.newest: dict[str, datetime] = {}

    def apply(self, feed: str, moment: datetime, event: dict[str, Any],
              encode: Callable[[Mapping[str, Any]], bytes]) -> SimulatedMessage:
        """Return the clean message, or a spoilt one when this position was drawn.

        A duplicate or late event needs an earlier message of its feed; without one it becomes bad JSON.
        """
        spoil = self.remaining > 0 and self.rng.random() * self.remaining < self.left
        self.remaining -= 1
        if not spoil:
            payload = encode(event)
            self.recent.setdefault(feed, deque(maxlen=64)).append(payload)
            self.newest[feed] = moment
            return SimulatedMessage(feed, payload, "clean")
        self.left -= 1
        kind = self.rng.choice(self.kinds)
        if kind == "duplicate" and self.recent.get(feed):
            return SimulatedMessage(feed, self.rng.choice(self.recent[feed]), kind)
        if kind == "out_of_range":
            rules = [r for r in self.contracts[feed].rules if _spoilable(r, event)]
            if rules:
                return SimulatedMessage(feed, encode(_break_rule(self.rng.choice(rules), event, self.rng)), kind)
        if kind == "late" and self.recent.get(feed):
            return SimulatedMessage(feed, encode(_make_late(event, moment - self.newest[feed], self.rng)), kind)
        return SimulatedMessage(feed, _bad_json(event, encode(event), self.rng), "bad_json")


def _spoilable(rule: Rule, event: Mapping[str, Any]) -> bool:
    """A quarantine rule the simulator can break by changing one value of this event."""
    if rule.action != "quarantine" or rule.check not in OUT_OF_RANGE_CHECKS:
        return False
    return rule.check != "not_before" or parse_datetime(event.get(rule.other or "")) is not None


def _break_rule(rule: Rule, event: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    """Return a copy of the event whose rule.field breaks `rule`: below/above range, outside bbox, ..."""
    spoilt = dict(event)
    name = rule.field or ""
    if rule.check == "range":
        low = rule.min is not None and (rule.max is None or rng.random() < 0.5)
        bound = rule.min if low else rule.max
        step = max(1.0, abs(bound or 0) * rng.uniform(0.2, 1.0))
        value = (bound or 0) - step if low else (bound or 0) + step
        spoilt[name] = round(value) if isinstance(event.get(name), int) or float(bound or 0).is_integer() else value
    elif rule.check == "bbox":
        lon, lat = rng.choice([(0.0, 0.0), (43.26, -2.93), (-3.7038, 40.4168)])  # null island, swapped, Madrid
        spoilt[name] = {"type": "Point", "coordinates": [lon, lat]}
    elif rule.check == "allowed":
        spoilt[name] = rng.choice(["UNKNOWN", "n/a", "42"])
    else:
        other = parse_datetime(event[rule.other or ""])
        spoilt[name] = format_datetime(other - timedelta(seconds=rng.randint(60, 3600)))
    return spoilt


def _make_late(event: Mapping[str, Any], ahead: timedelta, rng: random.Random) -> dict[str, Any]:
    """Move the event's timestamps to 1-6 h (plus 250-750 ms) before its feed's newest clean reading."""
    delay = ahead + timedelta(seconds=rng.randint(3600, 6 * 3600), milliseconds=rng.randint(250, 750))
    late = dict(event)
    for key, value in event.items():
        moment = parse_datetime(value) if isinstance(value, str) and value.endswith("Z") else None
        if moment is not None:
            late[key] = format_datetime(moment - delay)
    return late


def _bad_json(event: Mapping[str, Any], payload: bytes, rng: random.Random) -> bytes:
    """Return bytes no JSON parser accepts, in one of the ways real producers get it wrong."""
    choice = rng.randrange(4)
    if choice == 0:
        return payload[: rng.randint(1, len(payload) - 1)]
    if choice == 1:
        return repr(dict(event)).encode("utf-8")
    if choice == 2:
        return ";".join(str(value) for value in event.values() if not isinstance(value, (dict, list))).encode("utf-8")
    return b""
