"""Spark spatial enrichment and the boundary/sensor reference tables, against the exact reference rule (small data)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely
from deltalake import DeltaTable
from pyspark.sql import functions as F
from pyspark.sql import types as T
from shapely.geometry import shape

from bigbilbao.columns.enrich import OUTPUT_COLUMNS, CityIndex, current_index, enrich
from bigbilbao.errors import BoundaryError
from bigbilbao.spatial import boundary_store
from bigbilbao.spatial.index import assign_geometries, load_demo_districts, reference_assign
from bigbilbao.spatial.sensor_registry import load_sensors, register_sensors
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.integration

DATA = SHARED_DATA
BOUNDARIES = DATA / "bilbao_boundaries"
DISTRICTS = BOUNDARIES / "bilbao_distritos_from_eustat_barrios_epsg4326.geojson"
BARRIOS = BOUNDARIES / "bilbao_barrios_eustat_epsg4326.geojson"
EUSTAT_SHP = BOUNDARIES / "eustat_barrios_euskadi_shp" / "BARRIOS_EUSTAT_5000_ETRS89.shp"
SECTIONS = DATA / "bilbao_traffic_noise" / "traffic_snapshots" / "bilbao_trafico_secciones_20260127T1500.geojson"
DEMO_FILE = Path(__file__).resolve().parents[2] / "bigbilbao" / "resources" / "demo_districts.geojson"
SCHEMA = T.StructType([T.StructField("id", T.LongType()), T.StructField("lon", T.DoubleType()),
                       T.StructField("lat", T.DoubleType())])


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test data {path.name} is not present beside the repository")
    return path


@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lakehouse holding the official districts and barrios."""
    lake = tmp_path_factory.mktemp("enrich_lake")
    boundary_store.import_layer(lake, _need(DISTRICTS), "districts")
    boundary_store.import_layer(lake, _need(BARRIOS), "barrios")
    return lake


@pytest.fixture(scope="module")
def city(lakehouse: Path) -> CityIndex:
    return CityIndex.from_lakehouse(lakehouse)


def _labels(layer, positions: np.ndarray, field: str) -> np.ndarray:
    values = layer.codes if field == "code" else layer.names
    return np.array([*values, "outside"], dtype=object)[positions]


