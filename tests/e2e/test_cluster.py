"""The jobs on a real Spark standalone cluster (a master and two workers on loopback) give the tables of a local run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from bigbilbao.config.settings import Settings, with_overrides
from bigbilbao.feeds import simulator
from bigbilbao.infra import cluster
from bigbilbao.stages import pipeline
from bigbilbao.tables import read
from tests.e2e.test_kafka_roundtrip import produce

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
STAGES = ("ingest", "silver", "gold", "scorecard")
FEEDS = ("traffic_flow", "air_quality")  # polygon sensors (through the registry) and point sensors
# Processing-time columns: when (and by which query) a row was written, not what it says; lag_sum_s sums
# silver write time - event time, and the data_freshness KPI is its mean.
VOLATILE = {"ingested_at", "quarantined_at", "measured_at", "updated_at", "raised_at", "detected_at", "recorded_at",
            "published_at", "as_of", "batch_id", "query_id", "lag_sum_s"}
PROCESSING_TIME_KPIS = {"data_freshness"}


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.StandaloneCluster]:
    """A master and two workers (1 core, 1 GiB each) from the installed pyspark, stopped even on failure."""
    with cluster.standalone_cluster(tmp_path_factory.mktemp("cluster"), workers=2, cores=1, memory="1g") as running:
        yield running


def write_config(settings: Settings, path: Path) -> Path:
    """The settings a job needs, as the YAML file an operator would pass with --config."""
    config = {
        "kafka": {"bootstrap_servers": list(settings.kafka.bootstrap_servers)},
        "lakehouse": {"path": str(settings.lakehouse_path)},
        "spark": {"shuffle_partitions": settings.spark.shuffle_partitions, "driver_memory": "1g"},
        "jvm": {"jars_dir": str(settings.jars_path)},
        "feeds": [{"name": f.name, "topic": f.topic_name} for f in settings.feeds],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def python_without_bigbilbao(folder: Path) -> Path:
    """The venv's Python without its editable bigbilbao install, so executors can only use the shipped package."""
    site = next(p for p in sys.path if p.endswith("site-packages"))
    wrapper = folder / "python-no-bigbilbao"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{site}" exec {sys.executable} -S "$@"\n')
    wrapper.chmod(0o755)
    check = subprocess.run([str(wrapper), "-c", "import pyspark, shapely; import bigbilbao"], capture_output=True,
                           cwd=folder)
    assert check.returncode != 0, "the executor Python must not find bigbilbao by itself"
    return wrapper


def submit_jobs(standalone: cluster.StandaloneCluster, settings: Settings, tmp_path: Path) -> None:
    """spark-submit every stage's job to the cluster with the package shipped by --py-files."""
    package = cluster.package_zip(tmp_path / "dist" / "bigbilbao.zip")
    config = write_config(settings, tmp_path / "cluster.yaml")
    env = {**os.environ, "PYSPARK_PYTHON": str(python_without_bigbilbao(tmp_path)),
           "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    conf = {"spark.executor.memory": "768m", "spark.executor.cores": "1"}
    for stage in STAGES:
        argv = cluster.submit_argv(standalone.master_url, ROOT / "jobs" / f"{stage}.py", [package],
                                   cluster.submit_jars(settings), ["--config", str(config), "--until-idle"], conf)
        done = subprocess.run(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=900)  # spark-submit merges the Python driver's stderr into stdout
        assert done.returncode == 0, f"{stage} job failed:\n{done.stdout[-4000:]}"
        assert f"master {standalone.master_url}" in done.stdout, f"{stage} did not run on the cluster"


def rows(lakehouse: Path, layer: str, name: str) -> Counter:
    """A table's rows without processing-time columns, as a multiset."""
    table = read.read_table(lakehouse, layer, name)
    keep = [c for c in table.column_names if c not in VOLATILE]
    return Counter(repr(sorted(r.items())) for r in table.select(keep).to_pylist()
                   if r.get("kpi_id") not in PROCESSING_TIME_KPIS)


def differing_columns(left: Path, right: Path, layer: str, name: str) -> list[str]:
    """Columns whose values (as multisets) differ between two copies of a table; empty when the rows agree."""
    if rows(left, layer, name) == rows(right, layer, name):
        return []
    a, b = read.read_table(left, layer, name), read.read_table(right, layer, name)
    if set(a.column_names) != set(b.column_names):
        return sorted(set(a.column_names) ^ set(b.column_names))
    return [c for c in a.column_names if c not in VOLATILE
            and Counter(map(repr, a[c].to_pylist())) != Counter(map(repr, b[c].to_pylist()))] or ["row pairing"]


@pytest.mark.timeout(2700)  # five Spark applications; minutes each when the two cores are shared
def test_cluster_jobs_match_a_local_run(standalone, make_settings, spark, tmp_path: Path) -> None:
    settings = make_settings(feeds=FEEDS)
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    produce(settings, list(simulator.generate(list(FEEDS), count=400, seed=7, dirty_fraction=0.1, start=start)))
    on_cluster = with_overrides(settings, lakehouse={"path": str(tmp_path / "cluster-lakehouse")})
    submit_jobs(standalone, on_cluster, tmp_path)
    local = with_overrides(settings, lakehouse={"path": str(tmp_path / "local-lakehouse")})
    for stage in STAGES:
        pipeline.run(local, stage, until_idle=True, spark=spark)

    tables = [t for t in read.list_tables(local.lakehouse_path) if t[0] in ("bronze", "silver", "quality", "gold")]
    assert set(tables) == {t for t in read.list_tables(on_cluster.lakehouse_path) if t[0] != "reference"}
    assert {("silver", "traffic_flow"), ("gold", "scorecard")} <= set(tables)
    differences = {f"{layer}/{name}": differing_columns(local.lakehouse_path, on_cluster.lakehouse_path, layer, name)
                   for layer, name in tables}
    assert not {table: cols for table, cols in differences.items() if cols}, "cluster and local tables differ"
    assert sum(len(rows(local.lakehouse_path, "silver", f.name)) for f in settings.feeds) > 0
    used = [w for w in standalone.workdir.glob("worker-*") if any(w.glob("app-*/*/stderr"))]
    assert len(used) == 2, "both workers should have run executors"
