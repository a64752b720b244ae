"""Kafka connection options for kafka-python and Spark, topic creation, and the bootstrap resolution."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

from bigbilbao.config.settings import Settings
from bigbilbao.errors import BrokerError
from bigbilbao.infra import broker

log = logging.getLogger(__name__)


@contextlib.contextmanager
def bootstrap_servers(settings: Settings) -> Iterator[str]:
    """Configured servers, or the embedded broker (started here and stopped after, unless already running)."""
    if not settings.kafka.embedded:
        yield ",".join(settings.kafka.bootstrap_servers)
        return
    info, started = broker.start(settings)
    try:
        yield info.bootstrap
    finally:
        if started:
            broker.stop(settings)


def python_client_options(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """kafka-python options, including SASL/SSL when configured (password read from the environment)."""
    options: dict[str, Any] = {"bootstrap_servers": bootstrap.split(","),
                               "security_protocol": settings.kafka.security_protocol}
    if settings.kafka.sasl_mechanism:
        options.update(sasl_mechanism=settings.kafka.sasl_mechanism,
                       sasl_plain_username=settings.kafka.sasl_username,
                       sasl_plain_password=settings.kafka_password())
    if settings.kafka.security_protocol.endswith("SSL"):
        options["ssl_check_hostname"] = settings.kafka.ssl_check_hostname
        if settings.kafka.ssl_cafile:
            options["ssl_cafile"] = settings.kafka.ssl_cafile
    return options


def spark_source_options(settings: Settings, bootstrap: str) -> dict[str, str]:
    """Options of Spark's Kafka source for every enabled feed topic."""
    topics = ",".join(f.topic_name for f in settings.enabled_feeds)
    options = {"kafka.bootstrap.servers": bootstrap, "subscribe": topics,
               "startingOffsets": settings.kafka.starting_offsets,
               "maxOffsetsPerTrigger": str(settings.kafka.max_offsets_per_trigger),
               "kafka.security.protocol": settings.kafka.security_protocol}
    if settings.kafka.sasl_mechanism:
        module = ("org.apache.kafka.common.security.plain.PlainLoginModule"
                  if settings.kafka.sasl_mechanism == "PLAIN"
                  else "org.apache.kafka.common.security.scram.ScramLoginModule")
        password = (settings.kafka_password() or "").replace('"', '\\"')
        options["kafka.sasl.mechanism"] = settings.kafka.sasl_mechanism
        options["kafka.sasl.jaas.config"] = (
            f'{module} required username="{settings.kafka.sasl_username}" password="{password}";')
    if settings.kafka.security_protocol.endswith("SSL"):
        options.update(_spark_ssl_options(settings))
    return options


def _spark_ssl_options(settings: Settings) -> dict[str, str]:
    """TLS options of the Kafka Java client: a PEM CA file as truststore, optional hostname check."""
    options = {}
    if settings.kafka.ssl_cafile:
        options["kafka.ssl.truststore.type"] = "PEM"
        options["kafka.ssl.truststore.location"] = settings.kafka.ssl_cafile
    if not settings.kafka.ssl_check_hostname:
        options["kafka.ssl.endpoint.identification.algorithm"] = ""
    return options


