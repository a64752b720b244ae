"""Publishing gold: the scorecard computed from the gold tables into Delta, and EU threshold alerts onto Kafka.

The scorecard's inputs are small (hours x sensors x fields of two calendar years at most), so they
are read with delta-rs into pandas and written back with delta-rs (`bigbilbao.scorecard.store`: the
gold/scorecard and gold/scorecard_scores tables and their keys); no JVM is needed. A period keeps the
row of its latest publication: publishing again for the same as_of rewrites the same rows, and the
Delta history keeps every earlier version.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import SparkSession

from bigbilbao.config.settings import Settings
from bigbilbao.errors import PipelineError
from bigbilbao.infra import kafka_clients
from bigbilbao.scorecard.catalogue import load_catalogue
from bigbilbao.scorecard.compute import compute_scorecard
from bigbilbao.scorecard.kpi_model import Catalogue
from bigbilbao.scorecard.population import Population
from bigbilbao.scorecard.store import (
    SCORECARD,
    SCORECARD_KEY,
    SCORECARD_SCHEMA,
    SCORES,
    SCORES_KEY,
    SCORES_SCHEMA,
    merge_frame,
)
from bigbilbao.stages.gold_aggregate import NOT_AN_AREA
from bigbilbao.tables.read import table_path

log = logging.getLogger(__name__)

ALERTS_TOPIC = "alerts"
_UTC = pa.timestamp("us", tz="UTC")
def publish_scorecard(spark: SparkSession | None, settings: Settings, as_of: datetime,
                      catalogue: Catalogue | None = None,
                      population: Population | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compute the scorecard as of `as_of` from gold (+ the sensor registry) and MERGE it into Delta.

    `spark` is accepted for the pipeline's uniform stage signature and not used: delta-rs reads and
    writes these small tables without the JVM.
    """
    del spark
    if as_of.tzinfo is None:
        message = f"as_of must be timezone-aware (UTC), got {as_of.isoformat()}"
        raise PipelineError(message)
    lake = settings.lakehouse_path
    catalogue = catalogue or load_catalogue()
    since = datetime(as_of.astimezone(timezone.utc).year - 1, 1, 1, tzinfo=timezone.utc) - timedelta(days=1)
    hourly = read_gold(lake, "hourly", "hour_start", since, as_of)
    events = read_gold(lake, "events", "event_time", since, as_of)
    card = compute_scorecard(catalogue, hourly, as_of=as_of, boundary_version=boundary_version(hourly, events),
                             gold_events=events, gold_quality=read_gold(lake, "quality", "hour_start", since, as_of),
                             sensors=read_sensors(lake), population=population,
                             k=settings.privacy.min_published_count)
    stamps = {"as_of": pd.Timestamp(as_of).tz_convert("UTC"), "published_at": pd.Timestamp.now(tz="UTC")}
    kpis, scores = card.kpis.assign(**stamps), card.scores.assign(**stamps)
    merge_frame(table_path(lake, "gold", SCORECARD), kpis, SCORECARD_SCHEMA, SCORECARD_KEY)
    merge_frame(table_path(lake, "gold", SCORES), scores, SCORES_SCHEMA, SCORES_KEY)
    log.info("published the scorecard as of %s: %d KPI rows, %d scores", as_of.isoformat(), len(kpis), len(scores))
    return kpis, scores


def read_gold(lake: Path, name: str, time_column: str, since: datetime, until: datetime) -> pd.DataFrame | None:
    """One gold table's rows with `time_column` in [since, until), as pandas; None when the table does not exist."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        dataset = DeltaTable(str(table_path(lake, "gold", name))).to_pyarrow_dataset()
    except TableNotFoundError:
        log.info("gold/%s does not exist yet; the scorecard treats it as empty", name)
        return None
    column = pc.field(time_column)
    window = (column >= pa.scalar(since, _UTC)) & (column < pa.scalar(until.astimezone(timezone.utc), _UTC))
    return dataset.to_table(filter=window).to_pandas()


def read_sensors(lake: Path) -> pd.DataFrame | None:
    """The latest assignment of every registered sensor (feed, sensor_id, district_code, barrio_code), if any."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        frame = DeltaTable(str(table_path(lake, "reference", "sensors"))).to_pyarrow_table().to_pandas()
    except TableNotFoundError:
        return None
    if "registered_at" in frame.columns:
        frame = frame.sort_values("registered_at")
    frame = frame.drop_duplicates(["feed", "sensor_id"], keep="last")
    for column in ("district_code", "barrio_code"):
        frame[column] = frame[column].where(~frame[column].isin(NOT_AN_AREA), None)
    return frame[["feed", "sensor_id", "district_code", "barrio_code"]].reset_index(drop=True)


def boundary_version(*frames: pd.DataFrame | None) -> str:
    """The boundary versions the gold rows were located with ('a;b' when they span an import), or 'unknown'."""
    versions: set[str] = set()
    for frame in frames:
        if frame is not None and "boundary_version" in frame.columns:
            versions.update(str(v) for v in frame["boundary_version"].dropna().unique())
    return ";".join(sorted(versions)) or "unknown"


def publish_alerts(settings: Settings, bootstrap: str, rows: Sequence[dict[str, Any]],
                   topic: str = ALERTS_TOPIC) -> int:
    """Send alerts (rows of gold/alerts) to a Kafka topic, keyed by alert_id; returns how many Kafka acknowledged."""
    if not rows:
        return 0
    ensure_topic(settings, bootstrap, topic)
    client = kafka_clients.producer(settings, bootstrap)
    try:
        sent = [client.send(topic, key=str(row["alert_id"]).encode(), value=alert_message(row)) for row in rows]
        client.flush()
        for future in sent:
            future.get(timeout=60)
    finally:
        client.close()
    log.info("published %d alert(s) to %s", len(rows), topic)
    return len(rows)


def alert_message(row: dict[str, Any]) -> bytes:
    """One alert as UTF-8 JSON, times in ISO 8601 UTC."""
    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        return value

    return json.dumps({"type": "AirQualityAlert", **{k: plain(v) for k, v in row.items()}}, sort_keys=True).encode()


def ensure_topic(settings: Settings, bootstrap: str, topic: str) -> None:
    """Create the alerts topic if missing (the embedded broker does not auto-create topics)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(client_id="bigbilbao-admin", **kafka_clients.python_client_options(settings, bootstrap))
    try:
        if topic not in set(admin.list_topics()):
            admin.create_topics([NewTopic(topic, settings.kafka.partitions, settings.kafka.replication_factor)])
    except TopicAlreadyExistsError:
        log.debug("topic %s already exists", topic)
    finally:
        admin.close()
