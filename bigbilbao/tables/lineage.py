"""Lineage of a KPI value: scorecard row -> gold rows it was computed from -> silver rows -> Kafka messages.

Gold hourly rows key a sensor-hour by silver's `entity_id` (sensor_id) and the UTC hour of `event_time`;
gold events key an event by `entity_id` (event_id) and `event_time`. Silver rows carry the Kafka topic,
partition and offset of their message, and bronze holds the message itself under the same three.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bigbilbao.errors import LineageError
from bigbilbao.scorecard import view as scorecard_view
from bigbilbao.scorecard.catalogue import load_catalogue
from bigbilbao.scorecard.kpi_model import ALL_FEEDS, Kpi
from bigbilbao.tables import read

log = logging.getLogger(__name__)

KAFKA_KEY = ["topic", "partition", "offset"]



@dataclass(frozen=True)
class Trace:
    """One KPI value and everything it was computed from."""

    kpi: Kpi
    row: pd.Series  # the gold/scorecard row
    gold: pd.DataFrame  # gold/hourly or gold/events rows inside the period and area
    silver: pd.DataFrame  # the silver rows behind them, with topic/partition/offset
    messages: pd.DataFrame  # the bronze rows (raw Kafka messages) under the same topic/partition/offset


def trace(lakehouse: Path, kpi_id: str, area: str, period: str, as_of: read.AsOf = None) -> Trace:
    """Trace one KPI of one area (name or code) in the latest period of a kind back to its Kafka messages."""
    kpi = load_catalogue().kpi(kpi_id)
    if kpi.source.feed == ALL_FEEDS:
        msg = f"KPI {kpi_id} measures every feed's data quality; trace it through gold/quality, not single messages."
        raise LineageError(msg)
    rows = scorecard_view.scorecard(lakehouse, area=area, period=period, as_of=as_of)
    rows = rows[rows["kpi_id"] == kpi_id]
    if rows.empty:
        msg = f"The scorecard has no {kpi_id} row for {area} ({period}); pick a KPI and area it publishes."
        raise LineageError(msg)
    row = rows.iloc[0]
    gold = gold_inputs(lakehouse, kpi, row)
    silver = silver_rows(lakehouse, kpi, gold)
    return Trace(kpi, row, gold, silver, kafka_messages(lakehouse, kpi.source.feed, silver))


def gold_inputs(lakehouse: Path, kpi: Kpi, row: pd.Series) -> pd.DataFrame:
    """The gold rows of the KPI's feed and fields inside the row's period and area."""
    event = kpi.aggregation.window == "event"
    table, time_column = ("events", "event_time") if event else ("hourly", "hour_start")
    gold = read.read_pandas(lakehouse, "gold", table)
    keep = (gold["feed"] == kpi.source.feed) & gold["field"].isin(kpi.source.fields)
    keep &= (gold[time_column] >= row["period_start"]) & (gold[time_column] < row["period_end"])
    if row["area_level"] in ("district", "barrio"):
        keep &= gold[f"{row['area_level']}_code"] == row["area_code"]
    return gold[keep].reset_index(drop=True)


def silver_rows(lakehouse: Path, kpi: Kpi, gold: pd.DataFrame) -> pd.DataFrame:
    """The silver rows aggregated into the gold rows (same entity, same hour or same event time)."""
    feed = kpi.source.feed
    silver = read.read_pandas(lakehouse, "silver", feed)
    if gold.empty:
        return silver.iloc[0:0]
    if kpi.aggregation.window == "event":
        keys = gold[["event_id", "event_time"]].drop_duplicates().rename(columns={"event_id": "entity_id"})
        return silver.merge(keys, on=["entity_id", "event_time"]).reset_index(drop=True)
    hour = silver["event_time"].dt.floor("h")
    keys = gold[["sensor_id", "hour_start"]].drop_duplicates().rename(columns={"sensor_id": "entity_id"})
    joined = silver.assign(hour_start=hour).merge(keys, on=["entity_id", "hour_start"])
    return joined.drop(columns="hour_start").reset_index(drop=True)


def kafka_messages(lakehouse: Path, feed: str, silver: pd.DataFrame) -> pd.DataFrame:
    """The bronze rows (raw payload as received) of the silver rows' Kafka topic/partition/offset."""
    bronze = read.read_pandas(lakehouse, "bronze", feed, [*KAFKA_KEY, "kafka_timestamp", "payload", "entity_id"])
    return bronze.merge(silver[KAFKA_KEY].drop_duplicates(), on=KAFKA_KEY).sort_values(KAFKA_KEY).reset_index(drop=True)

