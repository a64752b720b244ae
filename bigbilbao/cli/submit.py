"""What the thin `jobs/*.py` spark-submit entry points share: arguments, settings overrides, the master."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from bigbilbao import logs
from bigbilbao.config.settings import ENV_PREFIX, Settings, load_settings
from bigbilbao.errors import BigBilbaoError, SettingsError

log = logging.getLogger(__name__)

DESCRIPTIONS = {
    "ingest": "Kafka -> bronze Delta tables",
    "silver": "bronze -> silver: contract rules, quarantine, de-duplication, pseudonyms, district and barrio",
    "gold": "silver -> gold: windowed aggregates, late-data restatement, alerts",
    "scorecard": "gold -> the balanced scorecard, published once",
    "all": "every stage in one application",
}


def job_parser(stage: str) -> argparse.ArgumentParser:
    """Arguments every job takes."""
    parser = argparse.ArgumentParser(prog=f"jobs/{stage}.py", description=f"Big Bilbao {stage}: {DESCRIPTIONS[stage]}.")
    parser.add_argument("--config", metavar="FILE", help="settings YAML (default: the packaged bigbilbao.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one settings key (value parsed as YAML), e.g. --set "
                             "kafka.bootstrap_servers=k1:9092,k2:9092; repeatable; wins over BIGBILBAO__* variables")
    parser.add_argument("--until-idle", action="store_true", help="process what is there now, then stop")
    parser.add_argument("--master", help="Spark master URL (default: spark-submit's --master, else spark.master)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def override_environ(overrides: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The environment with each `section.key=value` added as BIGBILBAO__SECTION__KEY=value."""
    merged = dict(environ)
    for item in overrides:
        key, sep, value = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not sep or len(parts) < 2:
            msg = f"Override '{item}' must look like section.key=value, e.g. lakehouse.path=/data/lakehouse."
            raise SettingsError(msg)
        merged[ENV_PREFIX + "__".join(p.upper() for p in parts)] = value
    return merged


def job_settings(config: str | None, overrides: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the file, then BIGBILBAO__* variables, then --set overrides."""
    return load_settings(config, override_environ(overrides, os.environ if environ is None else environ))


def submitted_master() -> str | None:
    """The master spark-submit was given, when this process was launched by spark-submit."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return None
    from pyspark import SparkContext

    SparkContext._ensure_initialized()  # connects to spark-submit's JVM; starts nothing new
    return SparkContext._jvm.System.getProperty("spark.master")  # type: ignore[union-attr]


def main(stage: str, argv: Sequence[str] | None = None) -> int:
    """Run one stage (or all) from a job's command line; errors are one sentence and exit code 2."""
    args = job_parser(stage).parse_args(argv)
    logs.configure(args.verbose)
    try:
        from bigbilbao.stages import pipeline

        settings = job_settings(args.config, args.overrides)
        master = args.master or submitted_master()
        log.info("%s: lakehouse %s, master %s", stage, settings.lakehouse.path, master or settings.spark.master)
        pipeline.run(settings, stage, until_idle=args.until_idle, master=master)
    except BigBilbaoError as exc:
        print(f"{stage}: error: {exc}", file=sys.stderr)
        return 2
    return 0
