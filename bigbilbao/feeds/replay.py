"""Replay real open-data files as keyValues events, so the pipeline can be run on what Bilbao really sends.

Parsers here only read files and yield `ReplayEvent`s; sending is a callable injected into `replay`
(`send(feed, event_dict)`), so nothing here knows about Kafka. Readings are kept as the source
published them, stale, negative and all-zero ones included: the contract rules judge them, not
the replayer. Timestamps become aware UTC; `shift` moves every event by the same amount (e.g.
`shift_to(events, now)`) and then keeps the source's own time in `originalDateObserved`.

Sources (see shared/data/*/SOURCES.md): Bilbao City Council traffic sections (GeoJSON snapshots and
a CSV of 33 polls whose `FechaHora` has a wrong trailing "Z": it is local time), Bilbao noise
meters (CSV), and Open Data Euskadi air-quality CSVs (`;`, decimal commas, dd/mm/yyyy, daily or
hourly with hours 01:00..24:00, each hour labelling the mean of the hour it ends).
"""

from __future__ import annotations

import csv
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bigbilbao.contracts.loader import load_contracts
from bigbilbao.contracts.model import Contract, normalise_unit
from bigbilbao.contracts.ngsi import format_datetime, parse_datetime
from bigbilbao.errors import BigBilbaoError

log = logging.getLogger(__name__)

BILBAO_TZ = "Europe/Madrid"
MISSING = frozenset({"", "sin datos", "-", "n/d", "nd", "null", "nan"})
# Euskadi column name (before the unit) -> AirQualityObserved attribute; other columns are skipped.
EUSKADI_POLLUTANTS = {
    "no2": "no2", "no": "no", "nox": "nox", "pm10": "pm10", "pm2,5": "pm25", "pm2.5": "pm25", "o3": "o3",
    "ozono": "o3", "co": "co", "so2": "so2", "benceno": "c6h6", "temperatura": "temperature",
    "humedad": "relativeHumidity", "humedad relativa": "relativeHumidity",
}
_HEADER = re.compile(r"^\s*(?P<name>.*?)\s*(?:\((?P<unit>[^)]*)\))?\s*$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::\d{2})?$")


@dataclass(frozen=True)
class ReplayEvent:
    """One replayed keyValues event with when the source published it, for ordering and pacing."""

    feed: str
    event: dict[str, Any] = field(hash=False)
    published_at: datetime
    original_time: datetime | None
    source: str


def decimal(text: str | None) -> float | None:
    """Read '0,55', '1.234,5', '12' or 'Sin datos' (-> None), as Spanish open-data CSVs write numbers."""
    if text is None or text.strip().lower() in MISSING:
        return None
    cleaned = text.strip().replace(" ", "")
    if "," in cleaned:
        cleaned = cleaned.replace(".", "").replace(",", ".")
    try:
        return float(cleaned)
    except ValueError:
        log.debug("not a number: %r", text)
        return None


def bilbao_local(text: str) -> datetime | None:
    """Parse a Bilbao feed timestamp as Europe/Madrid local time, ignoring the wrong 'Z' some copies add."""
    return parse_datetime(text.strip().removesuffix("Z"), BILBAO_TZ)


def euskadi_period(day: str, hour: str | None) -> tuple[datetime, datetime]:
    """Return the (start, end) in UTC of a Euskadi row: a whole local day, or the hour ending at `hour`."""
    parsed = datetime.strptime(day.strip(), "%d/%m/%Y").date()
    madrid = ZoneInfo(BILBAO_TZ)
    if hour is None:
        start = datetime.combine(parsed, datetime.min.time(), madrid)
        end = datetime.combine(parsed + timedelta(days=1), datetime.min.time(), madrid)
        return start.astimezone(timezone.utc), end.astimezone(timezone.utc)
    match = _TIME.match(hour.strip())
    if match is None or not 0 <= int(match[1]) <= 24:
        message = f"not an hour: {hour!r}"
        raise ValueError(message)
    naive_end = datetime.combine(parsed, datetime.min.time()) + timedelta(hours=int(match[1]), minutes=int(match[2]))
    end = naive_end.replace(tzinfo=madrid).astimezone(timezone.utc)
    return end - timedelta(hours=1), end


def section_geometries(snapshot: Path | str) -> dict[str, dict[str, Any]]:
    """Map CodigoSeccion -> GeoJSON geometry from a traffic snapshot, to locate the geometry-less CSV."""
    collection = json.loads(Path(snapshot).read_text(encoding="utf-8"))
    return {str(f["properties"]["CodigoSeccion"]): f["geometry"] for f in collection["features"]}


