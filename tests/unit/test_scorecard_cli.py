"""`bigbilbao scorecard show` on a lakehouse the test builds: the GOLDEN gold tables (tests/golden_scorecard.py)
written with delta-rs, published by `publish_scorecard`, read back without Spark. Expected values are the
hand-computed ones of tests/test_scorecard.py."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from deltalake import write_deltalake
from golden_scorecard import AS_OF, CATALOGUE, POPULATION, golden_events, golden_hourly, golden_sensors

from bigbilbao import cli
from bigbilbao.config.settings import load_settings, with_overrides
from bigbilbao.contracts.loader import load_contracts
from bigbilbao.scorecard.catalogue import parse_catalogue
from bigbilbao.stages import publish
from bigbilbao.tables.read import table_path

ROOT = Path(__file__).resolve().parents[2]


def as_text_codes(frame: pd.DataFrame) -> pd.DataFrame:
    """Gold stores area codes as text."""
    return frame.assign(district_code=frame["district_code"].astype(str), barrio_code=frame["barrio_code"].astype(str))


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lakehouse holding the golden gold tables and the scorecard published from them."""
    lake = tmp_path_factory.mktemp("scorecard-lake")
    write_deltalake(str(table_path(lake, "gold", "hourly")), as_text_codes(golden_hourly()))
    write_deltalake(str(table_path(lake, "gold", "events")), as_text_codes(golden_events()))
    write_deltalake(str(table_path(lake, "reference", "sensors")), as_text_codes(golden_sensors()))
    settings = with_overrides(load_settings(environ={}), lakehouse={"path": str(lake)})
    catalogue = parse_catalogue(CATALOGUE, load_contracts(), "golden")
    publish.publish_scorecard(None, settings, AS_OF, catalogue=catalogue, population=POPULATION)
    return lake


@pytest.fixture
def show(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """`bigbilbao scorecard show OPTIONS` in-process on a lakehouse: (exit code, stdout, stderr)."""
    def run(lake: Path, *options: str) -> tuple[int, str, str]:
        monkeypatch.setenv("BIGBILBAO__LAKEHOUSE__PATH", str(lake))
        code = cli.main(["scorecard", "show", *options])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_json_rows_of_one_district_and_day(lake: Path, show) -> None:
    code, out, _ = show(lake, "--format", "json", "--district", "deusto", "--period", "day")
    rows = {row["kpi"]: row for row in json.loads(out)}
    assert code == 0 and len(rows) == 7  # the golden catalogue's 7 KPIs, district 1 (Deusto), 7 March
    assert {(r["area_level"], r["area_code"], r["area_name"], r["period"], r["period_start"])
            for r in rows.values()} == {("district", "1", "Deusto", "day", "2025-03-07T00:00:00Z")}
    no2 = rows["no2_hourly_exceedances"]  # 10 + 9 = 19 hours above 200 > 18 allowed -> red, 0
    assert (no2["value"], no2["status"], no2["score"], no2["exceedances_used"], no2["exceedances_allowed"],
            no2["data_capture"]) == (19.0, "red", 0.0, 19.0, 18, 1.0)
    waste = rows["waste_full"]  # 6 of 48 container-hours above 80 % -> 0.125, amber, 100 * 0.375 / 0.45
    assert (waste["value"], waste["status"], waste["score"], waste["trend"]) == (
        0.125, "amber", pytest.approx(83.3333, abs=1e-4), "up")
    assert rows["footfall"]["status"] is None and rows["footfall"]["value"] == 2400.0  # trend only
    assert rows["incidents_per_100k"]["as_of"] == "2025-03-08T00:00:00Z"


def test_csv_and_table_and_clear_errors(lake: Path, show) -> None:
    code, out, _ = show(lake, "--format", "csv", "--period", "week")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 7 * 8  # 7 KPIs x (city + 3 districts + 4 barrios)
    assert {r["period_start"] for r in rows} == {"2025-03-03T00:00:00Z"}  # ISO week from Monday 3 March
    code, out, _ = show(lake, "--district", "3")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:4] == ["area", "period", "kpi", "value"]
    assert len(lines) == 1 + 7 * 4 and all(line.startswith("district Otxarkoaga") for line in lines[1:])
    code, _, err = show(lake, "--district", "Atlantis")
    assert code == 2 and "Unknown district 'Atlantis'" in err and "Deusto (1)" in err
    code, _, err = show(lake.parent / "no-such-lake")
    assert code == 2 and "No scorecard at" in err and "bigbilbao run scorecard" in err


def test_show_runs_without_spark(lake: Path) -> None:
    script = ("import sys; from bigbilbao.cli.app import main; code = main(sys.argv[1:]); "
              "assert 'pyspark' not in sys.modules, 'scorecard show imported pyspark'; sys.exit(code)")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script, "scorecard", "show", "--format", "json"], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "BIGBILBAO__LAKEHOUSE__PATH": str(lake)})
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 7 * 8 * 4  # every KPI, area and period of the latest publication
    print(f"scorecard show took {time.monotonic() - started:.2f} s")  # reported, not asserted (shared machines)


def test_as_of_shows_an_earlier_publication(lake: Path, show, tmp_path: Path) -> None:
    import shutil
    from datetime import timedelta

    from deltalake import DeltaTable

    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    first = DeltaTable(str(table_path(copy, "gold", "scorecard"))).version()
    settings = with_overrides(load_settings(environ={}), lakehouse={"path": str(copy)})
    catalogue = parse_catalogue(CATALOGUE, load_contracts(), "golden")
    publish.publish_scorecard(None, settings, AS_OF + timedelta(days=1), catalogue=catalogue, population=POPULATION)
    latest = {row["as_of"] for row in json.loads(show(copy, "--format", "json")[1])}
    earlier = {row["as_of"] for row in json.loads(show(copy, "--format", "json", "--as-of", str(first))[1])}
    assert latest == {"2025-03-09T00:00:00Z"} and earlier == {"2025-03-08T00:00:00Z"}
    code, _, err = show(copy, "--as-of", "999")
    assert code == 2 and "has no version 999" in err
