"""How the reference reads a JSON value: present or absent, as a number, and whether a field's type can hold it.

These are the Python semantics that silver's Spark expressions reproduce (`bigbilbao.columns.variant` for presence
and numbers, `bigbilbao.columns.units.typed` for the typed silver value); `rules.check_event` builds on them.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from bigbilbao.contracts.ngsi import parse_datetime
from bigbilbao.errors import ContractError

if TYPE_CHECKING:
    from bigbilbao.contracts.model import FieldSpec, UnitConversion

log = logging.getLogger(__name__)

NUMBER = (int, float)
MAX_NUMBER_CHARS = 1000  # a longer string is no sensor's number, and regex engines should not walk it
_INT64 = 2**63


def present(value: Any) -> bool:
    """None and empty strings count as absent, like a missing JSON key."""
    return value is not None and value != ""


def number(value: Any) -> float | None:
    """Read ints, floats and numeric strings; None for anything else (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, NUMBER):
        return float(value)
    if isinstance(value, str) and len(value.strip()) > MAX_NUMBER_CHARS:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def holds(spec: FieldSpec, value: Any, unit: str | None, naive_timezone: str) -> bool:
    """Whether silver can store a present value in the field's type (a string holds any JSON, as text).

    A number in a unit the contract does not declare breaks `unknown_unit` instead, so it counts as held.
    """
    numeric = number(value) is not None if spec.type in ("double", "long") else (
        isinstance(value, NUMBER) and not isinstance(value, bool))
    try:
        conversion = spec.conversion(unit) if unit is not None and numeric else None
    except ContractError:
        return True
    if spec.type == "boolean":
        return isinstance(value, bool)
    if spec.type == "timestamp":
        return isinstance(value, str) and parse_datetime(value, naive_timezone) is not None
    if spec.type == "double":
        return numeric
    if spec.type == "long" and numeric:
        return _holds_long(value, number(value) or 0.0, conversion)
    return spec.type == "string"


def _holds_long(value: Any, read: float, conversion: UnitConversion | None) -> bool:
    """A 64-bit integer: an integer, an integral number, or any number converted and rounded from another unit."""
    if conversion is not None and (conversion.factor, conversion.offset) != (1.0, 0.0):
        converted = conversion.apply(read)
        return math.isfinite(converted) and -_INT64 <= converted < _INT64  # doubles this large are whole already
    if isinstance(value, int) and -_INT64 <= value < _INT64:
        return True
    return math.isfinite(read) and read == math.floor(read) and -_INT64 <= read < _INT64
