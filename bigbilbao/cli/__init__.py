"""The `bigbilbao` command line: the main parser (`app`) and one module per command group; `submit` backs the
thin `jobs/*.py` spark-submit entry points.

Argument parsing only: each command loads what it runs when it runs, so `--help` and the pure commands never
start a JVM. May import every package.
"""

from bigbilbao import lazy_exports

_EXPORTS = {
    "console": "app", "main": "app", "pipeline_stages": "app",
    "exit_process": "exiting",
    "job_settings": "submit",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
