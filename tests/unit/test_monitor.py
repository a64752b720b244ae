"""The operator's view without Spark: checkpoints as Spark writes them, real Delta tables written by delta-rs,
Kafka offsets as the client returns them; lag, rate, freshness, the alert limits, JSON and Prometheus."""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from bigbilbao import cli
from bigbilbao.config.monitor import MonitorSettings
from bigbilbao.config.settings import FeedSettings, Settings, load_settings, with_overrides
from bigbilbao.errors import PipelineError, SettingsError
from bigbilbao.monitor import checkpoints, collect, metrics, model, render
from bigbilbao.spatial import boundary_store

BATCH_MS = 1_796_000_000_000  # 2026-11-29T...Z, when batch 4 was planned


def write_checkpoint(folder: Path, batches: dict[int, list[str]], committed: list[int]) -> None:
    """A streaming checkpoint in Spark's format: offsets/<n> (version, metadata, a line per source), commits/<n>."""
    (folder / "offsets").mkdir(parents=True)
    (folder / "commits").mkdir()
    (folder / "metadata").write_text('{"id":"5f1c0f7e-0000-4000-8000-000000000000"}\n')
    for batch, sources in batches.items():
        meta = {"batchWatermarkMs": 0, "batchTimestampMs": BATCH_MS + batch * 2000,
                "conf": {"spark.sql.shuffle.partitions": "4"}}
        (folder / "offsets" / str(batch)).write_text("\n".join(["v1", json.dumps(meta), *sources]))
    for batch in committed:
        (folder / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}')


def settings_for(tmp_path: Path) -> Settings:
    settings = with_overrides(load_settings(None), lakehouse={"path": str(tmp_path / "lake")})
    feeds = (FeedSettings(name="traffic_flow", topic="t.traffic_flow"), FeedSettings(name="air_quality", topic="t.aq"))
    return dataclasses.replace(settings, feeds=feeds)


def round_checkpoint(settings: Settings) -> None:
    kafka_line = json.dumps({"t.traffic_flow": {"1": 40, "0": 35}, "t.aq": {"0": 12, "1": 10}})
    later_line = json.dumps({"t.traffic_flow": {"1": 50, "0": 40}, "t.aq": {"0": 12, "1": 10}})
    write_checkpoint(settings.checkpoint_path / "round", {3: [kafka_line], 4: [kafka_line], 5: [later_line]},
                     committed=[3, 4])  # batch 5 was planned, never committed: it does not count


def lakehouse(settings: Settings) -> None:
    """bronze/silver of traffic_flow, bronze only of air_quality, gold watermarks and a scorecard; real Delta."""
    lake = settings.lakehouse_path
    write_deltalake(str(lake / "bronze" / "traffic_flow"), pa.table({"offset": [1, 2, 3]}))
    write_deltalake(str(lake / "bronze" / "traffic_flow"), pa.table({"offset": [4, 5]}), mode="append")
    write_deltalake(str(lake / "silver" / "traffic_flow"), pa.table({"entity_id": ["a", "b"]}))
    write_deltalake(str(lake / "bronze" / "air_quality"), pa.table({"offset": [7]}))
    recorded = [datetime(2026, 12, 1, 9, tzinfo=timezone.utc), datetime(2026, 12, 1, 10, tzinfo=timezone.utc)]
    write_deltalake(str(lake / "gold" / "watermarks"),
                    pa.table({"feed": ["traffic_flow", "traffic_flow"], "recorded_at": pa.array(
                        [r.replace(tzinfo=None) for r in recorded], pa.timestamp("us"))}))
    write_deltalake(str(lake / "gold" / "scorecard"), pa.table({"kpi_id": ["x"]}))
    boundary_store.seed_demo_districts(lake)


KAFKA = {"t.traffic_flow": {0: (0, 40), 1: (5, 50)},  # 85 held; the checkpoint reached 35 and 40: 15 waiting
         "t.aq": {0: (0, 12), 1: (0, 10), 2: (3, 10)}}  # partition 2 is new to the query: all 7 wait


