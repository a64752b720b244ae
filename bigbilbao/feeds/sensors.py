"""Synthetic Bilbao sensor network: where each feed's sensors stand and what a clean reading looks like.

Used by `bigbilbao.feeds.simulator`, which adds ordering, encoding and dirt. Everything is a function of
(sensor, time, random generator), so a seed reproduces a stream exactly. `activity` is the city's
rhythm in Europe/Madrid time: weekday peaks near 08:00 and 18:00, quiet nights, softer weekends.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from bigbilbao.contracts.ngsi import format_datetime

MADRID = ZoneInfo("Europe/Madrid")
BBOX = (-2.99, 43.23, -2.88, 43.29)  # min_lon, min_lat, max_lon, max_lat
# The six Bilbao stations of the Basque air-quality network (WGS84, from the Open Data Euskadi list).
AIR_STATIONS = (
    ("ARRAIZ", -2.960476, 43.245554), ("BANDERAS", -2.953278, 43.280990), ("EUROPA", -2.902376, 43.254911),
    ("FERIA", -2.947544, 43.265222), ("MAZARREDO", -2.935188, 43.267506), ("MARIA_DIAZ_HARO", -2.945657, 43.258803),
)


@dataclass(frozen=True)
class FeedModel:
    """How a feed behaves: entity type, sensor count (0 = city-wide events), seconds between readings."""

    entity_type: str
    sensors: int
    period: float
    size: tuple[float, float] = (1.0, 1.0)  # range of each sensor's scale (capacity, baseline level...)


MODELS = {
    "traffic_flow": FeedModel("TrafficFlowObserved", 40, 300, (500, 2400)),
    "bus_positions": FeedModel("Vehicle", 30, 30, (14, 22)),
    "bike_stations": FeedModel("BikeHireDockingStation", 30, 120, (12, 30)),
    "parking": FeedModel("OffStreetParking", 12, 300, (150, 900)),
    "crowd_flow": FeedModel("CrowdFlowObserved", 15, 300, (60, 900)),
    "incidents": FeedModel("Alert", 0, 900),
    "road_accidents": FeedModel("RoadAccident", 0, 5400),
    "emergency_dispatches": FeedModel("EmergencyDispatch", 0, 600),
    "noise": FeedModel("NoiseLevelObserved", 25, 300, (55, 68)),
    "air_quality": FeedModel("AirQualityObserved", 6, 3600, (0.6, 1.4)),
    "waste_containers": FeedModel("WasteContainer", 40, 1800, (800, 3200)),
    "energy_meters": FeedModel("SmartMeteringObservation", 20, 900, (15, 400)),
}


@dataclass(frozen=True)
class Sensor:
    """One fixed sensor: stable id and position, and a scale drawn once (lanes, docks, spaces...)."""

    feed: str
    index: int
    id: str
    lon: float
    lat: float
    size: float
    kind: float  # a second stable trait in [0, 1): residential vs central station, waste type...


def activity(moment: datetime) -> float:
    """City activity in [0.03, 1] at a moment: the shape behind rush hours and quiet nights."""
    local = moment.astimezone(MADRID)
    hour = local.hour + local.minute / 60
    awake = 1 / (1 + math.exp(-2 * (hour - 6.5))) / (1 + math.exp(1.5 * (hour - 23)))
    if local.weekday() >= 5:
        level = 0.06 + 0.45 * awake + 0.2 * _bump(hour, 13, 2.5) + 0.15 * _bump(hour, 20, 2)
    else:
        level = 0.04 + 0.4 * awake + 0.5 * _bump(hour, 8, 1.0) + 0.45 * _bump(hour, 18, 1.4)
    return max(0.03, min(1.0, level))


def _bump(hour: float, centre: float, width: float) -> float:
    """A Gaussian bump of height 1 centred on `centre` hours: one rush-hour peak."""
    return math.exp(-(((hour - centre) / width) ** 2) / 2)


def layout(feed: str, within: Callable[[float, float], bool] | None = None) -> tuple[Sensor, ...]:
    """Place a feed's sensors; the positions depend only on the feed, so every seed sees the same network."""
    model = MODELS[feed]
    rng = random.Random(f"layout:{feed}")
    placed = []
    for index in range(model.sensors):
        if feed == "air_quality":
            name, lon, lat = AIR_STATIONS[index % len(AIR_STATIONS)]
        else:
            name, (lon, lat) = f"{feed}-{index:03d}", point_in_bilbao(rng, within)
        size = rng.uniform(*model.size)
        entity_id = f"urn:ngsi-ld:{model.entity_type}:bilbao-sim:{name}"
        placed.append(Sensor(feed, index, entity_id, lon, lat, size, rng.random()))
    return tuple(placed)


