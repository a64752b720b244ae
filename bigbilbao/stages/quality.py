"""A feed contract's silver semantics on one feed's bronze rows: event time, verdicts, quarantine, metrics, silver.

`judge` adds the event time and, per row, the names of the broken rules by action (`dq_quarantine`,
`dq_warnings`, `dq_fail`, sorted) with a readable `dq_reason`; its verdicts are those of the reference
`rules.check_event(contract, ngsi.to_key_values(json.loads(payload)), now=kafka_timestamp)` for every
message whose payload is a JSON object (including its implicit `wrong_type`: a present value that
silver's type for the field cannot hold). Two more quarantine rules come on top of the contract's:
`parse_error` (bronze could not parse the message) and `unknown_unit` (a value came in a unit the
contract does not declare). `split` sends rows that broke a quarantine or fail rule to quarantine,
`summarise` gives per-batch figures in one job (`rule_counts` is the same per-rule count as a DataFrame),
and `to_silver` selects the silver contract: typed values in canonical units, personal data pseudonymised.
Everything is built-in Spark expressions, no Python UDF
(see `ngsi_columns`, `values`, `rule_columns`, `canonical`, `timeparse`, `privacy`).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from bigbilbao.columns import variant as V
from bigbilbao.columns.datetimes import instant_parts, to_utc
from bigbilbao.columns.ngsi import Stages, column_name, is_object, key_value_stages, ref, text_at
from bigbilbao.columns.pseudonyms import hmac_sha256_hex
from bigbilbao.columns.rules import EVENT, NOW, fact, number_names, text_names, time_names, value_names, violation
from bigbilbao.columns.units import UNKNOWN_UNIT, typed, unit_key, unknown_unit, wrong_type
from bigbilbao.contracts.model import Contract
from bigbilbao.contracts.rules import WRONG_TYPE
from bigbilbao.errors import PipelineError
from bigbilbao.stages import ingest

log = logging.getLogger(__name__)

PARSE_ERROR = "parse_error"
BRONZE = "__bronze"
ACTION_COLUMNS = {"quarantine": "dq_quarantine", "warn": "dq_warnings", "fail": "dq_fail"}
QUARANTINE_COLUMNS = ["feed", "topic", "partition", "offset", "kafka_timestamp", "payload", "payload_bytes",
                      "failed_rules", "reason", "ingested_at", "quarantined_at"]


def _bronze_columns(contract: Contract) -> list[str]:
    """The bronze columns judge passes through."""
    return [*ingest.LINEAGE_COLUMNS, *ingest.PARSE_COLUMNS, *contract.field_names]


def _bronze(name: str) -> Column:
    """A bronze column; they travel packed in one struct, so each stage copies one value instead of dozens."""
    return F.col(f"{BRONZE}.`{name}`")


def _any(columns: list[Column]) -> Column:
    """True when any of the boolean columns is (an empty list is False)."""
    return F.greatest(F.lit(False), F.lit(False), *columns)


def _attributes(stages: Stages, contract: Contract) -> None:
    """The payload as VARIANT (JSON objects in valid UTF-8 only); per attribute its keyValues value and facts."""
    times = sorted(time_names(contract))
    numbers, texts = sorted(number_names(contract)), sorted(text_names(contract))
    stages.add({"__json": ingest.strict_json(_bronze("payload"))})
    stages.add({"__doc": F.when(_bronze("payload_bytes").isNull() & is_object(F.col("__json")), F.col("__json"))})
    key_value_stages(stages, F.col("__doc"), sorted(value_names(contract) | set(times)))
    stages.step(lambda name, s: {
        "present": V.present(s["kv"], s["kind"]), "unit": unit_key(s["unitcode"]),
        "num": F.when(name.isin(numbers), V.py_number(s["kv"], s["kind"])),
        "text": F.when(name.isin(texts), V.py_str(s["kv"], s["kind"])),
        "instant": F.when(name.isin(times), instant_parts(V.as_string(s["kv"], s["kind"])))})
    stages.step(lambda _, s: {"ts": to_utc(s["instant"], contract.naive_timezone)})


def _first(role: str, contract: Contract) -> Column:
    """`role` of the first present time field: the event time's raw value, type or parsed time."""
    chain = None
    for name in contract.time_fields:
        present, value = fact("present", name), fact(role, name)
        chain = F.when(present, value) if chain is None else chain.when(present, value)
    return chain


def _event_and_location(stages: Stages, contract: Contract) -> None:
    """The event time, the reference time (Kafka timestamp) and the location's geometry and positions."""
    location = contract.location_field
    stages.add({
        column_name("ts", EVENT): _first("ts", contract),
        column_name("present", EVENT): _any([fact("present", t) for t in contract.time_fields]),
        column_name("num", NOW): F.unix_micros(_bronze("kafka_timestamp")),
        column_name("geom", location): V.geometry(fact("kv", location), fact("kind", location)),
    })
    geometry = ref("geom", location)
    stages.add({column_name("coords", location): F.try_variant_get(geometry, "$['coordinates']", "variant")})
    stages.add({
        column_name("positions", location): V.column_positions(column_name("coords", location)),
        column_name("geojson_ok", location): ~F.coalesce((fact("kind", location) == "STRING") & geometry.isNull(),
                                                         F.lit(False)),
    })


