"""`bigbilbao status`: the operator's view of a running (or stopped) pipeline, for people and for monitoring."""

from __future__ import annotations

import argparse
import json
import logging

from bigbilbao.config.settings import Settings
from bigbilbao.errors import BrokerError
from bigbilbao.infra import broker, kafka_clients
from bigbilbao.monitor import collect, model, render

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register `status` under the top-level command parser."""
    cmd = sub.add_parser(
        "status", parents=[common], help="per feed: Kafka lag, events/s, freshness of every layer; exit 1 on a limit",
        description="Per feed: messages in Kafka against the pipeline's committed checkpoint (lag), bronze rows per "
                    "second over the last minute, and how long ago bronze, silver and gold were last written; the "
                    "last micro-batch of each query and its duration; when the scorecard was published; the "
                    "boundary version in use. No Spark: it reads checkpoints and tables and asks Kafka (an embedded "
                    "broker that is not running is reported, not started). Exit status 0 when every limit of the "
                    "settings section 'monitor' holds, 1 when one is broken (each is listed), 2 on an error.")
    cmd.add_argument("--format", choices=["text", "json"], default="text", help="output format (default text)")


def kafka_offsets(settings: Settings) -> tuple[collect.KafkaOffsets | None, str]:
    """Each feed topic's first and end offsets, with where they came from; (None, why) when Kafka cannot answer."""
    if settings.kafka.embedded:
        info = broker.status(settings)
        if info is None:
            return None, "the embedded broker is not running (start it with `bigbilbao broker start`)"
        bootstrap = info.bootstrap
    else:
        bootstrap = ",".join(settings.kafka.bootstrap_servers)
    try:
        return kafka_clients.topic_offsets(settings, bootstrap), f"asked {bootstrap}"
    except Exception as exc:  # kafka-python raises many types; the view reports them, it does not fail
        reason: BrokerError = kafka_clients.connection_error(settings, bootstrap, exc)
        log.debug("Kafka offsets failed", exc_info=True)
        return None, str(reason)


def snapshot(settings: Settings) -> model.Status:
    """The status now."""
    offsets, note = kafka_offsets(settings)
    return collect.collect(settings, offsets, note)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Handle `bigbilbao status`: print the view; 1 when a limit is broken."""
    status = snapshot(settings)
    if args.format == "json":
        print(json.dumps(model.as_json(status), indent=2))
    else:
        print(render.text(status))
    return 1 if status.breaches else 0
