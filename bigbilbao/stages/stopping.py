"""A clean stop of the streams: SIGTERM or Ctrl-C ends every query at a micro-batch boundary within seconds.

Every foreachBatch writer runs behind a `Gated`, which starts no micro-batch once a stop is asked for. The
round's writer (`bigbilbao.stages.ingest.BronzeWriter`, `bigbilbao.stages.fused.GoldOfFeed`) also looks at the
`StopRequest` before each feed and between a feed's silver and gold: feeds already in a step finish it, the rest
are left, and the batch is abandoned by raising `BatchAbandonedError`. Spark then commits no offsets for it, so a
restart reads it again from Kafka, and the writes it had made are skipped by their Delta transaction ids (exactly
once). A query between micro-batches is stopped with `StreamingQuery.stop()`, which then only interrupts a wait.
A second signal, or a query still in its batch `GRACE_S` after the first, is stopped at once: its batch is
redone on restart all the same.

Why not `stop()` at once, as before: stopping a query while its Python foreachBatch function runs cancels its
jobs, the function fails with a `Py4JJavaError` carrying Java stack traces, and Spark 4 matches that text with
`py4j.protocol.Py4JJavaError: An error occurred while calling((.|\\r\\n|\\r|\\n)*)(...)`
(`StreamExecution.isInterruptionException`): `java.util.regex` recurses once per character of that repeated
alternation, and a long error overflows the stream thread's stack, the `StackOverflowError` of issue 18 (the
thread dies and its trace is printed). `Gated` makes the error a stopped query ends with one short line that
never contains that text, whatever happened inside.

A query ending on an exception makes Spark log it with a stack trace, and py4j log the Python side: once a stop
is asked for, those loggers are quieted, and the run says in one line per query where it stopped.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark import SparkContext
from pyspark.sql import DataFrame
from pyspark.sql.streaming import StreamingQuery

from bigbilbao.errors import BatchAbandonedError
from bigbilbao.monitor import checkpoints

log = logging.getLogger(__name__)

GRACE_S = 25.0  # a query still busy this long after the stop request is stopped at once
JOIN_S = 60.0
# Loggers that print a stack trace for a query ended on purpose (the JVM's) or for its Python callback (py4j's).
JVM_LOGGERS = ("org.apache.spark.sql.execution.streaming.runtime.MicroBatchExecution",
               "org.apache.spark.sql.execution.streaming.MicroBatchExecution")
PY4J_LOGGERS = ("py4j", "py4j.clientserver", "py4j.java_gateway")


@dataclass(frozen=True)
class Abandoned:
    """A micro-batch a query's writer left on a stop request: the feeds it wrote and those it left to the restart."""

    query: str
    batch_id: int
    written: tuple[str, ...] = ()
    left: tuple[str, ...] = ()

    def sentence(self) -> str:
        feeds = f" with {len(self.written)} of {len(self.written) + len(self.left)} feeds complete" if self.left else ""
        return f"micro-batch {self.batch_id} abandoned{feeds}, redone on restart"


