"""Reporting periods of the scorecard (day, week, month, year to date) and the like-for-like span before each.

All periods are UTC calendar periods (ISO weeks start on Monday) ending at `as_of` floored to the
hour: `as_of` = 2025-03-08T00:00Z reports the day 2025-03-07, the week from Monday 2025-03-03, the
month from 2025-03-01 and the year from 2025-01-01. The previous span starts one period earlier and
lasts as long as the current one (clipped to the previous period), so a partial week is compared
with the same elapsed part of the week before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from bigbilbao.errors import PeriodError

PERIODS = ("day", "week", "month", "year_to_date")



@dataclass(frozen=True)
class Span:
    """A half-open UTC time span [start, end)."""

    start: datetime
    end: datetime

    @property
    def hours(self) -> float:
        """Length in hours, the denominator of data capture and of yearly rates."""
        return (self.end - self.start).total_seconds() / 3600

    @property
    def year_start(self) -> datetime:
        """1 January (UTC) of the calendar year the span ends in, where EU exceedance counts restart."""
        last = self.end - timedelta(microseconds=1)
        return datetime(last.year, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class ReportingPeriod:
    """One period of the scorecard and the span its trend is compared with."""

    name: str
    current: Span
    previous: Span


def reporting_periods(as_of: datetime, names: tuple[str, ...] = PERIODS) -> tuple[ReportingPeriod, ...]:
    """Return the requested periods ending at `as_of` (floored to the hour), with their comparison spans."""
    if as_of.tzinfo is None:
        message = f"as_of must be timezone-aware (UTC), got naive {as_of.isoformat()}"
        raise PeriodError(message)
    end = as_of.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    periods = []
    for name in names:
        start, previous_start = _starts(name, end - timedelta(microseconds=1))
        previous_end = min(previous_start + (end - start), start)
        periods.append(ReportingPeriod(name, Span(start, end), Span(previous_start, previous_end)))
    return tuple(periods)


def _starts(name: str, last: datetime) -> tuple[datetime, datetime]:
    """Start of the period containing `last` and start of the period before it."""
    day = last.replace(hour=0, minute=0, second=0, microsecond=0)
    if name == "day":
        return day, day - timedelta(days=1)
    if name == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday - timedelta(days=7)
    if name == "month":
        first = day.replace(day=1)
        before = (first - timedelta(days=1)).replace(day=1)
        return first, before
    if name == "year_to_date":
        first = day.replace(month=1, day=1)
        return first, first.replace(year=first.year - 1)
    message = f"unknown period {name!r} (expected one of {', '.join(PERIODS)})"
    raise PeriodError(message)
