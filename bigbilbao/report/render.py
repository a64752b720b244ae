"""HTML of the scorecard report: map, perspective tiles, KPI tables; every asset inline, no network resource."""

from __future__ import annotations

import html
import logging
import math
from datetime import datetime
from typing import Any

import pandas as pd

from bigbilbao.report.model import ReportData
from bigbilbao.report.svg import district_map, sparkline, traffic_light, trend_arrow
from bigbilbao.scorecard.catalogue import load_catalogue
from bigbilbao.scorecard.view import OVERALL, SCORE_BANDS

log = logging.getLogger(__name__)

PERSPECTIVE_ORDER = ("sustainability", "mobility", "safety", "service_data")
SPARK_POINTS = 12  # the last periods drawn in a sparkline


def render_page(data: ReportData, css: str) -> str:
    """The whole page as one HTML string."""
    city = data.kpis[data.kpis["area_level"] == "city"]
    title = f"Big Bilbao balanced scorecard: {data.period.replace('_', ' ')}"
    body = [f"<h1>{html.escape(title)}</h1>", _period_line(data.kpis), _freshness_line(data)]
    if data.approximate:
        body.append('<p class="warning">District boundaries are the approximate demo layer: '
                    "do not publish these figures.</p>")
    body += [_map_section(data), _tiles_section(data), _kpi_section(data, city), _district_matrix(data)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title>"
            f"<style>{css}</style></head><body>{''.join(body)}</body></html>\n")


def _text(value: Any) -> str:
    """A value for a cell: numbers with at most 3 significant decimals, blanks for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return html.escape(str(value))


def _when(moment: datetime | None) -> str:
    """A UTC time for people."""
    return "unknown" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _period_line(kpis: pd.DataFrame) -> str:
    """Which period the page shows."""
    start, end = pd.Timestamp(kpis["period_start"].min()), pd.Timestamp(kpis["period_end"].max())
    return f'<p class="period">Period {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC</p>'


def _freshness_line(data: ReportData) -> str:
    """How fresh the data behind the page is."""
    f = data.freshness
    return (f'<p class="freshness">Data freshness: scorecard as of {_when(f["as_of"])}, published '
            f'{_when(f["published_at"])}; newest reading in gold {_when(f["newest_reading"])}; '
            f'latest silver commit {_when(f["silver_commit"])}.</p>')


def _overall(data: ReportData, level: str) -> pd.DataFrame:
    """Overall scores of one area level."""
    s = data.scores
    return s[(s["area_level"] == level) & (s["perspective"] == OVERALL)]


def _map_section(data: ReportData) -> str:
    """The district map coloured by overall status, with a legend and a score list."""
    overall = _overall(data, "district")
    status = dict(zip(overall["area_code"], overall["status"]))
    names = {f.code: f.name for f in data.layer.features}
    rows = "".join(
        f"<tr><td>{traffic_light(status.get(f.code))}</td><td>{html.escape(f.name)}</td>"
        f"<td>{_text(_score_of(overall, f.code))}</td></tr>" for f in data.layer.features)
    bands = ", ".join(f"{name} &ge; {floor:g}" for name, floor in SCORE_BANDS)
    legend = "".join(f"<span>{traffic_light(s)} {s.replace('_', ' ')}</span>"
                     for s in ("green", "amber", "red", "no_data"))
    return (f'<section class="map"><h2>Districts by overall status</h2><div class="map-row">'
            f"{district_map(data.layer, status, names)}<table class=\"scores\"><tr><th></th><th>district</th>"
            f"<th>overall score</th></tr>{rows}</table></div><p class=\"legend\">{legend} "
            f"(overall score 0&ndash;100: {bands}, else red)</p></section>")


def _score_of(scores: pd.DataFrame, code: str, perspective: str = OVERALL) -> float | None:
    """One area's score of a perspective, or None."""
    match = scores[(scores["area_code"] == code) & (scores["perspective"] == perspective)]["score"]
    return None if match.empty or pd.isna(match.iloc[0]) else float(match.iloc[0])


