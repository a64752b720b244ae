"""`ngsi.to_key_values` and `ngsi.unit_codes` as Spark expressions on a VARIANT payload.

Silver must judge an event exactly as `rules.check_event(contract, to_key_values(json.loads(payload)))`,
so this mirrors the Python reference rather than bronze's `$.name.value ?? $.name`: the NGSI-LD member
per attribute type, `object`-only relationships, multi-attribute lists (the instance without
datasetId), `geo:point` strings and JSON-LD `{"@value": ...}` literals (at the top of a value; nested
literals are kept). Values stay VARIANT, so rules can tell a number from a numeric string or a boolean.

The attributes a contract reads live in one map column, ATTRIBUTES (name -> struct of staged values),
which each `Stages.step` extends with `transform_values`. One expression thus serves every attribute:
per-attribute columns would multiply the generated code past the JVM's 64 KB method limit. Each step
reads the previous step's fields by reference, so no sub-expression is evaluated twice.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from bigbilbao.columns.variant import kind, py_float
from bigbilbao.contracts import ngsi

log = logging.getLogger(__name__)

ATTRIBUTES = "__attributes"  # map: attribute name -> struct of its staged values


def column_name(role: str, name: str) -> str:
    """Name of a staged top-level column `role` of `name`, e.g. `__ts__@event_time`."""
    return f"__{role}__{name}"


def ref(role: str, name: str) -> Column:
    """A staged column by role and attribute name."""
    return F.col(f"`{column_name(role, name)}`")


def keys(value: Column) -> Column:
    """The member names of a JSON object, null for anything else."""
    return F.map_keys(F.try_variant_get(value, "$", "map<string,variant>"))


def is_object(value: Column) -> Column:
    """Whether a VARIANT holds a JSON object (a cheap cast that copies no members)."""
    return F.try_variant_get(value, "$", "struct<>").isNotNull()


def has(value: Column, name: str) -> Column:
    """Whether a JSON object has the member `name`, even a null one."""
    return F.try_variant_get(value, f"$['{name}']", "variant").isNotNull()


def text_at(value: Column, path: str) -> Column:
    """The string at a JSON path when it is a JSON string (numbers are not cast), else null."""
    found = F.try_variant_get(value, path, "variant")
    return F.when(kind(found) == "STRING", F.try_variant_get(found, "$", "string"))


def _strings(values: Iterable[str]) -> Column:
    """A literal array<string>."""
    return F.array(*[F.lit(v) for v in sorted(values)])


def is_normalized(names: Column, type_name: Column, untyped: Column) -> Column:
    """`ngsi.is_normalized` from an object's member names, its `type` when a string, and whether `type` is absent."""
    ld = type_name.isin(list(ngsi.LD_VALUE_MEMBER))
    v2 = (F.array_contains(names, "value") & (F.size(F.array_except(names, _strings(ngsi.V2_MEMBERS))) == 0)
          & (untyped | type_name.isNotNull()))
    bare = (untyped & F.arrays_overlap(names, _strings({"value", "object"}))
            & (F.size(F.array_except(names, _strings(ngsi.LD_META_MEMBERS))) == 0))
    return F.coalesce(names.isNotNull() & (ld | v2 | bare), F.lit(False))


def absent(value: Column, member: str) -> Column:
    """Whether `value.get(member)` is None in Python: the member is missing or null (or `value` is no object)."""
    return F.coalesce(kind(F.try_variant_get(value, f"$['{member}']", "variant")) == "VOID", F.lit(True))


def _items(raw: Column) -> Column:
    """The elements of a JSON array as array<variant>, null for anything else."""
    return F.try_variant_get(raw, "$", "array<variant>")


def _multi(raw: Column) -> Column:
    """A non-empty list whose every element is a normalized attribute (an NGSI-LD multi-attribute)."""
    normalized = lambda item: is_normalized(keys(item), text_at(item, "$['type']"), absent(item, "type"))  # noqa: E731
    return F.coalesce((F.size(_items(raw)) > 0) & F.forall(_items(raw), normalized), F.lit(False))


