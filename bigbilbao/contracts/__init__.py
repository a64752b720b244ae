"""Feed contracts, pure (no Spark): the contract model and its loading from `schemas/*.yaml`, data-quality rules
with their pure-Python reference check, NGSI flattening and JSON value semantics.

May import: `config.loader`, `errors`. Never pyspark: `bigbilbao.columns` holds the Spark twins.
"""

from bigbilbao import lazy_exports

_EXPORTS = {
    "Contract": "model", "EVENT_TIME": "model", "FIELD_TYPES": "model", "FieldSpec": "model", "Rule": "model",
    "RuleScope": "model", "UnitConversion": "model", "Violation": "model", "normalise_unit": "model",
    "default_directory": "loader", "load_contract": "loader", "load_contracts": "loader",
    "IMPLICIT_RULES": "rules", "WRONG_TYPE": "rules", "check_event": "rules", "canonical_numbers": "rules",
    "parse_datetime": "ngsi", "format_datetime": "ngsi", "to_key_values": "ngsi", "to_normalized_v2": "ngsi",
    "unit_codes": "ngsi", "is_normalized": "ngsi", "latest_observed_at": "ngsi", "attribute_value": "ngsi",
    "holds": "json_values", "number": "json_values", "present": "json_values",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
