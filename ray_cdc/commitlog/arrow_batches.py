"""The fast path: decoded mutations straight into Arrow record batches, one stream per table.

Rows are gathered column by column as *raw value bytes*; each column becomes an Arrow array in
one vectorised step at flush time (numpy over the concatenated bytes for fixed-width types,
offset buffers for text and blobs). Only values without such a path (collections, decimals, ...)
go through a per-value Python decode.

Each batch has one column per CQL column, then metadata columns:
`_op` (insert, update, delete, partition_delete, range_delete), `_writetime` (µs, the change's
latest timestamp), `_ttl` and `_expires_at` (for expiring writes), `_segment_id` and `_position`
(the resume point of the change's mutation), `_present` (the non-key columns the change writes
or deletes: a partial update sets only these), and `_range` (bounds of a range delete).

Non-frozen (multicell) collections and UDTs: Cassandra stores them one cell per element, so a change
to such a column `c` is more than a value. The column `c` itself holds the live elements the change
writes (a partial value: for an append or a put, only the new elements). Its companion column
`_cells.c` (a name no CQL column can take without quoting, like the `_`-prefixed metadata) holds
what the change does, element by element: null when the change does not touch `c`, else
`struct<replaced_at: int64, cells: list<struct<key, value, timestamp: int64, ttl: int32,
expires_at: timestamp[s, UTC], deleted: bool>>>`:
- `replaced_at`: the complex deletion (every element written at or before it is gone): the write
  timestamp - 1 for an overwrite or INSERT (`SET c = ...`), the timestamp for `DELETE c`; null when
  none;
- `cells`: one entry per element cell, in cell-path order. `key` is the element's identity: a list
  cell's timeuuid (binary(16)), a set element, a map key (as the CQL element/key type), a UDT field
  name (string). `value`: the list element or map value (CQL value type), null for a set; for a UDT
  the UDT struct with only that field set. `deleted`: an element tombstone (a removal; value null).
  `ttl`/`expires_at` only for expiring elements (else 0 and null).
The compiled kernel never sees complex columns (it declines those mutations), so these columns are
always built here; they are part of every batch schema (all null when no row touches `c`).

Two ways in: `arrow_batches(decoded_mutations)` adds decoded mutations (`CommitLogReader.mutations`)
through `TableBatchBuilder.add_update`; `CommitLogReader.arrow_batches(paths)` first hands each
entry body to the compiled kernel (`_fastpath.Kernel`, built from `_fastpath.pyx` when Cython and a
C compiler are there), which appends the rows of common mutations straight into the same builder
lists, and uses `add_update` for the rest. Both give the same batches. `finish()` builds columns with
the kernel module's column builders when it is there, with numpy otherwise; `RAY_CDC_PURE_PYTHON=1`
turns every compiled part off.
"""

from __future__ import annotations

import itertools
import logging
import operator
import os
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa

from ray_cdc.commitlog.changes import _complex_change, cell_value, split_composite
from ray_cdc.commitlog.mutation_model import (
    CELL_IS_DELETED,
    CELL_IS_EXPIRING,
    INCLUSIVE_KINDS,
    NO_DELETION_TIME,
    START_KINDS,
    ComplexColumn,
    PartitionUpdate,
    RangeTombstoneMarker,
)
from ray_cdc.schema.model import ColumnSchema, TableSchema

log = logging.getLogger(__name__)

try:  # the compiled kernel (setup.py builds it when Cython and a C compiler are there)
    from ray_cdc.commitlog import _fastpath as _compiled
except ImportError:  # pragma: no cover - depends on the build
    _compiled = None

_absence_logged = False


def fastpath():
    """The compiled kernel module, or None: not built here, or `RAY_CDC_PURE_PYTHON=1` (which forces
    the Python path everywhere, column building included, to compare the two)."""
    global _absence_logged
    if os.environ.get("RAY_CDC_PURE_PYTHON", "").strip().lower() not in ("", "0", "false", "no"):
        return None
    if _compiled is None and not _absence_logged:
        _absence_logged = True
        log.info("the compiled commitlog kernel (ray_cdc.commitlog._fastpath) is not built: "
                 "decoding with the pure-Python path")
    return _compiled


