"""`bigbilbao scorecard show`: the latest published scorecard from Delta (delta-rs, no Spark) as JSON, a table or CSV.

Options are parsed in `bigbilbao.cli.scorecard`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from bigbilbao.config.settings import Settings
from bigbilbao.errors import ScorecardQueryError
from bigbilbao.scorecard.periods import PERIODS
from bigbilbao.scorecard.population import DISTRICT, Population, load_population
from bigbilbao.scorecard.store import latest_publication

log = logging.getLogger(__name__)

COLUMNS = ["area_level", "area_code", "area_name", "period", "period_start", "period_end", "perspective", "kpi",
           "value", "unit", "target", "status", "score", "trend", "delta", "previous_value", "exceedances_used",
           "exceedances_allowed", "data_capture", "suppressed", "as_of", "catalogue_version", "boundary_version"]
TABLE_COLUMNS = [("area", 24), ("period", 12), ("kpi", 34), ("value", 12), ("unit", 12), ("target", 8),
                 ("status", 8), ("score", 6), ("trend", 5)]



def run(settings: Settings, args: argparse.Namespace) -> int:
    """Print the scorecard rows the options select; exit code 0."""
    population = load_population()
    published = latest_publication(settings.lakehouse_path, as_of=args.as_of)
    rows = select(published, population, args.district, args.period)
    print(render(records(rows, population), args.format), end="")
    return 0


def select(frame: pd.DataFrame, population: Population, district: str | None, period: str | None) -> pd.DataFrame:
    """The rows of one period and/or one district, ordered by period, area and KPI."""
    if period is not None:
        frame = frame[frame["period"] == period]
    if district is not None:
        code = district_code(district, population, set(frame.loc[frame["area_level"] == DISTRICT, "area_code"]))
        frame = frame[(frame["area_level"] == DISTRICT) & (frame["area_code"] == code)]
    order = {name: index for index, name in enumerate(PERIODS)}
    levels = {"city": 0, "district": 1, "barrio": 2}
    keys = frame.assign(_p=frame["period"].map(order), _l=frame["area_level"].map(levels),
                        _c=frame["area_code"].map(lambda c: (len(c), c)))
    return keys.sort_values(["_p", "_l", "_c", "perspective", "kpi_id"]).drop(columns=["_p", "_l", "_c"])


def district_code(wanted: str, population: Population, published: set[str]) -> str:
    """The code of a district given by code or by name (case and accents ignored)."""
    known = {code: population.names.get(code, code) for code in sorted(set(population.districts) | published)}
    for code, name in known.items():
        if _plain(wanted) in (_plain(code), _plain(name)):
            return code
    choices = ", ".join(f"{name} ({code})" for code, name in known.items())
    message = f"Unknown district {wanted!r}; choose one of: {choices}."
    raise ScorecardQueryError(message)


def _plain(text: str) -> str:
    """Text without case or accents, for forgiving name matching (Begona = Begoña)."""
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def records(frame: pd.DataFrame, population: Population) -> list[dict[str, Any]]:
    """Rows as plain JSON-ready dicts in COLUMNS order: times in ISO 8601 UTC, NaN as null."""
    out = []
    for row in frame.rename(columns={"kpi_id": "kpi"}).to_dict("records"):
        row["area_name"] = "Bilbao" if row["area_level"] == "city" else population.names.get(row["area_code"])
        out.append({column: _plain_value(row.get(column)) for column in COLUMNS})
    return out


def _plain_value(value: Any) -> Any:
    """One cell as a JSON value."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def render(rows: Sequence[dict[str, Any]], form: str) -> str:
    """The rows as JSON (a list), CSV with a header, or an aligned text table."""
    if form == "json":
        return json.dumps(list(rows), ensure_ascii=False, indent=1) + "\n"
    if form == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    return _table(rows)


def _table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width text table of the main columns."""
    def cell(row: dict[str, Any], name: str) -> str:
        if name == "area":
            return f"{row['area_level']} {row['area_name'] or row['area_code']}"
        value = row[name]
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    lines = ["  ".join(name.ljust(width) for name, width in TABLE_COLUMNS)]
    lines += ["  ".join(cell(row, name)[:width].ljust(width) for name, width in TABLE_COLUMNS) for row in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n"
