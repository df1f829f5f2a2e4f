"""Mutation models from typed values, laid out the way Cassandra's own write path lays them out.

A `MutationBuilder` collects what CQL statements do to one partition of one table (INSERT, UPDATE,
DELETE of rows, cells, ranges and the partition, collection edits, static rows) and `build()`s the
`PartitionUpdate` Cassandra would serialize for them (format doc §8–§13). The encoder then turns
that into bytes that read like a real segment. What follows Cassandra, and where from:

* `UpdateParameters` / `Lists`, `Sets`, `Maps`, `UserTypes`: an INSERT gives the row a primary-key
  liveness; overwriting a non-frozen collection is a complex deletion at timestamp − 1 plus one cell
  per element; `DELETE col` is a complex deletion at the timestamp; element removals are tombstone
  cells; a null in an INSERT/UPDATE is a tombstone cell.
* `EncodingStats.Collector`: the stats are the minima over liveness, deletions and cells; local
  deletion times only come from deletions, tombstones and expiring data, TTLs only from expiring
  data; a stat nothing updates stays at its epoch (so a plain insert has minLDT = epoch, minTTL = 0).
* `UnfilteredSerializer` / `Cell.Serializer`: row and cell flags (USE_ROW_TIMESTAMP, USE_ROW_TTL,
  HAS_EMPTY_VALUE, HAS_ALL_COLUMNS, HAS_COMPLEX_DELETION with the LIVE sentinel on the other
  complex columns of the row).
* `Columns` / `ColumnMetadata.compareTo`: header column lists simple first, then complex, each by the
  unsigned bytes of the name; rows and markers in clustering-comparator order.

Not modelled: reconciliation beyond "the newest write of a cell wins" (data shadowed by a deletion in
the same builder is kept, as the caller wrote it), overlapping range deletions (Cassandra would merge
them into boundaries), and the `HashMap` order in which Cassandra lists the tables of a batch
mutation (updates keep the order the caller gives).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

from ray_cdc.commitlog.mutation_model import (
    CELL_HAS_EMPTY_VALUE,
    CELL_IS_DELETED,
    CELL_IS_EXPIRING,
    CELL_USE_ROW_TIMESTAMP,
    CELL_USE_ROW_TTL,
    DELETION_TIME_EPOCH,
    EXCL_END_BOUND,
    EXCL_START_BOUND,
    EXT_IS_STATIC,
    EXTENSION_FLAG,
    HAS_ALL_COLUMNS,
    HAS_COMPLEX_DELETION,
    HAS_DELETION,
    HAS_TIMESTAMP,
    HAS_TTL,
    INCL_END_BOUND,
    INCL_START_BOUND,
    NO_DELETION_TIME,
    NO_TIMESTAMP,
    P_HAS_PARTITION_DELETION,
    P_HAS_ROW_ESTIMATE,
    P_HAS_STATIC_ROW,
    P_IS_EMPTY,
    TIMESTAMP_EPOCH,
    TTL_EPOCH,
    Cell,
    ComplexColumn,
    DeletionTime,
    EncodingStats,
    Liveness,
    Mutation,
    PartitionUpdate,
    RangeTombstoneMarker,
    Row,
)
from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
from ray_cdc.schema.types import CqlType

__all__ = [
    "CounterShard",
    "MutationBuilder",
    "counter_context",
    "encode_partition_key",
    "list_cell_id",
]

#: 5.0 / messaging 13 writes "no deletion time" as the unsigned 0xFFFFFFFF (format doc §12.3)
NO_DELETION_TIME_UNSIGNED = -1

_U16 = struct.Struct(">H")


# --- counters (format doc §13.1) ----------------------------------------------------------------------

#: the counter id of the shards this builder writes (a node's CounterId is a timeuuid)
DEFAULT_COUNTER_ID = UUID("6a2b7d2c-0000-1000-8000-000000ca55a0")
_GLOBAL_SHARD_0 = -0x8000  # a header element of a global shard: its index + Short.MIN_VALUE
_COUNTER_HEADER = struct.Struct(">hh")
_COUNTER_SHARD_TAIL = struct.Struct(">qq")


class CounterShard(NamedTuple):
    """What the counter leader writes to its commitlog: its own shard after the increment, i.e.
    the node's running total (`count`) and how many times it has changed (`clock`)."""

    count: int
    clock: int = 1
    counter_id: UUID = DEFAULT_COUNTER_ID


