"""`bigbilbao boundaries import|list` with the real EUSTAT layers: GeoJSON, the EPSG:25830 Shapefile, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bigbilbao.cli.app import main
from bigbilbao.spatial import boundary_store
from tests.conftest import ROOT, SHARED_DATA

BOUNDARIES = SHARED_DATA / "bilbao_boundaries"
DISTRICTS = BOUNDARIES / "bilbao_distritos_from_eustat_barrios_epsg4326.geojson"
BARRIOS = BOUNDARIES / "bilbao_barrios_eustat_epsg4326.geojson"
EUSTAT_SHP = BOUNDARIES / "eustat_barrios_euskadi_shp" / "BARRIOS_EUSTAT_5000_ETRS89.shp"


@pytest.fixture(autouse=True)
def _shared_data() -> None:
    if not BOUNDARIES.is_dir():
        pytest.skip("../shared/data/bilbao_boundaries is not beside the checkout")


def config(tmp_path: Path, extra: str = "") -> str:
    path = tmp_path / "bigbilbao.yaml"
    path.write_text(f"lakehouse: {{path: '{tmp_path / 'lake'}'}}\nfeeds: [{{name: air_quality}}]\n{extra}")
    return str(path)


def run(capsys: pytest.CaptureFixture[str], cfg: str, *args: str) -> tuple[int, str, str]:
    code = main(["boundaries", *args, "--config", cfg])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_geojson_and_the_utm_shapefile_then_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config(tmp_path)
    code, out, err = run(capsys, cfg, "import", str(DISTRICTS))
    assert code == 0, err
    districts = json.loads(out)
    assert districts["layer"] == "districts" and districts["features"] == 8 and districts["imported"]
    code, out, err = run(capsys, cfg, "import", str(EUSTAT_SHP), "--layer", "barrios")  # EPSG:25830, all Euskadi
    assert code == 0, err
    barrios = json.loads(out)
    assert (barrios["layer"], barrios["features"], barrios["approximate"]) == ("barrios", 46, False)
    stored = boundary_store.load_current(tmp_path / "lake", "barrios")
    assert stored.codes[:3] == ("101", "102", "103") and stored.parents[0] == "1" and stored.names[0] == "San Ignacio"
    lon0, lat0, lon1, lat1 = stored.bounds
    assert -2.99 < lon0 < lon1 < -2.87 and 43.21 < lat0 < lat1 < 43.30  # reprojected to lon/lat
    code, out, _ = run(capsys, cfg, "import", str(DISTRICTS), "--layer", "districts")
    assert json.loads(out)["imported"] is False  # the current version again: nothing appended
    code, out, _ = run(capsys, cfg, "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["layer", "version", "valid_from"]
    assert [line.split()[:2] for line in lines[1:]] == [["districts", districts["version"]],
                                                         ["barrios", barrios["version"]]]
    assert all(line.split()[4:6] == ["no", "*"] for line in lines[1:])


def test_property_names_from_settings_or_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = json.loads(DISTRICTS.read_text("utf-8"))
    for feature in document["features"]:
        props = feature["properties"]
        feature["properties"] = {"CODDIS": props["district_code"], "NOMDIS": props["district_name"]}
    renamed = tmp_path / "distritos.geojson"
    renamed.write_text(json.dumps(document), encoding="utf-8")
    code, _, err = run(capsys, config(tmp_path), "import", str(renamed), "--layer", "districts")
    assert code == 2 and "pass --id-field and --name-field" in err
    settings = "boundaries: {districts: {id_field: CODDIS, name_field: NOMDIS}}\n"
    code, out, err = run(capsys, config(tmp_path, settings), "import", str(renamed))  # layer from the settings
    assert code == 0, err
    official = boundary_store.load_current(tmp_path / "lake", "districts")
    assert json.loads(out)["features"] == 8 and official.names[4] == "Ibaiondo"
    document["features"][0]["properties"]["NOMDIS"] = "Deustu"
    renamed.write_text(json.dumps(document), encoding="utf-8")
    code, out, err = run(capsys, config(tmp_path), "import", str(renamed), "--layer", "districts",
                         "--id-field", "CODDIS", "--name-field", "NOMDIS")
    assert code == 0 and json.loads(out)["imported"], err
    assert boundary_store.load_current(tmp_path / "lake", "districts").names[0] == "Deustu"


def test_errors_are_one_sentence_naming_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config(tmp_path)
    document = json.loads(DISTRICTS.read_text("utf-8"))
    flat = [[-2.9375, 43.25], [-2.9, 43.25], [-2.875, 43.25], [-2.9375, 43.25]]  # a ring with no area
    document["features"][2]["geometry"] = {"type": "Polygon", "coordinates": [flat]}
    broken = tmp_path / "broken.geojson"
    broken.write_text(json.dumps(document), encoding="utf-8")
    cases = [
        (["import", str(tmp_path / "missing.geojson")], "missing.geojson' does not exist"),
        (["import", str(EUSTAT_SHP), "--crs", "EPSG:4326"], "so that CRS is wrong"),  # UTM metres read as degrees
        (["import", str(EUSTAT_SHP), "--crs", "EPSG:999999"], "'EPSG:999999' is not one pyproj knows"),
        (["import", str(broken)], "feature #2 (district_code=3, district_name='Otxarkoaga-Txurdinaga') has no "
                                  "polygonal area"),
        (["import", str(BARRIOS), "--layer", "barrios", "--id-field", "CODBAR"], "has no property 'CODBAR'"),
    ]
    for args, expected in cases:
        code, out, err = run(capsys, cfg, *args)
        assert code == 2 and out == "" and expected in err, err
        error = [line for line in err.splitlines() if line.startswith("bigbilbao: error: ")]
        assert len(error) == 1 and expected in error[0] and "Traceback" not in err
    assert boundary_store.history(tmp_path / "lake") == []  # nothing half-imported


def test_list_marks_the_approximate_demo_districts_and_a_new_import_as_current(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config(tmp_path)
    assert run(capsys, cfg, "list")[1].startswith("no boundaries stored yet")
    demo = boundary_store.seed_demo_districts(tmp_path / "lake")
    assert run(capsys, cfg, "import", str(DISTRICTS))[0] == 0
    rows = [line.split() for line in run(capsys, cfg, "list")[1].splitlines()[1:]]
    assert [row[:2] for row in rows][0] == ["districts", demo]
    assert [(row[4], row[5] if len(row) > 6 else "") for row in rows] == [("APPROXIMATE", ""), ("no", "*")]
    history = boundary_store.history(tmp_path / "lake")
    assert [entry["current"] for entry in history] == [False, True]
    assert np.diff([entry["valid_from"].timestamp() for entry in history])[0] > 0


def test_boundaries_command_as_a_user_runs_it(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bigbilbao.cli", "boundaries", "import", str(BARRIOS),
                           "--config", config(tmp_path)], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["layer"] == "barrios"  # recognised by its barrio_code property
    helped = subprocess.run([sys.executable, "-m", "bigbilbao.cli", "boundaries", "import", "--help"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert helped.returncode == 0 and "--id-field" in helped.stdout and "--name-field" in helped.stdout
