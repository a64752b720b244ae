"""Privacy: personal identifiers leave bronze only as keyed HMAC pseudonyms; small counts are not published.

Every feed carrying personal data (Wi-Fi device MACs, bus plates, caller numbers) runs through silver,
gold and the scorecard; then every cell of every silver and gold table is searched for every raw
identifier, also as a substring. The same search over bronze must find them (or the scan proves nothing).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from bigbilbao.columns import pseudonyms
from bigbilbao.config.settings import Settings, with_overrides
from bigbilbao.contracts.loader import load_contracts
from bigbilbao.errors import SettingsError
from bigbilbao.feeds import simulator
from bigbilbao.scorecard.catalogue import load_catalogue
from bigbilbao.stages import pipeline, publish
from bigbilbao.tables import read
from tests.e2e.test_kafka_roundtrip import produce

pytestmark = pytest.mark.integration
PERSONAL = {"crowd_flow": "detectedDeviceId", "bus_positions": "vehiclePlateIdentifier",
            "emergency_dispatches": "callerNumber"}


def raw_identifiers(messages: Iterable[tuple[str, bytes]]) -> dict[str, set[str]]:
    """Per feed, every personal value the producers sent."""
    found: dict[str, set[str]] = {feed: set() for feed in PERSONAL}
    for feed, payload in messages:
        value = json.loads(payload).get(PERSONAL[feed])
        if isinstance(value, str) and value:
            found[feed].add(value)
    return found


def _cells(column: pa.ChunkedArray) -> Iterable[str]:
    """Every value of a column as text: strings and bytes as they are, lists and structs as their JSON."""
    kind = column.type
    for value in column.to_pylist():
        if value is None:
            continue
        if isinstance(value, bytes):
            yield value.decode("utf-8", errors="replace")
        elif isinstance(value, str):
            yield value
        elif pa.types.is_nested(kind):
            yield json.dumps(value, default=str)


def leaks(lake: Path, layers: tuple[str, ...], pattern: re.Pattern[str]) -> dict[str, int]:
    """Per table.column, how many cells of string, binary or nested columns hold a raw identifier."""
    hits: dict[str, int] = {}
    for layer, name in read.list_tables(lake):
        if layer not in layers:
            continue
        table = read.read_table(lake, layer, name)
        for field in table.schema:
            textual = (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
                       or pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type)
                       or pa.types.is_nested(field.type))
            if textual:
                count = sum(1 for cell in _cells(table[field.name]) if pattern.search(cell))
                if count:
                    hits[f"{layer}/{name}.{field.name}"] = count
    return hits


@pytest.mark.timeout(900)
def test_no_raw_identifier_in_silver_or_gold_and_small_counts_are_suppressed(
        make_settings, spark, pseudonym_key, tmp_path) -> None:
    settings = make_settings(feeds=sorted(PERSONAL))
    messages = list(simulator.generate(sorted(PERSONAL), count=450, seed=21))
    produce(settings, messages)
    pipeline.run(settings, "all", until_idle=True, spark=spark)
    lake = settings.lakehouse_path
    raw = raw_identifiers(messages)
    assert all(len(values) >= 5 for values in raw.values()), {f: len(v) for f, v in raw.items()}
    pattern = re.compile("|".join(re.escape(v) for values in raw.values() for v in sorted(values)))

    assert {t.split(".")[0] for t in leaks(lake, ("bronze",), pattern)} == {f"bronze/{f}" for f in PERSONAL}
    layers = ("silver", "gold")
    scanned = [t for t in read.list_tables(lake) if t[0] in layers]
    assert {("gold", "scorecard"), ("gold", "scorecard_scores")} <= set(scanned) and len(scanned) > 10
    assert leaks(lake, layers, pattern) == {}, "a raw personal identifier reached silver or gold"
    assert_pseudonyms_are_keyed_hmacs(lake, pseudonym_key)
    assert_small_counts_suppressed(settings, tmp_path)


def assert_pseudonyms_are_keyed_hmacs(lake: Path, key: bytes) -> None:
    """Each silver pseudonym is HMAC-SHA256(key, raw value) of the bronze message at the same Kafka offset."""
    for feed, field in PERSONAL.items():
        bronze = read.read_table(lake, "bronze", feed, ["partition", "offset", field]).to_pylist()
        sent = {(r["partition"], r["offset"]): r[field] for r in bronze}
        silver = read.read_table(lake, "silver", feed, ["partition", "offset", field]).to_pylist()
        checked = [r for r in silver if sent[(r["partition"], r["offset"])]]
        assert len(checked) >= 5, feed
        for row in checked:
            expected = hmac.new(key, sent[(row["partition"], row["offset"])].encode(), hashlib.sha256).hexdigest()
            assert row[field] == expected, feed


def assert_small_counts_suppressed(settings: Settings, tmp_path: Path) -> None:
    """Published event counts 1..k-1 are hidden: k = 5 by default, and a k the sample surely reaches."""
    assert settings.privacy.min_published_count == 5
    card = read.read_table(settings.lakehouse_path, "gold", "scorecard").to_pylist()
    as_of = max(r["as_of"] for r in card)
    shown = republished(settings, tmp_path / "k1", as_of, k=1)  # what the counts are, nothing hidden
    events = {kpi.id for kpi in load_catalogue().kpis if kpi.aggregation.window == "event"}
    counts = sorted(r["n"] for r in shown.values() if r["kpi_id"] in events and r["n"])
    assert counts, "the sample publishes event-count KPIs"
    published = {scorecard_key(r): r for r in card if r["as_of"] == as_of}
    larger_k = counts[len(counts) // 2] + 1  # the sample's median count + 1: some rows fall below it, some not
    for k, rows in ((5, published), (larger_k, republished(settings, tmp_path / "k", as_of, k=larger_k))):
        hidden = {key for key, row in rows.items() if row["suppressed"]}
        expected = {key for key, row in shown.items() if row["kpi_id"] in events and row["n"] and row["n"] < k}
        assert hidden == expected, f"k = {k} must hide exactly the event counts 1..{k - 1}"
        assert all(rows[key]["value"] is None and rows[key]["n"] is None and rows[key]["score"] is None
                   for key in hidden)
        assert all(not shown[key]["suppressed"] for key in hidden)
    assert 0 < sum(1 for n in counts if n < larger_k) < len(counts)


def scorecard_key(row: dict) -> tuple:
    """What identifies one published KPI value."""
    return tuple(row[k] for k in ("kpi_id", "area_level", "area_code", "period", "period_start"))


def republished(settings: Settings, copy: Path, as_of: datetime, k: int) -> dict[tuple, dict]:
    """The same gold published with small-count threshold k into a copy of the lakehouse, by scorecard key."""
    shutil.copytree(settings.lakehouse_path, copy, ignore=shutil.ignore_patterns("_checkpoints", "_broker"))
    settings_k = with_overrides(settings, lakehouse={"path": str(copy)}, privacy={"min_published_count": k})
    publish.publish_scorecard(None, settings_k, as_of=as_of.astimezone(timezone.utc))
    return {scorecard_key(r): r for r in read.read_table(copy, "gold", "scorecard").to_pylist() if r["as_of"] == as_of}


def test_pseudonyms_change_with_the_key_and_a_missing_key_stops_start_up(
        spark, make_settings, monkeypatch) -> None:
    settings = make_settings(feeds=["crowd_flow"])
    values = ["b6:ec:5a:b9:12:c6", "4821 BKF", "+34600123456"]
    frame = spark.createDataFrame([(v,) for v in values], "v string")
    first, second = b"k" * 32, b"another-key-of-32-characters!!!!"
    hashed = [r[0] for r in frame.select(pseudonyms.hmac_sha256_hex(frame["v"], first)).collect()]
    rekeyed = [r[0] for r in frame.select(pseudonyms.hmac_sha256_hex(frame["v"], second)).collect()]
    assert hashed == [hmac.new(first, v.encode(), hashlib.sha256).hexdigest() for v in values]
    assert rekeyed == [hmac.new(second, v.encode(), hashlib.sha256).hexdigest() for v in values]
    assert not set(hashed) & set(rekeyed)
    name = settings.privacy.pseudonym_key_env
    monkeypatch.delenv(name)
    with pytest.raises(SettingsError, match=f"{name} \\(at least 32 characters\\)"):
        pipeline.run(settings, "silver", until_idle=True, spark=spark)
    assert not any(q.isActive for q in spark.streams.active), "nothing started without the key"
    monkeypatch.setenv(name, "too-short")
    with pytest.raises(SettingsError, match="at least 32 characters"):
        settings.pseudonym_key()
    personal = [name for name, c in load_contracts().items() if c.pseudonymised_fields()]
    assert set(personal) == set(PERSONAL)
