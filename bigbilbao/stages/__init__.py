"""The pipeline, in data-flow order: Kafka -> bronze (`ingest`), bronze -> silver (`silver`, with `quality` and
`locate`), silver -> gold (`gold`, `gold_restate`, `gold_tables`, `gold_aggregate`, `gold_windows`), gold ->
scorecard (`publish`); `fused` runs them all in one query per micro-batch (the round), `sinks` holds the
idempotent Delta writers and `stopping` the clean stop on SIGTERM/Ctrl-C.

Transforms are `DataFrame -> DataFrame`; the SparkSession, sources and sinks are injected by `pipeline`, the
only module `jobs/` and the CLI call. May import every package but `cli`.
"""

from bigbilbao import lazy_exports

_EXPORTS = {
    "STAGES": "pipeline", "feed_contracts": "pipeline", "run": "pipeline", "start_stage": "pipeline",
    "BronzeWriter": "ingest", "bronze": "ingest", "read_kafka": "ingest", "start_ingest": "ingest",
    "first_occurrences": "silver",
    "QUARANTINE_COLUMNS": "quality", "judge": "quality", "split": "quality", "summarise": "quality",
    "to_silver": "quality",
    "FeedWriter": "gold", "start_gold": "gold",
    "TABLES": "gold_tables", "gold_path": "gold_tables",
    "alerts": "gold_aggregate", "events": "gold_aggregate", "gold_fields": "gold_aggregate",
    "hourly": "gold_aggregate",
    "windows": "gold_windows",
    "publish_alerts": "publish", "publish_scorecard": "publish",
    "StopRequest": "stopping",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
