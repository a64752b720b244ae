"""The e2e benchmark's JSON document: rates, ratios, latency percentiles, scaling, books and targets."""

from __future__ import annotations

import os
from datetime import datetime, timezone

STAGES = ("ingest", "silver", "gold")
TARGETS = {"max_sustained_events_per_s": 100_000, "vs_plain_copy": 0.5, "p95_silver_s_at_10000": 2.0}


def memory_gib() -> float:
    """Physical memory of the machine."""
    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)


def drain_rates(run: dict) -> dict:
    """Events/s and CPU microseconds per event of each stage and of the whole chain for one drain."""
    count = run["events"]
    total = sum(run[s] for s in STAGES)
    cpu = sum(run[f"{s}_cpu"] for s in STAGES)
    return {"events": count, "sensors": run["sensors"], "boundaries": run["boundaries"],
            "events_per_s": count / total, "cpu_us_per_event": 1e6 * cpu / count,
            **{f"{s}_events_per_s": count / run[s] for s in STAGES},
            **{f"{s}_cpu_us_per_event": 1e6 * run[f"{s}_cpu"] / count for s in STAGES}}


def cost_model(big: dict, small: dict) -> dict:
    """Each stage's (and the plain copy's) time as fixed seconds + microseconds per event, from two backlog sizes.

    A drain of n events takes about fixed + n x per_event; capacity is the rate once batches are large enough for
    the fixed part not to matter (1e6 / per_event). Noise can make a fixed part slightly negative: it is kept.
    """
    extra = big["events"] - small["events"]
    parts = {s: (small[s], big[s]) for s in STAGES}
    parts["chain"] = (sum(small[s] for s in STAGES), sum(big[s] for s in STAGES))
    if "plain_copy_s" in small:
        parts["plain_copy"] = (small["plain_copy_s"], big["plain_copy_s"])
    model = {}
    for name, (short, long) in parts.items():
        per_event = (long - short) / extra
        model[name] = {"fixed_s": short - small["events"] * per_event, "per_event_us": 1e6 * per_event,
                       "capacity_events_per_s": 1 / per_event if per_event > 0 else None}
    chain, plain = model["chain"]["capacity_events_per_s"], model.get("plain_copy", {}).get("capacity_events_per_s")
    model["capacity_vs_plain_copy"] = chain / plain if chain and plain else None
    model["events"] = [small["events"], big["events"]]
    return model


def latency_table(live: list[dict]) -> dict:
    """Per offered rate: produce -> silver percentiles (top level), plus -> bronze and -> gold."""
    table = {}
    for step in live:
        silver = step["latency_to_table_s"]
        table[str(step["offered_per_s"])] = {
            "p50": silver.get("p50"), "p95": silver.get("p95"), "p99": silver.get("p99"),
            "achieved_per_s": round(step["produced_per_s"]), "sustained": step["sustained"],
            "to_bronze": step["latency_bronze_s"], "to_silver": silver, "to_gold": step["latency_to_gold_s"]}
    return table


