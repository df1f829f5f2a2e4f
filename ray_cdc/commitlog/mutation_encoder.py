"""Serialize the mutation model back into a mutation body (the inverse of `mutation_decoder`).

Flags are taken from the model as they are, and every delta is recomputed from the encoding
stats, so a decoded mutation re-encodes into identical bytes (the fixtures test proves it).
"""

from __future__ import annotations

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
    Mutation,
    PartitionUpdate,
    RangeTombstoneMarker,
    Row,
)
from ray_cdc.commitlog.primitives import USHORT, signed32, uvint_bytes, vbytes
from ray_cdc.schema.model import TableSchema


def encode_mutation(mutation: Mutation) -> bytes:
    out = bytearray(uvint_bytes(len(mutation.updates)))
    for update in mutation.updates:
        _update(out, update)
    return bytes(out)


def _ts(out: bytearray, value: int, stats: EncodingStats) -> None:
    out += uvint_bytes(value - stats.min_timestamp)


def _i32(out: bytearray, value: int, base: int) -> None:
    # Java computes the delta in int arithmetic, then widens it (sign-extended) to a long
    out += uvint_bytes(signed32(value - base))


def _deletion(out: bytearray, d: DeletionTime, stats: EncodingStats) -> None:
    _ts(out, d.marked_for_delete_at, stats)
    _i32(out, d.local_deletion_time, stats.min_local_deletion_time)


def _value(out: bytearray, value: bytes, width: int | None) -> None:
    if width is None:
        out += vbytes(value)
    else:
        out += value


def _clustering(out: bytearray, values, widths) -> None:
    for offset in range(0, len(values), 32):
        block = values[offset : offset + 32]
        header = 0
        for i, v in enumerate(block):
            if v is None:
                header |= 2 << (2 * i)
            elif not v:
                header |= 1 << (2 * i)
        out += uvint_bytes(header)
        for i, v in enumerate(block):
            if v:
                _value(out, v, widths[offset + i])


def _columns(out: bytearray, names: tuple[str, ...]) -> None:
    out += uvint_bytes(len(names))
    for name in names:
        out += vbytes(name.encode("utf-8"))


def _subset(out: bytearray, present: list[int], count: int) -> None:
    present_set = set(present)
    if count < 64:
        missing = 0
        for i in range(count):
            if i not in present_set:
                missing |= 1 << i
        out += uvint_bytes(missing)
        return
    missing_idx = [i for i in range(count) if i not in present_set]
    out += uvint_bytes(len(missing_idx))
    listed = sorted(present) if len(present) < count // 2 else missing_idx
    for i in listed:
        out += uvint_bytes(i)


def _cell(out: bytearray, cell: Cell, stats: EncodingStats, complex_: bool, width: int | None) -> None:
    flags = cell.flags
    out.append(flags)
    if not flags & CELL_USE_ROW_TIMESTAMP:
        _ts(out, cell.timestamp, stats)
    if not flags & CELL_USE_ROW_TTL and flags & (CELL_IS_DELETED | CELL_IS_EXPIRING):
        _i32(out, cell.local_deletion_time, stats.min_local_deletion_time)
        if flags & CELL_IS_EXPIRING:
            _i32(out, cell.ttl, stats.min_ttl)
    if complex_:
        out += vbytes(cell.path or b"")
    if not flags & CELL_HAS_EMPTY_VALUE:
        _value(out, cell.value, None if complex_ else width)


def _row(out: bytearray, row: Row, stats: EncodingStats, plan, widths) -> None:
    flags = row.flags
    out.append(flags)
    if flags & EXTENSION_FLAG:
        out.append(row.ext_flags)
    if not row.is_static:
        _clustering(out, row.clustering, widths)
    if flags & HAS_TIMESTAMP:
        _ts(out, row.liveness.timestamp, stats)
        if flags & HAS_TTL:
            _i32(out, row.liveness.ttl, stats.min_ttl)
            _i32(out, row.liveness.local_expiration_time, stats.min_local_deletion_time)
    if flags & HAS_DELETION:
        _deletion(out, row.deletion, stats)
    if not flags & HAS_ALL_COLUMNS:
        _subset(out, [i for i, _ in row.columns], len(plan))
    for i, data in row.columns:
        _, width = plan[i]
        if not isinstance(data, ComplexColumn):
            _cell(out, data, stats, False, width)
            continue
        if flags & HAS_COMPLEX_DELETION:
            _deletion(out, data.deletion, stats)
        out += uvint_bytes(len(data.cells))
        for cell in data.cells:
            _cell(out, cell, stats, True, None)


def _marker(out: bytearray, marker: RangeTombstoneMarker, stats: EncodingStats, widths) -> None:
    out.append(IS_MARKER)
    out.append(marker.kind)
    out += USHORT.pack(len(marker.clustering))
    _clustering(out, marker.clustering, widths)
    _deletion(out, marker.deletion, stats)
    if marker.kind in BOUNDARY_KINDS:
        _deletion(out, marker.start_deletion, stats)


def _plan(table: TableSchema, names: tuple[str, ...]):
    plan = []
    for name in names:
        col = table.column(name)
        if col is None:
            raise ValueError(f"column {name!r} is not in the schema of {table.qualified_name}")
        plan.append((col.is_complex, col.type.fixed_width))
    return plan


def _update(out: bytearray, u: PartitionUpdate) -> None:
    out += u.table.id.bytes
    out += vbytes(u.key)
    out.append(u.flags)
    if u.flags & P_IS_EMPTY:
        return
    stats = u.stats
    out += uvint_bytes(stats.min_timestamp - TIMESTAMP_EPOCH)
    _i32(out, stats.min_local_deletion_time, DELETION_TIME_EPOCH)
    _i32(out, stats.min_ttl, TTL_EPOCH)
    if u.flags & P_HAS_STATIC_ROW:
        _columns(out, u.static_columns)
    _columns(out, u.regular_columns)
    if u.flags & P_HAS_PARTITION_DELETION:
        _deletion(out, u.partition_deletion, stats)
    widths = [c.type.fixed_width for c in u.table.clustering]
    if u.flags & P_HAS_STATIC_ROW:
        _row(out, u.static_row, stats, _plan(u.table, u.static_columns), widths)
    if u.flags & P_HAS_ROW_ESTIMATE:
        _i32(out, u.row_estimate, 0)
    plan = _plan(u.table, u.regular_columns)
    for unfiltered in u.unfiltereds:
        if isinstance(unfiltered, RangeTombstoneMarker):
            _marker(out, unfiltered, stats, widths)
        else:
            _row(out, unfiltered, stats, plan, widths)
    out.append(END_OF_PARTITION)
