"""Settings: one frozen typed object; typos and wrong types fail at start-up with the key's name."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bigbilbao.config.settings import load_settings
from bigbilbao.errors import DependencyError, JavaError, SettingsError
from bigbilbao.infra import jvm


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


def test_packaged_defaults_use_the_embedded_broker() -> None:
    settings = load_settings(environ={})
    assert settings.kafka.embedded
    assert len(settings.enabled_feeds) == 12
    assert {"traffic_flow", "incidents", "air_quality", "crowd_flow"} <= {f.name for f in settings.feeds}
    assert settings.spark.master == "local[*]"
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.kafka.partitions = 9  # type: ignore[misc]


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka:\n  bootstrap_serverz: [a:9092]\nfeeds: [{name: traffic_flow}]\n")
    with pytest.raises(SettingsError, match=r"'kafka\.bootstrap_serverz'"):
        load_settings(path, environ={})


def test_unknown_key_inside_a_list_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds:\n  - {name: traffic_flow, topik: x}\n")
    with pytest.raises(SettingsError, match=r"'feeds\[0\]\.topik'"):
        load_settings(path, environ={})


def test_wrong_type_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka:\n  partitions: two\nfeeds: [{name: traffic_flow}]\n")
    with pytest.raises(SettingsError, match=r"'kafka\.partitions' must be a whole number"):
        load_settings(path, environ={})


def test_environment_overrides_are_typed(tmp_path: Path) -> None:
    env = {"BIGBILBAO__KAFKA__PARTITIONS": "3",
           "BIGBILBAO__KAFKA__BOOTSTRAP_SERVERS": "b1:9092, b2:9092",
           "BIGBILBAO__SPARK__CONF": "{spark.sql.shuffle.partitions: '8'}"}
    settings = load_settings(environ=env)
    assert settings.kafka.partitions == 3
    assert settings.kafka.bootstrap_servers == ("b1:9092", "b2:9092")
    assert not settings.kafka.embedded
    assert settings.spark.conf["spark.sql.shuffle.partitions"] == "8"


def test_environment_override_with_wrong_type_is_named() -> None:
    with pytest.raises(SettingsError, match=r"'spark\.ui' must be true or false"):
        load_settings(environ={"BIGBILBAO__SPARK__UI": "sometimes"})


def test_trigger_intervals_come_from_settings_and_must_be_positive() -> None:
    defaults = load_settings(environ={}).streaming
    assert [defaults.interval(s) for s in ("ingest", "silver", "gold")] == ["2 seconds", "5 seconds", "5 seconds"]
    tuned = load_settings(environ={"BIGBILBAO__STREAMING__GOLD_TRIGGER_S": "30",
                                   "BIGBILBAO__STREAMING__SILVER_TRIGGER_S": "7.5"}).streaming
    assert (tuned.interval("gold"), tuned.interval("silver"), tuned.interval("ingest")) == (
        "30 seconds", "7.5 seconds", "2 seconds")
    with pytest.raises(SettingsError, match=r"'streaming\.ingest_trigger_s' must be a positive"):
        load_settings(environ={"BIGBILBAO__STREAMING__INGEST_TRIGGER_S": "0"})


def test_password_comes_only_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka: {sasl_mechanism: SCRAM-SHA-512, sasl_username: u, "
                           "sasl_password_env: BB_TEST_PW}\nfeeds: [{name: traffic_flow}]\n")
    settings = load_settings(path, environ={})
    with pytest.raises(SettingsError, match="BB_TEST_PW"):
        _ = settings.kafka_password()
    os.environ["BB_TEST_PW"] = "s3cret"
    try:
        assert settings.kafka_password() == "s3cret"
        assert "s3cret" not in repr(settings)
    finally:
        del os.environ["BB_TEST_PW"]


def test_bad_java_home_gives_one_sentence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-such-jdk"))
    with pytest.raises(JavaError, match="JAVA_HOME is .*no-such-jdk"):
        jvm.require_java()


def test_old_java_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "jdk" / "bin" / "java"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho \'openjdk version "11.0.22" 2024-01-16\' >&2\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    with pytest.raises(JavaError, match="Java 11 found .* need Java 17"):
        jvm.require_java()


def test_cli_reports_settings_errors_without_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "lakehouse:\n  pth: x\nfeeds: [{name: traffic_flow}]\n")
    proc = subprocess.run([sys.executable, "-m", "bigbilbao.cli", "run", "--config", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "Unknown settings key 'lakehouse.pth'" in proc.stderr


def test_cli_reports_missing_java_in_one_sentence(tmp_path: Path) -> None:
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "nowhere")}
    proc = subprocess.run([sys.executable, "-m", "bigbilbao.cli", "setup"], capture_output=True, text=True,
                          timeout=120, check=False, env=env)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "JAVA_HOME" in proc.stderr


def test_failed_download_gives_one_sentence(tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text(jvm.BUNDLES["kafka"].read_text().replace("<artifactId>kafka_2.13</artifactId>",
                                                           "<artifactId>kafka_2.13-does-not-exist</artifactId>"))
    with pytest.raises(DependencyError, match="could not download the JVM jars .* then run the command again"):
        resolve = jvm._resolve_with_maven if shutil.which("mvn") else jvm._resolve_with_ivy
        resolve(pom, tmp_path / "out")