def counter_context(count: int, clock: int = 1, counter_id: UUID = DEFAULT_COUNTER_ID) -> bytes:
    """A counter cell value with one global shard, as `CounterContext.createGlobal` lays it out:
    header count 1, header element −32768 (global shard 0), then counter id, clock and count."""
    return _COUNTER_HEADER.pack(1, _GLOBAL_SHARD_0) + counter_id.bytes + _COUNTER_SHARD_TAIL.pack(clock, count)


def _counter_value(value) -> bytes:
    shard = value if isinstance(value, CounterShard) else CounterShard(int(value))
    return counter_context(shard.count, shard.clock, shard.counter_id)


# --- list cell ids ------------------------------------------------------------------------------------

_GREGORIAN_OFFSET = 0x01B21DD213814000  # 100 ns intervals from 1582-10-15 to 1970-01-01
_LIST_NODE = 0x0A7C0DEC0DE1  # the "MAC" of the generated timeuuids: any fixed value will do


def list_cell_id(timestamp: int, index: int = 0) -> UUID:
    """The cell path of the `index`-th element a list write at `timestamp` (µs) adds.

    Cassandra takes a fresh timeuuid per element; here its time is the write timestamp in 100 ns
    units plus the index, so ids are deterministic, follow the append order, and stay unique as
    long as one write adds fewer than 10 elements per µs between consecutive write timestamps.
    """
    ticks = timestamp * 10 + _GREGORIAN_OFFSET + index
    return UUID(fields=(ticks & 0xFFFFFFFF, (ticks >> 32) & 0xFFFF, ((ticks >> 48) & 0x0FFF) | 0x1000,
                        0x80, 0x00, _LIST_NODE))


# --- partition keys (format doc §13.2) ---------------------------------------------------------------


def encode_partition_key(table: TableSchema, values: Mapping[str, Any]) -> bytes:
    columns = table.partition_key
    missing = [c.name for c in columns if values.get(c.name) is None]
    extra = set(values) - {c.name for c in columns}
    if missing or extra:
        raise ValueError(f"{table.qualified_name}: partition key needs exactly {[c.name for c in columns]}, "
                         f"got {sorted(values)}")
    if len(columns) == 1:
        return columns[0].type.encode(values[columns[0].name])
    out = bytearray()
    for column in columns:
        part = column.type.encode(values[column.name])
        out += _U16.pack(len(part)) + part + b"\x00"  # CompositeType: length, bytes, end-of-component
    return bytes(out)


# --- Cassandra's value order (clustering, set elements, map keys) ------------------------------------


def _signed(data: bytes) -> int:
    return int.from_bytes(data, "big", signed=True)


def _decimal(data: bytes) -> Decimal:
    return Decimal(_signed(data[4:])).scaleb(-_signed(data[:4]))


def _uuid_time(data: bytes) -> int:
    u = UUID(bytes=data)
    return u.time if u.version == 1 else 0


# Comparators of `S/db/marshal/*Type.java`, as sort keys over the value bytes. Types not listed
# compare their bytes unsigned (text, ascii, blob, inet, date, time do exactly that; for frozen
# collections, tuples and UDTs it is an approximation of the element-wise order).
_ORDER_KEYS = {
    "tinyint": _signed, "smallint": _signed, "int": _signed, "bigint": _signed, "varint": _signed,
    "counter": _signed, "timestamp": _signed,
    "float": lambda d: struct.unpack(">f", d)[0],
    "double": lambda d: struct.unpack(">d", d)[0],
    "decimal": _decimal,
    "uuid": lambda d: (UUID(bytes=d).version or 0, _uuid_time(d), d),
    "timeuuid": lambda d: (_uuid_time(d), d),
}


def order_key(cql_type: CqlType, data: bytes):
    """Sort key of a value in its type's comparator order; empty values sort first."""
    return _order_key(cql_type.name, data)


def _order_key(type_name: str, data: bytes):
    if not data:
        return (0,)
    key = _ORDER_KEYS.get(type_name)
    return (1, key(data) if key is not None else data)


