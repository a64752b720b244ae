"""The city's spatial index: districts and, once imported, barrios indexed on one shared grid (pure, no Spark).

`bigbilbao.columns.enrich` turns it into a broadcast join in Spark; `sensor_registry` places shaped
sensors with it. The labels of rows that fall in no polygon, or have no usable position, live here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bigbilbao.spatial import boundary_store
from bigbilbao.spatial.index import BoundaryLayer, PolygonIndex

OUTSIDE_CODE = "outside"  # located, but in no polygon of the layer
UNLOCATED_CODE = "unlocated"  # lon or lat is null, NaN or infinite
CELLS_ON_LONG_SIDE = 1024  # finer than spatial's default: half the border cells, so half the Python work


@dataclass(frozen=True, eq=False)
class CityIndex:
    """The current district index and, once imported, the barrio index: what one enrichment uses."""

    districts: PolygonIndex
    barrios: PolygonIndex | None = None

    @classmethod
    def from_layers(cls, districts: BoundaryLayer, barrios: BoundaryLayer | None = None,
                    cells_on_long_side: int = CELLS_ON_LONG_SIDE) -> CityIndex:
        """Index the layers on one shared cell size (one JVM join serves both); takes about a second."""
        layers = [layer for layer in (districts, barrios) if layer is not None]
        extent = max(max(x1 - x0, y1 - y0) for x0, y0, x1, y1 in (layer.bounds for layer in layers))
        size = extent / cells_on_long_side
        barrio_index = PolygonIndex.build(barrios, size) if barrios is not None else None
        return cls(PolygonIndex.build(districts, size), barrio_index)

    @classmethod
    def from_lakehouse(cls, lakehouse: Path) -> CityIndex:
        """Index the current stored layers; barrios are optional, districts are required."""
        versions = boundary_store.current_versions(lakehouse)
        barrios = boundary_store.load_current(lakehouse, "barrios") if "barrios" in versions else None
        return cls.from_layers(boundary_store.load_current(lakehouse, "districts"), barrios)

    def indexes(self) -> dict[str, PolygonIndex]:
        """Layer name -> index, for the layers present."""
        found = {"districts": self.districts, "barrios": self.barrios}
        return {name: index for name, index in found.items() if index is not None}

    @property
    def version(self) -> str:
        """Lineage label of both layers, e.g. 'districts:3f2a…,barrios:c719…'; written on every row."""
        return ",".join(f"{name}:{index.layer.version}" for name, index in self.indexes().items())
