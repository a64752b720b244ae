"""Frozen, typed settings built once from YAML plus environment overrides; the only reader of os.environ."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bigbilbao.config.governance import CatalogSettings
from bigbilbao.config.loader import DEFAULT_CONFIG, build_dataclass
from bigbilbao.config.maintenance import MaintenanceSettings
from bigbilbao.config.monitor import MonitorSettings
from bigbilbao.errors import SettingsError

log = logging.getLogger(__name__)

ENV_PREFIX = "BIGBILBAO__"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
OBJECT_STORE_SCHEMES = ("s3a", "s3", "abfss", "abfs", "gs", "wasbs")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSettings:
    """Where Kafka is and how to talk to it; empty bootstrap servers means the embedded broker."""

    bootstrap_servers: tuple[str, ...] = ()
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password_env: str | None = None
    ssl_cafile: str | None = None
    ssl_check_hostname: bool = True
    partitions: int = 2
    replication_factor: int = 1
    max_offsets_per_trigger: int = 200_000
    starting_offsets: str = "earliest"

    @property
    def embedded(self) -> bool:
        """True when no external broker is configured."""
        return not self.bootstrap_servers


@dataclass(frozen=True)
class BrokerSettings:
    """The embedded single-node KRaft broker."""

    heap: str = "512m"
    port: int = 0
    start_timeout_s: int = 60
    sasl_port: int | None = None  # None: no SASL listener; 0: a free port
    sasl_username: str = "bigbilbao"
    sasl_password_env: str = "BIGBILBAO_BROKER_SASL_PASSWORD"


@dataclass(frozen=True)
class LakehouseSettings:
    """Where Delta tables and streaming checkpoints live."""

    path: str = "lakehouse"
    checkpoints: str | None = None


@dataclass(frozen=True)
class SparkSettings:
    """How the SparkSession is built; `master` is overridden by --master."""

    master: str = "local[*]"
    app_name: str = "bigbilbao"
    shuffle_partitions: int = 4
    driver_memory: str = "2g"
    ui: bool = False
    conf: Mapping[str, str] = field(default_factory=dict)


TOPOLOGIES = ("round", "staged")


@dataclass(frozen=True)
class StreamingSettings:
    """Seconds between micro-batch starts of each continuously running stage: latency against fixed cost per batch."""

    topology: str = "round"  # `run all`: one query per round ("round") or a query per stage and feed ("staged")
    round_trigger_s: float = 2.0
    round_parallel_feeds: int = 0  # feeds of one round worked on at once; 0: Spark's default parallelism
    ingest_trigger_s: float = 2.0
    silver_trigger_s: float = 5.0
    gold_trigger_s: float = 5.0

    def interval(self, stage: str) -> str:
        """The stage's Spark processingTime trigger, e.g. '5 seconds'."""
        return f"{getattr(self, f'{stage}_trigger_s'):g} seconds"


@dataclass(frozen=True)
class JvmSettings:
    """Where resolved JVM jars are cached."""

    jars_dir: str | None = None


@dataclass(frozen=True)
class PrivacySettings:
    """Pseudonymisation of personal identifiers before silver."""

    pseudonym_key_env: str = "BIGBILBAO_PSEUDONYM_KEY"
    min_key_length: int = 32
    min_published_count: int = 5  # k: event counts 1..k-1 are suppressed in the published scorecard


@dataclass(frozen=True)
class BoundaryFieldSettings:
    """Which properties of a boundary file hold code, name and parent code; None recognises known files."""

    id_field: str | None = None
    name_field: str | None = None
    parent_field: str | None = None


@dataclass(frozen=True)
class BoundarySettings:
    """Property mapping per layer for `bigbilbao boundaries import`; command-line flags win over it."""

    districts: BoundaryFieldSettings = field(default_factory=BoundaryFieldSettings)
    barrios: BoundaryFieldSettings = field(default_factory=BoundaryFieldSettings)