META_FIELDS = [
    pa.field("_op", pa.string(), nullable=False),
    pa.field("_writetime", pa.int64()),
    pa.field("_ttl", pa.int32()),
    pa.field("_expires_at", pa.timestamp("s", tz="UTC")),
    pa.field("_segment_id", pa.int64(), nullable=False),
    pa.field("_position", pa.int64(), nullable=False),
    pa.field("_present", pa.list_(pa.string())),
]

#: the int metadata columns a ColumnStore gives by index (`int_column(which)`), in META_FIELDS order
_META_INT_TYPES = (pa.int64(), pa.int32(), pa.timestamp("s", tz="UTC"), pa.int64(), pa.int64())

_NUMPY_FIXED = {  # CQL type -> (big-endian numpy dtype, native dtype)
    "int": (">i4", "i4"), "bigint": (">i8", "i8"), "float": (">f4", "f4"), "double": (">f8", "f8"),
    "timestamp": (">i8", "i8"), "boolean": ("u1", "u1"),
}
_VARIABLE = {"text": pa.string(), "varchar": pa.string(), "ascii": pa.string(), "blob": pa.binary()}


def range_type(table: TableSchema) -> pa.DataType:
    bound = pa.struct([pa.field(c.name, c.type.arrow_type()) for c in table.clustering] or
                      [pa.field("_", pa.null())])
    return pa.struct([("start", bound), ("start_size", pa.int8()), ("start_inclusive", pa.bool_()),
                      ("end", bound), ("end_size", pa.int8()), ("end_inclusive", pa.bool_())])


CELLS_PREFIX = "_cells."


def cells_column(name: str) -> str:
    """The name of the companion column of multicell column `name` (see the module doc)."""
    return CELLS_PREFIX + name


def cells_type(column: ColumnSchema) -> pa.DataType:
    """The type of `_cells.<column>`: the complex deletion and the element cells of one change."""
    t = column.type
    if t.name == "list":
        key, value = pa.binary(16), t.params[0].arrow_type()
    elif t.name == "set":
        key, value = t.params[0].arrow_type(), pa.null()
    elif t.name == "map":
        key, value = t.params[0].arrow_type(), t.params[1].arrow_type()
    else:  # udt: the field name, and the UDT with only that field set
        key, value = pa.string(), t.arrow_type()
    cell = pa.struct([("key", key), ("value", value), ("timestamp", pa.int64()), ("ttl", pa.int32()),
                      ("expires_at", pa.timestamp("s", tz="UTC")), ("deleted", pa.bool_())])
    return pa.struct([("replaced_at", pa.int64()), ("cells", pa.list_(cell))])


def multicell_columns(table: TableSchema) -> list[ColumnSchema]:
    return [c for c in _data_columns(table) if c.type.is_multicell]


def batch_schema(table: TableSchema) -> pa.Schema:
    """One field per CQL column, the metadata fields, `_range`, then `_cells.<c>` for each multicell
    column `c` (element-wise changes of non-frozen collections and UDTs, see the module doc)."""
    fields = [pa.field(c.name, c.type.arrow_type()) for c in _data_columns(table)]
    meta = {b"keyspace": table.keyspace.encode(), b"table": table.name.encode(), b"table_id": str(table.id).encode()}
    cells = [pa.field(cells_column(c.name), cells_type(c)) for c in multicell_columns(table)]
    return pa.schema(fields + META_FIELDS + [pa.field("_range", range_type(table))] + cells, metadata=meta)


def _data_columns(table: TableSchema) -> list[ColumnSchema]:
    return [*table.partition_key, *table.clustering, *table.static, *table.regular]


