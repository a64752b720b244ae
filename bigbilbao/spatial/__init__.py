"""Where things are, pure (no Spark): boundary files and sources, the versioned boundary store, the exact grid-
accelerated polygon index, the city index and the sensor registry.

May import: `tables.read`, `config`, `errors`. Never pyspark: `bigbilbao.columns.enrich` is the Spark twin.
"""

from bigbilbao import lazy_exports

_EXPORTS = {
    "BORDER": "index", "OUTSIDE": "index", "BoundaryLayer": "index", "GridArrays": "index",
    "PolygonIndex": "index", "assign_geometries": "index", "assign_geometry": "index", "build_layer": "index",
    "load_demo_districts": "index", "load_layer": "index", "reference_assign": "index", "to_wkt": "index",
    "CityIndex": "city_index", "OUTSIDE_CODE": "city_index", "UNLOCATED_CODE": "city_index",
    "RawFeature": "boundary_formats", "read_raw_layer": "boundary_formats",
    "eustat_district_code": "boundary_formats",
    "current_versions": "boundary_store", "history": "boundary_store", "import_layer": "boundary_store",
    "load_current": "boundary_store", "seed_demo_districts": "boundary_store",
    "load_sensors": "sensor_registry", "register_sensors": "sensor_registry",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
