"""A job stopped with SIGTERM finishes its micro-batch and leaves a checkpoint a restart continues exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bigbilbao.errors import PipelineError
from bigbilbao.tables import read
from tests.e2e.test_cluster import write_config
from tests.e2e.test_kafka_roundtrip import assert_exactly_once, messages, produce

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def bronze_rows(lakehouse: Path, feeds: list[str]) -> int:
    """Rows in the feeds' bronze tables so far (0 before they exist)."""
    try:
        return sum(read.read_table(lakehouse, "bronze", feed, ["offset"]).num_rows for feed in feeds)
    except PipelineError:
        return 0


@pytest.mark.timeout(1800)
def test_sigterm_stops_a_running_job_gracefully(make_settings, tmp_path: Path) -> None:
    settings = make_settings()
    feeds = [f.name for f in settings.feeds]
    produce(settings, messages(settings, 100))
    config = write_config(settings, tmp_path / "job.yaml")
    # The job as docker-compose runs it: Python driver first, the package zip shipped to executors.
    job = [sys.executable, "-m", "bigbilbao.infra.cluster", "submit", "--config", str(config),
           str(ROOT / "jobs" / "ingest.py"), "--set", "spark.master=local[1]"]
    log = tmp_path / "job.log"
    with log.open("w") as out:  # a file, not a pipe: nobody reads while the job runs
        proc = subprocess.Popen(job, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 600
        while bronze_rows(settings.lakehouse_path, feeds) < 300 and proc.poll() is None:
            assert time.monotonic() < deadline, "the job wrote nothing to bronze in time"
            time.sleep(1)
        assert proc.poll() is None, "a job without --until-idle should keep running"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    output = log.read_text(errors="replace")
    assert proc.returncode == 0, output[-3000:]
    assert "stopping after the current micro-batch" in output

    produce(settings, messages(settings, 100, start=100))
    restart = subprocess.run([*job, "--until-idle"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert restart.returncode == 0, restart.stderr[-3000:]
    assert_exactly_once(settings, 200)