def test_the_last_committed_batch_counts_and_delta_sources_are_not_kafka_offsets(tmp_path: Path) -> None:
    root = tmp_path / "_checkpoints"
    write_checkpoint(root / "round", {0: [json.dumps({"t.a": {"0": 5}})], 1: [json.dumps({"t.a": {"0": 9}})]},
                     committed=[0])
    delta_line = json.dumps({"sourceVersion": 1, "reservoirId": "r", "reservoirVersion": 3, "index": -1,
                             "isStartingVersion": False})
    write_checkpoint(root / "silver" / "noise", {0: [delta_line]}, committed=[0])
    write_checkpoint(root / "gold" / "noise", {}, committed=[])
    queries = {q.name: q for q in checkpoints.read_queries(root)}
    assert sorted(queries) == ["gold/noise", "round", "silver/noise"]
    assert queries["round"].last_batch == 0
    assert queries["round"].committed_offsets == {"t.a": {0: 5}}
    assert queries["round"].started_at == datetime.fromtimestamp(BATCH_MS / 1000, tz=timezone.utc)
    assert queries["round"].duration_s is not None and queries["round"].duration_s >= 0
    assert queries["silver/noise"].committed_offsets == {}
    assert queries["gold/noise"].last_batch is None
    assert checkpoints.committed_offsets(tuple(queries.values())) == {"t.a": {0: 5}}