@functools.total_ordering
class _Desc:
    """Inverts the order of a key: a DESC clustering column (`ReversedType`)."""

    __slots__ = ("key",)

    def __init__(self, key):
        self.key = key

    def __eq__(self, other):
        return self.key == other.key

    def __lt__(self, other):
        return other.key < self.key


def _cmp(a, b) -> int:
    return (a > b) - (a < b)


# How a bound compares to the clusterings it is a prefix of (`ClusteringPrefix.Kind.comparedToClustering`)
_BOUND_WEIGHT = {INCL_START_BOUND: -1, EXCL_END_BOUND: -1, EXCL_START_BOUND: 1, INCL_END_BOUND: 1}


def _compare_positions(a: tuple, b: tuple) -> int:
    """`ClusteringComparator.compare` over (keys, weight): rows weigh 0, bounds ±1."""
    (ka, wa), (kb, wb) = a, b
    for x, y in zip(ka, kb):
        c = _cmp(x, y)
        if c:
            return c
    if len(ka) == len(kb):
        return _cmp(wa, wb)
    return wa if len(ka) < len(kb) else -wb


_position_key = functools.cmp_to_key(_compare_positions)


# --- per-table facts, computed once per schema object ------------------------------------------------


class _Layout:
    """What the builder looks up for every write: the cell columns by name, the clustering columns,
    and each column's place in a header (simple before complex, then unsigned name bytes)."""

    def __init__(self, table: TableSchema):
        self.table = table
        self.cells: dict[str, ColumnSchema] = {}
        self.header_order: dict[str, tuple[bool, bytes]] = {}
        self.complex: set[str] = set()
        self.static: set[str] = set()
        self.encoders: dict[str, Any] = {}  # simple columns: typed value -> cell value bytes
        self.keys = set()
        for column in table.columns:
            if column.kind is ColumnKind.REGULAR or column.kind is ColumnKind.STATIC:
                self._add(column)
            else:
                self.keys.add(column.name)
        self.clustering = table.clustering
        self.clustering_names = tuple(c.name for c in self.clustering)

    def _add(self, column: ColumnSchema) -> None:
        name = column.name
        self.cells[name] = column
        self.header_order[name] = (column.is_complex, name.encode("utf-8"))
        if column.is_complex:
            self.complex.add(name)
        if column.kind is ColumnKind.STATIC:
            self.static.add(name)
        self.encoders[name] = _counter_value if column.type.name == "counter" else column.type.encode

    def column(self, name: str) -> ColumnSchema:
        column = self.cells.get(name)
        if column is not None:
            return column
        if name in self.keys:
            raise ValueError(f"{name!r} is a primary key column of {self.table.qualified_name}, not a cell")
        column = self.table.column(name)  # a dropped column: data written before the drop
        if column is None:
            raise ValueError(f"{self.table.qualified_name} has no column {name!r}")
        self._add(column)
        return column


_LAYOUTS: dict[int, _Layout] = {}


def _layout(table: TableSchema) -> _Layout:
    layout = _LAYOUTS.get(id(table))
    if layout is None or layout.table is not table:
        if len(_LAYOUTS) > 1024:  # schemas come and go in tests: keep the cache small
            _LAYOUTS.clear()
        layout = _LAYOUTS[id(table)] = _Layout(table)
    return layout


# --- drafts: what the builder collects before laying it out ------------------------------------------


class _CellDraft(NamedTuple):
    timestamp: int
    ttl: int
    local_deletion_time: int
    path: bytes | None
    value: bytes
    deleted: bool


def _newer(old: _CellDraft | None, new: _CellDraft) -> bool:
    """`Cells.reconcile`, reduced: the higher timestamp wins, a tombstone wins a tie."""
    if old is None or new.timestamp > old.timestamp:
        return True
    return new.timestamp == old.timestamp and (new.deleted or not old.deleted)


def _max_deletion(old: DeletionTime | None, new: DeletionTime) -> DeletionTime:
    return new if old is None or new.marked_for_delete_at >= old.marked_for_delete_at else old


@dataclass
class _ComplexDraft:
    deletion: DeletionTime | None = None
    cells: dict[bytes, _CellDraft] = field(default_factory=dict)  # by path


