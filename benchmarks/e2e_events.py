"""Synthetic traffic_flow readings and paced kafka-python producers (several processes) for the e2e benchmark.

Event number `seq` is sensor `seq % sensors` observed at `base + seq // sensors` seconds: every event has its
own dedup key (entity id, event time), so silver must hold each one exactly once.
"""

from __future__ import annotations

import functools
import multiprocessing
import time
from dataclasses import dataclass

import numpy as np

BOX = (-2.985, 43.225, -2.885, 43.29)  # inside the contract's in_bilbao box, around the barrios
TEMPLATE = ('{{"id":"urn:ngsi-ld:TrafficFlowObserved:bench:{sensor:05d}","type":"TrafficFlowObserved",'
            '"dateObservedTo":"{at}","intensity":{intensity},"occupancy":0.25,"averageVehicleSpeed":42.5,'
            '"laneId":1,"refRoadSegment":"urn:ngsi-ld:RoadSegment:bench:{sensor:05d}",'
            '"location":{{"type":"Point","coordinates":[{lon:.6f},{lat:.6f}]}}}}')


@dataclass(frozen=True)
class Feed:
    """What the producers need: where to send, how many sensors, and the event-time origin (epoch seconds)."""

    bootstrap: str
    topic: str
    sensors: int
    base: int


def sensor_points(sensors: int) -> np.ndarray:
    """Fixed coordinates per sensor over Bilbao's box, the same formula as `benchmarks.e2e_feed.event_values`."""
    lon0, lat0, lon1, lat1 = BOX
    sensor = np.arange(sensors)
    return np.column_stack([lon0 + (sensor * 7919 % 10007) / 10007.0 * (lon1 - lon0),
                            lat0 + (sensor * 6271 % 10009) / 10009.0 * (lat1 - lat0)])


def payload(seq: int, feed: Feed, points: np.ndarray) -> bytes:
    """The JSON of event `seq`: a TrafficFlowObserved reading in keyValues form with a point location."""
    sensor = seq % feed.sensors
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(feed.base + seq // feed.sensors))
    lon, lat = points[sensor]
    return TEMPLATE.format(sensor=sensor, at=at, intensity=seq % 3000, lon=lon, lat=lat).encode()


def _worker(feed: Feed, start: int, count: int, stride: int, rate: float | None, sent: object) -> None:
    """Send events start, start+stride, ... (count of them) at `rate` per second (None: as fast as possible)."""
    from kafka import KafkaProducer

    client = KafkaProducer(bootstrap_servers=feed.bootstrap.split(","), acks=1, linger_ms=10,
                           batch_size=512 * 1024, retries=0,
                           max_in_flight_requests_per_connection=1, client_id="bigbilbao-bench")
    points = sensor_points(feed.sensors)
    began, done = time.monotonic(), 0
    while done < count:
        due = count if rate is None else min(count, int((time.monotonic() - began) * rate) + 1)
        if due <= done:
            time.sleep(0.002)
            continue
        for n in range(done, due):
            client.send(feed.topic, value=payload(start + n * stride, feed, points))
        with sent.get_lock():
            sent.value += due - done
        done = due
    client.flush(timeout=120)
    client.close(timeout=30)


class Producers:
    """`workers` producer processes sending events [first, first+count) at `rate` in total; poll `sent`."""

    def __init__(self, feed: Feed, first: int, count: int, rate: float | None, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.sent = context.Value("q", 0)
        self.count = count
        per = None if rate is None else rate / workers
        self.processes = [
            context.Process(target=_worker, daemon=True,
                            args=(feed, first + w, len(range(w, count, workers)), workers, per, self.sent))
            for w in range(workers)
        ]
        self.started = time.monotonic()
        for process in self.processes:
            process.start()

    def wait(self, timeout: float) -> float:
        """Wait for every process to flush; returns the seconds since start; raises if one failed."""
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.1, deadline - time.monotonic()))
        elapsed = time.monotonic() - self.started
        failed = [p.exitcode for p in self.processes if p.exitcode != 0]
        if failed:
            for process in self.processes:
                if process.is_alive():
                    process.terminate()
            message = f"a producer process failed or hung (exit codes {failed}); see its traceback above"
            raise RuntimeError(message)
        return elapsed


def produce(feed: Feed, first: int, count: int, rate: float | None = None, workers: int = 2,
            timeout: float = 900.0) -> float:
    """Send `count` events and wait for every acknowledgement; returns the seconds it took."""
    return Producers(feed, first, count, rate, workers).wait(timeout)


@functools.cache
def _consumer(bootstrap: str):
    from kafka import KafkaConsumer

    return KafkaConsumer(bootstrap_servers=bootstrap.split(","), client_id="bigbilbao-bench-offsets")


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Kafka's end offset of every partition of `topic` (the number of records it holds, as none are deleted)."""
    from kafka import TopicPartition

    consumer = _consumer(bootstrap)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
