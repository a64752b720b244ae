"""Fault-injection helpers: the whole application as a killable subprocess, a paced producer thread, table checks."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.compute as pc

from bigbilbao.config.settings import Settings
from bigbilbao.errors import PipelineError
from bigbilbao.feeds import producer
from bigbilbao.infra import kafka_clients
from bigbilbao.scorecard.catalogue import load_catalogue
from bigbilbao.stages import publish
from bigbilbao.tables import read
from tests.e2e.test_cluster import PROCESSING_TIME_KPIS, VOLATILE

LAYERS = ("bronze", "silver", "quality", "gold")
# Bookkeeping of how the stream was cut into micro-batches, not what it computed.
BATCHING_TABLES = {("gold", "watermarks"), ("quality", "dq_metrics")}
# Published "as of" the wall clock: two runs compare only at one shared moment (periods end at the hour).
SCORECARD_TABLES = {("gold", "scorecard"), ("gold", "scorecard_scores")}
# A stage's log line for a committed micro-batch (loggers bigbilbao.stages.ingest / silver / gold).
COMMITTED = re.compile(r"INFO bigbilbao\.stages\.(ingest|silver|gold): .*batch \d+")


def start_app(config: Path, log: Path, *extra: str, stage: str = "all") -> subprocess.Popen:
    """`bigbilbao run STAGE` in its own process group, so a SIGKILL of the group takes the Spark JVM with it."""
    argv = [sys.executable, "-m", "bigbilbao.cli", "run", stage, "--config", str(config), *extra]
    with log.open("w") as out:  # a file, not a pipe: nobody reads while the application runs
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=log.parent)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the application and every child (Python driver and Spark JVM) at once, and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def wait_for_log(log: Path, text: str | re.Pattern, proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait until `text` (or a match of the pattern) appears in the log; False if the process ended or time ran out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        output = log.read_text(errors="replace")
        if (text.search(output) is not None) if isinstance(text, re.Pattern) else (text in output):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.5)
    return False


class PacedProducer(threading.Thread):
    """Sends a fixed list of messages at a steady rate in the background; `error` keeps what stopped it."""

    def __init__(self, settings: Settings, messages: list[tuple[str, bytes]], rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.messages, self.rate = settings, messages, rate
        self.sent = 0
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        bootstrap = self.settings.kafka.bootstrap_servers[0]
        wanted = itertools.takewhile(lambda _: not self.stopping.is_set(), self.messages)
        try:
            kafka_clients.ensure_topics(self.settings, bootstrap)
            report = producer.publish(self.settings, bootstrap, wanted, rate=self.rate)
            self.sent = report.total
        except BaseException as exc:  # noqa: BLE001  (reported by the test thread)
            self.error = exc


def table_or_empty(lakehouse: Path, layer: str, name: str, columns: list[str]) -> dict[str, list]:
    """A table's columns as lists, or empty lists before the table exists."""
    try:
        return read.read_table(lakehouse, layer, name, columns).to_pydict()
    except PipelineError:
        return {c: [] for c in columns}


def bronze_keys(lakehouse: Path, feed: str) -> Counter:
    """(topic, partition, offset) of every bronze row of a feed, with multiplicity."""
    table = table_or_empty(lakehouse, "bronze", feed, ["topic", "partition", "offset"])
    return Counter(zip(table["topic"], table["partition"], table["offset"]))


def comparable_tables(lakehouse: Path) -> set[tuple[str, str]]:
    """The lakehouse's tables whose contents must not depend on how the stream was cut into micro-batches."""
    return {t for t in read.list_tables(lakehouse) if t[0] in LAYERS and t not in BATCHING_TABLES}


def _stable(value: object) -> object:
    """Floats to 10 significant digits: sums and means depend on the order Spark adds the rows in."""
    return float(f"{value:.10g}") if isinstance(value, float) else value


def rows(lakehouse: Path, layer: str, name: str) -> Counter:
    """A table's rows without processing-time columns, floats rounded, as a multiset."""
    table = read.read_table(lakehouse, layer, name)
    if (layer, name) in SCORECARD_TABLES and table.num_rows:
        table = table.filter(pc.equal(table["as_of"], pc.max(table["as_of"])))
    keep = [c for c in table.column_names if c not in VOLATILE]
    return Counter(repr(sorted((k, _stable(v)) for k, v in r.items())) for r in table.select(keep).to_pylist()
                   if r.get("kpi_id") not in PROCESSING_TIME_KPIS)


def differing_tables(left_settings: Settings, right_settings: Settings) -> dict[str, int]:
    """Tables whose rows (without processing-time columns) differ, with the size of the difference.

    Both scorecards are first published again at one shared moment (each run published its own "now",
    and two moments an hour boundary apart report different periods from the same gold) and without the
    processing-time KPIs: their values depend on when each run wrote silver, and through their scores so
    do the perspective and overall scores.
    """
    moment = datetime.now(timezone.utc)
    catalogue = load_catalogue()
    steady = tuple(kpi for kpi in catalogue.kpis if kpi.id not in PROCESSING_TIME_KPIS)
    catalogue = dataclasses.replace(catalogue, kpis=steady)
    for settings in (left_settings, right_settings):
        publish.publish_scorecard(None, settings, as_of=moment, catalogue=catalogue)
    left, right = left_settings.lakehouse_path, right_settings.lakehouse_path
    out = {}
    for layer, name in sorted(comparable_tables(left) | comparable_tables(right)):
        a, b = rows(left, layer, name), rows(right, layer, name)
        if a != b:
            out[f"{layer}/{name}"] = sum(((a - b) + (b - a)).values())
    return out


def rule_totals(lakehouse: Path, feed: str) -> Counter:
    """dq_metrics violations of a feed summed per rule over all micro-batches."""
    table = table_or_empty(lakehouse, "quality", "dq_metrics", ["feed", "rule", "violations"])
    totals: Counter = Counter()
    for f, rule, violations in zip(table["feed"], table["rule"], table["violations"]):
        if f == feed:
            totals[rule] += violations
    return +totals
