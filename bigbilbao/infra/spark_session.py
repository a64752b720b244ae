"""The only SparkSession builder: Delta, the Kafka connector jars and sane local defaults."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from bigbilbao.columns import pseudonyms
from bigbilbao.config.settings import Settings
from bigbilbao.infra import jvm

log = logging.getLogger(__name__)

LOG4J = Path(__file__).resolve().parents[1] / "resources" / "spark-log4j2.properties"
# Streams append a few small files every micro-batch; Delta compacts a table once it holds this many.
AUTO_COMPACT_MIN_FILES = 16


def spark_conf(settings: Settings, master: str | None = None) -> dict[str, str]:
    """Every Spark setting Big Bilbao relies on, as plain key/value pairs (also usable by spark-submit)."""
    master = master or settings.spark.master
    jars = jvm.spark_extra_jars(settings.jars_path)
    conf = {
        "spark.master": master,
        "spark.app.name": settings.spark.app_name,
        "spark.jars": ",".join(str(j) for j in jars),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        # Delta rebuilds a table's state in this many partitions (default 50): small tables want few.
        "spark.databricks.delta.snapshotPartitions": str(min(50, settings.spark.shuffle_partitions)),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.warehouse.dir": str(settings.lakehouse_path / "_warehouse"),
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.ui.enabled": str(settings.spark.ui).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.streaming.stopGracefullyOnShutdown": "true",
        # Keep tables readable by delta-rs and DuckDB: no deletion vectors, no column mapping.
        "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
        "spark.databricks.delta.optimizeWrite.enabled": "false",
        # Bounded file counts in long runs: compaction is a dataChange=false commit, invisible to Delta streams.
        "spark.databricks.delta.autoCompact.enabled": "true",
        "spark.databricks.delta.autoCompact.minNumFiles": str(AUTO_COMPACT_MIN_FILES),
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={LOG4J}",
        # The pseudonym key enters plans as padded-key literals: hide them in EXPLAIN, the UI and errors.
        "spark.sql.redaction.string.regex": pseudonyms.KEY_REDACTION,
    }
    if master.startswith("local") or re.match(r"spark://(127\.0\.0\.1|localhost):", master):
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    conf.update(settings.spark.conf)
    return conf


def build_spark(settings: Settings, master: str | None = None) -> SparkSession:
    """Create (or reuse) the SparkSession configured from settings; `master` overrides spark.master."""
    jvm.require_java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if (master or settings.spark.master).startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder
    for key, value in spark_conf(settings, master).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("Spark %s on %s", spark.version, spark.sparkContext.master)
    return spark
