"""What an operator reads every minute while the streams run: one line per query from Spark's progress reports.

Pure (the progress reports are the plain dicts `StreamingQuery.recentProgress` returns), so it is tested
without Spark. Rates are over the reports of the last minute; lag is what the sources say is still waiting:
offsets behind the latest for Kafka, files (and bytes) not yet read for a Delta table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

WINDOW = timedelta(minutes=1)


def parse_time(text: str) -> datetime:
    """A progress report's timestamp ('2026-12-04T16:40:00.123Z') as aware UTC."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def lag(report: Mapping[str, Any]) -> str:
    """What the sources of the latest report still have to read, in their own units."""
    behind = files = 0
    kinds = set()
    for source in report.get("sources") or []:
        metrics = source.get("metrics") or {}
        if "maxOffsetsBehindLatest" in metrics:
            kinds.add("offsets")
            behind += int(float(metrics["maxOffsetsBehindLatest"]))
        if "numFilesOutstanding" in metrics:
            kinds.add("files")
            files += int(float(metrics["numFilesOutstanding"]))
    parts = ([f"{behind:,} offsets"] if "offsets" in kinds else []) + ([f"{files:,} files"] if "files" in kinds else [])
    return " + ".join(parts) if parts else "unknown"


def summary_line(name: str, reports: Sequence[Mapping[str, Any]], now: datetime) -> str | None:
    """One line for one query: rows in over the last minute, processing rate, lag, last batch and its duration."""
    if not reports:
        return None
    recent = [r for r in reports if now - parse_time(r["timestamp"]) <= WINDOW]
    rows = sum(int(r.get("numInputRows") or 0) for r in recent)
    busy_ms = sum(int((r.get("durationMs") or {}).get("triggerExecution") or 0)
                  for r in recent if r.get("numInputRows"))
    processing = f"{rows / (busy_ms / 1000):,.0f}/s while busy" if busy_ms else "idle"
    last = reports[-1]
    took = int((last.get("durationMs") or {}).get("triggerExecution") or 0) / 1000
    return (f"query {name}: {rows:,} rows in the last minute ({rows / WINDOW.total_seconds():,.1f}/s), "
            f"{processing}, lag {lag(last)}, last batch {last.get('batchId')} took {took:.1f} s")