def document(python_rate: float, drains: dict, live: list[dict], books: dict, cold: dict | None,
             started: float) -> dict:
    """Assemble benchmarks/results/e2e.json from the raw measurements."""
    main = drains["main"]
    plain = main["events"] / main["plain_copy_s"]
    rates = {name: drain_rates(run) for name, run in drains.items()}
    sustained = [s["produced_per_s"] for s in live if s["sustained"]]
    best = round(max(sustained)) if sustained else None
    latency = latency_table(live)
    ratio = rates["main"]["events_per_s"] / plain
    p95 = (latency.get("10000") or {}).get("p95")
    model = cost_model(main, drains["main_small"]) if "main_small" in drains else None
    return {
        "benchmark": "e2e", "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(datetime.now(timezone.utc).timestamp() - started, 1),
        "cores": os.cpu_count(), "memory_gib": memory_gib(), "spark_master": "local[2]",
        "max_sustained_events_per_s": best, "plain_copy_events_per_s": plain,
        "backlog_drain_events_per_s": rates["main"]["events_per_s"], "vs_plain_copy": ratio,
        "sustained_vs_plain_copy": best / plain if best else None,
        "vs_plain_copy_by_cpu": main["plain_copy_cpu"] / sum(main[f"{s}_cpu"] for s in STAGES),
        "events_per_2_cpu_s": {"bigbilbao": 2 * main["events"] / sum(main[f"{s}_cpu"] for s in STAGES),
                               "plain_copy": 2 * main["events"] / main["plain_copy_cpu"]},
        "latency_s": latency,
        "lost": sum(b["lost"] for b in books.values()), "duplicated": sum(b["duplicated"] for b in books.values()),
        "producer_ceiling_events_per_s": {"kafka_python_2_processes": python_rate,
                                          "spark_kafka_sink": main["events"] / main["spark_producer_s"]},
        "drains": rates, "scaling_by_rate": [
            {"offered_per_s": s["offered_per_s"], "achieved_per_s": s["produced_per_s"],
             "cpu_us_per_event": 1e6 * (s["cpu_s"] - s["producer_cpu_s"]) / max(1, s["produced"]),
             "producer_cpu_us_per_event": 1e6 * s["producer_cpu_s"] / max(1, s["produced"]),
             "caught_up_after_s": s["caught_up_after_s"], "lag_growth_per_s": s["lag_growth_per_s"]} for s in live],
        "targets": {"max_sustained_events_per_s": {"target": TARGETS["max_sustained_events_per_s"], "measured": best,
                                                   "met": bool(best and best >= 100_000)},
                    "vs_plain_copy": {"target": 0.5, "measured": ratio, "met": ratio >= 0.5},
                    "p95_silver_s_at_10000": {"target": 2.0, "measured": p95,
                                              "met": bool(p95 is not None and p95 <= 2)}},
        "cost_model": model,
        "analysis": analysis(rates["main"], plain, model),
        "cold_start": cold, "books": books, "live": live, "raw_drains": drains,
        "notes": NOTES,
    }


def analysis(main: dict, plain: float, model: dict | None) -> str:
    """Where a drain's time goes, from the per-stage rates and the cost model measured in the same run."""
    shares = {s: main["events"] / main[f"{s}_events_per_s"] for s in STAGES}
    total = sum(shares.values())
    parts = ", ".join(f"{s} {100 * t / total:.0f}%" for s, t in shares.items())
    slowest = max(shares, key=shares.get)
    text = (f"Draining the backlog took {total:.1f} s: {parts}. The slowest stage, {slowest}, runs at "
            f"{main[f'{slowest}_events_per_s']:,.0f} events/s alone; the plain copy at {plain:,.0f}/s.")
    if not model or "plain_copy" not in model:
        return text
    costs = ", ".join(f"{s} {model[s]['fixed_s']:.1f} s + {model[s]['per_event_us']:,.0f} µs" for s in STAGES)
    return (f"{text} Per drain, fixed + per event: {costs}; plain copy {model['plain_copy']['fixed_s']:.1f} s + "
            f"{model['plain_copy']['per_event_us']:,.0f} µs. With the fixed parts amortised the chain costs "
            f"{model['chain']['per_event_us'] / model['plain_copy']['per_event_us']:.1f} times the plain copy per "
            "event.")


NOTES = ("max_sustained_events_per_s: the highest rate a live step achieved (events Kafka received per second of the "
         "step) while every stage streamed at once and kept up: silver drained within 30 s of the producer stopping "
         "and the silver lag grew by at most 5% of the rate over the step's second half (at least three lag samples, "
         "else no verdict), and every event of the step reached silver. Steps shorter than the chain's own latency "
         "(about 15 s) cannot show a stream keeping up. backlog_drain_events_per_s: "
         "a pre-produced backlog through ingest, silver and gold one stage after the other (availableNow), the "
         "machine's capacity for the chain; vs_plain_copy divides it by a plain Kafka -> Delta copy of the same "
         "backlog. cost_model: the main drain and the same configuration at the scaling size (main_small) split each "
         "stage's time into fixed seconds plus microseconds per event; capacity_events_per_s is the rate once "
         "batches are large enough to amortise the fixed part. Latency: Kafka CreateTime (set by the producer at send) "
         "to the modification time of the Delta "
         "log file of the version that first holds the event (bronze, silver); gold: the commit of the first gold "
         "micro-batch planned after that silver version. Offered load comes from a Spark rate-source producer in "
         "its own JVM (local[1]) on the same 2 cores, so it competes with the pipeline; kafka-python's own ceiling "
         "is in producer_ceiling_events_per_s. The machine is shared: read load_average and quote ratios.")


