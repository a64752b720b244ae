"""The report's data model: what `build` reads from the lakehouse and `render` turns into HTML."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from bigbilbao.spatial.index import BoundaryLayer


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows, read once from the lakehouse."""

    period: str
    kpis: pd.DataFrame  # latest period, every area, with area_name
    scores: pd.DataFrame  # latest period, every area and perspective, with status
    history: pd.DataFrame  # every period_start of the period kind, for sparklines
    layer: BoundaryLayer
    approximate: bool
    freshness: dict[str, datetime | None]