def test_lag_rate_and_freshness_per_feed(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    round_checkpoint(settings)
    lakehouse(settings)
    status = collect.collect(settings, KAFKA, "asked test")
    feeds = {f.feed: f for f in status.feeds}
    assert (feeds["traffic_flow"].kafka_end, feeds["traffic_flow"].lag) == (85, 15)
    assert (feeds["air_quality"].kafka_end, feeds["air_quality"].lag) == (29, 7)
    assert feeds["traffic_flow"].rows_last_minute == 5 and feeds["air_quality"].rows_last_minute == 1
    assert feeds["traffic_flow"].written_at["gold"] == datetime(2026, 12, 1, 10, tzinfo=timezone.utc)
    assert feeds["air_quality"].written_at["silver"] is None and feeds["air_quality"].written_at["gold"] is None
    assert status.age_s(feeds["traffic_flow"].written_at["bronze"]) < 60
    assert [q.last_batch for q in status.queries] == [4]
    assert status.scorecard_at is not None
    assert set(status.boundaries) == {"districts"}
    # defaults: lag under 50,000, but air_quality has messages waiting and no silver, and gold is days old
    assert status.breaches == (
        "traffic_flow: 15 messages wait and gold was last written "
        f"{(status.now - feeds['traffic_flow'].written_at['gold']).total_seconds():,.0f} s ago (> 300 s)",
        "air_quality: 7 messages wait and silver has no row of this feed yet",
        "air_quality: 7 messages wait and gold has no row of this feed yet")


def test_a_later_look_sees_no_recent_rows_and_stale_layers(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    round_checkpoint(settings)
    lakehouse(settings)
    later = datetime.now(timezone.utc) + timedelta(minutes=10)
    status = collect.collect(settings, KAFKA, "asked test", now=later)
    assert [f.rows_last_minute for f in status.feeds] == [0, 0]
    assert any(b.startswith("traffic_flow: 15 messages wait and bronze was last written") for b in status.breaches)


def test_limits_only_judge_feeds_with_waiting_messages() -> None:
    now = datetime(2026, 12, 5, 12, tzinfo=timezone.utc)
    old = {layer: now - timedelta(hours=5) for layer in model.LAYERS}
    quiet = model.FeedStatus("noise", "noise", kafka_end=100, lag=0, written_at=old)
    behind = model.FeedStatus("parking", "parking", kafka_end=900, lag=800, written_at=old)
    fresh = model.FeedStatus("crowd_flow", "crowd_flow", kafka_end=900, lag=800,
                             written_at={layer: now for layer in model.LAYERS})
    limits = MonitorSettings(max_lag_messages=500, max_bronze_age_s=None, max_silver_age_s=60, max_gold_age_s=None,
                             max_scorecard_age_s=600)
    found = model.breaches((quiet, behind, fresh), scorecard_age_s=601, now=now, limits=limits)
    assert found == ("parking: lag 800 messages > 500",
                     "parking: 800 messages wait and silver was last written 18,000 s ago (> 60 s)",
                     "crowd_flow: lag 800 messages > 500",
                     "the scorecard was published 601 s ago (> 600 s)")
    assert model.breaches((quiet,), None, now, MonitorSettings()) == ()
    unknown = model.FeedStatus("noise", "noise")
    assert model.breaches((unknown, unknown), None, now, MonitorSettings()) == (
        "Kafka could not be asked, so the lag of noise, noise is unknown",)


def test_json_and_text_show_the_same_figures(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    round_checkpoint(settings)
    lakehouse(settings)
    status = collect.collect(settings, KAFKA, "asked test")
    data = json.loads(json.dumps(model.as_json(status)))
    assert data["healthy"] is False and len(data["breaches"]) == 3
    assert [(f["feed"], f["lag"], f["kafka_messages"]) for f in data["feeds"]] == [
        ("traffic_flow", 15, 85), ("air_quality", 7, 29)]
    assert data["queries"][0]["name"] == "round" and data["queries"][0]["last_batch"] == 4
    assert data["feeds"][1]["written_at"]["silver"] is None
    shown = render.text(status)
    assert "query round: last batch 4" in shown and "NOT OK: 3 limit(s) broken" in shown
    assert any(line.split()[:3] == ["traffic_flow", "85", "15"] for line in shown.splitlines())


def test_prometheus_endpoint_serves_the_figures_and_reports_a_failed_collection(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    round_checkpoint(settings)
    lakehouse(settings)
    stop, port = metrics.serve_metrics(lambda: collect.collect(settings, KAFKA, "asked test"), 0)
    try:
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        stop()
    assert "bigbilbao_up 1.0" in page
    assert 'bigbilbao_kafka_lag_messages{feed="traffic_flow"} 15.0' in page
    assert 'bigbilbao_kafka_lag_messages{feed="air_quality"} 7.0' in page
    assert 'bigbilbao_last_batch{query="round"} 4.0' in page
    assert 'bigbilbao_table_age_seconds{feed="traffic_flow",layer="gold"}' in page
    assert "bigbilbao_limits_breached 3.0" in page

    stop, port = metrics.serve_metrics(lambda: collect.collect(settings, KAFKA, "asked test"), 0)
    try:
        with pytest.raises(PipelineError, match=f"Cannot serve metrics on 127.0.0.1:{port}"):
            metrics.serve_metrics(lambda: collect.collect(settings, KAFKA, "asked test"), port)
    finally:
        stop()

    def broken() -> model.Status:
        raise OSError("lakehouse unmounted")

    lines = list(metrics.StatusCollector(broken).collect())
    assert [family.name for family in lines] == ["bigbilbao_up"] and lines[0].samples[0].value == 0


def test_status_command_reports_a_stopped_embedded_broker_and_exits_1(tmp_path: Path, capsys,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIGBILBAO__LAKEHOUSE__PATH", str(tmp_path / "lake"))
    assert cli.main(["status", "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["kafka"].startswith("the embedded broker is not running")
    assert data["queries"] == [] and data["breaches"][0].startswith("Kafka could not be asked")


def test_monitor_settings_refuse_negative_limits_and_bad_ports() -> None:
    with pytest.raises(SettingsError, match="monitor.max_lag_messages, monitor.metrics_port"):
        MonitorSettings(max_lag_messages=-1, metrics_port=70000)
    assert load_settings(None).monitor.metrics_port is None
