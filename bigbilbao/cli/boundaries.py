"""`bigbilbao boundaries import|list`: load official district and barrio layers into the lakehouse, show history."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging

from bigbilbao.config.settings import Settings

log = logging.getLogger(__name__)

LAYERS = ("districts", "barrios")  # boundary_store.LAYERS; that module (shapely, pyarrow) loads only when run
LIST_COLUMNS = ("layer", "version", "valid_from (UTC)", "features", "approximate", "current", "source")


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register `boundaries import` and `boundaries list` under the top-level command parser."""
    bnd = sub.add_parser("boundaries", help="import and list district/barrio boundary layers",
                         description="Import official boundary layers (GeoJSON or Shapefile, any CRS) into the "
                                     "versioned reference/boundaries table, or list what is stored.")
    actions = bnd.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = actions.add_parser(
        "import", parents=[common], help="import a GeoJSON/Shapefile (path or http(s) URL) as the current layer",
        description="Import a boundary layer as its new current version. A running stream uses it from its next "
                    "micro-batch. Property names not given here come from the settings' `boundaries` section, "
                    "else Big Bilbao's GeoJSON names or EUSTAT's barrio Shapefile are recognised.")
    imp.add_argument("source", metavar="PATH|URL", help="GeoJSON, Shapefile (.shp with its sidecars) or .zip")
    imp.add_argument("--layer", choices=LAYERS, help="which layer the file holds (default: recognised)")
    imp.add_argument("--id-field", help="property holding each polygon's code")
    imp.add_argument("--name-field", help="property holding each polygon's name")
    imp.add_argument("--parent-field", help="barrios: property holding the district code")
    imp.add_argument("--crs", help="CRS of the coordinates when the file does not say it (e.g. EPSG:25830)")
    actions.add_parser("list", parents=[common], help="list stored layers, versions and their validity",
                       description="Every import of the boundary table, oldest first; '*' marks the current one.")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Handle `bigbilbao boundaries ACTION`."""
    from bigbilbao.spatial import boundary_store

    lakehouse = settings.lakehouse_path
    if args.action == "list":
        print(format_history(boundary_store.history(lakehouse)))
        return 0
    before = boundary_store.table_version(lakehouse)
    configured = {layer: dataclasses.asdict(getattr(settings.boundaries, layer)) for layer in LAYERS}
    version = boundary_store.import_layer(lakehouse, args.source, args.layer, args.id_field, args.name_field,
                                          args.parent_field, crs=args.crs, configured=configured)
    entry = next(e for e in reversed(boundary_store.history(lakehouse)) if e["version"] == version)
    print(json.dumps({"layer": entry["layer"], "version": version, "features": entry["features"],
                      "imported": boundary_store.table_version(lakehouse) != before,
                      "valid_from": entry["valid_from"].isoformat(), "approximate": entry["approximate"]}))
    return 0


def format_history(entries: list[dict]) -> str:
    """A plain-text table of `boundary_store.history`, or a hint when nothing is stored."""
    if not entries:
        return ("no boundaries stored yet; import them with `bigbilbao boundaries import PATH --layer districts` "
                "(the stream seeds the approximate demo districts on first use)")
    rows = [LIST_COLUMNS] + [
        (e["layer"], e["version"], e["valid_from"].isoformat(timespec="seconds"), str(e["features"]),
         "APPROXIMATE" if e["approximate"] else "no", "*" if e["current"] else "", e["source"])
        for e in entries
    ]
    widths = [max(len(row[n]) for row in rows) for n in range(len(LIST_COLUMNS) - 1)]
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]).rstrip() for row in rows)
