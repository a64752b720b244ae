"""The operator's view, without Spark or a JVM: each feed's Kafka lag against the committed checkpoint, its
write rate, the freshness of bronze, silver, gold and the scorecard, the boundary version in use, the limits
that make `bigbilbao status` exit non-zero, and the same figures as Prometheus metrics for `run all`.

Reads checkpoints and tables (delta-rs); Kafka's offsets are passed in by the caller. May import: `config`,
`spatial`, `tables`, `errors`.
"""

from bigbilbao import lazy_exports

_EXPORTS = {
    "FeedStatus": "model", "QueryStatus": "model", "Status": "model", "as_json": "model", "breaches": "model",
    "read_queries": "checkpoints", "committed_offsets": "checkpoints",
    "KafkaOffsets": "collect", "collect": "collect",
    "text": "render",
    "StatusCollector": "metrics", "serve_metrics": "metrics",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
