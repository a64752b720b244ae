"""The e2e benchmark's cost model: two drain sizes give back each stage's fixed seconds and cost per event."""

from __future__ import annotations

import pytest

from benchmarks.e2e_report import STAGES, analysis, cost_model, drain_rates

# stage -> (fixed seconds, microseconds per event) of a made-up machine
TRUE_COSTS = {"ingest": (2.0, 40.0), "silver": (9.0, 120.0), "gold": (6.0, 20.0), "plain_copy": (1.5, 15.0)}


def _drain(events: int) -> dict:
    """A raw drain whose stage times follow TRUE_COSTS exactly, as `run_drain` records them."""
    run = {"events": events, "sensors": 1000, "boundaries": "barrios_46"}
    for stage, (fixed, per_event) in TRUE_COSTS.items():
        seconds = fixed + events * per_event / 1e6
        run["plain_copy_s" if stage == "plain_copy" else stage] = seconds
        run[f"{stage}_cpu"] = 2 * seconds
    return run


def test_two_sizes_give_back_fixed_and_per_event_costs() -> None:
    model = cost_model(_drain(300_000), _drain(20_000))
    for stage, (fixed, per_event) in TRUE_COSTS.items():
        assert model[stage]["fixed_s"] == pytest.approx(fixed)
        assert model[stage]["per_event_us"] == pytest.approx(per_event)
        assert model[stage]["capacity_events_per_s"] == pytest.approx(1e6 / per_event)
    chain = sum(TRUE_COSTS[s][1] for s in STAGES)
    assert model["chain"]["per_event_us"] == pytest.approx(chain)
    assert model["capacity_vs_plain_copy"] == pytest.approx(TRUE_COSTS["plain_copy"][1] / chain)
    assert model["events"] == [20_000, 300_000]


def test_a_drain_that_got_no_slower_has_no_capacity() -> None:
    small, big = _drain(20_000), _drain(300_000)
    big["gold"] = small["gold"]
    model = cost_model(big, small)
    assert model["gold"]["capacity_events_per_s"] is None
    assert model["gold"]["per_event_us"] == pytest.approx(0.0)


def test_analysis_names_the_slowest_stage_and_the_per_event_ratio() -> None:
    big = _drain(300_000)
    model = cost_model(big, _drain(20_000))
    text = analysis(drain_rates(big), 300_000 / big["plain_copy_s"], model)
    assert "The slowest stage, silver" in text
    assert "silver 9.0 s + 120 µs" in text
    assert f"{180 / 15:.1f} times the plain copy per event" in text
