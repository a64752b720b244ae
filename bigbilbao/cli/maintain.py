"""`bigbilbao maintain`: compact and vacuum the lakehouse tables, safe while the streams write."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from bigbilbao.config.settings import Settings
from bigbilbao.errors import PipelineError
from bigbilbao.tables.maintain import TableMaintenance

HEADER = f"{'table':34} {'files before':>12} {'after':>6} {'compacted':>9} {'vacuumed':>8} {'retries':>7} {'s':>6}"


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register `maintain` under the top-level command parser."""
    cmd = sub.add_parser("maintain", parents=[common], help="compact (OPTIMIZE) and VACUUM the Delta tables",
                         description="Compact small files and delete files older than the retention that no "
                                     "table version still needs, table by table. Safe while the streams write: "
                                     "compaction changes no data and conflicting commits are retried. No Spark. "
                                     "Defaults come from the settings' `maintenance` section.")
    cmd.add_argument("--table", action="append", metavar="GLOB",
                     help="only tables whose '<layer>/<name>' matches, e.g. 'silver/*' (repeatable)")
    cmd.add_argument("--retention-hours", type=int, metavar="N",
                     help="VACUUM keeps removed files this many hours (default: maintenance.vacuum_retention_hours)")
    cmd.add_argument("--no-optimize", action="store_true", help="skip compaction")
    cmd.add_argument("--no-vacuum", action="store_true", help="skip VACUUM")
    cmd.add_argument("--format", choices=["table", "json"], default="table", help="output format (default table)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Handle `bigbilbao maintain`: one line per table as it finishes."""
    from bigbilbao.tables import maintain

    chosen = settings.maintenance
    overrides = {"tables": tuple(args.table) if args.table else chosen.tables,
                 "vacuum_retention_hours": chosen.vacuum_retention_hours if args.retention_hours is None
                 else args.retention_hours,
                 "optimize": chosen.optimize and not args.no_optimize, "vacuum": chosen.vacuum and not args.no_vacuum}
    chosen = dataclasses.replace(chosen, **overrides)
    if not maintain.selected_tables(settings.lakehouse_path, chosen.tables):
        msg = (f"No Delta table under {settings.lakehouse_path} matches {', '.join(chosen.tables)}; "
               "run the pipeline first or check --table.")
        raise PipelineError(msg)
    if args.format == "table":
        print(HEADER, flush=True)
    results = maintain.maintain(settings.lakehouse_path, chosen,
                                report=_print_row if args.format == "table" else None)
    if args.format == "json":
        print(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
    return 0


def _print_row(result: TableMaintenance) -> None:
    """One table's line, printed as soon as it is done (progress on a big lakehouse)."""
    print(f"{result.table:34} {result.files_before:12d} {result.files_after:6d} {result.files_compacted:9d} "
          f"{result.files_vacuumed:8d} {result.retries:7d} {result.seconds:6.1f}", file=sys.stdout, flush=True)
