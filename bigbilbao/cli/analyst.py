"""`bigbilbao report` and `bigbilbao catalog`: the analysts' commands, parsed here, run without a JVM."""

from __future__ import annotations

import argparse
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bigbilbao.config.settings import Settings

log = logging.getLogger(__name__)


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register `report` and `catalog` under the top-level command parser."""
    rep = sub.add_parser("report", parents=[common], help="write the scorecard as a self-contained HTML page",
                         description="Write DIR/index.html: a district map coloured by overall status, "
                                     "perspective tiles, KPI tables with targets, trends and sparklines, "
                                     "exceedances and data freshness. No external resources; no Spark.")
    rep.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write index.html into")
    rep.add_argument("--period", default="month", choices=["day", "week", "month", "year_to_date"],
                     help="reporting period shown (default month)")
    rep.add_argument("--as-of", metavar="VERSION|TIMESTAMP",
                     help="the scorecard as it was at a Delta version or time (default: latest)")
    cat = sub.add_parser("catalog", parents=[common], help="list the lakehouse tables with governance and freshness",
                         description="Every Delta table with owner, steward, classification, retention and "
                                     "description (table properties), schema, row count, last commit time "
                                     "and the latest data-quality pass rate. No Spark.")
    cat.add_argument("--format", choices=["table", "json"], default="table", help="output format (default table)")
    cat.add_argument("--apply", action="store_true",
                     help="first write the governance fields from the settings onto every table")


def run_report(settings: Settings, args: argparse.Namespace) -> int:
    """Handle `bigbilbao report`."""
    from bigbilbao import report

    path = report.write_report(settings.lakehouse_path, args.out, period=args.period, as_of=args.as_of)
    print(f"wrote {path}")
    return 0


def run_catalog(settings: Settings, args: argparse.Namespace) -> int:
    """Handle `bigbilbao catalog`."""
    from bigbilbao.errors import PipelineError
    from bigbilbao.tables import catalog

    lakehouse = settings.lakehouse_path
    if args.apply:
        changed = catalog.apply_properties(lakehouse, settings)
        log.info("governance properties updated on %d table(s)", changed)
    entries = catalog.describe(lakehouse)
    if not entries:
        msg = f"No Delta tables under {lakehouse}; run the pipeline first (`bigbilbao demo` or `bigbilbao run`)."
        raise PipelineError(msg)
    if args.format == "json":
        print(json.dumps([entry_json(e) for e in entries], indent=2))
    else:
        print(format_entries(entries))
    return 0


def entry_json(entry: Any) -> dict[str, Any]:
    """One catalogue entry as plain JSON values."""
    return {"table": entry.table, "layer": entry.layer, "name": entry.name, **entry.governance,
            "rows": entry.rows, "version": entry.version, "last_commit": _iso(entry.last_commit),
            "dq_pass_rate": entry.dq_pass_rate, "dq_measured_at": _iso(entry.dq_measured_at),
            "schema": entry.schema}


def format_entries(entries: list[Any]) -> str:
    """A readable listing: one block per table."""
    lines = []
    for e in entries:
        g = e.governance
        rate = "-" if e.dq_pass_rate is None else f"{100 * e.dq_pass_rate:.1f} %"
        lines.append(f"{e.table}  [{g['classification'] or 'unclassified'}]  {e.rows} rows  "
                     f"last commit {_iso(e.last_commit)} (v{e.version})  DQ pass {rate}")
        lines.append(f"    owner: {g['owner'] or '-'}; steward: {g['steward'] or '-'}; "
                     f"retention: {g['retention'] or '-'}")
        lines.append(f"    {g['description'] or '(no description)'}")
        lines.append("    schema: " + ", ".join(f"{c['name']} {c['type']}" for c in e.schema))
    return "\n".join(lines)


def _iso(moment: datetime | None) -> str | None:
    """UTC ISO 8601 with a Z, or None."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