def _default(raw: Column) -> Column:
    """`ngsi._default_instance`: the first element without datasetId, else the first."""
    without = F.filter(_items(raw), lambda item: ~has(item, "datasetId"))
    return F.coalesce(F.try_element_at(without, F.lit(1)), F.try_element_at(_items(raw), F.lit(1)))


def _member(s: Column) -> Column:
    """The member holding a normalized attribute's value: by NGSI-LD type, `object` alone, else `value`."""
    chain = None
    for value_member in sorted(set(ngsi.LD_VALUE_MEMBER.values())):
        types = [t for t, m in ngsi.LD_VALUE_MEMBER.items() if m == value_member]
        found = F.try_variant_get(s["inst"], f"$['{value_member}']", "variant")
        chain = F.when(s["tname"].isin(types), found) if chain is None else chain.when(s["tname"].isin(types), found)
    return chain.when(s["objectonly"], F.try_variant_get(s["inst"], "$['object']", "variant")).otherwise(
        F.try_variant_get(s["inst"], "$['value']", "variant"))


def _plain(s: Column) -> Column:
    """`ngsi._plain` of the member (not of an `object`-only relationship, which Python returns as sent)."""
    literal = ~s["objectonly"] | F.coalesce(s["tname"].isin(list(ngsi.LD_VALUE_MEMBER)), F.lit(False))
    value = s["member"]
    return F.when(literal & has(value, "@value"), F.try_variant_get(value, "$['@value']", "variant")).otherwise(value)


def geo_point(text: Column, original: Column) -> Column:
    """`ngsi._geo_point`: an NGSI-v2 'lat, lon' string as a GeoJSON Point, else `original`."""
    parts = F.split(text, ",", -1)
    lat, lon = py_float(F.try_element_at(parts, F.lit(1))), py_float(F.try_element_at(parts, F.lit(2)))
    point = F.to_variant_object(F.struct(F.lit("Point").alias("type"), F.array(lon, lat).alias("coordinates")))
    return F.when((F.size(parts) == 2) & lat.isNotNull() & lon.isNotNull(), point).otherwise(original)


def _flat(s: Column) -> Column:
    """`ngsi.attribute_value`: the plain member of a normalized attribute (geo:point as GeoJSON), else as sent."""
    point = ~s["objectonly"] & F.coalesce(s["tname"] == "geo:point", F.lit(False))
    text = F.when(point, text_at(s["plain"], "$"))
    return F.when(~s["norm"], s["inst"]).when(text.isNotNull(), geo_point(text, s["plain"])).otherwise(s["plain"])


def _unit(s: Column) -> Column:
    """`ngsi.unit_codes` for one attribute: NGSI-LD `unitCode`, else NGSI-v2 `metadata.unitCode` (plain, `.value`)."""
    code = F.try_variant_get(s["inst"], "$['metadata']['unitCode']", "variant")
    wrapped = F.coalesce(text_at(code, "$['@value']"), text_at(code, "$['@value']['value']"))
    bare = F.coalesce(text_at(code, "$"), text_at(code, "$['value']"), text_at(code, "$['value']['@value']"))
    from_metadata = F.when(has(code, "@value"), wrapped).otherwise(bare)
    direct = F.when(absent(s["inst"], "unitCode"), from_metadata).otherwise(text_at(s["inst"], "$['unitCode']"))
    return F.when(s["norm"] & ~s["multi"], direct)