class TableBatchBuilder:
    """Accumulates one table's changes as raw column values; `finish()` makes the RecordBatch.

    The Python path appends to the lists (`raw[slot]`, `op`, `writetime`, `ttl`, `expires`,
    `segment`, `position`, `present`), created once and cleared in place by `finish()`. With the
    compiled kernel, `store` is a `_fastpath.ColumnStore` (set by the kernel's `TablePlan`): the
    kernel appends to its C buffers, and list rows move into it (`absorb`) before the kernel adds
    more, so the rows of a batch are the store's rows, then the lists' rows, in log order.
    """

    def __init__(self, table: TableSchema):
        self.table = table
        self.columns = _data_columns(table)
        self.slot = {c.name: i for i, c in enumerate(self.columns)}
        self.n_pk = len(table.partition_key)
        self.n_ck = len(table.clustering)
        self._slot_cache: dict[tuple[str, ...], tuple[list[int], list[str | None]]] = {}
        self._last_names: tuple[str, ...] | None = None
        self._last_slots: tuple[list[int], list[str | None]] = ([], [])
        self._schema: pa.Schema | None = None
        self.raw: list[list] = [[] for _ in self.columns]
        self.op: list[str] = []
        self.writetime: list[int] = []
        self.ttl: list[int | None] = []
        self.expires: list[int | None] = []
        self.segment: list[int] = []
        self.position: list[int] = []
        self.present: list = []
        self.store = None  # a _fastpath.ColumnStore once the kernel has a plan for this builder
        self._reset()

    def _reset(self) -> None:
        for column in self.raw:
            column.clear()
        for values in (self.op, self.writetime, self.ttl, self.expires, self.segment, self.position,
                       self.present):
            values.clear()
        self.decoded: dict[int, dict[int, object]] = {}  # slot -> {row: python value} (complex columns)
        self.cells: dict[int, dict[int, ComplexColumn]] = {}  # slot -> {row: its cells} (complex columns)
        self.ranges: dict[int, dict] = {}
        self._nbytes = 0  # value bytes of the list rows
        if self.store is not None:
            self.store.clear()

    def __len__(self) -> int:
        store = self.store
        return len(self.op) if store is None else len(self.op) + len(store)

    @property
    def nbytes(self) -> int:
        """Value bytes of the pending rows (what `max_bytes` bounds)."""
        store = self.store
        return self._nbytes if store is None else self._nbytes + store.nbytes

    def to_lists(self) -> None:
        """Move the store's rows into the lists (in front): the lists then hold the whole batch as
        the Python path alone would have built it."""
        if self.store is not None and len(self.store):
            self.store.drain(self)

    # --- adding rows -------------------------------------------------------------------------------

    def add_update(self, update: PartitionUpdate, segment_id: int, offset: int) -> None:
        pk = [update.key] if self.n_pk == 1 else split_composite(update.key)
        pd = update.partition_deletion
        if pd is not None and not pd.is_live:
            self._meta_row(pk, (), "partition_delete", pd.marked_for_delete_at, None, None, segment_id, offset, ())
        if update.static_row is not None:
            self._row(update.static_row, update.static_columns, pk, segment_id, offset)
        start = None
        names = update.regular_columns
        row = self._row
        for unfiltered in update.unfiltereds:
            if unfiltered.__class__ is RangeTombstoneMarker:
                start = self._marker(unfiltered, start, pk, segment_id, offset)
            else:
                row(unfiltered, names, pk, segment_id, offset)

    def _slots(self, names: tuple[str, ...]) -> tuple[list[int], list[str | None]]:
        """Builder slot (-1: a dropped column) and column name of each header column."""
        if names is self._last_names:  # the decoder hands out one tuple per repeated header
            return self._last_slots
        slots = self._slot_cache.get(names)
        if slots is None:
            index = [self.slot.get(n, -1) for n in names]
            slots = self._slot_cache[names] = (index, [self.columns[i].name if i >= 0 else None for i in index])
        self._last_names, self._last_slots = names, slots
        return slots

    def _row(self, row, names, pk, segment_id, offset) -> None:
        raw = self.raw
        slots, slot_names = self._slots(names)
        written = [None] * len(raw)
        n_pk = len(pk)
        if n_pk == self.n_pk:
            written[:n_pk] = pk
        else:  # a malformed composite key: per value (an IndexError when it has too many parts)
            for i, v in enumerate(pk):
                written[i] = v
        clustering = row.clustering
        if clustering:
            end = self.n_pk + len(clustering)
            if end > len(written):
                raise IndexError("list assignment index out of range")
            written[self.n_pk:end] = clustering
        writetime = ttl = expires = None
        liveness = row.liveness
        if liveness is not None:
            writetime = liveness[0]
            if liveness[1]:
                ttl, expires = liveness[1], liveness[2]
        present = []
        add_present = present.append
        nbytes = 0
        for index, data in row.columns:
            slot = slots[index]
            if slot < 0:
                continue  # a dropped column: not part of the current table
            add_present(slot_names[index])
            if data.__class__ is ComplexColumn:
                change = _complex_change(self.columns[slot], data, False)
                index = len(self)
                self.decoded.setdefault(slot, {})[index] = change.value
                self.cells.setdefault(slot, {})[index] = data
                ts = change.timestamp
            else:
                flags, ts, ldt, cell_ttl, _, value = data
                if not flags & CELL_IS_DELETED:
                    written[slot] = value
                    nbytes += len(value)
                    if flags & CELL_IS_EXPIRING and ttl is None:
                        ttl, expires = cell_ttl, ldt
            if writetime is None or ts > writetime:
                writetime = ts
        self._nbytes += nbytes
        op = "insert" if liveness is not None else "update"
        deletion = row.deletion
        if deletion is not None:
            op = "delete"
            if writetime is None or deletion[0] > writetime:
                writetime = deletion[0]
        for column, v in zip(raw, written):
            column.append(v)
        self._meta(op, writetime, ttl, expires, segment_id, offset, present)

    def _meta_row(self, pk, clustering, op, writetime, ttl, expires, segment_id, offset, present) -> None:
        values = list(pk) + list(clustering)
        for i, column in enumerate(self.raw):
            column.append(values[i] if i < len(values) else None)
        self._meta(op, writetime, ttl, expires, segment_id, offset, present)

    def _meta(self, op, writetime, ttl, expires, segment_id, offset, present) -> None:
        self.op.append(op)
        self.writetime.append(writetime)
        self.ttl.append(ttl)
        self.expires.append(expires if expires != NO_DELETION_TIME else None)
        self.segment.append(segment_id)
        self.position.append(offset)
        self.present.append(present)

    def _marker(self, marker: RangeTombstoneMarker, start, pk, segment_id, offset):
        if marker.kind in START_KINDS:
            return marker, marker.kind in INCLUSIVE_KINDS
        if start is not None:
            start_marker, start_incl = start
            end_incl = marker.kind in INCLUSIVE_KINDS or marker.kind == 5
            self.ranges[len(self)] = {
                "start": self._bound(start_marker), "start_size": len(start_marker.clustering),
                "start_inclusive": start_incl, "end": self._bound(marker),
                "end_size": len(marker.clustering), "end_inclusive": end_incl,
            }
            self._meta_row(pk, start_marker.clustering, "range_delete",
                           start_marker.deletion.marked_for_delete_at, None, None, segment_id, offset, ())
        if marker.is_boundary:
            return RangeTombstoneMarker(marker.kind, marker.clustering, marker.start_deletion), marker.kind == 2
        return None

    def _bound(self, marker: RangeTombstoneMarker) -> dict:
        return {c.name: (c.type.to_arrow_value(c.type.decode(v)) if v is not None else None)
                for c, v in zip(self.table.clustering, marker.clustering)}

    # --- making the batch ---------------------------------------------------------------------------

    def finish(self) -> pa.RecordBatch:
        n = len(self)
        fp = fastpath()
        store = self.store
        if store is not None and len(store) and self.op and not store.absorb(self):
            self.to_lists()  # list rows the buffers cannot hold: the whole batch takes the list path
        if store is not None and len(store):
            arrays = self._store_arrays(store, n, fp)
            if arrays is None:  # something the buffers cannot make (64-bit _present offsets)
                self.to_lists()
        if store is None or not len(store):
            arrays = self._list_arrays(n, fp)
        arrays.append(self._ranges(n))
        arrays += [self._cells(self.slot[c.name], c, n) for c in multicell_columns(self.table)]
        if self._schema is None:
            self._schema = batch_schema(self.table)
        batch = pa.RecordBatch.from_arrays(arrays, schema=self._schema)
        self._reset()
        return batch

    def _store_arrays(self, store, n: int, fp) -> list[pa.Array] | None:
        """The data and metadata columns from the kernel's buffers (`store` holds every row)."""
        present = store.present_column()
        if present is None:
            return None
        arrays = [self._store_column(store, i, c, n, fp) for i, c in enumerate(self.columns)]
        offsets, data = store.op_column()
        arrays.append(pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)],
                                            null_count=0))
        for which, typ in enumerate(_META_INT_TYPES):
            validity, data, nulls = store.int_column(which)
            arrays.append(pa.Array.from_buffers(typ, n, [_buffer(validity), pa.py_buffer(data)], null_count=nulls))
        arrays.append(_present_from_buffers(n, *present))
        return arrays

    def _store_column(self, store, slot: int, column: ColumnSchema, n: int, fp) -> pa.Array:
        typ = column.type
        if slot in self.decoded or typ.is_multicell:
            return self._column(slot, column, n, fp)
        target = typ.arrow_type()
        if store.width(slot) >= 0:
            if typ.name in _NUMPY_FIXED:
                is_bool = target == pa.bool_()
                encoded = store.fixed_column(slot, 2 if is_bool else (1 if typ.fixed_width > 1 else 0))
                if encoded is not None:
                    return _fixed_from_buffers(target, n, *encoded)
            elif typ.name in ("uuid", "timeuuid"):
                encoded = store.fixed_column(slot, 0)
                if encoded is not None:
                    array = _uuid_from_buffers(target, n, encoded[0], encoded[1])
                    if array is not None:
                        return array
        elif _VARIABLE.get(typ.name) == target:
            encoded = store.variable_column(slot)
            if encoded is not None:
                return _variable_from_buffers(target, n, *encoded)
        # anything else (varint, date, collections, ...; a fixed-width column with an empty value):
        # value by value, from the same raw bytes the list path would have
        return raw_to_arrow(column, store.values(slot), _fp=fp)

    def _list_arrays(self, n: int, fp) -> list[pa.Array]:
        arrays = [self._column(i, c, n, fp) for i, c in enumerate(self.columns)]
        arrays += [
            _string_array(self.op, fp),
            _int_array(self.writetime, pa.int64(), fp),
            _int_array(self.ttl, pa.int32(), fp),
            _int_array(self.expires, pa.timestamp("s", tz="UTC"), fp),
            _int_array(self.segment, pa.int64(), fp),
            _int_array(self.position, pa.int64(), fp),
            _present_array(self.present, fp),
        ]
        return arrays

    def _ranges(self, n: int) -> pa.Array:
        typ = range_type(self.table)
        if not self.ranges:
            return pa.nulls(n, typ)
        return pa.array([self.ranges.get(i) for i in range(n)], typ)

    def _cells(self, slot: int, column: ColumnSchema, n: int) -> pa.Array:
        typ = cells_type(column)
        rows = self.cells.get(slot)
        if not rows:
            return pa.nulls(n, typ)
        return pa.array([_cells_value(column, rows[i]) if i in rows else None for i in range(n)], typ)

    def _column(self, slot: int, column: ColumnSchema, n: int, fp=None) -> pa.Array:
        typ = column.type
        if slot in self.decoded or typ.is_multicell:
            values = self.decoded.get(slot, {})
            return pa.array([typ.to_arrow_value(values[i]) if values.get(i) is not None else None
                             for i in range(n)], typ.arrow_type())
        return raw_to_arrow(column, self.raw[slot], _fp=fp)


