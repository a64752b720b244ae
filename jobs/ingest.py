"""spark-submit entry point: Kafka -> bronze Delta tables.

    spark-submit --master spark://host:7077 --py-files dist/bigbilbao.zip jobs/ingest.py --config my.yaml
"""

from __future__ import annotations

import argparse
import sys

from bigbilbao import logs, pipeline
from bigbilbao.errors import BigBilbaoError
from bigbilbao.settings import load_settings


def main() -> int:
    """Parse arguments, build settings once, hand over to the pipeline."""
    parser = argparse.ArgumentParser(description="Big Bilbao ingest stage: Kafka -> bronze Delta tables.")
    parser.add_argument("--config", metavar="FILE", help="settings YAML (default: packaged bigbilbao.yaml)")
    parser.add_argument("--master", help="Spark master URL overriding spark.master")
    parser.add_argument("--until-idle", action="store_true", help="process what Kafka holds now, then stop")
    args = parser.parse_args()
    logs.configure()
    try:
        pipeline.run(load_settings(args.config), "ingest", until_idle=args.until_idle, master=args.master)
    except BigBilbaoError as exc:
        print(f"ingest: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
