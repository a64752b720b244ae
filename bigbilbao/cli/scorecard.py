"""`bigbilbao scorecard show`: argument parsing only; `bigbilbao.scorecard.show` (pandas, delta-rs) loads when run."""

from __future__ import annotations

import argparse
import logging

from bigbilbao.config.settings import Settings
from bigbilbao.scorecard.periods import PERIODS

log = logging.getLogger(__name__)

FORMATS = ("json", "table", "csv")


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register `scorecard show` under the top-level command parser."""
    card = sub.add_parser("scorecard", help="print the published balanced scorecard",
                          description="Read the latest publication of the gold/scorecard Delta table (without "
                                      "Spark) and print its KPI rows.")
    actions = card.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show", parents=[common], help="print KPI rows: area, period, KPI, value, target, status, score, trend",
        description="Print the KPI rows of the latest published scorecard (every area and period unless filtered): "
                    "value, unit, target, status (green/amber/red/no_data), 0-100 score, trend, exceedances and "
                    "data capture.")
    show.add_argument("--format", choices=FORMATS, default="table", help="json, table or csv (default table)")
    show.add_argument("--district", metavar="NAME", help="only this district, by name or code (e.g. Deusto or 1)")
    show.add_argument("--period", choices=PERIODS, help="only this reporting period")
    show.add_argument("--as-of", metavar="VERSION|TIMESTAMP",
                      help="time travel: the scorecard as published at a table version or an ISO time (UTC)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Handle `bigbilbao scorecard ACTION`."""
    from bigbilbao.scorecard import show as scorecard_show

    return scorecard_show.run(settings, args)
