"""Logging configured once, at the entry point; every module just calls logging.getLogger(__name__)."""

from __future__ import annotations

import logging
import sys

QUIET_LIBRARIES = ("kafka", "py4j", "pyspark")


def configure(verbose: bool = False) -> None:
    """One stderr handler; chatty client libraries only speak up on warnings."""
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
