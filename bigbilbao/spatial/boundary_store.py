"""Versioned boundary layers in the lakehouse: one Delta table, written without Spark, read by every engine.

`<lakehouse>/reference/boundaries` holds one row per polygon and import: the layer ('districts' or
'barrios'), its content hash `version`, `valid_from` (UTC), code, name, parent code, full-precision WKT,
whether the geometry is an approximation, and where it came from. Imports only append, so the table is
the history of the city's boundaries; the current layer is the one with the latest `valid_from`.
Importing the layer's current version again is a no-op; importing an older version again makes it current
(a rollback, recorded as a new `valid_from`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bigbilbao.errors import BoundaryError
from bigbilbao.spatial import boundary_sources
from bigbilbao.spatial.boundary_formats import (
    EUSTAT_BILBAO_WHERE,
    code_of,
    eustat_district_code,
    read_raw_layer,
    select_features,
)
from bigbilbao.spatial.index import BoundaryLayer, ParentSpec, build_layer, layer_from_wkt, to_wkt
from bigbilbao.tables.read import table_path

log = logging.getLogger(__name__)

LAYERS = ("districts", "barrios")
DEFAULT_FIELDS = {  # the field names of the EUSTAT-derived GeoJSON layers Big Bilbao documents
    "districts": {"id_field": "district_code", "name_field": "district_name", "parent_field": None, "where": None},
    "barrios": {"id_field": "barrio_code", "name_field": "barrio_name", "parent_field": "district_code",
                "where": None},
}
EUSTAT_BARRIO_FIELDS = {  # EUSTAT's Basque barrio Shapefile: keep Bilbao, derive the district from the code
    "id_field": "BAR_BARR", "name_field": "BAR_DS_O", "parent_field": eustat_district_code,
    "where": EUSTAT_BILBAO_WHERE,
}
DEMO_SOURCE = "bigbilbao/resources/demo_districts.geojson"
SCHEMA = pa.schema([
    pa.field("layer", pa.string(), nullable=False),
    pa.field("version", pa.string(), nullable=False),
    pa.field("valid_from", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("code", pa.string(), nullable=False),
    pa.field("name", pa.string(), nullable=False),
    pa.field("parent_code", pa.string()),
    pa.field("geometry_wkt", pa.string(), nullable=False),
    pa.field("approximate", pa.bool_(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
])


def boundaries_path(lakehouse: Path) -> Path:
    """Where the boundary table lives, beside the other reference tables."""
    return table_path(Path(lakehouse), "reference", "boundaries")


def import_layer(
    lakehouse: Path,
    path_or_url: str | Path,
    layer: str | None,
    id_field: str | None = None,
    name_field: str | None = None,
    parent_field: ParentSpec = None,
    where: Mapping[str, Any] | None = None,
    crs: str | None = None,
    *,
    source: str | None = None,
    configured: Mapping[str, Mapping[str, str | None]] | None = None,
) -> str:
    """Import a GeoJSON, Shapefile or zipped Shapefile (path or http(s) URL) as the layer's current version.

    Fields not given come from `configured` (layer -> {id_field, name_field, parent_field}, the settings), else
    are recognised: the documented GeoJSON names (DEFAULT_FIELDS) or EUSTAT's barrio Shapefile (BAR_BARR,
    filtered to Bilbao, district from the code's first digit). Without `layer` it is recognised the same way.
    Returns the version.
    """
    if layer is not None:
        _check_layer(layer)
    with boundary_sources.local_file(str(path_or_url)) as path:
        raw = read_raw_layer(path, crs=crs)
        keys = set(raw.features[0].properties) if raw.features else set()
        layer = layer or _guess_layer(Path(path).name, keys, configured or {})
        setting = (configured or {}).get(layer) or {}
        asked: dict[str, Any] = {"id_field": id_field, "name_field": name_field, "parent_field": parent_field}
        given = {key: setting.get(key) if value is None else value for key, value in asked.items()}
        fields = _fields(layer, keys, **given, where=where)
        chosen = select_features(raw.features, fields["where"])
        if not chosen:
            message = f"no feature of {Path(path).name!r} matches {dict(fields['where'] or {})}"
            raise BoundaryError(message)
        built = build_layer(layer, chosen, id_field=fields["id_field"], name_field=fields["name_field"],
                            parent_field=fields["parent_field"], source_crs=raw.crs)
    approximate = {code_of(f.properties.get(fields["id_field"]), f.label): f.properties.get("approximate") is True
                   for f in chosen}
    return _append(lakehouse, built, approximate, source or boundary_sources.source_label(path_or_url))


def _guess_layer(name: str, keys: set[str], configured: Mapping[str, Mapping[str, str | None]]) -> str:
    """Recognise the layer by its code property: configured id fields first, then the known presets."""
    matches = [layer for layer in LAYERS if (configured.get(layer) or {}).get("id_field") in keys]
    if len(matches) == 1:
        return matches[0]
    if DEFAULT_FIELDS["barrios"]["id_field"] in keys or EUSTAT_BARRIO_FIELDS["id_field"] in keys:
        return "barrios"
    if DEFAULT_FIELDS["districts"]["id_field"] in keys:
        return "districts"
    message = f"cannot tell whether {name!r} holds districts or barrios; pass --layer districts or --layer barrios"
    raise BoundaryError(message)


def _fields(layer: str, keys: set[str], id_field: str | None, name_field: str | None,
            parent_field: ParentSpec, where: Mapping[str, Any] | None) -> dict[str, Any]:
    """Explicit fields win; otherwise use the documented GeoJSON names or the EUSTAT preset the file carries."""
    preset: dict[str, Any] = {"id_field": None, "name_field": None, "parent_field": None, "where": None}
    if DEFAULT_FIELDS[layer]["id_field"] in keys:
        preset.update(DEFAULT_FIELDS[layer])
    elif layer == "barrios" and EUSTAT_BARRIO_FIELDS["id_field"] in keys:
        preset.update(EUSTAT_BARRIO_FIELDS)
    chosen = {"id_field": id_field, "name_field": name_field, "parent_field": parent_field, "where": where}
    if id_field is None or id_field == preset["id_field"]:
        chosen = {key: preset[key] if value is None else value for key, value in chosen.items()}
    flags = {"id_field": "--id-field", "name_field": "--name-field", "parent_field": "--parent-field"}
    for key, flag in flags.items():
        if isinstance(chosen[key], str) and chosen[key] not in keys:
            message = (f"the {layer} file has no property {chosen[key]!r} (it has {sorted(keys)[:12]}); "
                       f"pass the right {flag} or set boundaries.{layer}.{key}")
            raise BoundaryError(message)
    if not chosen["id_field"] or not chosen["name_field"]:
        message = (f"cannot tell which properties of the {layer} file hold code and name (it has "
                   f"{sorted(keys)[:12]}); pass --id-field and --name-field")
        raise BoundaryError(message)
    return chosen


def load_current(lakehouse: Path, layer: str, as_of: datetime | None = None) -> BoundaryLayer:
    """The layer valid now (or at `as_of`, UTC): the import with the latest valid_from, checked against its hash."""
    _check_layer(layer)
    rows = _current_rows(_read_layer(lakehouse, layer), as_of)
    if rows is None:
        when = f" at {as_of.isoformat()}" if as_of else ""
        message = (f"no {layer} boundaries in the lakehouse{when}; import them with "
                   f"`bigbilbao boundaries import PATH --layer {layer}`")
        raise BoundaryError(message)
    version = rows["version"][0].as_py()
    built = layer_from_wkt(layer, rows["code"].to_pylist(), rows["name"].to_pylist(),
                           rows["parent_code"].to_pylist(), rows["geometry_wkt"].to_pylist())
    if built.version != version:
        message = f"stored {layer} boundaries {version} rebuild with hash {built.version}; the table was altered"
        raise BoundaryError(message)
    return built


def current_versions(lakehouse: Path) -> dict[str, str]:
    """Current version of each stored layer, e.g. {'districts': '3f…'}; cheap enough to poll per micro-batch."""
    table = _read_table(lakehouse, columns=["layer", "version", "valid_from"])
    found = {}
    for layer in LAYERS:
        rows = _current_rows(table.filter(pc.equal(table["layer"], layer)), None)
        if rows is not None:
            found[layer] = rows["version"][0].as_py()
    return found


def history(lakehouse: Path) -> list[dict[str, Any]]:
    """One entry per import (layer, version, valid_from, features, approximate, source, current), oldest first."""
    table = _read_table(lakehouse, columns=["layer", "version", "valid_from", "approximate", "source"])
    current = {}
    for layer in LAYERS:
        rows = _current_rows(table.filter(pc.equal(table["layer"], layer)), None)
        if rows is not None:
            current[layer] = rows["valid_from"][0].as_py()
    imports: dict[tuple[str, datetime], dict[str, Any]] = {}
    for row in table.to_pylist():
        entry = imports.setdefault((row["layer"], row["valid_from"]), {
            "layer": row["layer"], "version": row["version"], "valid_from": row["valid_from"], "features": 0,
            "approximate": False, "source": row["source"], "current": current.get(row["layer"]) == row["valid_from"]})
        entry["features"] += 1
        entry["approximate"] = entry["approximate"] or row["approximate"]
    return sorted(imports.values(), key=lambda entry: (entry["valid_from"], LAYERS.index(entry["layer"])))


def seed_demo_districts(lakehouse: Path) -> str | None:
    """Store the packaged approximate districts when no districts exist yet, so demos run before an import."""
    if "districts" in current_versions(lakehouse):
        return None
    resource = resources.files("bigbilbao") / "resources" / "demo_districts.geojson"
    with resources.as_file(resource) as path:
        version = import_layer(lakehouse, path, "districts", source=DEMO_SOURCE)
    log.warning("seeded APPROXIMATE demo districts %s; import the official layer for real results", version)
    return version


def table_version(lakehouse: Path) -> int | None:
    """Delta commit number of the boundary table (None when absent): a change means someone imported."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(str(boundaries_path(lakehouse))).version()
    except TableNotFoundError:
        return None


