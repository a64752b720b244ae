"""Silver values of contract fields: typed, in the contract's canonical unit, converted as the contract declares.

NGSI normalized messages may say which unit a value is in (`metadata.unitCode` in NGSI-v2, `unitCode`
in NGSI-LD). The conversions come from the contract's `source_units` (value * factor + offset), the
same declarations `Contract.to_canonical` applies; a unit the contract does not declare is never
guessed: the event breaks the quarantine rule `unknown_unit`. keyValues messages carry no unit and
are taken as canonical.
"""

from __future__ import annotations

import logging

from pyspark.sql import Column
from pyspark.sql import functions as F

from bigbilbao.columns.variant import INTEGER_KIND, NUMERIC_KIND
from bigbilbao.contracts.model import FieldSpec, normalise_unit

log = logging.getLogger(__name__)

UNKNOWN_UNIT = "unknown_unit"


def unit_key(unit: Column) -> Column:
    """`contracts.normalise_unit` in Spark: µ/μ -> u, ³ -> 3, ² -> 2, no spaces, so spellings of a unit match."""
    return F.replace(F.translate(unit, "µμ³²", "uu32"), F.lit(" "), F.lit(""))


def conversions(spec: FieldSpec) -> dict[str, tuple[float, float]]:
    """Normalised unit -> (factor, offset), as `FieldSpec.conversion` resolves it: canonical first, first match wins."""
    table: dict[str, tuple[float, float]] = {}
    if spec.unit is not None:
        table[normalise_unit(spec.unit)] = (1.0, 0.0)
    for conversion in spec.source_units:
        table.setdefault(normalise_unit(conversion.unit), (conversion.factor, conversion.offset))
    return table


def unknown_unit(spec: FieldSpec, unit: Column, value_kind: Column, number: Column) -> Column:
    """The value is numeric and was sent in a unit the contract does not declare for the field.

    Numeric fields count numeric strings as numbers (silver stores them as numbers, so their unit
    matters); `Contract.to_canonical` skips them. Other fields count JSON numbers only, as it does.
    """
    known = list(conversions(spec))
    numeric = number.isNotNull() if spec.type in ("double", "long") else value_kind.rlike(NUMERIC_KIND)
    undeclared = ~unit.isin(known) if known else F.lit(True)
    return F.coalesce(unit.isNotNull() & undeclared & numeric, F.lit(False))


def convert(spec: FieldSpec, number: Column, unit: Column, unchanged: Column, whole: bool = False) -> Column:
    """number * factor + offset for the unit it was sent in (rounded for `whole` fields), else `unchanged`."""
    chain = None
    for name, (factor, offset) in conversions(spec).items():
        if (factor, offset) == (1.0, 0.0):
            continue
        value = number * F.lit(factor) + F.lit(offset)
        value = to_long(F.round(value)) if whole else value
        chain = F.when(unit == name, value) if chain is None else chain.when(unit == name, value)
    return unchanged if chain is None else chain.otherwise(unchanged)


def to_long(whole: Column) -> Column:
    """A whole double as BIGINT, null outside [-2**63, 2**63) (a plain cast would saturate 2**63 to 2**63 - 1)."""
    in_range = (whole >= F.lit(-(2.0**63))) & (whole < F.lit(2.0**63))  # NaN sorts above every number: out
    return F.when(in_range, whole.try_cast("bigint"))


def typed(spec: FieldSpec, value: Column, value_kind: Column, number: Column, stamp: Column, unit: Column) -> Column:
    """The field's silver value from its keyValues VARIANT (value, kind, `rules._number`, parsed time, unit code).

    double: numbers and numeric strings, converted; long: integers or integral numbers, converted and
    rounded; boolean: JSON booleans only; string: the string, or the JSON text of another value;
    timestamp: the time parsed to UTC. Anything else is null, and so is a value in an undeclared unit.
    """
    if spec.type == "double":
        result = convert(spec, number, unit, number)
    elif spec.type == "long":
        exact = F.when(value_kind.rlike(INTEGER_KIND), F.try_variant_get(value, "$", "bigint"))
        integral = F.when(~F.isnan(number) & (number == F.floor(number)), number)
        result = convert(spec, number, unit, F.coalesce(exact, to_long(integral)), whole=True)
    elif spec.type == "boolean":
        result = F.when(value_kind == "BOOLEAN", F.try_variant_get(value, "$", "boolean"))
    elif spec.type == "string":
        result = F.try_variant_get(value, "$", "string")
    else:
        result = stamp
    return F.when(~unknown_unit(spec, unit, value_kind, number), result)


def wrong_type(spec: FieldSpec, present: Column, silver_value: Column, undeclared_unit: Column) -> Column:
    """`rules.WRONG_TYPE` for one field: present and in a declared unit, yet null once typed (strings hold anything)."""
    if spec.type == "string":
        return F.lit(False)
    return F.coalesce(present & silver_value.isNull() & ~undeclared_unit, F.lit(False))
