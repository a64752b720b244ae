"""Readers without a JVM: every table of a demo lakehouse read by delta-rs equals Spark's read, with time travel."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from bigbilbao.errors import BigBilbaoError, PipelineError
from bigbilbao.scorecard import view as scorecard_view
from bigbilbao.tables import read
from tests.demo_lake import DemoLake, demo_lake  # noqa: F401 - the shared session fixture

pytestmark = pytest.mark.integration


def canonical(table: pa.Table) -> list[str]:
    """Rows as sorted reprs, timestamps as UTC epoch microseconds, so both engines' outputs compare exactly."""
    columns = []
    for name in table.column_names:
        column = table[name]
        if pa.types.is_timestamp(column.type):
            column = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())
        columns.append(column.to_pylist())
    return sorted(repr(row) for row in zip(*columns)) if columns else []


def spark_table(spark, path: Path, version: int | None = None) -> pa.Table:
    """The same table read by Spark (optionally at a version), as Arrow."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(str(path)).toArrow()


def test_every_table_equals_spark(demo_lake: DemoLake, spark) -> None:
    tables = read.list_tables(demo_lake.lakehouse)
    layers = {layer for layer, _ in tables}
    assert {"bronze", "silver", "quality", "gold", "reference"} <= layers
    assert ("gold", "scorecard") in tables and ("gold", "scorecard_scores") in tables
    for layer, name in tables:
        ours = read.read_table(demo_lake.lakehouse, layer, name)
        theirs = spark_table(spark, read.table_path(demo_lake.lakehouse, layer, name))
        assert ours.column_names == theirs.column_names, f"{layer}/{name}"
        assert ours.num_rows == theirs.num_rows, f"{layer}/{name}"
        assert canonical(ours) == canonical(theirs), f"{layer}/{name} differs between delta-rs and Spark"


def test_time_travel_by_version_equals_spark(demo_lake: DemoLake, spark) -> None:
    checked = 0
    for layer, name in read.list_tables(demo_lake.lakehouse):
        latest = read.open_table(demo_lake.lakehouse, layer, name).version()
        for version in sorted({0, latest // 2}):
            ours = read.read_table(demo_lake.lakehouse, layer, name, as_of=version)
            theirs = spark_table(spark, read.table_path(demo_lake.lakehouse, layer, name), version)
            assert canonical(ours) == canonical(theirs), f"{layer}/{name} at version {version}"
            checked += 1
    assert checked > len(read.list_tables(demo_lake.lakehouse))


def test_time_travel_by_timestamp_equals_spark(demo_lake: DemoLake, spark) -> None:
    path = read.table_path(demo_lake.lakehouse, "gold", "hourly")
    commits = sorted((path / "_delta_log").glob("*.json"))
    assert len(commits) >= 3, "gold/hourly should have several commits"
    for commit in commits[1:3]:
        version = int(commit.stem)
        millis = int(commit.stat().st_mtime * 1000)  # both engines date a commit by its file's time
        moment = datetime.fromtimestamp((millis + 0.5) / 1000, tz=timezone.utc)
        ours = read.read_table(demo_lake.lakehouse, "gold", "hourly", as_of=moment)
        theirs = spark.read.format("delta").option("timestampAsOf", moment.isoformat()).load(str(path)).toArrow()
        assert canonical(ours) == canonical(theirs), f"as of {moment.isoformat()}"
        assert canonical(ours) == canonical(read.read_table(demo_lake.lakehouse, "gold", "hourly", version=version))
        text = moment.isoformat().replace("+00:00", "Z")
        assert canonical(read.read_table(demo_lake.lakehouse, "gold", "hourly", as_of=text)) == canonical(ours)
    with pytest.raises(PipelineError, match="has no version at or before 2000"):
        read.read_table(demo_lake.lakehouse, "gold", "hourly", as_of=datetime(2000, 1, 1, tzinfo=timezone.utc))


def test_parse_as_of() -> None:
    assert read.parse_as_of("12") == 12
    assert read.parse_as_of("2025-06-01T12:00Z") == datetime(2025, 6, 1, 12, tzinfo=timezone.utc)
    assert read.parse_as_of("2025-06-01 12:00") == datetime(2025, 6, 1, 12, tzinfo=timezone.utc)
    with pytest.raises(PipelineError, match="neither a table version nor an ISO 8601 time"):
        read.parse_as_of("yesterday")


def test_missing_table_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="No Delta table at .*run the pipeline first"):
        read.read_table(tmp_path, "silver", "noise")


def test_scorecard_for_an_area_and_period_equals_spark(demo_lake: DemoLake, spark) -> None:
    lake = demo_lake.lakehouse
    ours = scorecard_view.scorecard(lake, area="deusto", period="day")
    assert set(ours["area_code"]) == {"1"} and set(ours["area_name"]) == {"Deusto"}
    spark.read.format("delta").load(str(read.table_path(lake, "gold", "scorecard"))).createOrReplaceTempView("card")
    theirs = spark.sql("""
        SELECT * FROM card WHERE area_code = '1' AND period = 'day'
          AND as_of = (SELECT max(as_of) FROM card)
          AND period_start = (SELECT max(period_start) FROM card
                              WHERE period = 'day' AND as_of = (SELECT max(as_of) FROM card))""").toArrow()
    ours_arrow = pa.Table.from_pandas(ours.drop(columns="area_name"), preserve_index=False).select(theirs.column_names)
    same_types = pa.schema([f if pa.types.is_timestamp(f.type) else theirs.schema.field(f.name)
                            for f in ours_arrow.schema])
    assert canonical(ours_arrow.cast(same_types)) == canonical(theirs)  # pandas turns nullable ints into floats
    assert len(ours) > 0
    with pytest.raises(BigBilbaoError, match="Unknown area 'Atlantis'"):
        scorecard_view.scorecard(lake, area="Atlantis")


def test_scorecard_time_travel_returns_the_earlier_publication(demo_lake: DemoLake, tmp_path: Path) -> None:
    from bigbilbao.config.settings import load_settings, with_overrides
    from bigbilbao.stages import publish

    lake = tmp_path / "lakehouse"
    shutil.copytree(demo_lake.lakehouse, lake, ignore=shutil.ignore_patterns("_broker", "_checkpoints"))
    before = read.open_table(lake, "gold", "scorecard").version()
    first = scorecard_view.scorecard(lake, period="day")
    settings = with_overrides(load_settings(demo_lake.config, environ={}), lakehouse={"path": str(lake)})
    later = first["as_of"].max().to_pydatetime() + timedelta(hours=2)
    publish.publish_scorecard(None, settings, as_of=later)
    assert scorecard_view.scorecard(lake, period="day")["as_of"].max().to_pydatetime() == later
    old = scorecard_view.scorecard(lake, period="day", as_of=before)
    assert canonical(pa.Table.from_pandas(old, preserve_index=False)) == \
        canonical(pa.Table.from_pandas(first, preserve_index=False))
    scores = scorecard_view.scores(lake, area="Abando", period="month", as_of=str(before))
    assert set(scores["perspective"]) >= {"overall"} and set(scores["status"]) <= {"green", "amber", "red", "no_data"}