def _tricky_points(city: CityIndex, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Random points over and around the city plus every vertex, edge points and their float neighbours."""
    rng = np.random.default_rng(20260212)
    lon0, lat0, lon1, lat1 = city.barrios.layer.bounds
    random = np.column_stack([rng.uniform(lon0 - 0.01, lon1 + 0.01, count),
                              rng.uniform(lat0 - 0.01, lat1 + 0.01, count)])
    geometries = np.concatenate([city.barrios.layer.geometries, city.districts.layer.geometries])
    vertices = np.unique(shapely.get_coordinates(geometries), axis=0)
    rings = [shapely.get_coordinates(r) for r in shapely.get_rings(shapely.get_parts(geometries))]
    edges = np.concatenate([ring[:-1] + 0.5 * (ring[1:] - ring[:-1]) for ring in rings])
    points = np.concatenate([random, vertices, np.nextafter(vertices, np.inf), np.nextafter(vertices, -np.inf), edges])
    return points[:, 0], points[:, 1]


def test_enrich_equals_the_reference_rule_and_keeps_every_row(spark, city):
    lon, lat = _tricky_points(city, 20_000)  # plus ~18,000 vertices, their float neighbours and edge points
    count = lon.size
    ids = np.arange(count + 4)
    lon = np.concatenate([lon, [np.nan, np.inf, 0.0, 0.0]])
    lat = np.concatenate([lat, [43.26, 43.26, 0.0, 0.0]])
    df = spark.createDataFrame(pa.table({"id": ids, "lon": lon, "lat": lat}))
    df = df.union(spark.createDataFrame([(-1, None, 43.26)], SCHEMA)).withColumn("district_code", F.lit("stale"))
    bc = spark.sparkContext.broadcast(city)
    out = enrich(df, bc).toPandas().sort_values("id").reset_index(drop=True)

    assert list(out.columns) == ["id", "lon", "lat", *OUTPUT_COLUMNS] and len(out) == count + 5
    assert out["id"].tolist() == [-1, *ids.tolist()]  # nothing dropped, nothing duplicated
    got = out.iloc[1 : count + 1]
    for name, prefix in (("districts", "district"), ("barrios", "barrio")):
        layer = getattr(city, name).layer
        expected = reference_assign(layer, lon[:count], lat[:count])
        for field in ("code", "name"):
            np.testing.assert_array_equal(got[f"{prefix}_{field}"].to_numpy(), _labels(layer, expected, field))
    assert (got["barrio_code"] == "outside").mean() > 0.2 and got["barrio_code"].nunique() == 47
    assert out.loc[0, "district_code"] == "unlocated" and out.loc[count + 1, "barrio_name"] == "unlocated"  # null, NaN
    assert (out.loc[count + 2, "district_code"], out.loc[count + 3, "barrio_code"]) == ("unlocated", "outside")  # inf
    assert set(out["boundary_version"]) == {city.version}
    assert city.version == (f"districts:{city.districts.layer.version},barrios:{city.barrios.layer.version}")


def test_enrich_sends_only_border_cells_to_python(spark, city):
    df = spark.createDataFrame([(1, -2.93, 43.26)], SCHEMA)
    plan = enrich(df, spark.sparkContext.broadcast(city))._jdf.queryExecution().executedPlan().toString()
    assert plan.count("BroadcastHashJoin") == 2 and plan.count("MapInArrow") == 1  # one grid join per branch
    with pytest.raises(BoundaryError, match="coordinate columns"):
        enrich(df.withColumnRenamed("lat", "latitude"), spark.sparkContext.broadcast(city))


def test_layers_on_different_grids_each_get_their_own_join(spark, city):
    mixed = CityIndex.from_layers(load_demo_districts(), city.barrios.layer)  # the demo outline differs
    assert mixed.districts.grid_arrays().origin_lon != mixed.barrios.grid_arrays().origin_lon
    lon, lat = _tricky_points(city, 5_000)
    enriched = enrich(spark.createDataFrame(pa.table({"id": np.arange(lon.size), "lon": lon, "lat": lat})),
                      spark.sparkContext.broadcast(mixed))
    assert enriched._jdf.queryExecution().executedPlan().toString().count("BroadcastHashJoin") == 4
    out = enriched.toPandas().sort_values("id")
    for name, prefix in (("districts", "district"), ("barrios", "barrio")):
        layer = getattr(mixed, name).layer
        expected = _labels(layer, reference_assign(layer, lon, lat), "code")
        np.testing.assert_array_equal(out[f"{prefix}_code"].to_numpy(), expected)


def test_stream_uses_a_new_boundary_version_at_the_next_micro_batch(spark, tmp_path):
    _need(DISTRICTS)
    lake, source = tmp_path / "lake", tmp_path / "points"
    source.mkdir(parents=True)
    for batch in range(2):  # one point in Uribarri/Ibaiondo, one in Barakaldo (outside Bilbao)
        points = {"id": [2 * batch, 2 * batch + 1], "lon": [-2.9235, -2.99], "lat": [43.2625, 43.2962]}
        pd.DataFrame(points).to_parquet(source / f"{batch}.parquet")
    seen = []

    def per_batch(batch_df, batch_id):
        index_bc = current_index(spark, lake)  # demo districts are seeded on first use
        rows = enrich(batch_df, index_bc).select("id", "district_code", "boundary_version").collect()
        seen.append(sorted(tuple(row) for row in rows))
        if batch_id == 0:
            boundary_store.import_layer(lake, DISTRICTS, "districts")  # an import while the stream runs

    stream = spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 1).parquet(str(source))
    query = (stream.writeStream.foreachBatch(per_batch).trigger(availableNow=True)
             .option("checkpointLocation", str(tmp_path / "checkpoint")).start())
    query.awaitTermination(120)
    demo, official = load_demo_districts(), boundary_store.load_current(lake, "districts")
    first, second = f"districts:{demo.version}", f"districts:{official.version}"
    assert seen == [[(0, "2", first), (1, "outside", first)],  # every row records the version it used
                    [(2, "5", second), (3, "outside", second)]]  # the point moves from Uribarri to Ibaiondo
    stored = DeltaTable(str(boundary_store.boundaries_path(lake))).to_pandas()
    assert stored.groupby("version")["approximate"].all().to_dict() == {demo.version: True, official.version: False}


def test_boundary_table_history_noop_rollback_and_time_travel(tmp_path):
    lake = tmp_path / "lake"
    assert boundary_store.seed_demo_districts(lake) == load_demo_districts().version
    assert boundary_store.seed_demo_districts(lake) is None
    official = boundary_store.import_layer(lake, _need(DISTRICTS), "districts")
    commits = boundary_store.table_version(lake)
    assert boundary_store.import_layer(lake, DISTRICTS, "districts") == official  # same version: no-op
    assert boundary_store.table_version(lake) == commits
    before_rollback = datetime.now(timezone.utc)
    assert boundary_store.seed_demo_districts(lake) is None
    demo = boundary_store.import_layer(lake, DEMO_FILE, "districts")
    assert boundary_store.current_versions(lake) == {"districts": demo}  # an older version again is a rollback
    assert boundary_store.load_current(lake, "districts", as_of=before_rollback).version == official
    with pytest.raises(BoundaryError, match="no districts boundaries in the lakehouse at"):
        boundary_store.load_current(lake, "districts", as_of=before_rollback - timedelta(days=1))
    with pytest.raises(BoundaryError, match="no barrios boundaries"):
        boundary_store.load_current(lake, "barrios")
    rows = DeltaTable(str(boundary_store.boundaries_path(lake))).to_pyarrow_table()
    assert rows.schema.names == boundary_store.SCHEMA.names and rows.num_rows == 24
    assert str(rows.schema.field("valid_from").type) == "timestamp[us, tz=UTC]"


def test_eustat_shapefile_zip_imports_as_barrios_with_the_preset(tmp_path, city):
    shp = _need(EUSTAT_SHP)
    archive = tmp_path / "eustat.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for sidecar in shp.parent.iterdir():
            handle.write(sidecar, f"barrios/{sidecar.name}")
    version = boundary_store.import_layer(tmp_path / "lake", str(archive), "barrios")
    layer = boundary_store.load_current(tmp_path / "lake", "barrios")
    assert layer.version == version and layer.codes == city.barrios.layer.codes
    assert layer.parents == city.barrios.layer.parents and layer.names == city.barrios.layer.names
    with pytest.raises(BoundaryError, match="unknown boundary layer"):
        boundary_store.import_layer(tmp_path / "lake", shp, "municipios")
    with pytest.raises(BoundaryError, match="pass --id-field and --name-field"):
        boundary_store.import_layer(tmp_path / "lake", shp, "districts")


def test_reference_tables_open_in_duckdb_without_spark(lakehouse, city):
    register_sensors(lakehouse, "noise", {"m1": "POINT (-2.9235 43.2625)"}, city=city)
    script = ("import sys, json; from pathlib import Path; from bigbilbao.tables.read import duckdb_connection; "
              "con = duckdb_connection(Path(sys.argv[1])); "
              "print(json.dumps([con.execute('SELECT layer, count(*), any_value(typeof(valid_from)) "
              "FROM reference_boundaries GROUP BY layer ORDER BY layer').fetchall(), "
              "con.execute('SELECT district_name, barrio_code FROM reference_sensors').fetchall()]))")
    done = subprocess.run([sys.executable, "-c", script, str(lakehouse)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    counts, sensors = json.loads(done.stdout)
    assert [row[:2] for row in counts] == [["barrios", 46], ["districts", 8]]
    assert counts[0][2] == "TIMESTAMP WITH TIME ZONE"
    assert sensors == [["Ibaiondo", city.barrios.layer.codes[city.barrios.assign([-2.9235], [43.2625])[0]]]]


def test_sensor_registry_for_the_real_traffic_sections(tmp_path, city):
    features = json.loads(_need(SECTIONS).read_text("utf-8"))["features"]
    sections = {f["properties"]["CodigoSeccion"]: f["geometry"] for f in features}
    lake = tmp_path / "lake"
    assert len(sections) == 81
    assert register_sensors(lake, "traffic_flow", sections, city=city) == 81
    assert register_sensors(lake, "traffic_flow", sections, city=city) == 0  # once per sensor and version
    assert register_sensors(lake, "traffic_flow", sections, "largest_overlap", city=city) == 81
    latest = load_sensors(lake, "traffic_flow").to_pandas().set_index("sensor_id").loc[list(sections)]
    assert len(latest) == 81 and set(latest["rule"]) == {"largest_overlap"}
    geometries = list(sections.values())
    for name, prefix in (("districts", "district"), ("barrios", "barrio")):
        index = getattr(city, name)
        expected = assign_geometries(index, geometries, "largest_overlap")
        assert latest[f"{prefix}_code"].tolist() == [index.layer.codes[i] for i in expected]
    shared = [shapely.area(shapely.intersection(city.districts.layer.geometries, shapely.make_valid(shape(g))))
              for g in geometries]
    straddling = [n for n, areas in enumerate(shared) if (areas > 0).sum() > 1]
    assert len(straddling) == 16
    by_point = assign_geometries(city.districts, geometries)
    every = load_sensors(lake).to_pandas()
    assert len(every) == 81 and set(every["boundary_version"]) == {city.version}
    assert all(latest["district_code"].iloc[n] == city.districts.layer.codes[int(np.argmax(shared[n]))]
               for n in straddling)
    assert (np.array([city.districts.layer.codes[i] for i in by_point]) != latest["district_code"].to_numpy()).any()
