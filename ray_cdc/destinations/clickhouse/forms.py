"""Batch Arrow columns -> the Arrow form ClickHouse stores (and reads back), vectorised.

The conversions follow `ddl.ch_type`: time64[ns] -> int64 ns; duration (month_day_nano interval) ->
struct(months, days, nanoseconds); a null list/map/struct -> an empty one (ClickHouse composites are
not Nullable); a map whose key is not a Map key type -> list<struct<key, value>>. Everything else
(uuid as fixed_size_binary(16), date32, timestamp[ms, UTC], strings) goes in unchanged.

`rejections` finds values ClickHouse would silently clamp (dates and timestamps outside Date32 and
DateTime64 ranges): those rows are refused rather than stored wrong.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.destinations.clickhouse.ddl import _MAP_KEYS, ch_type
from ray_cdc.schema.types import CqlType

DURATION = pa.struct([("months", pa.int32()), ("days", pa.int32()), ("nanoseconds", pa.int64())])
_DURATION_NP = np.dtype([("months", "<i4"), ("days", "<i4"), ("nanoseconds", "<i8")])

# inclusive ranges ClickHouse can store: Date32 and DateTime64(3)
DATE32_MIN, DATE32_MAX = -25567, 120529  # 1900-01-01 .. 2299-12-31
TS_MS_MIN, TS_MS_MAX = -2208988800000, 10413791999999  # 1900-01-01 .. 2299-12-31 23:59:59.999


def arrow_type(t: CqlType) -> pa.DataType:
    """The Arrow type of the stored form of a CQL type."""
    name = t.name
    if name == "time":
        return pa.int64()
    if name == "duration":
        return DURATION
    if name in ("list", "set", "vector"):
        return pa.list_(arrow_type(t.params[0]))
    if name == "map":
        key, value = (arrow_type(p) for p in t.params)
        if ch_type(t.params[0], nullable=False) in _MAP_KEYS:
            return pa.map_(key, value)
        return pa.list_(pa.struct([pa.field("key", key, nullable=False), ("value", value)]))
    if name in ("tuple", "udt"):
        names = t.field_names if name == "udt" else [str(i) for i in range(len(t.params))]
        return pa.struct([(n, arrow_type(p)) for n, p in zip(names, t.params)])
    return t.arrow_type()


def to_stored(array: pa.Array, t: CqlType) -> pa.Array:
    """One batch column in its stored form."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    name = t.name
    if name == "time":
        return array.cast(pa.int64())
    if name == "duration":
        return _duration(array)
    if name in ("list", "set", "vector"):
        return _list(array, t)
    if name == "map":
        return _map(array, t)
    if name in ("tuple", "udt"):
        return _struct(array, t)
    return array


def _duration(array: pa.Array) -> pa.Array:
    if len(array) == 0:
        return pa.array([], DURATION)
    data = array.buffers()[1]
    values = np.frombuffer(data, dtype=_DURATION_NP, count=len(array) + array.offset)[array.offset:]
    # a null duration is a tuple of NULLs: a ClickHouse Tuple cannot be NULL itself
    null = array.is_null().to_numpy(zero_copy_only=False)
    children = [pa.array(values[f], mask=null) for f in ("months", "days", "nanoseconds")]
    return pa.StructArray.from_arrays(children, fields=list(DURATION))


def _list(array: pa.Array, t: CqlType) -> pa.Array:
    # offsets of a null entry span nothing, so dropping the validity turns it into an empty list
    values = to_stored(array.values, t.params[0])
    return pa.ListArray.from_arrays(array.offsets, values, type=arrow_type(t))


def _map(array: pa.Array, t: CqlType) -> pa.Array:
    keys = to_stored(array.keys, t.params[0])
    items = to_stored(array.items, t.params[1])
    target = arrow_type(t)
    if pa.types.is_map(target):
        return pa.MapArray.from_arrays(array.offsets, keys, items, type=target)
    entries = pa.StructArray.from_arrays([keys, items], fields=list(target.value_type))
    return pa.ListArray.from_arrays(array.offsets, entries, type=target)


def _struct(array: pa.Array, t: CqlType) -> pa.Array:
    target = arrow_type(t)
    children = [array.field(i) for i in range(len(t.params))]
    if array.null_count:  # a null tuple becomes a tuple of nulls (a ClickHouse Tuple cannot be NULL)
        valid = array.is_valid()
        children = [pc.if_else(valid, child, pa.nulls(len(child), child.type)) for child in children]
    children = [to_stored(child, p) for child, p in zip(children, t.params)]
    return pa.StructArray.from_arrays(children, fields=list(target))


def from_stored(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """What ClickHouse returns (uuid as an extension type, composites not null) cast to `schema`."""
    return table.select(schema.names).cast(schema)


def rejections(array: pa.Array, t: CqlType) -> np.ndarray | None:
    """Row mask of top-level values ClickHouse cannot hold exactly; None when all fit."""
    if t.name == "date":
        low, high = DATE32_MIN, DATE32_MAX
        ints = array.cast(pa.int32())
    elif t.name == "timestamp":
        low, high = TS_MS_MIN, TS_MS_MAX
        ints = array.cast(pa.int64())
    else:
        return None
    bad = pc.fill_null(pc.or_(pc.less(ints, low), pc.greater(ints, high)), False)
    if not pc.any(bad).as_py():
        return None
    return bad.to_numpy(zero_copy_only=False)
