"""Infrastructure the stages run on: the embedded Kafka broker, Kafka clients, JVM jars, the SparkSession, a
local cluster.

May import: `config`, `errors`, `columns.pseudonyms` (the session registers the HMAC redaction). Nothing here
knows a feed.
"""

from bigbilbao import lazy_exports

_EXPORTS = {
    "start": "broker", "stop": "broker", "status": "broker", "broker_home": "broker", "new_cluster_id": "broker",
    "bootstrap_servers": "kafka_clients", "ensure_topics": "kafka_clients", "producer": "kafka_clients",
    "python_client_options": "kafka_clients", "spark_source_options": "kafka_clients",
    "BUNDLES": "jvm", "ensure_jars": "jvm", "jar_dir": "jvm", "java_version": "jvm", "require_java": "jvm",
    "spark_extra_jars": "jvm",
    "build_spark": "spark_session", "spark_conf": "spark_session",
    "StandaloneCluster": "cluster", "package_zip": "cluster", "standalone_cluster": "cluster",
    "submit_argv": "cluster", "submit_jars": "cluster",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