def _cells_value(column: ColumnSchema, data: ComplexColumn) -> dict:
    """One change's `_cells.<column>` entry (Arrow Python form)."""
    t = column.type
    kind = t.name
    deletion = data.deletion
    replaced = deletion.marked_for_delete_at if deletion is not None and not deletion.is_live else None
    cells = []
    for cell in data.cells:
        path = cell.path
        if kind == "list":
            key = bytes(path)
        elif kind == "udt":
            key = t.decode_cell_path(path)
        else:
            key = t.params[0].to_arrow_value(t.decode_cell_path(path))
        deleted = bool(cell.flags & CELL_IS_DELETED)
        value = None
        if not deleted and kind != "set":
            value_type = t.cell_value_type(path)
            value = value_type.to_arrow_value(value_type.decode(cell.value))
            if kind == "udt":
                value = {key: value}
        expiring = bool(cell.flags & CELL_IS_EXPIRING) and not deleted
        expires = cell.local_deletion_time if expiring and cell.local_deletion_time != NO_DELETION_TIME else None
        cells.append({"key": key, "value": value, "timestamp": cell.timestamp, "ttl": cell.ttl if expiring else 0,
                      "expires_at": expires, "deleted": deleted})
    return {"replaced_at": replaced, "cells": cells}


def _buffer(data: bytes | pa.Buffer | None):
    return data if data is None or isinstance(data, pa.Buffer) else pa.py_buffer(data)