def markdown(result: dict) -> str:
    """The README's summary table of one run (rates, ratios, latency percentiles), machine and load included."""
    def rate(value: float | None) -> str:
        return "not reached" if value is None else f"{value:,.0f}"

    drains = result["drains"]
    lines = [f"Measured {result['generated_at']} on {result['cores']} cores, {result['memory_gib']} GiB, load average "
             f"{result['load_average']['start'][0]:.1f} -> {result['load_average']['end'][0]:.1f} (shared machine).",
             "", "| measure | value |", "|---|---|",
             f"| max sustained, all stages live (events/s) | {rate(result['max_sustained_events_per_s'])} |",
             f"| backlog drain ingest -> silver -> gold (events/s) | {rate(result['backlog_drain_events_per_s'])} |",
             f"| plain Kafka -> Delta copy (events/s) | {rate(result['plain_copy_events_per_s'])} |",
             f"| drain / plain copy, wall (CPU) | {result['vs_plain_copy']:.2f} "
             f"({result['vs_plain_copy_by_cpu']:.2f}) |",
             f"| events per 2 CPU-s: Big Bilbao / plain copy | {rate(result['events_per_2_cpu_s']['bigbilbao'])} / "
             f"{rate(result['events_per_2_cpu_s']['plain_copy'])} |",
             "| stage rates ingest / silver / gold (events/s) | "
             + " / ".join(rate(drains["main"][f"{s}_events_per_s"]) for s in STAGES) + " |",
             f"| producer ceiling kafka-python / Spark sink (events/s) | "
             f"{rate(result['producer_ceiling_events_per_s']['kafka_python_2_processes'])} / "
             f"{rate(result['producer_ceiling_events_per_s']['spark_kafka_sink'])} |"]
    for offered, row in result["latency_s"].items():
        gold = row["to_gold"]
        lines.append(f"| latency at {int(offered):,}/s offered ({row['achieved_per_s']:,}/s achieved): "
                     f"produce -> silver "
                     f"p50/p95/p99 (s); -> gold p95 | {row['p50']} / {row['p95']} / {row['p99']}; {gold.get('p95')} |")
    model = result.get("cost_model")
    if model:
        lines.append(f"| cost model ({model['events'][0]:,} vs {model['events'][1]:,} events): fixed s + µs/event, "
                     "ingest; silver; gold; plain copy | "
                     + "; ".join(f"{model[s]['fixed_s']:.1f} + {model[s]['per_event_us']:,.0f}"
                                 for s in (*STAGES, "plain_copy") if s in model) + " |")
        lines.append(f"| capacity once fixed costs are amortised: chain / plain copy (events/s) | "
                     f"{rate(model['chain']['capacity_events_per_s'])} / "
                     f"{rate(model.get('plain_copy', {}).get('capacity_events_per_s'))} "
                     f"({_ratio(model['capacity_vs_plain_copy'])}) |")
    base = drains.get("main_small")
    for name, run in drains.items():
        if not name.startswith("main") and base:
            lines.append(f"| scaling {name} ({run['boundaries']}, {run['sensors']:,} sensors): silver CPU µs/event "
                         f"(main_small {base['silver_cpu_us_per_event']:,.0f}) | "
                         f"{run['silver_cpu_us_per_event']:,.0f} |")
    cold = result.get("cold_start") or {}
    if cold:
        lines.append("| cold start: `bigbilbao demo` to first scorecard row (s) | "
                     f"{_seconds(cold.get('first_scorecard_row_s'))} |")
    lines.append(f"| lost / duplicated events | {result['lost']} / {result['duplicated']} |")
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    """A ratio for the table; 'n/a' when it could not be computed."""
    return "n/a" if value is None else f"{value:.2f}"


def _seconds(value: float | None) -> str:
    """A duration for the table, to a tenth of a second; 'n/a' when it was not measured."""
    return "n/a" if value is None else f"{value:.1f}"