def point_in_bilbao(rng: random.Random, within: Callable[[float, float], bool] | None = None) -> tuple[float, float]:
    """Draw a point in the box (and inside `within`, e.g. the district layer, when given)."""
    for _ in range(1000):
        lon, lat = round(rng.uniform(BBOX[0], BBOX[2]), 6), round(rng.uniform(BBOX[1], BBOX[3]), 6)
        if within is None or within(lon, lat):
            return lon, lat
    message = "no point of the Bilbao box satisfies `within` after 1000 draws"
    raise ValueError(message)


def span(feed: str, count: int) -> timedelta:
    """How much time `count` readings of a feed cover at its natural cadence."""
    model = MODELS[feed]
    return timedelta(seconds=round(count * model.period / max(model.sensors, 1)))


def feed_events(feed: str, count: int, rng: random.Random, seed: int, *, start: datetime | None = None,
                end: datetime | None = None, within: Callable[[float, float], bool] | None = None,
                ) -> Iterator[tuple[datetime, dict[str, Any]]]:
    """Yield `count` clean (time, event) pairs of one feed in time order, from `start` or up to `end`."""
    model, build = MODELS[feed], BUILDERS[feed]
    if model.sensors == 0:
        for serial, moment in enumerate(_occurrences(count, model.period, rng, start, end)):
            sensor = Sensor(feed, serial, f"urn:ngsi-ld:{model.entity_type}:bilbao-sim:{seed}-{serial:07d}",
                            *point_in_bilbao(rng, within), 1.0, rng.random())
            yield moment, _envelope(sensor, build(sensor, moment, rng), model)
        return
    placed = layout(feed, within)
    spacing = model.period / len(placed)
    begin = start if start is not None else (end or datetime.now(timezone.utc)) - span(feed, count)
    for serial in range(count):
        cycle, index = divmod(serial, len(placed))
        moment = begin + timedelta(seconds=round(cycle * model.period + index * spacing))
        yield moment, _envelope(placed[index], build(placed[index], moment, rng), model)


def _occurrences(count: int, period: float, rng: random.Random, start: datetime | None,
                 end: datetime | None) -> list[datetime]:
    """Times of city-wide events (a Poisson process, busier when the city is): forward from start or back from end."""
    moment = start if start is not None else (end or datetime.now(timezone.utc))
    step = 1 if start is not None else -1
    times = []
    for _ in range(count):
        weight = (0.3 + activity(moment)) / 0.74  # mean weight about 1, so `period` is the mean gap
        if step < 0:
            times.append(moment)
        moment += step * timedelta(seconds=round(rng.expovariate(weight / period)) + 1)
        if step > 0:
            times.append(moment)
    return times if step > 0 else times[::-1]


def _envelope(sensor: Sensor, body: dict[str, Any], model: FeedModel) -> dict[str, Any]:
    """Wrap a reading with id, type and GeoJSON location, as every contract expects."""
    location = body.pop("location", {"type": "Point", "coordinates": [sensor.lon, sensor.lat]})
    return {"id": sensor.id, "type": model.entity_type, **body, "location": location}


_iso = format_datetime


def _traffic(sensor: Sensor, moment: datetime, rng: random.Random) -> dict[str, Any]:
    """Vehicles/h follow activity; occupancy rises and speed falls as the road fills."""
    load = activity(moment) * rng.uniform(0.85, 1.15)
    intensity = max(1.0, round(sensor.size * load))
    occupancy = round(min(0.95, 0.02 + 0.6 * load**2), 3)
    speed = round(max(5.0, 50 * (1 - 0.7 * occupancy) + rng.gauss(0, 3)), 1)
    return {"dateObservedFrom": _iso(moment - timedelta(minutes=5)), "dateObservedTo": _iso(moment),
            "intensity": intensity, "occupancy": occupancy, "averageVehicleSpeed": speed,
            "laneId": 1 + sensor.index % 3,
            "refRoadSegment": f"urn:ngsi-ld:RoadSegment:bilbao-sim:{sensor.index:03d}"}


