"""SASL/SCRAM-SHA-512: the embedded broker's second listener, the pipeline with right and wrong credentials.

The password lives only in the environment: it must not show up in logs, errors, Spark's configuration,
query plans, the broker's files or command line, nor anywhere in the lakehouse.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bigbilbao.config.settings import FeedSettings, Settings, with_overrides
from bigbilbao.feeds import producer, simulator
from bigbilbao.infra import broker, kafka_clients
from bigbilbao.stages import ingest, pipeline
from bigbilbao.tables import read
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
CLIENT_PASSWORD_ENV = "BIGBILBAO_TEST_KAFKA_PASSWORD"


@pytest.fixture(scope="module")
def sasl_broker(base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    """An embedded broker of its own (own home, own ports) with a SCRAM listener; yields (settings, password)."""
    password = f"pw-{secrets.token_hex(12)}"
    home = tmp_path_factory.mktemp("sasl_lake")
    settings = with_overrides(base_settings, lakehouse={"path": str(home)}, broker={"sasl_port": 0})
    os.environ[settings.broker.sasl_password_env] = password
    try:
        broker.start(settings)
        yield settings, password
    finally:
        broker.stop(settings)
        os.environ.pop(settings.broker.sasl_password_env, None)


def client_settings(broker_settings: Settings, lake: Path) -> Settings:
    """Pipeline settings that reach the broker only through its SASL listener."""
    info = broker.status(broker_settings)
    assert info is not None and info.sasl_bootstrap
    settings = with_overrides(
        broker_settings, lakehouse={"path": str(lake)},
        kafka={"bootstrap_servers": (info.sasl_bootstrap,), "security_protocol": "SASL_PLAINTEXT",
               "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": broker_settings.broker.sasl_username,
               "sasl_password_env": CLIENT_PASSWORD_ENV})
    return dataclasses.replace(settings, feeds=(FeedSettings("air_quality", f"s{uuid.uuid4().hex[:8]}.air_quality"),))


def files_holding(folder: Path, secret: str) -> list[str]:
    """Every file under `folder` whose bytes contain the secret."""
    needle = secret.encode()
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.timeout(600)
def test_pipeline_reads_the_sasl_listener_and_the_password_stays_secret(
        sasl_broker, spark, tmp_path, monkeypatch, caplog, capfd) -> None:
    broker_settings, password = sasl_broker
    monkeypatch.setenv(CLIENT_PASSWORD_ENV, password)
    settings = client_settings(broker_settings, tmp_path / "lake")
    bootstrap = settings.kafka.bootstrap_servers[0]
    caplog.set_level("DEBUG", logger="bigbilbao")
    kafka_clients.ensure_topics(settings, bootstrap)
    report = producer.publish(settings, bootstrap, simulator.generate(["air_quality"], count=120, seed=8))
    assert report.total == 120
    pipeline.run(settings, "ingest", until_idle=True, spark=spark)
    assert read.read_table(settings.lakehouse_path, "bronze", "air_quality", ["offset"]).num_rows == 120

    plan = ingest.read_kafka(spark, settings, bootstrap)._jdf.queryExecution().toString()
    conf = str(spark.sparkContext.getConf().getAll()) + str(spark.sql("SET -v").collect())
    out, err = capfd.readouterr()
    info = broker.status(broker_settings)
    home = broker.broker_home(broker_settings)
    cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().decode(errors="replace")
    places = {"python logs": caplog.text, "stdout/stderr (JVM included)": out + err, "Spark conf": conf,
              "query plan": plan, "broker command line": cmdline}
    assert "kafka" in plan.lower(), plan
    assert not [name for name, text in places.items() if password in text]
    assert not files_holding(settings.lakehouse_path, password), "the lakehouse and checkpoints hold no secret"
    assert not files_holding(home, password), "the broker's home (server.properties, logs) holds no secret"
    assert stat.S_IMODE((home / "server.properties").stat().st_mode) == 0o600


@pytest.mark.timeout(300)
def test_wrong_password_is_one_clear_sentence(sasl_broker, tmp_path) -> None:
    broker_settings, password = sasl_broker
    settings = client_settings(broker_settings, tmp_path / "lake")
    config = tmp_path / "sasl.yaml"
    config.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": list(settings.kafka.bootstrap_servers), "security_protocol": "SASL_PLAINTEXT",
                  "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": settings.kafka.sasl_username,
                  "sasl_password_env": CLIENT_PASSWORD_ENV},
        "lakehouse": {"path": str(tmp_path / "lake")},
        "spark": {"master": "local[1]", "ui": False},
        "feeds": [{"name": "air_quality", "topic": settings.feeds[0].topic}]}))
    wrong = f"wrong-{secrets.token_hex(8)}"
    env = {**os.environ, CLIENT_PASSWORD_ENV: wrong}
    proc = subprocess.run([sys.executable, "-m", "bigbilbao.cli", "run", "ingest", "--until-idle", "--config",
                           str(config)], capture_output=True, text=True, timeout=240, check=False, cwd=ROOT, env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    errors = [line for line in proc.stderr.splitlines() if line.startswith("bigbilbao: error:")]
    assert len(errors) == 1, output
    assert "did not accept the SCRAM-SHA-512 login of user 'bigbilbao'" in errors[0]
    assert CLIENT_PASSWORD_ENV in errors[0], "the sentence names where the password comes from"
    assert "Traceback" not in output and " ERROR " not in output, "no stack traces, no client log spam"
    assert wrong not in output and password not in output
    assert not (tmp_path / "lake").exists() or not files_holding(tmp_path / "lake", wrong)
