"""The operator's view as text: a header, one line per query and per feed, then what breaks a limit."""

from __future__ import annotations

from datetime import datetime

from bigbilbao.monitor.model import LAYERS, Status


def _age(status: Status, moment: datetime | None) -> str:
    age = status.age_s(moment)
    if age is None:
        return "never"
    if age < 120:
        return f"{age:.0f} s"
    return f"{age / 60:.0f} min" if age < 7200 else f"{age / 3600:.1f} h"


def text(status: Status) -> str:
    """Plain text for a terminal; ages are 'how long ago'."""
    lines = [f"Big Bilbao status at {status.now:%Y-%m-%d %H:%M:%S} UTC — Kafka: {status.kafka}"]
    boundaries = ", ".join(f"{layer} {version[:12]}" for layer, version in sorted(status.boundaries.items()))
    lines.append(f"boundaries in use: {boundaries or 'none yet (the first run seeds the demo districts)'}")
    lines.append(f"scorecard published: {_age(status, status.scorecard_at)} ago"
                 if status.scorecard_at else "scorecard published: never")
    if not status.queries:
        lines.append("queries: none has run on this lakehouse yet")
    for query in status.queries:
        if query.last_batch is None:
            lines.append(f"query {query.name}: no micro-batch committed yet")
            continue
        took = f"{query.duration_s:.1f} s" if query.duration_s is not None else "?"
        lines.append(f"query {query.name}: last batch {query.last_batch} ended {_age(status, query.finished_at)} ago, "
                     f"took {took}")
    lines.append("")
    lines.append(f"{'feed':20} {'kafka msgs':>11} {'lag':>9} {'events/s':>9} "
                 + " ".join(f"{layer + ' age':>10}" for layer in LAYERS))
    for feed in status.feeds:
        held = "?" if feed.kafka_end is None else f"{feed.kafka_end:,}"
        lag = "?" if feed.lag is None else f"{feed.lag:,}"
        ages = " ".join(f"{_age(status, feed.written_at.get(layer)):>10}" for layer in LAYERS)
        lines.append(f"{feed.feed:20} {held:>11} {lag:>9} {feed.events_per_s:9.1f} {ages}")
    lines.append("")
    if status.breaches:
        lines.append(f"NOT OK: {len(status.breaches)} limit(s) broken (settings section 'monitor'):")
        lines.extend(f"  - {breach}" for breach in status.breaches)
    else:
        lines.append("OK: every feed within the limits of the settings section 'monitor'")
    return "\n".join(lines)