def _int_array(values: list, typ: pa.DataType, fp) -> pa.Array:
    """Python ints (None = null) -> an int32/int64-backed array (timestamps: seconds)."""
    if fp is not None:
        encoded = fp.int_column(values, 32 if typ == pa.int32() else 64)
        if encoded is not None:
            validity, data, nulls = encoded
            return pa.Array.from_buffers(typ, len(values), [_buffer(validity), pa.py_buffer(data)], null_count=nulls)
    if pa.types.is_timestamp(typ):
        return pa.array(values, pa.int64()).cast(typ)
    return pa.array(values, typ)


def _string_array(values: list, fp) -> pa.Array:
    if fp is not None:
        encoded = fp.string_column(values)
        if encoded is not None:
            validity, offsets, data, nulls = encoded
            return pa.Array.from_buffers(pa.string(), len(values),
                                         [_buffer(validity), pa.py_buffer(offsets), pa.py_buffer(data)],
                                         null_count=nulls)
    return pa.array(values, pa.string())


_PRESENT_TYPE = pa.list_(pa.string())


def _present_array(present: list, fp) -> pa.Array:
    if fp is not None:
        encoded = fp.present_column(present)
        if encoded is not None:
            return _present_from_buffers(len(present), *encoded)
    return pa.array(present, _PRESENT_TYPE)


