"""The `bigbilbao` command as a user runs it: help, broker lifecycle and the demo end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bigbilbao(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bigbilbao.cli", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=ROOT)


def config(tmp_path: Path) -> str:
    path = tmp_path / "bigbilbao.yaml"
    path.write_text(f"lakehouse: {{path: '{tmp_path / 'lakehouse'}'}}\n"
                    "spark: {master: 'local[2]', shuffle_partitions: 2}\n"
                    "feeds: [{name: traffic_flow}, {name: incidents}, {name: air_quality}]\n")
    return str(path)


@pytest.mark.parametrize("command", [[], ["demo"], ["run"], ["broker"], ["setup"], ["simulate"], ["replay"]])
def test_every_command_has_help(command: list[str]) -> None:
    proc = bigbilbao(*command, "--help", timeout=60)
    assert proc.returncode == 0
    assert "usage: bigbilbao" in proc.stdout


def test_run_offers_exactly_the_pipeline_stages() -> None:
    from bigbilbao import cli
    from bigbilbao.stages import pipeline

    assert cli.pipeline_stages() == pipeline.STAGES


def test_unknown_stage_is_one_clear_sentence() -> None:
    proc = bigbilbao("run", "platinum", timeout=60)
    assert proc.returncode == 2 and "invalid choice: 'platinum'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.integration
def test_broker_start_status_stop(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    started = bigbilbao("broker", "start", "--config", cfg)
    assert started.returncode == 0, started.stderr
    try:
        status = json.loads(bigbilbao("broker", "status", "--config", cfg).stdout)
        assert status["running"] and status["bootstrap"].startswith("127.0.0.1:")
        again = bigbilbao("broker", "start", "--config", cfg)
        assert again.stdout.startswith("already running")
    finally:
        stopped = bigbilbao("broker", "stop", "--config", cfg)
    assert stopped.stdout.strip() == "stopped"
    assert json.loads(bigbilbao("broker", "status", "--config", cfg).stdout) == {"running": False}


@pytest.mark.integration
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    proc = bigbilbao("demo", "--events", "600", "--config", config(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip().endswith("balanced")]
    assert [r[0] for r in rows] == ["traffic_flow", "incidents", "air_quality"]
    assert all(r[-1] == "balanced" for r in rows), proc.stdout
    bronze, silver, quarantined, duplicates = (sum(int(r[i]) for r in rows) for i in (1, 2, 3, 4))
    assert bronze == 600 == silver + quarantined + duplicates
    assert quarantined > 0, "the demo's dirty records should be quarantined"
    districts = {r[0]: int(r[5]) for r in rows}
    assert districts["traffic_flow"] == districts["incidents"] == 8, "simulated sensors cover all eight districts"
    assert 1 <= districts["air_quality"] <= 6, "six air-quality stations"
    assert "Scorecard:" in proc.stdout
    assert "bronze batch" in proc.stderr and "silver " in proc.stderr, "progress of micro-batches should be shown"
    assert not (tmp_path / "lakehouse" / "_broker" / "broker.json").exists(), "the demo's broker was not stopped"


@pytest.mark.integration
def test_simulate_and_replay_reach_bronze(tmp_path: Path) -> None:
    from tests.conftest import SHARED_DATA

    air = SHARED_DATA / "air_quality_euskadi"
    if not air.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    cfg = config(tmp_path)
    assert bigbilbao("broker", "start", "--config", cfg).returncode == 0
    try:
        sim = bigbilbao("simulate", "--feeds", "incidents", "--count", "60", "--seed", "3", "--config", cfg)
        assert sim.returncode == 0, sim.stderr
        assert json.loads(sim.stdout)["produced"] == {"incidents": 60}
        rep = bigbilbao("replay", "air_quality", str(air / "daily_2025" / "MAZARREDO_2025_daily.csv"),
                        "--stations", str(air / "estaciones_calidad_aire_euskadi_2017.csv"), "--config", cfg)
        assert rep.returncode == 0, rep.stderr
        assert json.loads(rep.stdout)["produced"] == {"air_quality": 365}
        run = bigbilbao("run", "ingest", "--until-idle", "--config", cfg)
        assert run.returncode == 0, run.stderr[-3000:]
    finally:
        bigbilbao("broker", "stop", "--config", cfg)
    from bigbilbao.tables import read

    lake = tmp_path / "lakehouse"
    assert len(read.read_table(lake, "bronze", "incidents")) == 60
    air_rows = read.read_table(lake, "bronze", "air_quality").to_pylist()
    assert len(air_rows) == 365 and all(r["parse_ok"] for r in air_rows)
    assert all(r["lon"] is not None and 43.2 < r["lat"] < 43.3 for r in air_rows), "stations give coordinates"


def test_unknown_feed_is_one_sentence(tmp_path: Path) -> None:
    proc = bigbilbao("simulate", "--feeds", "trafic", "--count", "5", "--config", config(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert "Unknown feeds ['trafic']" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("stage", ["silver", "all"])
def test_a_missing_pseudonym_key_is_reported_before_spark_or_kafka_start(tmp_path: Path, stage: str) -> None:
    path = tmp_path / "bigbilbao.yaml"
    path.write_text(f"lakehouse: {{path: '{tmp_path / 'lakehouse'}'}}\n"
                    "feeds: [{name: traffic_flow}, {name: crowd_flow}]\n")  # crowd_flow pseudonymises device ids
    env = {k: v for k, v in os.environ.items() if k != "BIGBILBAO_PSEUDONYM_KEY"}
    proc = subprocess.run([sys.executable, "-m", "bigbilbao.cli", "run", stage, "--until-idle", "--config", str(path)],
                          capture_output=True, text=True, timeout=120, check=False, cwd=ROOT, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "BIGBILBAO_PSEUDONYM_KEY" in proc.stderr
    assert "Spark 4" not in proc.stderr and "broker started" not in proc.stderr, "checked before the JVM starts"
    assert not (tmp_path / "lakehouse" / "_broker").exists()