@dataclass(frozen=True)
class FeedSettings:
    """One sensor feed: its contract name and Kafka topic."""

    name: str
    topic: str | None = None
    enabled: bool = True

    @property
    def topic_name(self) -> str:
        """Topics are named after feeds unless configured otherwise."""
        return self.topic or self.name


@dataclass(frozen=True)
class Settings:
    """Everything a Big Bilbao process needs, built once at the entry point and passed down."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    lakehouse: LakehouseSettings = field(default_factory=LakehouseSettings)
    spark: SparkSettings = field(default_factory=SparkSettings)
    streaming: StreamingSettings = field(default_factory=StreamingSettings)
    jvm: JvmSettings = field(default_factory=JvmSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    boundaries: BoundarySettings = field(default_factory=BoundarySettings)
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    maintenance: MaintenanceSettings = field(default_factory=MaintenanceSettings)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    feeds: tuple[FeedSettings, ...] = ()
    source: str = ""

    @property
    def lakehouse_uri(self) -> str:
        """The lakehouse as Spark and Hadoop see it: an object-store URI unchanged, else the absolute folder."""
        if is_object_store(self.lakehouse.path):
            return self.lakehouse.path.rstrip("/")
        return str(self.lakehouse_path)

    @property
    def lakehouse_path(self) -> Path:
        """Absolute lakehouse folder; an object-store lakehouse must be mounted as one (see the README)."""
        return _local_path(self.lakehouse.path, "lakehouse.path")

    @property
    def checkpoint_path(self) -> Path:
        """Absolute checkpoint folder."""
        if self.lakehouse.checkpoints:
            return _local_path(self.lakehouse.checkpoints, "lakehouse.checkpoints")
        return self.lakehouse_path / "_checkpoints"

    @property
    def jars_path(self) -> Path:
        """Jar cache: the checkout's .jars when run from a checkout, else the user cache."""
        if self.jvm.jars_dir:
            return Path(self.jvm.jars_dir).expanduser().resolve()
        if (PROJECT_ROOT / "pyproject.toml").is_file():
            return PROJECT_ROOT / ".jars"
        return Path.home() / ".cache" / "bigbilbao" / "jars"

    @property
    def enabled_feeds(self) -> tuple[FeedSettings, ...]:
        """Feeds the pipeline consumes."""
        return tuple(f for f in self.feeds if f.enabled)

    def kafka_password(self) -> str | None:
        """The SASL password, read from the environment only when needed and never stored."""
        name = self.kafka.sasl_password_env
        if not name:
            return None
        value = os.environ.get(name)
        if value is None:
            msg = f"kafka.sasl_password_env names {name}, but that environment variable is not set."
            raise SettingsError(msg)
        return value

    def broker_sasl_password(self) -> str | None:
        """The embedded broker's SCRAM password, from the environment only (None when unset)."""
        return os.environ.get(self.broker.sasl_password_env) or None

    def pseudonym_key(self) -> bytes:
        """The HMAC key for pseudonyms, from the environment only; missing or short keys stop start-up."""
        name = self.privacy.pseudonym_key_env
        value = os.environ.get(name, "")
        if len(value) < self.privacy.min_key_length:
            msg = (f"Feeds with personal data need a secret key in the environment variable {name} "
                   f"(at least {self.privacy.min_key_length} characters), e.g. export {name}=$(openssl rand -hex 32).")
            raise SettingsError(msg)
        return value.encode()


def is_object_store(path: str) -> bool:
    """True for s3a://, abfss://, gs://… lakehouse locations."""
    return path.partition("://")[0].lower() in OBJECT_STORE_SCHEMES and "://" in path


