"""Spark twins of the pure packages: `contracts` semantics and the `spatial` lookup as Spark column expressions
and DataFrame transforms.

Each module mirrors a pure one (variant ~ json_values, ngsi ~ contracts.ngsi, rules ~ contracts.rules,
datetimes ~ ngsi.parse_datetime, units ~ canonical values, enrich ~ spatial.city_index); `pseudonyms` computes
keyed HMACs in the JVM. May import: `contracts`, `spatial`, `errors`.
"""

from bigbilbao import lazy_exports

_EXPORTS = {
    "present": "variant", "py_number": "variant", "py_str": "variant", "as_string": "variant",
    "geometry": "variant", "column_positions": "variant",
    "key_value_stages": "ngsi",
    "violation": "rules", "fact": "rules",
    "to_utc": "datetimes", "with_timestamps": "datetimes", "instant_parts": "datetimes",
    "typed": "units", "unknown_unit": "units", "wrong_type": "units", "unit_key": "units",
    "KEY_REDACTION": "pseudonyms", "hmac_sha256_hex": "pseudonyms",
    "OUTPUT_COLUMNS": "enrich", "current_index": "enrich",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
