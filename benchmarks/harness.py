"""What every broker + Spark benchmark shares: an embedded broker and Spark local[2] of its own in a temporary
folder, the load average around the run, and the arguments as the JSON records them."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import SparkSession

from benchmarks.e2e_scaling import DATA
from bigbilbao.config.settings import Settings, load_settings, with_overrides
from bigbilbao.infra import broker
from bigbilbao.infra.spark_session import build_spark

ROOT = Path(__file__).resolve().parents[1]
Measure = Callable[[argparse.Namespace, SparkSession, Settings, str, Path], dict]


def run_on_embedded_stack(name: str, args: argparse.Namespace, measure: Measure,
                          progress: Callable[[str], None]) -> dict:
    """Start a broker and Spark, call `measure(args, spark, base settings, bootstrap, work folder)`, tear down;
    the result gains `load_average` and `arguments`."""
    if not DATA.exists():
        sys.exit("the shared boundary data (../shared/data/bilbao_boundaries) is not beside the repository")
    load_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix=f"bigbilbao-bench-{name}-"))
    base = with_overrides(load_settings(environ={}), lakehouse={"path": str(work / "broker")},
                          spark={"master": "local[2]", "ui": False})
    try:
        info, _ = broker.start(base)
        progress(f"embedded broker on {info.bootstrap}; starting Spark local[2]")
        spark = build_spark(base)
        result = measure(args, spark, base, info.bootstrap, work)
        spark.stop()
    finally:
        broker.stop(base)
        shutil.rmtree(work, ignore_errors=True)
    result["load_average"] = {"start": list(load_start), "end": list(os.getloadavg())}
    result["arguments"] = {k: sorted(v) if isinstance(v, set) else shown(v) if isinstance(v, Path) else v
                           for k, v in vars(args).items()}
    return result


def shown(path: Path) -> str:
    """A path as the JSON records it: relative to the repository when inside it, so no checkout path is kept."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)
