"""Where events come from: the simulator and its sensor network, replay of real open-data files, and the Kafka
producer.

Pure Python (no Spark). May import: `contracts`, `config`, `infra.kafka_clients`, `errors`.
"""

from bigbilbao import lazy_exports

_EXPORTS = {
    "FEEDS": "simulator", "FORMS": "simulator", "DIRTY_KINDS": "simulator", "SimulatedMessage": "simulator",
    "generate": "simulator", "simulate": "simulator",
    "MODELS": "sensors", "BBOX": "sensors",
    "ReplayEvent": "replay", "air_quality_csv": "replay", "noise_readings": "replay", "traffic_history": "replay",
    "traffic_snapshot": "replay",
    "publish": "producer",
    "run_simulation": "sources", "run_replay": "sources", "replay_events": "sources",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
