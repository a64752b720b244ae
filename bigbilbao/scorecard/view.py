"""The published scorecard as pandas without a JVM: for an area and period, as of a Delta version or time."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from bigbilbao.errors import BigBilbaoError, ScorecardViewError
from bigbilbao.scorecard.population import load_population
from bigbilbao.tables import read

log = logging.getLogger(__name__)

SCORE_BANDS = (("green", 75.0), ("amber", 50.0))  # an overall or perspective score at least this high
OVERALL = "overall"



def publication(lakehouse: Path, name: str = "scorecard", as_of: read.AsOf = None) -> pd.DataFrame:
    """gold/<name> (scorecard or scorecard_scores) at a version or time: the rows of its latest publication."""
    frame = read.read_pandas(lakehouse, "gold", name, as_of=as_of)
    if frame.empty:
        msg = f"gold/{name} is empty; publish the scorecard with `bigbilbao run scorecard` first."
        raise ScorecardViewError(msg)
    return frame[frame["as_of"] == frame["as_of"].max()].reset_index(drop=True)


def area_names(lakehouse: Path) -> dict[str, str]:
    """Area code -> display name: the city, the districts and barrios of the current boundaries
    (else the population file)."""
    population = load_population()
    names = {population.city_code: "Bilbao", **population.names}
    try:
        boundaries = read.read_pandas(lakehouse, "reference", "boundaries", ["layer", "code", "name", "valid_from"])
    except BigBilbaoError:
        return names
    latest = boundaries.sort_values("valid_from").drop_duplicates(["layer", "code"], keep="last")
    names.update(dict(zip(latest["code"].astype(str), latest["name"].astype(str))))
    return names


def resolve_area(area: str | None, names: dict[str, str]) -> str | None:
    """An area code from a code or a name (case-insensitive); None for every area."""
    if area is None:
        return None
    if area in names:
        return area
    by_name = {name.casefold(): code for code, name in names.items()}
    if area.casefold() in by_name:
        return by_name[area.casefold()]
    msg = f"Unknown area '{area}'; use a district name or code such as {', '.join(sorted(names.values())[:4])}."
    raise ScorecardViewError(msg)


def latest_period(frame: pd.DataFrame, period: str | None) -> pd.DataFrame:
    """The rows of the latest period_start of each period kind (or of one kind)."""
    if period is not None:
        frame = frame[frame["period"] == period]
        if frame.empty:
            msg = f"The scorecard has no '{period}' period; use day, week, month or year_to_date."
            raise ScorecardViewError(msg)
    newest = frame.groupby("period")["period_start"].transform("max")
    return frame[frame["period_start"] == newest].reset_index(drop=True)


def scorecard(lakehouse: Path, area: str | None = None, period: str | None = None,
              as_of: read.AsOf = None) -> pd.DataFrame:
    """KPI rows of the latest publication for one area (name or code) and the latest period of a kind."""
    return _select(lakehouse, "scorecard", area, period, as_of)


def scores(lakehouse: Path, area: str | None = None, period: str | None = None,
           as_of: read.AsOf = None) -> pd.DataFrame:
    """Perspective and overall scores (with a status band) for one area and the latest period of a kind."""
    frame = _select(lakehouse, "scorecard_scores", area, period, as_of)
    return frame.assign(status=frame["score"].map(score_status))


def _select(lakehouse: Path, name: str, area: str | None, period: str | None, as_of: read.AsOf) -> pd.DataFrame:
    """One scorecard table's latest publication, filtered to an area and the latest period, with area names."""
    names = area_names(lakehouse)
    code = resolve_area(area, names)
    frame = latest_period(publication(lakehouse, name, as_of), period)
    if code is not None:
        frame = frame[frame["area_code"] == code].reset_index(drop=True)
    return frame.assign(area_name=frame["area_code"].map(names).fillna(frame["area_code"]))


def history(lakehouse: Path, period: str, as_of: read.AsOf = None) -> pd.DataFrame:
    """Every published period_start of one period kind (each key keeps its latest publication), oldest first."""
    frame = read.read_pandas(lakehouse, "gold", "scorecard", as_of=as_of)
    frame = frame[frame["period"] == period]
    return frame.sort_values(["kpi_id", "area_code", "period_start"]).reset_index(drop=True)


def score_status(score: float | None) -> str:
    """green, amber or red for a 0-100 score by SCORE_BANDS; no_data when there is none."""
    if score is None or pd.isna(score):
        return "no_data"
    for status, floor in SCORE_BANDS:
        if score >= floor:
            return status
    return "red"