def _present_from_buffers(n: int, list_offsets: bytes, str_offsets: bytes, data: bytes) -> pa.Array:
    count = len(str_offsets) // 4 - 1
    names = pa.Array.from_buffers(pa.string(), count, [None, pa.py_buffer(str_offsets), pa.py_buffer(data)],
                                  null_count=0)
    return pa.Array.from_buffers(_PRESENT_TYPE, n, [None, pa.py_buffer(list_offsets)], null_count=0,
                                 children=[names])


def _fixed_from_buffers(target: pa.DataType, n: int, validity, data: bytes, nulls: int) -> pa.Array:
    return pa.Array.from_buffers(target, n, [_buffer(validity), pa.py_buffer(data)], null_count=nulls)


def _variable_from_buffers(target: pa.DataType, n: int, validity, offsets: bytes, data: bytes, nulls: int,
                           large: bool) -> pa.Array:
    if large:
        typ = pa.large_string() if target == pa.string() else pa.large_binary()
    else:
        typ = target
    array = pa.Array.from_buffers(typ, n, [_buffer(validity), pa.py_buffer(offsets), pa.py_buffer(data)],
                                  null_count=nulls)
    if target == pa.string():
        array.validate(full=True)  # invalid UTF-8 must fail here, not in a destination
    return array


def _uuid_from_buffers(target: pa.DataType, n: int, validity, joined: bytes) -> pa.Array | None:
    storage = pa.Array.from_buffers(pa.binary(16), n, [_buffer(validity), pa.py_buffer(joined)])
    if target == pa.binary(16):
        return storage
    if isinstance(target, pa.ExtensionType):
        return pa.ExtensionArray.from_storage(target, storage)
    return None


def raw_to_arrow(column: ColumnSchema, raw: list, *, _fp=None) -> pa.Array:
    """Raw value bytes (None = null) of one column -> an Arrow array of the column's type."""
    typ = column.type
    target = typ.arrow_type()
    fixed = _NUMPY_FIXED.get(typ.name)
    if fixed is not None:
        array = _fixed_width(raw, typ.fixed_width, fixed, target, _fp)
        if array is not None:
            return array
    variable = _VARIABLE.get(typ.name)
    if variable is not None and variable == target:
        array = _variable_width(raw, target, _fp)
        if array is not None:
            return array
    if typ.name in ("uuid", "timeuuid"):
        array = _uuid(raw, target, _fp)
        if array is not None:
            return array
    return pa.array([typ.to_arrow_value(cell_value(column, v)) if v is not None else None for v in raw], target)


def _mask(raw: list) -> np.ndarray | None:
    """True where a value is null; None when none is."""
    if None not in raw:
        return None
    return np.fromiter(map(operator.is_, raw, itertools.repeat(None)), dtype=bool, count=len(raw))


def _validity(mask: np.ndarray | None):
    return None if mask is None else pa.array(~mask).buffers()[1]


def _join_fixed(raw: list, width: int, mask: np.ndarray | None) -> bytes | None:
    """The values with nulls as zeros, when every value is exactly `width` bytes."""
    if mask is None:
        filled = raw
    else:
        filler = b"\0" * width
        filled = [filler if v is None else v for v in raw]
    if filled and set(map(len, filled)) != {width}:
        return None  # an empty value somewhere (legal in CQL): take the per-value path
    return b"".join(filled)