class StopRequest:
    """Set once by a signal; writers look at it between feeds, the waiting loop stops the queries."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signals = 0
        self.abandoned: list[Abandoned] = []
        self.forced = False

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self) -> None:
        self._event.set()


class Gated:
    """A foreachBatch writer that starts no micro-batch once a stop is asked for, and turns whatever the stop does
    to a running one (feeds left, jobs cancelled by a forced stop) into one short `BatchAbandonedError`.

    Short matters: Spark 4 runs a regular expression over the Python error of a query stopped while its
    foreachBatch function runs (`StreamExecution.isInterruptionException`), and a long one (a Python traceback
    carrying Java stack traces) overflows the stream thread's stack: the `StackOverflowError` of issue 18.
    """

    def __init__(self, writer: Callable[[DataFrame, int], None], stop: StopRequest, query: str) -> None:
        self.writer, self.stop, self.query = writer, stop, query

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        if self.stop.requested:
            left = Abandoned(self.query, batch_id)
        else:
            try:
                self.writer(batch, batch_id)
                return
            except Exception as exc:
                if not self.stop.requested:
                    raise
                written, not_written = (exc.written, exc.left) if isinstance(exc, BatchAbandonedError) else ((), ())
                left = Abandoned(self.query, batch_id, written, not_written)
        self.stop.abandoned.append(left)
        raise BatchAbandonedError(batch_id, left.written, left.left) from None


def gated(writer: Callable[[DataFrame, int], None], stop: StopRequest | None,
          query: str) -> Callable[[DataFrame, int], None]:
    """The writer behind a `Gated` watching `stop`; the writer itself when nothing will ask for a stop."""
    return writer if stop is None else Gated(writer, stop, query)


@contextlib.contextmanager
def on_signal(stop: StopRequest, quiet: Callable[[], None]) -> Iterator[None]:
    """SIGTERM/SIGINT ask `stop` for a clean stop (a second one forces it) while the block runs (main thread only).

    `quiet` is called once, on the first signal, to hush the loggers that would print a stopped query's trace.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        stop.signals += 1
        if stop.signals == 1:
            log.info("signal %d received: stopping after the current micro-batch (or abandoning it within %.0f s); "
                     "a second signal stops at once", signum, GRACE_S)
            quiet()
        else:
            log.info("signal %d received again: stopping at once; the current micro-batch is redone on restart",
                     signum)
            stop.forced = True
        stop.request()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def quiet_loggers() -> None:
    """Hush the JVM and py4j loggers that would print a stack trace for a query stopped on purpose."""
    for name in PY4J_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        jvm = SparkContext._jvm  # the running driver's gateway
        level = jvm.org.apache.logging.log4j.Level.OFF
        for name in JVM_LOGGERS:
            jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(name, level)
    except Exception as exc:  # noqa: BLE001  (best effort: the stop itself must go on)
        log.debug("could not quiet Spark's streaming logger: %s", exc)


def stop_queries(queries: Sequence[StreamingQuery], stop: StopRequest) -> None:
    """Stop every query at a micro-batch boundary: one in a batch is left to end or abandon it, up to GRACE_S."""
    deadline = time.monotonic() + GRACE_S
    stoppers: dict[str, threading.Thread] = {}
    while True:
        for query in queries:
            key = str(query.id)
            if key in stoppers or not query.isActive:
                continue
            busy = bool(query.status.get("isTriggerActive"))
            if not busy or stop.forced or time.monotonic() >= deadline:
                if busy:
                    log.info("query %s is still in its micro-batch: stopping it now; the batch is redone on restart",
                             query.name)
                    stop.forced = True
                stoppers[key] = threading.Thread(target=query.stop, name=f"stop-{query.name}", daemon=True)
                stoppers[key].start()
        if not any(query.isActive for query in queries):
            break
        time.sleep(0.1)
    for thread in stoppers.values():
        thread.join(JOIN_S)


def stopped_on_purpose(query: StreamingQuery, stop: StopRequest) -> bool:
    """A query that ended with an exception because of the stop request rather than a fault."""
    if not stop.requested:
        return False
    text = str(query.exception())
    if "BatchAbandonedError" in text:
        return True
    if stop.forced:  # interrupted in the middle of a batch: its jobs fail with cancellation errors
        log.info("query %s ended while being stopped: %s", query.name, text.strip().splitlines()[0][:300])
        return True
    return False


def report(queries: Sequence[StreamingQuery], stop: StopRequest, checkpoint_root: Path) -> None:
    """One INFO line per query: its last committed micro-batch, the Kafka offsets it reached, what it abandoned."""
    committed = {status.name: status for status in checkpoints.read_queries(checkpoint_root)}
    for query in queries:
        name = query.name or str(query.id)
        status = committed.get(name)
        if status is None:
            line = f"query {name} stopped"
        elif status.last_batch is None:
            line = f"query {name} stopped before committing any micro-batch"
        else:
            reached = sum(o for parts in status.committed_offsets.values() for o in parts.values())
            kafka = (f"; Kafka read up to offset total {reached:,} over {len(status.committed_offsets)} topic(s)"
                     if status.committed_offsets else "")
            line = f"query {name} stopped: last committed micro-batch {status.last_batch}{kafka}"
        for batch in stop.abandoned:
            if batch.query == name:
                line += f"; {batch.sentence()}"
        log.info("%s", line)