def _local_path(path: str, key: str) -> Path:
    """A filesystem path, or one sentence on why an object-store URI cannot be used as one."""
    if is_object_store(path):
        msg = (f"Settings key '{key}' is the object store {path}; the stages keep checkpoints and read table logs "
               "through the filesystem, so mount the bucket (e.g. mountpoint-s3, s3fs, blobfuse2) and point "
               f"'{key}' at the mount.")
        raise SettingsError(msg)
    if path.startswith("file://"):
        path = path[len("file://"):]
    return Path(path).expanduser().resolve()


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read YAML, apply BIGBILBAO__* overrides and validate every key and type."""
    config = Path(path) if path else DEFAULT_CONFIG
    if not config.is_file():
        msg = f"Settings file {config} does not exist; pass an existing file with --config."
        raise SettingsError(msg)
    try:
        raw = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        msg = f"Settings file {config} is not valid YAML: {exc}"
        raise SettingsError(msg) from exc
    if not isinstance(raw, dict):
        msg = f"Settings file {config} must hold a mapping of sections at the top level."
        raise SettingsError(msg)
    _apply_env(raw, os.environ if environ is None else environ)
    raw["source"] = str(config)
    settings = build_dataclass(Settings, raw, "")
    _check(settings)
    return settings


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Overlay BIGBILBAO__SECTION__KEY=value (value parsed as YAML) onto the raw mapping."""
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX):].split("__") if k]
        target = raw
        for key in keys[:-1]:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                msg = f"Environment variable {name} overrides {key}, which is not a section."
                raise SettingsError(msg)
        parsed = yaml.safe_load(value) if value.strip() else None
        if keys[-1] == "bootstrap_servers" and isinstance(parsed, str):
            parsed = [s.strip() for s in parsed.split(",") if s.strip()]
        target[keys[-1]] = parsed


def _check(settings: Settings) -> None:
    """Cross-field rules that types alone cannot express."""
    protocols = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}
    if settings.kafka.security_protocol not in protocols:
        msg = f"Settings key 'kafka.security_protocol' must be one of {sorted(protocols)}."
        raise SettingsError(msg)
    if settings.privacy.min_published_count < 1:
        msg = "Settings key 'privacy.min_published_count' must be at least 1 (1 publishes every count)."
        raise SettingsError(msg)
    if settings.streaming.topology not in TOPOLOGIES:
        msg = f"Settings key 'streaming.topology' must be one of {list(TOPOLOGIES)}."
        raise SettingsError(msg)
    if settings.streaming.round_parallel_feeds < 0:
        msg = "Settings key 'streaming.round_parallel_feeds' must be 0 (Spark's default parallelism) or more."
        raise SettingsError(msg)
    for name in ("round", "ingest", "silver", "gold"):
        if getattr(settings.streaming, f"{name}_trigger_s") <= 0:
            msg = f"Settings key 'streaming.{name}_trigger_s' must be a positive number of seconds."
            raise SettingsError(msg)
    if settings.kafka.partitions < 1:
        msg = "Settings key 'kafka.partitions' must be at least 1."
        raise SettingsError(msg)
    _check_sasl(settings.kafka)
    names = [f.name for f in settings.feeds]
    if len(names) != len(set(names)):
        msg = f"Settings key 'feeds' names a feed twice: {names}."
        raise SettingsError(msg)
    if not settings.enabled_feeds:
        msg = "Settings key 'feeds' enables no feed; list at least one."
        raise SettingsError(msg)


def _check_sasl(kafka: KafkaSettings) -> None:
    """SASL needs a known mechanism, a user name and the name of the password's environment variable."""
    sasl = kafka.security_protocol.startswith("SASL_")
    if sasl and kafka.sasl_mechanism not in SASL_MECHANISMS:
        msg = (f"Settings key 'kafka.sasl_mechanism' must be one of {', '.join(SASL_MECHANISMS)} with "
               f"security_protocol {kafka.security_protocol}.")
        raise SettingsError(msg)
    if sasl and not (kafka.sasl_username and kafka.sasl_password_env):
        msg = ("SASL needs 'kafka.sasl_username' and 'kafka.sasl_password_env' (the name of the environment "
               "variable holding the password).")
        raise SettingsError(msg)


def with_overrides(settings: Settings, **sections: dict[str, Any]) -> Settings:
    """Copy of the settings with some keys replaced, e.g. with_overrides(s, spark={'master': 'x'})."""
    changes = {name: dataclasses.replace(getattr(settings, name), **values) for name, values in sections.items()}
    return dataclasses.replace(settings, **changes)