def _fixed_width(raw: list, width: int, dtypes, target: pa.DataType, fp=None) -> pa.Array | None:
    is_bool = target == pa.bool_()
    if fp is not None:
        encoded = fp.fixed_column(raw, width, 2 if is_bool else (1 if width > 1 else 0))
        if encoded is None:
            return None
        return _fixed_from_buffers(target, len(raw), *encoded)
    mask = _mask(raw)
    joined = _join_fixed(raw, width, mask)
    if joined is None:
        return None
    values = np.frombuffer(joined, dtype=dtypes[0]).astype(dtypes[1])
    if is_bool:
        return pa.array(values != 0, pa.bool_(), mask=mask)
    storage = pa.int64() if pa.types.is_timestamp(target) else target
    array = pa.array(values, storage, mask=mask)
    return array if storage == target else array.view(target)


def _variable_width(raw: list, target: pa.DataType, fp=None) -> pa.Array | None:
    if fp is not None:
        encoded = fp.variable_column(raw)
        if encoded is None:
            return None
        return _variable_from_buffers(target, len(raw), *encoded)
    mask = _mask(raw)
    filled = raw if mask is None else [b"" if v is None else v for v in raw]
    lengths = np.fromiter(map(len, filled), dtype=np.int64, count=len(raw))
    offsets = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = b"".join(filled)
    large = pa.large_string() if target == pa.string() else pa.large_binary()
    array = pa.Array.from_buffers(large, len(raw), [_validity(mask), pa.py_buffer(offsets), pa.py_buffer(data)],
                                  null_count=-1 if mask is not None else 0)
    if target == pa.string():
        array.validate(full=True)  # invalid UTF-8 must fail here, not in a destination
    return array.cast(target) if offsets[-1] < 2**31 else array


def _uuid(raw: list, target: pa.DataType, fp=None) -> pa.Array | None:
    if fp is not None:
        encoded = fp.fixed_column(raw, 16, 0)
        if encoded is None:
            return None
        validity, joined, _ = encoded
    else:
        mask = _mask(raw)
        joined = _join_fixed(raw, 16, mask)
        if joined is None:
            return None
        validity = _validity(mask)
    return _uuid_from_buffers(target, len(raw), validity, joined)


class ArrowBatcher:
    """Groups decoded mutations into per-table batches of bounded rows and bytes."""

    def __init__(self, *, max_rows: int = 65536, max_bytes: int = 16 << 20):
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._builders: dict = {}

    def builder(self, table: TableSchema) -> tuple[TableBatchBuilder, pa.RecordBatch | None]:
        """The builder of `table` (by id), and the batch closed because its schema changed, if any."""
        builder = self._builders.get(table.id)
        closed = None
        if builder is None or builder.table is not table:
            if builder is not None and len(builder):
                closed = builder.finish()  # schema changed: close the old batch
            builder = self._builders[table.id] = TableBatchBuilder(table)
        return builder, closed

    def current(self, table_id) -> TableBatchBuilder | None:
        return self._builders.get(table_id)

    def add(self, decoded) -> Iterator[tuple[TableSchema, pa.RecordBatch]]:
        """Add one DecodedMutation; yields the batches that became full."""
        position = decoded.position
        for update in decoded.mutation.updates:
            builder = self._builders.get(update.table.id)
            if builder is None or builder.table is not update.table:
                old = builder
                builder, closed = self.builder(update.table)
                if closed is not None:
                    yield old.table, closed
            builder.add_update(update, position.segment_id, position.offset)
            if len(builder) >= self.max_rows or builder.nbytes >= self.max_bytes:
                yield builder.table, builder.finish()

    def flush(self) -> Iterator[tuple[TableSchema, pa.RecordBatch]]:
        for builder in self._builders.values():
            if len(builder):
                yield builder.table, builder.finish()


def arrow_batches(decoded_mutations: Iterable, *, max_rows: int = 65536,
                  max_bytes: int = 16 << 20) -> Iterator[tuple[TableSchema, pa.RecordBatch]]:
    batcher = ArrowBatcher(max_rows=max_rows, max_bytes=max_bytes)
    for decoded in decoded_mutations:
        yield from batcher.add(decoded)
    yield from batcher.flush()
