"""The lakehouse without Spark or a JVM (delta-rs): reading tables, the data catalogue, lineage, the books
(ledger), maintenance and the one conflict-retry loop.

May import: `scorecard`, `config`, `errors`. `from bigbilbao.tables import read` is the documented reader for
analysts.
"""

from bigbilbao import lazy_exports

_EXPORTS = {
    "AsOf": "read", "is_table": "read", "last_commit": "read", "list_tables": "read", "open_table": "read",
    "parse_as_of": "read", "read_pandas": "read", "read_table": "read", "table_path": "read",
    "apply_properties": "catalog", "describe": "catalog", "dq_pass_rates": "catalog", "governance_for": "catalog",
    "trace": "lineage",
    "Ledger": "ledger", "feed_ledger": "ledger",
    "TableMaintenance": "maintain", "selected_tables": "maintain",
    "retry_on_conflict": "conflicts",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