def plate(index: int) -> str:
    """A bus's Spanish number plate (four digits, three consonants), fixed per bus: personal data to pseudonymise."""
    letters = "BCDFGHJKLMNPRSTVWXYZ"
    a, b, c = index % 20, (index // 20 + 7) % 20, (index * 7 + 3) % 20
    return f"{(4821 + 37 * index) % 10000:04d} {letters[a]}{letters[b]}{letters[c]}"


def _bus(sensor: Sensor, moment: datetime, rng: random.Random) -> dict[str, Any]:
    """A bus loops a rectangle around its depot point; it is slower when the city is busy."""
    lap = 2400 + 600 * sensor.kind
    phase = (moment.timestamp() / lap + sensor.kind) % 1
    side, along = divmod(phase * 4, 1)
    half = 0.008
    corners = [(-half, -half), (half, -half), (half, half), (-half, half), (-half, -half)]
    (x0, y0), (x1, y1) = corners[int(side)], corners[int(side) + 1]
    lon = min(max(sensor.lon + x0 + (x1 - x0) * along, BBOX[0]), BBOX[2])
    lat = min(max(sensor.lat + y0 + (y1 - y0) * along, BBOX[1]), BBOX[3])
    bearing = (90.0, 0.0, 270.0, 180.0)[int(side)]
    speed = round(max(0.0, sensor.size * (1.3 - 0.6 * activity(moment)) + rng.gauss(0, 3)), 1)
    body = {"observationDateTime": _iso(moment), "vehicleType": "bus", "fleetVehicleId": f"{500 + sensor.index}",
            "vehiclePlateIdentifier": plate(sensor.index), "speed": speed, "bearing": bearing,
            "serviceStatus": "onRoute" if speed > 0 else "parked",
            "refPublicTransportRoute": f"bilbobus-line-{1 + sensor.index % 8:02d}",
            "location": {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]}}
    return {**body, **_bus_stop(sensor, moment, rng)} if speed > 0 else body


