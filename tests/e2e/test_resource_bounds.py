"""A long run at a steady rate keeps the driver's memory and every table's file count bounded.

`bigbilbao run all` runs as a subprocess while a producer streams simulated events at a steady rate.
Every few seconds the test samples the driver JVM (heap and old generation in use, via `jstat`; the
resident set, via psutil) and the number of data files in each Delta table's current snapshot. Small
appends every micro-batch would grow a table's files linearly; Delta auto-compaction
(`bigbilbao.infra.spark_session`) must keep them under its threshold, and memory must plateau rather than climb.
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from deltalake import DeltaTable

from bigbilbao.feeds import simulator
from bigbilbao.infra.spark_session import AUTO_COMPACT_MIN_FILES
from bigbilbao.tables import read
from tests.e2e.test_cluster import write_config
from tests.faults import COMMITTED, PacedProducer, kill_group, start_app, wait_for_log

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

FEEDS = ("traffic_flow", "air_quality")
RATE = 10.0  # messages/s
STEADY_S = 150.0  # least sampling time once the first micro-batch is committed
MAX_S = 600.0  # most sampling time, on a slow machine
FILE_BOUND = AUTO_COMPACT_MIN_FILES + 8  # the compaction threshold plus what one micro-batch adds before it runs
SAMPLE_EVERY_S = 10.0
MiB = 1024 * 1024


def driver_jvm(app: subprocess.Popen) -> psutil.Process:
    """The Spark driver JVM the application's Python process launched (not spark-submit's short-lived launcher)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        java = [p for p in psutil.Process(app.pid).children(recursive=True)
                if p.name() == "java" and "org.apache.spark.launcher.Main" not in p.cmdline()]
        if java:
            return java[0]
        time.sleep(1)
    pytest.fail("the application started no JVM")


def heap_mib(pid: int) -> tuple[float, float]:
    """(heap in use, old generation in use) of a JVM in MiB, from `jstat -gc`."""
    out = subprocess.run([shutil.which("jstat") or "jstat", "-gc", str(pid)], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split("\n")
    gc = dict(zip(out[0].split(), map(float, out[1].split())))
    used = gc["S0U"] + gc["S1U"] + gc["EU"] + gc["OU"]
    return used / 1024, gc["OU"] / 1024


def table_files(lakehouse: Path) -> dict[str, tuple[int, int]]:
    """(data files in the current snapshot, data files ever added by writes) of every table the stages write."""
    out = {}
    for layer, name in read.list_tables(lakehouse):
        if layer in ("bronze", "silver", "quality", "gold"):
            path = read.table_path(lakehouse, layer, name)
            out[f"{layer}/{name}"] = (len(DeltaTable(str(path)).file_uris()), files_written(path))
    return out


def files_written(path: Path) -> int:
    """Data files the table's commits added with new data (compactions add files without data change)."""
    actions = (json.loads(line) for commit in sorted((path / "_delta_log").glob("*.json"))
               for line in commit.read_text().splitlines() if line.strip())
    return sum(1 for action in actions if "add" in action and action["add"].get("dataChange", True))


def sample(app: subprocess.Popen, jvm: psutil.Process, lakehouse: Path) -> list[dict]:
    """Sample memory and file counts every SAMPLE_EVERY_S for STEADY_S seconds, longer (up to MAX_S) until some
    some table has been written enough files that, uncompacted, it would pass the file bound."""
    samples: list[dict] = []
    started = time.monotonic()
    while not samples or not _enough(samples, time.monotonic() - started):
        assert app.poll() is None, "the application stopped during the run"
        heap, old = heap_mib(jvm.pid)
        samples.append({"t": round(time.monotonic() - started), "heap": heap, "old": old,
                        "rss": jvm.memory_info().rss / MiB, "files": table_files(lakehouse)})
        time.sleep(SAMPLE_EVERY_S)
    return samples


def _enough(samples: list[dict], elapsed: float) -> bool:
    """Sampled long enough: STEADY_S passed and a table was written twice FILE_BOUND files, or MAX_S passed."""
    busiest = max((written for _, written in samples[-1]["files"].values()), default=0)
    return elapsed >= MAX_S or (elapsed >= STEADY_S and busiest > 2 * FILE_BOUND)


@pytest.mark.timeout(1500)
def test_steady_run_keeps_memory_and_files_bounded(make_settings, tmp_path: Path) -> None:
    settings = make_settings(feeds=FEEDS)
    count = int(RATE * (MAX_S + 300))
    events = list(simulator.generate(list(FEEDS), count=count, seed=11, dirty_fraction=0.05,
                                    dirty_kinds=("bad_json", "out_of_range", "duplicate")))
    stream = PacedProducer(settings, events, RATE)
    stream.start()
    app = start_app(write_config(settings, tmp_path / "app.yaml"), tmp_path / "app.log")
    try:
        assert wait_for_log(tmp_path / "app.log", COMMITTED, app, 400), (tmp_path / "app.log").read_text()[-3000:]
        jvm = driver_jvm(app)
        samples = sample(app, jvm, settings.lakehouse_path)
    finally:
        kill_group(app)
        stream.stopping.set()
        stream.join(timeout=60)
    for s in samples:
        log.warning("t=%3ds heap %.0f MiB old %.0f MiB rss %.0f MiB files %s", s["t"], s["heap"], s["old"], s["rss"],
                    {k: v[0] for k, v in s["files"].items() if v[0] > 2})
    last = samples[-1]["files"]
    busy = {table: written for table, (files, written) in last.items() if written > FILE_BOUND}
    assert busy, f"too few files written to tell bounded from linear growth: {last}"
    for table in last:
        peak = max(s["files"].get(table, (0, 0))[0] for s in samples)
        assert peak <= FILE_BOUND, f"{table} grew to {peak} files"
    third = len(samples) // 3
    early = statistics.median(s["old"] for s in samples[third:2 * third])
    late = statistics.median(s["old"] for s in samples[2 * third:])
    assert late <= 1.5 * early + 64, f"old generation keeps growing: {early:.0f} -> {late:.0f} MiB"
    assert max(s["rss"] for s in samples[2 * third:]) <= 1.25 * max(s["rss"] for s in samples[:2 * third]) + 64
