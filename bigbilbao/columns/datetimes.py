"""`ngsi.parse_datetime` as a Spark expression, so silver computes event times in the JVM, exactly as the reference.

The reference strips Unicode whitespace, keeps the part after the last `/` (an ISO 8601 interval
counts as its end), matches an ISO 8601 instant (date-only, minutes, seconds, any fraction, `Z` or
`+hh:mm`/`+hhmm`), reads naive times in the contract's IANA zone and returns UTC. Python's `\\d`,
`\\s` and `str.strip` are Unicode-aware while Java's regex classes are ASCII, so Unicode digits are
translated to ASCII first and whitespace uses Python's exact set.
"""

from __future__ import annotations

import functools
import sys
import unicodedata
from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# Python's str.isspace() set (what str.strip() and re's \s use), as a Java character class.
PY_SPACE = r"[\t\n\x0B\f\r\x1C-\x1F \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
_INSTANT = (r"^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]+))?)?)?"
            + PY_SPACE + r"*(Z|[+-][0-9]{2}:?[0-9]{2})?$")
_MICROS_PER_MINUTE = 60_000_000


@functools.lru_cache(maxsize=1)
def _unicode_digits() -> tuple[str, str]:
    """Every Unicode decimal digit (category Nd, which Python's `\\d` and int() accept) and its ASCII twin."""
    digits = [chr(c) for c in range(0x80, sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Nd"]
    return "".join(digits), "".join(str(unicodedata.decimal(d)) for d in digits)


def ascii_digits(text: Column) -> Column:
    """Replace Unicode decimal digits by ASCII ones, so Java's [0-9] matches what Python's \\d matches."""
    source, target = _unicode_digits()
    return F.translate(text, source, target)


def py_strip(text: Column) -> Column:
    """Python's str.strip(): remove leading and trailing Unicode whitespace (Spark's trim removes only spaces).

    Both ends are stripped as a leading run (the trailing one on the reversed text): an unanchored
    `\\s+$` would rescan a long inner run of spaces from every position, quadratic in its length.
    """
    leading = f"^{PY_SPACE}+"
    return F.reverse(F.regexp_replace(F.reverse(F.regexp_replace(text, leading, "")), leading, ""))


def instant_parts(raw: Column) -> Column:
    """Stage 1: the instant's eight regex groups ("" for a group that took no part), null when it does not match."""
    text = F.element_at(F.split(py_strip(ascii_digits(raw)), "/", -1), -1)
    groups = F.regexp_replace(text, _INSTANT, "$1|$2|$3|$4|$5|$6|$7|$8")
    return F.when(text.rlike(_INSTANT), F.split(groups, r"\|", -1))


def _part(parts: Column, index: int) -> Column:
    """Group `index` (1-based) of `instant_parts` as an int, null when empty."""
    return F.nullif(F.try_element_at(parts, F.lit(index)), F.lit("")).try_cast("int")


def _below(value: Column, limit: int) -> Column:
    """`value` when it is below `limit`, else null; references `value` once, so the expression stays small."""
    return F.nullif(F.least(value, F.lit(limit)), F.lit(limit))


def _offset_micros(zone: Column) -> Column:
    """Microseconds east of UTC of '', 'Z', '+hh:mm' or '+hhmm'; null beyond 24 h, which Python's timezone rejects.

    Minutes above 59 are kept, as Python's timedelta(hours=h, minutes=m) keeps them.
    """
    digits = F.regexp_replace(zone, "[^0-9]", "")
    hours, rest = F.nullif(F.substring(digits, 1, 2), F.lit("")), F.nullif(F.substring(digits, 3, 2), F.lit(""))
    minutes = F.coalesce(hours.try_cast("int") * 60 + rest.try_cast("int"), F.lit(0))
    signed = F.when(zone.startswith("-"), -_below(minutes, 24 * 60)).otherwise(_below(minutes, 24 * 60))
    return signed.cast("bigint") * _MICROS_PER_MINUTE


def to_utc(parts: Column, naive_timezone: str) -> Column:
    """Stage 2: `instant_parts` as a UTC timestamp; naive times are wall-clock times in `naive_timezone`.

    Pass a column reference (materialise stage 1 in an earlier select): `parts` is read several times.
    Python's datetime() rejects year 0, hour 24, minute 60 and second 60, which make_timestamp would accept or
    roll over, so those become null first. DST gaps and overlaps resolve as Python's fold=0 does (java.time agrees).
    """
    year = F.nullif(_below(_part(parts, 1), 10000), F.lit(0))
    hour, minute, second = (_below(F.coalesce(_part(parts, i), F.lit(0)), limit)
                            for i, limit in ((4, 24), (5, 60), (6, 60)))
    fraction = F.try_element_at(parts, F.lit(7))
    micros = F.rpad(F.substring(fraction, 1, 6), 6, "0").try_cast("int")  # "" pads to 000000
    zone = F.try_element_at(parts, F.lit(8))
    wall_zone = F.when(zone == "", F.lit(naive_timezone)).otherwise(F.lit("UTC"))
    wall = F.try_make_timestamp(year, _part(parts, 2), _part(parts, 3), hour, minute, second, wall_zone)
    return F.timestamp_micros(F.unix_micros(wall) + micros - _offset_micros(zone))


def with_timestamps(df: DataFrame, raw: Mapping[str, Column], naive_timezone: str) -> DataFrame:
    """Add one UTC timestamp column per `name -> string Column`, parsed exactly like `ngsi.parse_datetime`."""
    staged = df.select("*", *[instant_parts(column).alias(f"__instant_{name}") for name, column in raw.items()])
    return staged.select(*[F.col(f"`{c}`") for c in df.columns],
                         *[to_utc(F.col(f"__instant_{name}"), naive_timezone).alias(name) for name in raw])