class Stages:
    """Selects applied in order, each adding (or replacing) named columns; built once, applied to any DataFrame.

    It tracks the fields of the ATTRIBUTES structs, so the whole plan can be built before any data is seen
    (and cached per contract: building Spark expressions from Python costs thousands of JVM calls).
    """

    def __init__(self) -> None:
        self.selects: list[dict[str, Column]] = []
        self.fields: list[str] = []

    def add(self, columns: Mapping[str, Column]) -> None:
        """Materialise named expressions, so the next stage reads them by reference."""
        self.selects.append(dict(columns))

    def step(self, fields: Callable[[Column, Column], dict[str, Column]], keep: list[str] | None = None) -> None:
        """Add `fields(name, state)` to every attribute's state in ATTRIBUTES, keeping the old fields `keep` (all)."""
        kept, added = list(self.fields if keep is None else keep), []

        def extend(name: Column, state: Column) -> Column:
            new = fields(name, state)
            added.extend(new)
            return F.struct(*[state[f].alias(f) for f in kept], *[column.alias(f) for f, column in new.items()])

        self.selects.append({ATTRIBUTES: F.transform_values(F.col(ATTRIBUTES), extend)})
        self.fields = kept + added

    def apply(self, df: DataFrame) -> DataFrame:
        """Run the selects on `df`; a column named like an existing one replaces it."""
        for columns in self.selects:
            others = [F.col(f"`{c}`") for c in df.columns if c not in columns]
            df = df.select(*others, *[column.alias(name) for name, column in columns.items()])
        return df


@functools.lru_cache(maxsize=1)
def _flattening() -> Stages:
    """The contract-independent steps of `key_value_stages`, built once per process.

    Scalars (keyValues values) skip the NGSI steps: every step tests `nested` first, as variant access is costly.
    """
    stages = Stages()
    stages.fields = ["raw"]
    entity = lambda name: name.isin(sorted(ngsi.ENTITY_MEMBERS))  # noqa: E731  id and type stay as sent
    stages.step(lambda _, s: {"rawkind": kind(s["raw"])})
    stages.step(lambda name, s: {
        "nested": ~entity(name) & F.coalesce(s["rawkind"].rlike("^(OBJECT|ARRAY)"), F.lit(False)),
        "multi": ~entity(name) & F.coalesce(s["rawkind"].startswith("ARRAY"), F.lit(False)) & _multi(s["raw"])})
    stages.step(lambda _, s: {"inst": F.when(s["multi"], _default(s["raw"])).otherwise(s["raw"])},
                ["rawkind", "nested", "multi"])
    stages.step(lambda _, s: {"keys": F.when(s["nested"], keys(s["inst"])),
                              "tname": F.when(s["nested"], text_at(s["inst"], "$['type']")),
                              "untyped": ~s["nested"] | absent(s["inst"], "type")})
    stages.step(lambda _, s: {
        "norm": is_normalized(s["keys"], s["tname"], s["untyped"]),
        "objectonly": F.coalesce(F.array_contains(s["keys"], "object") & ~F.array_contains(s["keys"], "value"),
                                 F.lit(False))}, ["rawkind", "multi", "inst", "tname"])
    stages.step(lambda _, s: {"member": F.when(s["norm"], _member(s))})
    stages.step(lambda _, s: {"plain": F.when(s["norm"], _plain(s))})
    stages.step(lambda _, s: {"flat": _flat(s), "unitcode": F.when(s["norm"], _unit(s))}, ["rawkind", "norm"])
    stages.step(lambda _, s: {"kv": F.when(~F.is_variant_null(s["flat"]), s["flat"])},
                ["rawkind", "norm", "unitcode"])
    stages.step(lambda _, s: {"kind": F.when(s["kv"].isNull(), F.lit(None).cast("string"))
                              .when(s["norm"], kind(s["kv"])).otherwise(s["rawkind"])}, ["kv", "unitcode"])
    return stages


def key_value_stages(stages: Stages, doc: Column, names: list[str]) -> None:
    """Add ATTRIBUTES: for each of `names` the payload carries, its keyValues value (`kv`, VARIANT, null for JSON
    null), its JSON type (`kind`) and the unit code sent with it (`unitcode`)."""
    attributes = F.map_filter(F.try_variant_get(doc, "$", "map<string,variant>"), lambda name, _: name.isin(names))
    stages.add({ATTRIBUTES: F.transform_values(attributes, lambda _, raw: F.struct(raw.alias("raw")))})
    flattening = _flattening()
    stages.selects.extend(flattening.selects)
    stages.fields = list(flattening.fields)