def _typed(contract: Contract, name: str) -> Column:
    """A field's silver value (typed, canonical unit) from its facts."""
    return typed(contract.fields[name], fact("kv", name), fact("kind", name), fact("num", name), fact("ts", name),
                 fact("unit", name))


def _checks(contract: Contract) -> list[tuple[str, str, Column, Column]]:
    """(name, action, violated, detail) of every rule, with parse_error, unknown_unit and wrong_type, sorted by name."""
    judged = F.col("__doc").isNotNull()
    units = {n: unknown_unit(spec, fact("unit", n), fact("kind", n), fact("num", n))
             for n, spec in contract.fields.items()}
    unit_detail = F.concat_ws(", ", *[F.when(bad, F.concat(F.lit(f"{n} in "), fact("unit", n)))
                                      for n, bad in units.items()])
    wrong = {n: wrong_type(spec, fact("present", n), _typed(contract, n), units[n])
             for n, spec in contract.fields.items()}
    wrong_detail = F.concat_ws(", ", *[F.when(bad, F.lit(f"{n} is not a {contract.fields[n].type}"))
                                       for n, bad in wrong.items()])
    checks = [
        (PARSE_ERROR, "quarantine", ~_bronze("parse_ok"), F.coalesce(_bronze("parse_error"), F.lit("unparseable"))),
        (UNKNOWN_UNIT, "quarantine", judged & _any(list(units.values())),
         F.concat(unit_detail, F.lit(" (undeclared unit)"))),
        (WRONG_TYPE, "quarantine", judged & _any(list(wrong.values())), wrong_detail),
    ]
    for rule in contract.rules:
        violated, detail = violation(rule, contract)
        checks.append((rule.name, rule.action, judged & violated, detail))
    return sorted(checks, key=lambda check: check[0])


def _verdicts(checks: list[tuple[str, str, Column, Column]]) -> dict[str, Column]:
    """The dq_* name arrays and dq_reason from materialised __broken__/__detail__ columns."""
    arrays = {}
    for action, column in ACTION_COLUMNS.items():
        names = [F.when(F.col(f"`__broken__{name}`"), F.lit(name)) for name, act, _, _ in checks if act == action]
        arrays[column] = (F.filter(F.array(*names), lambda name: name.isNotNull()) if names
                          else F.array().cast("array<string>"))
    reasons = [F.when(F.col(f"`__broken__{name}`"),
                      F.concat(F.lit(f"{name} ({action}): "), F.col(f"`__detail__{name}`")))
               for name, action, _, _ in checks]
    return {**arrays, "dq_reason": F.concat_ws("; ", *reasons)}


@functools.lru_cache(maxsize=64)
def _plan(contract: Contract) -> tuple[Stages, tuple[Column, ...]]:
    """The selects that judge a contract's bronze rows, and the final output columns; built once per contract."""
    stages = Stages()
    _attributes(stages, contract)
    _event_and_location(stages, contract)
    checks = _checks(contract)
    stages.add({**{f"__broken__{name}": violated for name, _, violated, _ in checks},
                **{f"__detail__{name}": detail for name, _, _, detail in checks}})
    output = (*[_bronze(c).alias(c) for c in _bronze_columns(contract)],
              ref("ts", EVENT).alias("event_time"),
              *[column.alias(name) for name, column in _verdicts(checks).items()],
              _canonical(contract).alias("canonical"))
    return stages, output


def judge(bronze_df: DataFrame, contract: Contract) -> DataFrame:
    """Bronze rows plus event_time, sorted broken-rule names per action, dq_reason and the `canonical` silver values."""
    stages, output = _plan(contract)
    bronze = bronze_df.select(F.struct(*_bronze_columns(contract)).alias(BRONZE))
    return stages.apply(bronze).select(*output)


def _canonical(contract: Contract) -> Column:
    """Typed, canonical-unit values of every contract field, plus the location as GeoJSON and its point."""
    location = contract.location_field
    geometry, points = ref("geom", location), ref("positions", location)
    is_point = (text_at(geometry, "$['type']") == "Point") & (F.size(points) > 0)
    fields = [_typed(contract, n).alias(n) for n in contract.fields]
    return F.struct(F.to_json(geometry).alias("location_geojson"),
                    F.when(is_point, F.try_element_at(points, F.lit(1))["lon"]).alias("lon"),
                    F.when(is_point, F.try_element_at(points, F.lit(1))["lat"]).alias("lat"), *fields)


