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
"""

from __future__ import annotations

import itertools
import logging
import operator
import os
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


def batch_schema(table: TableSchema) -> pa.Schema:
    fields = [pa.field(c.name, c.type.arrow_type()) for c in _data_columns(table)]
    meta = {b"keyspace": table.keyspace.encode(), b"table": table.name.encode(), b"table_id": str(table.id).encode()}
    return pa.schema(fields + META_FIELDS + [pa.field("_range", range_type(table))], metadata=meta)


def _data_columns(table: TableSchema) -> list[ColumnSchema]:
    return [*table.partition_key, *table.clustering, *table.static, *table.regular]


class TableBatchBuilder:
    """Accumulates one table's changes as raw column values; `finish()` makes the RecordBatch.

    The accumulators (`raw[slot]`, `op`, `writetime`, `ttl`, `expires`, `segment`, `position`,
    `present`) are created once and cleared in place by `finish()`: the compiled kernel keeps
    references to them and appends to them directly.
    """

    def __init__(self, table: TableSchema):
        self.table = table
        self.columns = _data_columns(table)
        self.slot = {c.name: i for i, c in enumerate(self.columns)}
        self.n_pk = len(table.partition_key)
        self.n_ck = len(table.clustering)
        self._slot_cache: dict[tuple[str, ...], list[int]] = {}
        self._schema: pa.Schema | None = None
        self._present_codes = {c.name: i for i, c in enumerate(self.columns)}
        self._present_names: pa.Array | None = None
        self.raw: list[list] = [[] for _ in self.columns]
        self.op: list[str] = []
        self.writetime: list[int] = []
        self.ttl: list[int | None] = []
        self.expires: list[int | None] = []
        self.segment: list[int] = []
        self.position: list[int] = []
        self.present: list = []
        self._reset()

    def _reset(self) -> None:
        for column in self.raw:
            column.clear()
        for values in (self.op, self.writetime, self.ttl, self.expires, self.segment, self.position,
                       self.present):
            values.clear()
        self.decoded: dict[int, dict[int, object]] = {}  # slot -> {row: python value} (complex columns)
        self.ranges: dict[int, dict] = {}
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self.op)

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

    def _slots(self, names: tuple[str, ...]) -> list[int]:
        slots = self._slot_cache.get(names)
        if slots is None:
            slots = self._slot_cache[names] = [self.slot[n] if n in self.slot else -1 for n in names]
        return slots

    def _row(self, row, names, pk, segment_id, offset) -> None:
        raw = self.raw
        slots = self._slots(names)
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
            writetime = liveness.timestamp
            if liveness.ttl:
                ttl, expires = liveness.ttl, liveness.local_expiration_time
        present = []
        columns = self.columns
        for index, data in row.columns:
            slot = slots[index]
            if slot < 0:
                continue  # a dropped column: not part of the current table
            present.append(columns[slot].name)
            if data.__class__ is ComplexColumn:
                change = _complex_change(columns[slot], data, False)
                self.decoded.setdefault(slot, {})[len(self.op)] = change.value
                ts = change.timestamp
            else:
                ts = data.timestamp
                if not data.flags & CELL_IS_DELETED:
                    written[slot] = data.value
                    self.nbytes += len(data.value)
                    if data.flags & CELL_IS_EXPIRING and ttl is None:
                        ttl, expires = data.ttl, data.local_deletion_time
            if writetime is None or ts > writetime:
                writetime = ts
        op = "insert" if liveness is not None else "update"
        if row.deletion is not None:
            op = "delete"
            if writetime is None or row.deletion.marked_for_delete_at > writetime:
                writetime = row.deletion.marked_for_delete_at
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
            self.ranges[len(self.op)] = {
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
        n = len(self.op)
        fp = fastpath()
        arrays = [self._column(i, c, n, fp) for i, c in enumerate(self.columns)]
        expires = pa.array(self.expires, pa.int64()).cast(pa.timestamp("s", tz="UTC"))
        arrays += [
            _strings(self.op),
            pa.array(self.writetime, pa.int64()),
            pa.array(self.ttl, pa.int32()),
            expires,
            pa.array(self.segment, pa.int64()),
            pa.array(self.position, pa.int64()),
            self._present_array(fp),
            self._ranges(n),
        ]
        if self._schema is None:
            self._schema = batch_schema(self.table)
        batch = pa.RecordBatch.from_arrays(arrays, schema=self._schema)
        self._reset()
        return batch

    def _present_array(self, fp) -> pa.Array:
        if fp is not None:
            encoded = fp.present_column(self.present, self._present_codes)
            if encoded is not None:
                if self._present_names is None:
                    self._present_names = pa.array([c.name for c in self.columns], pa.string())
                offsets, codes = encoded
                n = len(self.present)
                values = self._present_names.take(
                    pa.Array.from_buffers(pa.int32(), len(codes) // 4, [None, pa.py_buffer(codes)]))
                return pa.ListArray.from_arrays(
                    pa.Array.from_buffers(pa.int32(), n + 1, [None, pa.py_buffer(offsets)]), values)
        return pa.array(self.present, pa.list_(pa.string()))

    def _ranges(self, n: int) -> pa.Array:
        typ = range_type(self.table)
        if not self.ranges:
            return pa.nulls(n, typ)
        return pa.array([self.ranges.get(i) for i in range(n)], typ)

    def _column(self, slot: int, column: ColumnSchema, n: int, fp=None) -> pa.Array:
        typ = column.type
        if slot in self.decoded or typ.is_multicell:
            values = self.decoded.get(slot, {})
            return pa.array([typ.to_arrow_value(values[i]) if values.get(i) is not None else None
                             for i in range(n)], typ.arrow_type())
        return raw_to_arrow(column, self.raw[slot], _fp=fp)


def _strings(values: list) -> pa.Array:
    """A string column of few distinct values (the `_op` column) without one conversion per row."""
    if len(values) < 64:
        return pa.array(values, pa.string())
    return pa.array(values, pa.dictionary(pa.int32(), pa.string())).cast(pa.string())


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


def _join_fixed(raw: list, width: int) -> bytes | None:
    """The values with nulls as zeros, when every value is exactly `width` bytes."""
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
        validity, data, nulls = encoded
        return pa.Array.from_buffers(target, len(raw), [validity and pa.py_buffer(validity), pa.py_buffer(data)],
                                     null_count=nulls)
    joined = _join_fixed(raw, width)
    if joined is None:
        return None
    values = np.frombuffer(joined, dtype=dtypes[0]).astype(dtypes[1])
    mask = _mask(raw)
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
        validity, offsets, data, nulls, large = encoded
        if large:
            typ = pa.large_string() if target == pa.string() else pa.large_binary()
        else:
            typ = target
        array = pa.Array.from_buffers(typ, len(raw), [validity and pa.py_buffer(validity), pa.py_buffer(offsets),
                                                      pa.py_buffer(data)], null_count=nulls)
        if target == pa.string():
            array.validate(full=True)  # invalid UTF-8 must fail here, not in a destination
        return array
    filled = [b"" if v is None else v for v in raw]
    lengths = np.fromiter(map(len, filled), dtype=np.int64, count=len(raw))
    offsets = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = b"".join(filled)
    large = pa.large_string() if target == pa.string() else pa.large_binary()
    mask = _mask(raw)
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
        validity = validity and pa.py_buffer(validity)
    else:
        joined = _join_fixed(raw, 16)
        if joined is None:
            return None
        validity = _validity(_mask(raw))
    storage = pa.Array.from_buffers(pa.binary(16), len(raw), [validity, pa.py_buffer(joined)])
    if target == pa.binary(16):
        return storage
    if isinstance(target, pa.ExtensionType):
        return pa.ExtensionArray.from_storage(target, storage)
    return None


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
