"""Event sources a user starts from the command line: the simulator and the replay of real open-data files."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bigbilbao.config.settings import Settings
from bigbilbao.errors import BigBilbaoError
from bigbilbao.feeds import producer, replay, simulator
from bigbilbao.feeds.producer import PublishReport
from bigbilbao.infra import kafka_clients

log = logging.getLogger(__name__)

REPLAYABLE = ("traffic_flow", "noise", "air_quality")


def run_simulation(settings: Settings, feeds: list[str], count: int, rate: float | None, seed: int,
                   dirty_fraction: float, form: str = "keyValues") -> PublishReport:
    """Produce `count` synthetic messages over `feeds`, paced at `rate` messages/s when given."""
    unknown = sorted(set(feeds) - {f.name for f in settings.feeds})
    if unknown:
        msg = f"Feeds {unknown} are not configured; choose from {[f.name for f in settings.feeds]} or 'all'."
        raise BigBilbaoError(msg)
    with kafka_clients.bootstrap_servers(settings) as bootstrap:
        kafka_clients.ensure_topics(settings, bootstrap)
        messages = simulator.generate(feeds, count=count, seed=seed, dirty_fraction=dirty_fraction, form=form)
        return producer.publish(settings, bootstrap, messages, rate=rate)


def replay_events(feed: str, path: Path, stations: Path | None = None, station: str | None = None,
                  sections: Path | None = None, shift: timedelta = timedelta(0)) -> Iterator[replay.ReplayEvent]:
    """Pick the reader for a feed and file format: traffic GeoJSON/CSV, noise CSV, Euskadi air-quality CSV."""
    if not path.is_file():
        msg = f"{path} does not exist; give the path of an open-data file to replay."
        raise BigBilbaoError(msg)
    suffix = path.suffix.lower()
    if feed == "traffic_flow" and suffix in (".geojson", ".json"):
        return replay.traffic_snapshot(path, shift=shift)
    if feed == "traffic_flow" and suffix == ".csv":
        return replay.traffic_history(path, replay.section_geometries(sections) if sections else None, shift=shift)
    if feed == "noise" and suffix == ".csv":
        return replay.noise_readings(path, shift=shift)
    if feed == "air_quality" and suffix == ".csv":
        located = replay.air_quality_stations(stations) if stations else {}
        name = station or path.stem.split("_")[0]
        return replay.air_quality_csv(path, station=name, location=located.get(name), shift=shift)
    msg = f"Cannot replay {path.name} as feed '{feed}'; replayable: {', '.join(REPLAYABLE)} (.geojson or .csv)."
    raise BigBilbaoError(msg)


def run_replay(settings: Settings, feed: str, path: Path, speedup: float | None = None, shift_to_now: bool = False,
               **reader: Path | str | None) -> PublishReport:
    """Publish a file's events with their original timestamps (or shifted so the latest one is now)."""
    shift = timedelta(0)
    if shift_to_now:
        shift = replay.shift_to(replay_events(feed, path, **reader), datetime.now(timezone.utc))
    ordered = list(replay_events(feed, path, shift=shift, **reader))
    with kafka_clients.bootstrap_servers(settings) as bootstrap:
        kafka_clients.ensure_topics(settings, bootstrap)
        publisher = producer.Publisher(settings, bootstrap)
        try:
            replay.replay(ordered, lambda f, event: publisher.send(f, json.dumps(event).encode()), speed=speedup)
        finally:
            report = publisher.close()
    log.info("replayed %d %s events", report.total, feed)
    return report