def split(judged: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(valid, quarantine): rows that broke a quarantine or fail rule go to quarantine, with their rules and reason."""
    bad = (F.size("dq_quarantine") > 0) | (F.size("dq_fail") > 0)
    quarantine = judged.filter(bad).select(
        "feed", "topic", "partition", "offset", "kafka_timestamp", "payload", "payload_bytes",
        F.array_sort(F.concat("dq_quarantine", "dq_fail")).alias("failed_rules"),
        F.col("dq_reason").alias("reason"),
        "ingested_at",
        F.current_timestamp().alias("quarantined_at"),
    )
    return judged.filter(~bad), quarantine


def _tagged(column: str, action: str) -> Column:
    """An array of rule names as an array of (rule, action) structs."""
    return F.transform(column, lambda name: F.struct(name.alias("rule"), F.lit(action).alias("action")))


def rule_counts(judged: DataFrame, contract: Contract | None = None) -> DataFrame:
    """Per feed and broken rule: violations and rows_in_batch; with `contract`, unbroken rules too (0 violations)."""
    broken = F.concat(*[_tagged(column, action) for action, column in ACTION_COLUMNS.items()])
    counts = (judged.select("feed", F.explode(broken).alias("v"))
              .groupBy("feed", F.col("v.rule").alias("rule"), F.col("v.action").alias("action"))
              .agg(F.count(F.lit(1)).alias("violations")))
    totals = judged.groupBy("feed").agg(F.count(F.lit(1)).alias("rows_in_batch"))
    if contract is not None:
        known = judged.sparkSession.createDataFrame([(contract.feed, *rule) for rule in catalogue(contract)],
                                                    "feed string, rule string, action string")
        counts = known.join(counts, ["feed", "rule", "action"], "full")
    return (counts.join(totals, "feed", "left")
            .select("feed", "rule", "action",
                    F.coalesce("violations", F.lit(0)).cast("bigint").alias("violations"),
                    F.coalesce("rows_in_batch", F.lit(0)).cast("bigint").alias("rows_in_batch")))


@dataclass(frozen=True)
class BatchSummary:
    """What silver needs to know of a judged micro-batch, from one Spark job instead of one per figure."""

    rows: int
    quarantined: int  # rows that broke a quarantine or fail rule
    failed: int  # rows that broke a fail rule
    event_times: tuple[datetime | None, datetime | None]  # earliest and latest event time of the valid rows
    violations: tuple[tuple[str, str, int], ...]  # (rule, action, rows that broke it) for every rule, 0 included

    @property
    def valid(self) -> int:
        """Rows that go on to silver (before de-duplication)."""
        return self.rows - self.quarantined


def catalogue(contract: Contract) -> list[tuple[str, str]]:
    """(rule, action) of every rule judge can report for a contract: parse_error, unknown_unit, wrong_type, its own."""
    return [(PARSE_ERROR, "quarantine"), (UNKNOWN_UNIT, "quarantine"), (WRONG_TYPE, "quarantine"),
            *[(rule.name, rule.action) for rule in contract.rules]]


def summarise(judged: DataFrame, contract: Contract) -> BatchSummary:
    """Row, quarantine and fail counts, the valid rows' event-time range and per-rule violations in one aggregate."""
    bad = (F.size("dq_quarantine") > 0) | (F.size("dq_fail") > 0)
    rules = catalogue(contract)
    per_rule = [F.count(F.when(F.array_contains(ACTION_COLUMNS[action], name), True)) for name, action in rules]
    row = judged.agg(F.count(F.lit(1)), F.count(F.when(bad, True)), F.count(F.when(F.size("dq_fail") > 0, True)),
                     F.min(F.when(~bad, F.col("event_time"))), F.max(F.when(~bad, F.col("event_time"))),
                     *per_rule).first()
    violations = tuple((name, action, int(row[5 + i])) for i, (name, action) in enumerate(rules))
    return BatchSummary(int(row[0]), int(row[1]), int(row[2]), (row[3], row[4]), violations)


def raise_on_fail(judged: DataFrame, sample: int = 3) -> None:
    """Stop the stream when a row broke a `fail` rule (a contract-level breakage), naming rules and offsets."""
    failed = judged.filter(F.size("dq_fail") > 0).select("feed", "partition", "offset", "dq_reason")
    rows = failed.limit(sample).collect()
    if rows:
        where = "; ".join(f"partition {r['partition']} offset {r['offset']}: {r['dq_reason']}" for r in rows)
        message = f"Feed {rows[0]['feed']!r} broke a fail rule; fix the producer or the contract ({where})."
        raise PipelineError(message)


def to_silver(valid_df: DataFrame, contract: Contract, key: bytes) -> DataFrame:
    """The silver contract: typed values in canonical units, personal fields as keyed HMAC-SHA256 pseudonyms."""
    private = set(contract.pseudonymised_fields())
    values = {n: F.col(f"canonical.`{n}`") for n in contract.field_names}
    fields = [hmac_sha256_hex(value, key).alias(n) if n in private else value.alias(n) for n, value in values.items()]
    return valid_df.select(
        "feed", "entity_id", "entity_type", "event_time",
        F.col("canonical.lon").alias("lon"), F.col("canonical.lat").alias("lat"),
        F.col("canonical.location_geojson").alias("location_geojson"),
        *fields, "dq_warnings", "topic", "partition", "offset", "kafka_timestamp", "ingested_at",
    )
