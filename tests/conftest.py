"""Shared fixtures: one embedded Kafka broker and one SparkSession for the whole test session."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bigbilbao.settings import FeedSettings, Settings, load_settings, with_overrides

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TEST_FEEDS = ("traffic_flow", "incidents", "air_quality")  # one per domain keeps the Kafka tests quick


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Packaged defaults, a temporary lakehouse and a small local Spark; the user's environment is ignored."""
    lake = tmp_path_factory.mktemp("lakehouse")
    settings = load_settings(environ={})
    settings = dataclasses.replace(settings, feeds=tuple(f for f in settings.feeds if f.name in TEST_FEEDS))
    return with_overrides(
        settings,
        lakehouse={"path": str(lake)},
        spark={"master": "local[2]", "shuffle_partitions": 2, "ui": False, "driver_memory": "2g"},
    )


@pytest.fixture(scope="session")
def kafka_bootstrap(base_settings: Settings) -> Iterator[str]:
    """A real single-node KRaft broker, started from the project's jars, shared by all tests."""
    from bigbilbao import broker

    info, _ = broker.start(base_settings)
    yield info.bootstrap
    broker.stop(base_settings)


@pytest.fixture(scope="session")
def spark(base_settings: Settings):  # noqa: ANN201
    """The one SparkSession of the test session."""
    from bigbilbao.session import build_spark

    session = build_spark(base_settings)
    yield session
    session.stop()


@pytest.fixture
def make_settings(base_settings: Settings, kafka_bootstrap: str, tmp_path: Path) -> Callable[..., Settings]:
    """Per-test settings: an own lakehouse folder and own topics on the shared broker."""

    def factory(**kafka: object) -> Settings:
        prefix = f"t{uuid.uuid4().hex[:8]}"
        feeds = tuple(FeedSettings(name=f.name, topic=f"{prefix}.{f.name}") for f in base_settings.feeds)
        settings = with_overrides(base_settings, lakehouse={"path": str(tmp_path / "lakehouse")},
                                  kafka={"bootstrap_servers": (kafka_bootstrap,), **kafka})
        return dataclasses.replace(settings, feeds=feeds)

    return factory
