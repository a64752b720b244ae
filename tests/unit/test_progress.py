"""The operator's minute line: rates over the last minute, lag from the sources, the last batch and its duration."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bigbilbao.stages.progress import lag, summary_line

NOW = datetime(2026, 12, 4, 16, 40, tzinfo=timezone.utc)


def report(seconds_ago: float, batch: int, rows: int, took_ms: int, sources: list[dict]) -> dict:
    """A StreamingQueryProgress as `json.loads(progress.json)` gives it (fields the line uses, as Spark names them)."""
    stamp = (NOW - timedelta(seconds=seconds_ago)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"name": "bronze", "timestamp": stamp, "batchId": batch, "numInputRows": rows,
            "durationMs": {"addBatch": took_ms - 40, "triggerExecution": took_ms}, "sources": sources}


def kafka(behind: int) -> dict:
    return {"description": "KafkaV2[Subscribe[traffic_flow]]", "numInputRows": 0,
            "metrics": {"avgOffsetsBehindLatest": f"{behind / 2}", "maxOffsetsBehindLatest": str(behind),
                        "minOffsetsBehindLatest": "0"}}


def delta(files: int) -> dict:
    return {"description": "DeltaSource[file:/lake/bronze/noise]", "numInputRows": 0,
            "metrics": {"numBytesOutstanding": str(files * 1000), "numFilesOutstanding": str(files)}}


def test_rates_count_only_the_last_minute_and_busy_time() -> None:
    reports = [report(90, 6, 10_000, 4_000, [kafka(0)]),  # older than a minute: not counted
               report(50, 7, 1_200, 2_000, [kafka(300)]),
               report(20, 8, 0, 50, [kafka(0)]),  # an empty trigger is not busy time
               report(5, 9, 1_800, 1_000, [kafka(120)])]
    line = summary_line("bronze", reports, NOW)
    assert line == ("query bronze: 3,000 rows in the last minute (50.0/s), 1,000/s while busy, "
                    "lag 120 offsets, last batch 9 took 1.0 s")


def test_delta_sources_report_files_outstanding_and_an_idle_query_says_so() -> None:
    reports = [report(10, 3, 0, 30, [delta(4)])]
    assert summary_line("silver-noise", reports, NOW) == (
        "query silver-noise: 0 rows in the last minute (0.0/s), idle, lag 4 files, last batch 3 took 0.0 s")
    assert summary_line("silver-noise", [], NOW) is None


def test_lag_adds_sources_and_says_unknown_without_metrics() -> None:
    assert lag({"sources": [kafka(5), kafka(7), delta(2)]}) == "12 offsets + 2 files"
    assert lag({"sources": [{"description": "rate", "metrics": {}}]}) == "unknown"
    assert lag({}) == "unknown"
