"""Delta's optimistic concurrency: one retry loop for every writer that can lose a commit race (pure, no Spark).

Gold's MERGEs (Spark), table maintenance and the catalogue's property writes (delta-rs) all go through
`retry_on_conflict`: a lost race is expected, logged as one INFO line and retried after a growing pause;
only running out of attempts is an error, one sentence saying what to do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from bigbilbao.errors import PipelineError

log = logging.getLogger(__name__)

Result = TypeVar("Result")


def retry_on_conflict(action: Callable[[], Result], what: str, conflicts: tuple[type[BaseException], ...],
                      attempts: int, pause_s: float, give_up: Callable[[BaseException], str],
                      retries: list[int] | None = None) -> Result:
    """Run `action`; on one of `conflicts` wait `pause_s` x attempt and run it again, at most `attempts` times.

    `give_up(error)` words the error raised after the last attempt; `retries[0]`, when given, counts the retries.
    """
    if attempts < 1:
        message = f"{what} was not attempted: it needs at least one attempt (check the retry settings)."
        raise PipelineError(message)
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except conflicts as error:
            if attempt == attempts:
                raise PipelineError(give_up(error)) from error
            if retries is not None:
                retries[0] += 1
            log.info("%s conflicted with a concurrent commit (attempt %d of %d); retrying", what, attempt, attempts)
            time.sleep(pause_s * attempt)
    message = f"{what} was not attempted"  # unreachable: the loop returns or raises
    raise PipelineError(message)
