"""Scaling inputs of the e2e benchmark (boundary layers of 8, 46 and 1,000 polygons) and the demo's cold start."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import shapely

from benchmarks.e2e_books import DeltaLog
from bigbilbao.spatial import boundary_store
from bigbilbao.spatial.index import load_layer

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "bilbao_boundaries"
DISTRICTS = DATA / "bilbao_distritos_from_eustat_barrios_epsg4326.geojson"
BARRIOS = DATA / "bilbao_barrios_eustat_epsg4326.geojson"
LAYERS = ("districts_8", "barrios_46", "grid_1000")


def grid_geojson(target: Path, columns: int = 40, rows: int = 25) -> Path:
    """A synthetic barrio layer: a columns x rows grid of squares over the barrios' box,
    parent = district at its centre."""
    districts = load_layer(DISTRICTS, id_field="district_code", name_field="district_name")
    lon0, lat0, lon1, lat1 = load_layer(BARRIOS, id_field="barrio_code", name_field="barrio_name").bounds
    width, height = (lon1 - lon0) / columns, (lat1 - lat0) / rows
    tree = shapely.STRtree(districts.geometries)
    features = []
    for row in range(rows):
        for column in range(columns):
            x, y = lon0 + column * width, lat0 + row * height
            hits = tree.query(shapely.Point(x + width / 2, y + height / 2), predicate="covered_by")
            parent = districts.codes[int(hits.min())] if hits.size else districts.codes[0]
            ring = [[x, y], [x + width, y], [x + width, y + height], [x, y + height], [x, y]]
            features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                             "properties": {"barrio_code": f"G{row:02d}{column:02d}",
                                            "barrio_name": f"grid {row}/{column}", "district_code": parent}})
    target.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return target


def import_boundaries(lake: Path, layer: str, work: Path) -> None:
    """Put one of LAYERS in the lakehouse: demo districts only, real districts + barrios, or districts + grid."""
    if layer == "districts_8":
        boundary_store.seed_demo_districts(lake)
        return
    boundary_store.import_layer(lake, DISTRICTS, "districts")
    barrios = BARRIOS if layer == "barrios_46" else work / "grid_1000.geojson"
    if layer == "grid_1000" and not barrios.is_file():
        grid_geojson(barrios)
    boundary_store.import_layer(lake, barrios, "barrios")


def cold_start(work: Path, jars: Path, events: int, timeout_s: float) -> dict:
    """`bigbilbao demo` in a fresh lakehouse (jars cached): seconds to the first scorecard row, and to its exit."""
    lake = work / "cold"
    env = {**os.environ, "BIGBILBAO__LAKEHOUSE__PATH": str(lake), "BIGBILBAO__JVM__JARS_DIR": str(jars)}
    env.setdefault("BIGBILBAO_PSEUDONYM_KEY", secrets.token_hex(32))
    scorecard = DeltaLog(lake / "gold" / "scorecard")
    began = time.monotonic()
    with open(work / "cold.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "bigbilbao.cli", "demo", "--events", str(events)],
                                   cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        first_row = None
        while process.poll() is None and time.monotonic() - began < timeout_s:
            if first_row is None and scorecard.refresh().rows > 0:
                first_row = time.monotonic() - began
            time.sleep(0.25)
        if process.poll() is None:
            process.kill()
        process.wait()
    if first_row is None and scorecard.refresh().rows > 0:
        first_row = time.monotonic() - began
    return {"events": events, "first_scorecard_row_s": first_row, "demo_exit_s": time.monotonic() - began,
            "exit_code": process.returncode, "scorecard_rows": scorecard.rows}
