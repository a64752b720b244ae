"""`bigbilbao maintain` compacts and vacuums while the streams write, retries conflicts, and loses nothing."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from bigbilbao.config.maintenance import MaintenanceSettings
from bigbilbao.config.settings import Settings, with_overrides
from bigbilbao.errors import PipelineError, SettingsError
from bigbilbao.feeds import simulator
from bigbilbao.stages import pipeline
from bigbilbao.tables import ledger, maintain, read
from tests.e2e.test_cluster import write_config
from tests.faults import PacedProducer, differing_tables, start_app, wait_for_log

ROOT = Path(__file__).resolve().parents[2]
UNDER_LOAD = MaintenanceSettings()  # the packaged defaults: 168-hour retention, safety check on


def small_table(path: Path, files: int) -> None:
    """A Delta table of `files` one-row appends, the small-file shape a stream leaves behind."""
    for i in range(files):
        write_deltalake(path, pa.table({"a": [i], "b": [f"row {i}"]}), mode="append")


def all_landed(settings: Settings, produced: int) -> bool:
    """Every produced event is in bronze and, per feed, in silver, quarantine or the duplicate count; gold exists."""
    try:
        books = [ledger.feed_ledger(settings.lakehouse_path, f.name) for f in settings.feeds]
    except PipelineError:
        return False
    landed = sum(b.bronze for b in books) == produced and all(b.balanced for b in books)
    return landed and read.is_table(read.table_path(settings.lakehouse_path, "gold", "hourly"))


def test_a_short_retention_needs_an_explicit_opt_out() -> None:
    with pytest.raises(SettingsError, match="below the 168-hour safety interval"):
        MaintenanceSettings(vacuum_retention_hours=1)
    assert MaintenanceSettings(vacuum_retention_hours=0, retention_check=False).vacuum_retention_hours == 0


def test_compaction_changes_no_data_and_vacuum_deletes_the_old_files(tmp_path: Path) -> None:
    small_table(tmp_path / "silver" / "t", 6)
    before = DeltaTable(tmp_path / "silver" / "t").to_pyarrow_table().sort_by("a")
    (result,) = maintain.maintain(tmp_path, MaintenanceSettings(vacuum_retention_hours=0, retention_check=False))
    assert (result.table, result.files_before, result.files_after) == ("silver/t", 6, 1)
    assert (result.files_compacted, result.files_written, result.files_vacuumed) == (6, 1, 6)
    table = DeltaTable(tmp_path / "silver" / "t")
    assert table.to_pyarrow_table().sort_by("a") == before
    assert len(list((tmp_path / "silver" / "t").glob("*.parquet"))) == 1
    last = json.loads((tmp_path / "silver" / "t" / "_delta_log" / f"{6:020d}.json").read_text().splitlines()[0])
    assert last["commitInfo"]["operation"] == "OPTIMIZE"


def test_a_conflicting_commit_is_retried_on_a_fresh_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "gold" / "t"
    small_table(path, 4)
    calls = []

    def compact_after_a_concurrent_delete() -> dict:
        stale = DeltaTable(path)
        if not calls:
            DeltaTable(path).delete("a = 1")  # another writer removes a file this compaction read
        calls.append(stale.version())
        return stale.optimize.compact()

    retries = [0]
    metrics = maintain._retrying(compact_after_a_concurrent_delete, "OPTIMIZE gold/t", 3, retries)
    assert retries == [1] and len(calls) == 2 and calls[1] == calls[0] + 1
    assert metrics["numFilesRemoved"] == 3
    assert sorted(DeltaTable(path).to_pyarrow_table()["a"].to_pylist()) == [0, 2, 3]


def test_the_command_explains_an_empty_lakehouse(tmp_path: Path) -> None:
    env = {"BIGBILBAO__LAKEHOUSE__PATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "bigbilbao.cli", "maintain"], capture_output=True, text=True,
                          env=env, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "No Delta table under" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.integration
@pytest.mark.timeout(2400)
def assert_operator_sees_no_lag(settings: Settings, config: Path, log: Path) -> None:
    """While `run all` runs: its Prometheus endpoint and `bigbilbao status` both say every feed has caught up."""
    port = re.search(r"Prometheus metrics at http://127\.0\.0\.1:(\d+)/metrics", log.read_text(errors="replace"))
    assert port, "run all --metrics-port 0 did not log where it serves metrics"
    caught_up = [f'bigbilbao_kafka_lag_messages{{feed="{feed.name}"}} 0.0' for feed in settings.feeds]
    deadline = time.monotonic() + 120  # the checkpoint's commit follows the tables' writes by a moment
    while True:
        page = urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/metrics", timeout=30).read().decode()
        if all(line in page for line in caught_up) or time.monotonic() > deadline:
            break
        time.sleep(6)  # a collection is cached for 5 s
    assert all(line in page for line in caught_up), page
    assert "bigbilbao_up 1.0" in page and 'bigbilbao_last_batch{query="round"}' in page
    shown = subprocess.run([sys.executable, "-m", "bigbilbao.cli", "status", "--config", str(config), "--format",
                            "json"], capture_output=True, text=True, timeout=120, cwd=config.parent)
    assert shown.returncode == 0, shown.stdout + shown.stderr[-2000:]
    data = json.loads(shown.stdout)
    assert [(f["feed"], f["lag"]) for f in data["feeds"]] == [(feed.name, 0) for feed in settings.feeds]
    assert [q["name"] for q in data["queries"]] == ["round"] and data["boundaries"]


def test_maintenance_while_the_streams_write_loses_nothing(make_settings, spark, tmp_path: Path) -> None:
    settings = make_settings()
    # no late events: which ones are late depends on where the stream is cut into micro-batches
    events = list(simulator.generate([f.name for f in settings.feeds], count=600, seed=23, dirty_fraction=0.15,
                                    dirty_kinds=("bad_json", "out_of_range", "duplicate")))
    log = tmp_path / "app.log"
    app = start_app(write_config(settings, tmp_path / "app.yaml"), log, "--metrics-port", "0")
    sender = PacedProducer(settings, events, rate=10)  # a minute of events: several micro-batches meet maintenance
    rounds: list[maintain.TableMaintenance] = []
    try:
        # every table exists once the queries run (the round runs its first batch when events arrive)
        started = re.compile(r"running \d+ streaming quer")
        assert wait_for_log(log, started, app, 900), log.read_text(errors="replace")[-3000:]
        sender.start()  # the streams run; now the events arrive while maintenance runs beside them
        deadline = time.monotonic() + 1200
        while not all_landed(settings, len(events)):
            assert app.poll() is None, \
                "maintenance must never stop a stream: " + log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the streams did not land every event in time"
            rounds += maintain.maintain(settings.lakehouse_path, UNDER_LOAD)
            time.sleep(2)
        cli = subprocess.run([sys.executable, "-m", "bigbilbao.cli", "maintain", "--config",
                              str(tmp_path / "app.yaml")],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert cli.returncode == 0 and "silver/traffic_flow" in cli.stdout, cli.stderr[-2000:]
        assert_operator_sees_no_lag(settings, tmp_path / "app.yaml", log)
        assert app.poll() is None, log.read_text(errors="replace")[-3000:]
    finally:
        sender.join(timeout=120)
        app.send_signal(signal.SIGTERM)
        app.wait(timeout=300)
    assert sender.error is None and sender.sent == len(events)
    output = log.read_text(errors="replace")  # a clean stop once every event has landed: it says where it stopped
    assert app.returncode == 0, output[-3000:]
    assert re.search(r"query round stopped: last committed micro-batch \d+; Kafka read up to offset total", output)
    assert "StackOverflowError" not in output
    assert sum(r.files_compacted for r in rounds) > 0, "maintenance compacted nothing while the streams wrote"

    pipeline.run(settings, "all", until_idle=True, spark=spark)
    clean = with_overrides(settings, lakehouse={"path": str(tmp_path / "clean")})
    pipeline.run(clean, "all", until_idle=True, spark=spark)
    assert differing_tables(settings, clean) == {}

    vacuumed = maintain.maintain(settings.lakehouse_path, MaintenanceSettings(vacuum_retention_hours=0,
                                                                               retention_check=False))
    assert sum(r.files_vacuumed for r in vacuumed) > 0
    assert differing_tables(settings, clean) == {}
    silver = read.table_path(settings.lakehouse_path, "silver", "traffic_flow")
    assert spark.read.format("delta").load(str(silver)).count() == read.read_table(
        settings.lakehouse_path, "silver", "traffic_flow").num_rows > 0