def traffic_snapshot(path: Path | str, *, shift: timedelta = timedelta(0),
                     contract: Contract | None = None) -> Iterator[ReplayEvent]:
    """Yield one TrafficFlowObserved per section of a City Council traffic GeoJSON snapshot."""
    path = Path(path)
    features = json.loads(path.read_text(encoding="utf-8"))["features"]
    stamps = Counter(f["properties"].get("FechaHora") for f in features)
    published = bilbao_local(stamps.most_common(1)[0][0]) if stamps else None
    contract = contract or load_contracts()["traffic_flow"]
    for index, feature in enumerate(features):
        source = f"{path.name}#feature{index}"
        yield _traffic_event(feature["properties"], feature.get("geometry"), published, shift, contract, source)


def traffic_history(path: Path | str, sections: Mapping[str, dict[str, Any]] | None = None, *,
                    shift: timedelta = timedelta(0), contract: Contract | None = None) -> Iterator[ReplayEvent]:
    """Yield one TrafficFlowObserved per row of the polled-history CSV, located via `sections` if given."""
    path = Path(path)
    contract = contract or load_contracts()["traffic_flow"]
    with path.open(encoding="utf-8", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            polled = parse_datetime(row.get("fecha_ejecucion") or "", "UTC")
            geometry = (sections or {}).get(str(row["CodigoSeccion"]))
            yield _traffic_event(row, geometry, polled, shift, contract, f"{path.name}:{line}")


def _traffic_event(row: Mapping[str, Any], geometry: dict[str, Any] | None, published: datetime | None,
                   shift: timedelta, contract: Contract, source: str) -> ReplayEvent:
    """Build the FIWARE event for one section reading; Ocupacion % becomes the contract's fraction."""
    code = str(row["CodigoSeccion"]).strip()
    observed = bilbao_local(str(row.get("FechaHora") or ""))
    event: dict[str, Any] = {
        "id": f"urn:ngsi-ld:TrafficFlowObserved:bilbao:{code}",
        "type": "TrafficFlowObserved",
        "refRoadSegment": f"urn:ngsi-ld:RoadSegment:bilbao:{code}",
        "intensity": decimal(row.get("Intensidad")),
        "occupancy": decimal(row.get("Ocupacion")),
        "averageVehicleSpeed": decimal(row.get("Velocidad")),
        "dataProvider": "Ayuntamiento de Bilbao",
    }
    event = contract.to_canonical(event, {"occupancy": "%", "averageVehicleSpeed": "km/h"})
    if geometry is not None:
        event["location"] = geometry
    return _finish("traffic_flow", event, observed, published, shift, source)


def noise_readings(path: Path | str, *, shift: timedelta = timedelta(0)) -> Iterator[ReplayEvent]:
    """Yield one NoiseLevelObserved per Bilbao noise-meter reading (Decibelios read as LAeq, dB(A))."""
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            code = row["Codigo"].strip()
            observed = bilbao_local(row["FechaHora"])
            lon, lat = decimal(row.get("longitude")), decimal(row.get("latitude"))
            event: dict[str, Any] = {
                "id": f"urn:ngsi-ld:NoiseLevelObserved:bilbao:{code}",
                "type": "NoiseLevelObserved",
                "refDevice": code,
                "LAeq": decimal(row.get("Decibelios")),
                "address": {"streetAddress": row.get("address", "").strip(), "addressLocality": "Bilbao"},
                "dataProvider": "Ayuntamiento de Bilbao",
            }
            if lon is not None and lat is not None:
                event["location"] = {"type": "Point", "coordinates": [lon, lat]}
            yield _finish("noise", event, observed, observed, shift, f"{path.name}:{line}")


def air_quality_stations(path: Path | str) -> dict[str, dict[str, Any]]:
    """Map station name -> GeoJSON Point from the Euskadi station list (';', decimal commas, WGS84 columns)."""
    stations = {}
    with Path(path).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter=";"):
            lon, lat = decimal(row.get("Longitude")), decimal(row.get("Latitude"))
            if lon is not None and lat is not None:
                stations[row["Name"].strip()] = {"type": "Point", "coordinates": [lon, lat]}
    return stations


