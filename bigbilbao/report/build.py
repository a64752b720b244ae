"""`bigbilbao report`: the published scorecard as one self-contained static HTML page (DIR/index.html)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import pandas as pd

from bigbilbao.errors import BigBilbaoError, PipelineError
from bigbilbao.report.model import ReportData
from bigbilbao.report.render import render_page
from bigbilbao.scorecard import view as scorecard_view
from bigbilbao.spatial.index import BoundaryLayer
from bigbilbao.tables import read

log = logging.getLogger(__name__)


def write_report(lakehouse: Path, out: Path, period: str = "month", as_of: read.AsOf = None) -> Path:
    """Read the scorecard (as of a version or time) and write out/index.html; returns its path."""
    data = collect(Path(lakehouse), period, as_of)
    page = render_page(data, stylesheet())
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        path = Path(out) / "index.html"
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        msg = f"Cannot write the report into {out} ({exc.strerror}); choose a writable folder with --out."
        raise PipelineError(msg) from exc
    log.info("report written to %s (%d KPI rows, %d districts on the map)", path, len(data.kpis), len(data.layer))
    return path


def collect(lakehouse: Path, period: str, as_of: read.AsOf = None) -> ReportData:
    """The report's data: latest period of the scorecard, scores, sparkline history, districts and freshness."""
    kpis = scorecard_view.scorecard(lakehouse, period=period, as_of=as_of)
    scores = scorecard_view.scores(lakehouse, period=period, as_of=as_of)
    history = scorecard_view.history(lakehouse, period, as_of=as_of)
    layer, approximate = districts(lakehouse)
    return ReportData(period, kpis, scores, history, layer, approximate, freshness(lakehouse, kpis))


def districts(lakehouse: Path) -> tuple[BoundaryLayer, bool]:
    """The current district layer (the packaged demo districts when none was imported) and whether it is approximate."""
    from bigbilbao import spatial
    from bigbilbao.spatial import boundary_store

    try:
        layer = boundary_store.load_current(lakehouse, "districts")
    except BigBilbaoError:
        log.info("no district boundaries in the lakehouse; the map shows the packaged approximate districts")
        return spatial.load_demo_districts(), True
    rows = read.read_pandas(lakehouse, "reference", "boundaries", ["layer", "version", "approximate"])
    flags = rows.loc[(rows["layer"] == "districts") & (rows["version"] == layer.version), "approximate"]
    return layer, bool(flags.any())


def freshness(lakehouse: Path, kpis: pd.DataFrame) -> dict[str, datetime | None]:
    """When the scorecard was computed and published, the newest reading in gold and the latest silver commit."""
    newest_reading = None
    try:
        hours = read.read_table(lakehouse, "gold", "hourly", ["hour_start"]).column("hour_start")
        if len(hours):
            newest_reading = max(v for v in hours.to_pylist() if v is not None)
    except BigBilbaoError:
        log.info("gold/hourly is missing; the report shows no newest reading")
    commits = [read.last_commit(lakehouse, layer, name)[1]
               for layer, name in read.list_tables(lakehouse) if layer == "silver"]
    return {"as_of": _utc(kpis["as_of"].max()), "published_at": _utc(kpis["published_at"].max()),
            "newest_reading": _utc(newest_reading), "silver_commit": max(commits) if commits else None}


def _utc(value: object) -> datetime | None:
    """A pandas/pyarrow/naive time as an aware UTC datetime (None for missing)."""
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime().astimezone(timezone.utc)


def stylesheet() -> str:
    """The page's CSS, bundled with the package and inlined."""
    return (resources.files("bigbilbao") / "resources" / "report.css").read_text(encoding="utf-8")
