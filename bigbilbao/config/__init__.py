"""Settings: one frozen, typed object built once from YAML plus environment overrides, at the entry point.

Pure (no Spark, no JVM). May import: `bigbilbao.errors`. Secrets come only from the environment.
"""

from bigbilbao import lazy_exports

_EXPORTS = {
    "DEFAULT_CONFIG": "loader", "build_dataclass": "loader", "read_yaml": "loader",
    "ENV_PREFIX": "settings", "FeedSettings": "settings", "Settings": "settings", "load_settings": "settings",
    "with_overrides": "settings", "is_object_store": "settings",
    "CatalogSettings": "governance", "TableGovernance": "governance",
    "MaintenanceSettings": "maintenance", "MonitorSettings": "monitor",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