def air_quality_csv(path: Path | str, *, station: str | None = None, location: dict[str, Any] | None = None,
                    shift: timedelta = timedelta(0), contract: Contract | None = None) -> Iterator[ReplayEvent]:
    """Yield one AirQualityObserved per row of an Open Data Euskadi station CSV, daily or hourly."""
    path = Path(path)
    station = station or path.stem.split("_")[0]
    contract = contract or load_contracts()["air_quality"]
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = csv.reader(handle, delimiter=";")
        header = next(rows)
        hour_column = _hour_column(header)
        columns = _pollutant_columns(header, contract)
        header_units = _column_units(header, columns)
        for line, row in enumerate(rows, start=2):
            if not row or not row[0].strip():
                continue
            try:
                start, end = euskadi_period(*_split_when(row, hour_column))
            except ValueError as error:
                message = f"{path.name}:{line}: not a Euskadi date and hour ({error})"
                raise BigBilbaoError(message) from error
            event: dict[str, Any] = {
                "id": f"urn:ngsi-ld:AirQualityObserved:euskadi:{station}",
                "type": "AirQualityObserved",
                "dateObservedFrom": format_datetime(start + shift),
                "dateObservedTo": format_datetime(end + shift),
                "refPointOfInterest": station,
                "dataProvider": "Gobierno Vasco - Open Data Euskadi",
            }
            values = {attr: decimal(row[i]) if i < len(row) else None for i, attr in columns.items()}
            units = {attr: unit for attr, unit in header_units.items() if values.get(attr) is not None}
            event.update(contract.to_canonical({k: v for k, v in values.items() if v is not None}, units))
            if location is not None:
                event["location"] = location
            yield _finish("air_quality", event, end, end, shift, f"{path.name}:{line}")


def _hour_column(header: list[str]) -> int | None:
    """Index of the hour column of an hourly file, None for a daily file."""
    for index, name in enumerate(header):
        if name.strip().lower() in ("hora", "hour", "ordua", "time"):
            return index
    return None


def _split_when(row: list[str], hour_column: int | None) -> tuple[str, str | None]:
    """Return (dd/mm/yyyy, hh:mm or None), from a separate hour column or a 'dd/mm/yyyy hh:mm' cell."""
    when = row[0].strip()
    if hour_column is not None:
        return when, row[hour_column].strip() if hour_column < len(row) else None
    if " " in when:
        day, hour = when.split(None, 1)
        return day, hour
    return when, None


def _pollutant_columns(header: list[str], contract: Contract) -> dict[int, str]:
    """Map column index -> contract field for the columns the contract declares; log the others once."""
    columns = {}
    for index, name in enumerate(header[1:], start=1):
        key = (_HEADER.match(name)["name"] or "").strip().lower()
        attribute = EUSKADI_POLLUTANTS.get(key)
        if attribute in contract.fields:
            columns[index] = attribute
        elif key not in ("hora", "hour", "ordua", "time"):
            log.debug("air-quality column %r is not in the contract; skipped", name)
    return columns


def _column_units(header: list[str], columns: Mapping[int, str]) -> dict[str, str]:
    """Map contract field -> unit written in the column header, e.g. 'µg/m3' -> 'ug/m3'."""
    units = {}
    for index, attribute in columns.items():
        unit = _HEADER.match(header[index])["unit"]
        if unit:
            units[attribute] = "Cel" if normalise_unit(unit).lower() in ("ºc", "°c", "c") else unit
    return units


def _finish(feed: str, event: dict[str, Any], observed: datetime | None, published: datetime | None,
            shift: timedelta, source: str) -> ReplayEvent:
    """Stamp dateObserved (shifted), keep the source's own time when shifted, drop empty values."""
    event = {key: value for key, value in event.items() if value is not None}
    if observed is not None:
        event["dateObserved"] = format_datetime(observed + shift)
        if shift:
            event["originalDateObserved"] = format_datetime(observed)
    moment = (published or observed or datetime(1970, 1, 1, tzinfo=timezone.utc)) + shift
    return ReplayEvent(feed=feed, event=event, published_at=moment, original_time=observed, source=source)


def shift_to(events: Iterable[ReplayEvent], now: datetime) -> timedelta:
    """Return the shift that makes the latest publication land at `now`, to replay history as live."""
    latest = max((event.published_at for event in events), default=None)
    return timedelta(0) if latest is None else now.astimezone(timezone.utc) - latest


def replay(events: Iterable[ReplayEvent], send: Callable[[str, dict[str, Any]], Any], *, speed: float | None = None,
           sleep: Callable[[float], Any] = time.sleep) -> int:
    """Send events in publication order; with `speed` (e.g. 60 = one hour per minute) keep their spacing."""
    ordered = sorted(events, key=lambda item: item.published_at)
    previous: datetime | None = None
    for item in ordered:
        if speed and previous is not None:
            gap = (item.published_at - previous).total_seconds() / speed
            if gap > 0:
                sleep(gap)
        send(item.feed, item.event)
        previous = item.published_at
    log.info("replayed %d events", len(ordered))
    return len(ordered)

