"""The topology block recovers known costs from synthetic drains and leaves what was not measured null."""

from __future__ import annotations

import pytest

from benchmarks.topology_report import topology_block


def run(events: int, fixed_s: float, us_per_event: float, cpu_fixed: float, cpu_us: float) -> dict:
    return {"s": fixed_s + events * us_per_event / 1e6, "cpu_s": cpu_fixed + events * cpu_us / 1e6}


def drains(events: int) -> dict:
    return {"events": events, "plain_copy": run(events, 2.0, 20.0, 3.0, 15.0),
            "round": run(events, 4.0, 50.0, 6.0, 45.0)}


def step(rate: int, achieved: float, kept_up: bool, p95_silver: float, p95_gold: float) -> dict:
    return {"offered_per_s": rate, "produced_per_s": achieved, "sustained": kept_up, "seconds": 60.0,
            "cpu_s": 30.0, "producer_cpu_s": 12.0, "latency_to_table_s": {"p95": p95_silver},
            "latency_to_gold_s": {"p95": p95_gold}}


def test_cost_model_latency_and_round_figures_come_from_the_measurements() -> None:
    result = {
        "one_feed": {"small": drains(20_000), "large": drains(200_000)},
        "live": [step(100, 99.0, True, 2.5, 3.0), step(1000, 990.0, True, 4.0, 4.5), step(5000, 3100.0, False, 60, 61)],
        "all_feeds": {"events": 60_000, "plain_copy": {"s": 3.0}, "round": {
            "s": 30.0, "queries": 1, "micro_batches": 2, "spark_jobs": 240, "delta_commits": 90}},
    }
    block = topology_block(result)
    assert block["cpu_per_event_vs_plain_copy"] == pytest.approx(3.0)
    assert block["cpu_us_per_event"] == {"round": 45.0, "plain_copy": 15.0}
    assert block["fixed_s"] == {"round": 4.0, "plain_copy": 2.0}
    assert block["round_fixed_vs_plain_batch"] == pytest.approx(2.0)
    assert block["drain_vs_plain_copy"] == pytest.approx(round((2 + 4.0) / (4 + 10.0), 3))
    assert block["sustained_one_feed_events_per_s"] == 990.0
    assert (block["p95_silver_s_at_1000"], block["p95_gold_s_at_1000"]) == (4.0, 4.5)
    assert block["cores_at_100_per_s"] == pytest.approx(0.3)
    assert (block["queries_running"], block["jobs_per_round"], block["commits_per_round"]) == (1, 120.0, 45.0)
    assert block["all_feeds_drain_vs_plain_copy"] == pytest.approx(0.1)
    assert "sustained_all_feeds_events_per_s" in block["not_measured"]
    assert "cpu_per_event_vs_plain_copy" not in block["not_measured"]


def test_a_run_without_live_steps_reports_them_as_not_measured() -> None:
    block = topology_block({"one_feed": {"small": drains(1_000), "large": drains(10_000)}})
    assert block["sustained_one_feed_events_per_s"] is None
    assert {"p95_silver_s_at_1000", "p95_gold_s_at_1000", "sustained_one_feed_events_per_s"} <= set(
        block["not_measured"])
