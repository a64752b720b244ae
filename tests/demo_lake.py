"""One demo lakehouse for the analyst tests: `bigbilbao demo --events 600` once per test session.

Import the `demo_lake` fixture into a test module. The lakehouse is built under pytest's session base
folder and reused when it is complete, so every module shares one build.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEY = "test-pseudonym-key-0123456789abcdef-0123456789"


@dataclass(frozen=True)
class DemoLake:
    """A finished demo run: its settings file and lakehouse folder."""

    config: Path
    lakehouse: Path


def run_cli(*args: str, timeout: int = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m bigbilbao.cli ARGS` from the checkout, with the test pseudonym key."""
    environ = {**os.environ, "BIGBILBAO_PSEUDONYM_KEY": KEY, **(env or {})}
    return subprocess.run([sys.executable, "-m", "bigbilbao.cli", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=ROOT, env=environ)


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory: pytest.TempPathFactory) -> DemoLake:
    """The demo lakehouse (ingest, silver, gold, scorecard of three feeds, 600 events)."""
    reuse = os.environ.get("BIGBILBAO_TEST_DEMO_DIR")  # keep one build across runs while developing
    folder = Path(reuse) if reuse else tmp_path_factory.getbasetemp() / "analyst_demo"
    done = folder / "demo.done"
    config = folder / "bigbilbao.yaml"
    if not done.exists():
        folder.mkdir(parents=True, exist_ok=True)
        config.write_text(f"lakehouse: {{path: '{folder / 'lakehouse'}'}}\n"
                          "spark: {master: 'local[2]', shuffle_partitions: 2}\n"
                          "feeds: [{name: traffic_flow}, {name: incidents}, {name: air_quality}]\n")
        proc = run_cli("demo", "--events", "600", "--config", str(config), timeout=1500)
        assert proc.returncode == 0, proc.stderr[-3000:]
        done.write_text(proc.stdout)
    return DemoLake(config, folder / "lakehouse")
