"""The `topology` block of the benchmark JSON: issue #19's ratios, computed from `benchmarks.topology`'s raw figures.

Pure arithmetic on the measured dictionary (no Spark), so it is unit-tested on synthetic figures.
"""

from __future__ import annotations

import json
from pathlib import Path

GOLD_HISTORY = Path(__file__).resolve().parent / "results" / "gold_history.json"


def cost_model(small: dict, large: dict, events: tuple[int, int], key: str) -> tuple[float, float]:
    """(fixed part, cost per event) of `key` (seconds or CPU seconds) from two backlog sizes, a straight line."""
    per_event = (large[key] - small[key]) / (events[1] - events[0])
    return small[key] - per_event * events[0], per_event


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return round(top / bottom, 3) if top is not None and bottom else None


def sustained(steps: list[dict]) -> float | None:
    """The highest achieved rate of a live step that kept up (None when none did)."""
    kept = [s["produced_per_s"] for s in steps if s.get("sustained")]
    return round(max(kept), 1) if kept else None


def at_rate(steps: list[dict], rate: int) -> dict | None:
    return next((s for s in steps if s.get("offered_per_s") == rate), None)


def gold_history_ratio(path: Path = GOLD_HISTORY) -> float | None:
    """Gold batch time at 10 M silver rows over at 0.3 M, from `benchmarks.gold_history`'s own run."""
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("gold_history_ratio")


def topology_block(result: dict) -> dict:
    """Every figure of the issue's table that this run measured; the others are null and listed as not measured."""
    one = result.get("one_feed", {})
    small, large = one.get("small", {}), one.get("large", {})
    events = (small.get("events", 0), large.get("events", 0))
    block: dict = {}
    if "round" in small and "round" in large and events[1] > events[0]:
        round_fixed, round_cpu = cost_model(small["round"], large["round"], events, "cpu_s")
        plain_fixed, plain_cpu = cost_model(small["plain_copy"], large["plain_copy"], events, "cpu_s")
        round_wall_fixed, _ = cost_model(small["round"], large["round"], events, "s")
        plain_wall_fixed, _ = cost_model(small["plain_copy"], large["plain_copy"], events, "s")
        block["cpu_per_event_vs_plain_copy"] = _ratio(round_cpu, plain_cpu)
        block["cpu_us_per_event"] = {"round": round(round_cpu * 1e6, 1), "plain_copy": round(plain_cpu * 1e6, 1)}
        block["drain_vs_plain_copy"] = _ratio(large["plain_copy"]["s"], large["round"]["s"])
        block["round_fixed_vs_plain_batch"] = _ratio(round_wall_fixed, plain_wall_fixed)
        block["fixed_s"] = {"round": round(round_wall_fixed, 2), "plain_copy": round(plain_wall_fixed, 2)}
        if "staged" in large:
            block["staged_drain_vs_plain_copy"] = _ratio(large["plain_copy"]["s"], large["staged"]["s"])
    steps = result.get("live", [])
    block["sustained_one_feed_events_per_s"] = sustained(steps)
    thousand, hundred = at_rate(steps, 1000), at_rate(steps, 100)
    block["p95_silver_s_at_1000"] = thousand["latency_to_table_s"].get("p95") if thousand else None
    block["p95_gold_s_at_1000"] = thousand["latency_to_gold_s"].get("p95") if thousand else None
    if hundred:
        block["cores_at_100_per_s"] = round((hundred["cpu_s"] - hundred["producer_cpu_s"]) / hundred["seconds"], 3)
    mixed = result.get("all_feeds", {})
    if "round" in mixed:
        batches = max(1, mixed["round"]["micro_batches"])
        block["queries_running"] = mixed["round"]["queries"]
        block["jobs_per_round"] = round(mixed["round"]["spark_jobs"] / batches, 1)
        block["commits_per_round"] = round(mixed["round"]["delta_commits"] / batches, 1)
        block["all_feeds_drain_events_per_s"] = round(mixed["events"] / mixed["round"]["s"], 1)
        block["all_feeds_drain_vs_plain_copy"] = _ratio(mixed["plain_copy"]["s"], mixed["round"]["s"])
        if "staged" in mixed:
            block["staged_queries_running"] = mixed["staged"]["queries"]
            block["staged_all_feeds_drain_vs_plain_copy"] = _ratio(mixed["plain_copy"]["s"], mixed["staged"]["s"])
    block["sustained_all_feeds_events_per_s"] = None  # live steps run one feed; see all_feeds_drain_events_per_s
    block["gold_history_ratio"] = gold_history_ratio()
    block["not_measured"] = sorted(k for k, v in block.items() if v is None)
    return block