@dataclass
class _RowDraft:
    clustering: tuple[bytes, ...]
    static: bool = False
    liveness: Liveness | None = None
    deletion: DeletionTime | None = None
    simple: dict[str, _CellDraft] = field(default_factory=dict)
    complex: dict[str, _ComplexDraft] = field(default_factory=dict)

    def set_cell(self, name: str, cell: _CellDraft) -> None:
        if _newer(self.simple.get(name), cell):
            self.simple[name] = cell

    def complex_column(self, name: str) -> _ComplexDraft:
        draft = self.complex.get(name)
        if draft is None:
            draft = self.complex[name] = _ComplexDraft()
        return draft

    def set_element(self, name: str, cell: _CellDraft) -> None:
        cells = self.complex_column(name).cells
        if _newer(cells.get(cell.path), cell):
            cells[cell.path] = cell

    def column_names(self) -> set[str]:
        return set(self.simple) | {n for n, d in self.complex.items() if d.cells or d.deletion is not None}

    def is_empty(self) -> bool:
        return self.liveness is None and self.deletion is None and not self.column_names()


@dataclass(frozen=True)
class _Write:
    """The time parameters of one statement (`UpdateParameters`)."""

    timestamp: int
    ttl: int
    now: int  # the coordinator's clock, seconds: deletion times and expirations count from it

    def live(self, value: bytes, path: bytes | None = None) -> _CellDraft:
        if self.ttl:
            return _CellDraft(self.timestamp, self.ttl, self.now + self.ttl, path, value, False)
        return _CellDraft(self.timestamp, 0, NO_DELETION_TIME, path, value, False)

    def tombstone(self, path: bytes | None = None) -> _CellDraft:
        return _CellDraft(self.timestamp, 0, self.now, path, b"", True)

    def deletion(self, timestamp: int | None = None) -> DeletionTime:
        return DeletionTime(self.timestamp if timestamp is None else timestamp, self.now)


