"""Inline SVG for the HTML scorecard: a district map, sparklines and traffic lights (no external resources)."""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Mapping, Sequence

import shapely

from bigbilbao.spatial.index import BoundaryLayer

log = logging.getLogger(__name__)

STATUS_COLOURS = {"green": "#2e9e44", "amber": "#f0a500", "red": "#d7263d", "no_data": "#b8bec6", None: "#b8bec6"}


def colour(status: str | None) -> str:
    """The fill colour of a status (grey when unknown)."""
    return STATUS_COLOURS.get(status, STATUS_COLOURS[None])


def district_map(layer: BoundaryLayer, status: Mapping[str, str | None], labels: Mapping[str, str],
                 width: int = 640) -> str:
    """The districts as an SVG map, each filled by its status colour and labelled with its name."""
    bounds = shapely.total_bounds([f.geometry for f in layer.features])
    lon0, lat0, lon1, lat1 = (float(v) for v in bounds)
    x_scale = math.cos(math.radians((lat0 + lat1) / 2))  # equirectangular, true to scale at Bilbao's latitude
    span_x, span_y = (lon1 - lon0) * x_scale, lat1 - lat0
    unit = (width - 20) / span_x
    height = int(span_y * unit) + 20

    def point(lon: float, lat: float) -> str:
        return f"{10 + (lon - lon0) * x_scale * unit:.1f},{10 + (lat1 - lat) * unit:.1f}"

    shapes, names = [], []
    for feature in layer.features:
        state = status.get(feature.code)
        title = html.escape(f"{feature.name}: {state or 'no data'}")
        paths = " ".join(_ring_path(ring, point) for ring in _rings(feature.geometry))
        shapes.append(f'<path class="district" data-code="{html.escape(feature.code)}" d="{paths}" '
                      f'fill="{colour(state)}" fill-rule="evenodd"><title>{title}</title></path>')
        label = shapely.point_on_surface(feature.geometry)
        x, y = point(label.x, label.y).split(",")
        names.append(f'<text x="{x}" y="{y}" class="label">'
                     f'{html.escape(labels.get(feature.code, feature.name))}</text>')
    return (f'<svg viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="Districts of Bilbao by overall status">'
            + "".join(shapes) + "".join(names) + "</svg>")


def _rings(geometry: shapely.Geometry) -> list[Sequence[tuple[float, float]]]:
    """Every exterior and interior ring of a (multi)polygon."""
    polygons = getattr(geometry, "geoms", [geometry])
    rings: list[Sequence[tuple[float, float]]] = []
    for polygon in polygons:
        if polygon.geom_type != "Polygon":
            continue
        rings.append(list(polygon.exterior.coords))
        rings.extend(list(interior.coords) for interior in polygon.interiors)
    return rings


def _ring_path(ring: Sequence[tuple[float, float]], point) -> str:  # noqa: ANN001 - local projection closure
    """One closed SVG path from a ring of lon/lat coordinates."""
    return "M" + " L".join(point(x, y) for x, y, *_ in ring) + " Z"


def sparkline(values: Sequence[float | None], width: int = 90, height: int = 22) -> str:
    """A small line of the values over time (gaps skipped); a dot for a single value, an empty box for none."""
    known = [(i, v) for i, v in enumerate(values) if v is not None and not math.isnan(v)]
    box = f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
    if not known:
        return box + "</svg>"
    low, high = min(v for _, v in known), max(v for _, v in known)
    spread = (high - low) or 1.0
    steps = max(len(values) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return 2 + i * (width - 4) / steps, height - 2 - (v - low) * (height - 4) / spread

    coords = [xy(i, v) for i, v in known]
    last_x, last_y = coords[-1]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    return (box + f'<polyline points="{line}" fill="none" stroke="#3a6ea5" stroke-width="1.5"/>'
            f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="2.2" fill="#3a6ea5"/></svg>')


def traffic_light(status: str | None, size: int = 14) -> str:
    """A round light in the status colour."""
    radius = size / 2
    label = html.escape(status or "no data")
    return (f'<svg class="light" width="{size}" height="{size}" '
            f'viewBox="0 0 {size} {size}" role="img" aria-label="{label}"><circle cx="{radius}" cy="{radius}" '
            f'r="{radius - 1}" fill="{colour(status)}" stroke="#333" stroke-width="0.6"/></svg>')


TREND_ARROWS = {"up": "&#8593;", "down": "&#8595;", "flat": "&#8594;"}


def trend_arrow(trend: str | None) -> str:
    """An arrow for the KPI's trend against the previous period (blank when unknown)."""
    return TREND_ARROWS.get(trend or "", "")
