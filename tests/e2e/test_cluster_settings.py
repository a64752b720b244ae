"""Settings for real clusters: several brokers, SASL_SSL/SCRAM for both Kafka clients, secrets kept out of sight."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from bigbilbao.cli import submit
from bigbilbao.config.settings import load_settings
from bigbilbao.errors import SettingsError
from bigbilbao.infra import kafka_clients

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-\"quoted\"-pa55"
SCRAM = {
    "BIGBILBAO__KAFKA__BOOTSTRAP_SERVERS": "k1.example:9093,k2.example:9093,k3.example:9093",
    "BIGBILBAO__KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
    "BIGBILBAO__KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
    "BIGBILBAO__KAFKA__SASL_USERNAME": "bigbilbao",
    "BIGBILBAO__KAFKA__SASL_PASSWORD_ENV": "KAFKA_PASSWORD",
    "BIGBILBAO__KAFKA__SSL_CAFILE": "/etc/kafka/ca.pem",
    "KAFKA_PASSWORD": SECRET,
}


def test_several_bootstrap_servers_from_env_and_overrides() -> None:
    settings = load_settings(environ=SCRAM)
    assert settings.kafka.bootstrap_servers == ("k1.example:9093", "k2.example:9093", "k3.example:9093")
    overridden = submit.job_settings(None, ["kafka.bootstrap_servers=a:9092,b:9092", "spark.shuffle_partitions=8"],
                                     environ=SCRAM)
    assert overridden.kafka.bootstrap_servers == ("a:9092", "b:9092")
    assert overridden.spark.shuffle_partitions == 8
    assert overridden.kafka.sasl_mechanism == "SCRAM-SHA-512"


def test_sasl_ssl_scram_reaches_both_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_PASSWORD", SECRET)
    settings = load_settings(environ=SCRAM)
    bootstrap = ",".join(settings.kafka.bootstrap_servers)
    python = kafka_clients.python_client_options(settings, bootstrap)
    assert python == {"bootstrap_servers": ["k1.example:9093", "k2.example:9093", "k3.example:9093"],
                      "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                      "sasl_plain_username": "bigbilbao", "sasl_plain_password": SECRET,
                      "ssl_check_hostname": True, "ssl_cafile": "/etc/kafka/ca.pem"}
    spark = kafka_clients.spark_source_options(settings, bootstrap)
    assert spark["kafka.bootstrap.servers"] == bootstrap
    assert spark["kafka.security.protocol"] == "SASL_SSL"
    assert spark["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert spark["kafka.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="bigbilbao" '
        'password="s3cr3t-\\"quoted\\"-pa55";')
    assert spark["kafka.ssl.truststore.type"] == "PEM"
    assert spark["kafka.ssl.truststore.location"] == "/etc/kafka/ca.pem"
    assert "kafka.ssl.endpoint.identification.algorithm" not in spark


def test_plain_sasl_and_no_hostname_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_PASSWORD", SECRET)
    env = {**SCRAM, "BIGBILBAO__KAFKA__SASL_MECHANISM": "PLAIN", "BIGBILBAO__KAFKA__SSL_CHECK_HOSTNAME": "false"}
    settings = load_settings(environ=env)
    spark = kafka_clients.spark_source_options(settings, "k1:9093")
    assert spark["kafka.sasl.jaas.config"].startswith("org.apache.kafka.common.security.plain.PlainLoginModule")
    assert spark["kafka.ssl.endpoint.identification.algorithm"] == ""
    assert kafka_clients.python_client_options(settings, "k1:9093")["ssl_check_hostname"] is False


def test_password_stays_out_of_settings_conf_and_logs(monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    from bigbilbao.infra.spark_session import spark_conf

    monkeypatch.setenv("KAFKA_PASSWORD", SECRET)
    caplog.set_level(logging.DEBUG)
    settings = load_settings(environ=SCRAM)
    kafka_clients.spark_source_options(settings, "k1:9093")
    kafka_clients.python_client_options(settings, "k1:9093")
    assert "s3cr3t" not in repr(settings)
    assert not any("s3cr3t" in value for value in spark_conf(settings, "spark://h:7077").values())
    assert "s3cr3t" not in caplog.text
    monkeypatch.delenv("KAFKA_PASSWORD")
    with pytest.raises(SettingsError, match="KAFKA_PASSWORD") as missing:
        kafka_clients.python_client_options(settings, "k1:9093")
    assert "s3cr3t" not in str(missing.value)


@pytest.mark.integration
def test_spark_redacts_the_password_in_plans(spark, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_PASSWORD", SECRET)
    options = kafka_clients.spark_source_options(load_settings(environ=SCRAM), "k1:9093")
    stream = spark.readStream.format("kafka").options(**options).load()
    plan = stream._jdf.queryExecution().toString()
    assert "kafka.sasl.jaas.config" in plan
    assert "s3cr3t" not in plan


@pytest.mark.parametrize(("env", "match"), [
    ({"BIGBILBAO__KAFKA__SASL_MECHANISM": "GSSAPI"}, "sasl_mechanism"),
    ({"BIGBILBAO__KAFKA__SASL_PASSWORD_ENV": ""}, "sasl_password_env"),
    ({"BIGBILBAO__KAFKA__SASL_USERNAME": ""}, "sasl_username"),
])
def test_incomplete_sasl_is_named(env: dict[str, str], match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        load_settings(environ={**SCRAM, **env})


@pytest.mark.parametrize("uri", ["s3a://city-lake/bigbilbao", "abfss://lake@account.dfs.core.windows.net/bb"])
def test_object_store_lakehouse_is_accepted_and_explained(uri: str) -> None:
    settings = load_settings(environ={"BIGBILBAO__LAKEHOUSE__PATH": uri})
    assert settings.lakehouse_uri == uri
    with pytest.raises(SettingsError, match="mount the bucket"):
        settings.lakehouse_path  # noqa: B018
    local = load_settings(environ={"BIGBILBAO__LAKEHOUSE__PATH": "file:///data/lake"})
    assert local.lakehouse_path == Path("/data/lake") and local.lakehouse_uri == "/data/lake"


def test_override_must_name_section_and_key() -> None:
    with pytest.raises(SettingsError, match="section.key=value"):
        submit.job_settings(None, ["bootstrap_servers=a:9092"], environ={})
    with pytest.raises(SettingsError, match="kafka.bootstrap_serverz"):
        submit.job_settings(None, ["kafka.bootstrap_serverz=a:9092"], environ={})


@pytest.mark.parametrize("stage", ["ingest", "silver", "gold", "scorecard", "all"])
def test_every_job_has_help(stage: str) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "jobs" / f"{stage}.py"), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--config" in done.stdout and "--set" in done.stdout and "--until-idle" in done.stdout
