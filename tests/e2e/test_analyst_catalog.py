"""Data catalogue (governance properties from settings, `bigbilbao catalog`) and KPI lineage back to Kafka."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bigbilbao.config.governance import TableGovernance
from bigbilbao.config.settings import load_settings, with_overrides
from bigbilbao.errors import SettingsError
from bigbilbao.tables import catalog, lineage, read
from tests.demo_lake import DemoLake, demo_lake, run_cli  # noqa: F401 - the shared session fixture


def test_governance_entries_merge_in_order() -> None:
    settings = load_settings(environ={})
    assert catalog.governance_for(settings, "silver", "crowd_flow")["classification"] == "personal-pseudonymised"
    assert catalog.governance_for(settings, "bronze", "crowd_flow")["classification"] == "personal"
    assert catalog.governance_for(settings, "bronze", "noise")["classification"] == "internal"
    assert catalog.governance_for(settings, "gold", "scorecard")["classification"] == "public"
    noise = catalog.governance_for(settings, "silver", "noise")
    assert noise["owner"] and noise["steward"] and noise["retention"] == "5 years" and "noise" in noise["description"]


def test_personal_feeds_are_never_classified_as_non_personal() -> None:
    from bigbilbao.contracts.loader import load_contracts

    settings = load_settings(environ={})
    personal = [name for name, contract in load_contracts().items() if contract.pseudonymised_fields()]
    assert personal, "some contracts declare personal fields"
    for feed in personal:
        assert catalog.governance_for(settings, "bronze", feed)["classification"] == "personal", feed
        assert catalog.governance_for(settings, "silver", feed)["classification"] == "personal-pseudonymised", feed
    assert catalog.governance_for(settings, "quality", "quarantine")["classification"] == "personal"


def test_unknown_classification_is_one_sentence(tmp_path: Path) -> None:
    config = tmp_path / "bigbilbao.yaml"
    config.write_text("feeds: [{name: noise}]\ncatalog: {tables: [{match: 'gold/*', classification: secret}]}\n")
    with pytest.raises(SettingsError, match="classification 'secret'; use one of public, internal"):
        load_settings(config, environ={})


@pytest.mark.integration
def test_pipeline_leaves_the_declared_properties_on_every_table(demo_lake: DemoLake) -> None:
    settings = load_settings(demo_lake.config, environ={})
    proc = run_cli("catalog", "--format", "json", "--config", str(demo_lake.config), timeout=120)
    assert proc.returncode == 0, proc.stderr
    listed = {entry["table"]: entry for entry in json.loads(proc.stdout)}
    tables = read.list_tables(demo_lake.lakehouse)
    assert sorted(listed) == sorted(f"{layer}/{name}" for layer, name in tables)
    for layer, name in tables:
        entry, declared = listed[f"{layer}/{name}"], catalog.governance_for(settings, layer, name)
        assert {key: entry[key] for key in catalog.FIELDS} == declared, f"{layer}/{name}"
        assert entry["rows"] == read.read_table(demo_lake.lakehouse, layer, name).num_rows
        assert [c["name"] for c in entry["schema"]] == \
            read.open_table(demo_lake.lakehouse, layer, name).schema().to_arrow().names
        assert entry["last_commit"].endswith("Z")
    assert read.open_table(demo_lake.lakehouse, "gold", "scorecard").metadata().description == \
        listed["gold/scorecard"]["description"]


@pytest.mark.integration
def test_pass_rate_matches_the_quarantine(demo_lake: DemoLake) -> None:
    lake = demo_lake.lakehouse
    quarantine = read.read_pandas(lake, "quality", "quarantine", ["feed"])["feed"].value_counts()
    rates = catalog.dq_pass_rates(lake)
    assert set(rates) == {"traffic_flow", "incidents", "air_quality"}
    for feed, (rate, _when) in rates.items():
        bronze = read.read_table(lake, "bronze", feed, ["offset"]).num_rows  # the demo's one micro-batch per feed
        assert rate == pytest.approx(1 - quarantine.get(feed, 0) / bronze), feed
    assert min(rate for rate, _ in rates.values()) < 1, "the demo's dirty records lower a pass rate"


@pytest.mark.integration
def test_settings_change_rewrites_properties_once(demo_lake: DemoLake, tmp_path: Path) -> None:
    lake = tmp_path / "lakehouse"
    shutil.copytree(demo_lake.lakehouse, lake, ignore=shutil.ignore_patterns("_broker", "_checkpoints"))
    settings = with_overrides(load_settings(demo_lake.config, environ={}), lakehouse={"path": str(lake)})
    assert catalog.apply_properties(lake, settings) == 0, "the pipeline already applied them"
    entries = (*settings.catalog.tables, TableGovernance(match="gold/hourly", owner="Mobility unit"))
    changed = with_overrides(settings, catalog={"tables": entries})
    before = read.last_commit(lake, "gold", "hourly")
    assert catalog.apply_properties(lake, changed) == 1
    entry = {e.table: e for e in catalog.describe(lake)}["gold/hourly"]
    assert entry.governance["owner"] == "Mobility unit"
    assert (entry.version, entry.last_commit) == before, "a property change is not fresh data"


@pytest.mark.integration
def test_kpi_value_traces_back_to_kafka_messages(demo_lake: DemoLake) -> None:
    lake = demo_lake.lakehouse
    trace = lineage.trace(lake, "traffic_intensity", "Bilbao", "month")
    assert len(trace.gold) == trace.row["n"] > 0, "one gold row per sensor-hour the KPI counted"
    assert trace.gold["mean"].mean() == pytest.approx(trace.row["value"]), "the KPI is the mean of its sensor-hours"
    assert int(trace.gold["n"].sum()) == len(trace.silver), "every reading of those hours, once"
    keys = set(zip(trace.silver["topic"], trace.silver["partition"], trace.silver["offset"]))
    assert set(zip(trace.messages["topic"], trace.messages["partition"], trace.messages["offset"])) == keys
    assert (trace.messages["entity_id"].isin(trace.gold["sensor_id"])).all()
    with pytest.raises(lineage.LineageError, match="every feed's data quality"):
        lineage.trace(lake, "quarantine_rate", "Bilbao", "month")
