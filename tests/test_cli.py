"""The `bigbilbao` command as a user runs it: help, broker lifecycle and the demo end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bigbilbao(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bigbilbao.cli", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=ROOT)


def config(tmp_path: Path) -> str:
    path = tmp_path / "bigbilbao.yaml"
    path.write_text(f"lakehouse: {{path: '{tmp_path / 'lakehouse'}'}}\n"
                    "spark: {master: 'local[2]', shuffle_partitions: 2}\n"
                    "feeds: [{name: traffic_flow}, {name: incidents}, {name: air_quality}]\n")
    return str(path)


@pytest.mark.parametrize("command", [[], ["demo"], ["run"], ["broker"], ["setup"]])
def test_every_command_has_help(command: list[str]) -> None:
    proc = bigbilbao(*command, "--help", timeout=60)
    assert proc.returncode == 0
    assert "usage: bigbilbao" in proc.stdout


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
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip().endswith("contiguous")]
    assert [r[0] for r in rows] == ["traffic_flow", "incidents", "air_quality"]
    assert sum(int(r[1]) for r in rows) == 600
    assert sum(int(r[2]) for r in rows) > 0, "the demo's dirty records should be flagged"
    assert "bronze batch" in proc.stderr, "progress of micro-batches should be shown"
    assert not (tmp_path / "lakehouse" / "_broker" / "broker.json").exists(), "the demo's broker was not stopped"