def _bus_stop(sensor: Sensor, moment: datetime, rng: random.Random) -> dict[str, Any]:
    """Every fourth report of a bus in service is at a stop: its stop and how late it is (more so at rush hour)."""
    report = int(moment.timestamp() // 30)
    if report % 4 != sensor.index % 4:
        return {}
    late = rng.gauss(40 + 200 * activity(moment), 90)
    return {"refBusStop": f"bilbobus-stop-{(report // 4 + sensor.index) % 600:03d}", "scheduleDeviation": round(late)}


def _bike(sensor: Sensor, moment: datetime, rng: random.Random) -> dict[str, Any]:
    """Central stations fill with the morning commute and empty in the evening; residential ones mirror it."""
    total = round(sensor.size)
    local = moment.astimezone(MADRID)
    hour = local.hour + local.minute / 60
    commute = math.sin(math.pi * (hour - 8) / 10) if 8 <= hour <= 18 and local.weekday() < 5 else 0.0
    fill = 0.5 + (0.35 if sensor.kind > 0.5 else -0.35) * commute + rng.gauss(0, 0.05)
    broken = sensor.index % 4 == 0
    bikes = min(max(round(fill * (total - broken)), 0), total - broken)
    status = "empty" if bikes == 0 else "full" if bikes == total - broken else "working"
    return {"observationDateTime": _iso(moment), "availableBikeNumber": bikes, "freeSlotNumber": total - broken - bikes,
            "totalSlotNumber": total, "outOfServiceSlotNumber": int(broken), "status": status,
            "stationCode": f"BB{sensor.index:03d}"}


def _parking(sensor: Sensor, moment: datetime, rng: random.Random) -> dict[str, Any]:
    """Car parks fill during working hours."""
    total = round(sensor.size)
    occupied = min(total, max(0, round(total * (0.1 + 0.8 * activity(moment) + rng.gauss(0, 0.04)))))
    return {"observationDateTime": _iso(moment), "name": f"Parking {sensor.index + 1}", "totalSpotNumber": total,
            "occupiedSpotNumber": occupied, "availableSpotNumber": total - occupied,
            "occupancy": round(occupied / total, 3)}


def _crowd(sensor: Sensor, moment: datetime, rng: random.Random) -> dict[str, Any]:
    """Pedestrian counts follow activity; the sampled phone MAC is random and locally administered."""
    people = max(0, round(sensor.size * activity(moment) * rng.uniform(0.8, 1.2)))
    towards = round(people * rng.uniform(0.35, 0.65))
    occupancy = round(min(1.0, people / (sensor.size * 1.5)), 3)
    octets = [rng.randrange(256) & 0xFC | 0x02] + [rng.randrange(256) for _ in range(5)]  # unicast, local
    mac = ":".join(f"{octet:02x}" for octet in octets)
    return {"dateObservedFrom": _iso(moment - timedelta(minutes=5)), "dateObservedTo": _iso(moment),
            "peopleCount": people, "peopleCountTowards": towards, "peopleCountAway": people - towards,
            "occupancy": occupancy, "averageCrowdSpeed": round(max(1.0, 5 - 3 * occupancy + rng.gauss(0, 0.3)), 2),
            "congested": occupancy > 0.6, "refDevice": f"counter-{sensor.index:03d}", "detectedDeviceId": mac}


INCIDENTS = {"traffic": ["trafficJam", "carAccident", "roadWorks", "carStopped"],
             "security": ["robbery", "civilDisorder"], "health": ["fallenPatient", "heartAttack"],
             "environment": ["highLevelOfPollution"], "weather": ["rainfall", "flood"]}


def _incident(sensor: Sensor, moment: datetime, rng: random.Random) -> dict[str, Any]:
    """City-wide alerts, mostly traffic, valid for half an hour to three hours."""
    category = rng.choices(list(INCIDENTS), weights=[50, 20, 15, 8, 7])[0]
    return {"dateIssued": _iso(moment), "validFrom": _iso(moment), "category": category,
            "subCategory": rng.choice(INCIDENTS[category]),
            "severity": rng.choices(["informational", "low", "medium", "high", "critical"], [10, 35, 35, 15, 5])[0],
            "validTo": _iso(moment + timedelta(minutes=rng.randint(30, 180))),
            "description": f"Simulated {category} alert", "alertSource": "urn:ngsi-ld:Device:bilbao-sim:112"}


def _accident(sensor: Sensor, moment: datetime, rng: random.Random) -> dict[str, Any]:
    """Mostly minor collisions; deaths are rare."""
    passengers, pedestrians = rng.choices([0, 1, 2, 3], [45, 35, 15, 5])[0], rng.choices([0, 1, 2], [80, 18, 2])[0]
    dead = int(rng.random() < 0.01)
    return {"accidentDate": _iso(moment), "status": rng.choice(["onGoing", "solved"]), "roadClass": "urban",
            "pedestriansInvolved": pedestrians > 0, "numPassengersInjured": passengers, "numPassengersDead": dead,
            "numPedestrianInjured": pedestrians, "numPedestrianDead": 0, "totalInjured": passengers + pedestrians,
            "totalDeadPeopleWithin24Hours": dead, "totalDeadPeopleWithin30Days": dead,
            "description": "Simulated road accident"}


UNITS = {"medical": "ambulance", "fire": "fireEngine", "police": "policeCar", "traffic": "policeCar",
         "rescue": "rescueTeam"}


def _dispatch(sensor: Sensor, moment: datetime, rng: random.Random) -> dict[str, Any]:
    """A call, the unit sent a little later, and its arrival, slower when the streets are busy."""
    category = rng.choices(list(UNITS), weights=[45, 10, 25, 15, 5])[0]
    priority = rng.choices([1, 2, 3, 4], [15, 35, 35, 15])[0]
    dispatched = moment + timedelta(seconds=rng.randint(20, 60 + 40 * priority))
    travel = timedelta(seconds=round(rng.uniform(240, 720) * (1 + 0.6 * activity(moment))))
    body = {"callTime": _iso(moment), "category": category, "priority": priority, "unitType": UNITS[category],
            "refUnit": f"{UNITS[category]}-{rng.randint(1, 25):02d}", "dispatchTime": _iso(dispatched),
            "status": "closed", "callerNumber": f"+346{rng.randrange(10**8):08d}"}
    if rng.random() < 0.1:
        body["status"] = "dispatched"
    else:
        body["arrivalTime"] = _iso(dispatched + travel)
    return body


def _noise(sensor: Sensor, moment: datetime, rng: random.Random) -> dict[str, Any]:
    """LAeq drops about 10 dB at night; LAmax rides well above it."""
    laeq = round(sensor.size + 10 * math.log10(0.1 + 0.9 * activity(moment)) + rng.gauss(0, 1.5), 1)
    return {"dateObservedFrom": _iso(moment - timedelta(minutes=5)), "dateObservedTo": _iso(moment),
            "LAeq": laeq, "LAmax": round(laeq + rng.uniform(6, 20), 1), "LAS": round(laeq + rng.gauss(0, 2), 1),
            "refDevice": f"BI-RUI-S{sensor.index:03d}"}


def _air(sensor: Sensor, moment: datetime, rng: random.Random) -> dict[str, Any]:
    """Traffic pollutants follow activity (scaled by the station's exposure); ozone peaks in the afternoon."""
    busy, local = activity(moment), moment.astimezone(MADRID)
    sun = max(0.0, math.sin(math.pi * (local.hour - 7) / 13))
    no2 = max(2.0, round(10 + 50 * sensor.size * busy + rng.gauss(0, 4), 1))
    no = max(0.5, round(no2 * 0.35 * busy + rng.gauss(0, 1), 1))
    pm10 = max(1.0, round(10 + 18 * busy + rng.gauss(0, 3), 1))
    return {"dateObserved": _iso(moment), "no2": no2, "no": no, "nox": round(no2 + 1.53 * no, 1), "pm10": pm10,
            "pm25": round(pm10 * rng.uniform(0.5, 0.7), 1), "o3": max(2.0, round(25 + 50 * sun - 0.4 * no2, 1)),
            "co": round(0.15 + 0.35 * busy, 2), "so2": round(rng.uniform(1, 6), 1),
            "temperature": round(11 + 6 * sun + rng.gauss(0, 0.5), 1),
            "relativeHumidity": round(min(0.98, 0.85 - 0.25 * sun + rng.gauss(0, 0.03)), 2)}


def _waste(sensor: Sensor, moment: datetime, rng: random.Random) -> dict[str, Any]:
    """Containers fill through the day and are emptied by the 02:00 collection round."""
    local = moment.astimezone(MADRID)
    since_collection = (local.hour - 2) % 24 + local.minute / 60
    level = min(1.0, round(since_collection / (14 + 16 * sensor.kind) + abs(rng.gauss(0, 0.03)), 3))
    kinds = ["organic", "inorganic", "paper", "glass", "plastic"]
    return {"binLoggedTime": _iso(moment), "fillingLevel": level, "temperature": round(12 + 8 * activity(moment), 1),
            "status": "lidOpen" if rng.random() < 0.02 else "ok", "storedWasteKind": kinds[sensor.index % len(kinds)],
            "binCapacity": round(sensor.size)}


def _energy(sensor: Sensor, moment: datetime, rng: random.Random) -> dict[str, Any]:
    """Building power follows opening hours; the cumulative counter only grows."""
    power = round(sensor.size * (0.25 + 0.75 * activity(moment)) * rng.uniform(0.95, 1.05), 2)
    hours = (moment - datetime(2020, 1, 1, tzinfo=timezone.utc)).total_seconds() / 3600
    total = round(sensor.size * 0.55 * hours, 1)
    return {"dateObserved": _iso(moment), "meterType": "Electricity", "refDevice": f"meter-{sensor.index:03d}",
            "totalConsumption": total, "activePower": power, "powerFactor": round(rng.uniform(0.85, 0.99), 3)}


BUILDERS: dict[str, Callable[[Sensor, datetime, random.Random], dict[str, Any]]] = {
    "traffic_flow": _traffic, "bus_positions": _bus, "bike_stations": _bike, "parking": _parking,
    "crowd_flow": _crowd, "incidents": _incident, "road_accidents": _accident, "emergency_dispatches": _dispatch,
    "noise": _noise, "air_quality": _air, "waste_containers": _waste, "energy_meters": _energy,
}
