"""docker-compose.yml checked statically (no Docker engine here): services, ports, volumes, paths and settings names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bigbilbao.config.settings import ENV_PREFIX, load_settings
from bigbilbao.stages import pipeline

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = "/opt/bigbilbao"  # where the Dockerfile puts the checkout
SERVICES = {"kafka", "spark-master", "spark-worker", "jupyter", *pipeline.STAGES}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command", [])
    return command if isinstance(command, str) else " ".join(command)


def test_services_ports_volumes_and_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= SERVICES
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "KAFKA_PROCESS_ROLES" in services["kafka"]["environment"], "Kafka runs in KRaft mode"
    assert {"7077:7077", "8080:8080"} <= set(services["spark-master"]["ports"])
    assert "8888:8888" in services["jupyter"]["ports"]
    assert services["spark-worker"]["deploy"]["replicas"] >= 2
    for name in ("kafka", "spark-master", "spark-worker", "jupyter"):
        assert services[name]["healthcheck"]["test"], name
    assert "lakehouse" in compose["volumes"]
    for name in ("spark-worker", "jupyter", *pipeline.STAGES):
        assert "lakehouse:/lakehouse" in services[name]["volumes"], f"{name} must share the lakehouse"
    for stage in pipeline.STAGES:
        assert f"jobs/{stage}.py" in command_text(services[stage])
        assert services[stage]["init"] is True, f"{stage}: SIGTERM must reach the Python driver"
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_spark_image_matches_pyspark() -> None:
    import pyspark

    dockerfile = (ROOT / "Dockerfile").read_text()
    image = re.search(r"ARG SPARK_IMAGE=(\S+)", dockerfile).group(1)  # type: ignore[union-attr]
    assert image.startswith(f"apache/spark:{pyspark.__version__}-") and "java17-python3" in image


def test_referenced_files_exist(compose: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY\s+(.+)\s+\S+$", dockerfile, flags=re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies missing {path}"
    for name, service in compose["services"].items():
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file(), name
        text = command_text(service)
        for path in re.findall(r"(?<![\w/])(?:jobs|notebooks|bigbilbao)/[\w./-]*", text):
            assert (ROOT / path).exists(), f"{name} runs missing {path}"
        for path in re.findall(re.escape(APP_DIR) + r"/([\w./-]+)", text):
            assert (ROOT / path).exists(), f"{name} uses missing {path}"
        for module in re.findall(r"-m\s+(bigbilbao[\w.]*)", text):
            assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{name} runs missing module {module}"


def test_environment_names_valid_settings(compose: dict[str, Any]) -> None:
    seen = set()
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        overrides = {k: str(v) for k, v in environment.items() if k.startswith(ENV_PREFIX)}
        if overrides:
            settings = load_settings(environ=overrides)  # an unknown key or a wrong type raises here
            seen |= set(overrides)
            assert settings.lakehouse.path == "/lakehouse", name
            assert settings.kafka.bootstrap_servers == ("kafka:9092",), name
            if name in pipeline.STAGES[:3]:
                assert settings.spark.master == "spark://spark-master:7077"
                assert settings.spark.conf["spark.driver.host"] == name, "executors must reach the driver"
    assert f"{ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS" in seen


def test_secrets_come_from_the_host_environment(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    key = load_settings(environ={}).privacy.pseudonym_key_env
    for stage in pipeline.STAGES:
        value = compose["services"][stage]["environment"][key]
        assert value.startswith(f"${{{key}:?"), f"{stage}: the key must come from the host, never the file"
    assert "PASSWORD:" not in text.upper().replace("PASSWORD_ENV", "")
