"""Shared fixtures (one embedded Kafka broker and one SparkSession for the whole test session) and the test tiers.

Tiers follow the folders and become markers automatically: `tests/unit` (pure: no JVM, no broker; `./bb test -m
unit` runs it in under a minute), `tests/spark` (a local SparkSession, no broker) and `tests/e2e` (the broker,
streaming queries, command-line runs in subprocesses). `./bb test` runs all three.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from bigbilbao.config.settings import FeedSettings, Settings, load_settings, with_overrides

ROOT = Path(__file__).resolve().parents[1]
TIERS = ("unit", "spark", "e2e")
JVM_FIXTURES = frozenset({"spark", "kafka_bootstrap", "make_settings", "demo_lake"})
SHARED_DATA = ROOT.parent / "shared" / "data"
TEST_FEEDS = ("traffic_flow", "incidents", "air_quality")  # one per domain keeps the Kafka tests quick


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Packaged defaults, a temporary lakehouse and a small local Spark; the user's environment is ignored."""
    lake = tmp_path_factory.mktemp("lakehouse")
    settings = load_settings(environ={})
    return with_overrides(
        settings,
        lakehouse={"path": str(lake)},
        spark={"master": "local[2]", "shuffle_partitions": 2, "ui": False, "driver_memory": "3g"},
    )


@pytest.fixture(scope="session")
def kafka_bootstrap(base_settings: Settings) -> Iterator[str]:
    """A real single-node KRaft broker, started from the project's jars, shared by all tests."""
    from bigbilbao.infra import broker

    info, _ = broker.start(base_settings)
    yield info.bootstrap
    broker.stop(base_settings)


@pytest.fixture(scope="session")
def spark(base_settings: Settings):
    """The one SparkSession of the test session."""
    from bigbilbao.infra.spark_session import build_spark

    session = build_spark(base_settings)
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def pseudonym_key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """A test HMAC key in the environment, as an operator would set it."""
    key = "test-pseudonym-key-0123456789abcdef-0123456789"
    monkeypatch.setenv("BIGBILBAO_PSEUDONYM_KEY", key)
    return key.encode()


@pytest.fixture
def make_settings(base_settings: Settings, kafka_bootstrap: str, tmp_path: Path) -> Callable[..., Settings]:
    """Per-test settings: an own lakehouse folder and own topics on the shared broker."""

    def factory(feeds: Sequence[str] = TEST_FEEDS, **kafka: object) -> Settings:
        prefix = f"t{uuid.uuid4().hex[:8]}"
        configured = tuple(FeedSettings(name=name, topic=f"{prefix}.{name}") for name in feeds)
        settings = with_overrides(base_settings, lakehouse={"path": str(tmp_path / "lakehouse")},
                                  kafka={"bootstrap_servers": (kafka_bootstrap,), **kafka})
        return dataclasses.replace(settings, feeds=configured)

    return factory


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With `-m unit` alone, the other tiers' folders are not even imported (they load pyspark)."""
    if config.getoption("markexpr") == "unit" and collection_path.parent == ROOT / "tests":
        return collection_path.name in ("spark", "e2e") or None
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its folder's tier; a unit test asking for a JVM fixture is a collection error."""
    for item in items:
        tier = next((part for part in Path(str(item.fspath)).relative_to(ROOT / "tests").parts if part in TIERS), None)
        if tier is None:
            msg = f"{item.nodeid} is outside tests/unit, tests/spark and tests/e2e; put it in its tier's folder."
            raise pytest.UsageError(msg)
        item.add_marker(getattr(pytest.mark, tier))
        needs_jvm = JVM_FIXTURES.intersection(item.fixturenames)
        if tier == "unit" and needs_jvm:
            msg = f"{item.nodeid} uses {sorted(needs_jvm)}, which start a JVM; move it to tests/spark or tests/e2e."
            raise pytest.UsageError(msg)


# Work in progress, committed so it is not lost, not yet collected: silver end to end (one of its
# invariant tests still fails), spatial enrichment on Spark and gold aggregation. See the closing note.
collect_ignore = []