def _append(lakehouse: Path, layer: BoundaryLayer, approximate: Mapping[str, bool], source: str) -> str:
    """Append the layer's rows unless it is already the current version; valid_from only moves forward."""
    from deltalake import write_deltalake

    existing = _read_layer(lakehouse, layer.name)
    current = _current_rows(existing, None)
    if current is not None and current["version"][0].as_py() == layer.version:
        log.info("%s boundaries %s are already current; nothing imported", layer.name, layer.version)
        return layer.version
    valid_from = datetime.now(timezone.utc)
    if existing.num_rows:
        latest = pc.max(existing["valid_from"]).as_py()
        valid_from = max(valid_from, latest + timedelta(microseconds=1))
    count = len(layer)
    rows = pa.table({
        "layer": [layer.name] * count, "version": [layer.version] * count, "valid_from": [valid_from] * count,
        "code": list(layer.codes), "name": list(layer.names), "parent_code": list(layer.parents),
        "geometry_wkt": to_wkt(layer.geometries), "approximate": [approximate.get(c, False) for c in layer.codes],
        "source": [source] * count,
    }, schema=SCHEMA)
    write_deltalake(str(boundaries_path(lakehouse)), rows, mode="append")
    log.info("imported %d %s as version %s valid from %s", count, layer.name, layer.version, valid_from.isoformat())
    return layer.version