def _tiles_section(data: ReportData) -> str:
    """One tile per perspective for the city: traffic light, score and KPI statuses."""
    city_scores = data.scores[data.scores["area_level"] == "city"]
    city_kpis = data.kpis[data.kpis["area_level"] == "city"]
    tiles = []
    for perspective in (OVERALL, *PERSPECTIVE_ORDER):
        row = city_scores[city_scores["perspective"] == perspective]
        status = row["status"].iloc[0] if not row.empty else "no_data"
        score = row["score"].iloc[0] if not row.empty else None
        kpis = city_kpis if perspective == OVERALL else city_kpis[city_kpis["perspective"] == perspective]
        counts = kpis["status"].fillna("trend only").value_counts()
        detail = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items())
        tiles.append(f'<div class="tile {html.escape(str(status))}"><h3>{traffic_light(status, 22)} '
                     f"{html.escape(perspective.replace('_', ' '))}</h3><p class=\"score\">{_text(score)}</p>"
                     f"<p>{html.escape(detail) or 'no KPIs'}</p></div>")
    return f'<section><h2>Bilbao by perspective</h2><div class="tiles">{"".join(tiles)}</div></section>'


def _kpi_section(data: ReportData, city: pd.DataFrame) -> str:
    """Per perspective, the city's KPIs: value, target, status, trend, sparkline, exceedances, data capture."""
    catalogue = {k.id: k for k in load_catalogue().kpis}
    parts = ['<section><h2>Indicators (city)</h2>']
    head = ("<tr><th>indicator</th><th>value</th><th>unit</th><th>target</th><th>status</th><th>trend</th>"
            "<th>recent periods</th><th>exceedances used / allowed</th><th>data capture</th></tr>")
    for perspective in PERSPECTIVE_ORDER:
        rows = city[city["perspective"] == perspective].sort_values("kpi_id")
        if rows.empty:
            continue
        body = "".join(_kpi_row(r, catalogue.get(r["kpi_id"]), data.history) for _, r in rows.iterrows())
        parts.append(f"<h3>{html.escape(perspective.replace('_', ' '))}</h3><table class=\"kpis\">{head}{body}</table>")
    parts.append("</section>")
    return "".join(parts)


def _kpi_row(row: pd.Series, kpi: Any, history: pd.DataFrame) -> str:
    """One KPI's table row."""
    label = kpi.objective if kpi is not None else row["kpi_id"]
    series = history[(history["kpi_id"] == row["kpi_id"]) & (history["area_code"] == row["area_code"])]
    values = [None if pd.isna(v) else float(v) for v in series["value"].tail(SPARK_POINTS)]
    allowed = row["exceedances_allowed"]
    exceed = "&ndash;" if pd.isna(allowed) else f"{_text(row['exceedances_used'])} / {int(allowed)}"
    capture = "&ndash;" if pd.isna(row["data_capture"]) else f"{100 * row['data_capture']:.0f} %"
    value = "suppressed" if row.get("suppressed") is True else _text(row["value"])
    return (f'<tr><td>{html.escape(label)}<br><small>{html.escape(row["kpi_id"])}</small></td>'
            f'<td class="num">{value}</td>'
            f"<td>{_text(row['unit'])}</td><td class=\"num\">{_text(row['target'])}</td>"
            f"<td>{traffic_light(row['status'])}</td><td class=\"trend\">{trend_arrow(row['trend'])}</td>"
            f"<td>{sparkline(values)}</td><td class=\"num\">{exceed}</td><td class=\"num\">{capture}</td></tr>")


def _district_matrix(data: ReportData) -> str:
    """Every KPI by district: a traffic light and the value per district."""
    districts = data.kpis[data.kpis["area_level"] == "district"]
    if districts.empty:
        return ""
    codes = [f.code for f in data.layer.features]
    names = {f.code: f.name for f in data.layer.features}
    head = "".join(f"<th>{html.escape(names[c])}</th>" for c in codes)
    cells = {(r.kpi_id, r.area_code): r for r in districts.itertuples()}
    rows = []
    for kpi_id in sorted(districts["kpi_id"].unique()):
        tds = []
        for code in codes:
            r = cells.get((kpi_id, code))
            tds.append("<td>&ndash;</td>" if r is None else f"<td>{traffic_light(r.status, 10)} {_text(r.value)}</td>")
        rows.append(f"<tr><td>{html.escape(kpi_id)}</td>{''.join(tds)}</tr>")
    return (f'<section><h2>Indicators by district</h2><table class="matrix"><tr><th>indicator</th>{head}</tr>'
            f"{''.join(rows)}</table></section>")