def _write(timestamp: int, ttl: int = 0, now: int | None = None) -> _Write:
    if ttl < 0:
        raise ValueError(f"a TTL is a positive number of seconds, got {ttl}")
    return _Write(timestamp, ttl, timestamp // 1_000_000 if now is None else now)


# --- collection operations per kind (format doc §13.3) -----------------------------------------------


def _elements_of(ctype: CqlType, value) -> list[tuple[Any, Any]]:
    """(path element, cell value) pairs an overwrite of a non-frozen column with `value` writes."""
    kind = ctype.name
    if kind == "list":
        return [(None, v) for v in value]  # paths are assigned per write (list_cell_id)
    if kind == "set":
        return [(e, None) for e in value]
    if kind == "map":
        return list(value.items())
    # udt: a dict field -> value (or a sequence in field order); null fields write nothing
    items = value.items() if isinstance(value, Mapping) else zip(ctype.field_names, value)
    return [(f, v) for f, v in items if v is not None]


def _element_value(ctype: CqlType, element, value) -> bytes:
    kind = ctype.name
    if kind == "set":
        return b""
    if kind == "udt":
        return ctype.params[ctype.field_names.index(element)].encode(value)
    return ctype.params[-1].encode(value)  # list element / map value


def _path_order(ctype: CqlType):
    """Sort key of the cells of a complex column: Cassandra keeps them in cell-path order."""
    if ctype.name == "list":
        return lambda path: _order_key("timeuuid", path)
    if ctype.name == "udt":
        return lambda path: path  # 2-byte field index
    return lambda path, key_type=ctype.params[0]: order_key(key_type, path)


# --- the builder --------------------------------------------------------------------------------------


class MutationBuilder:
    """The writes of CQL statements to one partition of one table, built into a `PartitionUpdate`.

    Values are typed Python values as `CqlType.encode` takes them (counters: an int total or a
    `CounterShard`). Timestamps are µs, TTLs seconds, `now` the writing node's clock in seconds
    (default: the timestamp's second) from which deletion and expiration times are counted.
    `clustering` dicts name every clustering column; range bounds may name a prefix.
    `columns`: columns the statement names besides those it writes cells for (Cassandra's
    `updatedColumns`: e.g. a prepared statement bound with UNSET); they appear in the header.
    `unsigned_ldt`: lay out "no deletion time" the way messaging 13 (descriptor v8, Cassandra 5.0)
    does.
    """

    def __init__(self, table: TableSchema, partition_key: Mapping[str, Any], *, columns: Iterable[str] = (),
                 unsigned_ldt: bool = False):
        self.table = table
        self._layout = _layout(table)
        self._declared = frozenset(columns)
        for name in self._declared:
            self._layout.column(name)
        self.partition_key = dict(partition_key)
        self.key = encode_partition_key(table, partition_key)
        self._live = (NO_TIMESTAMP, NO_DELETION_TIME_UNSIGNED if unsigned_ldt else NO_DELETION_TIME)
        self._rows: dict[tuple[bytes, ...], _RowDraft] = {}
        self._static = _RowDraft((), static=True)
        self._partition_deletion: DeletionTime | None = None
        self._ranges: list[tuple[RangeTombstoneMarker, RangeTombstoneMarker]] = []

    # -- statements ------------------------------------------------------------------------------------

    def insert(self, clustering: Mapping[str, Any], cells: Mapping[str, Any], *, timestamp: int,
               ttl: int = 0, now: int | None = None) -> MutationBuilder:
        """`INSERT ... [USING TTL]`: the row gets a primary-key liveness (expiring with a TTL)."""
        w = _write(timestamp, ttl, now)
        row = self._row(clustering)
        liveness = Liveness(w.timestamp, w.ttl, w.now + w.ttl) if w.ttl else Liveness(w.timestamp)
        if row.liveness is None or liveness.timestamp >= row.liveness.timestamp:
            row.liveness = liveness
        self._assign(row, cells, w)
        return self

    def update(self, clustering: Mapping[str, Any], cells: Mapping[str, Any], *, timestamp: int,
               ttl: int = 0, now: int | None = None) -> MutationBuilder:
        """`UPDATE ... SET col = value, ...`: cells only, no row liveness."""
        self._assign(self._row(clustering), cells, _write(timestamp, ttl, now))
        return self

    def static(self, cells: Mapping[str, Any], *, timestamp: int, ttl: int = 0,
               now: int | None = None) -> MutationBuilder:
        """Writes to static columns: the partition's static row (it never has a liveness)."""
        self._assign(self._static, cells, _write(timestamp, ttl, now))
        return self

    def delete_row(self, clustering: Mapping[str, Any], *, timestamp: int, now: int | None = None) -> MutationBuilder:
        row = self._row(clustering)
        row.deletion = _max_deletion(row.deletion, _write(timestamp, 0, now).deletion())
        return self

    def delete_cells(self, clustering: Mapping[str, Any] | None, columns: Iterable[str], *, timestamp: int,
                     now: int | None = None) -> MutationBuilder:
        """`DELETE a, b FROM ...`: tombstone cells; a non-frozen collection/UDT gets a complex deletion."""
        w = _write(timestamp, 0, now)
        for name in columns:
            column = self._column(name)
            row = self._row_for(column, clustering)
            if column.is_complex:
                draft = row.complex_column(name)
                draft.deletion = _max_deletion(draft.deletion, w.deletion())
            else:
                row.set_cell(name, w.tombstone())
        return self

    def delete_column(self, clustering: Mapping[str, Any] | None, column: str, *, timestamp: int,
                      now: int | None = None) -> MutationBuilder:
        """`DELETE col FROM ...` of one column (a complex deletion at the timestamp for collections)."""
        return self.delete_cells(clustering, (column,), timestamp=timestamp, now=now)

    def delete_partition(self, *, timestamp: int, now: int | None = None) -> MutationBuilder:
        self._partition_deletion = _max_deletion(self._partition_deletion, _write(timestamp, 0, now).deletion())
        return self

    def delete_range(self, start: Mapping[str, Any], end: Mapping[str, Any], *, start_inclusive: bool = True,
                     end_inclusive: bool = True, timestamp: int, now: int | None = None) -> MutationBuilder:
        """`DELETE ... WHERE ck > a AND ck <= b`: a start/end bound marker pair sharing one deletion.

        `start` and `end` are clustering prefixes in the table's clustering order (for a DESC column
        the start is the larger value); an empty dict is the open end (Cassandra's BOTTOM/TOP bounds,
        which are inclusive whatever `*_inclusive` says).
        """
        deletion = _write(timestamp, 0, now).deletion()
        start_kind = INCL_START_BOUND if start_inclusive or not start else EXCL_START_BOUND
        end_kind = INCL_END_BOUND if end_inclusive or not end else EXCL_END_BOUND
        self._ranges.append((
            RangeTombstoneMarker(start_kind, self._prefix(start), deletion),
            RangeTombstoneMarker(end_kind, self._prefix(end), deletion),
        ))
        return self

    # -- collection operations (non-frozen list / set / map / UDT columns) ------------------------------

    def append_to(self, clustering: Mapping[str, Any] | None, column: str, elements, timestamp: int, *,
                  ttl: int = 0, now: int | None = None) -> MutationBuilder:
        """`col = col + [...]` (list), `col = col + {...}` (set), `col = col + {k: v}` (map)."""
        col = self._complex(column)
        w = _write(timestamp, ttl, now)
        self._add_elements(self._row_for(col, clustering), col, _elements_of(col.type, elements), w)
        return self

    def put(self, clustering: Mapping[str, Any] | None, column: str, entries: Mapping[str, Any], timestamp: int,
            *, ttl: int = 0, now: int | None = None) -> MutationBuilder:
        """`m[k] = v` for a map, `u.f = v` for a UDT; a None value deletes the key/field."""
        col = self._complex(column)
        if col.type.name not in ("map", "udt"):
            raise ValueError(f"put() needs a map or UDT column, {column!r} is {col.type.cql()}")
        w = _write(timestamp, ttl, now)
        row = self._row_for(col, clustering)
        for element, value in entries.items():
            if value is None:
                row.set_element(column, w.tombstone(col.type.encode_cell_path(element)))
            else:
                self._add_elements(row, col, [(element, value)], w)
        return self

    def remove_from(self, clustering: Mapping[str, Any] | None, column: str, elements_or_keys, timestamp: int,
                    *, now: int | None = None) -> MutationBuilder:
        """Element tombstones: set elements, map keys, UDT field names, or list cell ids (timeuuids)."""
        col = self._complex(column)
        w = _write(timestamp, 0, now)
        row = self._row_for(col, clustering)
        for element in elements_or_keys:
            row.set_element(column, w.tombstone(col.type.encode_cell_path(element)))
        return self

    # -- building --------------------------------------------------------------------------------------

    def build(self) -> PartitionUpdate:
        rows = [r for r in self._rows.values() if not r.is_empty()]
        static = None if self._static.is_empty() else self._static
        update = PartitionUpdate(self.table, self.key, 0)
        if not rows and static is None and self._partition_deletion is None and not self._ranges:
            update.flags = P_IS_EMPTY
            return update
        update.stats = self._stats(rows, static)
        update.regular_columns = self._header(rows, static=False)
        flags = P_HAS_ROW_ESTIMATE  # the commitlog write always passes the row count
        if self._partition_deletion is not None:
            flags |= P_HAS_PARTITION_DELETION
            update.partition_deletion = self._partition_deletion
        if static is not None:
            flags |= P_HAS_STATIC_ROW
            update.static_columns = self._header([static], static=True)
            update.static_row = self._row_model(static, update.static_columns)
        update.flags = flags
        update.row_estimate = len(rows)
        update.unfiltereds = self._unfiltereds(rows, update.regular_columns)
        return update

    def mutation(self, *more: MutationBuilder) -> Mutation:
        """One mutation of this update and those of `more` (other tables, same keyspace and key)."""
        builders = (self, *more)
        for other in more:
            if other.table.keyspace != self.table.keyspace or other.key != self.key:
                raise ValueError("a mutation holds updates of one keyspace and one partition key only")
        if len({b.table.id for b in builders}) != len(builders):
            raise ValueError("a mutation holds one update per table: write to one builder per table")
        return Mutation([b.build() for b in builders])

    # -- internals: statements -------------------------------------------------------------------------

    def _column(self, name: str) -> ColumnSchema:
        return self._layout.column(name)

    def _complex(self, name: str) -> ColumnSchema:
        column = self._column(name)
        if not column.is_complex:
            raise ValueError(f"{name!r} is not a non-frozen collection or UDT ({column.type.cql()})")
        return column

    def _clustering_values(self, values: Mapping[str, Any], *, prefix: bool) -> tuple[bytes, ...]:
        names = self._layout.clustering_names
        n = len(values)
        if (n != len(names) and not prefix) or n > len(names) or any(name not in values for name in names[:n]):
            what = "a prefix of" if prefix else "every one of"
            raise ValueError(f"{self.table.qualified_name}: clustering must name {what} {list(names)}, "
                             f"got {list(values)}")
        return tuple(c.type.encode(values[c.name]) for c in self._layout.clustering[:n])

    def _prefix(self, values: Mapping[str, Any]) -> tuple[bytes, ...]:
        return self._clustering_values(values, prefix=True)

    def _row(self, clustering: Mapping[str, Any] | None) -> _RowDraft:
        key = self._clustering_values(clustering or {}, prefix=False)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = _RowDraft(key)
        return row

    def _row_for(self, column: ColumnSchema, clustering: Mapping[str, Any] | None) -> _RowDraft:
        return self._static if column.kind is ColumnKind.STATIC else self._row(clustering)

    def _assign(self, row: _RowDraft, cells: Mapping[str, Any], w: _Write) -> None:
        """`SET col = value` for each column; static columns go to the static row."""
        layout = self._layout
        for name, value in cells.items():
            column = layout.column(name)
            is_static = name in layout.static
            if row.static and not is_static:
                raise ValueError(f"{name!r} is not a static column of {self.table.qualified_name}")
            target = self._static if is_static else row
            if name in layout.complex:
                self._overwrite(target, column, value, w)
            elif value is None:
                target.set_cell(name, w.tombstone())  # a null in INSERT/UPDATE deletes the cell
            else:
                target.set_cell(name, w.live(layout.encoders[name](value)))

    def _overwrite(self, row: _RowDraft, column: ColumnSchema, value, w: _Write) -> None:
        """Setting a whole non-frozen column deletes what it held just before the write (ts − 1)."""
        draft = row.complex_column(column.name)
        draft.deletion = _max_deletion(draft.deletion, w.deletion(w.timestamp - 1))
        if value is not None:
            self._add_elements(row, column, _elements_of(column.type, value), w)

    @staticmethod
    def _add_elements(row: _RowDraft, column: ColumnSchema, elements, w: _Write) -> None:
        ctype = column.type
        first = len(row.complex_column(column.name).cells)  # later list appends get later ids
        for i, (element, value) in enumerate(elements):
            if ctype.name == "list":
                element = list_cell_id(w.timestamp, first + i)
            path = ctype.encode_cell_path(element)
            row.set_element(column.name, w.live(_element_value(ctype, element, value), path))

    # -- internals: layout -----------------------------------------------------------------------------

    def _header(self, rows: list[_RowDraft], *, static: bool) -> tuple[str, ...]:
        """The union of the rows' columns (and the declared ones of this kind), simple first then
        complex, each group by the unsigned bytes of the name (`ColumnMetadata.compareTo`)."""
        names = {n for n in self._declared if (n in self._layout.static) == static}
        for row in rows:
            names |= row.column_names()
        return tuple(sorted(names, key=self._layout.header_order.__getitem__))

    def _row_model(self, draft: _RowDraft, header: tuple[str, ...]) -> Row:
        liveness = draft.liveness
        present = draft.column_names()
        has_complex_deletion = any(d.deletion is not None for n, d in draft.complex.items() if n in present)
        columns: list = []
        for index, name in enumerate(header):
            if name not in present:
                continue
            if name in draft.simple:
                columns.append((index, _cell_model(draft.simple[name], liveness)))
                continue
            complex_draft = draft.complex[name]
            deletion = None
            if has_complex_deletion:  # then every complex column carries one: LIVE when it has none
                deletion = complex_draft.deletion or DeletionTime(*self._live)
            order = _path_order(self._layout.cells[name].type)
            cells = sorted(complex_draft.cells.values(), key=lambda c: order(c.path))
            columns.append((index, ComplexColumn(deletion, tuple(_cell_model(c, liveness) for c in cells))))
        flags = 0
        if liveness is not None:
            flags |= HAS_TIMESTAMP | (HAS_TTL if liveness.ttl else 0)
        if draft.deletion is not None:
            flags |= HAS_DELETION
        if has_complex_deletion:
            flags |= HAS_COMPLEX_DELETION
        if len(columns) == len(header):
            flags |= HAS_ALL_COLUMNS
        ext = 0
        if draft.static:
            flags |= EXTENSION_FLAG
            ext = EXT_IS_STATIC
        return Row(flags, ext, draft.clustering, liveness, draft.deletion, columns)

    def _keys(self, values: tuple[bytes, ...]) -> tuple:
        keys = []
        for column, value in zip(self._layout.clustering, values):
            key = order_key(column.type, value)
            keys.append(_Desc(key) if column.reversed else key)
        return tuple(keys)

    def _unfiltereds(self, rows: list[_RowDraft], header: tuple[str, ...]) -> list:
        """Rows and range markers merged in clustering order."""
        items = [((self._keys(r.clustering), 0), self._row_model(r, header)) for r in rows]
        for pair in self._ranges:
            items += [((self._keys(m.clustering), _BOUND_WEIGHT[m.kind]), m) for m in pair]
        if len(items) > 1:
            items.sort(key=lambda item: _position_key(item[0]))
        return [u for _, u in items]

    def _stats(self, rows: list[_RowDraft], static: _RowDraft | None) -> EncodingStats:
        collector = _StatsCollector()
        collector.deletion(self._partition_deletion)
        for start, _ in self._ranges:
            collector.deletion(start.deletion)
        for row in ([static] if static is not None else []) + rows:
            collector.row(row)
        return collector.stats()


def _cell_model(draft: _CellDraft, liveness: Liveness | None) -> Cell:
    """`Cell.Serializer` flags: what the cell shares with the row liveness is not written twice."""
    flags = 0 if draft.value else CELL_HAS_EMPTY_VALUE
    if draft.deleted:
        flags |= CELL_IS_DELETED
    elif draft.ttl:
        flags |= CELL_IS_EXPIRING
    if liveness is not None and draft.timestamp == liveness.timestamp:
        flags |= CELL_USE_ROW_TIMESTAMP
    if (flags & CELL_IS_EXPIRING and liveness is not None and liveness.ttl and draft.ttl == liveness.ttl
            and draft.local_deletion_time == liveness.local_expiration_time):
        flags |= CELL_USE_ROW_TTL
    return Cell(flags, draft.timestamp, draft.local_deletion_time, draft.ttl, draft.path, draft.value)


class _StatsCollector:
    """`EncodingStats.Collector`: minima over what is in the update; unset stats stay at the epochs."""

    def __init__(self):
        self.timestamps: list[int] = []
        self.deletion_times: list[int] = []
        self.ttls: list[int] = []

    def deletion(self, d: DeletionTime | None) -> None:
        if d is not None and not d.is_live:
            self.timestamps.append(d.marked_for_delete_at)
            self.deletion_times.append(d.local_deletion_time)

    def cell(self, c: _CellDraft) -> None:
        self.timestamps.append(c.timestamp)
        if c.deleted or c.ttl:
            self.deletion_times.append(c.local_deletion_time)
        if c.ttl and not c.deleted:
            self.ttls.append(c.ttl)

    def row(self, row: _RowDraft) -> None:
        if row.liveness is not None:
            self.timestamps.append(row.liveness.timestamp)
            if row.liveness.ttl:
                self.ttls.append(row.liveness.ttl)
                self.deletion_times.append(row.liveness.local_expiration_time)
        self.deletion(row.deletion)
        for cell in row.simple.values():
            self.cell(cell)
        for draft in row.complex.values():
            self.deletion(draft.deletion)
            for cell in draft.cells.values():
                self.cell(cell)

    def stats(self) -> EncodingStats:
        return EncodingStats(
            min(self.timestamps, default=TIMESTAMP_EPOCH),
            min(self.deletion_times, default=DELETION_TIME_EPOCH),
            min(self.ttls, default=TTL_EPOCH),
        )