def ensure_topics(settings: Settings, bootstrap: str) -> list[str]:
    """Create one topic per enabled feed (idempotent); returns the topics created now."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        with _quiet_bootstrap():
            admin = KafkaAdminClient(client_id="bigbilbao-admin", request_timeout_ms=30000,
                                     **python_client_options(settings, bootstrap))
    except KafkaError as exc:
        raise connection_error(settings, bootstrap, exc) from exc
    try:
        existing = set(admin.list_topics())
        wanted = [f.topic_name for f in settings.enabled_feeds if f.topic_name not in existing]
        created = []
        for topic in wanted:
            try:
                admin.create_topics([NewTopic(topic, settings.kafka.partitions, settings.kafka.replication_factor)])
                created.append(topic)
            except TopicAlreadyExistsError:
                log.debug("topic %s already exists", topic)
        if created:
            log.info("created topics %s with %d partitions", ", ".join(created), settings.kafka.partitions)
        return created
    finally:
        admin.close()


def topic_partitions(settings: Settings, bootstrap: str) -> dict[str, list[int]]:
    """Partition numbers of every enabled feed topic (the topics exist: `ensure_topics` ran)."""
    from kafka import KafkaConsumer

    with _quiet_bootstrap():
        consumer = KafkaConsumer(**python_client_options(settings, bootstrap))
    try:
        return {f.topic_name: sorted(consumer.partitions_for_topic(f.topic_name) or ())
                for f in settings.enabled_feeds}
    finally:
        consumer.close()


def topic_offsets(settings: Settings, bootstrap: str,
                  timeout_ms: int = 10_000) -> dict[str, dict[int, tuple[int, int]]]:
    """Topic -> partition -> (first offset still held, end offset) for every enabled feed topic that exists."""
    from kafka import KafkaConsumer, TopicPartition

    with _quiet_bootstrap():
        consumer = KafkaConsumer(**python_client_options(settings, bootstrap), request_timeout_ms=timeout_ms + 1000)
    try:
        parts = [TopicPartition(f.topic_name, p) for f in settings.enabled_feeds
                 for p in sorted(consumer.partitions_for_topic(f.topic_name) or ())]
        first = consumer.beginning_offsets(parts, timeout_ms=timeout_ms) if parts else {}
        end = consumer.end_offsets(parts, timeout_ms=timeout_ms) if parts else {}
        found: dict[str, dict[int, tuple[int, int]]] = {f.topic_name: {} for f in settings.enabled_feeds}
        for part in parts:
            found[part.topic][part.partition] = (int(first[part]), int(end[part]))
        return found
    finally:
        consumer.close()


def connection_error(settings: Settings, bootstrap: str, exc: Exception) -> BrokerError:
    """One sentence on why Kafka could not be used: a refused SASL login, or no broker at that address.

    kafka-python does not report a refused SCRAM login as such (the broker closes the connection and the
    client times out), so a SASL setup whose brokers accept TCP connections is taken as a refused login.
    """
    kafka = settings.kafka
    refused = type(exc).__name__ in ("SaslAuthenticationFailedError", "AuthenticationFailedError")
    if kafka.security_protocol.startswith("SASL_") and (refused or _accepts_connections(bootstrap)):
        msg = (f"Kafka at {bootstrap} did not accept the {kafka.sasl_mechanism} login of user "
               f"'{kafka.sasl_username}'; check kafka.sasl_username and the password in the environment variable "
               f"{kafka.sasl_password_env}.")
        return BrokerError(msg)
    msg = (f"Cannot reach Kafka at {bootstrap} ({exc}); "
           "start it with `bigbilbao broker start` or fix kafka.bootstrap_servers.")
    return BrokerError(msg)


@contextlib.contextmanager
def _quiet_bootstrap() -> Iterator[None]:
    """Silence kafka-python's per-attempt connection errors while bootstrapping: a failure ends in one sentence."""
    network = logging.getLogger("kafka.net")
    level = network.level
    network.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        network.setLevel(level)


def _accepts_connections(bootstrap: str) -> bool:
    """True when some bootstrap server accepts a TCP connection."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=3):
                return True
        except (OSError, ValueError):
            continue
    return False


def producer(settings: Settings, bootstrap: str, **overrides: Any) -> Any:
    """A kafka-python producer that waits for the broker's acknowledgement of every message."""
    from kafka import KafkaProducer

    options = {"acks": "all", "linger_ms": 20, "batch_size": 256 * 1024, "retries": 5,
               "client_id": "bigbilbao-producer", **python_client_options(settings, bootstrap), **overrides}
    return KafkaProducer(**options)
