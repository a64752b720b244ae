"""Python's value semantics that `rules.check_event` relies on, as Spark expressions on VARIANT values.

Presence (`None` and "" are absent), numbers (`float()` of numbers and numeric strings, booleans
excluded), `str()` for patterns, and the positions of a GeoJSON geometry. Arguments that are read
more than once should be column or struct-field references (see `ngsi_columns.Stages`), not expressions.
"""

from __future__ import annotations

import functools
import logging

from pyspark.sql import Column
from pyspark.sql import functions as F

from bigbilbao.columns.datetimes import ascii_digits, py_strip
from bigbilbao.contracts.json_values import MAX_NUMBER_CHARS

log = logging.getLogger(__name__)

NUMERIC_KIND = r"^(TINYINT|SMALLINT|INT|BIGINT|FLOAT|DOUBLE|DECIMAL\(\d+,\d+\))$"
INTEGER_KIND = r"^(TINYINT|SMALLINT|INT|BIGINT)$"
# Python's float() grammar, once Unicode digits are ASCII and whitespace is stripped.
# Digits with single '_' separators, written so Java's regex loops once per '_' group, not once per digit
# (a per-digit group loop overflows the JVM stack on a long run of digits).
_DIGITS = r"[0-9]+(?:_[0-9]+)*"
_PY_FLOAT = rf"[+-]?(?:(?:{_DIGITS})?\.{_DIGITS}|{_DIGITS}\.?)(?:[eE][+-]?{_DIGITS})?"
_PY_SPECIAL = r"[+-]?(?i:inf|infinity|nan)"
GEODEPTH = 6  # nesting levels of GeoJSON coordinates searched for positions (MultiPolygon needs 4)
POSITIONS = "array<struct<lon: double, lat: double>>"


def kind(value: Column) -> Column:
    """Spark's name of a VARIANT's JSON type: STRING, BIGINT, DECIMAL(p,s), DOUBLE, BOOLEAN, VOID, OBJECT<..>..."""
    return F.schema_of_variant(value)


def as_string(value: Column, value_kind: Column) -> Column:
    """The string when the VARIANT holds a JSON string, else null (numbers are not cast)."""
    return F.when(value_kind == "STRING", F.try_variant_get(value, "$", "string"))


def py_float(text: Column) -> Column:
    """Python's float(str): Unicode digits and whitespace, '_' separators, inf/nan in any case; null if invalid.

    Text outside Python's grammar becomes null first, since Spark's cast also takes '1.5d' or hex floats (and a
    failing cast is slow: it throws inside).
    """
    clean = py_strip(ascii_digits(text))
    clean = F.when(F.length(clean) <= MAX_NUMBER_CHARS, clean)
    checked = F.nullif(F.regexp_replace(clean, rf"(?s)^(?!(?:{_PY_FLOAT}|{_PY_SPECIAL})\z).*\z", ""), F.lit(""))
    return F.regexp_replace(F.regexp_replace(checked, "_", ""), r"^[+-](?=(?i:nan)\z)", "").try_cast("double")


def py_number(value: Column, value_kind: Column) -> Column:
    """`rules._number`: JSON numbers and numeric strings as double; booleans, objects and arrays null."""
    return (F.when(value_kind.rlike(NUMERIC_KIND), F.try_variant_get(value, "$", "double"))
            .when(value_kind == "STRING", py_float(F.try_variant_get(value, "$", "string"))))


def py_str(value: Column, value_kind: Column) -> Column:
    """Python's str() of a JSON value, which `pattern` rules match.

    Strings, booleans and integers match Python exactly; floats use Java's notation outside
    [1e-3, 1e7) ('1.0E7' where Python writes '10000000.0'); objects and arrays are JSON text, not repr.
    """
    return (F.when(value_kind == "STRING", F.try_variant_get(value, "$", "string"))
            .when(value_kind == "BOOLEAN", F.when(F.try_variant_get(value, "$", "boolean"), "True").otherwise("False"))
            .when(value_kind.rlike(INTEGER_KIND), F.try_variant_get(value, "$", "string"))
            .when(value_kind.rlike(NUMERIC_KIND), F.try_variant_get(value, "$", "double").cast("string"))
            .otherwise(F.to_json(value)))


def present(value: Column, value_kind: Column) -> Column:
    """`rules._present`: neither missing, null nor the empty string."""
    return value.isNotNull() & ~F.coalesce((value_kind == "STRING") & (F.try_variant_get(value, "$", "string") == ""),
                                           F.lit(False))


def geometry(location: Column, location_kind: Column) -> Column:
    """The GeoJSON a location holds: the value itself, or the JSON in a string (null when it is not JSON)."""
    return F.when(location_kind == "STRING", F.try_parse_json(F.try_variant_get(location, "$", "string"))).otherwise(
        location)


def positions(coordinates: Column, depth: int = GEODEPTH) -> Column:
    """`rules._positions`: every (lon, lat) of a coordinates array of any nesting depth up to `depth`."""
    items = F.try_variant_get(coordinates, "$", "array<variant>")
    first, second = F.try_element_at(items, F.lit(1)), F.try_element_at(items, F.lit(2))
    is_position = (F.size(items) >= 2) & kind(first).rlike(NUMERIC_KIND) & kind(second).rlike(NUMERIC_KIND)
    position = F.array(F.struct(F.try_variant_get(first, "$", "double").alias("lon"),
                                F.try_variant_get(second, "$", "double").alias("lat")))
    empty = F.array().cast(POSITIONS)
    nested = F.flatten(F.transform(items, lambda item: positions(item, depth - 1))) if depth > 1 else empty
    return F.when(F.coalesce(is_position, F.lit(False)), position).when(items.isNotNull(), nested).otherwise(empty)


@functools.lru_cache(maxsize=16)
def column_positions(name: str) -> Column:
    """`positions` of a column, built once per name: the recursive expression costs hundreds of JVM calls."""
    return positions(F.col(f"`{name}`"))