def _read_table(lakehouse: Path, columns: list[str] | None = None) -> pa.Table:
    """The whole boundary table as Arrow (it is small), or an empty table of the right schema."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    schema = SCHEMA if columns is None else pa.schema([SCHEMA.field(c) for c in columns])
    try:
        table = DeltaTable(str(boundaries_path(lakehouse)))
    except TableNotFoundError:
        return schema.empty_table()
    return table.to_pyarrow_table(columns=columns).cast(schema)


def _read_layer(lakehouse: Path, layer: str) -> pa.Table:
    """Every stored row of one layer."""
    table = _read_table(lakehouse)
    return table.filter(pc.equal(table["layer"], layer))


def _current_rows(rows: pa.Table, as_of: datetime | None) -> pa.Table | None:
    """Rows of the latest import (valid_from <= as_of when given), sorted by code order; None if none."""
    if as_of is not None:
        if as_of.tzinfo is None:
            message = f"as_of must be timezone-aware (UTC), not {as_of.isoformat()}"
            raise BoundaryError(message)
        rows = rows.filter(pc.less_equal(rows["valid_from"], pa.scalar(as_of, pa.timestamp("us", tz="UTC"))))
    if rows.num_rows == 0:
        return None
    latest = pc.max(rows["valid_from"])
    return rows.filter(pc.equal(rows["valid_from"], latest))


def _check_layer(layer: str) -> None:
    """Only the two layers the scorecard rolls up to are stored."""
    if layer not in LAYERS:
        message = f"unknown boundary layer {layer!r}; choose one of {LAYERS}"
        raise BoundaryError(message)
