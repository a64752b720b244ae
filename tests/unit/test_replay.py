"""Replay of the real Bilbao and Euskadi files: counts, time zones, decimal commas, 24:00, shifting, sending."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bigbilbao.contracts.loader import load_contracts
from bigbilbao.contracts.ngsi import format_datetime
from bigbilbao.contracts.rules import check_event
from bigbilbao.errors import BigBilbaoError
from bigbilbao.feeds import replay

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TRAFFIC = DATA / "bilbao_traffic_noise"
SNAPSHOT = TRAFFIC / "traffic_snapshots" / "bilbao_trafico_secciones_20260127T1500.geojson"
HISTORY = TRAFFIC / "bilbao_trafico_historico_20260129_20260130.csv"
NOISE = TRAFFIC / "bilbao_ruido_trafico_joined_20260127_20260211.csv"
AIR = DATA / "air_quality_euskadi"
DAILY = AIR / "daily_2025" / "MAZARREDO_2025_daily.csv"
UTC = timezone.utc


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data file {path.name} is not present beside the repository")
    return path


def _broken(events: list[replay.ReplayEvent]) -> Counter[str]:
    contracts = load_contracts()
    return Counter(v.rule for e in events for v in check_event(contracts[e.feed], e.event, now=e.published_at))


def test_traffic_snapshot_keeps_bad_readings_for_the_rules() -> None:
    events = list(replay.traffic_snapshot(_need(SNAPSHOT)))
    assert len(events) == 81
    assert {e.published_at for e in events} == {datetime(2026, 1, 27, 14, 0, tzinfo=UTC)}  # 15:00 Madrid
    first = events[0].event
    assert first["id"] == "urn:ngsi-ld:TrafficFlowObserved:bilbao:248"
    assert first["dateObserved"] == "2026-01-27T14:00:00Z"
    assert first["location"]["type"] == "Polygon"
    broken = _broken(events)
    assert (broken["stale"], broken["intensity_not_negative"], broken["detector_silent"]) == (11, 1, 33)
    assert broken["in_bilbao"] == broken["occupancy_is_fraction"] == broken["time_present"] == 0


@pytest.mark.parametrize("path", sorted((TRAFFIC / "traffic_snapshots").glob("*.geojson")), ids=lambda p: p.stem[-13:])
def test_every_snapshot_matches_its_raw_properties(path: Path) -> None:
    raw = [f["properties"] for f in json.loads(path.read_text(encoding="utf-8"))["features"]]
    events = list(replay.traffic_snapshot(path))
    assert len(events) == len(raw) == 81
    for props, item in zip(raw, events):
        assert item.event["intensity"] == float(props["Intensidad"])
        assert item.event["occupancy"] == pytest.approx(float(props["Ocupacion"]) / 100)
        assert item.event["averageVehicleSpeed"] == float(props["Velocidad"])
    negatives = sum(float(p["Intensidad"]) < 0 for p in raw)
    assert _broken(events)["intensity_not_negative"] == negatives == 1


def test_traffic_history_reads_the_wrong_z_as_local_time() -> None:
    sections = replay.section_geometries(_need(SNAPSHOT))
    events = list(replay.traffic_history(_need(HISTORY), sections))
    assert len(events) == 2673
    assert len({e.published_at for e in events}) == 33
    first = events[0]
    assert first.event["dateObserved"] == "2026-01-29T18:35:00Z"  # "19:35:00Z" in the file is Madrid time
    assert first.published_at == datetime(2026, 1, 29, 18, 44, 37, tzinfo=UTC)  # fecha_ejecucion is true UTC
    assert all("location" in e.event for e in events)
    assert _broken(events)["intensity_not_negative"] == 32
    with HISTORY.open(encoding="utf-8", newline="") as handle:
        repeats = Counter((row["CodigoSeccion"], row["FechaHora"]) for row in csv.DictReader(handle))
    contract = load_contracts()["traffic_flow"]
    keys = Counter(contract.dedup_values(e.event) for e in events)
    assert sum(keys.values()) - len(keys) == sum(repeats.values()) - len(repeats) > 0


def test_noise_readings() -> None:
    events = list(replay.noise_readings(_need(NOISE)))
    assert len(events) == 2885
    assert len({e.event["refDevice"] for e in events}) == 49
    levels = [e.event["LAeq"] for e in events]
    assert (min(levels), max(levels)) == (30.8, 88.3)
    assert events[0].event["dateObserved"] == "2026-01-27T16:07:45.710Z"
    assert events[0].event["location"] == {"type": "Point", "coordinates": [-2.947089, 43.263329]}
    assert sum(_broken(events).values()) == 0


def test_daily_air_quality_file() -> None:
    stations = replay.air_quality_stations(_need(AIR / "estaciones_calidad_aire_euskadi_2017.csv"))
    assert len(stations) == 53
    assert stations["MAZARREDO"]["coordinates"] == pytest.approx([-2.935188, 43.267506])
    events = list(replay.air_quality_csv(_need(DAILY), location=stations["MAZARREDO"]))
    assert len(events) == 365
    newest = events[0].event  # 31/12/2025;0,55;0,28;0,27;0;;;;0,04;16;13;5;0,51
    assert newest["id"] == "urn:ngsi-ld:AirQualityObserved:euskadi:MAZARREDO"
    assert (newest["dateObservedFrom"], newest["dateObserved"]) == ("2025-12-30T23:00:00Z", "2025-12-31T23:00:00Z")
    values = (newest["c6h6"], newest["co"], newest["pm10"], newest["pm25"], newest["so2"])
    assert values == (0.55, 0.28, 16.0, 13.0, 5.0)
    assert "no2" not in newest and "no" not in newest
    july = next(e.event for e in events if e.event["dateObservedFrom"].startswith("2025-06-30T22"))
    assert july["dateObserved"] == "2025-07-01T22:00:00Z"  # a summer day ends at 22:00 UTC
    assert _broken(events) == Counter({"some_pollutant": 4})  # 13-16 June have only the date


def test_hourly_air_quality_with_24_00_and_sin_datos(tmp_path: Path) -> None:
    path = tmp_path / "EUROPA_hourly.csv"
    path.write_text("Fecha;Hora;NO2 (µg/m3);CO (mg/m3);PM2,5 (µg/m3);Humedad (%);Tolueno (µg/m3)\n"
                    "31/12/2025;23:00;41,5;0,31;Sin datos;85;1,2\n"
                    "31/12/2025;24:00;1.041,5;0,3;;80,5;1\n", encoding="utf-8")
    events = [e.event for e in replay.air_quality_csv(path)]
    assert [e["dateObserved"] for e in events] == ["2025-12-31T22:00:00Z", "2025-12-31T23:00:00Z"]
    assert events[1]["dateObservedFrom"] == "2025-12-31T22:00:00Z"
    assert (events[0]["no2"], events[0]["co"], events[0]["relativeHumidity"]) == (41.5, 0.31, 0.85)
    assert "pm25" not in events[0] and "toluene" not in events[0]
    assert (events[1]["no2"], events[1]["relativeHumidity"]) == (1041.5, pytest.approx(0.805))
    assert events[0]["id"] == "urn:ngsi-ld:AirQualityObserved:euskadi:EUROPA"


def test_combined_date_and_hour_cell(tmp_path: Path) -> None:
    path = tmp_path / "FERIA.csv"
    path.write_text("Date;O3 (µg/m3)\n30/03/2025 24:00;55\n", encoding="utf-8")
    (event,) = [e.event for e in replay.air_quality_csv(path)]
    assert (event["dateObserved"], event["o3"]) == ("2025-03-30T22:00:00Z", 55.0)  # summer time began that day


@pytest.mark.parametrize(("day", "hour", "start", "end"), [
    ("01/01/2025", "01:00", "2024-12-31T23:00:00", "2025-01-01T00:00:00"),
    ("01/01/2025", "24:00", "2025-01-01T22:00:00", "2025-01-01T23:00:00"),
    ("01/01/2025", None, "2024-12-31T23:00:00", "2025-01-01T23:00:00"),
])
def test_euskadi_period(day: str, hour: str | None, start: str, end: str) -> None:
    begin, finish = replay.euskadi_period(day, hour)
    expected = tuple(datetime.fromisoformat(text).replace(tzinfo=UTC) for text in (start, end))
    assert (begin, finish) == expected


def test_a_bad_row_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "EUROPA.csv"
    path.write_text("Fecha;Hora;NO2 (µg/m3)\n01/01/2025;01:00;3\n2025-01-01;02:00;4\n", encoding="utf-8")
    with pytest.raises(BigBilbaoError, match="^EUROPA.csv:3: not a Euskadi date"):
        list(replay.air_quality_csv(path))


@pytest.mark.parametrize("hour", ["25:00", "1 pm"])
def test_euskadi_period_rejects_bad_hours(hour: str) -> None:
    with pytest.raises(ValueError):
        replay.euskadi_period("01/01/2025", hour)


@pytest.mark.parametrize(("text", "value"), [("0,55", 0.55), ("1.234,5", 1234.5), ("12", 12.0), ("-447", -447.0),
                                             ("Sin datos", None), ("", None), (None, None), ("abc", None)])
def test_decimal(text: str | None, value: float | None) -> None:
    assert replay.decimal(text) == value


def test_shift_moves_every_event_and_keeps_the_original() -> None:
    original = list(replay.traffic_snapshot(_need(SNAPSHOT)))
    now = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
    shift = replay.shift_to(original, now)
    shifted = list(replay.traffic_snapshot(SNAPSHOT, shift=shift))
    assert max(e.published_at for e in shifted) == now
    stale = next(e for e in shifted if e.original_time and e.original_time.year < 2026)
    assert stale.event["originalDateObserved"] == format_datetime(stale.original_time)
    assert stale.event["dateObserved"] == format_datetime(stale.original_time + shift)
    assert "originalDateObserved" not in original[0].event
    assert _broken(shifted)["stale"] == 11


def test_replay_sends_in_publication_order_and_paces() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    events = [replay.ReplayEvent("noise", {"n": n}, t0 + timedelta(seconds=s), None, "test")
              for n, s in ((0, 60), (1, 0), (2, 180))]
    sent: list[tuple[str, Any]] = []
    sleeps: list[float] = []
    total = replay.replay(events, lambda feed, event: sent.append((feed, event["n"])), speed=60, sleep=sleeps.append)
    assert total == 3
    assert sent == [("noise", 1), ("noise", 0), ("noise", 2)]
    assert sleeps == [1.0, 2.0]
    sleeps.clear()
    replay.replay(events, lambda feed, event: None, sleep=sleeps.append)
    assert sleeps == []
