"""Process exit for the command-line tools: Arrow's and delta-rs's native thread pools can abort at exit."""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import NoReturn


def exit_process(code: int) -> NoReturn:
    """Run Python's exit hooks and flush, then skip native destructors that race and SIGABRT after the work is done."""
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            continue
    os._exit(code)
