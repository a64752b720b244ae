"""Logging configured once, at the entry point; every module just calls logging.getLogger(__name__)."""

from __future__ import annotations

import logging
import sys

QUIET_LIBRARIES = ("kafka", "py4j", "pyspark")


class CurrentStderr(logging.StreamHandler):
    """Writes to sys.stderr as it is at each record: a notebook or test runner swapping it leaves no closed file."""

    @property
    def stream(self):  # noqa: ANN201  (the attribute logging.StreamHandler reads)
        """Whatever sys.stderr is now."""
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        """StreamHandler.__init__ assigns a stream; this handler always follows sys.stderr instead."""


def configure(verbose: bool = False) -> None:
    """One stderr handler; chatty client libraries only speak up on warnings."""
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, handlers=[CurrentStderr()], force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
