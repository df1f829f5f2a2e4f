"""Decode a serialized mutation body (messaging versions 10–13, format doc §7–§13) into the model.

The walk is written as a few flat functions over `(buf, pos)` with locals bound once: this is
the hot loop of the whole product. Any short read or out-of-range value inside a body becomes a
`MutationDecodeError` naming the table, the file and the entry position.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from uuid import UUID

from ray_cdc.commitlog.mutation_model import (
    BOUNDARY_KINDS,
    CELL_HAS_EMPTY_VALUE,
    CELL_IS_DELETED,
    CELL_IS_EXPIRING,
    CELL_USE_ROW_TIMESTAMP,
    CELL_USE_ROW_TTL,
    DELETION_TIME_EPOCH,
    END_OF_PARTITION,
    EXTENSION_FLAG,
    HAS_ALL_COLUMNS,
    HAS_COMPLEX_DELETION,
    HAS_DELETION,
    HAS_TIMESTAMP,
    HAS_TTL,
    IS_MARKER,
    NO_DELETION_TIME,
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
from ray_cdc.commitlog.primitives import USHORT, read_uvint
from ray_cdc.errors import MutationDecodeError, UnknownTableError
from ray_cdc.schema.model import TableSchema

_U64 = (1 << 64) - 1
_new_cell = tuple.__new__

# A column as the walk needs it: (is_complex, fixed width or None)
ColumnPlan = tuple[bool, "int | None"]


class _Corrupt(Exception):
    """Raised inside the walk; turned into MutationDecodeError with location at the boundary."""


def _vint(buf, pos):
    b0 = buf[pos]
    if b0 < 0x80:
        return b0, pos + 1
    return read_uvint(buf, pos)


def _ts(buf, pos, base):
    """A timestamp delta: signed 64-bit, wrapping (§12.1)."""
    b0 = buf[pos]
    if b0 < 0x80:
        return base + b0, pos + 1
    v, pos = read_uvint(buf, pos)
    v = (v + base) & _U64
    return (v - (1 << 64) if v >> 63 else v), pos


def _i32(buf, pos, base):
    """A vint32 delta (LDT or TTL): must fit an int; the sum wraps like Java int arithmetic."""
    d = buf[pos]
    if d < 0x80:
        pos += 1
    else:
        d, pos = read_uvint(buf, pos)
        if d > 0x7FFFFFFF:
            if d < 0xFFFFFFFF80000000:  # neither an int nor a sign-extended negative int
                raise _Corrupt(f"vint32 out of range: {d}")
            d -= 1 << 64
    v = (base + d) & 0xFFFFFFFF
    return (v - (1 << 32) if v & 0x80000000 else v), pos


def _value(buf, pos, width):
    if width is None:
        b0 = buf[pos]
        if b0 < 0x80:
            n = b0
            pos += 1
        else:
            n, pos = read_uvint(buf, pos)
        end = pos + n
    else:
        end = pos + width
    if end > len(buf):
        raise _Corrupt("value runs past the end of the mutation")
    return buf[pos:end], end


def _deletion(buf, pos, stats):
    ts, pos = _ts(buf, pos, stats[0])
    ldt, pos = _i32(buf, pos, stats[1])
    return DeletionTime(ts, ldt), pos


def _clustering(buf, pos, widths, size):
    """`size` clustering values in blocks of 32 with a null/empty header per block (§9)."""
    values = []
    append = values.append
    offset = 0
    while offset < size:
        limit = min(size, offset + 32)
        header, pos = _vint(buf, pos)
        for i in range(limit - offset):
            if header & (2 << (2 * i)):
                append(None)
            elif header & (1 << (2 * i)):
                append(b"")
            else:
                v, pos = _value(buf, pos, widths[offset + i])
                append(v)
        offset = limit
    return tuple(values), pos


def _columns(buf, pos):
    n, pos = _vint(buf, pos)
    names = []
    for _ in range(n):
        ln, pos = _vint(buf, pos)
        end = pos + ln
        if end > len(buf):
            raise _Corrupt("column name runs past the end of the mutation")
        names.append(bytes(buf[pos:end]).decode("utf-8"))
        pos = end
    return tuple(names), pos


def _subset(buf, pos, count):
    """Indexes of the present columns of a row without HAS_ALL_COLUMNS (§9 column subset)."""
    v, pos = _vint(buf, pos)
    if v == 0:
        return range(count), pos
    if count < 64:
        return [i for i in range(count) if not (v >> i) & 1], pos
    present = count - v
    listed = []
    for _ in range(present if present < count // 2 else v):
        i, pos = _vint(buf, pos)
        listed.append(i)
    if present < count // 2:
        return listed, pos
    missing = set(listed)
    return [i for i in range(count) if i not in missing], pos


def _cell(buf, pos, stats, liveness, complex_, width):
    flags = buf[pos]
    pos += 1
    if flags & CELL_USE_ROW_TIMESTAMP:
        ts = liveness[0]
    else:
        ts, pos = _ts(buf, pos, stats[0])
    ttl = 0
    ldt = NO_DELETION_TIME
    if flags & CELL_USE_ROW_TTL:
        ttl, ldt = liveness[1], liveness[2]
    elif flags & (CELL_IS_DELETED | CELL_IS_EXPIRING):
        ldt, pos = _i32(buf, pos, stats[1])
        if flags & CELL_IS_EXPIRING:
            ttl, pos = _i32(buf, pos, stats[2])
    path = None
    if complex_:
        path, pos = _value(buf, pos, None)
    if flags & CELL_HAS_EMPTY_VALUE:
        value = b""
    else:
        value, pos = _value(buf, pos, None if complex_ else width)
    return _new_cell(Cell, (flags, ts, ldt, ttl, path, value)), pos


_NO_LIVENESS = Liveness(-(1 << 63), 0, NO_DELETION_TIME)


def _row(buf, pos, flags, stats, plan, widths, n_clustering, is_static):
    ext = 0
    if flags & EXTENSION_FLAG:
        ext = buf[pos]
        pos += 1
    clustering = ()
    if not is_static:
        clustering, pos = _clustering(buf, pos, widths, n_clustering)
    liveness = None
    if flags & HAS_TIMESTAMP:
        ts, pos = _ts(buf, pos, stats[0])
        if flags & HAS_TTL:
            ttl, pos = _i32(buf, pos, stats[2])
            ldt, pos = _i32(buf, pos, stats[1])
            liveness = Liveness(ts, ttl, ldt)
        else:
            liveness = Liveness(ts)
    deletion = None
    if flags & HAS_DELETION:
        deletion, pos = _deletion(buf, pos, stats)
    if flags & HAS_ALL_COLUMNS:
        present = range(len(plan))
    else:
        present, pos = _subset(buf, pos, len(plan))
    row_liveness = liveness or _NO_LIVENESS
    has_complex_deletion = flags & HAS_COMPLEX_DELETION
    columns = []
    append = columns.append
    for i in present:
        complex_, width = plan[i]
        if not complex_:
            cell, pos = _cell(buf, pos, stats, row_liveness, False, width)
            append((i, cell))
            continue
        cdel = None
        if has_complex_deletion:
            cdel, pos = _deletion(buf, pos, stats)
        n, pos = _vint(buf, pos)
        cells = []
        for _ in range(n):
            cell, pos = _cell(buf, pos, stats, row_liveness, True, None)
            cells.append(cell)
        append((i, ComplexColumn(cdel, tuple(cells))))
    return Row(flags, ext, clustering, liveness, deletion, columns), pos


def _marker(buf, pos, stats, widths):
    kind = buf[pos]
    (size,) = USHORT.unpack_from(buf, pos + 1)
    if size > len(widths):
        raise _Corrupt(f"range tombstone bound has {size} values, table has {len(widths)} clustering columns")
    clustering, pos = _clustering(buf, pos + 3, widths, size)
    deletion, pos = _deletion(buf, pos, stats)
    start = None
    if kind in BOUNDARY_KINDS:
        start, pos = _deletion(buf, pos, stats)
    elif kind > 7:
        raise _Corrupt(f"unknown range tombstone bound kind {kind}")
    return RangeTombstoneMarker(kind, clustering, deletion, start), pos


class _TablePlan:
    """What the walk needs of one table schema, computed once per schema object."""

    __slots__ = ("_columns", "headers", "n_clustering", "table", "widths")

    def __init__(self, table: TableSchema):
        self.table = table
        self.widths = tuple(c.type.fixed_width for c in table.clustering)
        self.n_clustering = len(self.widths)
        self._columns: dict[tuple[str, ...], tuple[ColumnPlan, ...]] = {}
        # the two latest regular-column headers that resolved: (raw bytes, names, column plan)
        self.headers: tuple[tuple[bytes, tuple[str, ...], tuple[ColumnPlan, ...]], ...] = ()

    def columns(self, names: tuple[str, ...]) -> tuple[ColumnPlan, ...]:
        plan = self._columns.get(names)
        if plan is None:
            plan = self._columns[names] = tuple(self._column(n) for n in names)
        return plan

    def _column(self, name: str) -> ColumnPlan:
        col = self.table.column(name)
        if col is None:
            raise _Corrupt(f"column {name!r} is not in the schema of {self.table.qualified_name}")
        return col.is_complex, col.type.fixed_width


def _update(buf, pos, plan_for):
    if pos + 16 > len(buf):
        raise _Corrupt("table id runs past the end of the mutation")
    plan = plan_for(buf[pos : pos + 16])
    key, pos = _value(buf, pos + 16, None)
    pflags = buf[pos]
    pos += 1
    update = PartitionUpdate(plan.table, bytes(key), pflags)
    if pflags & P_IS_EMPTY:
        return update, pos
    ts, pos = _vint(buf, pos)
    ldt, pos = _i32(buf, pos, DELETION_TIME_EPOCH)
    ttl, pos = _i32(buf, pos, TTL_EPOCH)
    ts = (ts + TIMESTAMP_EPOCH) & _U64
    stats = update.stats = EncodingStats(ts - (1 << 64) if ts >> 63 else ts, ldt, ttl)
    if pflags & P_HAS_STATIC_ROW:
        update.static_columns, pos = _columns(buf, pos)
    for header in plan.headers:  # most updates of a table repeat a recent header byte for byte
        if buf.startswith(header[0], pos):
            update.regular_columns, regular_plan = header[1], header[2]
            pos += len(header[0])
            break
    else:
        header = None
        header_start = pos
        update.regular_columns, pos = _columns(buf, pos)
        header_end = pos
    if pflags & P_HAS_PARTITION_DELETION:
        update.partition_deletion, pos = _deletion(buf, pos, stats)
    widths, n_clustering = plan.widths, plan.n_clustering
    if pflags & P_HAS_STATIC_ROW:
        flags = buf[pos]
        static_plan = plan.columns(update.static_columns)
        update.static_row, pos = _row(buf, pos + 1, flags, stats, static_plan, widths, 0, True)
    if pflags & P_HAS_ROW_ESTIMATE:
        update.row_estimate, pos = _i32(buf, pos, 0)
    if header is None:
        regular_plan = plan.columns(update.regular_columns)
        plan.headers = ((buf[header_start:header_end], update.regular_columns, regular_plan), *plan.headers[:1])
    unfiltereds = update.unfiltereds
    while True:
        flags = buf[pos]
        pos += 1
        if flags & END_OF_PARTITION:
            return update, pos
        if flags & IS_MARKER:
            marker, pos = _marker(buf, pos, stats, widths)
            unfiltereds.append(marker)
        else:
            row, pos = _row(buf, pos, flags, stats, regular_plan, widths, n_clustering, False)
            unfiltereds.append(row)


class MutationDecoder:
    """Decodes mutation bodies with the table schemas a lookup function gives by table id.

    `schema_for(table_id)` returns the TableSchema in force, or None when the table is unknown:
    then the whole mutation is undecodable (no per-update lengths exist, §7) and UnknownTableError
    names the table id.

    `cache=True` keeps the table found for each id (keyed by the 16 raw id bytes: no UUID per
    update) until `invalidate()`; the owner calls it whenever `schema_for` may answer differently.
    Without it, `schema_for` is asked for every update.
    """

    def __init__(self, schema_for: Callable[[UUID], TableSchema | None], *, cache: bool = False):
        self._schema_for = schema_for
        self._plans: dict[int, _TablePlan] = {}
        self._by_id: dict[bytes, _TablePlan] | None = {} if cache else None

    def invalidate(self) -> None:
        """Forget the cached table of every id (`cache=True`): the schemas in force may have changed."""
        if self._by_id is not None:
            self._by_id.clear()

    def _plan(self, raw_id: bytes) -> _TablePlan:
        by_id = self._by_id
        if by_id is not None:
            plan = by_id.get(raw_id)
            if plan is not None:
                return plan
        table_id = UUID(bytes=raw_id)
        table = self._schema_for(table_id)
        if table is None:
            raise _UnknownTable(table_id)
        plan = self._plans.get(id(table))
        if plan is None or plan.table is not table:
            plan = self._plans[id(table)] = _TablePlan(table)
        if by_id is not None:
            by_id[raw_id] = plan
        return plan

    def decode(self, body, *, path: str | None = None, position: int | None = None) -> Mutation:
        buf = body if isinstance(body, bytes) else bytes(body)
        plan_for = self._plan
        updates = []
        start = -1
        try:
            count, pos = _vint(buf, 0)
            if count < 1:
                raise _Corrupt(f"mutation has {count} partition updates")
            for _ in range(count):
                start = pos
                update, pos = _update(buf, pos, plan_for)
                updates.append(update)
            if pos != len(buf):
                raise _Corrupt(f"{len(buf) - pos} bytes left after the last partition update")
        except _UnknownTable as e:
            raise UnknownTableError(e.table_id, path=path, position=position) from None
        except (_Corrupt, IndexError, ValueError, UnicodeDecodeError, OverflowError, struct.error) as e:
            where = self._table_at(buf, start) if start >= 0 else ""
            detail = str(e) or type(e).__name__
            raise MutationDecodeError(
                f"mutation does not match its schema{where}: {detail}", path=path, position=position
            ) from None
        return Mutation(updates)


    def _table_at(self, buf, pos: int) -> str:
        """' in ks.table' for the update starting at pos, to name it in an error."""
        try:
            table = self._schema_for(UUID(bytes=bytes(buf[pos : pos + 16])))
        except ValueError:
            return ""
        return f" in {table.qualified_name}" if table is not None else ""


class _UnknownTable(Exception):
    def __init__(self, table_id: UUID):
        self.table_id = table_id
